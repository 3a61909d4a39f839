# Ariel: challenge files -> sharded ingest -> planet folds -> fitted transforms ->
# models (baseline MLP, CNN, boosted trees) -> held-out evaluation, ensemble, submission.
# Each rule passes its step exactly the config keys it reads (READS), so a change of a
# model's section retrains that model alone.
from hpcml.ariel.cli import NEURAL as ARIEL_NEURAL_MODELS, READS as ARIEL_READS, train_reads
from hpcml.ariel.layout import DATASETS, shard_listings

ARIEL = config["ariel"]
ARIEL_DIR = f"{RESULTS}/ariel"
ARIEL_SYNTHETIC = ARIEL["input_dir"] is None
ARIEL_DATA = f"{ARIEL_DIR}/data"
ARIEL_ARRAYS = ["X.npy", "stellar.npy", "targets.npy", "meta.parquet"]
ARIEL_FIGURES = ["scores", "error_per_wavelength", "error_vs_noise"]
ARIEL_MODEL_FILES = ["pred_val.npy", "pred_holdout.npy", "pred_test.npy", "summary.json"]
ARIEL_WORKERS = config["training"]["num_workers"]

try:
    # Per data set: each ingest shard with a digest of its files' names (a parameter, so added files rerun the shards they move).
    ARIEL_LISTINGS = {d: shard_listings(ARIEL, d, ARIEL["ingest"]["shard_size"]) if ARIEL["enabled"] else {} for d in DATASETS}
except FileNotFoundError as error:
    raise WorkflowError(str(error))
ARIEL_SHARDS = {d: list(listing) for d, listing in ARIEL_LISTINGS.items()}

# What training reads: both data sets (it predicts the test set too), the folds, the transforms.
ARIEL_TRAIN_INPUT = dict(
    data=[f"{ARIEL_DATA}/{d}/{name}" for d in DATASETS for name in ARIEL_ARRAYS],
    folds=f"{ARIEL_DIR}/splits/folds.parquet",
    transforms=f"{ARIEL_DIR}/transforms/transforms.json",
)


rule ariel_synth:
    output:
        f"{ARIEL_DIR}/raw/manifest.json",
    params:
        settings=step_settings(ARIEL_READS["synth"]),
        out=subpath(output[0], parent=True),
    log:
        f"{LOGS}/ariel/synth.log",
    conda:
        ENV
    shell:
        "hpcml ariel synth --settings {params.settings} {params.out:q} > {log:q} 2>&1"


rule ariel_ingest:
    input:
        [f"{ARIEL_DIR}/raw/manifest.json"] if ARIEL_SYNTHETIC else [],
    output:
        [f"{ARIEL_DIR}/ingest/{{dataset}}/{{shard}}/{name}" for name in ARIEL_ARRAYS + ["report.json"]],
    params:
        settings=step_settings(ARIEL_READS["ingest"]),
        index=shard_index,
        files=lambda w: ARIEL_LISTINGS[w.dataset][w.shard],
        source=subpath(input[0], parent=True) if ARIEL_SYNTHETIC else ARIEL["input_dir"],
        out=subpath(output[0], parent=True),
    log:
        f"{LOGS}/ariel/ingest/{{dataset}}_{{shard}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel ingest {params.source:q} {params.out:q} --settings {params.settings} "
        "--dataset {wildcards.dataset} --shard {params.index} > {log:q} 2>&1"


rule ariel_combine:
    input:
        lambda w: [f"{ARIEL_DIR}/ingest/{w.dataset}/{s}/{name}" for s in ARIEL_SHARDS[w.dataset] for name in ARIEL_ARRAYS + ["report.json"]],
    output:
        [f"{ARIEL_DATA}/{{dataset}}/{name}" for name in ARIEL_ARRAYS],
        report=f"{ARIEL_DATA}/{{dataset}}/ingest_report.json",
    params:
        shards=lambda w: " ".join(shlex.quote(f"{ARIEL_DIR}/ingest/{w.dataset}/{s}") for s in ARIEL_SHARDS[w.dataset]),
        out=subpath(output.report, parent=True),
    log:
        f"{LOGS}/ariel/combine_{{dataset}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel combine --out {params.out:q} {params.shards} > {log:q} 2>&1"


