"""Ariel ingest and training speed, against numpy.loadtxt on the same files, in one run.

Prints JSON: ingest MB/s per core (parse + checks + writing arrays) next to
numpy.loadtxt's MB/s on the same files (goal: >= 2x), and training samples/s of the
baseline MLP and the CNN (forward + backward + Adam step, batch 64, this machine).

    .venv/bin/python benchmarks/ariel_ingest.py [--planets 100]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hpcml.ariel.ingest import ingest_shard, list_files
from hpcml.ariel.models import ArielRegressor
from hpcml.ariel.synth import generate


def loadtxt_rate(folder: Path, names: list[str]) -> float:
    size, tic = 0, time.perf_counter()
    for name in names:
        path = folder / name
        np.loadtxt(path, dtype=np.float32, comments="#", delimiter="\t")
        size += path.stat().st_size
    return size / 1e6 / (time.perf_counter() - tic)


def training_rate(model: str, steps: int = 20, batch: int = 64) -> float:
    torch.manual_seed(0)
    module = ArielRegressor(model, 300, 1e-3)
    optimiser = module.configure_optimizers()
    x, s, y = torch.randn(batch, 55, 300), torch.randn(batch, 6), torch.randn(batch, 55)
    for step in range(steps + 3):
        if step == 3:
            tic = time.perf_counter()
        optimiser.zero_grad()
        module._loss((x, s, y)).backward()
        optimiser.step()
    return steps * batch / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--planets", type=int, default=100, help="synthetic planets (x 4 files of ~310 KB)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "raw", {"n_train_planets": args.planets, "n_test_planets": 1, "n_spot": 2, "n_photon": 2}, seed=1)
        names = list_files(root / "raw", "train")
        ingest_shard(root / "raw", "train", 0, 4, root / "warm", "stop")  # compile the parser once
        report = ingest_shard(root / "raw", "train", 0, len(names), root / "shard", "stop")
        reference = loadtxt_rate(root / "raw" / "noisy_train", names)
    torch.set_num_threads(2)
    result = {
        "files": len(names),
        "ingest_mb_per_s_per_core": round(report["mb_per_s"], 1),
        "numpy_loadtxt_mb_per_s": round(reference, 1),
        "speedup_vs_loadtxt": round(report["mb_per_s"] / reference, 2),
        "goal_speedup": 2,
        "train_samples_per_s_baseline_mlp_cpu_2threads": round(training_rate("baseline")),
        "train_samples_per_s_cnn_cpu_2threads": round(training_rate("cnn")),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
