# Lensing: shards of simulated lenses -> one catalogue per family -> report figures.
import math

from hpcml.lensing.cli import READS as LENS_READS
from hpcml.lensing.planning import count_lenses, shard_files

LENS = config["lensing"]
LENS_DIR = f"{RESULTS}/lensing"
LENS_FAMILIES = LENS["families"]
LENS_SHARDS = [s.name for s in plan_shards(count_lenses(LENS), LENS["shard_size"])] if LENS["enabled"] else []
LENS_FILES = ["lenses.parquet", "images.parquet"] + (["render.npy"] if LENS["render"]["enabled"] else [])
LENS_FIGURES = ["image_counts", "delays_magnifications", "examples"] + (["rendered"] if LENS["render"]["enabled"] else [])


rule lensing_simulate:
    input:
        # The user's table is an input: editing it in place reruns the shards (their chunks carry its hash).
        [LENS["table"]] if LENS["enabled"] and LENS["source"] == "table" else [],
    output:
        shard_files(f"{LENS_DIR}/shards/{{shard}}", LENS_FAMILIES, LENS_FILES),
    params:
        settings=step_settings(LENS_READS["simulate"]),
        index=shard_index,
        out=subpath(output[0], ancestor=2),
    resources:
        # SLURM minutes: twice lensing.shard_minutes (measured by `hpcml lensing calibrate`), else 30; times the attempt.
        runtime=lambda w, attempt: attempt * (math.ceil(2 * LENS["shard_minutes"]) if LENS["shard_minutes"] else 30),
    log:
        f"{LOGS}/lensing/simulate/{{shard}}.log",
    conda:
        ENV
    shell:
        "hpcml lensing simulate --settings {params.settings} "
        "--shard {params.index} --out {params.out:q} > {log:q} 2>&1"


rule lensing_combine:
    input:
        lambda wildcards: [f for s in LENS_SHARDS for f in shard_files(f"{LENS_DIR}/shards/{s}", [wildcards.family], LENS_FILES)],
    output:
        [f"{LENS_DIR}/catalog/{{family}}/{name}" for name in LENS_FILES],
        summary=f"{LENS_DIR}/catalog/{{family}}/summary.json",
    params:
        settings=step_settings(LENS_READS["combine"]),
        shards=" ".join(shlex.quote(f"{LENS_DIR}/shards/{s}") for s in LENS_SHARDS),
        out=subpath(output.summary, parent=True),
    log:
        f"{LOGS}/lensing/combine/{{family}}.log",
    conda:
        ENV
    shell:
        "hpcml lensing combine --settings {params.settings} "
        "--family {wildcards.family} --out {params.out:q} {params.shards} > {log:q} 2>&1"


rule lensing_report:
    input:
        [f"{LENS_DIR}/catalog/{fam}/{name}" for fam in LENS_FAMILIES for name in LENS_FILES],
    output:
        [
            report(
                f"{LENS_DIR}/report/{name}.png",
                caption=f"../report/lensing_{name}.rst",
                category="Lensing",
            )
            for name in LENS_FIGURES
        ],
        summary=f"{LENS_DIR}/report/summary.json",
    params:
        settings=step_settings(LENS_READS["report"]),
        catalog=subpath(input[0], ancestor=2),
        out=subpath(output.summary, parent=True),
    log:
        f"{LOGS}/lensing/report.log",
    conda:
        ENV
    shell:
        "hpcml lensing report --settings {params.settings} --catalog {params.catalog:q} "
        "--out {params.out:q} > {log:q} 2>&1"


rule lensing_simulation:
    input:
        rules.lensing_report.output,


if LENS["enabled"]:
    TARGETS.extend(rules.lensing_report.output)
