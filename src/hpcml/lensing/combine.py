"""Combining shards into one catalogue per family, streaming shard by shard.

Memory stays bounded by one shard, whatever the number of lenses: tables are copied
shard by shard into Parquet row groups, images appended to one ``.npy``, and lens ids
compared shard by shard with the ids expected at that position (gathering them all
for the full check took ~90 bytes per lens: 94 MB at a million). The combined
catalogue is only written if every expected lens id appears exactly once, in order.
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
    files = [shard_outputs(d, family) for d in shard_dirs]
    out_dir = Path(out_dir)
    _check_lens_ids(files, inputs, family)

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
        concat_npy([f["render"] for f in files], out_dir / "render.npy", rows=inputs.n_lenses)
    summary = {"family": family, "n_lenses": inputs.n_lenses, "n_images": int(n_images), "n_shards": len(files)}
    write_json(out_dir / "summary.json", summary)
    log.info("%s: %d lenses, %d images from %d shards", family, inputs.n_lenses, n_images, len(files))
    return summary


def _check_lens_ids(files: list[dict[str, Path]], inputs: LensInputs, family: str) -> None:
    """Every expected lens id exactly once, in order, holding one shard's ids at a time.

    On the first shard whose ids differ from those expected at its position, every id is
    gathered for :func:`check_ids`, which says what is missing, repeated or out of order.
    """
    table_ids = inputs.table.lens_id.to_numpy() if inputs.table is not None else None

    def expected(start: int, stop: int) -> np.ndarray:
        return table_ids[start:stop] if table_ids is not None else np.arange(start, min(stop, inputs.n_lenses))

    start = 0
    for f in files:
        ids = _lens_ids(f)
        if not np.array_equal(ids, expected(start, start + len(ids))):
            break
        start += len(ids)
    else:
        if start == inputs.n_lenses:
            return
    seen = np.concatenate([_lens_ids(f) for f in files])
    check_ids(seen, expected(0, inputs.n_lenses), context=f"family {family}", label="lens ids")


def _lens_ids(files: dict[str, Path]) -> np.ndarray:
    return pq.read_table(files["lenses"], columns=["lens_id"]).column(0).to_numpy()

