"""A server-less bayes sweep on a real local SLURM, with one worker killed mid-trial.

Goal (the issue's): a bayes sweep of 32 Ariel CNN trials at demo scale with 4 parallel
workers on the local SLURM finds a configuration that beats the default configuration's
validation score, with zero lost or duplicated trials after a worker is killed mid-run.
Not part of CI: 20-40 minutes on 2 cores.

How: the local cluster of the SLURM tests (tests/slurm/cluster.py: munged, slurmctld,
slurmd, partitions main and gpu, two fake GPUs) is started; Snakemake runs the
repository's Snakefile on the demo config (config/config.yaml) into a temporary folder
with ``--profile`` = the shipped SLURM profile as the tests adapt it to this node, and
``--config 'sweeps=[config/sweeps/ariel_cnn.yaml]'`` (32 trials, 4 workers, bayes, one
Optuna journal). Targets: the sweep's results (results/sweeps/ariel_cnn/summary.json,
after its 4 sweep_worker jobs, one SLURM array) and the default CNN training
(results/ariel/models/cnn/summary.json, whose ``value`` is its validation score,
``val_score``: the default configuration's score).

The node has 2 cores and 2 fake GPUs, so as the tests' profile ships at most two jobs
could run at once. So that the 4 workers run in parallel, the benchmark lets the
partitions share cores (``scontrol update PartitionName=... OverSubscribe=FORCE:4``) and
its profile asks no GPU for sweep_worker (CUDA sees none of the fake ones anyway). On a
real cluster each worker gets its own GPU.

While the workers run and at least --kill-after trials have finished, the benchmark picks
a trial in mid-training (RUNNING, a checkpoint written, at least one epoch logged and at
least three to go), finds the SLURM array task whose processes include that trial's
worker (``scontrol listpids``), and cancels it (``scancel ARRAYJOB_TASK``). Snakemake's
retries and the study's recovery of abandoned trials must then finish the sweep. The
JSON names the trials the killed worker left unfinished, how long each stayed RUNNING
before a worker marked it failed, which trial finished its slot and whether that retry
resumed from the checkpoint. At the end, from the Optuna journal
(results/sweeps/ariel_cnn/study.journal) and the results table (results.parquet):

  trials_completed   COMPLETE trials in the study (must equal the trials asked for)
  duplicates         trial slots (a trial and its retries share one: ``retry_of``, one
                     folder trials/trial_NNNN) finished more than once, plus rows of the
                     results table whose trial number or folder repeats
  lost               slots that were started but never finished (a FAIL without a
                     finished retry, a trial still RUNNING when the workers ended);
                     ``shortfall`` in the details: trials asked for minus finished ones
  best - default     the sweep's best val_score minus the default CNN's

Prints one JSON object on stdout (progress on stderr). Needs root and slurm-wlm + munge,
like the SLURM tests. Only one user of the local cluster at a time: the benchmark waits
until no slurmctld runs (and, with --after LOG, until LOG has a line starting ``rc=``,
e.g. a CI run's log), because starting the cluster stops any running one.

    .venv/bin/python benchmarks/sweep.py                 # the full 32 trials
    .venv/bin/python benchmarks/sweep.py --trials 8      # a shorter check of the same path
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slurm"))

import cluster  # noqa: E402  (tests/slurm/cluster.py: the tests' local SLURM)

SWEEP = "config/sweeps/ariel_cnn.yaml"
SWEEP_NAME = "ariel_cnn"
SWEEP_DIR = f"results/sweeps/{SWEEP_NAME}"
DEFAULT_SUMMARY = "results/ariel/models/cnn/summary.json"
GOAL = (
    "A server-less bayes sweep of 32 Ariel CNN trials at demo scale with 4 parallel workers on the local SLURM "
    "finds a configuration that beats the default configuration's validation score, with zero lost or duplicated "
    "trials after a worker is killed mid-run."
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for_free_cluster(after: Path | None, poll: float) -> float:
    """Wait until ``after`` (if given) has a line starting ``rc=`` and no slurmctld runs; seconds waited."""
    start = time.monotonic()
    last = 0.0
    while True:
        log_done = after is None or (after.exists() and any(line.startswith("rc=") for line in after.read_text(errors="replace").splitlines()))
        controller_running = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0
        if log_done and not controller_running:
            return time.monotonic() - start
        if time.monotonic() - last > 300:
            say(f"waiting for the local SLURM to be free ({'log done' if log_done else f'no rc= line in {after} yet'}, "
                f"slurmctld {'running' if controller_running else 'not running'})")
            last = time.monotonic()
        time.sleep(poll)


def benchmark_profile(directory: Path) -> Path:
    """The tests' site profile, with sweep_worker asking no GPU (4 workers, 2 fake GPUs)."""
    profile = cluster.site_profile(directory)
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    worker = settings["set-resources"]["sweep_worker"]
    worker.pop("gpu", None)
    worker["slurm_partition"] = "main"
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    return profile


