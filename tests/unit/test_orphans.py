"""A step whose Snakemake is killed with SIGKILL stops within seconds instead of writing on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

STEP = """
import logging, sys, time
logging.basicConfig(level=logging.INFO)
from hpcml.core.orphans import stop_when_snakemake_dies
watched = stop_when_snakemake_dies(poll_s=0.2)
print("watching", watched.pid if watched else None, flush=True)
time.sleep(60)
"""
# Stands in for Snakemake: a process whose module is named snakemake, running the step through a shell as Snakemake does.
FAKE_SNAKEMAKE = """
import subprocess, sys, time
subprocess.Popen(["/bin/sh", "-c", sys.argv[1] + " > " + sys.argv[2] + " 2>&1"])
time.sleep(60)
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    package = tmp_path / "fake"
    (package / "snakemake").mkdir(parents=True)
    (package / "snakemake" / "__init__.py").write_text("")
    (package / "snakemake" / "__main__.py").write_text(FAKE_SNAKEMAKE)
    step = tmp_path / "step.py"
    step.write_text(STEP)
    log = tmp_path / "step.log"
    env = {**os.environ, "PYTHONPATH": f"{package}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    fake = subprocess.Popen([sys.executable, "-m", "snakemake", f"{sys.executable} {step}", str(log)], env=env, cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and "watching" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    return fake, log


def _step_pids(fake: subprocess.Popen) -> list[int]:
    return [p.pid for p in psutil.Process(fake.pid).children(recursive=True) if "step.py" in " ".join(p.cmdline())]


def test_a_step_stops_when_its_snakemake_is_killed(tmp_path):
    fake, log = _start(tmp_path)
    assert f"watching {fake.pid}" in log.read_text()
    steps = _step_pids(fake)
    assert steps
    fake.send_signal(signal.SIGKILL)
    fake.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in steps):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in steps), "the step kept running"
    assert "is gone: stopping so that no orphan keeps writing" in log.read_text()


def test_a_step_run_by_hand_is_not_watched(tmp_path):
    step = tmp_path / "step.py"
    step.write_text(STEP.replace("time.sleep(60)", ""))
    out = subprocess.run([sys.executable, str(step)], capture_output=True, text=True, timeout=60)
    assert "watching None" in out.stdout
