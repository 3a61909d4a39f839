"""Training speed of the neural Ariel models through the project's learning path, against a plain loop.

Why: the issue sets two goals for training on a GPU: a job reaches its first optimiser
step within 15 s of starting, and the steady state through the project's loader
(hpcml.core.data / loaders / batches under Lightning) runs at >= 0.9 of what the same
model does on its own. This measures both, for the baseline MLP and the CNN, in one run
on the same synthetic data.

How: a synthetic challenge set (hpcml.ariel.synth) is generated, ingested, split into
planet folds and given fitted transforms in a temporary folder, exactly as the workflow
does; the noise instances per planet are chosen so that one epoch holds at least
--batches training batches. Then, per model:

  start_to_first_step_s   a fresh ``python -m hpcml.cli ariel train`` process (the real
                          CLI and config), from process creation to the end of its first
                          optimiser step, read from its summary.json; once with
                          training.placement=device (rows resident on the training
                          device, batches gathered there) and once with placement=stream
                          (batches read from memory maps by --workers loader workers);
  steady_samples_per_s    training samples/s of the same runs after warm-up, within
                          epochs (validation excluded), from the same summary.json;
  ceiling_samples_per_s   the same model, batch size and precision in this process, on
                          tensors already on the device and already transformed: forward,
                          MSE loss, backward, Adam step over pre-made batches, after
                          warm-up, the device synchronised around each timed window;
                          the best of 3 windows of 2 s;
  steady_over_ceiling     the ratio the issue's >= 0.9 goal is about.

On CPU it also times the imports a loader worker needs (``import hpcml.core.batches``:
what a worker forked from the preloaded forkserver no longer pays) against those of the
training stack (``import hpcml.ariel.train``), each in a fresh interpreter.

    .venv/bin/python benchmarks/training.py                      # CPU, a few minutes on 2 cores
    .venv/bin/python benchmarks/training.py --device cuda --precision bf16-mixed --batch-size 256
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hpcml.ariel.ingest import ingest_all
from hpcml.ariel.models import NEURAL_MODELS, ArielRegressor
from hpcml.ariel.prepare import fit_transforms, write_folds
from hpcml.ariel.synth import generate
from hpcml.ariel.dataset import ArielData, load_splits
from hpcml.ariel.transforms import Transforms
from hpcml.core import config as configuration

from ceiling import ACCELERATOR, add_run_options, best_rate, figures, train_cli, training_device  # benchmarks/ceiling.py

REPO = Path(__file__).resolve().parents[1]
PLACEMENTS = ("device", "stream")
MAX_INSTANCES = 10  # per noise kind, as in the challenge (10 spot x 10 photon instances)
IMPORT_REPEATS = 3




def noise_instances(planets: int, n_folds: int, batch_size: int, batches: int) -> tuple[int, int]:
    """(spot, photon) instances per planet giving at least ``batches`` training batches per epoch."""
    train_planets = planets - 2 * math.ceil(planets / n_folds)  # all but the validation and held-out folds
    if train_planets < 1:
        raise SystemExit(f"--planets {planets}: too few for {n_folds} folds")
    per_planet = math.ceil(batches * batch_size / train_planets)
    if per_planet > MAX_INSTANCES**2:
        raise SystemExit(f"{batches} batches of {batch_size} need {per_planet} noise instances per planet (at most {MAX_INSTANCES**2}): raise --planets")
    n_spot = math.ceil(per_planet / MAX_INSTANCES)
    return n_spot, math.ceil(per_planet / n_spot)


def prepare(root: Path, config: dict[str, Any], planets: int, n_spot: int, n_photon: int) -> dict[str, Path]:
    """Synthetic files -> arrays -> folds -> transforms, as the workflow's steps write them."""
    ariel = config["ariel"]
    paths = {"data": root / "data", "folds": root / "folds.parquet", "transforms": root / "transforms.json"}
    generate(root / "raw", {"n_train_planets": planets, "n_test_planets": 1, "n_spot": n_spot, "n_photon": n_photon}, config["seed"])
    ingest_all(root / "raw", paths["data"], ariel["ingest"]["shard_size"], ariel["ingest"]["on_bad_file"])
    write_folds(paths["data"], paths["folds"], ariel, config["seed"])
    fit_transforms(paths["data"], paths["folds"], paths["transforms"], ariel)
    return paths


