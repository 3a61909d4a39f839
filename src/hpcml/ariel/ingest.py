"""Ingest: challenge text files -> float32 arrays and a metadata table, by shards.

A shard holds a contiguous slice of the sorted file list of one data set (``train``
from noisy_train/ + params_train/, ``test`` from noisy_test/). Bad files stop the run
(``on_bad_file: stop``) or are set aside and listed in the report (``skip``). Every
entry of a data folder is looked at, so nothing is skipped without a word.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.ariel.formats import ArielFormatError, STELLAR_KEYS, parse_name, read_noisy, read_params
from hpcml.ariel.layout import N_TIMESTEPS, N_WAVELENGTHS
from hpcml.ariel.layout import DATASETS, PARAMS, hidden_entries, list_files
from hpcml.core.atomic import atomic_npy_memmap, write_json, write_npy, write_parquet
from hpcml.core.concat import concat_npy
from hpcml.core.ids import check_ids
from hpcml.core.shards import plan_shards

log = logging.getLogger(__name__)
ARRAYS = ("X.npy", "stellar.npy", "targets.npy")
SKIP_HINT = "(set ariel.ingest.on_bad_file: skip to set such files aside)"
SHOWN = 5


def ingest_shard(input_dir: str | Path, dataset: str, shard_index: int, shard_size: int, out_dir: str | Path, on_bad_file: str) -> dict[str, Any]:
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    folder = input_dir / DATASETS[dataset]
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
        noisy = folder / name
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
            # the light curves' digest finds copies across shards (see combine_shards); SHA-1, the fastest in hashlib
            good.append((name, ids.planet, ids.spot, ids.photon, hashlib.sha1(x[row], usedforsecurity=False).hexdigest()))
        except ArielFormatError as error:
            if on_bad_file == "stop":
                raise ArielFormatError(f"{error}\n{SKIP_HINT}") from None
            log.warning("skipping bad file: %s", error)
            bad.append({"file": str(noisy), "error": str(error)})
        if (k + 1) % 1000 == 0:
            log.info("%s shard %d: %d/%d files", dataset, shard_index, k + 1, len(names))
    n = len(good)
    elapsed = time.perf_counter() - tic
    meta = pd.DataFrame(good, columns=["file", "planet", "spot", "photon", "digest"])
    meta["sma"], meta["incl"] = sma[:n], incl[:n]
    write_npy(out_dir / "X.npy", x[:n])
    write_npy(out_dir / "stellar.npy", stellar[:n])
    write_npy(out_dir / "targets.npy", targets[:n])
    write_parquet(out_dir / "meta.parquet", meta)
    report = {
        "dataset": dataset, "folder": str(folder), "on_bad_file": on_bad_file, "shard": shard_index, "files": len(names),
        "ingested": n, "bad_files": bad, "seconds": elapsed, "mb_per_s": n_bytes / 1e6 / max(elapsed, 1e-9),
    }
    write_json(out_dir / "report.json", report)
    log.info("%s shard %d: %d files ingested, %d set aside, %.0f MB/s", dataset, shard_index, n, len(bad), report["mb_per_s"])
    return report


def combine_shards(shard_dirs: list[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Concatenate shards into one data set; memory bounded by one shard.

    Exact copies (the same light curves under two names, say a file copied under a new
    planet number) can only be seen here, where the whole data set meets: a copy in the
    held-out fold of a planet trained on would flatter every score, and which name is
    right only its owner knows. So, like any bad file, copies stop the run, or with
    ``on_bad_file: skip`` every copy is set aside and listed in the report.
    """
    shard_dirs, out_dir = [Path(d) for d in shard_dirs], Path(out_dir)
    reports = [json.loads((d / "report.json").read_text()) for d in shard_dirs]
    metas = [pd.read_parquet(d / "meta.parquet") for d in shard_dirs]
    meta = pd.concat(metas, ignore_index=True)
    check_ids(meta.file.to_numpy(dtype=str), context=str(out_dir), label="files", rerun="the ingest shards")
    folder, on_bad_file = Path(reports[0]["folder"]), reports[0]["on_bad_file"]
    copies = _copies(meta, folder)
    if copies and on_bad_file == "stop":
        shown = "\n".join(f"  {c['file']}: {c['error']}" for c in copies[:SHOWN])
        raise ArielFormatError(
            f"{len(copies)} files in {folder} repeat another file's light curves exactly (copies under another name?):\n{shown}\n"
            f"Remove the copies and rerun the ingest (snakemake --forcerun ariel_ingest), or {SKIP_HINT[1:-1]}"
        )
    keep = ~meta.digest.duplicated(keep=False).to_numpy()
    bad_files = [b for r in reports for b in r["bad_files"]] + copies
    if not keep.any():
        first = f"; the first: {bad_files[0]['error']}" if bad_files else ""
        raise ArielFormatError(f"none of the {sum(r['files'] for r in reports)} files in {folder} could be ingested{first}")
    for name in ARRAYS:
        concat_npy([d / name for d in shard_dirs], out_dir / name, rows=len(meta))
        if not keep.all():
            _drop_rows(out_dir / name, keep)
    meta = meta[keep].reset_index(drop=True)
    write_parquet(out_dir / "meta.parquet", meta)
    hidden = hidden_entries(folder)
    if hidden:
        log.warning("%s: %d hidden entries are not data and were left out: %s", folder, len(hidden), ", ".join(hidden[:SHOWN]))
    report = {
        "files": sum(r["files"] for r in reports),
        "ingested": len(meta),
        "bad_files": bad_files,
        "hidden_entries_left_out": hidden,
        "planets": int(meta.planet.nunique()),
    }
    write_json(out_dir / "ingest_report.json", report)
    return report


def _copies(meta: pd.DataFrame, folder: Path) -> list[dict[str, str]]:
    """A bad-file entry for every file whose light curves another file repeats."""
    repeated = meta[meta.digest.duplicated(keep=False)]
    names = repeated.groupby("digest").file.agg(list)
    return [
        {"file": str(folder / name), "error": "same light curves as " + ", ".join(o for o in names[digest] if o != name)}
        for name, digest in zip(repeated.file, repeated.digest)
    ]


def _drop_rows(path: Path, keep: np.ndarray, block: int = 1024) -> None:
    """Rewrite a combined array without the rows set aside, a block at a time (memory stays bounded)."""
    source = np.load(path, mmap_mode="r")
    rows = np.flatnonzero(keep)
    with atomic_npy_memmap(path, (len(rows), *source.shape[1:]), source.dtype) as out:
        for start in range(0, len(rows), block):
            out[start:start + block] = source[rows[start:start + block]]


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
