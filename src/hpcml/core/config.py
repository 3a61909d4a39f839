"""Load and validate workflow configuration against ``config/schema.yaml``.

Validation happens before any job starts (in the Snakefile) and again in every CLI
step, so a step run by hand on a login node gets the same defaults and the same
errors. Errors name the key, the value and what is allowed.
"""
from __future__ import annotations

import copy
import json
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


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a YAML config file, apply overrides, validate, fill defaults."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    config = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        set_dotted(config, dotted, value)
    return validate(config)


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


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
