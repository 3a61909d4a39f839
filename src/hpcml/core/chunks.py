"""Chunked work that survives a kill: each finished chunk is a folder renamed into place.

A job killed at the wall-time limit restarts from its last complete chunk instead of from
zero. Chunks are reused only if they were made with the same settings: a fingerprint of
everything that shapes their content is kept beside them, and a rerun after a change
(seed, priors, chunk size, ...) starts afresh instead of mixing old and new results.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hpcml.core.atomic import write_json

log = logging.getLogger(__name__)
SETTINGS_FILE = "settings.json"
_ABSENT = object()


def run_chunks(
    work_dir: str | os.PathLike,
    ranges: Sequence[tuple[int, int]],
    write_chunk: Callable[[int, int, Path], None],
    fingerprint: Mapping[str, Any],
    label: str = "chunks",
    unit: str = "items",
) -> list[Path]:
    """Run ``write_chunk(start, stop, folder)`` for each range not yet complete; return every chunk folder in order.

    ``fingerprint`` is JSON-able and holds everything that changes a chunk's content;
    ``label`` and ``unit`` only word the log lines.
    """
    work_dir = Path(work_dir)
    _keep_only_matching_chunks(work_dir, fingerprint, label)
    folders = [work_dir / f"chunk_{start:010d}-{stop:010d}" for start, stop in ranges]
    done = sum(folder.is_dir() for folder in folders)
    if done:
        log.info("%s: resuming, %d of %d chunks already complete", label, done, len(folders))
    for k, ((start, stop), final) in enumerate(zip(ranges, folders)):
        if final.is_dir():
            continue
        tic = time.perf_counter()
        tmp = work_dir / f".tmp-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            write_chunk(start, stop, tmp)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rate = (stop - start) / max(time.perf_counter() - tic, 1e-9)
        log.info("%s: chunk %d/%d (%s %d-%d) done, %.0f %s/s", label, k + 1, len(folders), unit, start, stop - 1, rate, unit)
    return folders


def _keep_only_matching_chunks(work_dir: Path, fingerprint: Mapping[str, Any], label: str) -> None:
    """Discard chunks made with other settings (or of unknown settings), then record ours.

    The record is written before any chunk, so a chunk never exists without one. The
    fingerprint is compared as JSON reads it back, so a tuple equals the stored list.
    """
    fingerprint = json.loads(json.dumps(fingerprint))
    record = work_dir / SETTINGS_FILE
    try:
        stored = json.loads(record.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        stored = None
    if stored == fingerprint:
        return
    stale = sorted(work_dir.glob("chunk_*")) + sorted(work_dir.glob(".tmp-chunk_*"))
    if stale:
        why = "they have no settings record" if stored is None else "the settings changed: " + ", ".join(_changed_keys(stored, fingerprint))
        log.warning("%s: discarding %d chunk folder(s) in %s because %s; starting afresh", label, len(stale), work_dir, why)
        for path in stale:
            shutil.rmtree(path)
    write_json(record, fingerprint)


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            changed
            for key in sorted(old.keys() | new.keys())
            for changed in _changed_keys(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{prefix}{key}.")
        ]
    return [prefix.rstrip(".")] if old != new else []
