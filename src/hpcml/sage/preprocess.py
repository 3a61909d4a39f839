"""Pairs into training arrays, once: crop, resize, convert, in shards that resume after a kill.

The group decoded every JPG (6144x2048) in every epoch. Here each capture is decoded
once, at a reduced DCT scale where the target size allows (PIL's ``draft``), its
optical half cropped to the thermal field of view (``sage.preprocess.box``) and resized
to ``size``; the thermal CSV is parsed and resized to the same grid, so one crop and
flip on the device applies to both. Rows of an index table carry what evaluation needs:
the solar elevation at the node and time (day/night), whether the position looks at the
sky, and the cloud fraction measured on the full-resolution thermal image.

Arrays: ``rgb.npy`` uint8 (N, C, H, W), C = 1 when greyscale else 3; ``thermal.npy``
float16 (N, 1, H, W) in degrees Celsius; ``index.parquet`` in the same order.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from hpcml.core.atomic import write_npy, write_parquet
from hpcml.core.chunks import run_chunks
from hpcml.core.concat import concat_npy
from hpcml.core.shards import chunk_ranges, plan_shards
from hpcml.sage.solar import solar_elevation
from hpcml.sage.thermal import read_thermal

log = logging.getLogger(__name__)
ARRAYS = ("rgb.npy", "thermal.npy")
INDEX = "index.parquet"
CLEAR_SKY_PERCENTILE = 5


def preprocess_shard(pairs: str | Path, shard: int, out: str | Path, sage: dict[str, Any]) -> None:
    """Arrays and index of one shard of ``pairs.parquet`` (empty ones past the last pair)."""
    settings = sage["preprocess"]
    out = Path(out)
    table = pd.read_parquet(pairs)
    shards = plan_shards(len(table), settings["shard_size"])
    if shard < 0:
        raise ValueError(f"shard {shard} does not exist (shards count from 0)")
    if shard >= len(shards):
        log.info("shard %d: past the %d pairs (the plan counts optical files before pairing): empty arrays", shard, len(table))
        _write(out, _convert(table.iloc[:0], settings, sage["patterns"]["sky_positions"]))
        return
    span = shards[shard]
    work = out.with_name(out.name + ".work")
    fingerprint = {"preprocess": settings, "sky_positions": sage["patterns"]["sky_positions"], "pairs_sha256": _digest(pairs)}

    def write_chunk(start: int, stop: int, folder: Path) -> None:
        _write(folder, _convert(table.iloc[start:stop], settings, sage["patterns"]["sky_positions"]))

    chunks = run_chunks(work, chunk_ranges(span.start, span.stop, settings["chunk_size"]), write_chunk, fingerprint,
                        label=f"shard {shard}", unit="captures")
    combine_shards(chunks, out)
    shutil.rmtree(work)
    log.info("shard %d: %d captures written to %s", shard, span.size, out)


def combine_shards(shards: list[str | Path], out: str | Path) -> None:
    """Concatenate shard (or chunk) folders in order; memory bounded by one of them."""
    out = Path(out)
    folders = [Path(s) for s in shards]
    index = pd.concat([pd.read_parquet(f / INDEX) for f in folders], ignore_index=True)
    duplicated = index["capture"].duplicated()
    if duplicated.any():
        raise ValueError(f"{out}: capture {index['capture'][duplicated].iloc[0]} appears in two shards; rerun the preprocessing shards")
    for name in ARRAYS:
        concat_npy([f / name for f in folders], out / name, rows=len(index))
    write_parquet(out / INDEX, index)


def _convert(pairs: pd.DataFrame, settings: dict[str, Any], sky_positions: list[int]) -> dict[str, Any]:
    height, width = settings["size"]
    channels = 1 if settings["greyscale"] else 3
    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        done = list(pool.map(lambda row: _capture(row, settings), pairs.itertuples(index=False)))
    rgb = np.stack([d[0] for d in done]) if done else np.zeros((0, channels, height, width), np.uint8)
    thermal = np.stack([d[1] for d in done]) if done else np.zeros((0, 1, height, width), np.float16)
    index = pd.DataFrame({
        "capture": [f"{r.node}/{r.timestamp_ns}/{r.position}" for r in pairs.itertuples(index=False)],
        "node": pairs["node"].to_numpy(),
        "timestamp_ns": pairs["timestamp_ns"].to_numpy(np.int64),
        "position": pairs["position"].to_numpy(np.int16),
        "latitude": pairs["latitude"].to_numpy(np.float64),
        "longitude": pairs["longitude"].to_numpy(np.float64),
        "solar_elevation": solar_elevation(pairs["timestamp_ns"].to_numpy(np.int64), pairs["latitude"].to_numpy(np.float64),
                                           pairs["longitude"].to_numpy(np.float64)).astype(np.float32),
        "sky_pointing": pairs["position"].isin(sky_positions).to_numpy(),
        "cloud_fraction": np.array([d[2] for d in done], dtype=np.float32),
        "rgb_path": pairs["rgb_path"].to_numpy(),
        "thermal_path": pairs["thermal_path"].to_numpy(),
    })
    index["is_day"] = index["solar_elevation"] > 0
    return {"rgb": rgb, "thermal": thermal, "index": index}


def _capture(row: Any, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    height, width = settings["size"]
    left, top, right, bottom = settings["box"]
    try:
        with Image.open(row.rgb_path) as image:
            half = image.width // 2
            crop_w, crop_h = (right - left) * half, (bottom - top) * image.height
            image.draft("RGB", (max(1, int(image.width * width / crop_w)), max(1, int(image.height * height / crop_h))))
            scale = image.width / (2 * half)
            box = (left * half * scale, top * image.height, right * half * scale, bottom * image.height)
            optical = image.convert("L" if settings["greyscale"] else "RGB").resize((width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)
    except OSError as error:
        raise ValueError(f"{row.rgb_path}: cannot decode the JPEG ({error}); pairing should have listed it, rerun 'hpcml sage pair'") from None
    rgb = np.asarray(optical, dtype=np.uint8)
    rgb = rgb[None] if rgb.ndim == 2 else rgb.transpose(2, 0, 1)
    celsius = read_thermal(row.thermal_path)
    clear = np.percentile(celsius, CLEAR_SKY_PERCENTILE)
    cloud = float(np.mean(celsius > clear + settings["cloud_threshold"]))
    resized = np.asarray(Image.fromarray(celsius).resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0))
    return np.ascontiguousarray(rgb), resized[None].astype(np.float16), cloud


def _write(folder: Path, parts: dict[str, Any]) -> None:
    write_npy(folder / "rgb.npy", parts["rgb"])
    write_npy(folder / "thermal.npy", parts["thermal"])
    write_parquet(folder / INDEX, parts["index"])


def _digest(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
