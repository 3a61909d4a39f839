"""One DataLoader factory with defaults that survive clusters and start in seconds.

Past crashes came from forked workers touching CUDA and from pinning tensors that
already lived on the GPU; past slowness from every ``forkserver`` worker paying a full
interpreter start and re-importing the whole training stack (8 workers: ~2 minutes
before the first batch). Here workers come from a forkserver that has already imported
:mod:`hpcml.core.batches` (numpy + torch, no CUDA state), so each worker is a fork of
a warm process; workers persist across epochs; pinning is on only for host arrays when
a GPU is present; each worker's numpy generator is seeded from torch's.
"""
from __future__ import annotations

import functools
import multiprocessing
from multiprocessing.context import BaseContext
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from hpcml.core.batches import RowBatches, ShuffledBatches

WORKER_PRELOAD = ["hpcml.core.batches"]


def _seed_worker(_: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)


@functools.cache
def worker_context() -> BaseContext:
    """The forkserver context, its server preloading the worker-side modules (set once)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def build_loader(dataset: RowBatches, sampler: ShuffledBatches, num_workers: int) -> DataLoader:
    """A loader whose items are whole batches (``dataset[list of positions]``)."""
    resident = isinstance(dataset.source, dict)
    options: dict[str, Any] = {}
    if num_workers > 0 and not resident:
        options = {"multiprocessing_context": worker_context(), "persistent_workers": True, "worker_init_fn": _seed_worker, "prefetch_factor": 4}
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=0 if resident else num_workers,
        pin_memory=torch.cuda.is_available() and not resident,
        **options,
    )
