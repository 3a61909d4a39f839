"""The preprocessed SAGE arrays, their (node, local day) folds and the data module that feeds training.

``rgb.npy`` (uint8, N x C x H x W, C = 3 or 1) and ``thermal.npy`` (float16, N x 1 x H x W,
degrees Celsius) stay memory-mapped in their stored dtype; they become floats only on the
training device, where RGB is divided by 255 and thermal standardised with a mean and
standard deviation fitted on the training split alone (saved with the model).

Folds group captures by node and local solar day: consecutive captures of one camera
are nearly identical, so a random split would put near-copies on both sides. The day is
the node's solar day (UTC shifted by longitude / 15 hours), so one night-time sequence
is not cut at the UTC date line in the middle of an American afternoon.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hpcml.core.atomic import write_parquet
from hpcml.core.batches import ArraySet
from hpcml.core.data import ArrayDataModule, Split
from hpcml.core.splits import make_folds, split_indices

log = logging.getLogger(__name__)
ARRAYS = ("rgb", "thermal")
INDEX = "index.parquet"
_DAY_NS = 86_400 * 10**9
# Rows read at a time when fitting the thermal statistics (bounded host memory).
_FIT_ROWS = 4096


class SageData:
    """One arrays folder: ``rgb.npy``, ``thermal.npy`` (memory-mapped) and ``index.parquet``, checked to agree."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / INDEX).exists():
            raise FileNotFoundError(f"{self.folder / INDEX} not found: point --data at the folder 'hpcml sage combine' wrote")
        self.index = pd.read_parquet(self.folder / INDEX)
        self.arrays = ArraySet(self.folder, ARRAYS)
        self._check()

    def _check(self) -> None:
        rgb, thermal = self.arrays["rgb"], self.arrays["thermal"]
        problems = []
        if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[1] not in (1, 3):
            problems.append(f"rgb.npy is {rgb.dtype} {rgb.shape}, expected uint8 (N, 3 or 1, H, W)")
        if thermal.dtype != np.float16 or thermal.ndim != 4 or thermal.shape[1] != 1:
            problems.append(f"thermal.npy is {thermal.dtype} {thermal.shape}, expected float16 (N, 1, H, W)")
        if not len(rgb) == len(thermal) == len(self.index):
            problems.append(f"row counts differ: rgb {len(rgb)}, thermal {len(thermal)}, index {len(self.index)}")
        if problems:
            raise ValueError(f"{self.folder}: " + "; ".join(problems) + "; re-run 'hpcml sage preprocess' and 'combine'")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def rgb_channels(self) -> int:
        return int(self.arrays["rgb"].shape[1])

    def files(self) -> list[Path]:
        return [self.folder / INDEX, *self.arrays.paths.values()]


def local_day(index: pd.DataFrame) -> np.ndarray:
    """Days since 1970 in each capture's local solar time (UTC + longitude / 15 hours)."""
    shift_ns = (index.longitude.to_numpy(dtype=np.float64) / 360.0 * _DAY_NS).astype(np.int64)
    return (index.timestamp_ns.to_numpy(dtype=np.int64) + shift_ns) // _DAY_NS


def day_groups(index: pd.DataFrame) -> np.ndarray:
    """A stable integer id per (node, local solar day) of every capture.

    The id hashes the text ``<node>/<day number>``, so it does not depend on which other
    nodes or days are in the data set (make_folds needs integer ids).
    """
    keys = index.node.astype(str).to_numpy() + "/" + local_day(index).astype(str)
    unique, inverse = np.unique(keys, return_inverse=True)
    ids = np.array([int.from_bytes(hashlib.blake2b(k.encode(), digest_size=7).digest(), "big") for k in unique], dtype=np.int64)
    return ids[inverse]


def write_folds(data: Path, out: Path, splits: dict[str, Any], seed: int) -> pd.DataFrame:
    """Assign every (node, local day) group to one of ``splits['n_folds']`` folds and save the table (Parquet).

    Columns: ``group`` (the id of :func:`day_groups`), ``fold``, and for reading by eye
    ``node``, ``day`` (days since 1970 in local solar time) and ``captures``.
    """
    index = pd.read_parquet(Path(data) / INDEX, columns=["node", "timestamp_ns", "longitude"])
    groups = day_groups(index)
    folds = make_folds(groups, splits["n_folds"], seed, what="(node, day) group", key="sage.splits.n_folds")
    described = pd.DataFrame({"group": groups, "node": index.node.astype(str), "day": local_day(index)})
    described = described.groupby("group").agg(node=("node", "first"), day=("day", "first"), captures=("node", "size")).reset_index()
    folds = folds.merge(described, on="group", how="left")
    write_parquet(out, folds)
    log.info("%d (node, day) groups of %d captures in %d folds", len(folds), len(index), splits["n_folds"])
    return folds


def load_splits(data: SageData, folds: str | Path, splits: dict[str, Any]) -> dict[str, np.ndarray]:
    """Rows of the train, val and test splits; no (node, day) group in two of them (asserted)."""
    parts = split_indices(day_groups(data.index), pd.read_parquet(folds), splits["test_fold"], splits["val_fold"])
    return {"train": parts["train"], "val": parts["val"], "test": parts["holdout"]}


@dataclass(frozen=True)
class Standardise:
    """``(x - mean) / std`` in float32 on whatever device ``x`` lives: applied to whole batches after transfer."""

    mean: float
    std: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


RGB_SCALE = Standardise(0.0, 255.0)


def fit_thermal(data: SageData, rows: np.ndarray) -> Standardise:
    """Mean and standard deviation of the thermal pixels (degrees Celsius) of ``rows``, read in
    bounded chunks and accumulated in float64."""
    thermal = data.arrays["thermal"]
    rows = np.sort(np.asarray(rows))
    total = total_sq = count = 0.0
    for a in range(0, len(rows), _FIT_ROWS):
        chunk = np.asarray(thermal[rows[a:a + _FIT_ROWS]], dtype=np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError(f"{data.folder / 'thermal.npy'} holds NaN or infinite temperatures; fix the CSVs or drop those pairs and re-run preprocessing")
        total += chunk.sum()
        total_sq += np.square(chunk).sum()
        count += chunk.size
    if count == 0:
        raise ValueError("no training captures to fit the thermal statistics on: the training split is empty")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean**2, 0.0)))
    return Standardise(float(mean), std if std > 1e-6 else 1.0)


def build_data_module(data: SageData, splits: dict[str, np.ndarray], thermal: Standardise, batch_size: int, training: dict[str, Any], seed: int) -> ArrayDataModule:
    """Training and validation batches of (rgb, thermal), floats and normalised on the device."""
    return ArrayDataModule(
        Split(data.arrays, splits["train"]), Split(data.arrays, splits["val"]), ARRAYS,
        batch_size, training["num_workers"], seed, training["placement"],
        transforms={"rgb": RGB_SCALE, "thermal": thermal},
    )
