# Lensing models: one family's catalogue -> noisy observables and lens-id folds ->
# the group's baselines (one per image count), the set model and the CNN on rendered
# images -> evaluation and H0.
from hpcml.lensing.cli import READS as LENS_READS, train_reads as lens_train_reads
from hpcml.lensing.naming import model_names as lens_model_names

LENS_MODELS = LENS["models"]
LENS_MODEL_DIR = f"{LENS_DIR}/models"
LENS_MODEL_NAMES = lens_model_names(LENS_MODELS)
LENS_DATA_ARRAYS = ["images.npy", "mask.npy", "lens.npy", "targets.npy", "image_targets.npy", "meta.parquet", "folds.parquet"]
LENS_MODEL_FILES = ["pred_val.npy", "pred_test.npy", "rows_val.npy", "rows_test.npy", "equivariance.json", "summary.json"]
LENS_EVAL_FIGURES = ["predicted_vs_true", "errors_by_image_count", "calibration", "h0"]
LENS_WORKERS = config["training"]["num_workers"]
# Rows in the catalogue's order, which the dataset keeps: the CNN reads them beside its arrays.
LENS_RENDER = f"{LENS_DIR}/catalog/{LENS_MODELS['family']}/render.npy"
if LENS["enabled"] and LENS_MODELS["enabled"] and LENS_MODELS["family"] not in LENS_FAMILIES:
    raise WorkflowError(f"lensing.models.family ({LENS_MODELS['family']}) must be one of lensing.families {LENS_FAMILIES}")
if LENS["enabled"] and LENS_MODELS["enabled"] and "cnn" in LENS_MODELS["train"] and not LENS["render"]["enabled"]:
    raise WorkflowError("lensing.models.train lists cnn, which learns from rendered images, but lensing.render.enabled is false: "
                        "enable rendering or drop cnn")


rule lensing_dataset:
    input:
        [f"{LENS_DIR}/catalog/{LENS_MODELS['family']}/{name}" for name in ("lenses.parquet", "images.parquet")],
    output:
        [f"{LENS_MODEL_DIR}/data/{name}" for name in LENS_DATA_ARRAYS],
        summary=f"{LENS_MODEL_DIR}/data/dataset.json",
    params:
        settings=step_settings(LENS_READS["dataset"]),
        catalog=subpath(input[0], parent=True),
        out=subpath(output.summary, parent=True),
    log:
        f"{LOGS}/lensing/dataset.log",
    conda:
        ENV
    shell:
        "hpcml lensing dataset --settings {params.settings} --catalog {params.catalog:q} --out {params.out:q} > {log:q} 2>&1"


rule lensing_train:
    input:
        rules.lensing_dataset.output,
        render=lambda w: LENS_RENDER if w.model == "cnn" else [],
    output:
        [f"{LENS_MODEL_DIR}/{{model}}/{name}" for name in LENS_MODEL_FILES],
    wildcard_constraints:
        model="|".join(LENS_MODEL_NAMES) or "none",
    params:
        # The worker count changes speed, not results: it travels as a resource, so changing it reruns nothing.
        settings=lambda w: step_settings(lens_train_reads(w.model), omit=["training.num_workers"]),
        data=subpath(input[0], parent=True),
        out=subpath(output[0], parent=True),
        render=lambda w, input: f"--render {shlex.quote(input.render)}" if w.model == "cnn" else "",
    resources:
        workers=LENS_WORKERS,
        cpus_per_gpu=LENS_WORKERS + 1,
    log:
        f"{LOGS}/lensing/train_{{model}}.log",
    conda:
        ENV
    shell:
        "hpcml lensing train --settings {params.settings} --set training.num_workers={resources.workers} "
        "--model {wildcards.model} --data {params.data:q} {params.render} --out {params.out:q} > {log:q} 2>&1"


rule lensing_evaluate:
    input:
        rules.lensing_dataset.output,
        [f"{LENS_MODEL_DIR}/{m}/{name}" for m in LENS_MODEL_NAMES for name in LENS_MODEL_FILES],
    output:
        [
            report(f"{LENS_DIR}/eval/{name}.png", caption=f"../report/lensing_eval_{name}.rst", category="Lensing models")
            for name in LENS_EVAL_FIGURES
        ],
        metrics=f"{LENS_DIR}/eval/metrics.json",
    params:
        settings=step_settings(LENS_READS["evaluate"]),
        data=subpath(input[0], parent=True),
        models=" ".join(shlex.quote(f"{m}={LENS_MODEL_DIR}/{m}") for m in LENS_MODEL_NAMES),
        out=subpath(output.metrics, parent=True),
    log:
        f"{LOGS}/lensing/evaluate.log",
    conda:
        ENV
    shell:
        "hpcml lensing evaluate --settings {params.settings} --data {params.data:q} --out {params.out:q} {params.models} > {log:q} 2>&1"


rule lensing_models:
    input:
        rules.lensing_evaluate.output,


if LENS["enabled"] and LENS_MODELS["enabled"]:
    TARGETS.extend(rules.lensing_evaluate.output)
