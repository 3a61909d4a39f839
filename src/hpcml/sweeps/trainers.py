"""The training rules a sweep can drive: their pipeline, models, keys and objective.

Light on purpose (the Snakefile imports it): what a trial may override is exactly what
the rule's step reads (its READS), so a sweep over a key the step ignores is refused
before any job starts instead of producing identical trials.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hpcml.ariel import cli as ariel_cli
from hpcml.lensing import cli as lensing_cli
from hpcml.sage import cli as sage_cli


@dataclass(frozen=True)
class Trainer:
    pipeline: str
    models: tuple[str, ...] | None
    reads: Callable[[str], tuple[str, ...]]
    objective: str
    goal: str


TRAINERS = {
    "ariel_train_neural": Trainer("ariel", ariel_cli.NEURAL, ariel_cli.train_reads, "val_score", "maximize"),
    "ariel_train_gbt": Trainer("ariel", ("gbt",), ariel_cli.train_reads, "val_score", "maximize"),
    "lensing_train": Trainer("lensing", None, lensing_cli.train_reads, "val_nrmse", "minimize"),
    "sage_train": Trainer("sage", ("vicreg",), lambda model: sage_cli.READS["train"], "val_vicreg_loss", "minimize"),
}
