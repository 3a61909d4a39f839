"""Image finder for SIE + external shear, vectorised across lenses.

The SIE deflection depends only on the polar angle of the image position, so with
x = r (cos t, sin t) the lens equation beta = (I - Gamma) x - alpha(t) becomes
r v(t) = beta + alpha(t), v = (I - Gamma)(cos t, sin t). Images are the roots of the
smooth, periodic f(t) = v(t) x (beta + alpha(t)) with r = v.(beta + alpha)/|v|^2 > 0.
The cross product is rotation-invariant, so f is evaluated in each lens's own frame
(shear and source rotated once per lens): no per-point rotations. Each lens's f is
scanned on a coarse angular grid, cells beside local extrema of f (where two roots
can hide) are rescanned finely, and every bracket is refined by bisection to double
precision, all lenses at once. Per-lens work is independent of
which other lenses share the batch, so results do not depend on the batch or shard
size. (The SIE's central image is infinitely demagnified and absent.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcml.lensing.model import LensParams, sie_constants, sie_deflection_lens_frame

_BISECTIONS = 48
# Lenses scanned at once: 256 x 256 angles keep the temporaries (0.5 MB each) in cache.
_SCAN_BLOCK = 256
# Refinement around possible hidden root pairs: 16x finer per level, at most 6 levels
# (0.025 rad coarse spacing down to 1.5e-9 rad).
_REFINE = 16
_LEVELS = 7


@dataclass
class Images:
    """Images of N lenses, flattened: image k belongs to lens ``lens[k]``."""

    lens: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def counts(self, n_lenses: int) -> np.ndarray:
        return np.bincount(self.lens, minlength=n_lenses)


@dataclass
class _LensFrame:
    """Per-lens constants of f in the lens frame (major axis along x)."""

    q2: np.ndarray
    s: np.ndarray
    b_over_s: np.ndarray
    g1: np.ndarray
    g2: np.ndarray
    bx: np.ndarray
    by: np.ndarray

    @classmethod
    def build(cls, bx: np.ndarray, by: np.ndarray, p: LensParams) -> "_LensFrame":
        c, s_ = np.cos(p.phi), np.sin(p.phi)
        c2, s2 = np.cos(2 * p.phi), np.sin(2 * p.phi)
        q2, s, b_over_s = sie_constants(p)
        return cls(
            q2=q2, s=s, b_over_s=b_over_s,
            g1=p.gamma1 * c2 + p.gamma2 * s2, g2=-p.gamma1 * s2 + p.gamma2 * c2,
            bx=c * bx + s_ * by, by=-s_ * bx + c * by,
        )

    def take(self, index: np.ndarray, column: bool = False) -> "_LensFrame":
        pick = (lambda a: a[index][:, None]) if column else (lambda a: a[index])  # noqa: E731
        return _LensFrame(*(pick(getattr(self, name)) for name in self.__dataclass_fields__))


def _residual(u: np.ndarray, f: _LensFrame) -> tuple[np.ndarray, np.ndarray]:
    """f and r at lens-frame angles ``u`` (broadcast against the per-lens constants)."""
    c, s = np.cos(u), np.sin(u)
    ax, ay = sie_deflection_lens_frame(c, s, f.q2, f.s, f.b_over_s)
    wx, wy = f.bx + ax, f.by + ay
    vx = (1.0 - f.g1) * c - f.g2 * s
    vy = (1.0 + f.g1) * s - f.g2 * c
    return vx * wy - vy * wx, (vx * wx + vy * wy) / (vx * vx + vy * vy)


def _hidden_pairs(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, k) of interior points next to which two roots may hide between the samples.

    Roots hide where |f| has a local minimum that is small against the curvature:
    for f ~ a t^2 + c with two roots between the samples, |f_k| <= a h^2 / 4, while the
    second difference is 2 a h^2, so refining where |f_k| <= |second difference| keeps
    an 8x margin. A lone root next to a sample also qualifies, but only for a level
    or two: the second difference shrinks as h^2 and |f| only as h.
    """
    left, mid, right = f[:, :-2], f[:, 1:-1], f[:, 2:]
    a_mid = np.abs(mid)
    curvature = np.abs(left - 2 * mid + right)
    row, k = np.nonzero((a_mid <= np.abs(left)) & (a_mid < np.abs(right)) & (a_mid <= curvature))
    return row, k + 1


