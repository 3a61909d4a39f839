"""Folds grouped by planet: every noise instance of a planet lands in the same fold.

Decided once from (seed, planet id), saved, and asserted disjoint wherever used.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.randomness import uniforms


class LeakageError(AssertionError):
    """A planet appears in more than one fold or split."""


def make_folds(planets: np.ndarray, n_folds: int, seed: int) -> pd.DataFrame:
    unique = np.unique(planets)
    if len(unique) < n_folds:
        raise ValueError(f"{len(unique)} planets cannot fill {n_folds} folds (lower ariel.splits.n_folds)")
    order = np.argsort(uniforms(seed, unique, 7))
    fold = np.empty(len(unique), dtype=np.int64)
    fold[order] = np.arange(len(unique)) % n_folds
    return pd.DataFrame({"planet": unique, "fold": fold})


def check_disjoint(folds: pd.DataFrame) -> None:
    repeated = folds.planet[folds.planet.duplicated()]
    if len(repeated):
        raise LeakageError(f"planet {repeated.iloc[0]} is assigned to more than one fold")


def split_indices(planets: np.ndarray, folds: pd.DataFrame, settings: dict[str, Any]) -> dict[str, np.ndarray]:
    """Sample indices of the train, val and holdout (test fold) splits; planets never shared."""
    check_disjoint(folds)
    test_fold, val_fold = settings["test_fold"], settings["val_fold"]
    n_folds = folds.fold.max() + 1
    if test_fold == val_fold or max(test_fold, val_fold) >= n_folds:
        raise ValueError(f"ariel.splits: test_fold ({test_fold}) and val_fold ({val_fold}) must differ and be < n_folds ({n_folds})")
    fold_of = pd.Series(folds.fold.to_numpy(), index=folds.planet.to_numpy())
    sample_fold = fold_of.reindex(planets).to_numpy()
    if np.isnan(sample_fold.astype(float)).any():
        raise LeakageError("some planets have no fold; re-run the split step after ingest")
    out = {
        "holdout": np.flatnonzero(sample_fold == test_fold),
        "val": np.flatnonzero(sample_fold == val_fold),
        "train": np.flatnonzero((sample_fold != test_fold) & (sample_fold != val_fold)),
    }
    seen: dict[int, str] = {}
    for name, index in out.items():
        for planet in np.unique(planets[index]):
            if seen.setdefault(int(planet), name) != name:
                raise LeakageError(f"planet {planet} is in both {seen[int(planet)]} and {name}")
    return out
