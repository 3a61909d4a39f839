"""Shard planning: N items and a shard size give contiguous global index ranges.

Every pipeline shards the same way so that the Snakefile, the SLURM array and the
combine step agree on which items a shard holds, and so that an item's global index
(never its position inside a shard) decides its randomness.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return shard_name(self.index)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def plan_shards(n_items: int, shard_size: int) -> list[Shard]:
    """Split ``range(n_items)`` into consecutive shards of at most ``shard_size`` items."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [
        Shard(k, start, min(start + shard_size, n_items))
        for k, start in enumerate(range(0, n_items, shard_size))
    ]


def chunk_ranges(start: int, stop: int, chunk_size: int) -> list[tuple[int, int]]:
    """Sub-ranges a shard writes one at a time, so a killed shard resumes from the last."""
    return [(a, min(a + chunk_size, stop)) for a in range(start, stop, chunk_size)]


def size_for_wall_limit(rate: float, wall_limit_minutes: float, fraction: float = 0.25) -> int:
    """Items per shard so that, at ``rate`` items per second, a shard takes at most
    ``fraction`` of the wall limit: a slow node, a retry or a resume still fits."""
    if rate <= 0 or wall_limit_minutes <= 0:
        raise ValueError(f"rate ({rate}/s) and wall limit ({wall_limit_minutes} min) must be positive")
    return max(1, int(rate * wall_limit_minutes * 60 * fraction))


def slurm_minutes(text: str) -> float:
    """SLURM's time format (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in minutes."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED"):
        raise ValueError("the partition has no time limit; give --wall-limit MINUTES")
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return float(days or 0) * 1440 + hours * 60 + minutes + seconds / 60
