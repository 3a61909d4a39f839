"""Training throughput of the lens models (systems/s) through the project's learning path, against a plain loop.

Why: the issue asks how fast the lens models train through the project's loader
(hpcml.core.data / loaders / batches under Lightning), with the training rows resident
on the device and streamed by loader workers, on CPU and, when a GPU is lent, on it;
the reference to beat is the same model on its own on device-resident tensors (goal on
a GPU: steady state >= 0.9 of that ceiling). This measures it for the set model and
one of the group's baselines, in one run on the same simulated data.

How: a lens catalogue of --lenses systems of the family the config's models learn from
(lensing.models.family; no rendering) is simulated shard by shard, combined and turned
into the lens-model dataset (noisy observables, lens-id folds) in a temporary folder,
with the functions the workflow's ``hpcml lensing simulate / combine / dataset`` steps
run. Then, per model:

  start_to_first_step_s   a fresh ``python -m hpcml.cli lensing train`` process (the real
                          CLI and config), from process creation to the end of its first
                          optimiser step, read from its summary.json; once with
                          training.placement=device (rows resident on the training
                          device, batches gathered there) and once with placement=stream
                          (batches read from memory maps by --workers loader workers);
  steady_systems_per_s    training systems/s of the same runs after warm-up, within
                          epochs (validation excluded): summary.json's steady_samples_per_s;
  ceiling_systems_per_s   the same module (built as hpcml.lensing.train builds it, with the
                          scaling hpcml.lensing.scaling.fit fits on the same training rows),
                          batch size and precision in this process, on pre-made batches
                          already on the device: the training step's augmentation and loss
                          (``loss(augmented(batch))`` when the model augments), backward,
                          AdamW step, after warm-up, the device synchronised around each
                          timed window; the best of 3 windows of 2 s;
  steady_over_ceiling     the ratio the goal is about.

A baseline trains on the systems of its image count only (baseline_n2: 2-image systems),
so its n_train is smaller than the set model's.

    .venv/bin/python benchmarks/lensing_models.py                  # CPU, a few minutes on 2 cores
    .venv/bin/python benchmarks/lensing_models.py --device cuda --precision bf16-mixed
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hpcml.core import config as configuration
from hpcml.core.batches import ArraySet
from hpcml.core.shards import plan_shards
from hpcml.lensing import scaling as scaling_io
from hpcml.lensing.combine import combine_family
from hpcml.lensing.naming import image_count, section
from hpcml.lensing.observables import build, load_splits
from hpcml.lensing.simulate import run_shard
from hpcml.lensing.train import ON_DEVICE, build_model

from ceiling import ACCELERATOR, add_run_options, best_rate, figures, train_cli, training_device  # benchmarks/ceiling.py

REPO = Path(__file__).resolve().parents[1]
MODELS = ("set", "baseline_n2")
PLACEMENTS = ("device", "stream")
GOAL = {"steady_over_ceiling": 0.9, "on": "gpu"}




def prepare(root: Path, config: dict[str, Any], lenses: int) -> Path:
    """Shards -> the family's catalogue -> the lens-model dataset, as the workflow's steps write them."""
    settings = copy.deepcopy(config["lensing"])
    family = settings["models"]["family"]
    settings.update(source="priors", n_lenses=lenses, families=[family])
    settings["render"]["enabled"] = False
    shards = plan_shards(lenses, settings["shard_size"])
    for shard in shards:
        run_shard(settings, config["seed"], shard.index, root / "shards" / shard.name, root / "shards" / f"{shard.name}.work")
    catalog = root / "catalog" / family
    combine_family(settings, config["seed"], family, [root / "shards" / s.name for s in shards], catalog)
    data = root / "data"
    build(catalog, settings["models"], config["seed"], data)
    return data


def batch_size_of(model: str, config: dict[str, Any], args: argparse.Namespace) -> int:
    return args.batch_size or config["lensing"]["models"][section(model)]["batch_size"]


def cli_run(model: str, placement: str, data: Path, out: Path, config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train once through ``hpcml lensing train`` in a fresh process; its summary.json."""
    key = f"lensing.models.{section(model)}"
    overrides = {
        f"{key}.batch_size": batch_size_of(model, config, args),
        f"{key}.max_epochs": args.epochs,
        "training.placement": placement,
        "training.num_workers": args.workers,
        "training.precision": args.precision,
        "training.accelerator": ACCELERATOR[args.device],
    }
    return train_cli(["lensing", "train", "--config", str(args.config), "--model", model, "--data", str(data)], out, overrides, REPO)


