"""SAGE speed: pairing and preprocessing per core, and VICReg training against its ceiling.

Why: the group decoded every 6144x2048 JPG in every epoch and paired files by hand. The
issue asks for captures per second for pairing and preprocessing (per core), and
training pairs per second through the project's loader next to the same model on
device-resident tensors in the same run (goal on an H100: >= 90% of a plain PyTorch
loop; no GPU is lent to this project, so the script is GPU-ready and measured on CPU).

How, on synthetic captures in the group's format (``hpcml.sage.synth``), pinned to one
core for the first two sections:

  pairing_captures_per_s      ``hpcml.sage.pairing.pair`` (vets every file without
                              decoding, matches, writes the report), against
  naive_pairing_per_s         decoding every JPG fully (PIL ``load``) and parsing every
                              CSV with ``np.loadtxt``, then matching names: what vetting
                              by reading costs;
  preprocess_captures_per_s   one ``preprocess_shard`` over all pairs (draft-mode JPEG
                              decode, crop, resize, thermal parse, index), against
  naive_preprocess_per_s      full decode, crop and resize with PIL and ``np.loadtxt``;
  steady_pairs_per_s          ``hpcml sage train`` (the real CLI, a fresh process) with
                              training.placement=device and =stream, from its summary.json;
  ceiling_pairs_per_s         the same module, batch size and precision in this process
                              on tensors already on the device: the same augmentation,
                              forward of both branches, VICReg loss, backward, AdamW step;
                              best of 3 windows of 2 s after warm-up.

    .venv/bin/python benchmarks/sage.py                               # CPU, a few minutes on 2 cores
    .venv/bin/python benchmarks/sage.py --device cuda --precision bf16-mixed --size 128 --batch-size 256
"""
from __future__ import annotations

import argparse
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
import torch
from PIL import Image

from hpcml.core import config as configuration
from hpcml.sage.dataset import SageData
from hpcml.sage.layout import RGB, THERMAL
from hpcml.sage.model import TwoBranchVICReg
from hpcml.sage.pairing import pair
from hpcml.sage.preprocess import preprocess_shard
from hpcml.sage.synth import write_synthetic
from hpcml.sage.vicreg import vicreg_loss

from ceiling import best_rate  # benchmarks/ceiling.py

REPO = Path(__file__).resolve().parents[1]


def one_core() -> None:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)


def naive_pairing(raw: Path) -> int:
    found: dict[str, set[tuple[str, str]]] = {RGB: set(), THERMAL: set()}
    for kind, suffix in ((RGB, "*.jpg"), (THERMAL, "*.csv")):
        for path in sorted((raw / kind).glob(f"*/{suffix}")):
            try:
                if kind == RGB:
                    with Image.open(path) as image:
                        image.load()
                else:
                    np.loadtxt(path, delimiter=";", skiprows=8)
            except (OSError, ValueError):
                continue
            found[kind].add((path.parent.name, path.name.split("_")[0] + path.name.rsplit("position", 1)[1].split(".")[0]))
    return len(found[RGB] & found[THERMAL])


