"""One Lightning trainer factory for every training rule.

What it guarantees, whatever the model: a CSV log always, continued across resumes
(each epoch once); a W&B run (offline unless configured) in the run's own directory,
so parallel sweep trials never share or delete each other's files; ``last.ckpt`` written every epoch and resumed from
automatically when a job is re-run after hitting its wall-time limit, but only when
everything that changes the result (settings, seed, the data's files) is unchanged;
seeding; DDP when more than one device, with batch norm synchronised across GPUs (PyTorch
has no SyncBatchNorm on CPUs: there each rank normalises its own batch); the data module
splits batches across ranks itself; Snakemake, not Lightning, owns SLURM requeueing.
Run-directory bookkeeping happens on rank 0 only. Credentials are never read here:
W&B finds WANDB_API_KEY or ~/.netrc itself.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.plugins.environments import ClusterEnvironment, LightningEnvironment, SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only

from hpcml import __version__
from hpcml.core.atomic import atomic_path

log = logging.getLogger(__name__)
# Training keys that decide how fast, not what: never part of the resume fingerprint.
NOT_RESULT_KEYS = ("num_workers", "placement")
# Files up to this size are fingerprinted by content, larger ones by size and mtime.
_HASH_BYTES = 64 * 2**20


def build_trainer(
    run_dir: str | Path,
    training: dict[str, Any],
    wandb: dict[str, Any],
    max_epochs: int,
    seed: int,
    run_name: str,
    monitor: str = "val_loss",
    mode: str = "min",
    callbacks: Sequence[Callback] = (),
    hyperparameters: dict[str, Any] | None = None,
    data_files: Sequence[str | Path] = (),
) -> tuple[pl.Trainer, str | None]:
    """A configured trainer and the checkpoint to resume from (None for a fresh run)."""
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    fingerprint = {
        "hyperparameters": hyperparameters or {},
        "training": {k: v for k, v in training.items() if k not in NOT_RESULT_KEYS},
        "seed": seed,
        "max_epochs": max_epochs,
        "data": files_fingerprint(data_files),
        "hpcml": __version__,
    }
    if rank_zero_only.rank == 0:
        _forget_other_runs(run_dir, fingerprint)
        checkpoints.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(seed, workers=True, verbose=False)

    loggers: list[Logger] = [ResumableCSVLogger(save_dir=run_dir, name="csv", version="")]
    if wandb["mode"] != "disabled":
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(
            WandbLogger(
                project=wandb["project"],
                entity=wandb.get("entity"),
                name=run_name,
                save_dir=str(run_dir),
                offline=wandb["mode"] == "offline",
                id=_wandb_run_id(run_dir),
                resume="allow",
            )
        )
    if hyperparameters:
        for logger in loggers:
            logger.log_hyperparams(hyperparameters)

    devices = training["devices"]
    plugins = _cluster_environment(devices)
    # DDP refuses SyncBatchNorm layers on CPU ("only work with GPU modules").
    sync_batchnorm = devices > 1 and training["accelerator"] != "cpu" and torch.cuda.is_available()
    if devices > 1 and not sync_batchnorm:
        log.warning("DDP without CUDA GPUs: batch norm is not synchronised, each rank normalises its own batch")
    trainer = pl.Trainer(
        default_root_dir=run_dir,
        max_epochs=max_epochs,
        accelerator=training["accelerator"],
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        sync_batchnorm=sync_batchnorm,
        use_distributed_sampler=False,
        precision=training["precision"],
        deterministic=training["deterministic"],
        logger=loggers,
        callbacks=[
            ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=monitor, mode=mode, save_top_k=1, enable_version_counter=False),
            # Lightning's save_last copies only when the best improves; resuming needs every epoch.
            ModelCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1, every_n_epochs=1, enable_version_counter=False),
            EpochLog(),
            Divergence(),
            *callbacks,
        ],
        plugins=plugins,
        enable_progress_bar=sys.stderr.isatty(),
        log_every_n_steps=10,
        enable_model_summary=False,
    )
    last = checkpoints / "last.ckpt"
    resume = str(last) if last.exists() else None
    if resume:
        log.info("resuming from %s", resume)
    return trainer, resume


def _cluster_environment(devices: int) -> list[ClusterEnvironment]:
    """Who starts the DDP ranks. A workflow job runs under ``srun -n1`` (the SLURM plugin's
    way), one task for N GPUs: then Lightning must start the other ranks itself, which
    its own environment does; SLURM's would train one process on one GPU. A job started
    with one task per device (``srun --ntasks-per-node=N``, by hand) keeps SLURM's ranks.
    Either way Snakemake, not Lightning, requeues (auto_requeue off)."""
    if not SLURMEnvironment.detect():
        return []
    if devices > 1 and int(os.environ.get("SLURM_NTASKS", "1")) < devices:
        return [LightningEnvironment()]
    return [SLURMEnvironment(auto_requeue=False)]


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that a resumed run continues ``metrics.csv``.

    Lightning's own deletes the file when a run starts, so a job resumed from
    ``last.ckpt`` kept only the epochs after the resume, and rerunning a finished
    training (nothing left to train) left no log at all.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumedWriter(log_dir=self.log_dir)
        return self._experiment


class _ResumedWriter(ExperimentWriter):
    """Keeps the rows already in ``metrics.csv`` of the epochs before the first one this run logs.

    Rows of later epochs come from a killed job's unfinished epoch, which the resumed run
    trains (and logs) again from the checkpoint: they are dropped, so each epoch appears
    once. The merged file replaces the old one atomically before this run appends.
    """

    def __init__(self, log_dir: str) -> None:
        self._merged = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Lightning's deletes an existing metrics file here."""

    def save(self) -> None:
        if self.metrics and not self._merged:
            self._merged = True
            self._merge_earlier_rows(min((float(row["epoch"]) for row in self.metrics if "epoch" in row), default=math.inf))
        super().save()

    def _merge_earlier_rows(self, first_epoch: float) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in reader if not row.get("epoch") or float(row["epoch"]) < first_epoch]
            keys = list(reader.fieldnames or [])
        self.metrics_keys = sorted(set(keys) | set().union(*self.metrics))
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(rows)


