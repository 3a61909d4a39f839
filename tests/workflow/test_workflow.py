"""The whole DAG at a tiny scale with --cores 2, and the errors a user meets before any job."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import ROOT, snakemake

pytestmark = pytest.mark.workflow


def test_tiny_workflow_end_to_end(tmp_path):
    run = snakemake(tmp_path, "--cores", "2")
    assert run.returncode == 0, run.stdout[-4000:]
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

    again = snakemake(tmp_path, "--cores", "2", "-n")
    assert "Nothing to be done" in again.stdout
    report = snakemake(tmp_path, "--cores", "1", "--report", str(results / "report.html"))
    assert report.returncode == 0, report.stdout[-2000:]
    assert (results / "report.html").stat().st_size > 10000


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