rule ariel_split:
    input:
        f"{ARIEL_DATA}/train/meta.parquet",
    output:
        f"{ARIEL_DIR}/splits/folds.parquet",
    params:
        settings=step_settings(ARIEL_READS["split"]),
        data=subpath(input[0], ancestor=2),
    log:
        f"{LOGS}/ariel/split.log",
    conda:
        ENV
    shell:
        "hpcml ariel split --settings {params.settings} --data {params.data:q} --out {output:q} > {log:q} 2>&1"


rule ariel_transforms:
    input:
        [f"{ARIEL_DATA}/train/{name}" for name in ARIEL_ARRAYS],
        folds=rules.ariel_split.output,
    output:
        f"{ARIEL_DIR}/transforms/transforms.json",
    params:
        settings=step_settings(ARIEL_READS["fit-transforms"]),
        data=subpath(input[0], ancestor=2),
    log:
        f"{LOGS}/ariel/transforms.log",
    conda:
        ENV
    shell:
        "hpcml ariel fit-transforms --settings {params.settings} --data {params.data:q} "
        "--folds {input.folds:q} --out {output:q} > {log:q} 2>&1"


rule ariel_train_neural:
    input:
        **ARIEL_TRAIN_INPUT,
    output:
        [f"{ARIEL_DIR}/models/{{model}}/{name}" for name in ARIEL_MODEL_FILES],
    wildcard_constraints:
        model="|".join(ARIEL_NEURAL_MODELS),
    params:
        # The worker count changes speed, not results: it travels as a resource, so changing it reruns nothing.
        settings=lambda w: step_settings(train_reads(w.model), omit=["training.num_workers"]),
        data=subpath(input[0], ancestor=2),
        out=subpath(output[0], parent=True),
    resources:
        workers=ARIEL_WORKERS,
        cpus_per_gpu=ARIEL_WORKERS + 1,
    log:
        f"{LOGS}/ariel/train_{{model}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel train --settings {params.settings} --set training.num_workers={resources.workers} "
        "--model {wildcards.model} --data {params.data:q} --folds {input.folds:q} --transforms {input.transforms:q} "
        "--out {params.out:q} > {log:q} 2>&1"


rule ariel_train_gbt:
    input:
        **ARIEL_TRAIN_INPUT,
    output:
        [f"{ARIEL_DIR}/models/gbt/{name}" for name in ARIEL_MODEL_FILES],
    params:
        settings=step_settings(train_reads("gbt")),
        data=subpath(input[0], ancestor=2),
        out=subpath(output[0], parent=True),
    log:
        f"{LOGS}/ariel/train_gbt.log",
    conda:
        ENV
    shell:
        "hpcml ariel train --settings {params.settings} --model gbt --data {params.data:q} "
        "--folds {input.folds:q} --transforms {input.transforms:q} --out {params.out:q} > {log:q} 2>&1"


rule ariel_evaluate:
    input:
        [f"{ARIEL_DATA}/train/{name}" for name in ("X.npy", "targets.npy", "meta.parquet")],
        f"{ARIEL_DATA}/test/meta.parquet",
        [f"{ARIEL_DIR}/models/{m}/{name}" for m in ARIEL["models"] for name in ARIEL_MODEL_FILES],
        folds=f"{ARIEL_DIR}/splits/folds.parquet",
    output:
        [
            report(f"{ARIEL_DIR}/eval/{name}.png", caption=f"../report/ariel_{name}.rst", category="Ariel")
            for name in ARIEL_FIGURES
        ],
        metrics=f"{ARIEL_DIR}/eval/metrics.json",
        submission=f"{ARIEL_DIR}/submission/submission.txt",
    params:
        settings=step_settings(ARIEL_READS["evaluate"]),
        models=" ".join(shlex.quote(f"{m}={ARIEL_DIR}/models/{m}") for m in ARIEL["models"]),
        data=subpath(input[0], ancestor=2),
        out=subpath(output.metrics, parent=True),
    log:
        f"{LOGS}/ariel/evaluate.log",
    conda:
        ENV
    shell:
        "hpcml ariel evaluate --settings {params.settings} --data {params.data:q} --folds {input.folds:q} "
        "--out {params.out:q} --submission {output.submission:q} {params.models} > {log:q} 2>&1"


rule ariel:
    input:
        rules.ariel_evaluate.output,


if ARIEL["enabled"]:
    TARGETS.extend(rules.ariel_evaluate.output)
