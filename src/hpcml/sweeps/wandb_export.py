"""The same sweep as a real W&B sweep, for groups that have a W&B server.

A W&B sweep needs its server: the controller lives there and every agent asks it for
parameters, so it cannot run offline (wandb issues 6234, 8183). Where compute nodes can
reach a server, this writes the definition as W&B's own sweep file, whose command runs
one trial through ``hpcml sweep trial`` exactly as the server-less sweep would, and an
``sbatch`` script that starts the agents under ``srun``. A trial trains with its own W&B
run (like every training) and reports the sweep's metric to the agent's run at the end.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from hpcml.core.atomic import write_text
from hpcml.sweeps.definition import Sweep

log = logging.getLogger(__name__)
AGENT_VARIABLES = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH")


def wandb_definition(sweep: Sweep, command: str, folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """W&B's sweep file: the definition's search, and a command that runs one trial in ``folder``
    (``settings``: what ``hpcml sweep trial`` reads)."""
    spec: dict[str, Any] = {
        "name": sweep.name,
        "method": sweep.method,
        "metric": {"name": sweep.metric, "goal": sweep.goal},
        "parameters": sweep.parameters,
        "program": "hpcml",
        "command": [
            "${env}", "hpcml", "sweep", "trial", "--settings", json.dumps(settings, sort_keys=True),
            "--definition", str(sweep.path), "--command", command, "--folder", str(folder), "--params", "${args_json_file}",
        ],
    }
    if sweep.run_cap:
        spec["run_cap"] = sweep.run_cap
    if sweep.early_terminate:
        spec["early_terminate"] = sweep.early_terminate
    return spec


def agent_script(sweep: Sweep, sweep_file: Path, logs: Path) -> str:
    """An sbatch script running ``workers`` agents (one GPU each) that share the sweep's trials."""
    count = f" --count {math.ceil(sweep.run_cap / sweep.workers)}" if sweep.run_cap else ""
    return f"""#!/bin/bash
# W&B agents for sweep {sweep.name} (needs a W&B server reachable from the compute nodes).
#   wandb sweep --project PROJECT {shlex.quote(str(sweep_file))}    # prints ENTITY/PROJECT/SWEEP_ID
#   sbatch {shlex.quote(str(sweep_file.parent / 'agent.sbatch'))} ENTITY/PROJECT/SWEEP_ID
# Run both from the workflow's folder after the sweep's inputs exist (snakemake --until sweep_results
# or any run that trained the rule once). Partition and time: adapt to your site (profiles/slurm).
#SBATCH --job-name=wandb-{sweep.name}
#SBATCH --ntasks={sweep.workers}
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=4
#SBATCH --partition=gpu
#SBATCH --time=12:00:00
#SBATCH --output={logs}/wandb-agent-%j.out
set -euo pipefail
SWEEP_ID=${{1:?give the sweep id that wandb sweep printed}}
export WANDB_MODE=online
srun --ntasks="$SLURM_NTASKS" wandb agent{count} "$SWEEP_ID"
"""


def export(sweep: Sweep, command: str, folder: str | Path, settings: dict[str, Any], logs: str | Path) -> Path:
    """Write ``folder/wandb/sweep.yaml`` and ``agent.sbatch``; return the sweep file."""
    target = Path(folder) / "wandb"
    sweep_file = target / "sweep.yaml"
    write_text(sweep_file, yaml.safe_dump(wandb_definition(sweep, command, Path(folder), settings), sort_keys=False))
    write_text(target / "agent.sbatch", agent_script(sweep, sweep_file, Path(logs)))
    return sweep_file


def run_agent_trial(sweep: Sweep, command: str, folder: str | Path, params_file: str | Path, wandb: dict[str, Any]) -> float | None:
    """One trial the W&B agent asked for: parameters from its JSON file, metric back to its run."""
    from hpcml.sweeps.study import run_trial

    params = json.loads(Path(params_file).read_text())
    unknown = sorted(set(params) - set(sweep.parameters))
    if unknown:
        raise ValueError(f"{params_file}: parameters {unknown} are not in sweep {sweep.name} ({sweep.path}); export the sweep again")
    agent = {k: os.environ.pop(k) for k in AGENT_VARIABLES if k in os.environ}
    run_id = agent.get("WANDB_RUN_ID") or "manual"
    # The training logs its own W&B run; left in its environment, the agent's ids would claim it.
    value, _ = run_trial(sweep, command, params, Path(folder) / "wandb_runs" / run_id)
    os.environ.update(agent)
    if value is None:
        raise RuntimeError(f"sweep {sweep.name}: trial {run_id} failed; see {Path(folder) / 'wandb_runs' / run_id / 'trial.log'}")
    if "WANDB_RUN_ID" in agent:
        _report(sweep.metric, value, run_id, wandb)
    log.info("sweep %s: W&B trial %s %s -> %s %.6g", sweep.name, run_id, params, sweep.metric, value)
    return value


def _report(metric: str, value: float, run_id: str, wandb_settings: dict[str, Any]) -> None:
    import wandb

    run = wandb.init(id=run_id, resume="allow", project=wandb_settings["project"], entity=wandb_settings.get("entity"))
    run.log({metric: value})
    run.summary[metric] = value
    run.finish()
