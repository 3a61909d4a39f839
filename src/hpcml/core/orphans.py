"""A step whose Snakemake was killed stops instead of writing on as an orphan.

``kill -9`` of a workstation's Snakemake leaves its running jobs alive: they are its
children's children and keep writing their outputs while the user unlocks and starts
again, so two processes write one file. Each step therefore watches the Snakemake
process above it (the nearest ancestor whose command line names snakemake) and ends
itself, saying why, within a few seconds of that process disappearing. A step run by
hand has no such ancestor and is not watched. Under SLURM the ancestor is the
Snakemake inside the job, which lives exactly as long as the job: nothing changes there.
Every output is written atomically, so a step ended this way leaves no half-written file.
"""
from __future__ import annotations

import logging
import os
import signal
import threading

import psutil

log = logging.getLogger(__name__)
POLL_S = 2.0


def snakemake_ancestor() -> psutil.Process | None:
    """The nearest ancestor process running Snakemake (``snakemake ...`` or ``python -m snakemake ...``), if any."""
    try:
        for parent in psutil.Process().parents():
            try:
                if any(os.path.basename(part) == "snakemake" for part in parent.cmdline()[:3]):
                    return parent
            except (psutil.AccessDenied, psutil.ZombieProcess):
                continue
    except psutil.Error:
        return None
    return None


def stop_when_snakemake_dies(poll_s: float = POLL_S) -> psutil.Process | None:
    """Watch the Snakemake above this process from a daemon thread; returns it (None: not watched)."""
    parent = snakemake_ancestor()
    if parent is None:
        return None
    born = parent.create_time()

    def watch() -> None:
        while True:
            try:
                alive = parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE and parent.create_time() == born
            except psutil.Error:
                alive = False
            if not alive:
                log.error("Snakemake (pid %d), which started this step, is gone: stopping so that no orphan keeps writing "
                          "its outputs; start the workflow again (after --unlock) to redo this step", parent.pid)
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os.kill(os.getpid(), signal.SIGTERM)
                return
            threading.Event().wait(poll_s)

    threading.Thread(target=watch, name="snakemake-watch", daemon=True).start()
    return parent
