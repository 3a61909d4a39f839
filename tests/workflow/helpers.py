"""Running the real Snakefile in a scratch directory, as a user would from a clone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(workdir: Path, *args: str, configfile: Path = ROOT / "tests" / "tiny.yaml", timeout: float = 1500) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile with results under ``workdir`` (stdout holds both streams)."""
    config = workdir / "config"
    if not config.exists():
        config.symlink_to(ROOT / "config")
    command = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(configfile), *args]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin:/usr/sbin:/sbin", "WANDB_MODE": "offline", "HOME": str(Path.home())}
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
