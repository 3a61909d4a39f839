# Ariel: challenge files -> sharded ingest -> planet folds -> fitted transforms ->
# models (baseline MLP, CNN, boosted trees) -> held-out evaluation, ensemble, submission.
from hpcml.ariel.ingest import DATASETS, list_files

ARIEL = config["ariel"]
ARIEL_DIR = f"{RESULTS}/ariel"
ARIEL_SYNTHETIC = ARIEL["input_dir"] is None
ARIEL_INPUT = f"{ARIEL_DIR}/raw" if ARIEL_SYNTHETIC else ARIEL["input_dir"]
ARIEL_NEURAL = [m for m in ARIEL["models"] if m != "gbt"]
ARIEL_ARRAYS = ["X.npy", "stellar.npy", "targets.npy", "meta.parquet"]
ARIEL_FIGURES = ["scores", "error_per_wavelength", "error_vs_noise"]


def ariel_n_files(dataset):
    if ARIEL_SYNTHETIC:
        s = ARIEL["synthetic"]
        planets = s["n_train_planets"] if dataset == "train" else s["n_test_planets"]
        return planets * s["n_spot"] * s["n_photon"]
    try:
        return len(list_files(ARIEL["input_dir"], dataset))
    except FileNotFoundError as error:
        raise WorkflowError(str(error))


ARIEL_SHARDS = (
    {d: [s.name for s in plan_shards(ariel_n_files(d), ARIEL["ingest"]["shard_size"])] for d in DATASETS}
    if ARIEL["enabled"]
    else {d: [] for d in DATASETS}
)


rule ariel_synth:
    output:
        f"{ARIEL_DIR}/raw/manifest.json",
    params:
        settings=settings("ariel"),
        seed=config["seed"],
    log:
        f"{LOGS}/ariel/synth.log",
    conda:
        ENV
    shell:
        "hpcml ariel synth --settings {params.settings} --seed {params.seed} {ARIEL_DIR}/raw > {log} 2>&1"


rule ariel_ingest:
    input:
        [f"{ARIEL_DIR}/raw/manifest.json"] if ARIEL_SYNTHETIC else [],
    output:
        [f"{ARIEL_DIR}/ingest/{{dataset}}/{{shard}}/{name}" for name in ARIEL_ARRAYS + ["report.json"]],
    params:
        index=shard_index,
        size=ARIEL["ingest"]["shard_size"],
        on_bad_file=ARIEL["ingest"]["on_bad_file"],
    log:
        f"{LOGS}/ariel/ingest/{{dataset}}_{{shard}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel ingest {ARIEL_INPUT} {ARIEL_DIR}/ingest/{wildcards.dataset}/{wildcards.shard} "
        "--dataset {wildcards.dataset} --shard {params.index} --shard-size {params.size} "
        "--on-bad-file {params.on_bad_file} > {log} 2>&1"


rule ariel_combine:
    input:
        lambda w: [f"{ARIEL_DIR}/ingest/{w.dataset}/{s}/{name}" for s in ARIEL_SHARDS[w.dataset] for name in ARIEL_ARRAYS],
    output:
        [f"{ARIEL_DIR}/data/{{dataset}}/{name}" for name in ARIEL_ARRAYS],
        report=f"{ARIEL_DIR}/data/{{dataset}}/ingest_report.json",
    params:
        shards=lambda w: " ".join(f"{ARIEL_DIR}/ingest/{w.dataset}/{s}" for s in ARIEL_SHARDS[w.dataset]),
    log:
        f"{LOGS}/ariel/combine_{{dataset}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel combine --out {ARIEL_DIR}/data/{wildcards.dataset} {params.shards} > {log} 2>&1"


rule ariel_split:
    input:
        f"{ARIEL_DIR}/data/train/meta.parquet",
    output:
        f"{ARIEL_DIR}/splits/folds.parquet",
    params:
        settings=settings("ariel"),
        seed=config["seed"],
    log:
        f"{LOGS}/ariel/split.log",
    conda:
        ENV
    shell:
        "hpcml ariel split --settings {params.settings} --seed {params.seed} --data {ARIEL_DIR}/data --out {output} > {log} 2>&1"


rule ariel_transforms:
    input:
        [f"{ARIEL_DIR}/data/train/{name}" for name in ARIEL_ARRAYS],
        folds=rules.ariel_split.output,
    output:
        f"{ARIEL_DIR}/transforms/transforms.json",
    params:
        settings=settings("ariel"),
    log:
        f"{LOGS}/ariel/transforms.log",
    conda:
        ENV
    shell:
        "hpcml ariel fit-transforms --settings {params.settings} --data {ARIEL_DIR}/data "
        "--folds {input.folds} --out {output} > {log} 2>&1"


ARIEL_TRAIN_INPUT = (
    [f"{ARIEL_DIR}/data/{d}/{name}" for d in DATASETS for name in ARIEL_ARRAYS]
    + [f"{ARIEL_DIR}/splits/folds.parquet", f"{ARIEL_DIR}/transforms/transforms.json"]
)
ARIEL_TRAIN_OUTPUT = [f"{ARIEL_DIR}/models/{{model}}/{name}" for name in ("pred_val.npy", "pred_holdout.npy", "pred_test.npy", "summary.json")]
ARIEL_TRAIN_SHELL = (
    "hpcml ariel train --settings {params.settings} --seed {params.seed} --training {params.training} "
    "--wandb {params.wandb} --model {wildcards.model} --data {ARIEL_DIR}/data --folds {ARIEL_DIR}/splits/folds.parquet "
    "--transforms {ARIEL_DIR}/transforms/transforms.json --out {ARIEL_DIR}/models/{wildcards.model} > {log} 2>&1"
)


rule ariel_train_neural:
    input:
        ARIEL_TRAIN_INPUT,
    output:
        ARIEL_TRAIN_OUTPUT,
    wildcard_constraints:
        model="baseline|cnn",
    params:
        settings=settings("ariel"),
        seed=config["seed"],
        training=settings("training"),
        wandb=settings("wandb"),
    log:
        f"{LOGS}/ariel/train_{{model}}.log",
    conda:
        ENV
    shell:
        ARIEL_TRAIN_SHELL


use rule ariel_train_neural as ariel_train_gbt with:
    wildcard_constraints:
        model="gbt",


rule ariel_evaluate:
    input:
        [f"{ARIEL_DIR}/models/{m}/summary.json" for m in ARIEL["models"]],
    output:
        [
            report(f"{ARIEL_DIR}/eval/{name}.png", caption=f"../report/ariel_{name}.rst", category="Ariel")
            for name in ARIEL_FIGURES
        ],
        metrics=f"{ARIEL_DIR}/eval/metrics.json",
        submission=f"{ARIEL_DIR}/submission/submission.txt",
    params:
        settings=settings("ariel"),
        models=" ".join(f"{m}={ARIEL_DIR}/models/{m}" for m in ARIEL["models"]),
    log:
        f"{LOGS}/ariel/evaluate.log",
    conda:
        ENV
    shell:
        "hpcml ariel evaluate --settings {params.settings} --data {ARIEL_DIR}/data --folds {ARIEL_DIR}/splits/folds.parquet "
        "--out {ARIEL_DIR}/eval --submission {output.submission} {params.models} > {log} 2>&1"


rule ariel:
    input:
        rules.ariel_evaluate.output,


if ARIEL["enabled"]:
    TARGETS.extend(rules.ariel_evaluate.output)
