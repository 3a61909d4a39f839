"""Load and validate workflow configuration against ``config/schema.yaml``.

Validation happens before any job starts (in the Snakefile) and again in every CLI
step, so a step run by hand on a login node gets the same defaults and the same
errors. Errors name the key, the value and what is allowed. Contradictions between
keys (:func:`check_consistency`, with the pipelines' checks from :mod:`hpcml.checks`) stop
the Snakefile before planning and ``hpcml config``.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# The package is installed editable from the repository (make setup), so the schema
# is read from the one place the README documents.
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "config" / "schema.yaml"


_SECRET_WORDS = ("key", "token", "password", "secret")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    return yaml.safe_load(Path(path or SCHEMA_PATH).read_text())


def _with_defaults(validator_class: type) -> type:
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
                elif sub.get("type") == "object" and name not in instance and "properties" in sub:
                    instance[name] = {}
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of ``config`` with defaults filled in, or raise :class:`ConfigError`."""
    schema = schema or load_schema()
    filled = copy.deepcopy(config)
    errors = sorted(_Validator(schema).iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid configuration:\n" + "\n".join(_describe(e) for e in errors))
    return filled


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    sub = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(sub.get("properties", {}))
        # YAML keys may be numbers (``1: 2``): compare and sort them as the text they were
        unknown = sorted(set(error.instance) - set(allowed), key=str) if isinstance(error.instance, dict) else []
        text = f"  - {key}: unknown key(s) {unknown}; allowed keys: {allowed}"
        if any(word in str(name).lower() for name in unknown for word in _SECRET_WORDS):
            text += "\n      credentials never go in config files: set WANDB_API_KEY or use ~/.netrc"
        return text
    allowed = _allowed(sub)
    text = f"  - {key}: {error.message}"
    if allowed:
        text += f" (allowed: {allowed})"
    if sub.get("description"):
        text += f"\n      {key}: {sub['description']}"
    return text


def _allowed(sub: dict[str, Any]) -> str:
    parts = []
    if "type" in sub:
        parts.append(f"type {sub['type']}")
    if "enum" in sub:
        parts.append(f"one of {sub['enum']}")
    for word, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if word in sub:
            parts.append(f"{symbol} {sub[word]}")
    return ", ".join(parts)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping.

    PyYAML keeps the last value silently, so a second ``ariel:`` block would replace
    the whole first one and its settings would vanish without a word.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                previous = first.setdefault((key_node.tag, key_node.value), line)
                if previous != line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key_node.value!r} appears twice in one section (first on line {previous}); keep one", key_node.start_mark
                    )
        return super().construct_mapping(node, deep)


def read(path: str | Path) -> dict[str, Any]:
    """A YAML config file as written (no defaults); errors name the file and line."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        # opened in binary, PyYAML names the file in its messages and reports bad encodings itself
        with open(path, "rb") as stream:
            config = yaml.load(stream, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config file holds keys and values (a mapping), not {type(config).__name__}")
    return config


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file, apply overrides, validate, fill defaults
    (:func:`hpcml.checks.load` also checks the keys against each other)."""
    config = read(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(config, dotted, value)
    return validate(config)


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {key} is a value, not a section")
        node = child
    node[keys[-1]] = value


def has_dotted(config: dict[str, Any], dotted: str) -> bool:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def pick(config: dict[str, Any], keys: Sequence[str], omit: Sequence[str] = ()) -> dict[str, Any]:
    """The part of ``config`` under the dotted ``keys`` (nested as in the file), less ``omit``."""
    out: dict[str, Any] = {}
    for dotted in keys:
        node: Any = config
        for key in dotted.split("."):
            node = node[key]
        set_dotted(out, dotted, copy.deepcopy(node))
    for dotted in omit:
        *parents, last = dotted.split(".")
        node = out
        for key in parents:
            node = node.get(key, {})
        node.pop(last, None)
    return out


def covers(keys: Sequence[str], dotted: str) -> bool:
    """Whether setting ``dotted`` changes something under one of ``keys``."""
    return any(dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + ".") for k in keys)


