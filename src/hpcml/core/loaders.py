"""One DataLoader factory with defaults that survive clusters.

Past crashes came from forked workers touching CUDA and from pinning tensors that
already lived on the GPU. Here workers start with ``forkserver`` (no CUDA state is
inherited), datasets must return CPU tensors (pinning is then safe and on only when a
GPU is present), workers persist across epochs, and each worker's numpy generator is
seeded from torch's, so augmentation differs between workers yet is reproducible.
Datasets should open memory-mapped arrays lazily in the worker (see MemmapArrays) so
that nothing large is pickled to the workers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def _seed_worker(_: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


def build_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int = 0, drop_last: bool = False) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    options: dict[str, Any] = {}
    if num_workers > 0:
        options = {"multiprocessing_context": "forkserver", "persistent_workers": True, "worker_init_fn": _seed_worker, "prefetch_factor": 4}
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        generator=generator,
        **options,
    )


class MemmapArrays:
    """Named ``.npy`` files opened read-only as memory maps on first use in each process."""

    def __init__(self, paths: dict[str, str | Path]) -> None:
        self.paths = {k: str(v) for k, v in paths.items()}
        self._arrays: dict[str, np.ndarray] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if self._arrays is None:
            self._arrays = {k: np.load(v, mmap_mode="r") for k, v in self.paths.items()}
        return self._arrays[name]

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "_arrays": None}
