"""An ingested Ariel data set: memory-mapped arrays, metadata, planet splits.

Shared by the preparation, training and evaluation steps (and light: numpy and pandas),
so evaluation does not depend on training code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.batches import ArraySet
from hpcml.core.splits import split_indices

ARRAYS = ("X", "stellar", "targets")


class ArielData:
    """The ingested arrays of one data set (memory-mapped) and its metadata table."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.meta = pd.read_parquet(self.folder / "meta.parquet")
        self.arrays = ArraySet(self.folder, ARRAYS)

    def __len__(self) -> int:
        return len(self.meta)

    def files(self) -> list[Path]:
        return [self.folder / "meta.parquet", *(self.folder / f"{n}.npy" for n in ARRAYS)]


def load_splits(train: ArielData, folds_path: str | Path, splits: dict[str, Any]) -> dict[str, np.ndarray]:
    """Sample indices of train, val and holdout; every planet in exactly one (asserted)."""
    return split_indices(train.meta.planet.to_numpy(), pd.read_parquet(folds_path), splits["test_fold"], splits["val_fold"])
