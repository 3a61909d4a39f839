"""Every lens model on the held-out lenses, side by side, in physical units; H0 from delays.

Point metrics (RMSE, bias, R^2) per target and per image count; calibration (coverage
of the 68% and 95% intervals) for models that predict uncertainties; the equivariance
error each model measured on rotated and shifted test systems; and the Hubble constant
from the measured delays and each model's Fermat potentials (:mod:`hpcml.lensing.hubble`).
A model that predicts no per-image quantities (the CNN on rendered images) gets the
lens-parameter metrics only.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hpcml.core import headline  # noqa: E402
from hpcml.core.atomic import write_json  # noqa: E402
from hpcml.core.figures import save_figure  # noqa: E402
from hpcml.lensing import compare, hubble  # noqa: E402
from hpcml.lensing.naming import section  # noqa: E402
from hpcml.lensing.observables import IMAGE_TARGETS  # noqa: E402

log = logging.getLogger(__name__)
FIGURES = ("predicted_vs_true", "errors_by_image_count", "calibration", "h0")
# The run's landing page: each model's error relative to the targets' scatter (comparable across
# targets), the Einstein radius error, and how far H0 lands from the truth, in per cent and in
# units of its own error (which a model's overconfidence inflates); the group's dense networks
# (joined as "baseline") are the reference.
RELATIVE_RMSE, THETA_E_RMSE = "RMSE / scatter (mean over lens parameters)", "theta_E RMSE [arcsec]"
H0_BIAS, H0_PULL = "H0 |bias| [%]", "H0 |bias| / its error"
REFERENCE = "baseline"
HEADLINE = dict.fromkeys((RELATIVE_RMSE, THETA_E_RMSE, H0_BIAS, H0_PULL), "lower")


def collect(model_dirs: dict[str, Path]) -> dict[str, dict[str, np.ndarray]]:
    """Test and validation predictions per model family (the per-image-count baselines joined into one)."""
    names = ("rows", "pred", "rows_val", "pred_val")
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for name, folder in model_dirs.items():
        parts = out.setdefault(section(name), {n: [] for n in names})
        for n in names:
            stem, _, split = n.partition("_")
            parts[n].append(np.load(Path(folder) / f"{stem}_{split or 'test'}.npy"))
    return {f: {n: np.concatenate(p[n]) for n in names} for f, p in out.items()}


def point_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    error = pred - truth
    ss = np.sum((truth - truth.mean()) ** 2)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "bias": float(error.mean()),
            "r2": float(1 - np.sum(error**2) / ss) if ss > 0 else float("nan"), "n": int(len(truth))}


def coverage(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    z = np.abs(mean - truth) / std
    return {"68": float(np.mean(z <= 1.0)), "95": float(np.mean(z <= 1.959964))}


def evaluate(data_dir: Path, model_dirs: dict[str, Path], settings: dict[str, Any], h0_sim: float, days_per_mpc_arcsec2: float, out_dir: Path) -> dict[str, Any]:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    meta = pd.read_parquet(data_dir / "meta.parquet")
    data = {n: np.load(data_dir / f"{n}.npy", mmap_mode="r") for n in ("images", "mask", "targets", "image_targets")}
    data.update(n_images=meta.n_images.to_numpy(), time_delay_distance=meta.time_delay_distance.to_numpy())
    targets = settings["targets"]
    t = len(targets)
    results: dict[str, Any] = {}
    families = collect(model_dirs)
    h0_tables = {}
    for family, p in families.items():
        rows, pred = p["rows"], p["pred"]
        truth = np.asarray(data["targets"][rows], dtype=np.float64)
        entry: dict[str, Any] = {"targets": {}, "by_image_count": {}, "image_targets": {}}
        for k, name in enumerate(targets):
            entry["targets"][name] = point_metrics(pred[:, k, 0], truth[:, k])
            if np.isfinite(pred[:, k, 1]).all():
                entry["targets"][name]["coverage"] = coverage(pred[:, k, 0], pred[:, k, 1], truth[:, k])
        n_img = data["n_images"][rows]
        for count in np.unique(n_img):
            sel = n_img == count
            entry["by_image_count"][str(int(count))] = {name: point_metrics(pred[sel, k, 0], truth[sel, k])["rmse"] for k, name in enumerate(targets)}
        equivariance = [json.loads((Path(model_dirs[m]) / "equivariance.json").read_text())["max_rms_over_scatter"] for m in model_dirs if section(m) == family]
        entry["equivariance_max_rms_over_scatter"] = max(equivariance)
        results[family] = entry
        image_pred = pred[:, t:, 0].reshape(len(rows), -1, len(IMAGE_TARGETS))
        if np.isnan(image_pred).all():
            entry["image_targets"] = entry["h0"] = None
            continue
        image_truth = np.asarray(data["image_targets"][rows], dtype=np.float64)
        mask = np.asarray(data["mask"][rows]).astype(bool)
        for j, name in enumerate(IMAGE_TARGETS):
            entry["image_targets"][name] = point_metrics(image_pred[..., j][mask], image_truth[..., j][mask])
        probabilistic = bool(np.isfinite(pred[:, :t, 1]).all())
        calibration = hubble.calibrate(hubble.fermat_difference(p["pred_val"], p["rows_val"], data, t), probabilistic)
        h0_tables[family], entry["h0"] = hubble.infer(
            hubble.fermat_difference(pred, rows, data, t), calibration, settings["noise"]["delay_fraction"], h0_sim,
            days_per_mpc_arcsec2, data["time_delay_distance"], tuple(settings["h0"]["range"]))
    if REFERENCE in families:
        reference = families[REFERENCE]
        for family in [f for f in results if f != REFERENCE]:
            results[family][f"versus_{REFERENCE}"] = compare.versus(
                families[family]["pred"], families[family]["rows"], reference["pred"], reference["rows"], data["targets"], data["n_images"], targets)
            log.info("%s versus %s, targets lower/tie/higher by image count: %s", family, REFERENCE, compare.tally(results[family][f"versus_{REFERENCE}"]))
    scatter = dict(zip(targets, np.maximum(np.asarray(data["targets"]).std(0), 1e-12)))
    write_json(out_dir / "metrics.json", {"models": results, "test_lenses": int(len(next(iter(families.values()))["rows"])),
                                          "units": "arcsec for positions and deflections, arcsec^2 for potentials, km/s/Mpc for H0",
                                          "null": "image_targets and h0 of a model that predicts no per-image quantities",
                                          headline.KEY: headline.rows("lensing models", headline_scores(results, scatter), HEADLINE, baselines=(REFERENCE,))})
    _plots(families, data, targets, results, h0_tables, h0_sim, scatter, out_dir)
    for family, entry in results.items():
        log.info("%s: theta_e RMSE %s, H0 %s", family, entry["targets"].get("theta_e", {}).get("rmse"), (entry["h0"] or {}).get("h0"))
    return results


def headline_scores(results: dict[str, Any], scatter: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Per model the HEADLINE scores; a model without H0 (no per-image predictions) has no H0 rows."""
    scores = {}
    for family, entry in results.items():
        point = entry["targets"]
        row = {RELATIVE_RMSE: float(np.mean([point[n]["rmse"] / scatter[n] for n in point]))}
        if "theta_e" in point:
            row[THETA_E_RMSE] = point["theta_e"]["rmse"]
        h0 = entry["h0"] or {}
        if h0.get("n_lenses"):
            row.update({H0_BIAS: 100 * abs(h0["bias"]) / h0["h0_true"], H0_PULL: abs(h0["bias_in_sigma"])})
        scores[family] = row
    return scores


