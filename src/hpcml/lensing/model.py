"""SIE + external shear: deflection, potential, magnification, vectorised over lenses.

Lens centred at the origin; angles in arcsec; parameters in lenstronomy's convention
(see :mod:`hpcml.lensing.conventions`). Every function broadcasts: parameters of
shape ``(N, 1)`` against positions ``(N, M)`` evaluate M points for each of N lenses.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Below this sqrt(1 - q^2) the SIE is evaluated through its SIS limit; arctan(s t)/s
# and artanh(s t)/s equal t to double precision there.
_S_MIN = 1e-8


@dataclass
class LensParams:
    """Per-lens parameters as arrays of equal length (lenstronomy convention)."""

    theta_e: np.ndarray
    q: np.ndarray
    phi: np.ndarray
    gamma1: np.ndarray
    gamma2: np.ndarray

    def __len__(self) -> int:
        return len(self.theta_e)

    def take(self, index: np.ndarray) -> "LensParams":
        return LensParams(*(getattr(self, f.name)[index] for f in fields(self)))

    def column(self) -> "LensParams":
        """Shape every array as (N, 1) to broadcast against (N, M) positions."""
        return LensParams(*(np.asarray(getattr(self, f.name), dtype=np.float64)[:, None] for f in fields(self)))


def _rotate(x: np.ndarray, y: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(phi), np.sin(phi)
    return c * x + s * y, -s * x + c * y


def sie_constants(p: LensParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q^2, s = sqrt(1 - q^2), b / s) of the lens-frame deflection, b = theta_E sqrt(q)."""
    s = np.maximum(np.sqrt(1.0 - p.q**2), _S_MIN)
    return p.q**2, s, p.theta_e * np.sqrt(p.q) / s


def sie_deflection_lens_frame(xp: np.ndarray, yp: np.ndarray, q2: np.ndarray, s: np.ndarray, b_over_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SIE deflection in the lens frame (major axis along x), Keeton's form with zero core."""
    psi = np.sqrt(q2 * xp * xp + yp * yp)
    psi = np.where(psi > 0, psi, np.finfo(float).tiny)
    # arctan2(y, psi) == arctan(y / psi) for psi > 0, and numpy's arctan2 is ~3x faster
    return b_over_s * np.arctan2(s * xp, psi), b_over_s * np.arctanh(s * yp / psi)


def sie_deflection(x: np.ndarray, y: np.ndarray, p: LensParams) -> tuple[np.ndarray, np.ndarray]:
    """SIE deflection (Kormann et al. 1994)."""
    xp, yp = _rotate(x, y, p.phi)
    axp, ayp = sie_deflection_lens_frame(xp, yp, *sie_constants(p))
    return _rotate(axp, ayp, -p.phi)


def shear_deflection(x: np.ndarray, y: np.ndarray, p: LensParams) -> tuple[np.ndarray, np.ndarray]:
    return p.gamma1 * x + p.gamma2 * y, p.gamma2 * x - p.gamma1 * y


def deflection(x: np.ndarray, y: np.ndarray, p: LensParams) -> tuple[np.ndarray, np.ndarray]:
    ax, ay = sie_deflection(x, y, p)
    sx, sy = shear_deflection(x, y, p)
    return ax + sx, ay + sy


def potential(x: np.ndarray, y: np.ndarray, p: LensParams) -> np.ndarray:
    """Lensing potential. The SIE potential is homogeneous of degree one: psi = x . alpha."""
    ax, ay = sie_deflection(x, y, p)
    return x * ax + y * ay + 0.5 * p.gamma1 * (x**2 - y**2) + p.gamma2 * x * y


def convergence(x: np.ndarray, y: np.ndarray, p: LensParams) -> np.ndarray:
    b = p.theta_e * np.sqrt(p.q)
    xp, yp = _rotate(x, y, p.phi)
    return b / (2.0 * np.sqrt(p.q**2 * xp**2 + yp**2))


def magnification(x: np.ndarray, y: np.ndarray, p: LensParams) -> np.ndarray:
    """Signed magnification 1 / det(A).

    The SIE Hessian is 2 kappa t t^T with t the unit tangential vector (its potential
    is homogeneous of degree one, so the radial direction is a null vector), which
    gives det A = 1 - gamma^2 - 2 kappa (1 - gamma1 cos 2theta - gamma2 sin 2theta).
    """
    theta = np.arctan2(y, x)
    kappa = convergence(x, y, p)
    det = 1.0 - p.gamma1**2 - p.gamma2**2 - 2.0 * kappa * (
        1.0 - p.gamma1 * np.cos(2 * theta) - p.gamma2 * np.sin(2 * theta)
    )
    return 1.0 / det


def ray_shoot(x: np.ndarray, y: np.ndarray, p: LensParams) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane position of image-plane points (the lens equation)."""
    ax, ay = deflection(x, y, p)
    return x - ax, y - ay
