"""Combining lensing shards: time and peak memory per family, and whether memory grows with N.

Simulates `--lenses` lenses x 3 families as shards of `--shard-size` on all cores
(catalogue only, or tiny `--render-size` images to exercise the array combine), then
runs the real command, `python -m hpcml.cli lensing combine`, once per family in a fresh
process and reads that process's peak RSS (`wait4`). References measured in the same
run: the same command on the first tenth of the shards (a run of a tenth as many
lenses: shards depend only on global lens indices), the peak RSS of a process that
only imports what the command imports, and one shard's tables in memory. Memory
bounded by one shard means the peak is the same at N and N/10. Data go to a temporary
folder under `--tmp` (removed after).

    .venv/bin/python benchmarks/lensing_combine.py [--lenses 1000000 --shard-size 10000 --render-size 0]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from hpcml.core import config
from hpcml.core.shards import plan_shards
from hpcml.lensing.simulate import FAMILIES, run_shard, shard_outputs

SEED = 1


def _shard(args: tuple[dict[str, Any], int, str]) -> None:
    settings, index, root = args
    run_shard(settings, SEED, index, Path(root) / f"shard_{index:05d}", Path(root) / f"work_{index:05d}")


def simulate(settings: dict[str, Any], root: Path, workers: int) -> tuple[list[Path], float]:
    shards = plan_shards(settings["n_lenses"], settings["shard_size"])
    tic = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_shard, [(settings, s.index, str(root)) for s in shards], chunksize=1))
    return [root / f"shard_{s.index:05d}" for s in shards], time.perf_counter() - tic


def measured(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process, reaped with ``wait4`` for its own usage."""
    with tempfile.TemporaryFile("w+") as log:
        tic = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - tic
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        if process.returncode:
            log.seek(0)
            sys.exit(f"{' '.join(command[:6])} ... failed:\n{log.read()}")
    return seconds, usage.ru_maxrss / 1024


def combine(settings: dict[str, Any], family: str, shards: list[Path], out: Path) -> tuple[float, float]:
    config_file = out.with_suffix(".yaml")
    config_file.write_text(yaml.safe_dump({"seed": SEED, "lensing": settings}))
    return measured([sys.executable, "-m", "hpcml.cli", "lensing", "combine", "--config", str(config_file),
                     "--family", family, "--out", str(out), *map(str, shards)])


def shard_mb(shard: Path, family: str) -> float:
    files = shard_outputs(shard, family)
    return sum(pq.read_table(files[name]).nbytes for name in ("lenses", "images")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lenses", type=int, default=1_000_000, help="lenses per family")
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--render-size", type=int, default=0, help="render images of this side (0: no rendering)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the shards and catalogues go")
    args = parser.parse_args()
    render = {"enabled": args.render_size > 0, "size": max(args.render_size, 8), "supersample": 1}
    settings = config.validate({"lensing": {"n_lenses": args.lenses, "shard_size": args.shard_size, "chunk_size": min(2500, args.shard_size), "render": render}})["lensing"]
    tenth = {**settings, "n_lenses": args.lenses // 10}
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="lensing-combine-") as tmp:
        root = Path(tmp)
        shards, simulate_s = simulate(settings, root / "shards", args.workers)
        _, import_mb = measured([sys.executable, "-c", "import hpcml.cli, hpcml.lensing.combine"])
        families = {}
        for family in FAMILIES:
            seconds, peak = combine(settings, family, shards, root / family)
            families[family] = {"seconds": round(seconds, 1), "peak_rss_mb": round(peak)}
        tenth_shards = shards[: len(plan_shards(tenth["n_lenses"], args.shard_size))]
        tenth_s, tenth_peak = combine(tenth, "both", tenth_shards, root / "both_tenth")
        one_shard = max(shard_mb(s, "both") for s in shards[:3])
        combined_mb = sum(f.stat().st_size for f in (root / "both").iterdir()) / 1e6
    peak = families["both"]["peak_rss_mb"]
    result = {
        "machine": {"cores": os.cpu_count(), "workers": args.workers},
        "lenses_per_family": args.lenses,
        "shards": len(shards),
        "shard_size": args.shard_size,
        "render_size": args.render_size or None,
        "simulate_seconds_all_families": round(simulate_s, 1),
        "combine": families,
        "combined_files_mb_both": round(combined_mb),
        "reference_import_only_peak_rss_mb": round(import_mb),
        "reference_one_shard_tables_mb": round(one_shard, 1),
        "reference_tenth_lenses_both": {"lenses": tenth["n_lenses"], "seconds": round(tenth_s, 1), "peak_rss_mb": round(tenth_peak)},
        "peak_over_tenth_peak": round(peak / tenth_peak, 2),
        "peak_above_imports_mb": {"all_lenses": round(peak - import_mb), "tenth": round(tenth_peak - import_mb)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
