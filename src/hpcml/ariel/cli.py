"""``hpcml ariel ...``: synthetic data, ingest, splits, transforms, training, evaluation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hpcml.core.cli import add_settings_args, full_config, settings_and_seed


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ariel", help="Ariel ML Data Challenge 2021 pipeline")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("synth", help="write synthetic challenge-format files (noisy_train/, params_train/, noisy_test/)")
    add_settings_args(p)
    p.add_argument("out", type=Path, help="folder to write into")
    p.set_defaults(func=_synth)

    p = steps.add_parser(
        "ingest",
        help="parse challenge files into arrays: INPUT_DIR OUTPUT_DIR, or one workflow shard",
        description="By hand: 'hpcml ariel ingest INPUT_DIR OUTPUT_DIR' ingests everything. "
        "The workflow runs one shard per job with --dataset and --shard, then 'combine'.",
    )
    p.add_argument("input_dir", type=Path, help="folder with noisy_train/, params_train/, noisy_test/")
    p.add_argument("output_dir", type=Path, help="output folder (by hand) or the shard's folder (with --shard)")
    p.add_argument("--dataset", choices=["train", "test"], help="with --shard: which data set")
    p.add_argument("--shard", type=int, help="ingest only this shard (0-based)")
    p.add_argument("--shard-size", type=int, default=500, help="files per shard (default: %(default)s)")
    p.add_argument("--on-bad-file", choices=["stop", "skip"], default="stop", help="stop naming the file and line, or skip and report it")
    p.set_defaults(func=_ingest)

    p = steps.add_parser("combine", help="concatenate ingest shards of one data set")
    p.add_argument("--out", type=Path, required=True, help="data set folder")
    p.add_argument("shards", type=Path, nargs="+", help="shard folders in order")
    p.set_defaults(func=_combine)

    p = steps.add_parser("split", help="assign planets to k folds (saved; no planet in two folds)")
    add_settings_args(p)
    p.add_argument("--data", type=Path, required=True, help="ingested data folder (with train/)")
    p.add_argument("--out", type=Path, required=True, help="folds table (Parquet)")
    p.set_defaults(func=_split)

    p = steps.add_parser("fit-transforms", help="fit input/stellar/target transforms on the training split only")
    add_settings_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="transforms JSON")
    p.set_defaults(func=_fit_transforms)

    p = steps.add_parser("train", help="train one model; write its predictions for val, holdout and test")
    add_settings_args(p)
    p.add_argument("--model", required=True, choices=["baseline", "cnn", "gbt"])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--transforms", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="model folder (checkpoints, predictions, logs)")
    p.add_argument("--training", metavar="JSON", help="the 'training' config section as JSON (workflow)")
    p.add_argument("--wandb", metavar="JSON", help="the 'wandb' config section as JSON (workflow)")
    p.set_defaults(func=_train)

    p = steps.add_parser("evaluate", help="score models on held-out planets, ensemble, plots, submission file")
    add_settings_args(p)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="evaluation folder (metrics.json, plots)")
    p.add_argument("--submission", type=Path, required=True, help="submission file to write")
    p.add_argument("models", nargs="+", help="NAME=FOLDER of each trained model")
    p.set_defaults(func=_evaluate)


def _synth(args: argparse.Namespace) -> None:
    from hpcml.ariel.synth import generate

    settings, seed = settings_and_seed(args, "ariel")
    generate(args.out, settings["synthetic"], seed)


def _ingest(args: argparse.Namespace) -> None:
    from hpcml.ariel.ingest import ingest_all, ingest_shard

    if args.shard is None:
        print(json.dumps(ingest_all(args.input_dir, args.output_dir, args.shard_size, args.on_bad_file), indent=2))
        return
    if args.dataset is None:
        raise ValueError("--shard needs --dataset train or test")
    ingest_shard(args.input_dir, args.dataset, args.shard, args.shard_size, args.output_dir, args.on_bad_file)


def _combine(args: argparse.Namespace) -> None:
    from hpcml.ariel.ingest import combine_shards

    combine_shards(args.shards, args.out)


def _split(args: argparse.Namespace) -> None:
    from hpcml.ariel.prepare import write_folds

    settings, seed = settings_and_seed(args, "ariel")
    write_folds(args.data, args.out, settings, seed)


def _fit_transforms(args: argparse.Namespace) -> None:
    from hpcml.ariel.prepare import fit_transforms

    settings, _ = settings_and_seed(args, "ariel")
    fit_transforms(args.data, args.folds, args.out, settings)


def _train(args: argparse.Namespace) -> None:
    from hpcml.ariel.train import train_model

    full = full_config(args, "ariel", training=args.training, wandb=args.wandb)
    train_model(args.model, args.data, args.folds, args.transforms, args.out, full["ariel"], full["training"], full["wandb"], full["seed"])


def _evaluate(args: argparse.Namespace) -> None:
    from hpcml.ariel.evaluate import evaluate

    settings, _ = settings_and_seed(args, "ariel")
    models = dict(item.split("=", 1) for item in args.models)
    evaluate({k: Path(v) for k, v in models.items()}, args.data, args.folds, settings, args.out, args.submission)
