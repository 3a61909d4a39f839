"""The one learning path: fit a LightningModule on an ArrayDataModule, then predict.

``fit`` wraps the trainer factory (checkpoints, resume, loggers, DDP) and measures
what a researcher waiting on a GPU queue cares about: seconds from process start to
the first optimiser step, steady-state samples/s, peak memory. ``predict`` runs
``trainer.predict`` with the best checkpoint on the training device.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from hpcml.core import pruning
from hpcml.core.data import ArrayDataModule
from hpcml.core.training import best_checkpoint, build_trainer, epochs_run


class StepTimer(Callback):
    """Start-to-first-step and steady-state training throughput (all ranks together).

    Steady state counts the intervals between consecutive training batches of one epoch
    (validation is outside them), after a warm-up of ``warmup`` batches; the device is
    synchronised at the window's edges so queued GPU work is inside the window.
    """

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self.first_step_s: float | None = None
        self.batches = 0
        self.samples = 0
        self.seconds = 0.0
        self._last: float | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Short runs (tests, tiny configs) still get a steady-state figure: warm up on at most a fifth of them.
        self.warmup = max(1, min(self.warmup, int(trainer.estimated_stepping_batches) // 5))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches += 1
        last_of_epoch = batch_idx == trainer.num_training_batches - 1
        if self.first_step_s is None:
            _synchronize(pl_module.device)
            self.first_step_s = time.time() - psutil.Process().create_time()
        if self.batches == self.warmup or last_of_epoch:
            _synchronize(pl_module.device)
        now = time.perf_counter()
        if self._last is not None and self.batches > self.warmup:
            self.seconds += now - self._last
            self.samples += len(batch[0]) * trainer.world_size
        self._last = None if last_of_epoch else now

    @property
    def samples_per_second(self) -> float | None:
        return self.samples / self.seconds if self.seconds > 0 else None


@dataclass
class FitResult:
    trainer: pl.Trainer
    run_dir: Path
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def best_checkpoint(self) -> Path:
        return best_checkpoint(self.run_dir)


def fit(
    module: pl.LightningModule,
    data: ArrayDataModule,
    run_dir: str | Path,
    training: dict[str, Any],
    wandb: dict[str, Any],
    seed: int,
    max_epochs: int,
    run_name: str,
    monitor: str = "val_loss",
    mode: str = "min",
    callbacks: Sequence[Callback] = (),
    hyperparameters: dict[str, Any] | None = None,
    data_files: Sequence[str | Path] = (),
) -> FitResult:
    """Train (resuming a killed run with the same settings and data) and time it."""
    timer = StepTimer()
    trainer, resume = build_trainer(
        run_dir, training, wandb, max_epochs, seed, run_name, monitor=monitor, mode=mode,
        callbacks=[timer, *callbacks, *pruning.from_environment(monitor, mode)], hyperparameters=hyperparameters, data_files=data_files,
    )
    device = trainer.strategy.root_device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tic = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=resume)
    stats = {
        "epochs": trainer.current_epoch,
        "epochs_this_run": epochs_run(trainer),
        "train_seconds": time.perf_counter() - tic,
        "start_to_first_step_s": timer.first_step_s,
        "steady_samples_per_s": timer.samples_per_second,
        "peak_memory_mb": _peak_memory_mb(device),
        "device": f"{device.type} x{trainer.world_size}",
        "placement": data.placed.get("train"),
        "n_train": int(len(data.splits["train"].rows)),
        "precision": str(trainer.precision),
    }
    return FitResult(trainer, Path(run_dir), stats)


def predict(result: FitResult, module: pl.LightningModule, data: ArrayDataModule) -> dict[str, np.ndarray]:
    """Model outputs for each of ``data``'s prediction sets, from the best checkpoint, on the training device."""
    batches = result.trainer.predict(module, datamodule=data, ckpt_path=str(result.best_checkpoint))
    if len(data.predict_sets) == 1:
        batches = [batches]
    return {name: torch.cat([b.float().cpu() for b in part]).numpy() if part else np.empty((0,)) for name, part in zip(data.predict_sets, batches)}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
