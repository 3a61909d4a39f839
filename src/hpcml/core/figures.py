"""Figures are outputs like any other: complete or absent, with the group's file mode.

matplotlib is imported only when a figure is saved, so importing :mod:`hpcml.core` stays
cheap for steps that draw nothing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hpcml.core.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save_figure(fig: Figure, path: str | os.PathLike, dpi: float = 120) -> None:
    """Write ``fig`` to ``path`` through :func:`~hpcml.core.atomic.atomic_path` and close it.

    The format is named explicitly from the target's suffix (PNG without one): matplotlib
    would otherwise read it from the temporary name, or append an extension to a name that
    has none and leave the temporary file empty. Closing drops pyplot's reference, which
    would keep every figure of a report in memory.
    """
    import matplotlib.pyplot as plt

    target = Path(path)
    try:
        with atomic_path(target, suffix=target.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, format=target.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
