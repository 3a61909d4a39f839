"""The tiny workflow on a real SLURM with the shipped profile (site values adapted to this node).

Asserts from the scheduler itself that the shard rules went out as single array jobs
and that the neural training rule was scheduled with a GPU on the GPU partition.
With CI=true the test must run: a SLURM that cannot start fails it.
"""
from __future__ import annotations

import json
from collections import defaultdict

import pytest
import yaml

import cluster
from helpers import ROOT, snakemake

pytestmark = pytest.mark.slurm


def test_tiny_workflow_on_slurm(slurm, tmp_path):
    """Every pipeline, a 4-trial grid sweep (one array) and a 4-trial bayes sweep with 2 workers."""
    profile = cluster.site_profile(tmp_path / "profile")
    config = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text())
    config["sweeps"] = [str(ROOT / "tests" / "sweeps" / name) for name in ("gbt_grid.yaml", "gbt_bayes.yaml")]
    configfile = tmp_path / "tiny_sweeps.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "--profile", str(profile), configfile=configfile)
    assert run.returncode == 0, run.stdout[-5000:]
    results = tmp_path / "results"
    assert json.loads((results / "ariel" / "eval" / "metrics.json").read_text())["ensemble"]["ariel_score"]
    assert "retrieval" in json.loads((results / "sage" / "eval" / "metrics.json").read_text())
    for sweep in ("gbt_grid", "gbt_bayes"):
        assert json.loads((results / "sweeps" / sweep / "summary.json").read_text())["trials"] == 4

    by_rule = defaultdict(list)
    for job in cluster.jobs():
        comment = job.get("Comment") or ""
        if comment.startswith("rule_"):
            by_rule[comment.split("_wildcards")[0].removeprefix("rule_")].append(job)

    shards = by_rule["lensing_simulate"]
    assert len(shards) == 4, f"expected 4 shard tasks, scheduler has {len(shards)}"
    assert len({j["ArrayJobId"] for j in shards}) == 1 and all(j.get("ArrayTaskId") for j in shards), "shards were not one array job"
    assert len({j["ArrayJobId"] for j in by_rule["ariel_ingest"] if j.get("ArrayJobId")}) >= 1

    training = by_rule["ariel_train_neural"]
    assert len(training) == 2
    for job in training:
        assert job["Partition"] == "gpu"
        assert "gpu:1" in (job.get("TresPerJob") or "") + (job.get("TresPerNode") or ""), job
        assert "gpu" in (job.get("CpusPerTres") or ""), f"CPUs were not asked per GPU (cpus_per_gpu): {job}"
    trials = by_rule["sweep_trial"]
    assert len(trials) == 4 and len({j["ArrayJobId"] for j in trials}) == 1, "grid trials were not one array job"
    assert len(by_rule["sweep_worker"]) == 2
    assert all(j["Partition"] == "gpu" for j in by_rule["sage_train"] + trials)
    assert all(j["JobState"] == "COMPLETED" for jobs in by_rule.values() for j in jobs)
