"""What the training benchmarks share: the device choice, a run of the real training command, and the plain-loop ceiling.

The ceiling is a model's own speed with nothing of the learning path around it: its
training step over pre-made batches already on the device, after a warm-up, the device
synchronised at each window's edges, the best of a few windows (shared machines are
noisy). A benchmark divides the steady rate of the real training by it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

ACCELERATOR = {"auto": "auto", "cpu": "cpu", "cuda": "gpu"}
WARMUP_STEPS = 5
WINDOWS = 3
WINDOW_SECONDS = 2.0


def training_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    return torch.device("cuda" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_rate(step: Callable[[Any], None], batches: Sequence[Any], items: Callable[[Any], int], device: torch.device) -> float:
    """Items per second of ``step`` over ``batches`` (whole passes, synchronised after each): best window."""
    for k in range(WARMUP_STEPS):
        step(batches[k % len(batches)])
    synchronize(device)
    per_pass = sum(items(batch) for batch in batches)
    rates = []
    for _ in range(WINDOWS):
        done, tic = 0, time.perf_counter()
        while time.perf_counter() - tic < WINDOW_SECONDS:
            for batch in batches:
                step(batch)
            done += per_pass
            synchronize(device)
        rates.append(done / (time.perf_counter() - tic))
    return max(rates)


def figures(summary: dict[str, Any], ceiling_rate: float, unit: str = "samples") -> dict[str, Any]:
    """A training run's summary.json beside the ceiling: the ratio the goals are about."""
    steady = summary["steady_samples_per_s"]
    return {
        "start_to_first_step_s": round(summary["start_to_first_step_s"], 2),
        f"steady_{unit}_per_s": None if steady is None else round(steady, 1),
        f"ceiling_{unit}_per_s": round(ceiling_rate, 1),
        "steady_over_ceiling": None if steady is None else round(steady / ceiling_rate, 3),
        "placement": summary["placement"],
        "n_train": summary["n_train"],
    }


def train_cli(arguments: list[str], out: Path, overrides: dict[str, Any], repo: Path) -> dict[str, Any]:
    """Train once through ``python -m hpcml.cli ARGUMENTS --out OUT --set KEY=VALUE...`` in a fresh
    process (the real command and config); its summary.json."""
    command = [sys.executable, "-m", "hpcml.cli", "-q", *arguments, "--out", str(out),
               *(item for key, value in overrides.items() for item in ("--set", f"{key}={value}"))]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)}\nfailed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads((out / "summary.json").read_text())


def add_run_options(parser: argparse.ArgumentParser, repo: Path, default_device: str) -> None:
    """The options every training benchmark takes: device, loader workers, precision, config."""
    parser.add_argument("--device", choices=tuple(ACCELERATOR), default=default_device, help="training device (auto: a GPU when one is visible)")
    parser.add_argument("--workers", type=int, default=2, help="loader workers of the placement=stream runs")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true", help="Lightning precision; the ceiling uses the same autocast")
    parser.add_argument("--config", type=Path, default=repo / "config" / "config.yaml", help="workflow config the training runs read")
