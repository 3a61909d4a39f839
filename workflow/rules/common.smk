# Shared by every pipeline: validated config, folders, how rules call the hpcml CLI.
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from hpcml import checks as hpcml_checks
from hpcml.core import config as hpcml_config
from hpcml.core.shards import plan_shards

try:
    # Snakemake's own YAML reading keeps the last of a repeated key; ours names it.
    for _file in workflow.configfiles:
        hpcml_config.read(_file)
    _validated = hpcml_config.validate(config)
    hpcml_checks.check(_validated)
except hpcml_config.ConfigError as error:
    raise WorkflowError(f"{error}\nSee config/schema.yaml or the README's config reference.")
config.clear()
config.update(_validated)

# Rules call `hpcml`: the one on the PATH (an activated environment, a --sdm conda
# environment), else the one installed beside this Snakemake.
shell.prefix(f"PATH=\"$PATH\":{shlex.quote(str(Path(sys.executable).parent))}; ")

RESULTS = config["results"]
LOGS = config["logs"]
ENV = "../../envs/hpcml.yaml"



wildcard_constraints:
    shard=r"shard_\d{5}",


class StepSettings(tuple):
    """A step's ``--settings`` as rules pass it (a parameter): one item, the shell-quoted JSON.

    Snakemake's report shows a job's parameters as text with every double quote escaped,
    which turns JSON into one unreadable block; it shows ``str()`` of this instead, the
    dotted keys with their values. The command line still gets the JSON (Snakemake joins a
    tuple's items), and Snakemake records the repr, the quoted JSON string itself: a changed
    key reruns the step, and results recorded when the parameter was that plain string are
    not rerun.
    """

    def __new__(cls, settings):
        self = super().__new__(cls, (shlex.quote(json.dumps(settings, sort_keys=True)),))
        self.settings = settings
        return self

    def __getnewargs__(self):
        return (self.settings,)

    @property
    def argument(self):
        return self[0]

    def __repr__(self):
        return repr(self[0])

    def __str__(self):
        return "{" + ", ".join(f"{key}: {_shown(value)}" for key, value in _leaves(self.settings)) + "}"


def _leaves(settings, prefix=""):
    for key, value in sorted(settings.items()):
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _shown(value):
    """YAML-like and without double quotes, which the report would escape."""
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return json.dumps(value) if value is None or isinstance(value, (bool, dict)) else str(value)


def step_settings(reads, omit=()):
    """The config keys a step reads (its READS entry), less ``omit``, for ``--settings``:
    a change of any of them reruns the rule, a change of any other key does not."""
    return StepSettings(hpcml_config.pick(config, reads, omit))


def shard_index(wildcards):
    return int(wildcards.shard.split("_")[1])


TARGETS = []
# Consistency reports (JSON) the run's summary shows on the report's landing page.
REPORT_CHECKS = []


def all_targets():
    return TARGETS


# Sweeps (workflow/rules/sweeps.smk): what a trial of the swept rule reads, runs and writes.
def sweep_inputs(name):
    """The files the swept rule's step reads: the same inputs as the rule itself."""
    sweep = SWEEPS[name]
    if sweep.trainer.pipeline == "ariel":
        return list(ARIEL_TRAIN_INPUT["data"]) + [ARIEL_TRAIN_INPUT["folds"], ARIEL_TRAIN_INPUT["transforms"]]
    if sweep.trainer.pipeline == "sage":
        return SAGE_DATA + [SAGE_FOLDS]
    return rules.lensing_dataset.output


def sweep_command(name):
    """The swept rule's step for the sweep's model, without --out (trials add --set and --out)."""
    sweep = SWEEPS[name]
    reads = sweep.trainer.reads(sweep.model)
    settings = step_settings(reads, omit=["training.num_workers"])
    workers = f" --set training.num_workers={SWEEP_WORKERS}" if "training" in reads else ""
    base = f"hpcml {sweep.trainer.pipeline} train --settings {settings.argument}{workers}"
    q = shlex.quote
    if sweep.trainer.pipeline == "ariel":
        return f"{base} --model {sweep.model} --data {q(ARIEL_DATA)} --folds {q(ARIEL_TRAIN_INPUT['folds'])} --transforms {q(ARIEL_TRAIN_INPUT['transforms'])}"
    if sweep.trainer.pipeline == "sage":
        return f"{base} --data {q(f'{SAGE_DIR}/data')} --folds {q(SAGE_FOLDS)}"
    return f"{base} --model {sweep.model} --data {q(f'{LENS_MODEL_DIR}/data')}"


def sweep_outputs(name):
    sweep = SWEEPS[name]
    if sweep.method == "bayes":
        return [f"{SWEEP_DIR}/{name}/workers/{k}.done" for k in range(sweep.workers)]
    return [f"{SWEEP_DIR}/{name}/trials/{trial}/summary.json" for trial in sweep.trials()]
