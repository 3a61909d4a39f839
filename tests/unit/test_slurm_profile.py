"""The shipped SLURM profile turns into the sbatch lines a site expects.

Built with the SLURM plugin's own submit-command builder, so a profile default that
silently wins over a rule's resources (as a default cpus_per_task once won over the GPU
rules' cpus_per_gpu) shows here, without a cluster. The GPU request itself is added
elsewhere in the plugin; the real-SLURM test asserts it from the scheduler.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake_executor_plugin_slurm.submit_string import get_submit_command

ROOT = Path(__file__).resolve().parents[2]
PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
RULES = "\n".join(path.read_text() for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
GPU_RULES = sorted(name for name, resources in PROFILE["set-resources"].items() if resources.get("gpu"))


class Resources(dict):
    """The part of Snakemake's job resources the plugin reads: .get and attribute access."""

    __getattr__ = dict.__getitem__


def sbatch_line(rule: str, from_rule: dict) -> str:
    resources = {**PROFILE["default-resources"], **from_rule, **PROFILE["set-resources"].get(rule, {})}
    resources = Resources({k: v for k, v in resources.items() if not isinstance(v, str) or "attempt" not in v})
    job = SimpleNamespace(resources=resources, threads=1)
    params = dict(run_uuid="run", slurm_logfile="log", comment_str=f"rule_{rule}", account="", partition=f"-p {resources['slurm_partition']}", workdir="")
    return get_submit_command(job, params)


def rule_block(name: str) -> str:
    match = re.search(rf"^rule {name}:\n(.*?)(?=^rule |\Z)", RULES, re.M | re.S)
    assert match, f"no rule {name} in workflow/rules"
    return match.group(1)


def test_the_profile_sets_no_default_that_overrides_per_gpu_cpus():
    assert "cpus_per_task" not in PROFILE["default-resources"]


@pytest.mark.parametrize("rule", GPU_RULES)
def test_gpu_rules_ask_cpus_per_gpu_from_the_rule(rule):
    if "cpus_per_gpu=" not in rule_block(rule):
        pytest.skip(f"{rule} reads no data loader workers")
    line = sbatch_line(rule, {"cpus_per_gpu": 3})
    assert "--cpus-per-gpu=3" in line and "--cpus-per-task" not in line, line
    assert "-p gpu" in line


def test_cpu_rules_get_one_cpu_per_thread_or_their_set_value():
    assert "--cpus-per-task=1" in sbatch_line("lensing_combine", {})
    assert "--cpus-per-task=4" in sbatch_line("ariel_train_gbt", {})


def array_payload(commands: dict[int, str]) -> str:
    """--slurm-jobstep-array-execs as the plugin writes it: base64 JSON of zlib-compressed hex."""
    import base64
    import json
    import zlib

    table = {str(task): zlib.compress(command.encode()).hex() for task, command in commands.items()}
    return base64.b64encode(json.dumps(table).encode()).decode()


def test_a_non_first_array_task_runs_its_own_command():
    from hpcml.core.array_task import own_command

    payload = array_payload({2: "snakemake --target-jobs work:i=2", 3: "snakemake --target-jobs work:i=3"})
    argv = ["snakemake", "--target-jobs", "work:i=1", f"--slurm-jobstep-array-execs={payload}"]
    assert own_command(argv, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1"}) == "snakemake --target-jobs work:i=3"
    assert own_command(argv[:-1] + ["--slurm-jobstep-array-execs", payload], {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1"}).endswith("i=2")
    assert own_command(argv, {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1"}) is None, "the first task is the plugin's own"
    assert own_command(argv, {}) is None
    assert own_command(argv[:-1], {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1"}) is None, "a plain job in an array task"
