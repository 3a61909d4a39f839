"""One LightningDataModule for every model: named arrays, index splits, device-side transforms.

Arrays stay memory-mapped and in their stored dtype until they reach the training
device; transforms then run there on whole batches (``on_after_batch_transfer``).
When the rows a stage needs fit comfortably in the device's free memory they are
placed there once and batches are gathered on the device, so no loader process and
no host-to-device copy sits between the optimiser steps; otherwise batches stream
from the memory maps through the worker processes of :mod:`hpcml.core.loaders`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import psutil
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from hpcml.core.batches import ArraySet, RowBatches, ShuffledBatches
from hpcml.core.loaders import build_loader

log = logging.getLogger(__name__)
PLACEMENTS = ("auto", "device", "stream")
# Share of the device's free memory the resident data may take; the rest is the model's.
DEVICE_SHARE = 0.5
_GATHER_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Split:
    """Rows ``rows`` of the arrays in ``arrays``."""

    arrays: ArraySet
    rows: np.ndarray


class ArrayDataModule(pl.LightningDataModule):
    """Training and validation splits, and named prediction sets, of memory-mapped arrays.

    ``names`` are the arrays a training batch holds, in order; ``predict_names`` those of
    a prediction batch (inputs only). ``transforms`` maps an array name to a function
    applied to that element of every batch on the device.
    """

    def __init__(
        self,
        train: Split,
        val: Split,
        names: Sequence[str],
        batch_size: int,
        num_workers: int,
        seed: int,
        placement: str = "auto",
        transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        predict: Mapping[str, Split] | None = None,
        predict_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        self.splits = {"train": train, "val": val}
        self.names, self.predict_names = tuple(names), tuple(predict_names or names)
        self.batch_size, self.num_workers, self.seed, self.placement = batch_size, num_workers, seed, placement
        self.transforms = dict(transforms or {})
        self.predict_sets = dict(predict or {})
        self.placed: dict[str, str] = {}
        self._datasets: dict[str, RowBatches] = {}

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._place({k: self.splits[k] for k in ("train", "val")}, self.names)
        elif stage == "predict":
            self._place(self.predict_sets, self.predict_names)

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _place(self, splits: Mapping[str, Split], names: Sequence[str]) -> None:
        device = self._device()
        needed = sum(s.arrays.nbytes(names, len(s.rows)) for s in splits.values())
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
        resident = self.placement == "device" or (self.placement == "auto" and needed <= DEVICE_SHARE * free)
        for key, split in splits.items():
            if resident:
                tensors = {n: _gather(split.arrays, n, split.rows, device) for n in names}
                self._datasets[key] = RowBatches(tensors, names)
            else:
                self._datasets[key] = RowBatches(split.arrays, names, split.rows)
            self.placed[key] = f"resident on {device}" if resident else f"streamed by {self.num_workers} workers"
        where = f"placed on {device} once" if resident else f"streamed from memory maps ({self.num_workers} workers)"
        log.info("%s: %.2f GB %s (%.1f GB free there)", "+".join(splits), needed / 1e9, where, free / 1e9)

    def _loader(self, key: str, shuffle: bool, equal_ranks: bool) -> DataLoader:
        dataset = self._datasets[key]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        sampler = ShuffledBatches(len(dataset), self.batch_size, shuffle, self.seed, equal_ranks, rank, world)
        return build_loader(dataset, sampler, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, equal_ranks=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, equal_ranks=False)

    def predict_dataloader(self) -> list[DataLoader]:
        # Every rank predicts every row (no rank split): rank 0 alone writes the results.
        return [build_loader(self._datasets[k], ShuffledBatches(len(self._datasets[k]), self.batch_size, False), self.num_workers) for k in self.predict_sets]

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, ...], dataloader_idx: int) -> tuple[torch.Tensor, ...]:
        names = self.predict_names if self.trainer is not None and self.trainer.predicting else self.names
        return tuple(self.transforms[n](t) if n in self.transforms else t for n, t in zip(names, batch))


def _gather(arrays: ArraySet, name: str, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows of one array copied to ``device`` slice by slice, bounding the host memory the copy takes."""
    source = arrays[name]
    out = torch.empty((len(rows), *source.shape[1:]), dtype=torch.from_numpy(np.zeros(0, source.dtype)).dtype, device=device)
    step = max(1, _GATHER_BYTES // max(1, source[:1].nbytes))
    for a in range(0, len(rows), step):
        out[a:a + step] = torch.from_numpy(np.ascontiguousarray(source[rows[a:a + step]]))
    return out
