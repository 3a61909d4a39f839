"""Headline scores: the few numbers per model that say how a pipeline did, in one shape.

Every evaluation step lists them under ``"headline"`` in its ``metrics.json``. The run's
report (:mod:`hpcml.report`) reads only these rows, so it knows no pipeline: a new
pipeline joins the landing page and ``make demo``'s closing table by writing its rows.
``baseline`` marks the group's existing model, the one a new model has to beat.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

BETTER = ("higher", "lower")
KEY = "headline"


@dataclass(frozen=True)
class Headline:
    """One score: ``metric`` (with its unit in brackets) of ``model`` in ``pipeline``."""

    pipeline: str
    model: str
    metric: str
    value: float | None
    better: str
    baseline: bool = False

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"headline {self.pipeline}/{self.model}/{self.metric}: better must be one of {BETTER}, got {self.better!r}")
        # A score that could not be computed (no lenses left, a diverged model) is shown as missing, not as NaN.
        value = None if self.value is None or not math.isfinite(float(self.value)) else float(self.value)
        object.__setattr__(self, "value", value)


def rows(pipeline: str, scores: dict[str, dict[str, float | None]], better: dict[str, str], baselines: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The headline list for ``metrics.json``: ``scores[model][metric]``, each metric's
    direction in ``better``; models named in ``baselines`` are the group's references."""
    return [
        asdict(Headline(pipeline, model, metric, value, better[metric], model in baselines))
        for model, by_metric in scores.items()
        for metric, value in by_metric.items()
    ]


def read(metrics: dict[str, Any], source: str) -> list[Headline]:
    """The headline rows of one ``metrics.json`` (none if it has no list); a malformed row names ``source``."""
    try:
        return [Headline(**row) for row in metrics.get(KEY, [])]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: bad {KEY} row ({error}); rerun the evaluation step that wrote it") from None
