"""Optical and thermal captures matched by node, timestamp and position, with a consistency report.

The group paired files by hand. Here every file under ``rgb/<node>/`` and
``thermal/<node>/`` is named by the configured patterns, vetted without decoding
(a JPG must start with the SOI marker and end with EOI, so a truncated download is
caught; a thermal CSV must have the camera's header, 252 rows of 336 values), and
matched on (node, timestamp, position). Anything that cannot be used -- a damaged file,
a capture missing its partner, a second file for the same capture, a name no pattern
knows -- is left out and listed with its reason in ``consistency.json``; the run goes on
with the good pairs. Vetting is I/O-bound, so it runs on a thread pool.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.atomic import write_json, write_parquet, write_text
from hpcml.sage.layout import NODES_FILE, RGB, THERMAL, compile_patterns, node_entries, parse_name
from hpcml.sage.thermal import ThermalFormatError, check_thermal

log = logging.getLogger(__name__)
KEY = ["node", "timestamp_ns", "position"]
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
# A JPG may carry a few padding bytes after its end-of-image marker.
JPEG_TAIL = 64


def pair(input_dir: str | Path, out: str | Path, sage: dict[str, Any]) -> dict[str, Any]:
    """Write ``pairs.parquet``, ``pairs/<node>/*.txt`` and ``consistency.json``; return the report."""
    input_dir, out = Path(input_dir).resolve(), Path(out)
    if not (input_dir / RGB).is_dir() or not (input_dir / THERMAL).is_dir():
        raise FileNotFoundError(f"{input_dir}: expected the folders rgb/<node>/ and thermal/<node>/ (config key sage.input_dir)")
    patterns = compile_patterns(sage["patterns"])
    report: dict[str, Any] = {"input_dir": str(input_dir), "unrecognised": [], "damaged": [], "duplicates": [], "unmatched": []}
    files = {kind: _listing(input_dir, kind, patterns[kind], report) for kind in (RGB, THERMAL)}
    damaged = {}
    for kind, table in files.items():
        vetted = _vet(table, kind, report)
        damaged[kind] = set(table.drop(vetted.index)[KEY].itertuples(index=False, name=None))
        files[kind] = _drop_duplicates(vetted, kind, report)
    pairs = files[RGB].merge(files[THERMAL], on=KEY, how="outer", suffixes=("_rgb", "_thermal"), indicator=True)
    for side, partner in (("left_only", THERMAL), ("right_only", RGB)):
        lonely = pairs[pairs["_merge"] == side]
        column = "path_rgb" if partner == THERMAL else "path_thermal"
        for row in lonely.itertuples(index=False):
            why = "is damaged (listed under damaged)" if (row.node, row.timestamp_ns, row.position) in damaged[partner] else "is missing"
            report["unmatched"].append({"file": _relative(getattr(row, column), input_dir),
                                        "error": f"its {partner} capture (same node, timestamp and position) {why}"})
    pairs = pairs[pairs["_merge"] == "both"].rename(columns={"path_rgb": "rgb_path", "path_thermal": "thermal_path"})
    pairs = pairs.drop(columns="_merge").sort_values(KEY, ignore_index=True)
    pairs = _with_positions(pairs, input_dir, sage["nodes"], report)

    write_parquet(out / "pairs.parquet", pairs)
    for node, group in pairs.groupby("node", sort=True):
        for row in group.itertuples(index=False):
            write_text(out / "pairs" / node / f"{row.timestamp_ns}_position{row.position}.txt", f"{row.rgb_path}\n{row.thermal_path}\n")
    report["counts"] = {
        "rgb_files": int(report.pop("_rgb_files")), "thermal_files": int(report.pop("_thermal_files")), "pairs": len(pairs),
        **{k: len(report[k]) for k in ("unrecognised", "damaged", "duplicates", "unmatched")},
    }
    write_json(out / "consistency.json", report)
    left_out = sum(v for k, v in report["counts"].items() if k not in ("rgb_files", "thermal_files", "pairs"))
    log.info("%d pairs from %d optical and %d thermal files; %d files left out (listed in %s)",
             len(pairs), report["counts"]["rgb_files"], report["counts"]["thermal_files"], left_out, out / "consistency.json")
    if pairs.empty:
        raise ValueError(f"{input_dir}: no optical file has a thermal partner; see {out / 'consistency.json'} "
                         "(names must match sage.patterns.rgb and sage.patterns.thermal)")
    return report


def _listing(input_dir: Path, kind: str, pattern: Any, report: dict[str, Any]) -> pd.DataFrame:
    """The files of one kind the pattern names; others listed as unrecognised (hidden files, e.g. partial downloads, skipped)."""
    rows = []
    seen = 0
    for node, entry in node_entries(input_dir, kind):
        if entry.name.startswith("."):
            continue
        seen += 1
        parsed = parse_name(pattern, entry.name) if entry.is_file() else None
        if parsed is None:
            report["unrecognised"].append({"file": f"{kind}/{node}/{entry.name}", "error": f"not a {kind} capture name (sage.patterns.{kind})"})
            continue
        rows.append((node, parsed[0], parsed[1], entry.path))
    report[f"_{kind}_files"] = seen
    return pd.DataFrame(rows, columns=[*KEY, "path"]).astype({"timestamp_ns": "int64", "position": "int16"})


def _vet(table: pd.DataFrame, kind: str, report: dict[str, Any]) -> pd.DataFrame:
    check = _check_jpeg if kind == RGB else _check_csv
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        errors = list(pool.map(check, table["path"]))
    bad = np.array([e is not None for e in errors], dtype=bool)
    root = Path(report["input_dir"])
    report["damaged"] += [{"file": _relative(p, root), **e} for p, e in zip(table["path"][bad], (e for e in errors if e is not None))]
    return table[~bad]


def _check_jpeg(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - JPEG_TAIL))
            tail = handle.read()
    except OSError as error:
        return {"error": f"unreadable: {error.strerror}"}
    if start != JPEG_START:
        return {"error": "not a JPEG (no start-of-image marker)"}
    if JPEG_END not in tail:
        return {"error": f"truncated JPEG: no end-of-image marker ({size} bytes); download it again"}
    return None


def _check_csv(path: str) -> dict[str, Any] | None:
    try:
        check_thermal(path)
    except ThermalFormatError as error:
        return {"error": error.reason, **({"line": error.line} if error.line is not None else {})}
    except OSError as error:
        return {"error": f"unreadable: {error.strerror}"}
    return None


def _drop_duplicates(table: pd.DataFrame, kind: str, report: dict[str, Any]) -> pd.DataFrame:
    """One file per capture: the first by name is kept, the others listed."""
    table = table.sort_values([*KEY, "path"], ignore_index=True)
    repeated = table.duplicated(KEY, keep="first")
    root = Path(report["input_dir"])
    kept = table.drop_duplicates(KEY, keep="first").set_index(KEY)["path"]
    for row in table[repeated].itertuples(index=False):
        first = kept.loc[(row.node, row.timestamp_ns, row.position)]
        report["duplicates"].append({"file": _relative(row.path, root), "error": f"a second {kind} file for the capture of {_relative(first, root)}"})
    return table[~repeated]


def _with_positions(pairs: pd.DataFrame, input_dir: Path, nodes: str | None, report: dict[str, Any]) -> pd.DataFrame:
    """Latitude and longitude of each pair's node (the day/night flag needs them); unknown nodes listed."""
    path = Path(nodes) if nodes else input_dir / NODES_FILE
    if not path.is_file():
        if nodes:
            raise FileNotFoundError(f"node table not found: {path} (config key sage.nodes)")
        table = pd.DataFrame(columns=["vsn", "latitude", "longitude"])
    else:
        table = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
        missing = {"vsn", "latitude", "longitude"} - set(table.columns)
        if missing:
            raise ValueError(f"{path}: node table lacks columns {sorted(missing)} (needs vsn, latitude, longitude)")
    table = table.drop_duplicates("vsn").rename(columns={"vsn": "node"})[["node", "latitude", "longitude"]]
    pairs = pairs.merge(table.astype({"latitude": "float64", "longitude": "float64"}), on="node", how="left")
    unknown = sorted(pairs.loc[pairs["latitude"].isna(), "node"].unique())
    report["nodes_without_position"] = [{"file": f"{RGB}/{n}", "error": f"node {n} is not in the node table {path}: no day/night flag for its captures"} for n in unknown]
    return pairs


def _relative(path: str, root: Path) -> str:
    return os.path.relpath(path, root)
