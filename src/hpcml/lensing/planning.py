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


def problems(config: dict[str, Any]) -> list[str]:
    """Lensing settings that contradict each other (hpcml.checks runs this before planning)."""
    lensing = config["lensing"]
    if not lensing["enabled"]:
        return []
    low, high = lensing["models"]["h0"]["range"]
    found = [] if low < high or not lensing["models"]["enabled"] else [f"lensing.models.h0.range = [{low}, {high}]: the lower bound must be below the upper"]
    if lensing["source"] == "table":
        return found + ([] if lensing["table"] else ["lensing.source is 'table' but lensing.table is not set: give the CSV or Parquet file, or set lensing.source: priors"])
    return found + prior_problems(lensing["priors"])


def prior_problems(priors: dict[str, Any]) -> list[str]:
    """What in ``lensing.priors`` cannot produce a valid lens (simulation checks it too, for runs by hand)."""
    problems = []
    for low in (k for k in priors if k.endswith("_low")):
        high = low[:-4] + "_high"
        if high in priors and priors[low] > priors[high]:
            problems.append(f"lensing.priors.{low} = {priors[low]} is above lensing.priors.{high} = {priors[high]}: the range U(low, high) is empty")
    if priors["z_src_low"] <= priors["z_lens_high"]:
        problems.append(
            f"lensing.priors.z_src_low = {priors['z_src_low']} must exceed lensing.priors.z_lens_high = {priors['z_lens_high']}: "
            "every source must lie behind its lens, whatever the two draws"
        )
    return problems
