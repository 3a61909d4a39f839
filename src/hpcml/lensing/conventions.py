"""Parameter conventions, and the conversions between them.

This package computes in **lenstronomy's SIE convention**: ``theta_e`` is the
Einstein radius of the intermediate axis, ``q`` the axis ratio (minor/major), ``phi``
the major-axis angle counter-clockwise from +x; the ellipticity components are
``e1, e2 = (1-q)/(1+q) (cos 2phi, sin 2phi)``.

The lensing group samples in **Keeton's pygravlens convention** (model ``ellpow``):
``b`` with convergence ``b / (2 sqrt(q^2 x'^2 + y'^2))``, ``q = 1 - e`` with
``e = sqrt(e_c^2 + e_s^2)``, position angle ``atan2(e_s, e_c) / 2``. Hence
``b = theta_e sqrt(q)``. Shear ``(gamma1, gamma2)`` (Keeton's ``gammac, gammas``) has the
potential ``gamma1 (x^2 - y^2) / 2 + gamma2 x y`` in both conventions.
"""
from __future__ import annotations

import numpy as np


def keeton_to_lenstronomy(b: np.ndarray, e_c: np.ndarray, e_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(b, e_c, e_s) -> (theta_e, q, phi)."""
    e = np.hypot(e_c, e_s)
    q = 1.0 - e
    phi = np.mod(0.5 * np.arctan2(e_s, e_c), np.pi)
    return b / np.sqrt(q), q, phi


def lenstronomy_to_keeton(theta_e: np.ndarray, q: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta_e, q, phi) -> (b, e_c, e_s)."""
    e = 1.0 - q
    return theta_e * np.sqrt(q), e * np.cos(2 * phi), e * np.sin(2 * phi)


def q_phi_to_e1e2(q: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = (1.0 - q) / (1.0 + q)
    return e * np.cos(2 * phi), e * np.sin(2 * phi)


def e1e2_to_q_phi(e1: np.ndarray, e2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.hypot(e1, e2)
    return (1.0 - e) / (1.0 + e), np.mod(0.5 * np.arctan2(e2, e1), np.pi)


def shear_polar_to_cartesian(gamma: np.ndarray, phi_gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return gamma * np.cos(2 * phi_gamma), gamma * np.sin(2 * phi_gamma)


def shear_cartesian_to_polar(gamma1: np.ndarray, gamma2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.hypot(gamma1, gamma2), np.mod(0.5 * np.arctan2(gamma2, gamma1), np.pi)
