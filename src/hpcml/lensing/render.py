"""Rendered lens images: an elliptical Sersic source seen through the lens.

Ray-shooting every (super-sampled) pixel to the source plane, evaluating the source
there, averaging sub-pixels, convolving with a Gaussian PSF and adding Gaussian
noise. Source shape and noise come from counter-based streams of the lens index.

The model and its numerics are lenstronomy's ``ImageModel`` with a ``GAUSSIAN`` PSF
(sub-pixels averaged before the convolution, ``gaussian_filter`` truncated at 5 sigma
with ``nearest`` edges) and a ``SERSIC_ELLIPSE`` source; tests compare the two. It
runs many times faster because it works on blocks of lenses at once, in float32 (the
ray-shooting error is ~1e-6 arcsec, far below a pixel), and folds every linear step
(lens rotation, shear, source offset, rotation, axis ratio, size and the Sersic b_n)
into one affine map per lens, so each sub-pixel costs a few dozen vector operations.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from hpcml.core.randomness import normals, uniforms
from hpcml.lensing.model import LensParams, sie_constants

S_SRC_R, S_SRC_Q, S_SRC_PHI = 100, 101, 102
S_NOISE = 1000
# lenstronomy's GAUSSIAN PSF truncation, in sigma.
PSF_TRUNCATION = 5.0
# Sub-pixels ray-shot per block: eight 64x64 images at supersample 2 (measured best of
# 1-16 on a 2 MB-L2 core; one image per block runs 35% slower, 16 about as fast).
_SUBPIXELS_PER_BLOCK = 8 * 128 * 128
_FWHM_PER_SIGMA = 2 * np.sqrt(2 * np.log(2))
_F = np.float32


def sersic_b(n: float) -> float:
    """b_n such that R_eff encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2)


