import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "workflow"))

import cluster  # noqa: E402


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A fresh cluster per test module (its job records are that module's alone), stopped after it.

    With CI=true a SLURM that cannot start fails the tests instead of skipping them."""
    reason = cluster.missing_requirements()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-state")
    try:
        cluster.start(state)
    except cluster.ClusterUnavailable as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))
    yield state
    cluster.stop()
