"""Ingest: challenge text files -> float32 arrays and a metadata table, by shards.

A shard holds a contiguous slice of the sorted file list of one data set (``train``
from noisy_train/ + params_train/, ``test`` from noisy_test/). Bad files stop the run
(``on_bad_file: stop``) or are set aside and listed in the report (``skip``).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.ariel.formats import N_TIMESTEPS, N_WAVELENGTHS, ArielFormatError, STELLAR_KEYS, parse_name, read_noisy, read_params
from hpcml.ariel.layout import DATASETS, PARAMS, list_files
from hpcml.core.atomic import write_json, write_npy, write_parquet
from hpcml.core.concat import concat_npy
from hpcml.core.ids import check_ids
from hpcml.core.shards import plan_shards

log = logging.getLogger(__name__)


def ingest_shard(input_dir: str | Path, dataset: str, shard_index: int, shard_size: int, out_dir: str | Path, on_bad_file: str) -> dict[str, Any]:
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    names = list_files(input_dir, dataset)
    shards = plan_shards(len(names), shard_size)
    if not 0 <= shard_index < len(shards):
        raise ValueError(f"{dataset} shard {shard_index} does not exist: {len(names)} files make {len(shards)} shards")
    shard = shards[shard_index]
    names = names[shard.start:shard.stop]
    x = np.empty((len(names), N_WAVELENGTHS, N_TIMESTEPS), dtype=np.float32)
    stellar = np.empty((len(names), len(STELLAR_KEYS)), dtype=np.float64)
    targets = np.full((len(names), N_WAVELENGTHS), np.nan, dtype=np.float32)
    sma = np.full(len(names), np.nan)
    incl = np.full(len(names), np.nan)
    good, bad = [], []
    tic = time.perf_counter()
    n_bytes = 0
    for k, name in enumerate(names):
        noisy = input_dir / DATASETS[dataset] / name
        try:
            ids = parse_name(noisy)
            row = len(good)
            stellar[row] = read_noisy(noisy, x[row])
            if dataset == "train":
                params = input_dir / PARAMS / name
                if not params.exists():
                    raise ArielFormatError(f"{noisy}: training file has no params file ({params} is missing)")
                targets[row], sma[row], incl[row] = read_params(params)
            n_bytes += noisy.stat().st_size
            good.append((name, ids.planet, ids.spot, ids.photon))
        except ArielFormatError as error:
            if on_bad_file == "stop":
                raise ArielFormatError(f"{error}\n(set ariel.ingest.on_bad_file: skip to set such files aside)") from None
            log.warning("skipping bad file: %s", error)
            bad.append({"file": str(noisy), "error": str(error)})
        if (k + 1) % 1000 == 0:
            log.info("%s shard %d: %d/%d files", dataset, shard_index, k + 1, len(names))
    n = len(good)
    elapsed = time.perf_counter() - tic
    meta = pd.DataFrame(good, columns=["file", "planet", "spot", "photon"])
    meta["sma"], meta["incl"] = sma[:n], incl[:n]
    write_npy(out_dir / "X.npy", x[:n])
    write_npy(out_dir / "stellar.npy", stellar[:n])
    write_npy(out_dir / "targets.npy", targets[:n])
    write_parquet(out_dir / "meta.parquet", meta)
    report = {"dataset": dataset, "shard": shard_index, "files": len(names), "ingested": n, "bad_files": bad, "seconds": elapsed, "mb_per_s": n_bytes / 1e6 / max(elapsed, 1e-9)}
    write_json(out_dir / "report.json", report)
    log.info("%s shard %d: %d files ingested, %d set aside, %.0f MB/s", dataset, shard_index, n, len(bad), report["mb_per_s"])
    return report


def combine_shards(shard_dirs: list[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Concatenate shards into one data set; memory bounded by one shard."""
    shard_dirs, out_dir = [Path(d) for d in shard_dirs], Path(out_dir)
    reports = [json.loads((d / "report.json").read_text()) for d in shard_dirs]
    metas = [pd.read_parquet(d / "meta.parquet") for d in shard_dirs]
    meta = pd.concat(metas, ignore_index=True)
    check_ids(meta.file.to_numpy(dtype=str), context=str(out_dir), label="files", rerun="the ingest shards")
    n = len(meta)
    for name in ("X.npy", "stellar.npy", "targets.npy"):
        concat_npy([d / name for d in shard_dirs], out_dir / name, rows=n)
    write_parquet(out_dir / "meta.parquet", meta)
    report = {
        "files": sum(r["files"] for r in reports),
        "ingested": n,
        "bad_files": [b for r in reports for b in r["bad_files"]],
        "planets": int(meta.planet.nunique()),
    }
    write_json(out_dir / "ingest_report.json", report)
    return report


def ingest_all(input_dir: str | Path, out_dir: str | Path, shard_size: int = 500, on_bad_file: str = "stop") -> dict[str, Any]:
    """Everything in one process: what ``hpcml ariel ingest INPUT OUTPUT`` does by hand."""
    out_dir = Path(out_dir)
    summary = {}
    for dataset in DATASETS:
        if not (Path(input_dir) / DATASETS[dataset]).is_dir() and dataset == "test":
            continue
        shards = plan_shards(len(list_files(input_dir, dataset)), shard_size)
        dirs = [out_dir / "shards" / dataset / s.name for s in shards]
        for s, d in zip(shards, dirs):
            ingest_shard(input_dir, dataset, s.index, shard_size, d, on_bad_file)
        summary[dataset] = combine_shards(dirs, out_dir / dataset)
    return summary
