# Shared by every pipeline: validated config, folders, how rules call the hpcml CLI.
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from hpcml.core import config as hpcml_config
from hpcml.core.shards import plan_shards

try:
    # Snakemake's own YAML reading keeps the last of a repeated key; ours names it.
    for _file in workflow.configfiles:
        hpcml_config.read(_file)
    _validated = hpcml_config.validate(config)
    hpcml_config.check_consistency(_validated)
except hpcml_config.ConfigError as error:
    raise WorkflowError(f"{error}\nSee config/schema.yaml or the README's config reference.")
config.clear()
config.update(_validated)

# Rules call `hpcml`: the one installed beside this Snakemake comes first on the PATH.
shell.prefix(f"PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\"; ")

RESULTS = config["results"]
LOGS = config["logs"]
ENV = "../../envs/hpcml.yaml"



wildcard_constraints:
    shard=r"shard_\d{5}",


def step_settings(reads, omit=()):
    """The config keys a step reads (its READS entry), less ``omit``, as shell-quoted JSON:
    a change of any of them reruns the rule, a change of any other key does not."""
    return shlex.quote(json.dumps(hpcml_config.pick(config, reads, omit), sort_keys=True))


def shard_index(wildcards):
    return int(wildcards.shard.split("_")[1])


TARGETS = []


def all_targets():
    return TARGETS
