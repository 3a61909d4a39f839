# Sweeps: trials of a training rule with --set overrides. grid and random: one job per
# trial (one SLURM array per sweep), folders named by their parameters (Paramspace);
# bayes: N workers sharing one Optuna journal. Then one results table per sweep.
SWEEPS = {}
if config["sweeps"]:
    from hpcml.sweeps.definition import load_all

    try:
        SWEEPS = load_all(config["sweeps"], config)
    except hpcml_config.ConfigError as error:
        raise WorkflowError(str(error))
SWEEP_DIR = f"{RESULTS}/sweeps"
SWEEP_WORKERS = config["training"]["num_workers"]


wildcard_constraints:
    sweep="|".join(SWEEPS) or "none",
    trial=r"[^/]+",


rule sweep_trial:
    input:
        lambda w: sweep_inputs(w.sweep),
    output:
        f"{SWEEP_DIR}/{{sweep}}/trials/{{trial}}/summary.json",
    params:
        command=lambda w: sweep_command(w.sweep),
        sets=lambda w: " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in SWEEPS[w.sweep].trials()[w.trial].items()),
        out=subpath(output[0], parent=True),
    resources:
        cpus_per_gpu=SWEEP_WORKERS + 1,
    log:
        f"{LOGS}/sweeps/{{sweep}}/{{trial}}.log",
    conda:
        ENV
    shell:
        "{params.command} {params.sets} --out {params.out:q} > {log:q} 2>&1"


rule sweep_worker:
    input:
        lambda w: sweep_inputs(w.sweep),
    output:
        f"{SWEEP_DIR}/{{sweep}}/workers/{{worker}}.done",
    params:
        settings=step_settings(("seed",)),
        definition=lambda w: SWEEPS[w.sweep].path,
        command=lambda w: shlex.quote(sweep_command(w.sweep)),
        folder=subpath(output[0], ancestor=2),
    resources:
        cpus_per_gpu=SWEEP_WORKERS + 1,
    log:
        f"{LOGS}/sweeps/{{sweep}}/worker_{{worker}}.log",
    conda:
        ENV
    shell:
        "hpcml sweep worker --settings {params.settings} --definition {params.definition:q} --command {params.command} "
        "--folder {params.folder:q} --worker {wildcards.worker} --done {output:q} > {log:q} 2>&1"


rule sweep_results:
    input:
        lambda w: sweep_outputs(w.sweep),
    output:
        report(f"{SWEEP_DIR}/{{sweep}}/parallel_coordinates.png", caption="../report/sweep_parallel_coordinates.rst", category="Sweeps", subcategory="{sweep}"),
        table=f"{SWEEP_DIR}/{{sweep}}/results.parquet",
        best=f"{SWEEP_DIR}/{{sweep}}/best.yaml",
        summary=f"{SWEEP_DIR}/{{sweep}}/summary.json",
    params:
        settings=step_settings(("seed",)),
        definition=lambda w: SWEEPS[w.sweep].path,
        folder=subpath(output.summary, parent=True),
    log:
        f"{LOGS}/sweeps/{{sweep}}/results.log",
    conda:
        ENV
    shell:
        "hpcml sweep results --settings {params.settings} --definition {params.definition:q} --folder {params.folder:q} > {log:q} 2>&1"


# The same sweep for a W&B server: its sweep file and an sbatch script for the agents (README, Sweeps).
rule sweep_export:
    output:
        f"{SWEEP_DIR}/{{sweep}}/wandb/sweep.yaml",
        f"{SWEEP_DIR}/{{sweep}}/wandb/agent.sbatch",
    params:
        settings=step_settings(("seed", "wandb")),
        definition=lambda w: SWEEPS[w.sweep].path,
        command=lambda w: shlex.quote(sweep_command(w.sweep)),
        folder=subpath(output[0], ancestor=2),
        logs=f"{LOGS}/sweeps",
    log:
        f"{LOGS}/sweeps/{{sweep}}/export.log",
    conda:
        ENV
    shell:
        "hpcml sweep export --settings {params.settings} --definition {params.definition:q} --command {params.command} "
        "--folder {params.folder:q} --logs {params.logs:q} > {log:q} 2>&1"


TARGETS.extend(f"{SWEEP_DIR}/{name}/{target}" for name in SWEEPS for target in ("summary.json", "wandb/sweep.yaml"))