def naive_preprocess(pairs: Any, box: list[float], size: list[int]) -> None:
    for row in pairs.itertuples(index=False):
        with Image.open(row.rgb_path) as image:
            half = image.width // 2
            crop = image.crop((box[0] * half, box[1] * image.height, box[2] * half, box[3] * image.height))
            np.asarray(crop.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR))
        celsius = np.loadtxt(row.thermal_path, delimiter=";", skiprows=8).astype(np.float32)
        np.asarray(Image.fromarray(celsius).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def timed(function: Any, *args: Any) -> tuple[float, Any]:
    tic = time.perf_counter()
    out = function(*args)
    return time.perf_counter() - tic, out


def cli_train(data: Path, folds: Path, out: Path, placement: str, args: argparse.Namespace) -> dict[str, Any]:
    sets = {"training.placement": placement, "training.accelerator": {"cpu": "cpu", "cuda": "gpu"}[args.device],
            "training.precision": args.precision, "training.num_workers": args.workers, "wandb.mode": "disabled",
            "sage.model.max_epochs": args.epochs, "sage.model.batch_size": args.batch_size, "sage.model.backbone": args.backbone}
    command = [sys.executable, "-m", "hpcml.cli", "-q", "sage", "train", "--data", str(data), "--folds", str(folds), "--out", str(out)]
    command += [f"--set={k}={json.dumps(v)}" for k, v in sets.items()]
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return json.loads((out / "summary.json").read_text())


def ceiling(data: Path, args: argparse.Namespace) -> float:
    device = torch.device(args.device)
    sage = SageData(data)
    n = min(len(sage), 4 * args.batch_size)
    rgb = torch.as_tensor(np.asarray(sage.arrays["rgb"][:n]), device=device).float().div(255).contiguous(memory_format=torch.channels_last)
    thermal = torch.as_tensor(np.asarray(sage.arrays["thermal"][:n]), device=device).float().contiguous(memory_format=torch.channels_last)
    module = TwoBranchVICReg(backbone=args.backbone, rgb_channels=rgb.shape[1]).to(device)
    optimiser = module.configure_optimizers()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    batches = [(rgb[i:i + args.batch_size], thermal[i:i + args.batch_size]) for i in range(0, n - args.batch_size + 1, args.batch_size)]

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        with autocast:
            out = module(*module.augment(*batch))
            loss = vicreg_loss(out.rgb_embedding, out.thermal_embedding).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return best_rate(step, batches, lambda batch: len(batch[0]), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=60, help="capture times per node (3 nodes x 4 positions each)")
    parser.add_argument("--scale", type=float, default=0.25, help="JPG size as a fraction of the camera's 6144x2048")
    parser.add_argument("--size", type=int, default=32, help="array height and width")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sage = configuration.validate({})["sage"]
    sage["synthetic"].update(n_times=args.times, scale=args.scale)
    sage["preprocess"].update(size=[args.size, args.size], shard_size=10**9, chunk_size=10**9)
    figures: dict[str, Any] = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                               "cpus": len(os.sched_getaffinity(0)), "settings": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic(root / "raw", sage["synthetic"], seed=1)
        training_cpus = os.sched_getaffinity(0)
        one_core()
        seconds, report = timed(pair, root / "raw", root / "pairs", sage)
        files = report["counts"]["rgb_files"]
        naive_seconds, _ = timed(naive_pairing, root / "raw")
        figures["pairing"] = {"captures": files, "captures_per_s": files / seconds, "naive_per_s": files / naive_seconds,
                              "ratio": naive_seconds / seconds}
        import pandas as pd

        pairs = pd.read_parquet(root / "pairs" / "pairs.parquet")
        seconds, _ = timed(preprocess_shard, root / "pairs" / "pairs.parquet", 0, root / "data", sage)
        naive_seconds, _ = timed(naive_preprocess, pairs, sage["preprocess"]["box"], sage["preprocess"]["size"])
        figures["preprocess"] = {"captures": len(pairs), "captures_per_s": len(pairs) / seconds,
                                 "naive_per_s": len(pairs) / naive_seconds, "ratio": naive_seconds / seconds}
        os.sched_setaffinity(0, training_cpus)
        torch.set_num_threads(len(training_cpus))
        from hpcml.sage.dataset import write_folds

        write_folds(root / "data", root / "folds.parquet", configuration.validate({})["sage"]["splits"], seed=1)
        top = ceiling(root / "data", args)
        figures["training"] = {"ceiling_pairs_per_s": top}
        for placement in ("device", "stream"):
            summary = cli_train(root / "data", root / "folds.parquet", root / f"model_{placement}", placement, args)
            steady = summary["steady_samples_per_s"]
            figures["training"][placement] = {"steady_pairs_per_s": steady, "start_to_first_step_s": summary["start_to_first_step_s"],
                                              "steady_over_ceiling": steady / top if steady else None}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
