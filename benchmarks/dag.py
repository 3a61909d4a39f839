"""Time of `snakemake -n` (parse, validate, plan), Snakemake's own start-up apart.

Three configurations: the demo (`config/config.yaml`; goal: the workflow's own parse and
plan under 1 s), a large one with 1,000 shards per pipeline (lensing: 1,000
simulation shards; Ariel: 1,000 ingest shards of training files and 1,000 of test files,
synthetic layout, so no files are needed; goal: under 15 s) and 10,000 lensing shards
(1,000,000 lenses in shards of 100, the rest as in the demo; goal: the whole dry run
under a minute, so planning a large array stays usable). Snakemake's start-up is
timed in the same run as `python -c "import snakemake.cli"`: it includes importing the
executor plugins, and the SLURM plugin probes `scontrol` on import. On a machine with
SLURM's client tools but no reachable controller (a login node whose slurmctld is down,
or this CI machine between tests) that probe waits ~10 s before giving up, so the JSON
says whether `scontrol ping` reached a controller. Each figure is the best of --repeat.

    .venv/bin/python benchmarks/dag.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LARGE = {
    "lensing": {"n_lenses": 1_000_000, "shard_size": 1000},
    "ariel": {"synthetic": {"n_train_planets": 250, "n_test_planets": 250, "n_spot": 2, "n_photon": 2}, "ingest": {"shard_size": 1}},
}
LENSING_10K = {"lensing": {"n_lenses": 1_000_000, "shard_size": 100, "chunk_size": 100}}


def best_of(command: list[str], repeat: int) -> tuple[float, subprocess.CompletedProcess]:
    times, run = [], None
    for _ in range(repeat):
        tic = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - tic)
        if run.returncode:
            sys.exit(run.stdout + run.stderr)
    return min(times), run


def controller_reachable() -> bool:
    if shutil.which("scontrol") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30).stdout.count("UP") > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    startup, _ = best_of([sys.executable, "-c", "import snakemake.cli"], args.repeat)
    result = {
        "slurm_client_tools": shutil.which("scontrol") is not None,
        "slurm_controller_reachable": controller_reachable(),
        "snakemake_startup_seconds": round(startup, 2),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "config").symlink_to(ROOT / "config")
        (work / "large.yaml").write_text(yaml.safe_dump(LARGE))
        (work / "lensing_10k.yaml").write_text(yaml.safe_dump(LENSING_10K))
        runs = (("demo", ROOT / "config" / "config.yaml", 1, "workflow_parse_and_plan_seconds"),
                ("large", work / "large.yaml", 15, "workflow_parse_and_plan_seconds"),
                ("lensing_10000_shards", work / "lensing_10k.yaml", 60, "dry_run_seconds"))
        for name, configfile, goal, goal_of in runs:
            command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
                       "--configfile", str(configfile), "-n", "--quiet", "rules", "--cores", "1"]
            seconds, run = best_of(command, args.repeat)
            jobs = {line.split()[0]: int(line.split()[1]) for line in run.stdout.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()}
            result[name] = {
                "dry_run_seconds": round(seconds, 2),
                "workflow_parse_and_plan_seconds": round(seconds - startup, 2),
                "goal_seconds": goal,
                "goal_is_for": goal_of,
                "jobs": jobs.get("total"),
            }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
