"""The settings every step receives.

A step declares the config keys it reads. The workflow passes exactly those as JSON
(``--settings``), so changing any other key reruns nothing of that step; by hand a
step reads them from a config file (``--config``), or takes the schema's defaults.
``--set dotted.key=value`` overrides one key either way (sweeps drive trials with it),
validated against the schema like the file. A step sees only the keys it declares: a
read of anything else fails loudly instead of silently using a default.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from hpcml.core import config

log = logging.getLogger(__name__)


def add_settings_args(parser: argparse.ArgumentParser, reads: Sequence[str] | Callable[[argparse.Namespace], Sequence[str]]) -> None:
    """Settings options of a step that reads the dotted config keys ``reads`` (or, when
    they depend on the step's arguments, a function of the parsed arguments giving them)."""
    shown = "see the step's documentation" if callable(reads) else (", ".join(reads) or "no config keys")
    parser.add_argument("--config", metavar="FILE", help="workflow config file (YAML), validated with defaults")
    parser.add_argument("--settings", metavar="JSON", help=f"the keys this step reads, as JSON (what the workflow passes): {shown}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (dotted, e.g. ariel.cnn.learning_rate=3e-4; value in YAML); repeatable")
    parser.set_defaults(reads=reads)


def step_config(args: argparse.Namespace) -> dict[str, Any]:
    """The validated settings a step works from: only the keys it declares, defaults filled."""
    reads = list(args.reads(args) if callable(args.reads) else args.reads)
    if args.settings and args.config:
        raise config.ConfigError("give --config FILE or --settings JSON, not both")
    if args.settings:
        base = json.loads(args.settings)
        missing = [k for k in reads if not config.has_dotted(base, k)]
        if missing:
            raise config.ConfigError(f"--settings lacks {missing}, which this step reads; pass them (the workflow does)")
    elif args.config:
        base = config.read(args.config)
    else:
        log.info("no --config given: the schema's defaults apply (hpcml config --reference lists them)")
        base = {}
    for item in args.overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise config.ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set ariel.cnn.learning_rate=3e-4")
        if not config.covers(reads, key):
            raise config.ConfigError(f"--set {key}: this step does not read it (it reads: {', '.join(reads) or 'nothing'})")
        config.set_dotted(base, key, yaml.safe_load(text))
    return config.pick(config.validate(base), reads)
