"""Where the challenge's files lie, importable without the parser.

The Snakefile lists the files to plan ingest shards, and every SLURM job re-parses it,
so this module needs nothing beyond the standard library (the parser pulls in numba).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

DATASETS = {"train": "noisy_train", "test": "noisy_test"}
PARAMS = "params_train"


def list_files(input_dir: str | Path, dataset: str) -> list[str]:
    """Sorted file names of a data set; errors name the folder and the config key."""
    folder = Path(input_dir) / DATASETS[dataset]
    if not folder.is_dir():
        raise FileNotFoundError(f"Ariel input folder not found: {folder} (set by config key ariel.input_dir = {input_dir})")
    if dataset == "train" and not (Path(input_dir) / PARAMS).is_dir():
        raise FileNotFoundError(f"Ariel input folder not found: {Path(input_dir) / PARAMS} (config key ariel.input_dir)")
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".txt")


def count_files(settings: dict[str, Any], dataset: str) -> int:
    """Files of a data set before any job runs: listed from ``input_dir``, or the number
    the synthetic generator will write when ``input_dir`` is null."""
    if settings["input_dir"] is None:
        s = settings["synthetic"]
        planets = s["n_train_planets"] if dataset == "train" else s["n_test_planets"]
        return planets * s["n_spot"] * s["n_photon"]
    return len(list_files(settings["input_dir"], dataset))
