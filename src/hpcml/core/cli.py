"""``hpcml config ...``: check a configuration without running anything."""
from __future__ import annotations

import argparse
import json

import yaml

from hpcml.core import config


def add_settings_args(parser: argparse.ArgumentParser) -> None:
    """The two ways a step gets its settings: a config file, or what Snakemake passes."""
    parser.add_argument("--config", metavar="FILE", help="workflow config file (YAML), validated with defaults")
    parser.add_argument("--settings", metavar="JSON", help="the pipeline's config section as JSON (used by the workflow)")
    parser.add_argument("--seed", type=int, help="global seed (with --settings; a config file has its own)")


def full_config(args: argparse.Namespace, section: str, **other_sections: str | None) -> dict:
    """The validated config a step works from: the JSON sections Snakemake passes (so a
    change reruns exactly the rules that use them), or a whole config file by hand."""
    if args.settings:
        parts = {section: json.loads(args.settings), **{k: json.loads(v) for k, v in other_sections.items() if v}}
        if args.seed is not None:
            parts["seed"] = args.seed
        return config.validate(parts)
    if args.config:
        return config.load(args.config)
    raise config.ConfigError("give --config FILE (or --settings JSON, as the workflow does)")


def settings_and_seed(args: argparse.Namespace, section: str) -> tuple[dict, int]:
    full = full_config(args, section)
    return full[section], full["seed"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("config", help="validate a config file and print it with defaults filled in")
    parser.add_argument("file", nargs="?", default="config/config.yaml", help="config file (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.add_argument("--reference", action="store_true", help="print every key, its default and meaning as a Markdown table")
    parser.set_defaults(func=_show)


def _show(args: argparse.Namespace) -> None:
    if args.reference:
        print(config.reference_table())
        return
    resolved = config.load(args.file)
    print(json.dumps(resolved, indent=2) if args.json else yaml.safe_dump(resolved, sort_keys=False))
