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
