"""Streaming ``.npy`` concatenation: many parts into one file, memory bounded by one part.

Combining shards must not hold the whole array in memory, so each part is memory-mapped
and written in turn to the end of the output (header first, then the parts' bytes),
through a temporary file renamed into place when complete. Writing to a memory-mapped
output instead would keep every page written so far mapped: the process's resident
memory grew to the whole output (1.1 GB peak for a 1 GB array from 100 parts). Every
part's dtype and trailing shape are checked first, so a part from another run stops the
combine, naming the file, before anything is written.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hpcml.core.atomic import atomic_path


class ConcatError(ValueError):
    """Parts that cannot be stacked into one array."""


def concat_npy(parts: Sequence[str | os.PathLike], out: str | os.PathLike, rows: int | None = None) -> tuple[int, ...]:
    """Stack the parts along their first axis into ``out``; return its shape.

    ``rows`` is the total the caller expects (one per id, say); another total is an error.
    """
    if not parts:
        raise ConcatError(f"{out}: no parts to concatenate")
    layouts = [_layout(Path(part)) for part in parts]
    first_shape, dtype = layouts[0]
    for part, (shape, part_dtype) in zip(parts, layouts):
        if part_dtype != dtype or shape[1:] != first_shape[1:]:
            raise ConcatError(
                f"{part}: dtype {part_dtype}, shape {shape} does not match {parts[0]}: dtype {dtype}, shape {first_shape} "
                "(parts may differ only in their first axis)"
            )
    counts = [shape[0] for shape, _ in layouts]
    if rows is not None and sum(counts) != rows:
        raise ConcatError(f"{out}: the {len(parts)} parts hold {sum(counts)} rows, expected {rows}")
    shape = (sum(counts), *first_shape[1:])
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with atomic_path(out, suffix=".npy") as tmp, open(tmp, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for part in parts:
            handle.write(memoryview(np.ascontiguousarray(np.load(part, mmap_mode="r"))))
    return shape


def _layout(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header; the map is released on return, so no descriptor stays open per part."""
    array = np.load(path, mmap_mode="r")
    if array.ndim == 0:
        raise ConcatError(f"{path}: a 0-d array has no first axis to concatenate along")
    return array.shape, array.dtype
