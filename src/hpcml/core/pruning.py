"""Stopping a sweep trial that the sweep's pruner rejects, from inside the training step.

A bayes sweep worker runs each trial as a separate training process. It names the trial
in the ``HPCML_SWEEP_TRIAL`` environment variable (journal file, study, trial id, pruner),
so the step reports its monitored validation value to the shared Optuna study after each
epoch and stops early when the pruner says so. The value is reported in the study's
direction (negated when the step minimises a loss but the sweep maximises a score), so
the pruner compares learning curves the way the sweep ranks trials.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

ENV = "HPCML_SWEEP_TRIAL"
PRUNED_FILE = "pruned.json"


def trial_environment(journal: str | Path, study: str, trial_id: int, direction: str, pruner: dict[str, Any], out: str | Path) -> dict[str, str]:
    """The variable a worker sets for a trial's training process."""
    spec = {"journal": str(journal), "study": study, "trial_id": trial_id, "direction": direction, "pruner": pruner, "marker": str(Path(out) / PRUNED_FILE)}
    return {ENV: json.dumps(spec)}


def from_environment(monitor: str, mode: str) -> list[Callback]:
    """The pruning callback when this process runs a sweep trial with a pruner, else nothing."""
    text = os.environ.get(ENV)
    if not text:
        return []
    spec = json.loads(text)
    return [TrialPruning(spec, monitor, mode)] if spec.get("pruner") else []


class TrialPruning(Callback):
    def __init__(self, spec: dict[str, Any], monitor: str, mode: str) -> None:
        self.spec = spec
        self.monitor = monitor
        self.sign = 1.0 if (mode == "min") == (spec["direction"] == "minimize") else -1.0
        self._trial = None

    def _open(self) -> Any:
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        journal = self.spec["journal"]
        storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))
        study = optuna.load_study(study_name=self.spec["study"], storage=storage, pruner=optuna.pruners.HyperbandPruner(**self.spec["pruner"]))
        return optuna.trial.Trial(study, self.spec["trial_id"])

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.is_global_zero and value is not None:
            self._trial = self._trial or self._open()
            epoch = trainer.current_epoch + 1
            self._trial.report(self.sign * float(value), step=epoch)
            prune = self._trial.should_prune()
            if prune:
                Path(self.spec["marker"]).write_text(json.dumps({"epoch": epoch, self.monitor: float(value)}))
        if trainer.strategy.broadcast(prune, 0):
            trainer.should_stop = True
