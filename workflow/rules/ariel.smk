# Ariel: challenge files -> sharded ingest -> planet folds -> fitted transforms ->
# models (baseline MLP, CNN, boosted trees) -> held-out evaluation, ensemble, submission.
# Each rule passes its step exactly the config keys it reads (READS), so a change of a
# model's section retrains that model alone.
from hpcml.ariel.cli import NEURAL as ARIEL_NEURAL_MODELS, READS as ARIEL_READS, train_reads
from hpcml.ariel.layout import DATASETS, list_files

ARIEL = config["ariel"]
ARIEL_DIR = f"{RESULTS}/ariel"
ARIEL_SYNTHETIC = ARIEL["input_dir"] is None
ARIEL_INPUT = f"{ARIEL_DIR}/raw" if ARIEL_SYNTHETIC else ARIEL["input_dir"]
ARIEL_ARRAYS = ["X.npy", "stellar.npy", "targets.npy", "meta.parquet"]
ARIEL_FIGURES = ["scores", "error_per_wavelength", "error_vs_noise"]
ARIEL_WORKERS = config["training"]["num_workers"]


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


def ariel_data(datasets=DATASETS, names=ARIEL_ARRAYS):
    return [f"{ARIEL_DIR}/data/{d}/{name}" for d in datasets for name in names]


rule ariel_synth:
    output:
        f"{ARIEL_DIR}/raw/manifest.json",
    params:
        settings=step_settings(ARIEL_READS["synth"]),
    log:
        f"{LOGS}/ariel/synth.log",
    conda:
        ENV
    shell:
        "hpcml ariel synth --settings {params.settings} {ARIEL_DIR}/raw > {log} 2>&1"


rule ariel_ingest:
    input:
        [f"{ARIEL_DIR}/raw/manifest.json"] if ARIEL_SYNTHETIC else [],
    output:
        [f"{ARIEL_DIR}/ingest/{{dataset}}/{{shard}}/{name}" for name in ARIEL_ARRAYS + ["report.json"]],
    params:
        settings=step_settings(ARIEL_READS["ingest"]),
        index=shard_index,
    log:
        f"{LOGS}/ariel/ingest/{{dataset}}_{{shard}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel ingest {ARIEL_INPUT} {ARIEL_DIR}/ingest/{wildcards.dataset}/{wildcards.shard} "
        "--settings {params.settings} --dataset {wildcards.dataset} --shard {params.index} > {log} 2>&1"


rule ariel_combine:
    input:
        lambda w: [f"{ARIEL_DIR}/ingest/{w.dataset}/{s}/{name}" for s in ARIEL_SHARDS[w.dataset] for name in ARIEL_ARRAYS + ["report.json"]],
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
        settings=step_settings(ARIEL_READS["split"]),
    log:
        f"{LOGS}/ariel/split.log",
    conda:
        ENV
    shell:
        "hpcml ariel split --settings {params.settings} --data {ARIEL_DIR}/data --out {output} > {log} 2>&1"


rule ariel_transforms:
    input:
        ariel_data(["train"]),
        folds=rules.ariel_split.output,
    output:
        f"{ARIEL_DIR}/transforms/transforms.json",
    params:
        settings=step_settings(ARIEL_READS["fit-transforms"]),
    log:
        f"{LOGS}/ariel/transforms.log",
    conda:
        ENV
    shell:
        "hpcml ariel fit-transforms --settings {params.settings} --data {ARIEL_DIR}/data "
        "--folds {input.folds} --out {output} > {log} 2>&1"


ARIEL_MODEL_FILES = ["pred_val.npy", "pred_holdout.npy", "pred_test.npy", "summary.json"]


rule ariel_train_neural:
    input:
        ariel_data(),
        f"{ARIEL_DIR}/splits/folds.parquet",
        f"{ARIEL_DIR}/transforms/transforms.json",
    output:
        [f"{ARIEL_DIR}/models/{{model}}/{name}" for name in ARIEL_MODEL_FILES],
    wildcard_constraints:
        model="|".join(ARIEL_NEURAL_MODELS),
    params:
        # Worker count changes speed, not results: it travels as a resource, so changing it reruns nothing.
        settings=lambda w: step_settings(train_reads(w.model), omit=["training.num_workers"]),
    resources:
        workers=ARIEL_WORKERS,
        cpus_per_gpu=ARIEL_WORKERS + 1,
    log:
        f"{LOGS}/ariel/train_{{model}}.log",
    conda:
        ENV
    shell:
        "hpcml ariel train --settings {params.settings} --set training.num_workers={resources.workers} "
        "--model {wildcards.model} --data {ARIEL_DIR}/data --folds {ARIEL_DIR}/splits/folds.parquet "
        "--transforms {ARIEL_DIR}/transforms/transforms.json --out {ARIEL_DIR}/models/{wildcards.model} > {log} 2>&1"


rule ariel_train_gbt:
    input:
        ariel_data(),
        f"{ARIEL_DIR}/splits/folds.parquet",
        f"{ARIEL_DIR}/transforms/transforms.json",
    output:
        [f"{ARIEL_DIR}/models/gbt/{name}" for name in ARIEL_MODEL_FILES],
    params:
        settings=step_settings(train_reads("gbt")),
    log:
        f"{LOGS}/ariel/train_gbt.log",
    conda:
        ENV
    shell:
        "hpcml ariel train --settings {params.settings} --model gbt --data {ARIEL_DIR}/data "
        "--folds {ARIEL_DIR}/splits/folds.parquet --transforms {ARIEL_DIR}/transforms/transforms.json "
        "--out {ARIEL_DIR}/models/gbt > {log} 2>&1"


rule ariel_evaluate:
    input:
        ariel_data(["train"], ["X.npy", "targets.npy", "meta.parquet"]),
        ariel_data(["test"], ["meta.parquet"]),
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
        models=" ".join(f"{m}={ARIEL_DIR}/models/{m}" for m in ARIEL["models"]),
    log:
        f"{LOGS}/ariel/evaluate.log",
    conda:
        ENV
    shell:
        "hpcml ariel evaluate --settings {params.settings} --data {ARIEL_DIR}/data --folds {input.folds} "
        "--out {ARIEL_DIR}/eval --submission {output.submission} {params.models} > {log} 2>&1"


rule ariel:
    input:
        rules.ariel_evaluate.output,


if ARIEL["enabled"]:
    TARGETS.extend(rules.ariel_evaluate.output)
