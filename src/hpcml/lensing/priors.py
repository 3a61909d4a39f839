"""Lens parameters drawn from the group's priors, one counter-based stream per quantity.

Draws are made in the group's Keeton convention (b, e_c, e_s) and converted; see
:mod:`hpcml.lensing.conventions`. Quantity k of lens i uses only uniforms(seed, i, k).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hpcml.core.config import ConfigError
from hpcml.lensing.planning import prior_problems
from hpcml.core.randomness import normals, truncated_normals, uniforms
from hpcml.lensing.conventions import keeton_to_lenstronomy, shear_polar_to_cartesian

# Stream numbers: fixed forever, so a lens drawn today is the same lens next year.
S_B, S_E, S_E_ANGLE, S_SHEAR, S_SHEAR_ANGLE, S_ZL, S_ZS, S_IMG_R, S_IMG_ANGLE = range(9)


def sample_lenses(seed: int, index: np.ndarray, priors: dict[str, Any]) -> dict[str, np.ndarray]:
    """Draws for the lenses with global indices ``index`` (family 'both')."""
    u = lambda stream: uniforms(seed, index, stream)  # noqa: E731
    b = priors["b_low"] + (priors["b_high"] - priors["b_low"]) * u(S_B)
    e = truncated_normals(seed, index, S_E, priors["ellipticity_mean"], priors["ellipticity_sd"], 0.0, priors["ellipticity_max"])
    e_angle = 2 * np.pi * u(S_E_ANGLE)
    e_c, e_s = e * np.cos(2 * e_angle), e * np.sin(2 * e_angle)
    gamma = priors["shear_median"] * 10 ** (priors["shear_scatter_dex"] * normals(seed, index, S_SHEAR))
    gamma_angle = 2 * np.pi * u(S_SHEAR_ANGLE)
    gamma1, gamma2 = shear_polar_to_cartesian(gamma, gamma_angle)
    theta_e, q, phi = keeton_to_lenstronomy(b, e_c, e_s)
    r = priors["image_radius_max"] * np.sqrt(u(S_IMG_R))
    a = 2 * np.pi * u(S_IMG_ANGLE)
    return {
        "theta_e": theta_e, "q": q, "phi": phi, "gamma1": gamma1, "gamma2": gamma2,
        "z_lens": priors["z_lens_low"] + (priors["z_lens_high"] - priors["z_lens_low"]) * u(S_ZL),
        "z_src": priors["z_src_low"] + (priors["z_src_high"] - priors["z_src_low"]) * u(S_ZS),
        "image_x": r * np.cos(a), "image_y": r * np.sin(a),
    }


def check_priors(priors: dict[str, Any]) -> None:
    """Refuse prior settings that cannot produce a valid lens: the Snakefile checks them
    before planning, this catches a run by hand (``--set lensing.priors...``)."""
    problems = prior_problems(priors)
    if problems:
        raise ConfigError("\n".join(problems))