def share_cores(per_core: int) -> None:
    for partition in ("main", "gpu"):
        subprocess.run(["scontrol", "update", f"PartitionName={partition}", f"OverSubscribe=FORCE:{per_core}"], check=True, capture_output=True, text=True)


def sweep_definition(workdir: Path, trials: int, workers: int) -> str:
    """The shipped definition as it is, or a copy (same name) with other run_cap/workers."""
    spec = yaml.safe_load((ROOT / SWEEP).read_text())
    if spec["run_cap"] == trials and spec["workers"] == workers:
        return SWEEP
    spec.update(run_cap=trials, workers=workers)
    path = workdir / "sweeps" / f"{SWEEP_NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


class Controller:
    """Snakemake in the background, as a user runs it on a login node; output in a file."""

    def __init__(self, workdir: Path, profile: Path, definition: str) -> None:
        if not (workdir / "config").exists():
            (workdir / "config").symlink_to(ROOT / "config")
        self.log = workdir / "snakemake.log"
        command = [
            sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(ROOT / "config" / "config.yaml"), "--profile", str(profile),
            f"{SWEEP_DIR}/summary.json", DEFAULT_SUMMARY, "--config", f"sweeps=[{definition}]",
        ]
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin:/usr/sbin:/sbin", "WANDB_MODE": "offline", "HOME": str(Path.home())}
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
        self.run_id: str | None = None

    def poll_run_id(self) -> str | None:
        if self.run_id is None:
            self.run_id = next((line.split()[-1] for line in self.log.read_text(errors="replace").splitlines() if line.startswith("SLURM run ID: ")), None)
        return self.run_id

    def stop(self) -> None:
        """SIGTERM (Snakemake cancels its jobs), then SIGKILL; then cancel whatever of the run is left."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.poll_run_id():
            subprocess.run(["scancel", "--name", self.run_id], capture_output=True)


def read_trials(journal: Path) -> list[Any]:
    """Every trial of the sweep's study, read from its journal (nothing is written to it)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    if not journal.exists():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal), lock_obj=JournalFileOpenLock(str(journal))))
    try:
        return optuna.load_study(study_name=SWEEP_NAME, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # the study is not created yet
        return []


def slot(trial: Any) -> int:
    """A trial and its retries share one slot (and one folder, trials/trial_NNNN)."""
    return int(trial.user_attrs.get("retry_of", trial.number))


def worker_tasks(run_id: str) -> list[dict[str, str]]:
    return [j for j in cluster.jobs() if j.get("JobName") == run_id and (j.get("Comment") or "").startswith("rule_sweep_worker")]


def task_name(job: dict[str, str]) -> str:
    if job.get("ArrayJobId") and job.get("ArrayTaskId"):
        return f"{job['ArrayJobId']}_{job['ArrayTaskId']}"
    return job["JobId"]


def job_pids(job_id: str) -> set[int]:
    listed = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in listed.splitlines()[1:] if line.split() and line.split()[0].isdigit()}


