"""Whole-config checks across pipelines, and the ``hpcml config`` command.

The schema checks each key alone; contradictions between keys need each pipeline's
knowledge (its priors, its file names, its models), so every pipeline's light planning
module contributes a ``problems(config)`` and this module runs them all, from the
Snakefile before planning and from ``hpcml config``. It sits above the pipelines, as
the top-level CLI does; core knows none of them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from hpcml.ariel import layout as ariel_layout
from hpcml.core import config as configuration
from hpcml.lensing import planning as lensing_planning
from hpcml.sage import layout as sage_layout

PIPELINE_CHECKS = (lensing_planning.problems, ariel_layout.problems, sage_layout.problems)


def check(config: dict[str, Any]) -> None:
    """Raise ConfigError listing every contradiction in a validated config, with its keys."""
    configuration.check_consistency(config, PIPELINE_CHECKS)


def load(path: str | Path) -> dict[str, Any]:
    """A config file validated, defaults filled, and checked across keys."""
    config = configuration.load(path)
    check(config)
    return config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="validate a config file and print it with defaults filled in")
    parser.add_argument("file", nargs="?", default="config/config.yaml", help="config file (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.add_argument("--reference", action="store_true", help="print every key, its default and meaning as a Markdown table")
    parser.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> None:
    if args.reference:
        print(configuration.reference_table())
        return
    resolved = load(args.file)
    print(json.dumps(resolved, indent=2) if args.json else yaml.safe_dump(resolved, sort_keys=False))
