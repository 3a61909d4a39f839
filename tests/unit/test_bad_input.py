"""Bad input of every kind gets a clear error naming the file, line or key, never a
traceback and never silence: config contradictions, data sets too small for the folds,
and the ``hpcml`` command's handling of user errors."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hpcml import checks
from hpcml.cli import user_error
from hpcml.core import config
from hpcml.core.splits import make_folds
from hpcml.lensing.priors import check_priors

ROOT = Path(__file__).resolve().parents[2]


def problems_of(settings: dict) -> str:
    """The consistency error's text for ``settings`` (validated with defaults first)."""
    with pytest.raises(config.ConfigError) as error:
        checks.check(config.validate(settings))
    return str(error.value)


PRIOR_PAIRS = [("b_low", "b_high"), ("z_lens_low", "z_lens_high"), ("z_src_low", "z_src_high")]


@pytest.mark.parametrize(("low", "high"), PRIOR_PAIRS)
def test_every_prior_range_with_low_above_high_is_named(low, high):
    text = problems_of({"lensing": {"priors": {low: 4.0, high: 3.5}}})
    assert f"lensing.priors.{low} = 4.0 is above lensing.priors.{high} = 3.5" in text


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"lensing": {"priors": {"z_src_low": 0.4}}}, "lensing.priors.z_src_low = 0.4 must exceed lensing.priors.z_lens_high = 0.5"),
        ({"ariel": {"splits": {"test_fold": 2, "val_fold": 2}}}, "ariel.splits.test_fold and ariel.splits.val_fold are both 2"),
        ({"ariel": {"splits": {"n_folds": 4, "test_fold": 4}}}, "ariel.splits.test_fold = 4 must be below ariel.splits.n_folds = 4"),
        ({"ariel": {"splits": {"val_fold": 7}}}, "ariel.splits.val_fold = 7 must be below ariel.splits.n_folds = 5"),
        ({"lensing": {"models": {"splits": {"val_fold": 0}}}}, "lensing.models.splits.test_fold and lensing.models.splits.val_fold are both 0"),
        ({"lensing": {"models": {"h0": {"range": [90, 60]}}}}, "lensing.models.h0.range = [90, 60]: the lower bound must be below the upper"),
        ({"ariel": {"synthetic": {"n_train_planets": 4}}}, "ariel.synthetic.n_train_planets = 4 is too few for ariel.splits.n_folds = 5: at least 5"),
        ({"ariel": {"synthetic": {"n_train_planets": 5}, "splits": {"n_folds": 3}}}, "n_train_planets = 5 is too few for ariel.splits.n_folds = 3: at least 6"),
        ({"ariel": {"synthetic": {"n_train_planets": 9990, "n_test_planets": 10}}}, "n_test_planets = 10000: at most 9999 planets"),
        ({"ariel": {"transforms": {"time_bins": 76}}}, "ariel.transforms.time_bins = 76 leaves 3 time step(s); the cnn model"),
        ({"lensing": {"source": "table"}}, "lensing.source is 'table' but lensing.table is not set"),
        ({"results": "/"}, "results = '/' puts every output at the file-system root"),
        ({"logs": "  "}, "logs = '  ' puts every output at the file-system root"),
        ({"lensing": {"priors": {"b_high": float("inf")}}}, "lensing.priors.b_high = inf is not a finite number"),
        ({"lensing": {"priors": {"ellipticity_mean": float("nan")}}}, "lensing.priors.ellipticity_mean = nan is not a finite number"),
    ],
)
def test_contradicting_settings_are_named_by_key(settings, expected):
    assert expected in problems_of(settings)


def test_every_problem_is_listed_at_once_and_switched_off_sections_are_not_checked():
    text = problems_of({"ariel": {"splits": {"test_fold": 1, "val_fold": 1}}, "lensing": {"priors": {"b_low": 2.0}}})
    assert "ariel.splits.test_fold" in text and "lensing.priors.b_low" in text
    checks.check(config.validate({"lensing": {"enabled": False, "priors": {"b_low": 2.0}}}))
    checks.check(config.validate({"lensing": {"models": {"enabled": False, "splits": {"val_fold": 0}}}}))
    checks.check(config.validate({"ariel": {"enabled": False, "splits": {"val_fold": 0}}}))
    checks.check(config.validate({"ariel": {"models": ["baseline", "gbt"], "transforms": {"time_bins": 300}}}))


