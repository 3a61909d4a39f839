import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import snakemake  # noqa: E402


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """The tiny workflow run once to the end (shared by the modules: it takes minutes); tests read or dry-run against it."""
    work = tmp_path_factory.mktemp("tiny")
    run = snakemake(work, "--cores", "2")
    assert run.returncode == 0, run.stdout[-4000:]
    return work