def cli_run(model: str, placement: str, paths: dict[str, Path], out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train once through ``hpcml ariel train`` in a fresh process; its summary.json."""
    overrides = {
        f"ariel.{model}.batch_size": args.batch_size,
        f"ariel.{model}.max_epochs": args.epochs,
        "training.placement": placement,
        "training.num_workers": args.workers,
        "training.precision": args.precision,
        "training.accelerator": ACCELERATOR[args.device],
    }
    arguments = ["ariel", "train", "--config", str(args.config), "--model", model, "--data", str(paths["data"]),
                 "--folds", str(paths["folds"]), "--transforms", str(paths["transforms"])]
    return train_cli(arguments, out, overrides, REPO)


def ceiling(model: str, paths: dict[str, Path], config: dict[str, Any], device: torch.device, batch_size: int, precision: str) -> float:
    """Samples/s of forward + MSE + backward + Adam on pre-made, transformed batches already on ``device``."""
    train = ArielData(paths["data"] / "train")
    rows = load_splits(train, paths["folds"], config["ariel"]["splits"])["train"]
    transforms = Transforms.load(paths["transforms"])
    x, stellar, targets = (torch.from_numpy(np.asarray(train.arrays[n][rows])).to(device) for n in ("X", "stellar", "targets"))
    x, stellar, targets = transforms.inputs(x), transforms.stellar(stellar), transforms.targets(targets)
    torch.manual_seed(config["seed"])
    order = torch.randperm(len(rows), device=device)
    batches = [(x[b], stellar[b], targets[b]) for b in order.split(batch_size)]
    module = ArielRegressor(model, x.shape[-1], config["ariel"][model]["learning_rate"]).to(device).train()
    optimiser = module.configure_optimizers()

    def step(batch: tuple[torch.Tensor, ...]) -> None:
        xb, sb, yb = batch
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = nn.functional.mse_loss(module(xb, sb), yb)
        loss.backward()
        optimiser.step()

    return best_rate(step, batches, lambda batch: len(batch[0]), device)




def import_seconds(module: str) -> float:
    """Fastest of a few fresh interpreters importing ``module`` (warm file cache)."""
    times = []
    for _ in range(IMPORT_REPEATS):
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, check=True)
        times.append(time.perf_counter() - tic)
    return min(times)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, REPO, default_device="auto")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of every run and of the ceiling")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each CLI run (steady state starts after 10 batches)")
    parser.add_argument("--planets", type=int, default=40, help="synthetic training planets (5 folds: 24 train, 8 validation, 8 held out)")
    parser.add_argument("--batches", type=int, default=8, help="at least this many training batches per epoch (sets the noise instances per planet)")
    args = parser.parse_args()
    args.config = args.config.resolve()
    device = training_device(args.device)
    config = configuration.load(args.config)
    n_spot, n_photon = noise_instances(args.planets, config["ariel"]["splits"]["n_folds"], args.batch_size, args.batches)
    # Warm the file cache for the libraries, so that no run pays the first cold import.
    subprocess.run([sys.executable, "-c", "import pytorch_lightning, hpcml.ariel.train"], cwd=REPO, check=True)
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "epochs": args.epochs,
        "workers": args.workers,
        "planets": args.planets,
        "noise_instances_per_planet": n_spot * n_photon,
        "goals_on_gpu": {"steady_over_ceiling": 0.9, "start_to_first_step_s": 15},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tic = time.perf_counter()
        paths = prepare(root, config, args.planets, n_spot, n_photon)
        result["data_seconds"] = round(time.perf_counter() - tic, 1)
        for model in NEURAL_MODELS:
            summaries = {p: cli_run(model, p, paths, root / "runs" / f"{model}-{p}", args) for p in PLACEMENTS}
            rate = ceiling(model, paths, config, device, args.batch_size, args.precision)
            result["models"][model] = {p: figures(s, rate, "samples") for p, s in summaries.items()}
    if device.type == "cpu":
        result["worker_start_s"] = {
            "import hpcml.core.batches (a worker from the preloaded forkserver skips this)": round(import_seconds("hpcml.core.batches"), 2),
            "import hpcml.ariel.train": round(import_seconds("hpcml.ariel.train"), 2),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
