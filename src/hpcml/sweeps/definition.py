"""Sweep definitions (W&B sweep format + the training rule), validated before any job starts.

A definition names a training rule, its model, a metric and dotted config keys with
``values`` or a distribution (``min``/``max``, W&B's ``uniform``,
``log_uniform_values``, ``int_uniform``). Every key must be one the rule's step reads,
and every value (or both ends of a range) must pass the config schema, so a typo or an
impossible value stops the dry run with the key named. Grid and random trials are
expanded here into a table whose rows name the trial folders (Snakemake's Paramspace).
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hpcml.core import config as configuration
from hpcml.sweeps.trainers import TRAINERS, Trainer

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "config" / "sweep.schema.yaml"
NOT_SWEPT = ("training.num_workers",)
_NUMERIC_FIELDS = ("value", "epochs", "train_seconds", "start_to_first_step_s", "steady_samples_per_s", "peak_memory_mb")


@dataclass
class Sweep:
    name: str
    path: Path
    rule: str
    model: str
    method: str
    metric: str
    goal: str
    parameters: dict[str, dict[str, Any]]
    run_cap: int | None
    workers: int
    seed: int
    trainer: Trainer
    short: dict[str, str] = field(default_factory=dict)
    early_terminate: dict[str, Any] | None = None

    @property
    def pruner(self) -> dict[str, Any] | None:
        """Optuna HyperbandPruner arguments from W&B's early_terminate (epochs are its iterations)."""
        if not self.early_terminate:
            return None
        spec = self.early_terminate
        return {"min_resource": spec["min_iter"], "max_resource": spec.get("max_iter", "auto"), "reduction_factor": spec.get("eta", 3)}

    @property
    def summary_field(self) -> str:
        """Where the metric stands in a trial's summary.json."""
        return "value" if self.metric == self.trainer.objective else self.metric

    def trials(self) -> dict[str, dict[str, Any]]:
        """Grid or random trials: folder name -> {dotted key: value}, in a stable order."""
        from snakemake.utils import Paramspace

        table = self.table()
        space = Paramspace(table, filename_params="*", single_wildcard="trial")
        return {name: {self.short[c]: plain(v) for c, v in row.items()} for name, row in zip(space.instance_patterns, table.to_dict("records"))}

    def table(self) -> pd.DataFrame:
        if self.method == "grid":
            keys = list(self.parameters)
            rows = list(itertools.product(*(self.parameters[k]["values"] for k in keys)))
        else:
            rng = np.random.default_rng(self.seed)
            keys = list(self.parameters)
            rows = [tuple(draw(self.parameters[k], rng) for k in keys) for _ in range(self.run_cap)]
        inverse = {v: k for k, v in self.short.items()}
        return pd.DataFrame(rows, columns=[inverse[k] for k in keys]).drop_duplicates(ignore_index=True)


def draw(spec: dict[str, Any], rng: np.random.Generator) -> Any:
    """One random value from a parameter's spec (W&B's distributions)."""
    if "values" in spec:
        return spec["values"][int(rng.integers(len(spec["values"])))]
    low, high = spec["min"], spec["max"]
    kind = distribution(spec)
    if kind == "int_uniform":
        return int(rng.integers(low, high + 1))
    if kind == "log_uniform_values":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def distribution(spec: dict[str, Any]) -> str:
    """W&B's default: int_uniform when both ends are integers, else uniform."""
    if "distribution" in spec:
        return spec["distribution"]
    return "int_uniform" if isinstance(spec["min"], int) and isinstance(spec["max"], int) else "uniform"


