"""Rendered lens images: an elliptical Sersic source seen through the lens.

Ray-shooting every (super-sampled) pixel to the source plane, evaluating the source
there, averaging sub-pixels, convolving with a Gaussian PSF and adding Gaussian
noise. Source shape and noise come from counter-based streams of the lens index.

The model and its numerics are lenstronomy's ``ImageModel`` with a ``GAUSSIAN`` PSF
(sub-pixels averaged before the convolution; the kernel of ``gaussian_filter`` truncated
at 5 sigma with ``nearest`` edges) and a ``SERSIC_ELLIPSE`` source; tests compare the
two. It runs many times faster because it works on blocks of lenses at once, in float32
(the ray-shooting error is ~1e-6 arcsec, far below a pixel); folds every linear step
(lens rotation, shear, source offset, rotation, axis ratio, size and the Sersic b_n)
into one affine map per lens; does the arithmetic of each sub-pixel in two compiled,
vectorised loops and the transcendental functions with numpy's vectorised ones, all in
buffers allocated once; and convolves with the separable PSF as two small matrix products.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

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
# Added to psi^2: keeps a sub-pixel on the lens centre finite and changes no other (their
# psi^2 >= (q x half a sub-pixel)^2, orders of magnitude above); cheaper than a maximum.
_TINY = _F(1e-30)
# x^(1/2) and x^(1/3) (exponential disc, the default n = 1.5) have direct functions,
# several times cheaper than exp(log(x) p).
_ROOTS = {1 / 2: np.sqrt, 1 / 3: np.cbrt}


def sersic_b(n: float) -> float:
    """b_n such that R_eff encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2)


@lru_cache(maxsize=8)
def pixel_grid(size: int, pixel_scale: float, supersample: int = 1) -> np.ndarray:
    """Sub-pixel centres along either axis, [supersample, size] float32 (read-only).

    Entry (b, j) is sub-pixel b of pixel j: images hold column j at x_j and row i at y_i,
    both increasing with the index and centred on the lens. Rendering evaluates sub-pixel
    (a, b) of pixel (i, j) at x = coords[b, j], y = coords[a, i] and averages over (a, b).
    """
    step = pixel_scale / supersample
    offsets = (np.arange(supersample) - (supersample - 1) / 2) * step
    centres = (np.arange(size) - (size - 1) / 2) * pixel_scale
    coords = (offsets[:, None] + centres[None, :]).astype(_F)
    coords.flags.writeable = False
    return coords


@lru_cache(maxsize=8)
def psf_matrix(size: int, sigma_pix: float) -> np.ndarray:
    """[size, size] float32 M with M @ image @ M.T = lenstronomy's Gaussian PSF convolution.

    The 1-D kernel is ``gaussian_filter``'s (radius int(5 sigma + 0.5), normalised); a
    tap beyond an edge lands on the edge pixel (``mode="nearest"``).
    """
    radius = int(PSF_TRUNCATION * sigma_pix + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma_pix) ** 2)
    rows = np.repeat(np.arange(size), len(taps))
    matrix = np.zeros((size, size))
    np.add.at(matrix, (rows, np.clip(rows + np.tile(taps, size), 0, size - 1)), np.tile(weights / weights.sum(), size))
    matrix = matrix.astype(_F)
    matrix.flags.writeable = False
    return matrix