def _scan(grid: np.ndarray, frame: _LensFrame, n: int) -> tuple[np.ndarray, ...]:
    """Brackets (lens, lo, hi, f(lo)) holding every root, lenses in cache-sized blocks.

    Two roots can only hide between samples where |f| has a local minimum near zero
    (images about to merge at a fold or cusp). Around each such point the two neighbouring
    cells are rescanned ``_REFINE`` times finer, level after level, until no hiding
    place is left; cells that are refined hand their sign changes to the finer level,
    so no root is bracketed twice.
    """
    out: list[tuple[np.ndarray, ...]] = []
    closed = np.append(grid, 2 * np.pi)
    for a in range(0, n, _SCAN_BLOCK):
        block = np.arange(a, min(a + _SCAN_BLOCK, n))
        f, _ = _residual(grid[None, :], frame.take(block, column=True))
        # close the circle: one point before the first and after the last
        f = np.concatenate([f[:, -1:], f, f[:, :1]], axis=1)
        t = np.concatenate([[closed[-2] - 2 * np.pi], closed])[None, :].repeat(len(block), axis=0)
        lens = block
        m = len(grid)
        for level in range(_LEVELS):
            # the last level refines nothing: it keeps every sign change it has
            row, k = _hidden_pairs(f) if level < _LEVELS - 1 else (np.empty(0, int), np.empty(0, int))
            refined = np.zeros(f.shape, dtype=bool)
            refined[row, k - 1] = refined[row, k] = True  # cells [k-1, k] and [k, k+1]
            if level == 0:
                # coarse cell 0 (just below angle 0) is cell m (just below 2 pi) seen again
                refined[:, m] |= refined[:, 0]
                refined[:, 0] = True
            r, c = np.nonzero((np.signbit(f[:, :-1]) != np.signbit(f[:, 1:])) & ~refined[:, :-1])
            out.append((lens[r], t[r, c], t[r, c + 1], f[r, c]))
            if row.size == 0:
                break
            lo, hi = t[row, k - 1], t[row, k + 1]
            t = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, 2 * _REFINE + 1)[None, :]
            lens = lens[row]
            fine, _ = _residual(t, frame.take(lens, column=True))
            fine[:, 0], fine[:, -1] = f[row, k - 1], f[row, k + 1]
            f = fine
    lens, lo, hi, f_lo = (np.concatenate(parts) for parts in zip(*out))
    # a bracket may straddle the seam at 2 pi: fold angles back into [0, 2 pi)
    shift = np.where(lo < 0, 2 * np.pi, 0.0)
    return lens, lo + shift, hi + shift, f_lo


def find_images(bx: np.ndarray, by: np.ndarray, p: LensParams, n_grid: int = 256) -> Images:
    """All images of sources (bx, by), arcsec, for each lens."""
    frame = _LensFrame.build(np.asarray(bx, dtype=float), np.asarray(by, dtype=float), p)
    grid = np.linspace(0.0, 2 * np.pi, n_grid, endpoint=False)
    lens, lo, hi, f_lo = _scan(grid, frame, len(p))
    if lens.size == 0:
        return Images(lens, np.empty(0), np.empty(0))
    fk = frame.take(lens)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        f_mid, _ = _residual(mid, fk)
        same = np.signbit(f_mid) == np.signbit(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, f_mid, f_lo)
        hi = np.where(same, hi, mid)
    u = 0.5 * (lo + hi)
    _, r = _residual(u, fk)
    t = u + p.phi[lens]
    keep = r > 0
    return Images(lens[keep], (r * np.cos(t))[keep], (r * np.sin(t))[keep])
