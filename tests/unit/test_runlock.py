"""One run per results folder: exactly one of racing runs gets the lock, a dead run's lock
is taken over only when that is certain, and a run releases only its own lock."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest

from hpcml.core import runlock
from hpcml.core.runlock import LOCK_NAME, Holder, ResultsInUse


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr(runlock, "_PAUSE_S", 0.0)


def other_run(**changes) -> Holder:
    """A holder as another live run on this host would write it (this test's pid is alive)."""
    return dataclasses.replace(Holder.current(), cwd="/home/someone/clone-b", **changes)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_file_names_the_run_and_is_released(tmp_path):
    me = runlock.acquire(tmp_path / "results")
    held = json.loads((tmp_path / "results" / LOCK_NAME).read_text())
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname() and held["cwd"] == os.getcwd()
    assert runlock.release(tmp_path / "results", me)
    assert not (tmp_path / "results" / LOCK_NAME).exists()
    assert not runlock.release(tmp_path / "results", me)


def test_second_run_is_refused_naming_folder_holder_and_ways_out(tmp_path):
    other = runlock.acquire(tmp_path, other_run())
    with pytest.raises(ResultsInUse) as refused:
        runlock.acquire(tmp_path)
    message = str(refused.value)
    for part in (str(tmp_path.resolve()), f"host {other.host}", f"pid {other.pid}", "/home/someone/clone-b",
                 other.started, f"remove {tmp_path.resolve() / LOCK_NAME}", "Wait"):
        assert part in message
    assert runlock._parse((tmp_path / LOCK_NAME).read_text()) == other


def test_release_leaves_another_runs_lock(tmp_path):
    runlock.acquire(tmp_path, other_run())
    assert not runlock.release(tmp_path, Holder.current())
    assert (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_dead_run_on_this_host_is_taken_over(tmp_path):
    runlock.acquire(tmp_path, other_run(pid=dead_pid()))
    me = runlock.acquire(tmp_path)
    assert runlock._parse((tmp_path / LOCK_NAME).read_text()) == me
    assert not (tmp_path / (LOCK_NAME + ".break")).exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times come from /proc")
def test_lock_whose_pid_was_reused_is_taken_over(tmp_path):
    me = Holder.current()
    assert me.process_start is not None
    runlock.acquire(tmp_path, other_run(process_start=me.process_start - 1))
    assert runlock.acquire(tmp_path, me) == me


def test_lock_from_another_host_is_never_broken(tmp_path):
    runlock.acquire(tmp_path, other_run(host="login2.example.edu", pid=dead_pid()))
    with pytest.raises(ResultsInUse, match=r"on login2\.example\.edu: ps -p"):
        runlock.acquire(tmp_path)


def test_unreadable_lock_is_refused_not_broken(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{not json")
    with pytest.raises(ResultsInUse, match="cannot be read"):
        runlock.acquire(tmp_path)
    assert (tmp_path / LOCK_NAME).read_text() == "{not json"


def _race(folder: str, start, done, wins) -> None:
    start.wait()
    try:
        runlock.acquire(folder)
        wins.put(os.getpid())
    except ResultsInUse:
        pass
    done.wait()  # the winner stays alive until every racer has tried, as a real run would


@pytest.mark.parametrize("stale_lock", [False, True], ids=["free", "stale"])
def test_exactly_one_of_racing_runs_wins(tmp_path, monkeypatch, stale_lock):
    if stale_lock:
        runlock.acquire(tmp_path, other_run(pid=dead_pid()))
        # A slow read (busy NFS) lets one racer act on a stale lock another has just replaced.
        read = runlock._read
        monkeypatch.setattr(runlock, "_read", lambda path: (read(path), time.sleep(0.02))[0])
    racers = 8
    context = multiprocessing.get_context("fork")
    start, done, wins = context.Barrier(racers), context.Barrier(racers), context.Queue()
    processes = [context.Process(target=_race, args=(str(tmp_path), start, done, wins)) for _ in range(racers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    winners = []
    while not wins.empty():
        winners.append(wins.get())
    assert len(winners) == 1
    assert runlock._parse((tmp_path / LOCK_NAME).read_text()).pid == winners[0]


def test_run_lock_is_released_at_exit_when_the_run_ends_without_a_handler(tmp_path):
    """An exception escaping Snakemake's scheduler skips onerror; the exit handler releases."""
    code = f"from hpcml.core.runlock import RunLock\nRunLock({str(tmp_path)!r}).take()\nraise SystemExit(3)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert not (tmp_path / LOCK_NAME).exists()


def test_run_lock_release_is_idempotent(tmp_path):
    lock = runlock.RunLock(tmp_path)
    lock.take()
    assert (tmp_path / LOCK_NAME).exists()
    lock.release()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()
