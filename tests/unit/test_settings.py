"""Settings per step: a step sees exactly the keys it declares; --set is validated like the file."""
from __future__ import annotations

import json

import pytest
import yaml

from hpcml.ariel.cli import train_reads
from hpcml.cli import build_parser
from hpcml.core import config
from hpcml.core.cli import step_config


def _args(*argv: str):
    return build_parser().parse_args(list(argv))


TRAIN = ["ariel", "train", "--model", "cnn", "--data", "d", "--folds", "f", "--transforms", "t", "--out", "o"]


def test_step_sees_only_the_keys_it_reads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"ariel": {"cnn": {"learning_rate": 0.01}, "baseline": {"learning_rate": 0.5}}}))
    seen = step_config(_args(*TRAIN, "--config", str(path)))
    assert seen["ariel"]["cnn"]["learning_rate"] == 0.01 and seen["ariel"]["cnn"]["max_epochs"] == 30
    assert set(seen) == {"seed", "ariel", "training", "wandb"}
    assert set(seen["ariel"]) == {"splits", "cnn"} and set(seen["ariel"]["splits"]) == {"test_fold", "val_fold"}
    gbt = [("gbt" if a == "cnn" else a) for a in TRAIN]
    assert set(step_config(_args(*gbt))) == {"seed", "ariel"}


def test_settings_json_must_hold_every_key_the_step_reads():
    full = config.validate({})
    passed = config.pick(full, train_reads("cnn"), omit=["training.num_workers"])
    seen = step_config(_args(*TRAIN, "--settings", json.dumps(passed), "--set", "training.num_workers=3"))
    assert seen["training"]["num_workers"] == 3
    with pytest.raises(config.ConfigError, match="lacks"):
        step_config(_args(*TRAIN, "--settings", json.dumps({"seed": 1})))


def test_set_overrides_are_validated_and_must_be_read_by_the_step():
    seen = step_config(_args(*TRAIN, "--set", "ariel.cnn.batch_size=256", "--set", "training.precision=bf16-mixed"))
    assert seen["ariel"]["cnn"]["batch_size"] == 256 and seen["training"]["precision"] == "bf16-mixed"
    with pytest.raises(config.ConfigError, match="ariel.cnn.batch_size"):
        step_config(_args(*TRAIN, "--set", "ariel.cnn.batch_size=-1"))
    with pytest.raises(config.ConfigError, match="does not read"):
        step_config(_args(*TRAIN, "--set", "ariel.baseline.batch_size=8"))
    with pytest.raises(config.ConfigError, match="KEY=VALUE"):
        step_config(_args(*TRAIN, "--set", "ariel.cnn.batch_size"))


def test_every_step_accepts_set():
    parser = build_parser()
    for pipeline in ("ariel", "lensing"):
        steps = next(a for a in parser._subparsers._group_actions[0].choices[pipeline]._actions if a.dest == "step")
        for name, step in steps.choices.items():
            assert "--set" in step.format_help(), f"hpcml {pipeline} {name} has no --set"
