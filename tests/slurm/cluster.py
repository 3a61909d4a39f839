"""A real single-node SLURM cluster for the tests: munged, slurmctld, slurmd, two fake GPUs.

Partitions ``main`` and ``gpu`` exist, like on Amarel, so the SLURM profile runs as it
ships. Fake GPUs (/dev/null, /dev/zero) are scheduled like real ones; CUDA sees none. A job past
its time limit gets SIGTERM and, 5 s later (KillWait; SLURM's default is 30 s), SIGKILL.
Needs root and the Debian packages slurm-wlm and munge (.ci/run installs them).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

CONF_DIR = Path("/etc/slurm")
PROFILE = Path(__file__).resolve().parents[2] / "profiles" / "slurm" / "config.yaml"


class ClusterUnavailable(RuntimeError):
    pass


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def missing_requirements() -> str | None:
    if os.geteuid() != 0:
        return "the SLURM test needs root to start slurmctld and slurmd"
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol") if shutil.which(c) is None]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}): apt-get install slurm-wlm munge"
    return None


def write_config(state_dir: Path) -> None:
    cpus = os.cpu_count() or 2
    memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    (CONF_DIR / "slurm.conf").write_text(f"""\
ClusterName=hpcmltest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
MaxArraySize=10001
GresTypes=gpu
StateSaveLocation={state_dir}/ctld
SlurmdSpoolDir={state_dir}/d
SlurmctldPidFile={state_dir}/slurmctld.pid
SlurmdPidFile={state_dir}/slurmd.pid
SlurmctldLogFile={state_dir}/slurmctld.log
SlurmdLogFile={state_dir}/slurmd.log
ReturnToService=2
KillWait=5
SchedulerParameters=sched_interval=2
NodeName=localhost CPUs={cpus} RealMemory={memory_mb} Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")
    (CONF_DIR / "gres.conf").write_text("NodeName=localhost Name=gpu File=/dev/null\nNodeName=localhost Name=gpu File=/dev/zero\n")


def site_profile(directory: Path) -> Path:
    """profiles/slurm as a site would adapt it: this node has 2 cores (one per job, one per GPU) and no accounting."""
    profile = yaml.safe_load(PROFILE.read_text())
    profile["slurm-no-account"] = True
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["seconds-between-status-checks"] = 3
    profile["latency-wait"] = 5
    for rule in profile["set-resources"].values():
        if "cpus_per_task" in rule:
            rule["cpus_per_task"] = 1
        if "gpu" in rule:
            rule["cpus_per_gpu"] = 1
        if "mem_mb" in rule:
            rule["mem_mb"] = 1500
    profile["default-resources"]["mem_mb"] = 1500
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return directory


def stop() -> None:
    _run("scontrol", "shutdown", check=False)
    for daemon in ("slurmctld", "slurmd"):
        _run("pkill", "-x", daemon, check=False)
    time.sleep(1)


def start(state_dir: Path, timeout: float = 90) -> None:
    """Start a fresh cluster; raise ClusterUnavailable with the daemons' logs if it does not come up."""
    reason = missing_requirements()
    if reason:
        raise ClusterUnavailable(reason)
    stop()
    for sub in ("ctld", "d"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    write_config(state_dir)
    if _run("pgrep", "-x", "munged", check=False).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        _run("runuser", "-u", "munge", "--", "munged", "--force")
    _run("slurmctld", "-c")
    _run("slurmd", "-c")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
        if state.startswith("idle"):
            return
        time.sleep(1)
    logs = "\n".join(f"--- {name}\n{(state_dir / name).read_text()[-3000:]}" for name in ("slurmctld.log", "slurmd.log") if (state_dir / name).exists())
    raise ClusterUnavailable(f"SLURM did not come up within {timeout:.0f} s (node state {state!r})\n{logs}")


def jobs() -> list[dict[str, str]]:
    """Every job the controller remembers (finished ones too, for MinJobAge seconds)."""
    out = _run("scontrol", "show", "job", "-o", check=False).stdout
    records = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("No jobs"):
            continue
        fields = {}
        for token in line.split():
            key, _, value = token.partition("=")
            fields[key] = value
        records.append(fields)
    return records
