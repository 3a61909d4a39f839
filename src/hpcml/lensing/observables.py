"""From the simulated catalogue to what a telescope measures, and what a network predicts.

Per system, with measurement noise drawn from (seed, lens id) so any lens's noisy
observation can be regenerated alone: image positions (astrometric noise, arcsec), the
lens-galaxy centre (same noise), time delays relative to the first-arriving image
(fractional noise), flux ratios relative to the first image (fractional noise, from
microlensing and the source's variability), and both redshifts. Targets: lens
parameters (lenstronomy convention unless Keeton's e_c, e_s, b are asked for) and, per
image, the lensing potential and the deflection. Arrays keep the catalogue's row order
(so rendered images line up); systems with more images than ``max_images`` are kept
but marked unusable and left out of every split.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.atomic import write_json, write_npy, write_parquet
from hpcml.core.randomness import normals
from hpcml.core.splits import make_folds, split_indices
from hpcml.lensing.symmetry import check_targets

log = logging.getLogger(__name__)
IMAGE_FEATURES = ("x", "y", "delay", "log_flux_ratio")
LENS_FEATURES = ("x0", "y0", "z_lens", "z_src")
IMAGE_TARGETS = ("potential", "alpha_x", "alpha_y")
ARRAYS = ("images", "mask", "lens", "targets", "image_targets")
# Noise streams of the counter-based generator (distinct from the simulation's).
_S_POS, _S_CENTRE, _S_DELAY, _S_FLUX = 101, 103, 105, 107


def build(catalog_dir: str | Path, settings: dict[str, Any], seed: int, out_dir: str | Path) -> dict[str, Any]:
    """Write the arrays, meta.parquet and splits.parquet for the family in ``settings``."""
    check_targets(settings["targets"])
    catalog = Path(catalog_dir)
    lenses = pd.read_parquet(catalog / "lenses.parquet")
    images = pd.read_parquet(catalog / "images.parquet")
    m, noise = settings["max_images"], settings["noise"]
    n = len(lenses)
    row_of = pd.Series(np.arange(n), index=lenses.lens_id.to_numpy())
    rows = row_of.reindex(images.lens_id.to_numpy()).to_numpy()
    if np.isnan(rows.astype(float)).any():
        raise ValueError(f"{catalog / 'images.parquet'}: images of lenses missing from lenses.parquet; re-run lensing_combine")
    slot = images.image.to_numpy().astype(np.int64)
    keep = slot < m
    rows, slot, img = rows[keep], slot[keep], images[keep]
    lens_id = lenses.lens_id.to_numpy().astype(np.int64)
    key = lens_id[rows] * m + slot

    mask = np.zeros((n, m), dtype=bool)
    mask[rows, slot] = True
    xy = np.stack([img.x.to_numpy(), img.y.to_numpy()], axis=-1)
    xy_noisy = xy + noise["astrometry"] * np.stack([normals(seed, key, _S_POS), normals(seed, key, _S_POS + 1)], axis=-1)
    t = np.full((n, m), np.nan)
    t[rows, slot] = img.time_delay.to_numpy()
    mu = np.full((n, m), np.nan)
    mu[rows, slot] = np.abs(img.magnification.to_numpy())
    delay_true = t - t[:, :1]
    delay = np.where(mask, delay_true, 0.0)
    delay[rows, slot] *= 1 + noise["delay_fraction"] * normals(seed, key, _S_DELAY)
    flux = np.where(mask, mu / mu[:, :1], 1.0)
    flux[rows, slot] *= np.where(slot > 0, 1 + noise["flux_fraction"] * normals(seed, key, _S_FLUX), 1.0)

    images_arr = np.zeros((n, m, len(IMAGE_FEATURES)), dtype=np.float32)
    images_arr[rows, slot, 0:2] = xy_noisy
    images_arr[..., 2] = delay
    images_arr[..., 3] = np.where(mask, np.log(np.clip(flux, 1e-6, None)), 0.0)
    centre = noise["astrometry"] * np.stack([normals(seed, lens_id, _S_CENTRE), normals(seed, lens_id, _S_CENTRE + 1)], axis=-1)
    lens_arr = np.column_stack([centre, lenses.z_lens.to_numpy(), lenses.z_src.to_numpy()]).astype(np.float32)
    targets = lenses[settings["targets"]].to_numpy().astype(np.float32)
    image_targets = np.zeros((n, m, len(IMAGE_TARGETS)), dtype=np.float32)
    image_targets[rows, slot] = img[list(IMAGE_TARGETS)].to_numpy()

    n_images = lenses.n_images.to_numpy()
    usable = (n_images >= 1) & (n_images <= m)
    out = Path(out_dir)
    for name, array in zip(ARRAYS, (images_arr, mask.astype(np.uint8), lens_arr, targets, image_targets)):
        write_npy(out / f"{name}.npy", array)
    meta = pd.DataFrame({
        "lens_id": lens_id, "n_images": n_images.astype(np.int16), "usable": usable,
        "z_lens": lenses.z_lens.to_numpy(), "z_src": lenses.z_src.to_numpy(),
        "time_delay_distance": lenses.time_delay_distance.to_numpy(),
        "delay_true_last": np.nan_to_num(np.nanmax(delay_true, axis=1)),
    })
    write_parquet(out / "meta.parquet", meta)
    s = settings["splits"]
    folds = make_folds(lens_id[usable], s["n_folds"], seed, what="lens", key="lensing.models.splits.n_folds")
    write_parquet(out / "folds.parquet", folds)
    counts = {int(k): int(v) for k, v in zip(*np.unique(n_images, return_counts=True))}
    summary = {"n_lenses": n, "usable": int(usable.sum()), "image_counts": counts, "max_images": m,
               "set_aside": {"more images than max_images": int((n_images > m).sum())}, "noise": noise,
               "targets": settings["targets"], "image_targets": list(IMAGE_TARGETS)}
    write_json(out / "dataset.json", summary)
    log.info("%d lenses, %d usable (image counts %s)", n, summary["usable"], counts)
    return summary


def load_splits(data_dir: str | Path, splits: dict[str, Any]) -> dict[str, np.ndarray]:
    """Rows of train, val and test (the held-out fold); lens ids never shared (asserted)."""
    data = Path(data_dir)
    meta = pd.read_parquet(data / "meta.parquet", columns=["lens_id", "usable"])
    usable = np.flatnonzero(meta.usable.to_numpy())
    parts = split_indices(meta.lens_id.to_numpy()[usable], pd.read_parquet(data / "folds.parquet"), splits["test_fold"], splits["val_fold"])
    return {("test" if k == "holdout" else k): usable[v] for k, v in parts.items()}
