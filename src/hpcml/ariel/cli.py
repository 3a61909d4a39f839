"""``hpcml ariel ...``: synthetic data, ingest, splits, transforms, training, evaluation."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ariel", help="Ariel ML Data Challenge 2021 pipeline")
    parser.add_subparsers(dest="step", required=True, metavar="STEP")
