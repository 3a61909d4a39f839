"""``hpcml ariel ...``: synthetic data, ingest, splits, transforms, training, evaluation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hpcml.core.cli import add_settings_args, step_config

NEURAL = ("baseline", "cnn")
MODELS = (*NEURAL, "gbt")
# The config keys each step reads; the workflow passes exactly these (see hpcml.core.cli).
FOLDS = ("ariel.splits.test_fold", "ariel.splits.val_fold")
READS = {
    "synth": ("seed", "ariel.synthetic"),
    "ingest": ("ariel.ingest",),
    "combine": (),
    "split": ("seed", "ariel.splits.n_folds"),
    "fit-transforms": (*FOLDS, "ariel.transforms"),
    "train": ("seed", *FOLDS, "ariel.{model}", "training", "wandb"),
    "evaluate": FOLDS,
}


def train_reads(model: str) -> tuple[str, ...]:
    """What training ``model`` reads: the classical model uses no trainer and no W&B."""
    keys = tuple(k.format(model=model) for k in READS["train"])
    return tuple(k for k in keys if k not in ("training", "wandb")) if model not in NEURAL else keys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ariel", help="Ariel ML Data Challenge 2021 pipeline")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("synth", help="write synthetic challenge-format files (noisy_train/, params_train/, noisy_test/)")
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
    p.add_argument("--shard", type=int, help="ingest only this shard (0-based; size: ariel.ingest.shard_size)")
    p.set_defaults(func=_ingest)

    p = steps.add_parser("combine", help="concatenate ingest shards of one data set")
    p.add_argument("--out", type=Path, required=True, help="data set folder")
    p.add_argument("shards", type=Path, nargs="+", help="shard folders in order")
    p.set_defaults(func=_combine)

    p = steps.add_parser("split", help="assign planets to k folds (saved; no planet in two folds)")
    p.add_argument("--data", type=Path, required=True, help="ingested data folder (with train/)")
    p.add_argument("--out", type=Path, required=True, help="folds table (Parquet)")
    p.set_defaults(func=_split)

    p = steps.add_parser("fit-transforms", help="fit input/stellar/target transforms on the training split only")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="transforms JSON")
    p.set_defaults(func=_fit_transforms)

    p = steps.add_parser("train", help="train one model; write its predictions for val, holdout and test, and summary.json")
    p.add_argument("--model", required=True, choices=MODELS, help="which model; its settings are the config section ariel.MODEL")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--transforms", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="model folder (checkpoints, predictions, logs)")
    p.set_defaults(func=_train)

    p = steps.add_parser("evaluate", help="score models on held-out planets, ensemble, plots, submission file")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="evaluation folder (metrics.json, plots)")
    p.add_argument("--submission", type=Path, required=True, help="submission file to write")
    p.add_argument("models", nargs="+", help="NAME=FOLDER of each trained model")
    p.set_defaults(func=_evaluate)

    for name, step in steps.choices.items():
        add_settings_args(step, READS[name] if name != "train" else lambda args: train_reads(args.model))


def _synth(args: argparse.Namespace) -> None:
    from hpcml.ariel.synth import generate

    config = step_config(args)
    generate(args.out, config["ariel"]["synthetic"], config["seed"])


def _ingest(args: argparse.Namespace) -> None:
    from hpcml.ariel.ingest import ingest_all, ingest_shard

    settings = step_config(args)["ariel"]["ingest"]
    if args.shard is None:
        print(json.dumps(ingest_all(args.input_dir, args.output_dir, settings["shard_size"], settings["on_bad_file"]), indent=2))
        return
    if args.dataset is None:
        raise ValueError("--shard needs --dataset train or test")
    ingest_shard(args.input_dir, args.dataset, args.shard, settings["shard_size"], args.output_dir, settings["on_bad_file"])


def _combine(args: argparse.Namespace) -> None:
    from hpcml.ariel.ingest import combine_shards

    step_config(args)
    combine_shards(args.shards, args.out)


def _split(args: argparse.Namespace) -> None:
    from hpcml.ariel.prepare import write_folds

    config = step_config(args)
    write_folds(args.data, args.out, config["ariel"], config["seed"])


def _fit_transforms(args: argparse.Namespace) -> None:
    from hpcml.ariel.prepare import fit_transforms

    fit_transforms(args.data, args.folds, args.out, step_config(args)["ariel"])


def _train(args: argparse.Namespace) -> None:
    from hpcml.ariel.train import train_model

    train_model(args.model, args.data, args.folds, args.transforms, args.out, step_config(args))


def _evaluate(args: argparse.Namespace) -> None:
    from hpcml.ariel.evaluate import evaluate

    models = dict(item.split("=", 1) for item in args.models)
    evaluate({k: Path(v) for k, v in models.items()}, args.data, args.folds, step_config(args)["ariel"], args.out, args.submission)