def _plots(families: dict[str, dict[str, np.ndarray]], data: dict[str, np.ndarray], targets: list[str], results: dict[str, Any],
           h0_tables: dict[str, pd.DataFrame], h0_sim: float, scatter: dict[str, float], out_dir: Path) -> None:
    fig, axes = plt.subplots(len(families), len(targets), figsize=(2.6 * len(targets), 2.6 * len(families)), squeeze=False)
    for r, (family, p) in enumerate(families.items()):
        truth = np.asarray(data["targets"][p["rows"]])
        for k, name in enumerate(targets):
            ax = axes[r, k]
            ax.scatter(truth[:, k], p["pred"][:, k, 0], s=3, alpha=0.4)
            low, high = np.percentile(truth[:, k], [0.5, 99.5])
            ax.plot([low, high], [low, high], "k--", lw=0.8)
            ax.set_title(f"{family}: {name}", fontsize=8)
            ax.set_xlabel("true", fontsize=7)
            ax.set_ylabel("predicted", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    save_figure(fig, out_dir / "predicted_vs_true.png", dpi=110)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts = sorted({c for e in results.values() for c in e["by_image_count"]}, key=int)
    width = 0.8 / max(1, len(results))
    for j, (family, entry) in enumerate(results.items()):
        values = [np.mean([entry["by_image_count"][c][n] / scatter[n] for n in targets]) if c in entry["by_image_count"] else np.nan for c in counts]
        bars = ax.bar(np.arange(len(counts)) + j * width, values, width, label=family)
        tallies = compare.tally(entry.get(f"versus_{REFERENCE}", {}))
        for bar, c in zip(bars, counts):
            if c in tallies:
                text = "\n".join(f"{n} {verdict}" for verdict, n in tallies[c].items() if n)
                ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=6)
    ax.set_xticks(np.arange(len(counts)) + width * (len(results) - 1) / 2, [f"{c} image{'s' if c != '1' else ''}" for c in counts])
    ax.set_ylabel("mean RMSE / scatter of the targets")
    ax.margins(y=0.25)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "errors_by_image_count.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for family, entry in results.items():
        cov = [entry["targets"][n].get("coverage") for n in targets]
        if all(cov):
            ax.plot(targets, [c["68"] for c in cov], "o-", label=f"{family} 68%")
            ax.plot(targets, [c["95"] for c in cov], "s--", label=f"{family} 95%")
    ax.axhline(0.68, color="grey", lw=0.8)
    ax.axhline(0.95, color="grey", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of truths inside the interval")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "calibration.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for family, table in h0_tables.items():
        valid = table[table.valid]
        if len(valid):
            ax.hist(np.clip(valid.h0, 0, 4 * h0_sim), bins=40, range=(0, 4 * h0_sim), histtype="step", label=f"{family} per lens")
        h0 = results[family]["h0"]
        if h0.get("n_lenses"):
            ax.axvspan(h0["h0"] - h0["h0_error"], h0["h0"] + h0["h0_error"], alpha=0.2, label=f"{family} population")
    ax.axvline(h0_sim, color="k", ls="--", label="true H0")
    ax.set_xlabel("H0 [km/s/Mpc]")
    ax.set_ylabel("lenses")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "h0.png")
