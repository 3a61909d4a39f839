"""Time of `snakemake -n` (parse, validate, plan) with 1,000 shards per pipeline.

Goal: under 15 s. Lensing: 1,000 simulation shards; Ariel: 1,000 ingest shards of
training files and 1,000 of test files (synthetic layout, so no files are needed).
Also timed in the same run: Snakemake's bare start-up (`snakemake --version`). On a
machine with SLURM's client tools but no reachable controller (a login node whose
slurmctld is down, or this CI machine between tests), the SLURM plugin's start-up
probe (`scontrol show config`) waits ~10 s before giving up; the difference of the
two figures is the planning cost of this workflow itself.

    .venv/bin/python benchmarks/dag.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "lensing": {"n_lenses": 1_000_000, "shard_size": 1000},
    "ariel": {"synthetic": {"n_train_planets": 250, "n_test_planets": 250, "n_spot": 2, "n_photon": 2}, "ingest": {"shard_size": 1}},
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config").symlink_to(ROOT / "config")
        (work / "big.yaml").write_text(yaml.safe_dump(CONFIG))
        command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile", str(work / "big.yaml"), "-n", "--quiet", "rules", "--cores", "1"]
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True, check=True)
        startup = time.perf_counter() - tic
        tic = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - tic
    if run.returncode:
        sys.exit(run.stdout + run.stderr)
    jobs = {line.split()[0]: int(line.split()[1]) for line in run.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()}
    print(json.dumps({
        "dry_run_seconds": round(seconds, 1),
        "snakemake_startup_seconds": round(startup, 1),
        "workflow_planning_seconds": round(seconds - startup, 1),
        "goal_seconds": 15,
        "jobs": jobs,
    }, indent=2))


if __name__ == "__main__":
    main()