def load(path: str | Path, workflow_config: dict[str, Any]) -> Sweep:
    path = Path(path)
    raw = configuration.read(path)
    try:
        spec = configuration.validate(raw, configuration.load_schema(SCHEMA_PATH))
    except configuration.ConfigError as error:
        raise configuration.ConfigError(f"sweep {path}: {error}") from None
    trainer = TRAINERS[spec["rule"]]
    problems = []
    model = spec.get("model") or (trainer.models[0] if trainer.models and len(trainer.models) == 1 else None)
    if model is None:
        problems.append(f"model: name the {spec['rule']} model to sweep")
    elif trainer.models is not None and model not in trainer.models:
        problems.append(f"model: {model!r} is not trained by {spec['rule']} (choose from {list(trainer.models)})")
    metric = spec["metric"]["name"]
    if metric != trainer.objective and metric not in _NUMERIC_FIELDS:
        problems.append(f"metric.name: {metric!r}; {spec['rule']} reports {trainer.objective!r} (or one of {list(_NUMERIC_FIELDS)})")
    if spec.get("early_terminate") and spec["method"] != "bayes":
        problems.append("early_terminate: needs method bayes (grid and random trials run as independent jobs, with no shared study to compare them)")
    if spec["method"] != "grid" and "run_cap" not in spec:
        problems.append(f"run_cap: a {spec['method']} sweep needs the number of trials")
    reads = trainer.reads(model) if model else ()
    for key, value in spec["parameters"].items():
        problems += _check_parameter(key, value, spec["method"], reads, workflow_config)
    if problems:
        raise configuration.ConfigError(f"sweep {path}:\n" + "\n".join(f"  - {p}" for p in problems))
    names = list(spec["parameters"])
    last = [k.split(".")[-1] for k in names]
    short = {(s if last.count(s) == 1 else k.replace(".", "_")): k for s, k in zip(last, names)}
    return Sweep(
        name=spec.get("name", path.stem), path=path, rule=spec["rule"], model=model, method=spec["method"],
        metric=metric, goal=spec["metric"]["goal"], parameters=spec["parameters"], run_cap=spec.get("run_cap"),
        workers=spec["workers"], seed=spec.get("seed", workflow_config["seed"]), trainer=trainer, short=short,
        early_terminate=spec.get("early_terminate"),
    )


def _check_parameter(key: str, spec: dict[str, Any], method: str, reads: tuple[str, ...], workflow_config: dict[str, Any]) -> list[str]:
    if key in NOT_SWEPT:
        return [f"parameters.{key}: changes speed, not results; nothing to sweep"]
    if reads and not configuration.covers(reads, key):
        return [f"parameters.{key}: the rule's step does not read it (it reads: {', '.join(reads)})"]
    if "values" in spec and ("min" in spec or "max" in spec):
        return [f"parameters.{key}: give values or min/max, not both"]
    if "values" not in spec and not ("min" in spec and "max" in spec):
        return [f"parameters.{key}: give values, or min and max"]
    if method == "grid" and "values" not in spec:
        return [f"parameters.{key}: a grid sweep needs values"]
    if "values" not in spec and spec["min"] >= spec["max"]:
        return [f"parameters.{key}: min ({spec['min']}) must be below max ({spec['max']})"]
    if "values" not in spec and distribution(spec) == "log_uniform_values" and spec["min"] <= 0:
        return [f"parameters.{key}: log_uniform_values needs min > 0"]
    for value in spec.get("values", [spec.get("min"), spec.get("max")]):
        try:
            configuration.validate(with_values(workflow_config, {key: value}))
        except configuration.ConfigError as error:
            return [f"parameters.{key}: value {value!r} is not allowed: {str(error).splitlines()[-1].strip()}"]
    return []


def with_values(workflow_config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the workflow config with dotted keys set: what a trial runs with."""
    trial = copy.deepcopy(workflow_config)
    for key, value in values.items():
        configuration.set_dotted(trial, key, value)
    return trial


def overlay(best: dict[str, Any]) -> dict[str, Any]:
    """A config overlay (nested like config.yaml) from dotted keys: pass it with --configfile."""
    return with_values({}, best)


def plain(value: Any) -> Any:
    """numpy scalars as Python values (YAML and JSON know no numpy types)."""
    return value.item() if isinstance(value, np.generic) else value


def load_all(paths: list[str], workflow_config: dict[str, Any]) -> dict[str, Sweep]:
    sweeps: dict[str, Sweep] = {}
    for path in paths:
        sweep = load(path, workflow_config)
        if sweep.name in sweeps:
            raise configuration.ConfigError(f"sweeps: two definitions are named {sweep.name!r} ({sweeps[sweep.name].path}, {path})")
        sweeps[sweep.name] = sweep
    return sweeps


def dump_overlay(path: str | Path, best: dict[str, Any]) -> None:
    from hpcml.core.atomic import write_text

    write_text(path, yaml.safe_dump(overlay(best), sort_keys=False))
