"""The lensing report step: figures and a summary from the combined catalogues."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpcml.core.atomic import write_json
from hpcml.lensing import plots


def make_report(catalog_dir: Path, families: list[str], out_dir: Path, n_examples: int) -> None:
    catalog_dir, out_dir = Path(catalog_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lenses = {f: pd.read_parquet(catalog_dir / f / "lenses.parquet") for f in families}
    images = {f: pd.read_parquet(catalog_dir / f / "images.parquet") for f in families}
    plots.image_counts(lenses, out_dir / "image_counts.png")
    plots.delays_and_magnifications(images, out_dir / "delays_magnifications.png")
    family = "both" if "both" in families else families[0]
    plots.example_systems(lenses[family], images[family], n_examples, out_dir / "examples.png", family)
    render_path = catalog_dir / family / "render.npy"
    if render_path.exists():
        plots.rendered_examples(np.load(render_path, mmap_mode="r"), lenses[family], out_dir / "rendered.png")
    summary = {
        f: {
            "n_lenses": len(lenses[f]),
            "image_count_fractions": {str(k): float(v) for k, v in (lenses[f].n_images.value_counts(normalize=True).sort_index()).items()},
        }
        for f in families
    }
    write_json(out_dir / "summary.json", summary)
