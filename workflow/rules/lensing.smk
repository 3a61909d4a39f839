# Lensing: shards of simulated lenses -> one catalogue per family -> report figures.
from hpcml.lensing.cli import READS as LENS_READS
from hpcml.lensing.planning import count_lenses

LENS = config["lensing"]
LENS_DIR = f"{RESULTS}/lensing"
LENS_FAMILIES = LENS["families"]
LENS_SHARDS = [s.name for s in plan_shards(count_lenses(LENS), LENS["shard_size"])] if LENS["enabled"] else []
LENS_FILES = ["lenses.parquet", "images.parquet"] + (["render.npy"] if LENS["render"]["enabled"] else [])
LENS_FIGURES = ["image_counts", "delays_magnifications", "examples"] + (["rendered"] if LENS["render"]["enabled"] else [])


def lens_shard_files(shard, family=None):
    families = [family] if family else LENS_FAMILIES
    return [f"{LENS_DIR}/shards/{shard}/{fam}/{name}" for fam in families for name in LENS_FILES]


rule lensing_simulate:
    output:
        lens_shard_files("{shard}"),
    params:
        settings=step_settings(LENS_READS["simulate"]),
        index=shard_index,
        out=lambda wildcards: f"{LENS_DIR}/shards/{wildcards.shard}",
    log:
        f"{LOGS}/lensing/simulate/{{shard}}.log",
    conda:
        ENV
    shell:
        "hpcml lensing simulate --settings {params.settings} "
        "--shard {params.index} --out {params.out} > {log} 2>&1"


rule lensing_combine:
    input:
        lambda wildcards: [f for s in LENS_SHARDS for f in lens_shard_files(s, wildcards.family)],
    output:
        [f"{LENS_DIR}/catalog/{{family}}/{name}" for name in LENS_FILES],
        summary=f"{LENS_DIR}/catalog/{{family}}/summary.json",
    params:
        settings=step_settings(LENS_READS["combine"]),
        shards=" ".join(f"{LENS_DIR}/shards/{s}" for s in LENS_SHARDS),
    log:
        f"{LOGS}/lensing/combine/{{family}}.log",
    conda:
        ENV
    shell:
        "hpcml lensing combine --settings {params.settings} "
        "--family {wildcards.family} --out {LENS_DIR}/catalog/{wildcards.family} {params.shards} > {log} 2>&1"


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
    log:
        f"{LOGS}/lensing/report.log",
    conda:
        ENV
    shell:
        "hpcml lensing report --settings {params.settings} --catalog {LENS_DIR}/catalog "
        "--out {LENS_DIR}/report > {log} 2>&1"


rule lensing_simulation:
    input:
        rules.lensing_report.output,


if LENS["enabled"]:
    TARGETS.extend(rules.lensing_report.output)
