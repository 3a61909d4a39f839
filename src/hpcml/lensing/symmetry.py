"""How lens quantities transform when the sky is rotated by an angle a or shifted by t.

Positions and the lens centre rotate by a and shift by t; deflections rotate by a and
do not shift; spin-2 components (ellipticity e1, e2 or e_c, e_s; shear gamma1, gamma2)
rotate by 2a; scalars (Einstein radius, axis ratio, shear magnitude, potentials at the
images, delays, flux ratios, redshifts) do not change. Augmentation must apply exactly
this to inputs and labels together, or a network learns a wrong symmetry. The functions
take numpy arrays or torch tensors (same names in both) and broadcast over a batch.
"""
from __future__ import annotations

from typing import Any

# Label names -> how they transform: "scalar", or the spin-2 pair they belong to.
SPIN2_PAIRS = (("e1", "e2"), ("e_c", "e_s"), ("gamma1", "gamma2"))
SCALARS = ("theta_e", "b", "q", "gamma")
LENS_TARGETS = (*SCALARS, *(name for pair in SPIN2_PAIRS for name in pair))


def _xp(x: Any) -> Any:
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    import numpy

    return numpy


def rotate(x: Any, y: Any, angle: Any) -> tuple[Any, Any]:
    """Components of a vector (or positions) after rotating the sky counter-clockwise by ``angle``."""
    xp = _xp(x)
    c, s = xp.cos(angle), xp.sin(angle)
    return c * x - s * y, s * x + c * y


def rotate_spin2(c1: Any, c2: Any, angle: Any) -> tuple[Any, Any]:
    """Spin-2 components after the same rotation: they turn by twice the angle."""
    return rotate(c1, c2, 2 * angle)


def spin2_partner(name: str) -> tuple[str, int] | None:
    """The other component of ``name``'s spin-2 pair and ``name``'s place in it (0 or 1)."""
    for pair in SPIN2_PAIRS:
        if name in pair:
            k = pair.index(name)
            return pair[1 - k], k
    return None


def check_targets(names: list[str]) -> None:
    """Every target known, and spin-2 components only in complete pairs (a lone e1 has no
    rotation law of its own)."""
    unknown = [n for n in names if n not in LENS_TARGETS]
    if unknown:
        raise ValueError(f"lensing.models.targets: unknown {unknown}; choose from {list(LENS_TARGETS)}")
    for name in names:
        partner = spin2_partner(name)
        if partner and partner[0] not in names:
            raise ValueError(f"lensing.models.targets: {name} needs {partner[0]} too (spin-2 components rotate together)")
