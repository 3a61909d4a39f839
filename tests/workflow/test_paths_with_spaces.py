"""Folders with spaces (a user's "My Drive/results") reach every step as one argument each.

Unquoted, a job's `> {log}` split at the space and one step's error overwrote an unrelated file.
"""
from __future__ import annotations

import shlex

import pytest
import yaml

from helpers import ROOT, snakemake

pytestmark = pytest.mark.workflow


def test_every_command_keeps_spaced_folders_whole(tmp_path):
    config = yaml.safe_load((ROOT / "tests" / "tiny.yaml").read_text()) | {"results": "my results", "logs": "my logs"}
    config["sweeps"] = [str(ROOT / "tests" / "sweeps" / name) for name in ("gbt_grid.yaml", "gbt_bayes.yaml")]
    configfile = tmp_path / "spaced.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n", "-p", "--forceall", configfile=configfile)
    assert run.returncode == 0, run.stdout[-3000:]
    commands = [line.split("Shell command: ", 1)[1] for line in run.stdout.splitlines() if "Shell command: " in line]
    assert len(commands) > 10
    for command in commands:
        words = shlex.split(command)
        assert "my" not in words, command
        assert not any(w.startswith(("results/", "logs/")) for w in words), command
