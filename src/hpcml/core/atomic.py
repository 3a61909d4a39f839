"""Atomic writers: a reader never sees a half-written file.

A job killed at the wall-time limit leaves either the complete old file, the complete
new one, or a stray ``.tmp-*`` next to it, never a truncated result that a later rule
would read as valid. Every writer goes through :func:`atomic_path`.

Outputs get the mode a plain ``open(path, "w")`` would give (0o666 less the umask), not
the 0600 of :func:`tempfile.mkstemp`, so results in a group's shared folder stay readable
by the group.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The mode is set after the caller has written, in case its writer replaced the file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}-", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_current_umask())
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _current_umask() -> int:
    """The process umask, read without changing it where the kernel allows.

    :func:`os.umask` can only set it; setting it for a moment would give a file that
    another thread creates in that moment the wrong mode, so that fallback runs once.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return _umask_set_and_restored()


@functools.cache
def _umask_set_and_restored() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_parquet(path: str | os.PathLike, table: pd.DataFrame | pa.Table) -> None:
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


@contextlib.contextmanager
def atomic_npy_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any = np.float32) -> Iterator[np.ndarray]:
    """A writable memory-mapped ``.npy`` that appears at ``path`` only once complete.

    Lets a combine step stream shards into one large array without holding it in memory.
    """
    with atomic_path(path, suffix=".npy") as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()
        del array


@contextlib.contextmanager
def atomic_parquet_writer(path: str | os.PathLike, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer for streaming row groups; the file appears only when closed."""
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema)
        try:
            yield writer
        finally:
            writer.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
