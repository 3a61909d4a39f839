"""``hpcml sage ...``: synthetic captures, download, pairing, preprocessing, splits, VICReg training, evaluation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from hpcml.core.cli import add_settings_args, step_config

# The config keys each step reads; the workflow passes exactly these (see hpcml.core.cli).
FOLDS = ("sage.splits.test_fold", "sage.splits.val_fold")
READS = {
    "synth": ("seed", "sage.synthetic"),
    "download": ("sage.download",),
    "pair": ("sage.patterns", "sage.nodes"),
    "preprocess": ("sage.preprocess", "sage.patterns.sky_positions"),
    "combine": (),
    "split": ("seed", "sage.splits.n_folds"),
    "train": ("seed", *FOLDS, "sage.model", "training", "wandb"),
    "evaluate": ("seed", *FOLDS, "sage.evaluation", "training.accelerator"),
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sage", help="SAGE sky cameras: optical + thermal pairs, VICReg embeddings")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("synth", help="write synthetic captures in the group's layout (rgb/, thermal/, nodes.csv, metadata.parquet)")
    p.add_argument("out", type=Path, help="folder to write into")
    p.set_defaults(func=_synth)

    p = steps.add_parser(
        "download",
        help="fetch the files a metadata table lists into rgb/<node>/ and thermal/<node>/",
        description="Parallel, resumable downloads with retries and size checks. Credentials for private nodes come "
        "only from SAGE_USER and SAGE_PASS or ~/.netrc, never from the config. A file that cannot be fetched is listed "
        "in OUTPUT_DIR/download_report.json; the others are kept.",
    )
    p.add_argument("metadata", type=Path, help="metadata table (Parquet or CSV) as sage_data_client.query returns it")
    p.add_argument("output_dir", type=Path, help="folder to fill in the group's layout")
    p.set_defaults(func=_download)

    p = steps.add_parser("pair", help="match optical and thermal captures by node, timestamp and position; report bad files")
    p.add_argument("input_dir", type=Path, help="folder with rgb/<node>/ and thermal/<node>/")
    p.add_argument("--out", type=Path, required=True, help="folder for pairs.parquet, pairs/<node>/*.txt and consistency.json")
    p.set_defaults(func=_pair)

    p = steps.add_parser("preprocess", help="crop, resize and convert one shard of pairs into arrays")
    p.add_argument("--pairs", type=Path, required=True, help="pairs.parquet from 'pair'")
    p.add_argument("--shard", type=int, required=True, help="shard to process (0-based; size: sage.preprocess.shard_size)")
    p.add_argument("--out", type=Path, required=True, help="the shard's folder")
    p.set_defaults(func=_preprocess)

    p = steps.add_parser("combine", help="concatenate preprocessed shards into rgb.npy, thermal.npy and index.parquet")
    p.add_argument("--out", type=Path, required=True, help="arrays folder")
    p.add_argument("shards", type=Path, nargs="+", help="shard folders in order")
    p.set_defaults(func=_combine)

    p = steps.add_parser("split", help="assign (node, day) groups to k folds (saved; no group in two folds)")
    p.add_argument("--data", type=Path, required=True, help="arrays folder (with index.parquet)")
    p.add_argument("--out", type=Path, required=True, help="folds table (Parquet)")
    p.set_defaults(func=_split)

    p = steps.add_parser("train", help="train the two-branch VICReg model; write checkpoints and summary.json")
    p.add_argument("--data", type=Path, required=True, help="arrays folder")
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="model folder (checkpoints, logs, summary.json)")
    p.set_defaults(func=_train)

    p = steps.add_parser("evaluate", help="embed the test fold (streaming) and score retrieval, probes and clusters")
    p.add_argument("--data", type=Path, required=True, help="arrays folder")
    p.add_argument("--folds", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True, help="model folder from 'train'")
    p.add_argument("--out", type=Path, required=True, help="evaluation folder (metrics.json, figures)")
    p.set_defaults(func=_evaluate)

    for name, step in steps.choices.items():
        add_settings_args(step, READS[name])


def _synth(args: argparse.Namespace) -> None:
    from hpcml.sage.synth import write_synthetic

    config = step_config(args)
    write_synthetic(args.out, config["sage"]["synthetic"], config["seed"])


def _download(args: argparse.Namespace) -> None:
    from hpcml.sage.download import download_all

    report = download_all(args.metadata, args.output_dir, step_config(args)["sage"]["download"])
    print(json.dumps({k: v for k, v in report.items() if k != "failed"} | {"failed": len(report["failed"])}, indent=2))


def _pair(args: argparse.Namespace) -> None:
    from hpcml.sage.pairing import pair

    pair(args.input_dir, args.out, step_config(args)["sage"])


def _preprocess(args: argparse.Namespace) -> None:
    from hpcml.sage.preprocess import preprocess_shard

    preprocess_shard(args.pairs, args.shard, args.out, step_config(args)["sage"])


def _combine(args: argparse.Namespace) -> None:
    from hpcml.sage.preprocess import combine_shards

    step_config(args)
    combine_shards(args.shards, args.out)


def _split(args: argparse.Namespace) -> None:
    from hpcml.sage.dataset import write_folds

    config = step_config(args)
    write_folds(args.data, args.out, config["sage"]["splits"], config["seed"])


def _train(args: argparse.Namespace) -> None:
    from hpcml.sage.train import train

    train(args.data, args.folds, args.out, step_config(args))


def _evaluate(args: argparse.Namespace) -> None:
    from hpcml.sage.evaluate import evaluate

    evaluate(args.data, args.folds, args.model, args.out, step_config(args))
