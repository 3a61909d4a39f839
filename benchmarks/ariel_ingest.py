"""Ariel ingest speed, against numpy.loadtxt on the same files, in one run.

Prints JSON: ingest MB/s per core (parse + checks + writing arrays) next to
numpy.loadtxt's MB/s on the same files (goal: >= 2x). Training speed has its own
benchmark, benchmarks/training.py.

    .venv/bin/python benchmarks/ariel_ingest.py [--planets 100]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hpcml.ariel.ingest import ingest_shard
from hpcml.ariel.layout import list_files
from hpcml.ariel.synth import generate


def loadtxt_rate(folder: Path, names: list[str]) -> float:
    size, tic = 0, time.perf_counter()
    for name in names:
        path = folder / name
        np.loadtxt(path, dtype=np.float32, comments="#", delimiter="\t")
        size += path.stat().st_size
    return size / 1e6 / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--planets", type=int, default=100, help="synthetic planets (x 4 files of ~310 KB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "raw", {"n_train_planets": args.planets, "n_test_planets": 1, "n_spot": 2, "n_photon": 2}, seed=1)
        names = list_files(root / "raw", "train")
        ingest_shard(root / "raw", "train", 0, 4, root / "warm", "stop")  # compile the parser once
        report = ingest_shard(root / "raw", "train", 0, len(names), root / "shard", "stop")
        reference = loadtxt_rate(root / "raw" / "noisy_train", names)
    result = {
        "files": len(names),
        "ingest_mb_per_s_per_core": round(report["mb_per_s"], 1),
        "numpy_loadtxt_mb_per_s": round(reference, 1),
        "speedup_vs_loadtxt": round(report["mb_per_s"] / reference, 2),
        "goal_speedup": 2,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
