"""Lensing report figures: what a lens modeller looks at first."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

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


def _pick(lenses: pd.DataFrame, n: int) -> np.ndarray:
    """Row positions of ``n`` systems, the first with 4, 3, 2 and 1 images first, so the panels show each kind."""
    counts = lenses.n_images.to_numpy()
    firsts = [int(np.flatnonzero(counts == k)[0]) for k in (4, 3, 2, 1) if (counts == k).any()]
    return np.array(list(dict.fromkeys(firsts + list(range(len(lenses)))))[:n], dtype=int)


# The report shows a figure at most as wide as the window and never scales it down to its
# height: a strip of panels shrinks to thumbnails and a tall figure loses its top, so grids
# of panels about 700 pixels high.
PANEL, DPI = 3.0, 100


def _grid(n: int, panel: float = PANEL) -> tuple[plt.Figure, list[plt.Axes]]:
    """A near-square grid of ``n`` panels of ``panel`` inches, with room for a legend or colour bar."""
    ncols = int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols + 1.0, panel * nrows + 0.8), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _title(row: pd.Series) -> str:
    return f"lens {row.lens_id}: {row.n_images} image{'s' if row.n_images != 1 else ''}, theta_E {row.theta_e:.2f}\""


def example_systems(lenses: pd.DataFrame, images: pd.DataFrame, n: int, path: Path, family: str) -> None:
    """Images, critical curves (det A = 0) and caustics (their source-plane map)."""
    chosen = lenses.iloc[_pick(lenses, n)]
    fig, axes = _grid(len(chosen))
    for k, (ax, (_, row)) in enumerate(zip(axes, chosen.iterrows())):
        p = _params(row)
        mine = images[images.lens_id == row.lens_id]
        # wide enough for every image: a far image of a strongly sheared lens lies beyond 2.5"
        extent = max(2.6, 1.1 * float(np.abs(mine[["x", "y"]].to_numpy()).max(initial=0.0)))
        grid = np.linspace(-extent, extent, 400)
        gx, gy = np.meshgrid(grid, grid)
        det = 1.0 / magnification(gx.ravel()[None], gy.ravel()[None], p.column()).reshape(gx.shape)
        contour = ax.contour(gx, gy, det, levels=[0.0], colors="tab:blue", linewidths=1)
        for segment in contour.allsegs[0]:
            sx, sy = ray_shoot(segment[:, 0][None], segment[:, 1][None], p.column())
            ax.plot(sx[0], sy[0], color="tab:orange", lw=1)
        ring = np.linspace(0, 2 * np.pi, 400)
        cx, cy = ray_shoot(1e-6 * np.cos(ring)[None], 1e-6 * np.sin(ring)[None], p.column())
        ax.plot(cx[0], cy[0], color="tab:orange", lw=1, ls="--")
        ax.scatter(mine.x, mine.y, s=20 + 10 * np.log1p(np.abs(mine.magnification)), c="k", zorder=3)
        ax.plot(row.source_x, row.source_y, marker="*", color="tab:red", ms=10, ls="none")
        ax.set_title(_title(row), fontsize=9)
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.set_xlabel("x [arcsec]")
        if k % axes[0].get_gridspec().ncols == 0:
            ax.set_ylabel("y [arcsec]")
    key = [Line2D([], [], color="tab:blue", lw=1), Line2D([], [], color="tab:orange", lw=1), Line2D([], [], color="tab:orange", lw=1, ls="--"),
           Line2D([], [], color="k", marker="o", ls="none"), Line2D([], [], color="tab:red", marker="*", ms=10, ls="none")]
    fig.legend(key, ["critical curve", "caustic", "cut", "images (size: magnification)", "source"], loc="outside lower center", ncols=5, fontsize=8)
    fig.suptitle(f'Example systems, family "{family}"', fontsize=10)
    save_figure(fig, path, dpi=DPI)


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


def rendered_examples(render: np.ndarray, lenses: pd.DataFrame, path: Path, n: int = 6) -> None:
    """The stored images of a few systems (each kind of image count first) on one brightness scale, with its colour bar."""
    rows = _pick(lenses, min(n, len(render)))
    stamps = np.stack([render[r] for r in rows])
    low, high = np.percentile(stamps, [1, 99.8])
    fig, axes = _grid(len(rows))
    for ax, stamp, (_, row) in zip(axes, stamps, lenses.iloc[rows].iterrows()):
        shown = ax.imshow(stamp, origin="lower", cmap="magma", vmin=low, vmax=high)
        ax.set_title(_title(row), fontsize=9)
        ax.set_xlabel("x [pixel]", fontsize=8)
        ax.set_ylabel("y [pixel]", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.colorbar(shown, ax=axes, shrink=0.8, label="surface brightness (as stored)")
    save_figure(fig, path, dpi=DPI)