@lru_cache(maxsize=8)
def pixel_grid(size: int, pixel_scale: float, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel centres x, y [supersample^2, size^2] (float32, read-only).

    Row k holds sub-pixel offset (k // supersample, k % supersample) of every pixel; the
    pixels are in image order: column j at x_j, row i at y_i, both increasing with the
    index and centred on the lens. Averaging over the rows gives the pixel values.
    """
    step = pixel_scale / supersample
    centre = (np.arange(size) - (size - 1) / 2) * pixel_scale
    offset = (np.arange(supersample) - (supersample - 1) / 2) * step
    y = offset[:, None, None, None] + centre[None, None, :, None]
    x = offset[None, :, None, None] + centre[None, None, None, :]
    shape = (supersample, supersample, size, size)
    grid = tuple(np.broadcast_to(a, shape).reshape(supersample**2, size * size).astype(_F) for a in (x, y))
    for a in grid:
        a.flags.writeable = False
    return grid


def source_shapes(seed: int, index: np.ndarray, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-lens Sersic effective radius (arcsec), axis ratio and position angle (radians)."""
    r_eff = settings["source_r_eff"] * 10 ** (0.1 * normals(seed, index, S_SRC_R))
    return r_eff, 0.5 + 0.5 * uniforms(seed, index, S_SRC_Q), np.pi * uniforms(seed, index, S_SRC_PHI)


def render(p: LensParams, bx: np.ndarray, by: np.ndarray, seed: int, index: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """float32 images [N, size, size], peak source surface brightness ~ 1 before noise."""
    size, ss = settings["size"], settings["supersample"]
    gx, gy = pixel_grid(size, settings["pixel_scale"], ss)
    lens, source = _lens_coefficients(p), _source_map(p, bx, by, source_shapes(seed, index, settings), settings["source_n"])
    sigma_pix = settings["psf_fwhm"] / _FWHM_PER_SIGMA / settings["pixel_scale"]
    out = np.empty((len(p), size, size), dtype=_F)
    block = max(1, _SUBPIXELS_PER_BLOCK // gx.size)
    work = np.empty((5, min(block, len(p)), gx.size), dtype=_F)
    for a in range(0, len(p), block):
        sl = slice(a, a + block)
        light = _source_light(gx.ravel(), gy.ravel(), lens[:, sl], source[:, sl], 0.5 / settings["source_n"], work)
        pixels = light.reshape(-1, ss * ss, size, size).mean(axis=1)
        if sigma_pix > 0:
            gaussian_filter(pixels, sigma=(0, sigma_pix, sigma_pix), mode="nearest", truncate=PSF_TRUNCATION, output=out[sl])
        else:
            out[sl] = pixels
        if settings["noise_sigma"] > 0:
            out[sl] += settings["noise_sigma"] * _standard_normals(seed, index[sl], size * size).reshape(-1, size, size)
    return out


def _lens_coefficients(p: LensParams) -> np.ndarray:
    """[6, N, 1] float32: rows (q cos, q sin), (-sin, cos), sqrt(1 - q^2) / q, sqrt(1 - q^2).

    The first two rows rotate a point into the lens frame scaled as the SIE needs it,
    (q x', y'); the last two turn q x' and y' into the arguments s x', s y' of the
    deflection's arctan and artanh.
    """
    q2, s, _ = sie_constants(p)
    c, sn, q = np.cos(p.phi), np.sin(p.phi), np.sqrt(q2)
    return np.stack([q * c, q * sn, -sn, c, s / q, s]).astype(_F)[:, :, None]


def _source_map(p: LensParams, bx: np.ndarray, by: np.ndarray, shapes: tuple[np.ndarray, ...], n_sersic: float) -> np.ndarray:
    """[10, N, 1] float32: the affine map from (x, y, arctan term, artanh term, 1) to (u, v).

    Source-plane position beta = (1 - Gamma) x - R(-phi) (b/s) (arctan, artanh) - (bx, by);
    (u, v) are its coordinates in the source's frame, scaled so that
    u^2 + v^2 = (b_n R / R_eff)^(2n) with R = sqrt(q_s u'^2 + v'^2 / q_s) the elliptical
    radius (lenstronomy's product-average convention), so the light is exp(-(u^2 + v^2)^(1/2n)).
    """
    r_eff, q_s, phi_s = shapes
    _, _, b_over_s = sie_constants(p)
    scale = sersic_b(n_sersic) ** n_sersic / r_eff
    rows = np.array([np.sqrt(q_s) * scale, scale / np.sqrt(q_s)])[:, None, :] * np.array(
        [[np.cos(phi_s), np.sin(phi_s)], [-np.sin(phi_s), np.cos(phi_s)]]
    )  # [2 (u, v), 2 (x, y), N]: source rotation and axis ratio
    c, sn = np.cos(p.phi), np.sin(p.phi)
    linear = np.array([[1 - p.gamma1, -p.gamma2], [-p.gamma2, 1 + p.gamma1]])
    deflect = -b_over_s * np.array([[c, -sn], [sn, c]])
    columns = np.concatenate([linear, deflect, -np.array([bx, by])[:, None]], axis=1)  # [2, 5, N]
    return np.einsum("ijn,jkn->ikn", rows, columns).reshape(10, -1).astype(_F)[:, :, None]


def _source_light(x: np.ndarray, y: np.ndarray, lens: np.ndarray, source: np.ndarray, power: float, work: np.ndarray) -> np.ndarray:
    """Source surface brightness [K, M] at M image-plane points for K lenses (float32).

    Every step writes into ``work`` [5, >= K, M], allocated once per call of
    :func:`render`: fresh block-sized temporaries would cost a page fault per 4 KB.
    """
    k = lens.shape[1]
    along, across, psi, v, tmp = work[:, :k]
    _affine(lens[0], lens[1], x, y, along, tmp)  # q x'
    _affine(lens[2], lens[3], x, y, across, tmp)  # y'
    np.multiply(along, along, out=psi)
    np.multiply(across, across, out=tmp)
    psi += tmp
    np.sqrt(psi, out=psi)
    np.maximum(psi, np.finfo(_F).tiny, out=psi)  # a sub-pixel on the lens centre
    along *= lens[4]
    np.arctan2(along, psi, out=along)  # arctan(s x' / psi)
    across *= lens[5]
    across /= psi
    np.arctanh(across, out=across)  # artanh(s y' / psi)
    u = psi
    for row, out in zip(source.reshape(2, 5, k, 1), (u, v)):
        _affine(row[0], row[1], x, y, out, tmp)
        np.multiply(row[2], along, out=tmp)
        out += tmp
        np.multiply(row[3], across, out=tmp)
        out += tmp
        out += row[4]
    light = np.multiply(u, u, out=u)
    light += np.multiply(v, v, out=v)
    with np.errstate(divide="ignore"):  # log(0) = -inf on the source centre gives exp(-0) = 1
        np.log(light, out=light)
    light *= power
    np.exp(light, out=light)
    np.negative(light, out=light)
    return np.exp(light, out=light)


def _affine(cx: np.ndarray, cy: np.ndarray, x: np.ndarray, y: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
    """out = cx x + cy y for per-lens coefficients [K, 1] and shared points [M]."""
    np.multiply(cx, x, out=out)
    np.multiply(cy, y, out=tmp)
    out += tmp


def _standard_normals(seed: int, index: np.ndarray, count: int) -> np.ndarray:
    """float32 normals [len(index), count] from the lens's noise stream (Box-Muller).

    Each 53-bit counter-based uniform gives two: its top 26 bits set the radius, its
    low 27 bits the angle, so a pair costs one hash and no inverse normal function.
    """
    pairs = (count + 1) // 2
    u = uniforms(seed, np.asarray(index)[:, None], S_NOISE + np.arange(pairs, dtype=np.uint64)[None, :]) * 2.0**26
    high = np.floor(u)
    radius = np.sqrt(-2 * np.log(((high + 0.5) * 2.0**-26).astype(_F)))
    angle = ((u - high) * (2 * np.pi)).astype(_F)
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :count]
