"""A SLURM array task runs its own Snakemake job, not the array's first one.

snakemake-executor-plugin-slurm 2.8 (with slurm-jobstep 0.6) starts every task of a job
array with the *first* job's Snakemake command plus a table of every task's own command
(``--slurm-jobstep-array-execs``). The task's own command runs nested inside; then the
outer Snakemake checks the first job's outputs (plugin issue #447). A task that finishes
more than ``latency-wait`` seconds before the array's first task is reported FAILED, the
controller deletes its finished outputs and submits it again; when the first task fails,
every task of the array does. Replacing the outer process, before it parses the workflow,
by the task's own command (the one the plugin would run nested) makes each task check its
own outputs and nothing else. The first task of an array is left as the plugin runs it.

Standard library only until a task is recognised: every job re-parses the Snakefile. The
task's command is decoded by the plugin's own function (pinned versions: a private name).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

OPTION = "--slurm-jobstep-array-execs"


def _payload(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith(OPTION + "="):
            return arg.split("=", 1)[1]
        if arg == OPTION and index + 1 < len(argv):
            return argv[index + 1]
    return None


def own_command(argv: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The shell command of this array task's own job, or None where the plugin's own path is right."""
    task, first = environ.get("SLURM_ARRAY_TASK_ID"), environ.get("SLURM_ARRAY_TASK_MIN")
    if task is None or first is None or task == first:
        return None
    payload = _payload(argv)
    if not payload:
        return None
    from snakemake_executor_plugin_slurm_jobstep import _decompress_array_task_call

    return _decompress_array_task_call(payload, int(task))


def run_own_command() -> None:
    """In a non-first array task's in-job Snakemake, become that task's own command (never returns)."""
    command = own_command(sys.argv, os.environ)
    if command is None:
        return
    print(f"hpcml: array task {os.environ['SLURM_ARRAY_TASK_ID']}: running its own job (plugin issue #447)", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv("/bin/sh", ["/bin/sh", "-c", command])
