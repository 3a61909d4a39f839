"""Whole batches read from named arrays: what a DataLoader worker imports and runs.

A worker fetches one batch per request (sorted rows, one fancy-index per array) and
returns it in the arrays' stored dtype: no per-sample collation, no float conversion,
no transform on the CPU. Transforms run afterwards on the training device, on the
whole batch (see :mod:`hpcml.core.data`). This module imports numpy and torch only,
so a worker process that loads it starts in the time torch takes to import.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class ArraySet:
    """Named ``.npy`` files, memory-mapped read-only on first use in each process.

    ``names`` are ``<folder>/<name>.npy``; ``files`` adds arrays kept elsewhere, by name
    (a model reading the images rendered beside a catalogue with a dataset's labels),
    so no large file is copied or linked. Pickles as paths only, so nothing large is
    sent to DataLoader workers.
    """

    def __init__(self, folder: str | Path, names: Sequence[str], files: Mapping[str, str | Path] | None = None) -> None:
        self.paths = {n: Path(folder) / f"{n}.npy" for n in names} | {n: Path(p) for n, p in (files or {}).items()}
        self.names = tuple(self.paths)
        self._arrays: dict[str, np.ndarray] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if self._arrays is None:
            self._arrays = {n: np.load(p, mmap_mode="r") for n, p in self.paths.items()}
        return self._arrays[name]

    def __len__(self) -> int:
        return len(self[self.names[0]])

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "names": self.names, "_arrays": None}

    def nbytes(self, names: Sequence[str], n_rows: int) -> int:
        """Bytes that ``n_rows`` rows of ``names`` take in their stored dtype."""
        return sum(n_rows * self[n][:1].nbytes for n in names)


class RowBatches(Dataset):
    """Item k of the sampler is a list of positions; the item returned is that whole batch.

    Sources are either an :class:`ArraySet` with the split's ``rows`` (memory maps, read
    in workers; positions index ``rows``) or a dict of tensors holding exactly the
    split's rows, resident on the training device (indexed there, nothing copied back).
    """

    def __init__(self, source: ArraySet | dict[str, torch.Tensor], names: Sequence[str], rows: np.ndarray | None = None) -> None:
        self.source, self.names = source, tuple(names)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if isinstance(source, ArraySet) and self.rows is None:
            raise ValueError("memory-mapped sources need the split's rows")

    def __len__(self) -> int:
        if isinstance(self.source, dict):
            return len(self.source[self.names[0]])
        return len(self.rows)

    def __getitem__(self, positions: Sequence[int]) -> tuple[torch.Tensor, ...]:
        if isinstance(self.source, dict):
            take = _on_device(positions, self.source[self.names[0]].device)
            return tuple(self.source[n].index_select(0, take) for n in self.names)
        rows = np.sort(self.rows[np.asarray(positions)])
        return tuple(torch.from_numpy(np.ascontiguousarray(self.source[n][rows])) for n in self.names)


class ShuffledBatches(Sampler[list[int]]):
    """Batches of positions, reshuffled each epoch from (seed, epoch), dealt across ranks.

    With ``equal_ranks`` (training under DDP) every rank gets the same number of
    positions, so the same number of batches of the same sizes: the ``n % world_size``
    positions left over are skipped this epoch (another set next epoch). Otherwise
    (validation, prediction) every position is used once. Lightning calls ``set_epoch``.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, equal_ranks: bool = False, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.equal_ranks, self.rank, self.world_size = equal_ranks, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _positions(self) -> np.ndarray:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=generator).numpy()
        else:
            order = np.arange(self.n)
        mine = order[self.rank::self.world_size]
        return mine[: self.n // self.world_size] if self.equal_ranks else mine

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._positions()
        for a in range(0, len(mine), self.batch_size):
            yield mine[a:a + self.batch_size].tolist()

    def __len__(self) -> int:
        per_rank = self.n // self.world_size if self.equal_ranks else len(range(self.rank, self.n, self.world_size))
        return math.ceil(per_rank / self.batch_size)


def _on_device(positions: Sequence[int], device: torch.device) -> torch.Tensor:
    """Batch positions on the device without making the host wait for queued GPU work
    (a copy from pageable memory would): through pinned memory, asynchronously."""
    take = torch.as_tensor(positions, dtype=torch.long)
    if device.type != "cuda":
        return take
    return take.pin_memory().to(device, non_blocking=True)
