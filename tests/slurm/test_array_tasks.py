"""Each task of a SLURM job array checks its own outputs (plugin issue #447, src/hpcml/core/array_task.py).

The array's first task is made the slowest: as the plugin runs arrays, every other task
would then be reported FAILED for want of the first task's output.
"""
from __future__ import annotations

import subprocess

import pytest
import yaml

import cluster
from helpers import SNAKEMAKE

pytestmark = pytest.mark.slurm

SNAKEFILE = """\
from hpcml.core.array_task import run_own_command

run_own_command()


rule all:
    input:
        expand("out/{i}.txt", i=(1, 2, 3)),


rule work:
    output:
        "out/{i}.txt",
    shell:
        'if [ "$SLURM_ARRAY_TASK_ID" = "$SLURM_ARRAY_TASK_MIN" ]; then sleep 25; fi; echo {wildcards.i} > {output}'
"""


def test_tasks_that_finish_before_the_first_are_not_failed(slurm, tmp_path):
    profile = cluster.site_profile(tmp_path / "profile")
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    settings.update({"slurm-array-jobs": "work", "retries": 0, "keep-going": False})
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    run = subprocess.run([*SNAKEMAKE, "-s", str(tmp_path / "Snakefile"), "--directory", str(tmp_path), "--profile", str(profile)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-5000:]
    tasks = [job for job in cluster.jobs() if (job.get("Comment") or "").startswith("rule_work")]
    assert len(tasks) == 3 and len({job["ArrayJobId"] for job in tasks}) == 1, "the three jobs were not one array"
    assert all(job["JobState"] == "COMPLETED" for job in tasks), [job["JobState"] for job in tasks]
    assert sorted((tmp_path / "out").iterdir()) == [tmp_path / "out" / f"{i}.txt" for i in (1, 2, 3)]
