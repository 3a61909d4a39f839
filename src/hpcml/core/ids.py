"""Checking that combined parts hold every expected id exactly once, in order.

A combine step that wrote a data set with an item missing or repeated (a shard left
out, a folder passed twice, a shard of another run) would poison every later step
silently; the error says how many ids are wrong, shows the first few, and what to re-run.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

SHOWN = 5


class IdCheckError(RuntimeError):
    """Combined parts do not hold the expected ids."""


def check_ids(
    seen: ArrayLike,
    expected: ArrayLike | None = None,
    *,
    context: str,
    label: str = "ids",
    rerun: str = "the affected shards",
) -> None:
    """Raise :class:`IdCheckError` unless ``seen`` holds each of ``expected`` once, in its order.

    Without ``expected`` (when the full set is not known) only repeats are checked.
    ``context`` and ``label`` word the message, e.g. ``"family both"`` and ``"lens ids"``.
    """
    seen = np.asarray(seen)
    values, counts = np.unique(seen, return_counts=True)
    found = {"repeated": values[counts > 1]}
    if expected is not None:
        expected = np.asarray(expected)
        found["missing"] = np.setdiff1d(expected, values)
        found["unexpected"] = np.setdiff1d(values, expected)
    problems = [f"{ids.size} {label} {kind} (first: {ids[:SHOWN].tolist()})" for kind, ids in found.items() if ids.size]
    if problems:
        raise IdCheckError(f"{context}: " + "; ".join(problems) + f". Re-run {rerun}.")
    if expected is not None and not np.array_equal(seen, expected):
        k = int(np.flatnonzero(seen != expected)[0])
        raise IdCheckError(
            f"{context}: {label} out of order (position {k} holds {seen[k:k + 1].tolist()[0]!r}, "
            f"expected {expected[k:k + 1].tolist()[0]!r}); pass shard folders in shard order"
        )
