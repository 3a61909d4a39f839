"""Sweep definitions are checked before any job; trials are named by their parameters; a
bayes worker recovers a trial abandoned by a killed worker without losing or repeating one."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

from hpcml.core import config as configuration
from hpcml.sweeps.definition import load, overlay
from hpcml.sweeps.study import open_study, run_worker

FAKE_TRAIN = """
import json, sys
args = sys.argv[1:]
params = dict(a.split("=", 1)[1].split("=", 1) for a in args if a.startswith("--set="))
out = args[args.index("--out") + 1]
x = float(params["ariel.gbt.max_iter"])
json.dump({"value": -(x - 7) ** 2}, open(out + "/summary.json", "w"))
"""


def _definition(tmp_path: Path, **spec) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"rule": "ariel_train_gbt", "method": "grid", "metric": {"name": "val_score", "goal": "maximize"}, **spec}, sort_keys=False))
    return path


def test_definitions_are_checked_before_any_job(tmp_path):
    workflow = configuration.validate({})
    cases = [
        ({"parameters": {"ariel.cnn.learning_rate": {"values": [0.1]}}}, "does not read it"),
        ({"parameters": {"ariel.gbt.max_iter": {"values": [0, 5]}}}, "value 0 is not allowed"),
        ({"parameters": {"ariel.gbt.max_iter": {"min": 1, "max": 5}}}, "grid sweep needs values"),
        ({"method": "random", "parameters": {"ariel.gbt.max_iter": {"min": 1, "max": 5}}}, "run_cap"),
        ({"metric": {"name": "accuracy", "goal": "maximize"}, "parameters": {"ariel.gbt.max_iter": {"values": [5]}}}, "metric.name"),
        ({"rule": "ariel_train_neural", "parameters": {"ariel.cnn.learning_rate": {"values": [0.1]}}}, "name the ariel_train_neural model"),
    ]
    for spec, message in cases:
        with pytest.raises(configuration.ConfigError, match=message):
            load(_definition(tmp_path, **spec), workflow)


def test_grid_and_random_trials_are_named_by_their_parameters(tmp_path):
    workflow = configuration.validate({})
    grid = load(_definition(tmp_path, rule="ariel_train_neural", model="cnn", parameters={
        "ariel.cnn.learning_rate": {"values": [0.001, 0.01]}, "ariel.cnn.batch_size": {"values": [32, 64]}}), workflow)
    trials = grid.trials()
    assert len(trials) == 4 and "learning_rate~0.001_batch_size~32" in trials
    assert trials["learning_rate~0.01_batch_size~64"] == {"ariel.cnn.learning_rate": 0.01, "ariel.cnn.batch_size": 64}
    random = load(_definition(tmp_path, method="random", run_cap=6, parameters={"ariel.gbt.max_iter": {"min": 10, "max": 20}}), workflow)
    first, again = random.trials(), random.trials()
    assert first == again and all(10 <= t["ariel.gbt.max_iter"] <= 20 and isinstance(t["ariel.gbt.max_iter"], int) for t in first.values())


def test_best_overlay_passes_the_schema():
    best = overlay({"ariel.cnn.learning_rate": 0.003, "ariel.cnn.batch_size": 32})
    assert configuration.validate(best)["ariel"]["cnn"] == {"learning_rate": 0.003, "batch_size": 32, "max_epochs": 30}


def test_bayes_worker_retries_an_abandoned_trial_and_loses_none(tmp_path):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    sweep = load(_definition(tmp_path, method="bayes", run_cap=5, parameters={"ariel.gbt.max_iter": {"min": 1, "max": 12}}), configuration.validate({}))
    folder = tmp_path / "sweep"
    study = open_study(sweep, folder)
    from hpcml.sweeps.study import distributions

    abandoned = study.ask(distributions(sweep))
    abandoned.set_user_attr("heartbeat", str(folder / "workers" / "worker_9.alive"))
    (folder / "trials" / f"trial_{abandoned.number:04d}").mkdir(parents=True)
    run_worker(sweep, f"{sys.executable} {script}", folder, worker=0)
    trials = open_study(sweep, folder).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 5
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [abandoned.number]
    retry = [t for t in complete if t.user_attrs.get("retry_of") == abandoned.number]
    assert len(retry) == 1 and retry[0].params == abandoned.params
    assert json.loads((folder / "trials" / f"trial_{abandoned.number:04d}" / "summary.json").read_text())["value"] == retry[0].value
    folders = [t.user_attrs["folder"] for t in complete]
    assert len(set(folders)) == len(folders)
    run_worker(sweep, f"{sys.executable} {script}", folder, worker=1)
    assert len(open_study(sweep, folder).get_trials(states=(TrialState.COMPLETE,))) == 5, "a rerun adds no trial"


LIGHTNING_TRAIN = """
import json, sys
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from hpcml.core import pruning

