"""Data changed after a run reruns what reads it: files added to the Ariel input folder, a
lens table edited in place. Each was once "Nothing to be done", with stale results kept."""
from __future__ import annotations

import shutil

import pandas as pd
import yaml
from helpers import snakemake

from hpcml.ariel.synth import generate
from hpcml.core import config as configuration

OFF = {"sage": {"enabled": False}, "training": {"num_workers": 0}}


def _planned(run) -> dict[str, int]:
    jobs = {}
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job", "all"):
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_files_added_to_the_ariel_folder_are_ingested(tmp_path):
    source = tmp_path / "synthetic"
    generate(source, {**configuration.validate({})["ariel"]["synthetic"], "n_train_planets": 4, "n_test_planets": 1, "n_spot": 1, "n_photon": 2}, seed=3)
    data = tmp_path / "challenge"
    for folder in ("noisy_train", "params_train", "noisy_test"):
        (data / folder).mkdir(parents=True)
    new = sorted((source / "noisy_train").iterdir())[0].name  # first in order: every shard's slice moves
    for folder in ("noisy_train", "params_train", "noisy_test"):
        for path in (source / folder).iterdir():
            if path.name != new:
                shutil.copy(path, data / folder / path.name)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**OFF, "lensing": {"enabled": False}, "ariel": {"input_dir": str(data), "ingest": {"shard_size": 3}}}))
    target = "results/ariel/data/train/meta.parquet"
    meta = tmp_path / target
    run = snakemake(tmp_path, "--cores", "2", target, configfile=cfg)
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(pd.read_parquet(meta)) == 7
    for folder in ("noisy_train", "params_train"):
        shutil.copy(source / folder / new, data / folder / new)
    plan = snakemake(tmp_path, "-n", "--quiet", "rules", "--cores", "1", target, configfile=cfg)
    assert _planned(plan) == {"ariel_ingest": 3, "ariel_combine": 1}, plan.stdout[-2000:]
    run = snakemake(tmp_path, "--cores", "2", target, configfile=cfg)
    assert run.returncode == 0, run.stdout[-3000:]
    assert new in set(pd.read_parquet(meta).file) and len(pd.read_parquet(meta)) == 8


def test_a_lens_table_edited_in_place_reruns_the_simulation(tmp_path):
    table = tmp_path / "lenses.csv"
    frame = pd.DataFrame({
        "lens_id": [101, 102, 103], "theta_e": [1.2, 1.0, 1.4], "q": [0.8, 1.0, 0.6], "phi": [0.3, 0.0, 1.0],
        "gamma": [0.05, 0.0, 0.1], "phi_gamma": [0.2, 0.0, 2.0], "z_lens": [0.3, 0.4, 0.5], "z_src": [1.5, 2.0, 2.5],
        "source_x": [0.01, 0.3, -0.1], "source_y": [0.005, -0.1, 0.05],
    })
    frame.to_csv(table, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**OFF, "ariel": {"enabled": False}, "lensing": {
        "source": "table", "table": str(table), "families": ["both"], "shard_size": 2, "render": {"enabled": False}, "models": {"enabled": False}}}))
    target = "results/lensing/catalog/both/lenses.parquet"
    catalog = tmp_path / target
    run = snakemake(tmp_path, "--cores", "2", target, configfile=cfg)
    assert run.returncode == 0, run.stdout[-3000:]
    frame.loc[1, "theta_e"] = 1.3
    frame.to_csv(table, index=False)
    run = snakemake(tmp_path, "--cores", "2", target, configfile=cfg)
    assert run.returncode == 0 and "lensing_simulate" in run.stdout, run.stdout[-3000:]
    assert pd.read_parquet(catalog).theta_e.tolist() == [1.2, 1.3, 1.4]
