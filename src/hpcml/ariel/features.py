"""Hand-made features for the classical model: per-wavelength transit depth.

The challenge's light curves put the transit mid-window: the central fifth of the
time steps is in transit and the outer stretches (after the ramp) are out of it, so
1 - median(centre) / median(edges) estimates the depth (Rp/Rs)^2 per wavelength.
"""
from __future__ import annotations

import numpy as np


def depths(x: np.ndarray) -> np.ndarray:
    """[N, 55, T] raw fluxes -> [N, 55] sqrt of the transit depth."""
    steps = x.shape[-1]
    centre = np.median(x[..., int(0.4 * steps): int(0.6 * steps)], axis=-1)
    edges = np.median(np.concatenate([x[..., int(0.05 * steps): int(0.2 * steps)], x[..., int(0.8 * steps):]], axis=-1), axis=-1)
    return np.sqrt(np.clip(1 - centre / edges, 0, None))
