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

from hpcml.core.atomic import atomic_parquet_writer, write_json
from hpcml.core.concat import concat_npy
from hpcml.core.ids import check_ids
from hpcml.lensing.simulate import LensInputs, shard_outputs

log = logging.getLogger(__name__)


def combine_family(settings: dict[str, Any], seed: int, family: str, shard_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    inputs = LensInputs(settings, seed)
    expected = inputs.table.lens_id.to_numpy() if inputs.table is not None else np.arange(inputs.n_lenses)
    files = [shard_outputs(d, family) for d in shard_dirs]
    out_dir = Path(out_dir)

    seen = np.concatenate([pq.read_table(f["lenses"], columns=["lens_id"]).column(0).to_numpy() for f in files])
    check_ids(seen, expected, context=f"family {family}", label="lens ids")

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
        concat_npy([f["render"] for f in files], out_dir / "render.npy", rows=len(expected))
    summary = {"family": family, "n_lenses": int(len(expected)), "n_images": int(n_images), "n_shards": len(files)}
    write_json(out_dir / "summary.json", summary)
    log.info("%s: %d lenses, %d images from %d shards", family, len(expected), n_images, len(files))
    return summary