@pytest.mark.parametrize(
    ("settings", "key"),
    [({"seed": 2**64}, "seed"), ({"seed": 2**32}, "seed"), ({"results": ""}, "results"), ({"ariel": {"transforms": {"time_bins": 301}}}, "ariel.transforms.time_bins"),
     ({"lensing": {"priors": {"z_src_high": 1000.0}}}, "lensing.priors.z_src_high"), ({"lensing": {"priors": {"shear_median": 1.0}}}, "lensing.priors.shear_median")],
)
def test_out_of_range_values_are_refused_by_the_schema(settings, key):
    with pytest.raises(config.ConfigError, match=key.replace(".", r"\.")):
        config.validate(settings)


def test_priors_are_checked_again_when_a_step_runs_by_hand():
    priors = config.validate({"lensing": {"priors": {"z_lens_low": 0.6}}})["lensing"]["priors"]
    with pytest.raises(config.ConfigError, match="lensing.priors.z_lens_low = 0.6 is above lensing.priors.z_lens_high = 0.5"):
        check_priors(priors)


@pytest.mark.parametrize("n_folds", [3, 4, 5, 7])
def test_fold_arithmetic_matches_the_folds_made(n_folds):
    for n in range(n_folds, 4 * n_folds):
        folds = make_folds(np.arange(n), n_folds, seed=3) if n >= config.min_groups(n_folds) else None
        if folds is not None:
            assert folds.fold.value_counts().sort_index().tolist() == config.fold_sizes(n, n_folds)
    needed = config.min_groups(n_folds)
    sizes = config.fold_sizes(needed, n_folds)
    assert needed - sizes[0] - sizes[1] >= config.MIN_TRAIN_GROUPS


def test_too_few_planets_stop_before_training_saying_how_many_are_needed():
    with pytest.raises(ValueError, match="3 planets cannot fill 5 folds: at least 5 are needed with 5 folds; add planets, or change ariel.splits.n_folds"):
        make_folds(np.arange(3), 5, 1, what="planet", key="ariel.splits.n_folds")
    with pytest.raises(ValueError, match="4 planets in 3 folds leave 1 for training .* at least 6 planets are needed"):
        make_folds(np.repeat(np.arange(4), 10), 3, 1, what="planet", key="ariel.splits.n_folds")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: 1\nseed: 2\n", r"c.yaml: not valid YAML: key 'seed' appears twice in one section \(first on line 1\)"),
        ("ariel:\n  enabled: true\nariel:\n  input_dir: x\n", "key 'ariel' appears twice"),
        ("a: [1, 2\n", r"(?s)c.yaml: not valid YAML: .*in \".*c.yaml\", line 2"),
        ("lensing:\n\tn_lenses: 3\n", r"(?s)c.yaml: not valid YAML: .*found character '\\t' .* line 2"),
    ],
)
def test_yaml_problems_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.read(path)


def test_numeric_yaml_keys_are_reported_not_crashed_on():
    with pytest.raises(config.ConfigError, match=r"\(top level\): unknown key\(s\) \[1, 'token'\]"):
        config.validate({1: 2, "token": 3})


