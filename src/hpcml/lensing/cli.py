"""``hpcml lensing ...``: simulation shards, combine, report."""
from __future__ import annotations

import argparse
from pathlib import Path

from hpcml.core.cli import add_settings_args, settings_and_seed


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lensing", help="mock strong-lens simulation (SIE + shear)")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("simulate", help="simulate one shard of lenses (resumes a killed run)")
    add_settings_args(p)
    p.add_argument("--shard", type=int, required=True, help="shard number (0-based)")
    p.add_argument("--out", type=Path, required=True, help="shard folder: <out>/<family>/{lenses,images}.parquet")
    p.add_argument("--work", type=Path, help="checkpoint folder for finished chunks (default: <out>.work)")
    p.set_defaults(func=_simulate)

    p = steps.add_parser("combine", help="combine shards of one family, checking every lens appears once")
    add_settings_args(p)
    p.add_argument("--family", required=True, choices=["shear", "ellipticity", "both"])
    p.add_argument("--out", type=Path, required=True, help="catalogue folder for the family")
    p.add_argument("shards", type=Path, nargs="+", help="shard folders, in shard order")
    p.set_defaults(func=_combine)

    p = steps.add_parser("report", help="figures: image counts, example systems with critical curves")
    add_settings_args(p)
    p.add_argument("--catalog", type=Path, required=True, help="folder holding one catalogue folder per family")
    p.add_argument("--out", type=Path, required=True, help="folder for figures")
    p.set_defaults(func=_report)

    p = steps.add_parser("count", help="print the number of shards the settings make")
    add_settings_args(p)
    p.set_defaults(func=_count)


def _simulate(args: argparse.Namespace) -> None:
    from hpcml.lensing.simulate import run_shard

    settings, seed = settings_and_seed(args, "lensing")
    work = args.work or args.out.with_name(args.out.name + ".work")
    run_shard(settings, seed, args.shard, args.out, work)


def _combine(args: argparse.Namespace) -> None:
    from hpcml.lensing.combine import combine_family

    settings, seed = settings_and_seed(args, "lensing")
    combine_family(settings, seed, args.family, args.shards, args.out)


def _report(args: argparse.Namespace) -> None:
    from hpcml.lensing.report import make_report

    settings, _ = settings_and_seed(args, "lensing")
    make_report(args.catalog, settings["families"], args.out, settings["report"]["n_examples"])


def _count(args: argparse.Namespace) -> None:
    from hpcml.lensing.simulate import count_lenses
    from hpcml.core.shards import plan_shards

    settings, _ = settings_and_seed(args, "lensing")
    print(len(plan_shards(count_lenses(settings), settings["shard_size"])))