def pick_victim(run_id: str, trials: list[Any], sweep_dir: Path, margin: int = 3) -> dict[str, Any] | None:
    """A trial in mid-training and the running SLURM task of its worker.

    Mid-training: RUNNING, a checkpoint written, at least one epoch logged and at least
    ``margin`` of its epochs still to go (so that it cannot end, and its worker ask the
    next trial, between this look and the scancel). Tasks other than the array's first
    are preferred: with plugin 2.8.0 every task of an array checks the first task's
    outputs (README, cluster guide), a separate known fault."""
    from optuna.trial import TrialState

    from hpcml.sweeps.study import trial_folder

    running_tasks = [j for j in worker_tasks(run_id) if j["JobState"] == "RUNNING"]
    candidates = []
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        folder = trial_folder(sweep_dir, trial)
        if not any(folder.rglob("last.ckpt")):
            continue
        done = epochs_done(folder)
        total = next((v for k, v in trial.params.items() if k.endswith(".max_epochs")), None)
        if not done or (total is not None and total - done < margin):
            continue
        host_pid_worker = trial.user_attrs.get("worker", "")
        try:
            _, pid, worker = host_pid_worker.rsplit(":", 2)
        except ValueError:
            continue
        for job in running_tasks:
            if int(pid) in job_pids(job["JobId"]):
                candidates.append({"job": job, "trial": trial, "worker": int(worker), "identity": host_pid_worker, "folder": folder, "epochs": done, "max_epochs": total})
    if not candidates:
        return None
    candidates.sort(key=lambda c: c["job"].get("ArrayTaskId") in ("0", "1"))
    return candidates[0]


def kill_leftovers(run_id: str | None) -> list[int]:
    """SIGKILL processes of this run's SLURM jobs that outlived their job (by pid; found by SLURM_JOB_NAME = run ID).

    With the test cluster's proctrack/linuxproc a cancelled batch job's Snakemake process
    can survive scancel, stuck, reparented to init."""
    if not run_id:
        return []
    mark = f"SLURM_JOB_NAME={run_id}".encode()
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return killed


def epochs_done(folder: Path) -> int | None:
    """Epochs the trial had logged (csv/metrics.csv rows with a train loss), if any."""
    import pandas as pd

    logs = list(folder.rglob("metrics.csv"))
    if not logs:
        return None
    try:
        frame = pd.read_csv(logs[0])
    except Exception:  # noqa: BLE001  (being written)
        return None
    return int(frame["train_loss"].notna().sum()) if "train_loss" in frame else None


def counts(trials: list[Any]) -> dict[str, int]:
    return dict(Counter(t.state.name for t in trials))


def monitor(controller: Controller, sweep_dir: Path, kill_after: int, timeout: float, no_kill: bool) -> dict[str, Any]:
    """Wait for the run; kill one worker's task mid-trial once ``kill_after`` trials have finished."""
    from optuna.trial import TrialState

    journal = sweep_dir / "study.journal"
    start = time.monotonic()
    killed: dict[str, Any] | None = None
    tasks: dict[str, str] = {}
    last_report = last_tasks = 0.0
    while controller.process.poll() is None:
        now = time.monotonic()
        if now - start > timeout:
            raise TimeoutError(f"the run took longer than {timeout:.0f} s; Snakemake's log: {controller.log}")
        run_id = controller.poll_run_id()
        trials = read_trials(journal) if run_id else []
        if run_id and not no_kill and killed is None and sum(t.state == TrialState.COMPLETE for t in trials) >= kill_after:
            victim = pick_victim(run_id, trials, sweep_dir)
            if victim:
                task = task_name(victim["job"])
                epochs = victim["epochs"]
                at = datetime.datetime.now()
                subprocess.run(["scancel", task], check=True)
                killed = {
                    "task": task, "job_id": victim["job"]["JobId"], "worker": victim["worker"], "worker_process": victim["identity"],
                    "trial": victim["trial"].number, "trial_folder": str(victim["folder"].relative_to(sweep_dir)),
                    "epochs_done_when_killed": epochs, "trial_max_epochs": victim["max_epochs"],
                    "trials_completed_before": sum(t.state == TrialState.COMPLETE for t in trials),
                    "seconds_into_run": round(now - start, 1), "at": at.isoformat(timespec="milliseconds"),
                }
                say(f"cancelled SLURM task {task} (worker {victim['worker']}) in trial {victim['trial'].number} after {epochs} epochs")
        if run_id and now - last_tasks > 5:
            tasks.update({task_name(j): j["JobState"] for j in worker_tasks(run_id)})
            last_tasks = now
        if now - last_report > 60:
            say(f"trials {counts(trials)}" + (f"; killed {killed['task']}" if killed else ""))
            last_report = now
        time.sleep(2)
    if controller.run_id:
        tasks.update({task_name(j): j["JobState"] for j in worker_tasks(controller.run_id)})
    return {"returncode": controller.process.returncode, "seconds": time.monotonic() - start, "killed": killed, "tasks": tasks}