def training_rows(model: str, data: Path, config: dict[str, Any]) -> np.ndarray:
    """The training rows hpcml.lensing.train uses for ``model`` (a baseline: those of its image count)."""
    rows = load_splits(data, config["lensing"]["models"]["splits"])["train"]
    if model.startswith("baseline"):
        n_images = pd.read_parquet(data / "meta.parquet", columns=["n_images"]).n_images.to_numpy()
        rows = rows[n_images[rows] == image_count(model)]
    return rows


def ceiling(model: str, data: Path, config: dict[str, Any], device: torch.device, batch_size: int, precision: str) -> float:
    """Systems/s of augmentation + loss + backward + AdamW on pre-made batches already on ``device``."""
    rows = training_rows(model, data, config)
    scaling = scaling_io.fit(data, rows, config["lensing"]["models"]["targets"])
    torch.manual_seed(config["seed"])
    module = build_model(model, config, scaling).to(device).train()
    arrays = ArraySet(data, module.batch_names)
    tensors = []
    for name in module.batch_names:
        tensor = torch.from_numpy(np.ascontiguousarray(arrays[name][rows])).to(device)
        tensors.append(ON_DEVICE[name](tensor) if name in ON_DEVICE else tensor)
    order = torch.randperm(len(rows), device=device)
    batches = [tuple(t[b] for t in tensors) for b in order.split(batch_size)]
    optimiser = module.configure_optimizers()

    def step(batch: tuple[torch.Tensor, ...]) -> None:
        # LensModel.training_step without its self.log (no trainer here).
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            loss = module.loss(module.augmented(batch) if module.hparams.augment else batch)
        loss.backward()
        optimiser.step()

    return best_rate(step, batches, lambda batch: len(batch[0]), device)






def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(parser, REPO, default_device="cpu")
    parser.add_argument("--batch-size", type=int, help="batch size of every run and of the ceiling (default: each model's from --config, 256 in the demo)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each CLI run (steady state starts after 10 batches)")
    parser.add_argument("--lenses", type=int, default=10_000, help="simulated lenses (10 lens-id folds: 8 train, 1 validation, 1 held out)")
    args = parser.parse_args()
    args.config = args.config.resolve()
    device = training_device(args.device)
    config = configuration.load(args.config)
    # Warm the file cache for the libraries, so that no run pays the first cold import.
    subprocess.run([sys.executable, "-c", "import pytorch_lightning, hpcml.lensing.train"], cwd=REPO, check=True)
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()}, {os.cpu_count()} cores)",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "precision": args.precision,
        "epochs": args.epochs,
        "workers": args.workers,
        "lenses": args.lenses,
        "family": config["lensing"]["models"]["family"],
        "goal": GOAL,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tic = time.perf_counter()
        data = prepare(root, config, args.lenses)
        result["data_seconds"] = round(time.perf_counter() - tic, 1)
        for model in MODELS:
            summaries = {p: cli_run(model, p, data, root / "runs" / f"{model}-{p}", config, args) for p in PLACEMENTS}
            batch_size = batch_size_of(model, config, args)
            rate = ceiling(model, data, config, device, batch_size, args.precision)
            result["models"][model] = {"batch_size": batch_size, **{p: figures(s, rate, "systems") for p, s in summaries.items()}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
