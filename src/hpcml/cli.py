"""The ``hpcml`` command: one subcommand per workflow step.

Every Snakemake rule calls exactly one of these, so any step can also be run by hand
on a login node, profiled, or tested without Snakemake.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings

from hpcml import __version__
from hpcml.ariel import cli as ariel_cli
from hpcml.core import cli as core_cli
from hpcml.lensing import cli as lensing_cli
from hpcml.sweeps import cli as sweeps_cli

PIPELINES = (core_cli, lensing_cli, ariel_cli, sweeps_cli)


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
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"hpcml: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
