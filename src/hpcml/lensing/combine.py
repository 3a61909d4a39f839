"""Combining shards into one catalogue per family, streaming shard by shard.

Memory stays bounded by one shard, whatever the number of lenses. The combined
catalogue is only written if every expected lens id appears exactly once.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from hpcml.core.atomic import atomic_npy_memmap, atomic_parquet_writer, write_json
from hpcml.lensing.simulate import LensInputs, shard_outputs

log = logging.getLogger(__name__)


class CombineError(RuntimeError):
    """Shards do not add up to the planned set of lenses."""


def combine_family(settings: dict[str, Any], seed: int, family: str, shard_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    inputs = LensInputs(settings, seed)
    expected = inputs.table.lens_id.to_numpy() if inputs.table is not None else np.arange(inputs.n_lenses)
    files = [shard_outputs(d, family) for d in shard_dirs]
    out_dir = Path(out_dir)

    seen = np.concatenate([pq.read_table(f["lenses"], columns=["lens_id"]).column(0).to_numpy() for f in files])
    _check_ids(seen, expected, family)

    lens_schema = pq.read_schema(files[0]["lenses"])
    image_schema = pq.read_schema(files[0]["images"])
    n_images = 0
    with atomic_parquet_writer(out_dir / "lenses.parquet", lens_schema) as lenses, \
            atomic_parquet_writer(out_dir / "images.parquet", image_schema) as images:
        for f in files:
            lenses.write_table(pq.read_table(f["lenses"], schema=lens_schema))
            part = pq.read_table(f["images"], schema=image_schema)
            n_images += part.num_rows
            images.write_table(part)
    if settings["render"]["enabled"]:
        size = settings["render"]["size"]
        with atomic_npy_memmap(out_dir / "render.npy", (len(expected), size, size)) as array:
            row = 0
            for f in files:
                part = np.load(f["render"], mmap_mode="r")
                array[row:row + len(part)] = part
                row += len(part)
    summary = {"family": family, "n_lenses": int(len(expected)), "n_images": int(n_images), "n_shards": len(files)}
    write_json(out_dir / "summary.json", summary)
    log.info("%s: %d lenses, %d images from %d shards", family, len(expected), n_images, len(files))
    return summary


def _check_ids(seen: np.ndarray, expected: np.ndarray, family: str) -> None:
    values, counts = np.unique(seen, return_counts=True)
    repeated = values[counts > 1]
    missing = np.setdiff1d(expected, values)
    extra = np.setdiff1d(values, expected)
    problems = []
    if repeated.size:
        problems.append(f"{repeated.size} lens ids repeated (first: {repeated[:5].tolist()})")
    if missing.size:
        problems.append(f"{missing.size} lens ids missing (first: {missing[:5].tolist()})")
    if extra.size:
        problems.append(f"{extra.size} unexpected lens ids (first: {extra[:5].tolist()})")
    if problems:
        raise CombineError(f"family {family}: " + "; ".join(problems) + ". Re-run the affected shards.")
    if not np.array_equal(seen, expected):
        raise CombineError(f"family {family}: shards are out of order; pass shard folders in shard order")
