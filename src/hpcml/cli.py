"""The ``hpcml`` command: one subcommand per workflow step.

Every Snakemake rule calls exactly one of these, so any step can also be run by hand
on a login node, profiled, or tested without Snakemake.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings

import yaml

from hpcml import __version__, checks, report
from hpcml.ariel import cli as ariel_cli
from hpcml.core.orphans import stop_when_snakemake_dies
from hpcml.lensing import cli as lensing_cli
from hpcml.sage import cli as sage_cli
from hpcml.sweeps import cli as sweeps_cli

PIPELINES = (checks, lensing_cli, ariel_cli, sage_cli, sweeps_cli, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpcml",
        description=(
            "Steps of the hpcml workflows. Snakemake runs them for you (see README); run one by hand "
            "with --config config/config.yaml to debug or profile it."
        ),
        epilog="Run 'hpcml PIPELINE --help' for the steps of a pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"hpcml {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="pipeline", required=True, metavar="PIPELINE")
    for module in PIPELINES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Lightning's internal deprecation chatter says nothing actionable to a user.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    stop_when_snakemake_dies()
    try:
        args.func(args)
    except BrokenPipeError:
        # the reader left (``hpcml config | head``); flushing at exit would fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, RuntimeError, yaml.YAMLError, OSError) as error:
        message = user_error(error, args)
        if message is None:
            raise
        print(f"hpcml: error: {message}", file=sys.stderr)
        return 2
    return 0


def user_error(error: Exception, args: argparse.Namespace) -> str | None:
    """What to tell the user about ``error``, or None for a bug (which keeps its traceback).

    The project raises ValueError and RuntimeError subclasses (ConfigError, format,
    table and id errors) with messages that name the file, line or key; the standard
    library's errors get the argument or file they came from added here.
    """
    if isinstance(error, json.JSONDecodeError) and error.doc == getattr(args, "settings", None):
        return f"--settings is not valid JSON: {error}"
    if isinstance(error, yaml.YAMLError):
        mark = getattr(error, "problem_mark", None)
        text = mark.buffer.rstrip("\0") if mark is not None and mark.buffer else None
        items = [item for item in getattr(args, "overrides", []) if item.partition("=")[2] == text]
        return f"--set {items[0]}: the value is not valid YAML ({getattr(error, 'problem', error)})" if items else f"not valid YAML: {error}"
    if isinstance(error, OSError):
        if error.filename is not None:
            return f"{error.filename}: {error.strerror}"
        # the project's own FileNotFoundErrors carry a message naming the folder and key
        return str(error) if isinstance(error, FileNotFoundError) else None
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
