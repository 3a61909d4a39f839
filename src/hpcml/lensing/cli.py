"""``hpcml lensing ...``: simulation shards, combine, report."""
from __future__ import annotations

import argparse
from pathlib import Path

from hpcml.core.cli import add_settings_args, step_config
from hpcml.lensing.naming import section

# The config keys each step reads; the workflow passes exactly these (see hpcml.core.cli).
SIMULATION = tuple(f"lensing.{k}" for k in ("source", "table", "n_lenses", "shard_size", "chunk_size", "families", "priors", "cosmology", "solver", "render"))
READS = {
    "simulate": ("seed", *SIMULATION),
    "combine": ("seed", *SIMULATION),
    "report": ("lensing.families", "lensing.report"),
    "count": ("lensing.source", "lensing.table", "lensing.n_lenses", "lensing.shard_size"),
    "calibrate": ("seed", *SIMULATION),
    "dataset": ("seed", *(f"lensing.models.{k}" for k in ("max_images", "targets", "noise", "splits.n_folds"))),
    "evaluate": ("lensing.cosmology", "lensing.models.targets", "lensing.models.noise.delay_fraction", "lensing.models.h0"),
}
MODEL_READS = ("seed", "lensing.models.max_images", "lensing.models.targets", "lensing.models.splits.test_fold",
               "lensing.models.splits.val_fold", "lensing.models.{section}", "training", "wandb")
# The CNN turns its shift (arcsec) into pixels of the rendered images.
CNN_READS = ("lensing.render.pixel_scale",)


def train_reads(model: str) -> tuple[str, ...]:
    """What training ``model`` reads: its section (baseline_n2 -> lensing.models.baseline) and the shared keys."""
    shared = tuple(k.format(section=section(model)) for k in MODEL_READS)
    return shared + CNN_READS if model == "cnn" else shared


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("lensing", help="mock strong-lens simulation (SIE + shear)")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("simulate", help="simulate one shard of lenses (resumes a killed run)")
    p.add_argument("--shard", type=int, required=True, help="shard number (0-based)")
    p.add_argument("--out", type=Path, required=True, help="shard folder: <out>/<family>/{lenses,images}.parquet")
    p.add_argument("--work", type=Path, help="checkpoint folder for finished chunks (default: <out>.work)")
    p.set_defaults(func=_simulate)

    p = steps.add_parser("combine", help="combine shards of one family, checking every lens appears once")
    p.add_argument("--family", required=True, choices=["shear", "ellipticity", "both"])
    p.add_argument("--out", type=Path, required=True, help="catalogue folder for the family")
    p.add_argument("shards", type=Path, nargs="+", help="shard folders, in shard order")
    p.set_defaults(func=_combine)

    p = steps.add_parser("report", help="figures: image counts, example systems with critical curves")
    p.add_argument("--catalog", type=Path, required=True, help="folder holding one catalogue folder per family")
    p.add_argument("--out", type=Path, required=True, help="folder for figures")
    p.set_defaults(func=_report)

    p = steps.add_parser("count", help="print the number of shards the settings make")
    p.set_defaults(func=_count)

    p = steps.add_parser(
        "calibrate",
        help="measure lenses/s per core and size shards to a quarter of the wall-time limit",
        description="Simulates a sample of lenses as a shard would (one core, every family, rendering) and writes a config "
        "overlay with lensing.shard_size, chunk_size and shard_minutes (SLURM then gets twice that per shard). "
        "Pass it with: snakemake --profile profiles/slurm --configfile config/config.yaml OVERLAY.",
    )
    limit = p.add_mutually_exclusive_group(required=True)
    limit.add_argument("--wall-limit", type=float, metavar="MINUTES", help="the partition's time limit in minutes")
    limit.add_argument("--partition", help="ask sinfo for this partition's time limit")
    p.add_argument("--sample", type=int, default=500, help="lenses to simulate for the measurement (default 500)")
    p.add_argument("--out", type=Path, help="config overlay to write (YAML)")
    p.set_defaults(func=_calibrate)

    p = steps.add_parser("dataset", help="observables with measurement noise, targets and lens-id folds from one family's catalogue")
    p.add_argument("--catalog", type=Path, required=True, help="the family's catalogue folder (lenses.parquet, images.parquet)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.set_defaults(func=_dataset)

    p = steps.add_parser("train", help="train one lens model (baseline_n<k>, set or cnn); predictions, equivariance, summary.json")
    p.add_argument("--model", required=True, help="baseline_n1, baseline_n2, baseline_n4 (one per image count), set, or cnn")
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument("--render", type=Path, help="the family's rendered images, <catalogue>/render.npy (cnn only)")
    p.add_argument("--out", type=Path, required=True, help="model folder")
    p.set_defaults(func=_train)

    p = steps.add_parser("evaluate", help="every model on the test lenses: metrics, calibration, equivariance, H0, figures")
    p.add_argument("--data", type=Path, required=True, help="dataset folder")
    p.add_argument("--out", type=Path, required=True, help="evaluation folder (metrics.json, figures)")
    p.add_argument("models", nargs="+", help="NAME=FOLDER of each trained model")
    p.set_defaults(func=_evaluate)

    for name, step in steps.choices.items():
        add_settings_args(step, READS[name] if name != "train" else lambda args: train_reads(args.model))


def _simulate(args: argparse.Namespace) -> None:
    from hpcml.lensing.simulate import run_shard

    config = step_config(args)
    work = args.work or args.out.with_name(args.out.name + ".work")
    run_shard(config["lensing"], config["seed"], args.shard, args.out, work)


def _combine(args: argparse.Namespace) -> None:
    from hpcml.lensing.combine import combine_family

    config = step_config(args)
    combine_family(config["lensing"], config["seed"], args.family, args.shards, args.out)


def _report(args: argparse.Namespace) -> None:
    from hpcml.lensing.report import make_report

    settings = step_config(args)["lensing"]
    make_report(args.catalog, settings["families"], args.out, settings["report"]["n_examples"])


def _count(args: argparse.Namespace) -> None:
    from hpcml.core.shards import plan_shards
    from hpcml.lensing.planning import count_lenses

    settings = step_config(args)["lensing"]
    print(len(plan_shards(count_lenses(settings), settings["shard_size"])))


def _calibrate(args: argparse.Namespace) -> None:
    import json

    from hpcml.lensing.calibrate import calibrate, partition_limit

    config = step_config(args)
    limit = args.wall_limit if args.wall_limit is not None else partition_limit(args.partition)
    print(json.dumps(calibrate(config["lensing"], config["seed"], limit, args.sample, args.out), indent=2))


def _dataset(args: argparse.Namespace) -> None:
    from hpcml.lensing.observables import build

    config = step_config(args)
    build(args.catalog, config["lensing"]["models"], config["seed"], args.out)


def _train(args: argparse.Namespace) -> None:
    from hpcml.lensing.train import train_model

    train_model(args.model, args.data, args.out, step_config(args), render=args.render)


def _evaluate(args: argparse.Namespace) -> None:
    from hpcml.lensing.cosmology import build_cosmology, delay_days_per_arcsec2
    from hpcml.lensing.evaluate import evaluate

    settings = step_config(args)["lensing"]
    h0_sim = float(build_cosmology(settings["cosmology"]).H0.value)
    models = {k: Path(v) for k, v in (item.split("=", 1) for item in args.models)}
    evaluate(args.data, models, settings["models"], h0_sim, float(delay_days_per_arcsec2(1.0)), args.out)