def hpcml(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpcml.cli", "-q", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({"c.yaml": "a: [1, 2\n"}, ["config", "c.yaml"], "c.yaml: not valid YAML"),
        ({"c.yaml": "1: 2\n"}, ["config", "c.yaml"], "unknown key(s) [1]"),
        ({"c.yaml": "seed: 18446744073709551616\n"}, ["config", "c.yaml"], "seed: 18446744073709551616 is greater than the maximum of 4294967295"),
        ({"c.yaml": "ariel: {splits: {n_folds: 3, test_fold: 3}}\n"}, ["config", "c.yaml"], "ariel.splits.test_fold = 3 must be below ariel.splits.n_folds = 3"),
        ({}, ["config", "."], ". is a folder, not a config file"),
        ({"t.csv": "theta_e,q,phi,gamma,phi_gamma,z_lens,z_src,image_x,image_y\n"}, ["lensing", "count", "--set", "lensing.source=table", "--set", "lensing.table=t.csv"],
         "t.csv: the table has no lens rows"),
        ({"t.csv": "lens_id,theta_e,q,phi,gamma,phi_gamma,z_lens,z_src,image_x,image_y\n0.5,1.2,0.8,0,0.05,0,0.3,1.5,1,0\n"},
         ["lensing", "count", "--set", "lensing.source=table", "--set", "lensing.table=t.csv"], "t.csv, line 2: column lens_id = 0.5 must be a whole number"),
        ({"in/noisy_train/notes.md": "", "in/params_train/notes.md": ""}, ["ariel", "ingest", "in", "out"], "in/noisy_train/notes.md: file name is not AAAA_BB_CC.txt"),
        ({}, ["lensing", "count", "--set", "lensing.n_lenses=[1"], "--set lensing.n_lenses=[1: the value is not valid YAML"),
        ({}, ["lensing", "count", "--settings", "{bad"], "--settings is not valid JSON"),
        ({"busy": ""}, ["ariel", "synth", "busy/x", "--set", "ariel.synthetic.n_train_planets=2"], "busy/x/noisy_train: Not a directory"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(tmp_path, files, args, message):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    run = hpcml(*args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.startswith("hpcml: error: ")
    assert message in run.stderr


def test_an_empty_ariel_folder_is_named_with_its_key(tmp_path):
    for folder in ("noisy_train", "params_train"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    (tmp_path / "in" / "noisy_train" / ".DS_Store").write_text("")
    run = hpcml("ariel", "ingest", "in", "out", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "Ariel input folder in/noisy_train is empty" in run.stderr and "ariel.input_dir" in run.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    run = subprocess.Popen([sys.executable, "-m", "hpcml.cli", "config", "--reference"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    run.stdout.close()
    assert "Traceback" not in run.stderr.read().decode()
    run.wait()


def test_bugs_keep_their_traceback():
    args = argparse.Namespace()
    assert user_error(OSError("no file involved"), args) is None
    assert user_error(PermissionError(13, "Permission denied", "/x/y"), args) == "/x/y: Permission denied"
    assert user_error(FileNotFoundError("Ariel input folder not found: x (config key ariel.input_dir)"), args).endswith("ariel.input_dir)")


def test_dry_run_stops_on_contradictions_and_repeated_keys_naming_them(tmp_path):
    (tmp_path / "config").symlink_to(ROOT / "config")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"ariel": {"splits": {"n_folds": 3}, "synthetic": {"n_train_planets": 3}}, "lensing": {"priors": {"b_low": 2.0}}}) + "seed: 1\nseed: 2\n")
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "-n", "--cores", "1", "--configfile"]
    run = subprocess.run([*command, str(bad)], capture_output=True, text=True)
    assert run.returncode != 0
    assert "key 'seed' appears twice" in run.stderr + run.stdout
    bad.write_text(bad.read_text().rsplit("seed: 2", 1)[0])
    run = subprocess.run([*command, str(bad)], capture_output=True, text=True)
    out = run.stderr + run.stdout
    assert run.returncode != 0 and "ariel.synthetic.n_train_planets = 3 is too few" in out and "lensing.priors.b_low = 2.0 is above" in out
    assert not (tmp_path / "results").exists()


def test_synthetic_planets_beyond_four_digits_are_refused_by_hand_too(tmp_path):
    from hpcml.ariel.synth import generate

    with pytest.raises(config.ConfigError, match="n_test_planets = 10000: at most 9999 planets"):
        generate(tmp_path, {"n_train_planets": 9000, "n_test_planets": 1000, "n_spot": 1, "n_photon": 1}, seed=1)
    assert not any(tmp_path.iterdir())


def test_a_data_set_too_small_for_the_folds_stops_at_the_split_step(tmp_path):
    from hpcml.ariel.ingest import ingest_all
    from hpcml.ariel.prepare import write_folds
    from hpcml.ariel.synth import generate

    generate(tmp_path / "raw", {"n_train_planets": 4, "n_test_planets": 1, "n_spot": 1, "n_photon": 2}, seed=2)
    ingest_all(tmp_path / "raw", tmp_path / "data")
    settings = config.validate({"ariel": {"splits": {"n_folds": 3}}})["ariel"]
    with pytest.raises(ValueError, match="4 planets in 3 folds leave 1 for training .* at least 6 planets are needed with 3 folds: add planets, or change ariel.splits.n_folds"):
        write_folds(tmp_path / "data", tmp_path / "folds.parquet", settings, seed=2)
    assert not (tmp_path / "folds.parquet").exists()
