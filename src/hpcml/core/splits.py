"""Folds grouped by an id (planet, node, lens): every item of a group lands in one fold.

Decided once from (seed, group id), saved as a table by the pipeline, and asserted
disjoint wherever used, so no group can leak between training, validation and the
held-out fold (shuffling before splitting, the classic leak, is impossible here).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hpcml.core.config import MIN_TRAIN_GROUPS, fold_sizes, min_groups
from hpcml.core.randomness import uniforms

SPLITS = ("train", "val", "holdout")


class LeakageError(AssertionError):
    """A group appears in more than one fold or split."""


def make_folds(groups: np.ndarray, n_folds: int, seed: int, what: str = "group", key: str = "n_folds") -> pd.DataFrame:
    """One row per distinct group with its fold; ``what``/``key`` name them in errors.

    Refuses too few groups before any training: every fold needs one, and whichever two
    folds are held out (for testing and validation) :data:`~hpcml.core.config.MIN_TRAIN_GROUPS`
    must remain to train on; with one, every fitted spread is zero (a planet's noise
    instances share its targets) and all that is trained on it is garbage.
    """
    unique = np.unique(groups)
    n, needed = len(unique), min_groups(n_folds)
    if n < n_folds:
        raise ValueError(f"{n} {what}s cannot fill {n_folds} folds: at least {needed} are needed with {n_folds} folds; add {what}s, or change {key}")
    left = n - sum(fold_sizes(n, n_folds)[:2])
    if left < MIN_TRAIN_GROUPS:
        raise ValueError(
            f"{n} {what}s in {n_folds} folds leave {left} for training when the two largest folds are held out "
            f"(for testing and validation); at least {needed} {what}s are needed with {n_folds} folds: add {what}s, or change {key}"
        )
    order = np.argsort(uniforms(seed, unique, 7))
    fold = np.empty(len(unique), dtype=np.int64)
    fold[order] = np.arange(len(unique)) % n_folds
    return pd.DataFrame({"group": unique, "fold": fold})


def check_disjoint(folds: pd.DataFrame) -> None:
    repeated = folds.group[folds.group.duplicated()]
    if len(repeated):
        raise LeakageError(f"group {repeated.iloc[0]} is assigned to more than one fold")


def split_indices(groups: np.ndarray, folds: pd.DataFrame, test_fold: int, val_fold: int) -> dict[str, np.ndarray]:
    """Item indices of the train, val and holdout (test fold) splits; groups never shared."""
    check_disjoint(folds)
    n_folds = int(folds.fold.max()) + 1
    if test_fold == val_fold or max(test_fold, val_fold) >= n_folds:
        raise ValueError(f"test_fold ({test_fold}) and val_fold ({val_fold}) must differ and be < n_folds ({n_folds})")
    fold_of = pd.Series(folds.fold.to_numpy(), index=folds.group.to_numpy())
    item_fold = fold_of.reindex(groups).to_numpy()
    if np.isnan(item_fold.astype(float)).any():
        raise LeakageError("some items' groups have no fold; re-run the split step after ingest")
    out = {
        "holdout": np.flatnonzero(item_fold == test_fold),
        "val": np.flatnonzero(item_fold == val_fold),
        "train": np.flatnonzero((item_fold != test_fold) & (item_fold != val_fold)),
    }
    assert_no_leak(groups, out)
    return out


def assert_no_leak(groups: np.ndarray, splits: dict[str, np.ndarray]) -> None:
    """Raise :class:`LeakageError` if any group has items in two splits."""
    seen: dict[object, str] = {}
    for name, index in splits.items():
        for group in np.unique(groups[index]).tolist():
            if seen.setdefault(group, name) != name:
                raise LeakageError(f"group {group} is in both {seen[group]} and {name}")