def source_shapes(seed: int, index: np.ndarray, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-lens Sersic effective radius (arcsec), axis ratio and position angle (radians)."""
    r_eff = settings["source_r_eff"] * 10 ** (0.1 * normals(seed, index, S_SRC_R))
    return r_eff, 0.5 + 0.5 * uniforms(seed, index, S_SRC_Q), np.pi * uniforms(seed, index, S_SRC_PHI)


def render(p: LensParams, bx: np.ndarray, by: np.ndarray, seed: int, index: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """float32 images [N, size, size], peak source surface brightness ~ 1 before noise."""
    size, ss = settings["size"], settings["supersample"]
    coords = pixel_grid(size, settings["pixel_scale"], ss)
    lens, source = _lens_coefficients(p), _source_map(p, bx, by, source_shapes(seed, index, settings), settings["source_n"])
    sigma_pix = settings["psf_fwhm"] / _FWHM_PER_SIGMA / settings["pixel_scale"]
    psf = psf_matrix(size, sigma_pix) if sigma_pix > 0 else None
    out = np.empty((len(p), size, size), dtype=_F)
    block = max(1, _SUBPIXELS_PER_BLOCK // (ss * size) ** 2)
    work = np.empty((3, min(block, len(p)), ss, ss, size, size), dtype=_F)
    pixels, half_blurred = np.empty((2, min(block, len(p)), size, size), dtype=_F)
    for a in range(0, len(p), block):
        sl = slice(a, min(a + block, len(p)))
        k = sl.stop - sl.start
        light = _source_light(coords, lens[sl], source[sl], settings["source_n"], work)
        np.sum(light, axis=(1, 2), out=pixels[:k])  # the mean: light carries 1 / ss^2
        if psf is None:
            out[sl] = pixels[:k]
        else:
            np.matmul(np.matmul(psf, pixels[:k], out=half_blurred[:k]), psf.T, out=out[sl])
        if settings["noise_sigma"] > 0:
            _add_noise(out[sl].reshape(k, -1), seed, index[sl], settings["noise_sigma"])
    return out


def _lens_coefficients(p: LensParams) -> np.ndarray:
    """[N, 6] float32: (q cos, q sin), (-sin, cos), sqrt(1 - q^2) / q, sqrt(1 - q^2).

    The first two pairs rotate a point into the lens frame scaled as the SIE needs it,
    (q x', y'); the last two turn q x' and y' into the arguments s x', s y' of the
    deflection's arctan and artanh.
    """
    q2, s, _ = sie_constants(p)
    c, sn, q = np.cos(p.phi), np.sin(p.phi), np.sqrt(q2)
    return np.ascontiguousarray(np.stack([q * c, q * sn, -sn, c, s / q, s], axis=1), dtype=_F)


def _source_map(p: LensParams, bx: np.ndarray, by: np.ndarray, shapes: tuple[np.ndarray, ...], n_sersic: float) -> np.ndarray:
    """[N, 2, 5] float32: the affine map from (x, y, arctan term, artanh term, 1) to (u, v).

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
    return np.ascontiguousarray(np.einsum("ijn,jkn->nik", rows, columns), dtype=_F)


def _source_light(coords: np.ndarray, lens: np.ndarray, source: np.ndarray, n_sersic: float, work: np.ndarray) -> np.ndarray:
    """Source surface brightness / ss^2 [K, ss, ss, size, size] for a block of K lenses (float32).

    The arithmetic runs in two compiled loops (``error_model="numpy"``: Python's check
    for division by zero would stop LLVM from vectorising them); numpy's vectorised
    arctan2, artanh, roots and exp run between them on whole blocks. Every step writes
    into ``work`` [3, >= K, ...], allocated once per call of :func:`render`: fresh
    block-sized temporaries (>= 64 KB) come from the kernel each time, and their page
    faults cost ~3 ns per value, more than most steps here.
    """
    lens_frame, source_radius2 = _compiled()
    along, across, light = work[:, : len(lens)]
    lens_frame(coords, lens, along, across, light)
    np.arctan2(along, light, out=along)
    np.arctanh(across, out=across)
    source_radius2(coords, source, along, across, light)
    power = 0.5 / n_sersic
    if power in _ROOTS:
        _ROOTS[power](light, out=light)
    else:
        with np.errstate(divide="ignore"):  # log(0) = -inf on the source centre gives exp(-0) = 1
            np.log(light, out=light)
        light *= power
        np.exp(light, out=light)
    np.subtract(_F(-2 * np.log(len(coords))), light, out=light)
    return np.exp(light, out=light)


@lru_cache(maxsize=1)
def _compiled() -> tuple[Any, Any]:
    """The two loops compiled (cached on disk by numba). numba is imported here, not with
    the module: it adds ~65 MB to every process that imports the simulation, and only
    rendering needs it."""
    import numba

    jit = numba.njit(cache=True, nogil=True, error_model="numpy")
    return jit(_lens_frame), jit(_source_radius2)


def _lens_frame(coords, lens, along, across, psi):  # pragma: no cover - compiled
    """Per sub-pixel: s x', s y' / psi and psi = sqrt(q^2 x'^2 + y'^2), the SIE's arguments.

    ``coords`` [ss, size] are the sub-pixel coordinates along either axis (x of column
    (b, j) is coords[b, j], y of row (a, i) is coords[a, i]); outputs [K, ss, ss, size, size].
    """
    ss, size = coords.shape
    for k in range(lens.shape[0]):
        qc, qs, ms, c, s_q, s = lens[k, 0], lens[k, 1], lens[k, 2], lens[k, 3], lens[k, 4], lens[k, 5]
        for a in range(ss):
            for b in range(ss):
                for i in range(size):
                    y = coords[a, i]
                    for j in range(size):
                        x = coords[b, j]
                        qx = qc * x + qs * y
                        yp = ms * x + c * y
                        root = np.sqrt(qx * qx + yp * yp + _TINY)
                        psi[k, a, b, i, j] = root
                        along[k, a, b, i, j] = s_q * qx
                        across[k, a, b, i, j] = s * yp / root


def _source_radius2(coords, source, along, across, out):  # pragma: no cover - compiled
    """Per sub-pixel: u^2 + v^2 of the source-frame position (see :func:`_source_map`)."""
    ss, size = coords.shape
    for k in range(source.shape[0]):
        w = source[k]
        for a in range(ss):
            for b in range(ss):
                for i in range(size):
                    y = coords[a, i]
                    u0 = w[0, 1] * y + w[0, 4]
                    v0 = w[1, 1] * y + w[1, 4]
                    for j in range(size):
                        x = coords[b, j]
                        t, h = along[k, a, b, i, j], across[k, a, b, i, j]
                        u = u0 + w[0, 0] * x + w[0, 2] * t + w[0, 3] * h
                        v = v0 + w[1, 0] * x + w[1, 2] * t + w[1, 3] * h
                        out[k, a, b, i, j] = u * u + v * v


def _add_noise(images: np.ndarray, seed: int, index: np.ndarray, sigma: float) -> None:
    """Add sigma times standard normals from each lens's noise stream to ``images`` [K, pixels].

    Box-Muller: each 53-bit counter-based uniform gives two normals, its top 26 bits the
    radius and its low 27 bits the angle, for pixels p and p + ceil(pixels / 2); a pair
    costs one hash and no inverse normal function.
    """
    count = images.shape[1]
    pairs = (count + 1) // 2
    u = uniforms(seed, np.asarray(index)[:, None], S_NOISE + np.arange(pairs, dtype=np.uint64)[None, :]) * 2.0**26
    high = np.floor(u)
    angle = ((u - high) * (2 * np.pi)).astype(_F)
    radius = np.sqrt(-2 * sigma**2 * np.log(((high + 0.5) * 2.0**-26).astype(_F)))
    images[:, :pairs] += radius * np.cos(angle)
    images[:, pairs:] += (radius * np.sin(angle))[:, : count - pairs]
