"""Bayesian sweeps without a server: workers share one Optuna study in a journal file.

W&B sweeps need their server (compute nodes often have no internet); an Optuna journal
on the shared file system needs nothing. Each worker asks the study for parameters
under a file lock (so the trial count never overshoots), runs the training step as a
subprocess with ``--set`` overrides into the trial's own folder, and reports the
objective from its summary.json. A worker writes a heartbeat file; a trial left
RUNNING by a worker whose heartbeat stopped (killed at the wall-time limit, node lost)
is marked failed and its parameters are queued again, so it is retried (resuming from
its checkpoints: the retry works in the abandoned trial's folder); so is a trial whose
training was killed by a signal while its worker lives on. A trial whose
training diverged counts as pruned: its parameters are an answer, not a fault to retry.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import TrialState

from hpcml.core.pruning import PRUNED_FILE, trial_environment
from hpcml.core.training import DIVERGED
from hpcml.sweeps.definition import Sweep, distribution

log = logging.getLogger(__name__)
HEARTBEAT_S = 10.0
STALE_S = 6 * HEARTBEAT_S
MAX_FAILURES_IN_A_ROW = 3
KILLED_EXIT_CODES = (128 + 9, 128 + 15)  # SIGKILL, SIGTERM


def distributions(sweep: Sweep) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for key, spec in sweep.parameters.items():
        if "values" in spec:
            out[key] = CategoricalDistribution(spec["values"])
        elif distribution(spec) == "int_uniform":
            out[key] = IntDistribution(int(spec["min"]), int(spec["max"]))
        else:
            out[key] = FloatDistribution(float(spec["min"]), float(spec["max"]), log=distribution(spec) == "log_uniform_values")
    return out


def open_study(sweep: Sweep, folder: Path, sampler_seed: int | None = None) -> optuna.Study:
    folder.mkdir(parents=True, exist_ok=True)
    journal = str(folder / "study.journal")
    storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=max(2, min(10, (sweep.run_cap or 10) // 3)))
    pruner = optuna.pruners.HyperbandPruner(**sweep.pruner) if sweep.pruner else optuna.pruners.NopPruner()
    return optuna.create_study(storage=storage, study_name=sweep.name, direction=sweep.goal, sampler=sampler, pruner=pruner, load_if_exists=True)


def trial_folder(folder: Path, trial: optuna.trial.BaseTrial) -> Path:
    """A trial's own folder; a retry of an abandoned trial reuses the abandoned one's (and its checkpoints)."""
    return folder / "trials" / f"trial_{trial.user_attrs.get('retry_of', trial.number):04d}"


def run_worker(sweep: Sweep, command: str, folder: str | Path, worker: int) -> dict[str, int]:
    """Run trials until the study holds ``run_cap`` finished ones (or others hold the rest)."""
    folder = Path(folder)
    study = open_study(sweep, folder, sampler_seed=sweep.seed + 1000 * worker)
    me = f"{socket.gethostname()}:{os.getpid()}:{worker}"
    # One heartbeat file per process: a worker restarted under the same number must not keep a dead one's trial alive.
    beat = folder / "workers" / f"worker_{worker}_{socket.gethostname()}_{os.getpid()}.alive"
    ran, failures = 0, 0
    with _heartbeat(beat):
        while True:
            with _lock(folder / "ask.lock"):
                _recover_abandoned(study, folder)
                trials = study.get_trials(deepcopy=False)
                done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
                running = sum(t.state == TrialState.RUNNING for t in trials)
                if done + running >= sweep.run_cap:
                    break
                trial = study.ask(distributions(sweep))
                trial.set_user_attr("worker", me)
                trial.set_user_attr("heartbeat", str(beat))
            params = trial.params
            out = trial_folder(folder, trial)
            trial.set_user_attr("folder", str(out.relative_to(folder)))
            env = trial_environment(folder / "study.journal", sweep.name, trial._trial_id, sweep.goal, sweep.pruner, out)
            value, killed = run_trial(sweep, command, params, out, env)
            if (out / PRUNED_FILE).exists():
                study.tell(trial, state=TrialState.PRUNED)
                ran, failures = ran + 1, 0
                log.info("sweep %s: trial %d %s pruned: %s", sweep.name, trial.number, params, (out / PRUNED_FILE).read_text())
                continue
            if value is None and killed:
                # Killed by a signal (scancel, a wall-time limit) while its worker lives on: retried, as an abandoned trial is.
                with _lock(folder / "ask.lock"):
                    study.tell(trial, state=TrialState.FAIL)
                    study.enqueue_trial(params, user_attrs={"retry_of": trial.user_attrs.get("retry_of", trial.number)})
                log.warning("sweep %s: trial %d %s was killed; its parameters are queued again", sweep.name, trial.number, params)
                continue
            if value is None:
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
                if failures >= MAX_FAILURES_IN_A_ROW:
                    raise RuntimeError(f"sweep {sweep.name}: {failures} trials in a row failed; see {out}/trial.log")
                continue
            study.tell(trial, value)
            ran, failures = ran + 1, 0
            log.info("sweep %s: trial %d %s -> %s %.6g", sweep.name, trial.number, params, sweep.metric, value)
    return {"ran": ran}


def run_trial(sweep: Sweep, command: str, params: dict[str, Any], out: Path, env: dict[str, str] | None = None) -> tuple[float | None, bool]:
    """Run the training step with the trial's ``--set`` overrides into ``out``: its metric (None if it
    failed), and whether a signal ended it (a kill, not a fault of its parameters)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / PRUNED_FILE).unlink(missing_ok=True)
    sets = " ".join(shlex.quote(f"--set={k}={json.dumps(v)}") for k, v in params.items())
    with open(out / "trial.log", "a") as handle:
        code = subprocess.run(
            f"{command} {sets} --out {shlex.quote(str(out))}", shell=True, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        ).returncode
    summary = out / "summary.json"
    if code != 0 and DIVERGED in (out / "trial.log").read_text(errors="replace")[-20000:]:
        # A diverging configuration is an answer, not a fault: recorded as pruned, never retried.
        (out / PRUNED_FILE).write_text(json.dumps({"reason": DIVERGED}))
        return None, False
    if code != 0 or not summary.exists():
        log.warning("sweep %s: trial %s failed (exit %d); log: %s", sweep.name, params, code, out / "trial.log")
        # A shell reports a child killed by signal N as 128 + N.
        return None, code < 0 or code in KILLED_EXIT_CODES
    value = json.loads(summary.read_text()).get(sweep.summary_field)
    return (float(value) if value is not None else None), False


def _recover_abandoned(study: optuna.Study, folder: Path) -> None:
    """Fail RUNNING trials whose worker stopped beating, and queue their parameters again."""
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = Path(trial.user_attrs.get("heartbeat", ""))
        if beat.name and beat.exists() and now - beat.stat().st_mtime < STALE_S:
            continue
        log.warning("trial %d of %s was abandoned by %s; retrying its parameters", trial.number, study.study_name, trial.user_attrs.get("worker"))
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.user_attrs.get("retry_of", trial.number)})


@contextmanager
def _heartbeat(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            path.touch()
            stop.wait(HEARTBEAT_S)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
