"""One ``summary.json`` layout for every trained model, neural or not.

Sweeps, reports and the benchmarks read these without importing torch: the objective
and its direction say what "better" means; the timing fields say how the run used its
hardware (start-to-first-step, steady-state samples/s, peak memory).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpcml.core.atomic import write_json

DIRECTIONS = ("minimize", "maximize")
# Every summary has these keys; fields a model cannot fill (trees have no first step) are null.
FIELDS = (
    "model", "objective", "direction", "value", "epochs", "epochs_this_run", "train_seconds",
    "start_to_first_step_s", "steady_samples_per_s", "peak_memory_mb", "device", "placement", "n_train", "details",
)


def write_summary(path: str | Path, model: str, objective: str, direction: str, value: float, run: dict[str, Any], details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the summary of one trained model; ``run`` holds the timing fields (see FIELDS)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    summary = {k: run.get(k) for k in FIELDS}
    summary.update(model=model, objective=objective, direction=direction, value=float(value), details=details or {})
    write_json(path, summary)
    return summary


def read_summary(path: str | Path) -> dict[str, Any]:
    summary = json.loads(Path(path).read_text())
    missing = [k for k in FIELDS if k not in summary]
    if missing:
        raise ValueError(f"{path}: not a model summary (missing {missing}); re-run the training rule")
    return summary
