"""`container:` in the config is the image every rule runs in with --sdm apptainer.

This machine has no Apptainer, so the test stops where Snakemake would start it: with an
image configured, planning with --sdm apptainer needs the apptainer command; without one,
the same plan runs on the host's environment.
"""
from __future__ import annotations

import pytest

from helpers import snakemake

pytestmark = pytest.mark.workflow


def test_rules_run_in_the_configured_image(tmp_path):
    wired = snakemake(tmp_path, "-n", "--sdm", "apptainer", "--config", "container=envs/train.sif")
    assert wired.returncode != 0 and "apptainer or singularity command has to be available" in wired.stdout, wired.stdout[-2000:]
    plain = snakemake(tmp_path, "-n", "--sdm", "apptainer")
    assert plain.returncode == 0, plain.stdout[-2000:]
