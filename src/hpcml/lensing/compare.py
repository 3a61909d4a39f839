"""Whether a model's errors are lower than the reference's beyond what the test set resolves.

Both models predict the same held-out lenses, so their squared errors are compared lens by
lens (a paired comparison): the mean difference is the difference of the MSEs, and its
standard error says whether the test set can tell the two apart. Where the observables
carry little information (the shear of a one-image system: only a weak alignment of the
shear with the image's direction), two good models differ by less than that error, and a
bare ranking of RMSEs flips from one simulation seed to the next; the verdict then reads
"tie" instead of naming a winner by chance.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# |mean difference| / standard error beyond which one model is called better (about 95% two-sided).
Z_DECISIVE = 2.0


def versus(pred: np.ndarray, rows: np.ndarray, reference: np.ndarray, reference_rows: np.ndarray, truth: np.ndarray,
           n_images: np.ndarray, targets: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per image count and target: both RMSEs, the paired MSE difference (model - reference),
    its standard error and the verdict ("lower", "tie" or "higher") over the lenses both
    models predicted. ``pred``/``reference`` are [rows, targets, (mean, std)]; ``truth`` and
    ``n_images`` are indexed by row."""
    common, mine, theirs = np.intersect1d(rows, reference_rows, return_indices=True)
    counts = np.asarray(n_images)[common]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for count in np.unique(counts):
        sel = counts == count
        lenses = common[sel]
        per_target = {}
        for k, name in enumerate(targets):
            true = np.asarray(truth[lenses, k], dtype=np.float64)
            own = (pred[mine[sel], k, 0] - true) ** 2
            ref = (reference[theirs[sel], k, 0] - true) ** 2
            diff = own - ref
            error = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
            z = diff.mean() / error if error > 0 else 0.0
            per_target[name] = {
                "rmse": float(np.sqrt(own.mean())), "rmse_reference": float(np.sqrt(ref.mean())),
                "mse_difference": float(diff.mean()), "standard_error": error,
                "verdict": "lower" if z < -Z_DECISIVE else "higher" if z > Z_DECISIVE else "tie",
            }
        out[str(int(count))] = per_target
    return out


def tally(comparison: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Per image count, how many targets came out lower, tied and higher."""
    return {count: {v: sum(t["verdict"] == v for t in per.values()) for v in ("lower", "tie", "higher")}
            for count, per in comparison.items()}