args = sys.argv[1:]
params = dict(a.split("=", 1)[1].split("=", 1) for a in args if a.startswith("--set="))
out = args[args.index("--out") + 1]
x = float(params["ariel.gbt.max_iter"])


class Constant(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, index):
        return (self.w ** 2).sum()

    def validation_step(self, batch, index):
        self.log("val_loss", x + 0 * self.w.sum())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


loader = DataLoader(TensorDataset(torch.zeros(1, 1)))
trainer = pl.Trainer(max_epochs=2, callbacks=pruning.from_environment("val_loss", "min"), logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
trainer.fit(Constant(), loader, loader)
json.dump({"value": -x, "epochs": trainer.current_epoch}, open(out + "/summary.json", "w"))
"""


def test_early_terminate_prunes_trials_through_the_fit_callbacks(tmp_path):
    """W&B's early_terminate (hyperband) becomes Optuna pruning inside each trial's real Lightning run:
    after a good first trial, worse ones stop at their first epoch."""
    script = tmp_path / "train.py"
    script.write_text(LIGHTNING_TRAIN)
    workflow = configuration.validate({})
    with pytest.raises(configuration.ConfigError, match="early_terminate: needs method bayes"):
        load(_definition(tmp_path, parameters={"ariel.gbt.max_iter": {"values": [1]}}, early_terminate={"type": "hyperband", "min_iter": 1}), workflow)
    sweep = load(_definition(tmp_path, method="bayes", run_cap=3, parameters={"ariel.gbt.max_iter": {"min": 1, "max": 50}},
                             early_terminate={"type": "hyperband", "min_iter": 1, "max_iter": 2, "eta": 3}), workflow)
    folder = tmp_path / "sweep"
    for x in (1, 40, 50):
        open_study(sweep, folder).enqueue_trial({"ariel.gbt.max_iter": x})
    run_worker(sweep, f"{sys.executable} {script}", folder, worker=0)
    trials = open_study(sweep, folder).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert trials[0].value == -1 and trials[0].intermediate_values == {1: -1.0, 2: -1.0}
    for trial in trials[1:]:
        marker = json.loads((folder / trial.user_attrs["folder"] / "pruned.json").read_text())
        assert marker["epoch"] == 1 and trial.intermediate_values == {1: -marker["val_loss"]}, "reported in the sweep's direction"
        assert json.loads((folder / trial.user_attrs["folder"] / "summary.json").read_text())["epochs"] == 1


def test_wandb_export_runs_a_trial_as_the_agent_would(tmp_path, monkeypatch):
    """The exported sweep file's command, expanded by W&B's own agent code, trains one trial and
    reports the metric to the agent's run (offline here; the controller needs a server)."""
    import subprocess

    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    from hpcml.sweeps.wandb_export import export

    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    sweep = load(_definition(tmp_path, method="bayes", run_cap=4, workers=2, parameters={"ariel.gbt.max_iter": {"min": 1, "max": 12}}), configuration.validate({}))
    folder = tmp_path / "sweep"
    settings = configuration.pick(configuration.validate({}), ("seed", "wandb"))
    sweep_file = export(sweep, f"{sys.executable} {script}", folder, settings, logs=tmp_path / "logs")
    spec = yaml.safe_load(sweep_file.read_text())
    assert spec["method"] == "bayes" and spec["metric"] == {"name": "val_score", "goal": "maximize"} and spec["run_cap"] == 4
    assert "srun --ntasks=\"$SLURM_NTASKS\" wandb agent --count 2" in (folder / "wandb" / "agent.sbatch").read_text()

    agent_command = {"args": {"ariel.gbt.max_iter": {"value": 7}}, "run_id": "abc123"}
    params_file = tmp_path / "config-abc123.json"
    params_file.write_text(create_sweep_command_args(agent_command)["args_json"][0])
    words = []
    for word in create_sweep_command(spec["command"]):
        words += {"${env}": ["/usr/bin/env"], "${args_json_file}": [str(params_file)]}.get(word, [word])
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_RUN_ID": "abc123", "WANDB_DIR": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(words, check=True, env=env, cwd=tmp_path, timeout=300)
    assert json.loads((folder / "wandb_runs" / "abc123" / "summary.json").read_text())["value"] == 0
    runs = list((tmp_path / "wandb").glob("offline-run-*-abc123"))
    assert runs, "the metric goes to the agent's run"


DIVERGING_TRAIN = FAKE_TRAIN.replace('x = float(params["ariel.gbt.max_iter"])', '''x = float(params["ariel.gbt.max_iter"])
if x > 3:
    sys.exit("hpcml: error: the training loss became nan in epoch 2 (learning rate 10): the training diverged, so no model or score is written")''')


def test_a_diverging_trial_is_pruned_not_retried(tmp_path):
    """Diverging configurations are answers: each is recorded once as pruned, and four of
    them in a row do not stop the worker as failures would."""
    script = tmp_path / "diverging_train.py"
    script.write_text(DIVERGING_TRAIN)
    sweep = load(_definition(tmp_path, method="bayes", run_cap=6, parameters={"ariel.gbt.max_iter": {"min": 1, "max": 12}}), configuration.validate({}))
    folder = tmp_path / "sweep"
    for x in (10, 11, 12, 9, 2, 3):
        open_study(sweep, folder).enqueue_trial({"ariel.gbt.max_iter": x})
    run_worker(sweep, f"{sys.executable} {script}", folder, worker=0)
    trials = open_study(sweep, folder).get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 4 + [TrialState.COMPLETE] * 2
    assert "diverged" in (folder / trials[0].user_attrs["folder"] / "pruned.json").read_text()


KILLED_ONCE_TRAIN = FAKE_TRAIN.replace('x = float(params["ariel.gbt.max_iter"])', '''x = float(params["ariel.gbt.max_iter"])
import os, signal
from pathlib import Path
mark = Path(out) / "killed_once"
if x == 5 and not mark.exists():
    mark.write_text("")
    os.kill(os.getpid(), signal.SIGTERM)''')


def test_a_trial_killed_while_its_worker_lives_is_retried_not_lost(tmp_path):
    """scancel or a wall-time limit can end the training before its worker: the trial is failed and
    its parameters queued again at once, so the study still finishes every trial it asked for."""
    script = tmp_path / "killed_train.py"
    script.write_text(KILLED_ONCE_TRAIN)
    sweep = load(_definition(tmp_path, method="bayes", run_cap=3, parameters={"ariel.gbt.max_iter": {"min": 1, "max": 12}}), configuration.validate({}))
    folder = tmp_path / "sweep"
    for x in (5, 6, 7):
        open_study(sweep, folder).enqueue_trial({"ariel.gbt.max_iter": x})
    run_worker(sweep, f"{sys.executable} {script}", folder, worker=0)
    trials = open_study(sweep, folder).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["ariel.gbt.max_iter"] for t in complete) == [5, 6, 7]
    assert [t.number for t in trials if t.state == TrialState.FAIL] == [0]
    assert [t.user_attrs.get("retry_of") for t in complete if t.params["ariel.gbt.max_iter"] == 5] == [0]
