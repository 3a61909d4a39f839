"""The whole DAG at a tiny scale with --cores 2, and the errors a user meets before any job."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import ROOT, snakemake

pytestmark = pytest.mark.workflow


def test_tiny_workflow_end_to_end(finished):
    tmp_path = finished
    results = tmp_path / "results"
    for family in ("shear", "ellipticity", "both"):
        lenses = pd.read_parquet(results / "lensing" / "catalog" / family / "lenses.parquet")
        assert lenses.lens_id.tolist() == list(range(200))
        assert np.load(results / "lensing" / "catalog" / family / "render.npy", mmap_mode="r").shape == (200, 16, 16)
    metrics = json.loads((results / "ariel" / "eval" / "metrics.json").read_text())
    for model in ("baseline", "cnn", "gbt", "ensemble"):
        assert np.isfinite(metrics[model]["ariel_score"])
    submission = (results / "ariel" / "submission" / "submission.txt").read_text().splitlines()
    assert len(submission) == 2 * 1 * 2 and all(len(row.split("\t")) == 55 for row in submission)
    for figure in ("image_counts", "examples", "rendered"):
        assert (results / "lensing" / "report" / f"{figure}.png").stat().st_size > 1000

    sage = json.loads((results / "sage" / "eval" / "metrics.json").read_text())
    assert 0 <= sage["retrieval"]["top1"] <= 1 and sage["headline"]
    consistency = json.loads((results / "sage" / "pairs" / "consistency.json").read_text())
    assert consistency["counts"]["damaged"] >= 3 and consistency["counts"]["unmatched"] >= 2, "the generator's damaged files are listed"
    assert len(pd.read_parquet(results / "sage" / "data" / "index.parquet")) == consistency["counts"]["pairs"]

    again = snakemake(tmp_path, "--cores", "2", "-n")
    assert "Nothing to be done" in again.stdout
    report = snakemake(tmp_path, "--cores", "1", "--report", str(results / "report.html"))
    assert report.returncode == 0, report.stdout[-2000:]
    assert (results / "report.html").stat().st_size > 10000


NEURAL = {"ariel_train_neural": 2}
# A new evaluation rewrites the run's summary (its headline scores).
SUMMARY = {"report_summary": 1}
ARIEL_MODELS = {**NEURAL, "ariel_train_gbt": 1, "ariel_evaluate": 1, **SUMMARY}
# One key changed -> exactly these jobs planned (rule: count); "all" is the target rule.
SINGLE_KEY_CHANGES = [
    ({"ariel": {"cnn": {"learning_rate": 0.01}}}, {"ariel_train_neural": 1, "ariel_evaluate": 1, **SUMMARY}),
    ({"ariel": {"gbt": {"max_iter": 11}}}, {"ariel_train_gbt": 1, "ariel_evaluate": 1, **SUMMARY}),
    ({"lensing": {"report": {"n_examples": 2}}}, {"lensing_report": 1}),
    ({"training": {"num_workers": 1}}, {}),
    ({"training": {"precision": "bf16-mixed"}},
     {**NEURAL, "ariel_evaluate": 1, "lensing_train": 4, "lensing_evaluate": 1, "sage_train": 1, "sage_evaluate": 1, **SUMMARY}),
    ({"sage": {"model": {"learning_rate": 0.01}}}, {"sage_train": 1, "sage_evaluate": 1, **SUMMARY}),
    ({"sage": {"evaluation": {"knn": 2}}}, {"sage_evaluate": 1, **SUMMARY}),
    ({"lensing": {"models": {"set": {"learning_rate": 0.01}}}}, {"lensing_train": 1, "lensing_evaluate": 1, **SUMMARY}),
    ({"lensing": {"models": {"noise": {"astrometry": 0.01}}}}, {"lensing_dataset": 1, "lensing_train": 4, "lensing_evaluate": 1, **SUMMARY}),
    ({"ariel": {"splits": {"val_fold": 2}}}, {"ariel_transforms": 1, **ARIEL_MODELS}),
    ({"ariel": {"splits": {"n_folds": 4}}}, {"ariel_split": 1, "ariel_transforms": 1, **ARIEL_MODELS}),
    ({"ariel": {"transforms": {"time_bins": 2}}}, {"ariel_transforms": 1, **ARIEL_MODELS}),
    ({"lensing": {"solver": {"angular_grid": 128}}},
     {"lensing_simulate": 4, "lensing_combine": 3, "lensing_report": 1, "lensing_dataset": 1, "lensing_train": 4, "lensing_evaluate": 1, **SUMMARY}),
]


def _deep_merge(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        out[key] = _deep_merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _planned(run) -> dict:
    jobs = {}
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.mark.parametrize("change,expected", SINGLE_KEY_CHANGES, ids=[json.dumps(c) for c, _ in SINGLE_KEY_CHANGES])
def test_single_key_change_reruns_only_what_reads_it(finished, change, expected):
    config = finished / "changed.yaml"
    config.write_text(yaml.safe_dump(_deep_merge(yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text()), change)))
    run = snakemake(finished, "-n", "--quiet", "rules", "--cores", "1", configfile=config)
    assert run.returncode == 0, run.stdout[-2000:]
    planned = _planned(run)
    planned.pop("all", None)
    assert planned == expected, run.stdout[-2000:]


def test_invalid_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"lensing": {"n_lenses": -5}, "ariel": {"ingest": {"on_bad_file": "ignore"}}}))
    run = snakemake(tmp_path, "--cores", "1", configfile=bad)
    assert run.returncode != 0
    assert "lensing.n_lenses" in run.stdout and "ariel.ingest.on_bad_file" in run.stdout
    assert not (tmp_path / "results").exists()


def test_missing_input_folder_names_folder_and_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"lensing": {"enabled": False}, "ariel": {"input_dir": str(tmp_path / "nowhere")}}))
    run = snakemake(tmp_path, "-n", "--cores", "1", configfile=cfg)
    assert run.returncode != 0
    assert str(tmp_path / "nowhere" / "noisy_train") in run.stdout and "ariel.input_dir" in run.stdout


def test_dry_run_of_shipped_configs(tmp_path):
    for name in ("config.yaml", "full.yaml"):
        run = snakemake(tmp_path, "-n", "--cores", "1", configfile=ROOT / "config" / name)
        if name == "full.yaml":
            # the cluster-scale file points at real data that is not on this machine
            assert "ariel.input_dir" in run.stdout
        else:
            assert run.returncode == 0, run.stdout[-2000:]


def test_snakemake_lint_is_clean(tmp_path):
    run = snakemake(tmp_path, "--lint", configfile=ROOT / "config" / "config.yaml")
    assert run.returncode == 0 and "Congratulations" in run.stdout, run.stdout[-3000:]


def test_grid_and_bayes_sweeps_run_and_report(finished):
    """A 4-trial grid and a 4-trial bayes sweep with 2 workers on top of the finished tiny run."""
    config = finished / "sweeps.yaml"
    tiny = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text())
    config.write_text(yaml.safe_dump({**tiny, "sweeps": [str(ROOT / "tests" / "sweeps" / f"gbt_{m}.yaml") for m in ("grid", "bayes")]}))
    run = snakemake(finished, "--cores", "2", configfile=config)
    assert run.returncode == 0, run.stdout[-4000:]
    for name in ("gbt_grid", "gbt_bayes"):
        folder = finished / "results" / "sweeps" / name
        results = pd.read_parquet(folder / "results.parquet")
        assert len(results) == 4 and results.trial.is_unique
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["best"]["val_score"] == results.val_score.max()
        best = yaml.safe_load((folder / "best.yaml").read_text())
        assert set(best["ariel"]["gbt"]) == {"max_iter"}
        assert (folder / "parallel_coordinates.png").stat().st_size > 1000
    assert sorted(p.name for p in (finished / "results" / "sweeps" / "gbt_grid" / "trials").iterdir()) == [f"max_iter~{k}" for k in (2, 4, 6, 8)]
    again = snakemake(finished, "--cores", "2", "-n", configfile=config)
    assert "Nothing to be done" in again.stdout, "a rerun reuses finished trials"
