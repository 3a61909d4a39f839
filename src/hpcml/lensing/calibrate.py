"""Shard sizes from a measured simulation rate and the partition's wall-time limit.

A shard that outlives the limit is killed and resumed, again and again; one that is too
small floods the queue. Measuring the real work (every family, rendering included, on one
core as a shard runs) on a sample of lenses gives lenses per second; a shard then holds
what one core does in a quarter of the limit, and a chunk what it does in a few minutes
(what a kill can lose). The overlay it writes also sets ``lensing.shard_minutes``, from
which the workflow asks SLURM for twice the expected time per shard.
"""
from __future__ import annotations

import logging
import math
import subprocess
import time
from pathlib import Path
from typing import Any

from hpcml.core.shards import size_for_wall_limit, slurm_minutes
from hpcml.lensing.simulate import LensInputs, simulate_family

log = logging.getLogger(__name__)
CHUNK_MINUTES = 5.0


def measure_rate(settings: dict[str, Any], seed: int, n_lenses: int) -> float:
    """Lenses per second on one core through the shard's own code (all families)."""
    from threadpoolctl import threadpool_limits

    inputs = LensInputs(settings, seed)
    n_lenses = min(n_lenses, inputs.n_lenses)
    with threadpool_limits(1):
        warm = inputs.draws(0, min(20, n_lenses))
        for family in settings["families"]:
            simulate_family(warm, family, inputs)
        tic = time.perf_counter()
        draws = inputs.draws(0, n_lenses)
        for family in settings["families"]:
            simulate_family(draws, family, inputs)
        return n_lenses / (time.perf_counter() - tic)


def partition_limit(partition: str) -> float:
    """The partition's time limit in minutes, from ``sinfo``."""
    try:
        out = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%l"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise RuntimeError(f"cannot ask SLURM for partition {partition!r}'s time limit ({error}); give --wall-limit MINUTES") from None
    limits = {line.strip() for line in out.splitlines() if line.strip()}
    if not limits:
        raise ValueError(f"SLURM knows no partition {partition!r} (sinfo -p {partition}); give --wall-limit MINUTES")
    return min(slurm_minutes(t) for t in limits)


def plan(rate: float, wall_limit_minutes: float, n_lenses: int) -> dict[str, Any]:
    """Shard and chunk sizes, and the expected minutes per shard."""
    shard = min(size_for_wall_limit(rate, wall_limit_minutes), n_lenses)
    chunk = max(1, min(shard, int(rate * CHUNK_MINUTES * 60)))
    return {
        "rate_lenses_per_s": round(rate, 2),
        "wall_limit_minutes": wall_limit_minutes,
        "shard_size": shard,
        "chunk_size": chunk,
        "shard_minutes": max(0.01, round(shard / rate / 60, 2)),
        "shards": math.ceil(n_lenses / shard),
    }


def overlay(result: dict[str, Any]) -> dict[str, Any]:
    """The config overlay to pass with --configfile."""
    return {"lensing": {k: result[k] for k in ("shard_size", "chunk_size", "shard_minutes")}}


def calibrate(settings: dict[str, Any], seed: int, wall_limit_minutes: float, sample: int, out: Path | None) -> dict[str, Any]:
    rate = measure_rate(settings, seed, sample)
    result = plan(rate, wall_limit_minutes, LensInputs(settings, seed).n_lenses)
    log.info("%.1f lenses/s per core: %d shards of %d lenses, about %.1f min each (limit %g min)",
             rate, result["shards"], result["shard_size"], result["shard_minutes"], wall_limit_minutes)
    if out is not None:
        import yaml

        from hpcml.core.atomic import write_text

        write_text(out, "# From `hpcml lensing calibrate`; pass with --configfile.\n" + yaml.safe_dump(overlay(result), sort_keys=False))
    return result
