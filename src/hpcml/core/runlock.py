"""One Snakemake run per results folder.

Snakemake locks its working directory, not the folders a run writes: two clones (or a
login-node run and a controller job) whose configs name the same ``results:`` folder
would both go ahead, overwrite each other's outputs and leave files that neither run's
metadata describes. The workflow takes this lock when a run starts (``onstart``, main
process only) and gives it back when the run ends; a second run is refused with a
message that names the holder and what to do.

The lock is a JSON file inside the folder, created with ``O_CREAT | O_EXCL`` so that
exactly one of two racing runs gets it (atomic on local disks and on NFS v3 and later).
A lock whose run is gone is taken over only when that is certain: same host, and the pid
no longer exists or now belongs to a process started later. A lock from another host is
never broken here, since its pid cannot be checked from this one; the message says how
to check it by hand. Standard library only: every job re-parses the Snakefile.
"""
from __future__ import annotations

import atexit
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

LOCK_NAME = ".hpcml-run.lock"
_ATTEMPTS = 5
_PAUSE_S = 0.1


class ResultsInUse(RuntimeError):
    """Another run holds the results folder; the message says who and what to do."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: enough for a person to find the run, and a token to release only our own."""

    host: str
    pid: int
    cwd: str
    started: str
    token: str
    # Start time of the process in clock ticks since boot (Linux), so a pid reused by an
    # unrelated process after the run died does not keep the lock alive; None elsewhere.
    process_start: int | None = None

    @classmethod
    def current(cls) -> Holder:
        """This process as a holder; called in Snakemake's main process, whose working directory is the run's."""
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            pid=pid,
            cwd=os.getcwd(),
            started=datetime.now().astimezone().isoformat(timespec="seconds"),
            token=uuid.uuid4().hex,
            process_start=_process_start(pid),
        )


def _process_start(pid: int) -> int | None:
    """The process's start time from /proc (field 22 of stat), or None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it do not.
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_stale(holder: Holder) -> bool:
    """True only when the holder's run is certainly gone: same host, and its pid is dead or reused."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # the pid exists and belongs to another user: alive as far as we can tell
    if holder.process_start is None:
        return False
    now = _process_start(holder.pid)
    return now is not None and now != holder.process_start


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _parse(text: str) -> Holder | None:
    """The holder in a lock file's text; None while the file is being written or if it is damaged."""
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        return None


def _remove_stale(path: Path, seen: str) -> None:
    """Remove the lock a dead run left, unless another run replaced it meanwhile.

    Two runs may find the same stale lock; without the claim file the slower one could
    delete the lock the faster one has just created, and both would go ahead.
    """
    claim = path.with_name(path.name + ".break")
    try:
        os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        time.sleep(_PAUSE_S)  # another run is removing it; look again
        return
    try:
        if _read(path) == seen:
            path.unlink(missing_ok=True)
    finally:
        claim.unlink(missing_ok=True)


def refusal(folder: Path, holder: Holder | None) -> str:
    """What a refused run prints: the folder, the other run, and the ways out."""
    path = folder / LOCK_NAME
    if holder is None:
        who = f"its lock file {path} cannot be read"
        check = "no other run is using it"
    else:
        who = (
            f"host {holder.host}, pid {holder.pid}, working directory {holder.cwd}, started {holder.started}"
        )
        check = f"that run is dead (on {holder.host}: ps -p {holder.pid})"
    return (
        f"Results folder {folder.resolve()} is in use by another Snakemake run ({who}). "
        "Two runs writing one results folder overwrite each other's outputs. "
        f"Wait for that run to finish; or, if {check}, remove {path.resolve()} and start again; "
        "or give this run its own folder (config key results, e.g. --config results=results_b)."
    )


def acquire(results: str | os.PathLike, me: Holder | None = None) -> Holder:
    """Create the lock in ``results`` for ``me`` (default: this process) or raise ResultsInUse."""
    me = me or Holder.current()
    folder = Path(results)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    holder = None
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            seen = _read(path)
            if seen is None:
                continue  # released since we tried
            holder = _parse(seen)
            if holder is None:
                time.sleep(_PAUSE_S)  # just created, not yet written
            elif is_stale(holder):
                _remove_stale(path, seen)
            else:
                raise ResultsInUse(refusal(folder, holder)) from None
            continue
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(me), out)
            out.flush()
            os.fsync(out.fileno())
        return me
    raise ResultsInUse(refusal(folder, holder))


def release(results: str | os.PathLike, me: Holder) -> bool:
    """Remove the lock if it is ``me``'s (never another run's); True if it was removed."""
    path = Path(results) / LOCK_NAME
    text = _read(path)
    holder = _parse(text) if text is not None else None
    if holder is None or holder.token != me.token:
        return False
    path.unlink(missing_ok=True)
    return True


class RunLock:
    """The lock of one Snakemake run: taken in ``onstart``, given back in ``onsuccess``/``onerror``.

    ``take`` also registers the release at interpreter exit: an exception escaping
    Snakemake's scheduler skips ``onerror``, and the folder must not stay locked by a run
    that has ended. Releasing twice is harmless.
    """

    def __init__(self, results: str | os.PathLike) -> None:
        self.results = Path(results)
        self.holder: Holder | None = None

    def take(self) -> None:
        self.holder = acquire(self.results)
        atexit.register(self.release)

    def release(self) -> None:
        if self.holder is not None:
            release(self.results, self.holder)
            self.holder = None