class EpochLog(Callback):
    """One log line per epoch (SLURM log files have no progress bar); counts epochs run here."""

    epochs_run = 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs_run += 1
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("loss")}
        text = ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        log.info("epoch %d/%d: %s", trainer.current_epoch + 1, trainer.max_epochs, text)


DIVERGED = "the training diverged"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or grew by orders of magnitude: no model or score is worth writing."""


class Divergence(Callback):
    """Stop a training whose loss becomes non-finite or explodes, saying so, before it writes a score.

    Exploding: an epoch's mean training loss, or a validation loss, above EXPLOSION times
    the first epoch's training loss (at least 1 in magnitude: likelihood losses can be
    near zero or negative). The run's last.ckpt stays; changing the learning rate or the
    data changes the run's fingerprint, so the next run starts afresh.
    """

    EXPLOSION = 1e6

    def __init__(self) -> None:
        self.reference: float | None = None

    def _stop(self, trainer: pl.Trainer, what: str, value: float) -> None:
        rate = getattr(trainer.lightning_module, "hparams", {}).get("learning_rate")
        raise TrainingDiverged(
            f"the {what} became {value:.4g} in epoch {trainer.current_epoch + 1}"
            + (f" (learning rate {rate:g})" if rate is not None else "")
            + f": {DIVERGED}, so no model or score is written; lower the model's learning_rate in the config, "
            "or look for extreme values in its inputs")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss.detach()).all():
            self._stop(trainer, "training loss", float(loss.detach().float().cpu().flatten()[0]))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._check(trainer, "train_loss", "mean training loss of an epoch")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, "val_loss", "validation loss")

    def _check(self, trainer: pl.Trainer, key: str, what: str) -> None:
        value = trainer.callback_metrics.get(key)
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            self._stop(trainer, what, value)
        if key == "train_loss" and self.reference is None:
            self.reference = max(1.0, abs(value))
        elif self.reference is not None and abs(value) > self.EXPLOSION * self.reference:
            self._stop(trainer, what, value)


def epochs_run(trainer: pl.Trainer) -> int:
    """Epochs trained by this process (a resumed run does not count the earlier ones)."""
    return sum(c.epochs_run for c in trainer.callbacks if isinstance(c, EpochLog))


def files_fingerprint(paths: Sequence[str | Path]) -> dict[str, str]:
    """What identifies the data a run trains on: content hashes, or size+mtime for large files."""
    out = {}
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        if stat.st_size <= _HASH_BYTES:
            out[_short(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[_short(path)] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return out


def _short(path: Path) -> str:
    """The last two parts of a path: a results folder can move without retraining."""
    return "/".join(path.parts[-2:])


def _forget_other_runs(run_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Resume only the same run: checkpoints of other settings or data are moved aside."""
    record = run_dir / "run_settings.json"
    current = json.dumps(fingerprint, sort_keys=True, default=str)
    if record.exists() and record.read_text() != current:
        stale = run_dir / f"stale-{int(time.time())}"
        stale.mkdir(parents=True)
        for name in ("checkpoints", "wandb_run_id", "csv"):
            if (run_dir / name).exists():
                shutil.move(str(run_dir / name), stale / name)
        log.warning("settings or data changed since the last run in %s: starting fresh (old checkpoints in %s)", run_dir, stale)
    run_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(current)


def _wandb_run_id(run_dir: Path) -> str:
    """A stable id per run directory, so a resumed job continues the same W&B run."""
    id_file = run_dir / "wandb_run_id"
    if rank_zero_only.rank == 0 and not id_file.exists():
        id_file.write_text(uuid.uuid4().hex[:12])
    return id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]


def best_checkpoint(run_dir: str | Path) -> Path:
    path = Path(run_dir) / "checkpoints" / "best.ckpt"
    return path if path.exists() else Path(run_dir) / "checkpoints" / "last.ckpt"
