# SAGE: sky-camera JPGs + thermal CSVs (or a synthetic set in their format) -> pairs and a
# consistency report -> sharded crop/resize into arrays -> (node, day) folds -> two-branch
# VICReg -> embedding evaluation. Each rule passes its step exactly the keys it reads.
from hpcml.sage.cli import READS as SAGE_READS
from hpcml.sage.layout import count_captures, missing_inputs

SAGE = config["sage"]
SAGE_DIR = f"{RESULTS}/sage"
SAGE_SYNTHETIC = SAGE["input_dir"] is None
SAGE_INPUT = f"{SAGE_DIR}/raw" if SAGE_SYNTHETIC else SAGE["input_dir"]
SAGE_ARRAYS = ["rgb.npy", "thermal.npy", "index.parquet"]
SAGE_DATA = [f"{SAGE_DIR}/data/{name}" for name in SAGE_ARRAYS]
SAGE_FOLDS = f"{SAGE_DIR}/splits/folds.parquet"
SAGE_FIGURES = ["projection", "retrieval"]
SAGE_WORKERS = config["training"]["num_workers"]

if SAGE["enabled"] and missing_inputs(SAGE):
    raise WorkflowError("\n".join(missing_inputs(SAGE)))
SAGE_SHARDS = [s.name for s in plan_shards(count_captures(SAGE), SAGE["preprocess"]["shard_size"])] if SAGE["enabled"] else []


rule sage_synth:
    output:
        f"{SAGE_DIR}/raw/manifest.json",
    params:
        settings=step_settings(SAGE_READS["synth"]),
        out=subpath(output[0], parent=True),
    log:
        f"{LOGS}/sage/synth.log",
    conda:
        ENV
    shell:
        "hpcml sage synth --settings {params.settings} {params.out:q} > {log:q} 2>&1"


rule sage_download:
    input:
        SAGE["metadata"] or [],
    output:
        f"{SAGE_INPUT}/download_report.json",
    params:
        settings=step_settings(SAGE_READS["download"]),
        input=subpath(output[0], parent=True),
    log:
        f"{LOGS}/sage/download.log",
    conda:
        ENV
    shell:
        "hpcml sage download --settings {params.settings} {input:q} {params.input:q} > {log:q} 2>&1"


rule sage_pair:
    input:
        rules.sage_synth.output if SAGE_SYNTHETIC else (rules.sage_download.output if SAGE["download"]["enabled"] else []),
    output:
        pairs=f"{SAGE_DIR}/pairs/pairs.parquet",
        report=f"{SAGE_DIR}/pairs/consistency.json",
    params:
        settings=step_settings(SAGE_READS["pair"]),
        input=subpath(input[0], parent=True) if SAGE_SYNTHETIC or SAGE["download"]["enabled"] else SAGE_INPUT,
        out=subpath(output.pairs, parent=True),
    log:
        f"{LOGS}/sage/pair.log",
    conda:
        ENV
    shell:
        "hpcml sage pair --settings {params.settings} {params.input:q} --out {params.out:q} > {log:q} 2>&1"


rule sage_preprocess:
    input:
        rules.sage_pair.output.pairs,
    output:
        [f"{SAGE_DIR}/preprocess/{{shard}}/{name}" for name in SAGE_ARRAYS],
    params:
        settings=step_settings(SAGE_READS["preprocess"]),
        index=shard_index,
        out=subpath(output[0], parent=True),
    log:
        f"{LOGS}/sage/preprocess/{{shard}}.log",
    conda:
        ENV
    shell:
        "hpcml sage preprocess --settings {params.settings} --pairs {input:q} --shard {params.index} "
        "--out {params.out:q} > {log:q} 2>&1"


rule sage_combine:
    input:
        [f"{SAGE_DIR}/preprocess/{s}/{name}" for s in SAGE_SHARDS for name in SAGE_ARRAYS],
    output:
        SAGE_DATA,
    params:
        shards=" ".join(shlex.quote(f"{SAGE_DIR}/preprocess/{s}") for s in SAGE_SHARDS),
        out=subpath(output[0], parent=True),
    log:
        f"{LOGS}/sage/combine.log",
    conda:
        ENV
    shell:
        "hpcml sage combine --out {params.out:q} {params.shards} > {log:q} 2>&1"


rule sage_split:
    input:
        f"{SAGE_DIR}/data/index.parquet",
    output:
        SAGE_FOLDS,
    params:
        settings=step_settings(SAGE_READS["split"]),
        data=subpath(input[0], parent=True),
    log:
        f"{LOGS}/sage/split.log",
    conda:
        ENV
    shell:
        "hpcml sage split --settings {params.settings} --data {params.data:q} --out {output:q} > {log:q} 2>&1"


rule sage_train:
    input:
        SAGE_DATA,
        folds=SAGE_FOLDS,
    output:
        f"{SAGE_DIR}/model/summary.json",
    params:
        # The worker count changes speed, not results: it travels as a resource, so changing it reruns nothing.
        settings=step_settings(SAGE_READS["train"], omit=["training.num_workers"]),
        data=subpath(input[0], parent=True),
        out=subpath(output[0], parent=True),
    resources:
        workers=SAGE_WORKERS,
        cpus_per_gpu=SAGE_WORKERS + 1,
    log:
        f"{LOGS}/sage/train.log",
    conda:
        ENV
    shell:
        "hpcml sage train --settings {params.settings} --set training.num_workers={resources.workers} "
        "--data {params.data:q} --folds {input.folds:q} --out {params.out:q} > {log:q} 2>&1"


rule sage_evaluate:
    input:
        SAGE_DATA,
        folds=SAGE_FOLDS,
        model=f"{SAGE_DIR}/model/summary.json",
    output:
        [
            report(f"{SAGE_DIR}/eval/{name}.png", caption=f"../report/sage_{name}.rst", category="SAGE")
            for name in SAGE_FIGURES
        ],
        metrics=f"{SAGE_DIR}/eval/metrics.json",
    params:
        settings=step_settings(SAGE_READS["evaluate"]),
        data=subpath(input[0], parent=True),
        model=subpath(input.model, parent=True),
        out=subpath(output.metrics, parent=True),
    log:
        f"{LOGS}/sage/evaluate.log",
    conda:
        ENV
    shell:
        "hpcml sage evaluate --settings {params.settings} --data {params.data:q} --folds {input.folds:q} "
        "--model {params.model:q} --out {params.out:q} > {log:q} 2>&1"


rule sage:
    input:
        rules.sage_evaluate.output,


if SAGE["enabled"]:
    TARGETS.extend(rules.sage_evaluate.output)
    REPORT_CHECKS.append(rules.sage_pair.output.report)