def reference_table(schema: dict[str, Any] | None = None) -> str:
    """Every key of the schema with its type, default and description, as Markdown."""
    rows = ["| key | type / allowed | default | meaning |", "|---|---|---|---|"]

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, sub in node.get("properties", {}).items():
            key = f"{prefix}{name}"
            if sub.get("type") == "object" and "properties" in sub:
                rows.append(f"| **{key}** | section | | {sub.get('description', '')} |")
                walk(sub, key + ".")
                continue
            allowed = _allowed(sub) or ("list of " + str(sub["items"].get("enum")) if "items" in sub else "")
            default = json.dumps(sub.get("default"))
            rows.append(f"| `{key}` | {allowed} | `{default}` | {sub.get('description', '')} |")

    walk(schema or load_schema(), "")
    return "\n".join(rows)


# Fewer than 2 groups in a training split give zero spreads to the fitted standardisation.
MIN_TRAIN_GROUPS = 2


def check_consistency(config: dict[str, Any], pipeline_checks: Sequence[Callable[[dict[str, Any]], list[str]]] = ()) -> None:
    """Raise :class:`ConfigError` listing every setting that contradicts another, with its keys.

    The schema checks each key alone. These checks need several, and without them a
    contradiction (a prior's low bound above its high one, a held-out fold that does not
    exist) would surface only when a job runs, maybe hours into a cluster run: the
    Snakefile runs them before planning, ``hpcml config`` when it shows a file.
    ``config`` is validated, defaults filled; a section with ``enabled: false`` is not
    checked (its settings are not used). Each pipeline's own checks come in
    ``pipeline_checks`` (see :mod:`hpcml.checks`): core knows no pipeline.
    """
    problems: list[str] = []
    _check_tree(config, "", problems)
    for key in ("results", "logs"):
        if not config[key].strip().strip("/"):
            problems.append(f"{key} = {config[key]!r} puts every output at the file-system root; name a folder (default: {key})")
    for check in pipeline_checks:
        problems += check(config)
    if problems:
        raise ConfigError("inconsistent configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def _check_tree(node: Any, key: str, problems: list[str]) -> None:
    """Non-finite numbers anywhere (YAML's .nan and .inf pass the schema's type and bounds)
    and every section of folds (n_folds, test_fold, val_fold), wherever it sits."""
    if isinstance(node, float) and not math.isfinite(node):
        problems.append(f"{key} = {node} is not a finite number")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _check_tree(item, f"{key}.{i}", problems)
    elif isinstance(node, dict) and node.get("enabled", True) is not False:
        if {"n_folds", "test_fold", "val_fold"} <= node.keys():
            problems += _fold_problems(node, key)
        for name, child in node.items():
            _check_tree(child, f"{key}.{name}" if key else str(name), problems)


def _fold_problems(splits: dict[str, Any], key: str) -> list[str]:
    n, test, val = splits["n_folds"], splits["test_fold"], splits["val_fold"]
    problems = [f"{key}.{name} = {fold} must be below {key}.n_folds = {n} (folds are numbered 0 to {n - 1})" for name, fold in (("test_fold", test), ("val_fold", val)) if fold >= n]
    if test == val:
        problems.append(f"{key}.test_fold and {key}.val_fold are both {test}: the held-out fold and the validation fold must differ")
    return problems


def fold_sizes(n_groups: int, n_folds: int) -> list[int]:
    """Groups per fold as :func:`hpcml.core.splits.make_folds` deals them: round-robin in a
    seeded order, so fold f holds ceil((n - f) / k), largest first. (Pure arithmetic here:
    the Snakefile must not import numpy to check a config.)"""
    return [(n_groups - f + n_folds - 1) // n_folds for f in range(n_folds)]


def min_groups(n_folds: int) -> int:
    """The fewest groups that fill ``n_folds`` folds and leave :data:`MIN_TRAIN_GROUPS` for
    training whichever two folds are held out (the two largest, at worst)."""
    return next(n for n in itertools.count(n_folds) if n - sum(fold_sizes(n, n_folds)[:2]) >= MIN_TRAIN_GROUPS)
