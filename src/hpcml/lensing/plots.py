"""Lensing report figures: what a lens modeller looks at first."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hpcml.core.figures import save_figure  # noqa: E402
from hpcml.lensing.model import LensParams, magnification, ray_shoot  # noqa: E402


def image_counts(catalogs: dict[str, pd.DataFrame], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(catalogs)
    for k, (family, lenses) in enumerate(catalogs.items()):
        counts = np.bincount(lenses.n_images, minlength=6)[:6] / len(lenses)
        ax.bar(np.arange(6) + (k - (len(catalogs) - 1) / 2) * width, counts, width, label=family)
    ax.set_xlabel("number of images")
    ax.set_ylabel("fraction of lenses")
    ax.set_xticks(range(6))
    ax.legend(title="family")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _params(row: pd.Series) -> LensParams:
    return LensParams(*(np.array([row[c]]) for c in ("theta_e", "q", "phi", "gamma1", "gamma2")))


def example_systems(lenses: pd.DataFrame, images: pd.DataFrame, n: int, path: Path, family: str) -> None:
    """Images, critical curves (det A = 0) and caustics (their source-plane map)."""
    picks = [lenses[lenses.n_images == k].head(1) for k in (4, 3, 2, 1)]
    chosen = pd.concat([p for p in picks if len(p)] + [lenses.head(n)]).drop_duplicates("lens_id").head(n)
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.2 * len(chosen), 3.4), squeeze=False)
    extent = 2.6
    grid = np.linspace(-extent, extent, 400)
    gx, gy = np.meshgrid(grid, grid)
    for ax, (_, row) in zip(axes[0], chosen.iterrows()):
        p = _params(row)
        det = 1.0 / magnification(gx.ravel()[None], gy.ravel()[None], p.column()).reshape(gx.shape)
        contour = ax.contour(gx, gy, det, levels=[0.0], colors="tab:blue", linewidths=1)
        for segment in contour.allsegs[0]:
            sx, sy = ray_shoot(segment[:, 0][None], segment[:, 1][None], p.column())
            ax.plot(sx[0], sy[0], color="tab:orange", lw=1)
        ring = np.linspace(0, 2 * np.pi, 400)
        cx, cy = ray_shoot(1e-6 * np.cos(ring)[None], 1e-6 * np.sin(ring)[None], p.column())
        ax.plot(cx[0], cy[0], color="tab:orange", lw=1, ls="--")
        mine = images[images.lens_id == row.lens_id]
        ax.scatter(mine.x, mine.y, s=20 + 10 * np.log1p(np.abs(mine.magnification)), c="k", zorder=3)
        ax.plot(row.source_x, row.source_y, marker="*", color="tab:red", ms=10, ls="none")
        ax.set_title(f"lens {row.lens_id}: {row.n_images} image{'s' if row.n_images != 1 else ''}", fontsize=9)
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.set_xlabel("x [arcsec]")
    axes[0, 0].set_ylabel("y [arcsec]")
    fig.suptitle(f"{family}: critical curves (blue), caustics (orange; cut dashed), images (black), source (red)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def delays_and_magnifications(catalogs: dict[str, pd.DataFrame], path: Path) -> None:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for family, images in catalogs.items():
        first = images.groupby("lens_id").time_delay.transform("min")
        delay = (images.time_delay - first)[images.image > 0]
        a1.hist(np.log10(delay.clip(lower=1e-3)), bins=60, histtype="step", label=family)
        a2.hist(np.log10(np.abs(images.magnification)), bins=60, histtype="step", label=family)
    a1.set_xlabel("log10 delay after first image [days]")
    a2.set_xlabel("log10 |magnification|")
    for ax in (a1, a2):
        ax.set_ylabel("images")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def rendered_examples(render: np.ndarray, lenses: pd.DataFrame, path: Path, n: int = 8) -> None:
    n = min(n, len(render))
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.2), squeeze=False)
    for k, ax in enumerate(axes[0]):
        ax.imshow(render[k], origin="lower", cmap="magma")
        ax.set_title(f"lens {lenses.lens_id.iloc[k]} ({lenses.n_images.iloc[k]})", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
