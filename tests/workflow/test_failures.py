"""What a user sees when a run cannot go on: a failed step's own error on the console,
and a second run on a results folder in use refused with the way out."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, snakemake
from hpcml.core import runlock
from hpcml.core.runlock import LOCK_NAME, Holder

pytestmark = pytest.mark.workflow

STELLAR = {"star_temp": 5619.17, "star_logg": 4.0, "star_rad": 1.27, "star_mass": 1.02, "star_k_mag": 10.8, "period": 2.95}


def _noisy(rows: list[str]) -> str:
    return "".join(f"# {key}: {value}\n" for key, value in STELLAR.items()) + "".join(row + "\n" for row in rows)


def ariel_folder_with_a_bad_file(root: Path) -> Path:
    """A challenge-format folder of one training and one test file; the training file has a word among its fluxes."""
    row = "\t".join(["1.0"] * 300)
    for folder in ("noisy_train", "params_train", "noisy_test"):
        (root / folder).mkdir(parents=True)
    (root / "noisy_train" / "0001_01_01.txt").write_text(_noisy([row] * 2 + [row.replace("1.0", "oops", 1)] + [row] * 52))
    (root / "params_train" / "0001_01_01.txt").write_text("# sma: 7.3e9\n# incl: 88.8\n" + "\t".join(["0.05"] * 55) + "\n")
    (root / "noisy_test" / "0002_01_01.txt").write_text(_noisy([row] * 55))
    return root / "noisy_train" / "0001_01_01.txt"


def ariel_only(work: Path, **ariel) -> Path:
    """The smallest Ariel-only config: no lensing, no SAGE, the tiny synthetic set unless ``input_dir`` is given."""
    tiny = {"synthetic": {"n_train_planets": 9, "n_test_planets": 2, "n_spot": 1, "n_photon": 2}, "ingest": {"shard_size": 8}}
    config = work / "ariel_only.yaml"
    config.write_text(yaml.safe_dump({"lensing": {"enabled": False}, "sage": {"enabled": False}, "ariel": {**tiny, **ariel}}))
    return config


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_print_failed_logs(profile):
    assert yaml.safe_load((ROOT / "profiles" / profile / "config.yaml").read_text())["show-failed-logs"] is True


def test_demo_prints_failed_logs():
    demo = (ROOT / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    assert "--show-failed-logs" in demo.splitlines()[1]


def test_failed_step_prints_its_own_error(tmp_path):
    bad = ariel_folder_with_a_bad_file(tmp_path / "challenge")
    config = ariel_only(tmp_path, input_dir=str(tmp_path / "challenge"))
    run = snakemake(tmp_path, "--profile", str(ROOT / "profiles" / "local"), configfile=config, timeout=600)
    assert run.returncode != 0
    report = run.stdout.split("Error in rule ariel_ingest:", 1)
    assert len(report) == 2, run.stdout[-4000:]
    assert f"hpcml: error: {bad}:" in report[1], run.stdout[-4000:]
    # the failed run gave the results folder back (onerror)
    assert not (tmp_path / "results" / LOCK_NAME).exists()


def test_second_run_on_a_results_folder_in_use_is_refused(tmp_path):
    results = tmp_path / "results"
    # As another clone's live run would hold it: this host, a live pid (this test's), another folder.
    other = runlock.acquire(results, dataclasses.replace(Holder.current(), cwd="/home/someone/clone-b"))
    config = ariel_only(tmp_path)
    manifest = "results/ariel/raw/manifest.json"

    run = snakemake(tmp_path, "--cores", "1", manifest, configfile=config, timeout=600)
    assert run.returncode != 0
    for part in (f"Results folder {results.resolve()} is in use", f"pid {other.pid}", "/home/someone/clone-b",
                 f"remove {results.resolve() / LOCK_NAME}"):
        assert part in run.stdout, run.stdout[-3000:]
    assert not (tmp_path / manifest).exists()
    assert runlock._parse((results / LOCK_NAME).read_text()) == other

    dry = snakemake(tmp_path, "--cores", "1", "-n", manifest, configfile=config, timeout=600)
    assert dry.returncode == 0 and "is in use" not in dry.stdout, dry.stdout[-3000:]

    runlock.release(results, other)
    run = snakemake(tmp_path, "--cores", "1", manifest, configfile=config, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / manifest).exists() and not (results / LOCK_NAME).exists()
