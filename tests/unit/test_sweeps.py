"""Sweep definitions are checked before any job; trials are named by their parameters; a
bayes worker recovers a trial abandoned by a killed worker without losing or repeating one."""
from __future__ import annotations

import json
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
