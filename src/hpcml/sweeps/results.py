"""One table for a sweep (trials x parameters x metric), the importance of each parameter,
a parallel-coordinates plot, and the best configuration as a config overlay."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.atomic import write_json, write_parquet
from hpcml.core.config import validate
from hpcml.sweeps.definition import Sweep, dump_overlay, plain, with_values

log = logging.getLogger(__name__)


def table(sweep: Sweep, folder: Path) -> pd.DataFrame:
    """Finished trials: one row each with its folder, parameters (dotted keys) and metric."""
    rows = []
    if sweep.method == "bayes":
        from optuna.trial import TrialState

        from hpcml.sweeps.study import open_study

        for trial in open_study(sweep, folder).get_trials(states=(TrialState.COMPLETE,)):
            rows.append({"trial": trial.user_attrs.get("folder", str(trial.number)), "number": trial.number, **trial.params, sweep.metric: trial.value})
    else:
        for name, params in sweep.trials().items():
            summary = json.loads((folder / "trials" / name / "summary.json").read_text())
            rows.append({"trial": name, **params, sweep.metric: summary[sweep.summary_field]})
    return pd.DataFrame(rows)


def importance(sweep: Sweep, results: pd.DataFrame) -> dict[str, float | None]:
    """Optuna's fANOVA importance of each parameter for the metric (all methods alike)."""
    import optuna

    from hpcml.sweeps.study import distributions

    keys = list(sweep.parameters)
    if len(results) < 3 or results[sweep.metric].nunique() < 2:
        return {k: None for k in keys}
    if len(keys) == 1:
        return {keys[0]: 1.0}
    study = optuna.create_study(direction=sweep.goal)
    dists = distributions(sweep)
    study.add_trials([
        optuna.trial.create_trial(params={k: _native(row[k], dists[k]) for k in keys}, distributions=dists, value=float(row[sweep.metric]))
        for _, row in results.iterrows()
    ])
    return {k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)).items()}


def _native(value: Any, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return next(c for c in dist.choices if c == value)
    return plain(value)


def write_results(sweep: Sweep, folder: str | Path, workflow_config: dict[str, Any]) -> dict[str, Any]:
    folder = Path(folder)
    results = table(sweep, folder)
    if results.empty:
        raise RuntimeError(f"sweep {sweep.name}: no finished trial in {folder}; see the trial logs under {folder / 'trials'}")
    best_row = results.sort_values(sweep.metric, ascending=sweep.goal == "minimize").iloc[0]
    best = {k: plain(best_row[k]) for k in sweep.parameters}
    validate(with_values(workflow_config, best))
    write_parquet(folder / "results.parquet", results)
    dump_overlay(folder / "best.yaml", best)
    summary = {
        "sweep": sweep.name, "rule": sweep.rule, "model": sweep.model, "method": sweep.method,
        "metric": sweep.metric, "goal": sweep.goal, "trials": int(len(results)),
        "best": {"trial": str(best_row["trial"]), sweep.metric: float(best_row[sweep.metric]), "parameters": best},
        "importance": importance(sweep, results),
    }
    write_json(folder / "summary.json", summary)
    _parallel_coordinates(sweep, results, folder / "parallel_coordinates.png")
    log.info("sweep %s: %d trials, best %s = %.6g with %s", sweep.name, len(results), sweep.metric, best_row[sweep.metric], best)
    return summary


def _parallel_coordinates(sweep: Sweep, results: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hpcml.core.figures import save_figure

    columns = [*sweep.parameters, sweep.metric]
    scaled = []
    labels = []
    for column in columns:
        values = results[column]
        if pd.api.types.is_numeric_dtype(values):
            numeric = values.astype(float)
            spec = sweep.parameters.get(column, {})
            if spec.get("distribution") == "log_uniform_values" or (numeric.gt(0).all() and numeric.max() / numeric.min() > 100):
                numeric = np.log10(numeric)
            low, high = numeric.min(), numeric.max()
            scaled.append((numeric - low) / (high - low) if high > low else numeric * 0 + 0.5)
        else:
            codes = values.astype("category").cat.codes.astype(float)
            scaled.append(codes / max(codes.max(), 1))
        labels.append(column.split(".")[-1] if column in sweep.parameters else column)
    frame = np.column_stack(scaled)
    metric = results[sweep.metric].astype(float).to_numpy()
    norm = (metric - metric.min()) / max(np.ptp(metric), 1e-12)
    if sweep.goal == "minimize":
        norm = 1 - norm
    fig, ax = plt.subplots(figsize=(1.6 * len(columns) + 2, 3.8))
    cmap = plt.get_cmap("viridis")
    for row, shade in sorted(zip(frame, norm), key=lambda p: p[1]):
        ax.plot(range(len(columns)), row, color=cmap(shade), alpha=0.8, lw=1.2)
    ax.set_xticks(range(len(columns)), labels, fontsize=8)
    ax.set_yticks([0, 1], ["low", "high"], fontsize=8)
    ax.set_title(f"sweep {sweep.name}: {len(results)} trials (yellow: best {sweep.metric})", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
