"""What the Snakefile needs to plan lensing jobs, without the simulation's dependencies.

Every SLURM job re-parses the Snakefile; importing the simulator there would load
astropy and the solver each time. Only the table case reads the user's table (pandas),
and only when it is used.
"""
from __future__ import annotations

from typing import Any


def table_path(settings: dict[str, Any]) -> str:
    """The user's lens table, with the config key named when it is missing."""
    if not settings.get("table"):
        raise ValueError("lensing.source is 'table' but lensing.table is not set")
    return settings["table"]


def count_lenses(settings: dict[str, Any]) -> int:
    """Lenses per family, known before any job runs (the Snakefile plans shards from it)."""
    if settings["source"] == "table":
        from hpcml.lensing.table import read_lens_table

        return len(read_lens_table(table_path(settings)))
    return settings["n_lenses"]


def shard_files(shard_dir: str, families: list[str], names: list[str]) -> list[str]:
    """A shard's output files: one folder per family holding ``names``."""
    return [f"{shard_dir}/{family}/{name}" for family in families for name in names]
