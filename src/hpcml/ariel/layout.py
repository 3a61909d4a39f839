"""Where the challenge's files lie, importable without the parser.

The Snakefile lists the files to plan ingest shards, and every SLURM job re-parses it,
so this module needs nothing beyond the standard library (the parser pulls in numba).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from hpcml.core.config import MIN_TRAIN_GROUPS, min_groups
from hpcml.core.shards import plan_shards

# Every noisy file holds 55 wavelengths x 300 time steps (config checks use the shape too).
N_WAVELENGTHS = 55
N_TIMESTEPS = 300
DATASETS = {"train": "noisy_train", "test": "noisy_test"}
# Two max-pool halvings in the Ariel CNN (hpcml.ariel.models) need 4 time steps after binning.
CNN_MIN_STEPS = 4
# Synthetic planets are numbered in the file names' four digits (AAAA_BB_CC.txt).
MAX_PLANETS = 9999
PARAMS = "params_train"


def list_files(input_dir: str | Path, dataset: str) -> list[str]:
    """Sorted names of the entries of a data set's folder; errors name the folder and the config key.

    Only hidden entries are left out (``.DS_Store``, the ``.tmp-*`` of an atomic write
    cut short); the ingest report lists them. Any other entry that is not a challenge
    file (``.TXT``, a stray note, a folder named like a file) goes to ingest like the
    rest, which refuses it by name or sets it aside in the report: no file is skipped
    without a word.
    """
    folder = Path(input_dir) / DATASETS[dataset]
    if not folder.is_dir():
        raise FileNotFoundError(f"Ariel input folder not found: {folder} (set by config key ariel.input_dir = {input_dir})")
    if dataset == "train" and not (Path(input_dir) / PARAMS).is_dir():
        raise FileNotFoundError(f"Ariel input folder not found: {Path(input_dir) / PARAMS} (config key ariel.input_dir)")
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if not names:
        raise FileNotFoundError(f"Ariel input folder {folder} is empty: it should hold AAAA_BB_CC.txt challenge files (config key ariel.input_dir = {input_dir})")
    return names


def hidden_entries(folder: str | Path) -> list[str]:
    """The hidden entries :func:`list_files` leaves out of a data set's folder."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def count_files(settings: dict[str, Any], dataset: str) -> int:
    """Files of a data set before any job runs: listed from ``input_dir``, or the number
    the synthetic generator will write when ``input_dir`` is null."""
    if settings["input_dir"] is None:
        s = settings["synthetic"]
        planets = s["n_train_planets"] if dataset == "train" else s["n_test_planets"]
        return planets * s["n_spot"] * s["n_photon"]
    return len(list_files(settings["input_dir"], dataset))


def shard_listings(settings: dict[str, Any], dataset: str, shard_size: int) -> dict[str, str]:
    """The ingest shards' names, each with a digest of the names of the files it reads
    (empty for synthetic data).

    A rule parameter, so that files added to or removed from ``input_dir`` rerun every
    shard whose slice of the sorted list moved. Names only: listing a folder reads no
    file metadata, which on a parallel file system costs a round trip per file and every
    SLURM job re-plans the workflow. A file edited in place keeps its name: rerun its
    shard with ``-R ariel_ingest``.
    """
    if settings["input_dir"] is None:
        return {s.name: "" for s in plan_shards(count_files(settings, dataset), shard_size)}
    names = list_files(settings["input_dir"], dataset)
    return {s.name: hashlib.sha1("\n".join(names[s.start:s.stop]).encode()).hexdigest()[:16] for s in plan_shards(len(names), shard_size)}


def problems(config: dict[str, Any]) -> list[str]:
    """Ariel settings that contradict each other (hpcml.checks runs this before planning)."""
    ariel = config["ariel"]
    if not ariel["enabled"]:
        return []
    problems = []
    bins = ariel["transforms"]["time_bins"]
    if "cnn" in ariel["models"] and N_TIMESTEPS // bins < CNN_MIN_STEPS:
        problems.append(
            f"ariel.transforms.time_bins = {bins} leaves {N_TIMESTEPS // bins} time step(s); the cnn model (in ariel.models) needs "
            f"at least {CNN_MIN_STEPS}: set time_bins to at most {N_TIMESTEPS // CNN_MIN_STEPS}, or drop cnn"
        )
    if ariel["input_dir"] is None:
        problems += _synthetic_problems(ariel["synthetic"], ariel["splits"])
    return problems


def _synthetic_problems(synthetic: dict[str, Any], splits: dict[str, Any]) -> list[str]:
    """Whether the synthetic planets fit the file names and fill the folds (real data are
    counted when split, by :func:`hpcml.core.splits.make_folds`)."""
    planets, k = synthetic["n_train_planets"], splits["n_folds"]
    problems = [p for p in (too_many_planets(synthetic),) if p]
    if planets < min_groups(k):
        problems.append(
            f"ariel.synthetic.n_train_planets = {planets} is too few for ariel.splits.n_folds = {k}: at least {min_groups(k)} are needed "
            f"(every fold needs a planet, and {MIN_TRAIN_GROUPS} must remain for training when two folds are held out); "
            "raise it, or change n_folds"
        )
    return problems


def too_many_planets(synthetic: dict[str, Any]) -> str | None:
    """Why ``ariel.synthetic`` asks for more planets than file names can number, if it does:
    a five-digit planet number gives names that ingest refuses, every one."""
    total = synthetic["n_train_planets"] + synthetic["n_test_planets"]
    if total <= MAX_PLANETS:
        return None
    return f"ariel.synthetic.n_train_planets + n_test_planets = {total}: at most {MAX_PLANETS} planets fit the four-digit planet numbers of the file names"
