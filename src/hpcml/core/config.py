"""Load and validate workflow configuration against ``config/schema.yaml``.

Validation happens before any job starts (in the Snakefile) and again in every CLI
step, so a step run by hand on a login node gets the same defaults and the same
errors. Errors name the key, the value and what is allowed.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Sequence
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
        unknown = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        text = f"  - {key}: unknown key(s) {unknown}; allowed keys: {allowed}"
        if any(word in name.lower() for name in unknown for word in _SECRET_WORDS):
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


def read(path: str | Path) -> dict[str, Any]:
    """A YAML config file as written (no defaults); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config file holds keys and values (a mapping), not {type(config).__name__}")
    return config


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file, apply overrides, validate, fill defaults."""
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
