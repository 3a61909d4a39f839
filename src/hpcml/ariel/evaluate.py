"""Evaluation on held-out planets, the validation-weighted ensemble, and the submission file."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hpcml.ariel.layout import N_WAVELENGTHS  # noqa: E402
from hpcml.ariel.metric import ariel_score, average_by_planet  # noqa: E402
from hpcml.ariel.dataset import ArielData, load_splits  # noqa: E402
from hpcml.core import headline  # noqa: E402
from hpcml.core.atomic import atomic_path, write_json  # noqa: E402
from hpcml.core.figures import save_figure  # noqa: E402

log = logging.getLogger(__name__)
# The run's landing page shows each model's challenge score; the organisers' MLP is the reference.
SCORE = "challenge score (held-out planets)"


def ensemble_weights(val_scores: dict[str, float]) -> dict[str, float]:
    """Weights proportional to 1 / (1e4 - score)^2: a model with half the error counts four times."""
    raw = {m: 1.0 / max(1e4 - s, 1e-6) ** 2 for m, s in val_scores.items()}
    total = sum(raw.values())
    return {m: w / total for m, w in raw.items()}


def noise_level(x: np.ndarray) -> np.ndarray:
    """Per-sample white-noise estimate: std of successive differences after the ramp / sqrt 2."""
    return np.std(np.diff(x[..., 20:], axis=-1), axis=-1).mean(-1) / np.sqrt(2)


def evaluate(model_dirs: dict[str, Path], data_dir: Path, folds_path: Path, settings: dict[str, Any], out_dir: Path, submission_path: Path) -> dict[str, Any]:
    train = ArielData(Path(data_dir) / "train")
    splits = load_splits(train, folds_path, settings["splits"])
    planets = {s: train.meta.planet.to_numpy()[splits[s]] for s in ("val", "holdout")}
    truth = {s: np.asarray(train.arrays["targets"][splits[s]], dtype=np.float64) for s in ("val", "holdout")}
    preds = {m: {s: np.load(Path(d) / f"pred_{s}.npy") for s in ("val", "holdout", "test")} for m, d in model_dirs.items()}

    val_scores = {m: ariel_score(truth["val"], average_by_planet(p["val"], planets["val"])) for m, p in preds.items()}
    weights = ensemble_weights(val_scores)
    preds["ensemble"] = {s: sum(weights[m] * preds[m][s] for m in model_dirs) for s in ("val", "holdout", "test")}
    val_scores["ensemble"] = ariel_score(truth["val"], average_by_planet(preds["ensemble"]["val"], planets["val"]))

    metrics: dict[str, Any] = {}
    for m, p in preds.items():
        averaged = average_by_planet(p["holdout"], planets["holdout"])
        raw = ariel_score(truth["holdout"], p["holdout"])
        metrics[m] = {
            "ariel_score": ariel_score(truth["holdout"], averaged),
            "ariel_score_per_instance": raw,
            "planet_averaging_gain": ariel_score(truth["holdout"], averaged) - raw,
            "val_score": val_scores[m],
        }
    metrics["ensemble"]["weights"] = weights
    best = max(model_dirs, key=lambda m: metrics[m]["ariel_score"])
    summary = {
        "models": metrics,
        "best_model": best,
        "n_holdout_samples": int(len(splits["holdout"])),
        "n_holdout_planets": int(len(np.unique(planets["holdout"]))),
        "metric": "1e4 - 2e6 * sum(w * y * |yhat - y|) / sum(w), unit weights, after per-planet averaging",
    }
    out_dir = Path(out_dir)
    scores = {m: {SCORE: metrics[m]["ariel_score"]} for m in metrics}
    write_json(out_dir / "metrics.json", {**metrics, "summary": summary,
                                          headline.KEY: headline.rows("ariel", scores, {SCORE: "higher"}, baselines=("baseline",))})
    _plots(preds, truth["holdout"], planets["holdout"], noise_level(train.arrays["X"][splits["holdout"]]), metrics, out_dir)

    test_meta = Path(data_dir) / "test" / "meta.parquet"
    if test_meta.exists():
        test = ArielData(Path(data_dir) / "test")
        write_submission(average_by_planet(preds["ensemble"]["test"], test.meta.planet.to_numpy()), test.meta.file.tolist(), submission_path)
    else:
        write_submission(np.empty((0, N_WAVELENGTHS)), [], submission_path)
    for m in preds:
        log.info("%-9s held-out score %.1f (per instance %.1f)", m, metrics[m]["ariel_score"], metrics[m]["ariel_score_per_instance"])
    return summary


def write_submission(pred: np.ndarray, files: list[str], path: str | Path) -> None:
    """55 tab-separated %.10f columns, one row per test file in sorted file-name order."""
    order = np.argsort(files, kind="stable")
    with atomic_path(path) as tmp:
        np.savetxt(tmp, pred[order].reshape(-1, N_WAVELENGTHS), fmt="%.10f", delimiter="\t")


def _plots(preds: dict[str, dict[str, np.ndarray]], truth: np.ndarray, planets: np.ndarray, noise: np.ndarray, metrics: dict[str, Any], out_dir: Path) -> None:
    names = list(preds)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    positions = np.arange(len(names))
    ax.bar(positions - 0.2, [metrics[m]["ariel_score_per_instance"] for m in names], 0.4, label="per noise instance")
    ax.bar(positions + 0.2, [metrics[m]["ariel_score"] for m in names], 0.4, label="averaged per planet")
    low = min(min(metrics[m]["ariel_score_per_instance"] for m in names), 9000)
    ax.set_ylim(low - 100, 10000)
    ax.set_xticks(positions, names)
    ax.set_ylabel("challenge score (held-out planets)")
    _save(fig, ax, out_dir / "scores.png", legend="lower right")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for m in names:
        error = np.abs(average_by_planet(preds[m]["holdout"], planets) - truth)
        ax.plot(np.arange(N_WAVELENGTHS), 1e6 * error.mean(0), label=m)
    ax.set_xlabel("wavelength channel")
    ax.set_ylabel("mean |error| in Rp/Rs [ppm]")
    _save(fig, ax, out_dir / "error_per_wavelength.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for m in names:
        error = np.abs(preds[m]["holdout"] - truth).mean(1)
        ax.scatter(1e6 * noise, 1e6 * error, s=6, alpha=0.6, label=m)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("noise level per time step [ppm]")
    ax.set_ylabel("mean |error| per instance [ppm]")
    _save(fig, ax, out_dir / "error_vs_noise.png")


def _save(fig: plt.Figure, ax: plt.Axes, path: Path, legend: str = "best") -> None:
    ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