def check(workdir: Path, trials_asked: int, killed: dict[str, Any] | None) -> dict[str, Any]:
    """Figures from the journal, the results table and the two summaries."""
    import pandas as pd
    from optuna.trial import TrialState

    from hpcml.core import config as configuration
    from hpcml.sweeps.study import trial_folder

    sweep_dir = workdir / SWEEP_DIR
    trials = read_trials(sweep_dir / "study.journal")
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    per_slot = Counter(slot(t) for t in finished)
    started = {slot(t) for t in trials}
    lost = sorted(started - set(per_slot))
    duplicated_slots = sorted(s for s, n in per_slot.items() if n > 1)
    table_path = sweep_dir / "results.parquet"
    table = pd.read_parquet(table_path) if table_path.exists() else pd.DataFrame(columns=["trial", "number"])
    table_duplicates = int(table["number"].duplicated().sum() + table["trial"].duplicated().sum())
    params = [tuple(sorted(t.params.items())) for t in complete]
    folders_without_summary = sorted(
        p.name for p in (sweep_dir / "trials").glob("trial_*") if p.is_dir() and not (p / "summary.json").exists()
    ) if (sweep_dir / "trials").exists() else []

    summary_path = sweep_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    best_value = max((t.value for t in complete), default=None)
    best_trial = max(complete, key=lambda t: t.value) if complete else None
    default_path = workdir / DEFAULT_SUMMARY
    default = json.loads(default_path.read_text()) if default_path.exists() else None
    workflow = configuration.validate(configuration.read(ROOT / "config" / "config.yaml"))
    default_value = default["value"] if default else None

    retries = [t for t in trials if "retry_of" in t.user_attrs]
    killed_outcome = None
    if killed:
        # What the killed worker process had asked and not finished: normally the trial it was
        # killed in; its slot must be finished by a retry, in the same folder, from its checkpoint.
        at = datetime.datetime.fromisoformat(killed["at"])
        killed_outcome = []
        for trial in trials:
            if trial.user_attrs.get("worker") != killed["worker_process"] or trial.state == TrialState.COMPLETE:
                continue
            same = [t for t in trials if slot(t) == slot(trial)]
            retry = next((t for t in same if t.number != trial.number and t.state == TrialState.COMPLETE), None)
            trial_log = trial_folder(sweep_dir, trial) / "trial.log"
            killed_outcome.append({
                "trial": trial.number,
                "state": trial.state.name,
                "states_of_its_slot": {str(t.number): t.state.name for t in same},
                "finished_by_retry": retry.number if retry else None,
                "retry_worker_process": retry.user_attrs.get("worker") if retry else None,
                # how long it stayed RUNNING after the kill before a worker marked it failed and queued it again
                "marked_failed_after_s": round((trial.datetime_complete - at).total_seconds(), 1) if trial.datetime_complete else None,
                "retry_resumed_from_checkpoint": trial_log.exists() and "resuming from" in trial_log.read_text(errors="replace"),
            })
        if [o["trial"] for o in killed_outcome] != [killed["trial"]]:
            say(f"the killed worker left trials {[o['trial'] for o in killed_outcome]} unfinished, not (only) trial {killed['trial']}")
    return {
        "trials_requested": trials_asked,
        "trials_completed": len(complete),
        "trials_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "trials_in_journal": len(trials),
        "trial_states": counts(trials),
        "duplicates": sum(per_slot[s] - 1 for s in duplicated_slots) + table_duplicates,
        "duplicated_slots": duplicated_slots,
        "repeated_parameter_sets": len(params) - len(set(params)),
        "lost": len(lost),
        "shortfall": max(0, trials_asked - len(finished)),
        "lost_slots": lost,
        "retried_trials": [{"trial": t.number, "retry_of": t.user_attrs["retry_of"], "state": t.state.name} for t in retries],
        "trial_folders_without_summary": folders_without_summary,
        "results_table_rows": int(len(table)),
        "summary_trials": summary["trials"] if summary else None,
        "trials_left_by_the_killed_worker": killed_outcome,
        "best_val_score": best_value,
        "best_trial": best_trial.number if best_trial else None,
        "best_parameters": best_trial.params if best_trial else None,
        "best_in_sweep_summary": summary["best"] if summary else None,
        "default_val_score": default_value,
        "default_parameters": {f"ariel.cnn.{k}": v for k, v in workflow["ariel"]["cnn"].items()},
        "default_epochs": default.get("epochs") if default else None,
        "best_minus_default": (best_value - default_value) if best_value is not None and default_value is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=32, help="run_cap (32: the shipped definition unchanged)")
    parser.add_argument("--workers", type=int, default=4, help="bayes workers (4: the shipped definition)")
    parser.add_argument("--kill-after", type=int, help="finished trials before the kill (default: a quarter of --trials)")
    parser.add_argument("--no-kill", action="store_true", help="an undisturbed run")
    parser.add_argument("--after", type=Path, help="first wait until this log has a line starting 'rc=' (another user's run)")
    parser.add_argument("--poll", type=float, default=15, help="seconds between checks while waiting for the cluster")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds for the Snakemake run")
    parser.add_argument("--workdir", type=Path, help="results folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the results folder (always kept when the run fails)")
    args = parser.parse_args()
    kill_after = args.kill_after if args.kill_after is not None else max(1, args.trials // 4)
    reason = cluster.missing_requirements()
    if reason:
        sys.exit(reason)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    waited = wait_for_free_cluster(args.after, args.poll)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hpcml-sweep-benchmark-"))
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"results folder {workdir}")
    tic = time.monotonic()
    controller: Controller | None = None
    ok = False
    try:
        cluster.start(workdir / "slurm-state")
        share_cores(4)
        profile = benchmark_profile(workdir / "profile")
        definition = sweep_definition(workdir, args.trials, args.workers)
        controller = Controller(workdir, profile, definition)
        run = monitor(controller, workdir / SWEEP_DIR, kill_after, args.timeout, args.no_kill)
        if run["returncode"] != 0:
            say(f"Snakemake exited {run['returncode']}; its log: {controller.log}\n" + controller.log.read_text(errors="replace")[-5000:])
        leftovers = kill_leftovers(controller.run_id)
        if leftovers:
            say(f"killed {len(leftovers)} processes of finished SLURM jobs of this run that were still alive: {leftovers}")
        figures = check(workdir, args.trials, run["killed"])
        met = (
            run["returncode"] == 0 and run["killed"] is not None
            and figures["trials_completed"] == args.trials and figures["duplicates"] == 0 and figures["lost"] == 0
            and figures["best_minus_default"] is not None and figures["best_minus_default"] > 0
        )
        result = {
            "goal": GOAL,
            "goal_met": bool(met) if (args.trials, args.workers) == (32, 4) else None,
            "checks_passed": bool(met),
            "trials_completed": figures["trials_completed"],
            "duplicates": figures["duplicates"],
            "lost": figures["lost"],
            "killed_task": run["killed"]["task"] if run["killed"] else None,
            "best_val_score": figures["best_val_score"],
            "default_val_score": figures["default_val_score"],
            "best_minus_default": figures["best_minus_default"],
            "wall_seconds": round(time.monotonic() - tic, 1),
            "snakemake_seconds": round(run["seconds"], 1),
            "waited_for_cluster_seconds": round(waited, 1),
            "snakemake_returncode": run["returncode"],
            "workers": args.workers,
            "killed": run["killed"],
            "worker_tasks": run["tasks"],
            "job_processes_left_after_the_run": len(leftovers),
            "details": figures,
            "cluster": "tests/slurm/cluster.py: 1 node, %d cores (shared, OverSubscribe=FORCE:4), 2 fake GPUs; sweep_worker without GPU" % (os.cpu_count() or 0),
            "config": "config/config.yaml (demo) + sweeps=[%s]" % definition,
            "date": time.strftime("%Y-%m-%d"),
        }
        ok = bool(met)
        print(json.dumps(result, indent=2, default=str))
    finally:
        if controller is not None:
            controller.stop()
        cluster.stop()
        if controller is not None:
            kill_leftovers(controller.run_id)
        if ok and not args.keep and args.workdir is None:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
        else:
            say(f"kept {workdir}")


if __name__ == "__main__":
    main()
