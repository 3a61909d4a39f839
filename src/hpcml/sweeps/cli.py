"""``hpcml sweep ...``: the bayes workers and the results of any sweep."""
from __future__ import annotations

import argparse
from pathlib import Path

from hpcml.core.cli import add_settings_args, step_config

READS = {"worker": ("seed",), "results": ("seed",), "export": ("seed", "wandb"), "trial": ("seed", "wandb")}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sweep", help="hyper-parameter sweeps over a training rule (definitions in config/sweeps/)")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("worker", help="one worker of a bayes sweep: ask the shared Optuna study, run trials, report")
    p.add_argument("--definition", type=Path, required=True, help="sweep definition (YAML, W&B sweep format + rule)")
    p.add_argument("--command", required=True, help="the training step's command without --out (the workflow builds it)")
    p.add_argument("--folder", type=Path, required=True, help="the sweep's folder (study.journal, trials/)")
    p.add_argument("--worker", type=int, required=True, help="worker number (seeds its sampler)")
    p.add_argument("--done", type=Path, help="file written when the worker has finished")
    p.set_defaults(func=_worker)

    p = steps.add_parser("results", help="table, parameter importance, parallel coordinates, best config overlay")
    p.add_argument("--definition", type=Path, required=True)
    p.add_argument("--folder", type=Path, required=True)
    p.set_defaults(func=_results)

    p = steps.add_parser(
        "export",
        help="write the sweep as a W&B sweep file and an sbatch script for its agents (for a W&B server)",
        description="Writes FOLDER/wandb/sweep.yaml and agent.sbatch. Then: wandb sweep --project P FOLDER/wandb/sweep.yaml, "
        "and sbatch FOLDER/wandb/agent.sbatch ENTITY/PROJECT/SWEEP_ID.",
    )
    p.add_argument("--definition", type=Path, required=True)
    p.add_argument("--command", required=True, help="the training step's command without --out (the workflow builds it)")
    p.add_argument("--folder", type=Path, required=True, help="the sweep's folder")
    p.add_argument("--logs", type=Path, default=Path("logs/sweeps"), help="folder for the agents' SLURM output")
    p.set_defaults(func=_export)

    p = steps.add_parser("trial", help="run one trial for a W&B agent: parameters from ${args_json_file}, metric to the agent's run")
    p.add_argument("--definition", type=Path, required=True)
    p.add_argument("--command", required=True, help="the training step's command without --out")
    p.add_argument("--folder", type=Path, required=True, help="the sweep's folder (trials go to wandb_runs/RUN_ID)")
    p.add_argument("--params", type=Path, required=True, help="JSON file of {dotted key: value} (the agent's ${args_json_file})")
    p.set_defaults(func=_trial)

    for name, step in steps.choices.items():
        add_settings_args(step, READS[name])


def _load(args: argparse.Namespace) -> tuple:
    from hpcml.core import config as configuration
    from hpcml.sweeps.definition import load

    workflow = configuration.validate(step_config(args))
    return load(args.definition, workflow), workflow


def _worker(args: argparse.Namespace) -> None:
    from hpcml.core.atomic import write_json
    from hpcml.sweeps.study import run_worker

    sweep, _ = _load(args)
    outcome = run_worker(sweep, args.command, args.folder, args.worker)
    if args.done:
        write_json(args.done, outcome)


def _results(args: argparse.Namespace) -> None:
    from hpcml.sweeps.results import write_results

    sweep, workflow = _load(args)
    write_results(sweep, args.folder, workflow)


def _export(args: argparse.Namespace) -> None:
    from hpcml.core.config import pick
    from hpcml.sweeps.wandb_export import export

    sweep, workflow = _load(args)
    print(export(sweep, args.command, args.folder, pick(workflow, READS["trial"]), args.logs))


def _trial(args: argparse.Namespace) -> None:
    from hpcml.sweeps.wandb_export import run_agent_trial

    sweep, workflow = _load(args)
    run_agent_trial(sweep, args.command, args.folder, args.params, workflow["wandb"])
