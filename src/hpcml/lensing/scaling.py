"""Normalisation of the lens observables and targets, fitted on the training split only.

Scales respect the symmetries (see :mod:`hpcml.lensing.symmetry`): positions and
deflections share one scale with no offset, each spin-2 pair shares one scale with no
offset, so normalising commutes with rotating. Saved as JSON beside the data and as
buffers inside every model (so a checkpoint maps its outputs back to physical units).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hpcml.core.atomic import write_json
from hpcml.lensing.symmetry import spin2_partner


def _moments(values: np.ndarray, centred: bool = True) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    if not centred:
        return 0.0, float(max(np.sqrt(np.mean(values**2)), 1e-12))
    return float(values.mean()), float(max(values.std(), 1e-12))


def fit(data_dir: str | Path, rows: np.ndarray, targets: list[str]) -> dict[str, Any]:
    data = Path(data_dir)
    images = np.load(data / "images.npy", mmap_mode="r")[rows]
    mask = np.load(data / "mask.npy", mmap_mode="r")[rows].astype(bool)
    lens = np.load(data / "lens.npy", mmap_mode="r")[rows]
    lens_targets = np.load(data / "targets.npy", mmap_mode="r")[rows]
    image_targets = np.load(data / "image_targets.npy", mmap_mode="r")[rows]
    later = mask.copy()
    later[:, 0] = False
    scaling = {
        "position": _moments(images[..., :2][mask], centred=False)[1],
        "delay": _moments(np.log1p(np.clip(images[..., 2][later], 0, None))),
        "flux": _moments(images[..., 3][later]),
        "z": [_moments(lens[:, 2]), _moments(lens[:, 3])],
        "potential": _moments(image_targets[..., 0][mask]),
        "deflection": _moments(image_targets[..., 1:][mask], centred=False)[1],
        "targets": {},
    }
    for k, name in enumerate(targets):
        partner = spin2_partner(name)
        if partner:
            both = np.concatenate([lens_targets[:, k], lens_targets[:, targets.index(partner[0])]])
            scaling["targets"][name] = _moments(both, centred=False)
        else:
            scaling["targets"][name] = _moments(lens_targets[:, k])
    return scaling


def save(path: str | Path, scaling: dict[str, Any]) -> None:
    write_json(path, scaling)


def load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
