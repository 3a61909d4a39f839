# hpcml: one workflow, three pipelines. `snakemake -n` shows the plan; see README.md.
from snakemake.utils import min_version

min_version("9.0")

from hpcml.core.array_task import run_own_command

# In a SLURM array task, run that task's own job (plugin issue #447; src/hpcml/core/array_task.py).
run_own_command()


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# With --sdm apptainer every rule runs inside this image (built from envs/train.def; README, Cluster guide).
container: config["container"]


include: "workflow/rules/run_lock.smk"
include: "workflow/rules/lensing.smk"
include: "workflow/rules/lensing_models.smk"
include: "workflow/rules/ariel.smk"
include: "workflow/rules/sage.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
