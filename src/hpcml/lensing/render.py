"""Rendered lens images: an elliptical Sersic source seen through the lens.

Ray-shooting every (super-sampled) pixel to the source plane, evaluating the source
there, averaging sub-pixels, convolving with a Gaussian PSF and adding Gaussian
noise. Noise and source shape come from counter-based streams of the lens index.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from hpcml.core.randomness import normals, uniforms
from hpcml.lensing.model import LensParams, ray_shoot

S_SRC_R, S_SRC_Q, S_SRC_PHI = 100, 101, 102
S_NOISE = 1000
_LENSES_PER_BATCH = 32


def sersic_b(n: float) -> float:
    """b_n such that R_eff encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2)


def pixel_grid(size: int, pixel_scale: float, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n = size * supersample
    coords = (np.arange(n) - (n - 1) / 2) * (pixel_scale / supersample)
    x, y = np.meshgrid(coords, coords)
    return x.ravel(), y.ravel()


def render(p: LensParams, bx: np.ndarray, by: np.ndarray, seed: int, index: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """float32 images [N, size, size], peak source surface brightness ~ 1 before noise."""
    size, ss = settings["size"], settings["supersample"]
    gx, gy = pixel_grid(size, settings["pixel_scale"], ss)
    n_sersic = settings["source_n"]
    out = np.empty((len(p), size, size), dtype=np.float32)
    for a in range(0, len(p), _LENSES_PER_BATCH):
        sl = slice(a, a + _LENSES_PER_BATCH)
        idx = index[sl]
        r_eff = settings["source_r_eff"] * 10 ** (0.1 * normals(seed, idx, S_SRC_R))
        q_s = 0.5 + 0.5 * uniforms(seed, idx, S_SRC_Q)
        phi_s = np.pi * uniforms(seed, idx, S_SRC_PHI)
        sx, sy = ray_shoot(gx[None, :], gy[None, :], p.take(np.arange(len(p))[sl]).column())
        dx, dy = sx - bx[sl, None], sy - by[sl, None]
        c, s = np.cos(phi_s)[:, None], np.sin(phi_s)[:, None]
        u, v = c * dx + s * dy, -s * dx + c * dy
        radius = np.sqrt(q_s[:, None] * u**2 + v**2 / q_s[:, None]) / r_eff[:, None]
        light = np.exp(-sersic_b(n_sersic) * (radius ** (1 / n_sersic) - 1)) / np.exp(sersic_b(n_sersic))
        k = len(idx)
        out[sl] = light.reshape(k, size, ss, size, ss).mean(axis=(2, 4))
    sigma_pix = settings["psf_fwhm"] / 2.3548 / settings["pixel_scale"]
    if sigma_pix > 0:
        out = gaussian_filter(out, sigma=(0, sigma_pix, sigma_pix), mode="constant")
    if settings["noise_sigma"] > 0:
        pixels = np.arange(size * size, dtype=np.uint64)[None, :]
        noise = normals(seed, index[:, None], S_NOISE + pixels).reshape(out.shape)
        out += (settings["noise_sigma"] * noise).astype(np.float32)
    return out
