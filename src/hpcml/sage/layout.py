"""Where SAGE captures lie and what they are called, importable without numpy or pandas.

The Snakefile counts captures to plan preprocessing shards and checks the config before
planning, and every SLURM job re-parses it, so this module needs only the standard
library (and the light :mod:`hpcml.core.config`). The synthetic generator's schedule
and node table live here too: the config checks count its (node, day) groups without
generating anything.
"""
from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpcml.core.config import min_groups

RGB, THERMAL = "rgb", "thermal"
NODES_FILE = "nodes.csv"
GROUPS = ("ts", "position")
# The Mobotix camera's dual image (optical left half, thermal rendering right half) and
# its thermal sensor; the synthetic JPGs are these sizes times sage.synthetic.scale.
FULL_WIDTH, FULL_HEIGHT = 6144, 2048
THERMAL_WIDTH, THERMAL_HEIGHT = 336, 252
# The scanner's positions 1-8 look at the sky; the generator draws the others with a horizon.
SYNTHETIC_SKY_POSITIONS = frozenset(range(1, 9))
# Synthetic schedule: a capture every 2 h 53 min 20 s from 2024-06-01 00:00 UTC, so the
# time of day drifts from one capture to the next and every node sees dawn, noon, dusk
# and night; nodes start a little apart, and the scanner takes seconds per position.
SYNTHETIC_START_NS = int(datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc).timestamp()) * 10**9
SYNTHETIC_STEP_NS = 10_400 * 10**9
SYNTHETIC_NODE_OFFSET_NS = 137 * 10**9
SYNTHETIC_POSITION_OFFSET_NS = 7 * 10**9
_DAY_NS = 86_400 * 10**9


def rgb_name(timestamp_ns: int, position: int) -> str:
    """The camera's name for an optical capture (what the default rgb pattern matches)."""
    return f"{timestamp_ns}_6144x2048_position{position}.jpg"


def thermal_name(timestamp_ns: int, position: int) -> str:
    """The camera's name for a thermal capture (what the default thermal pattern matches)."""
    return f"{timestamp_ns}_right_{THERMAL_WIDTH}x{THERMAL_HEIGHT}_14bit.thermal.celsius_position{position}.csv"


def compile_patterns(patterns: dict[str, Any]) -> dict[str, re.Pattern[str]]:
    """The rgb and thermal patterns compiled; a pattern that cannot work raises ValueError naming its key."""
    problems = pattern_problems(patterns)
    if problems:
        raise ValueError("; ".join(problems))
    return {kind: re.compile(patterns[kind]) for kind in (RGB, THERMAL)}


def pattern_problems(patterns: dict[str, Any]) -> list[str]:
    """Why ``sage.patterns.rgb`` or ``.thermal`` cannot pick a timestamp and position out of a name."""
    problems = []
    for kind in (RGB, THERMAL):
        try:
            groups = re.compile(patterns[kind]).groupindex
        except re.error as error:
            problems.append(f"sage.patterns.{kind} = {patterns[kind]!r} is not a regular expression: {error}")
            continue
        missing = [g for g in GROUPS if g not in groups]
        if missing:
            problems.append(f"sage.patterns.{kind} = {patterns[kind]!r} lacks the named group(s) {', '.join(missing)}: "
                            "write (?P<ts>\\d+) for the nanosecond timestamp and (?P<position>\\d+) for the scan position")
    return problems


def parse_name(pattern: re.Pattern[str], name: str) -> tuple[int, int] | None:
    """(timestamp_ns, position) of a file name the whole pattern matches, else None."""
    found = pattern.fullmatch(name)
    if found is None:
        return None
    try:
        return int(found["ts"]), int(found["position"])
    except ValueError:
        return None


def node_entries(input_dir: str | Path, kind: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(node, entry) for every entry of each ``<input_dir>/<kind>/<node>/`` folder, hidden ones included."""
    root = Path(input_dir) / kind
    if not root.is_dir():
        return
    with os.scandir(root) as nodes:
        node_dirs = sorted((entry for entry in nodes if entry.is_dir()), key=lambda entry: entry.name)
    for node in node_dirs:
        with os.scandir(node.path) as entries:
            yield from ((node.name, entry) for entry in entries)


def count_captures(sage: dict[str, Any]) -> int:
    """At most how many pairs there will be, known before any job runs (the Snakefile plans
    preprocessing shards from it; shards past the real number of pairs come out empty).

    Synthetic: every node, time and position. Real: the optical files under
    ``input_dir/rgb/*/`` that the rgb pattern matches, together with those the metadata
    table will download when ``download.enabled`` (the table is read with pandas only then).
    """
    if sage["input_dir"] is None:
        s = sage["synthetic"]
        return s["n_nodes"] * s["n_times"] * len(s["positions"])
    pattern = compile_patterns(sage["patterns"])[RGB]
    downloading = sage["download"]["enabled"] and sage["metadata"]
    if not downloading and not Path(sage["input_dir"]).is_dir():
        raise FileNotFoundError(f"SAGE input folder not found: {sage['input_dir']} (config key sage.input_dir); "
                                "point it at the folder holding rgb/<node>/ and thermal/<node>/, or set it to null for synthetic data")
    names = {(node, entry.name) for node, entry in node_entries(sage["input_dir"], RGB)}
    if downloading:
        from hpcml.sage.download import plan_jobs

        for job in plan_jobs(Path(sage["metadata"])):
            kind, node, name = job.dest.split("/")
            if kind == RGB:
                names.add((node, name))
    return sum(parse_name(pattern, name) is not None for _, name in names)


def synthetic_nodes(n_nodes: int) -> list[tuple[str, float, float]]:
    """(vsn, latitude, longitude) of the generator's nodes: spread over the contiguous
    United States, where most SAGE nodes stand, so day and night fall at different UTC hours."""
    return [(f"W{k + 1:03d}", round(30.0 + (k * 7.3) % 18.0, 4), round(-122.0 + (k * 13.7) % 47.0, 4)) for k in range(n_nodes)]


def synthetic_timestamp(node: int, time: int, position: int) -> int:
    """Nanoseconds since 1970 of a synthetic capture (node and time count from 0; position as named).

    The last nine digits vary too, as a real clock's do, so names are not all round numbers.
    """
    ns = SYNTHETIC_START_NS + time * SYNTHETIC_STEP_NS + node * SYNTHETIC_NODE_OFFSET_NS + (position - 1) * SYNTHETIC_POSITION_OFFSET_NS
    return ns + (node * 7919 + time * 104_729 + position * 1_299_709) * 2_654_435_761 % 10**9


def synthetic_day_groups(synthetic: dict[str, Any]) -> int:
    """(node, local solar day) groups of the synthetic set, as the folds count them.

    Captures come less than a day apart, so every day between a node's first and last
    capture holds one; the day is UTC shifted by longitude / 15 hours, as in the folds.
    """
    positions = synthetic["positions"]
    total = 0
    for k, (_, _, longitude) in enumerate(synthetic_nodes(synthetic["n_nodes"])):
        shift = int(longitude / 360.0 * _DAY_NS)
        first = synthetic_timestamp(k, 0, min(positions)) + shift
        last = synthetic_timestamp(k, synthetic["n_times"] - 1, max(positions)) + shift
        total += last // _DAY_NS - first // _DAY_NS + 1
    return total


def problems(config: dict[str, Any]) -> list[str]:
    """SAGE settings that contradict each other (hpcml.checks runs this before planning).

    The folds' own keys (test_fold, val_fold below n_folds and apart) are checked for
    every pipeline by :func:`hpcml.core.config.check_consistency`.
    """
    sage = config["sage"]
    if not sage["enabled"]:
        return []
    problems = pattern_problems(sage["patterns"])
    left, top, right, bottom = sage["preprocess"]["box"]
    if left >= right or top >= bottom:
        problems.append(f"sage.preprocess.box = {sage['preprocess']['box']} is empty: it is [left, top, right, bottom] as fractions "
                        "of the optical half, so left must be below right and top below bottom (default [0.1, 0.1, 0.9, 0.9])")
    problems += _source_problems(sage)
    if sage["input_dir"] is None and not problems:
        problems += _synthetic_problems(sage)
    return problems


def _source_problems(sage: dict[str, Any]) -> list[str]:
    """Keys a download needs (whether the files exist is asked at planning: :func:`missing_inputs`)."""
    if not sage["download"]["enabled"]:
        return []
    return [f"sage.download.enabled needs sage.{key} ({what}); set it, or set sage.download.enabled: false"
            for key, what in (("metadata", "the table of files to fetch"), ("input_dir", "the folder to download into")) if not sage[key]]


def missing_inputs(sage: dict[str, Any]) -> list[str]:
    """Files and folders the config names that are not there (the Snakefile stops planning on them;
    ``hpcml config`` does not ask, so a cluster config can be checked anywhere)."""
    missing = []
    if sage["download"]["enabled"]:
        if sage["metadata"] and not Path(sage["metadata"]).is_file():
            missing.append(f"sage.metadata = {sage['metadata']} is not a file: give the table sage_data_client.query returned (Parquet or CSV)")
    elif sage["input_dir"] is not None and not Path(sage["input_dir"]).is_dir():
        missing.append(f"sage.input_dir = {sage['input_dir']} does not exist: point it at the folder holding rgb/<node>/ and "
                       "thermal/<node>/, set sage.download.enabled with a metadata table to fill it, or set it to null for synthetic data")
    if sage["nodes"] is not None and not Path(sage["nodes"]).is_file():
        missing.append(f"sage.nodes = {sage['nodes']} is not a file: give a CSV or Parquet table with columns vsn, latitude, longitude, "
                       "or null to use the input folder's nodes.csv")
    return missing


def _synthetic_problems(sage: dict[str, Any]) -> list[str]:
    """Whether the generator's names reach the pairing and its captures fill the folds."""
    synthetic, patterns = sage["synthetic"], compile_patterns(sage["patterns"])
    problems = []
    examples = {RGB: rgb_name(SYNTHETIC_START_NS, 1), THERMAL: thermal_name(SYNTHETIC_START_NS, 1)}
    for kind, example in examples.items():
        if parse_name(patterns[kind], example) is None:
            problems.append(f"sage.patterns.{kind} does not match the synthetic names (such as {example}): with sage.input_dir null, "
                            "keep the default pattern")
    captures = synthetic["n_nodes"] * synthetic["n_times"] * len(synthetic["positions"])
    spoilt = 5 * synthetic["n_corrupt"]
    if spoilt >= captures:
        problems.append(f"sage.synthetic.n_corrupt = {synthetic['n_corrupt']} spoils {spoilt} of the {captures} synthetic captures "
                        "(five kinds of bad file each), leaving none to pair: lower it, or raise n_nodes, n_times or positions")
    k = sage["splits"]["n_folds"]
    groups = synthetic_day_groups(synthetic)
    if groups < min_groups(k):
        problems.append(f"the synthetic captures span {groups} (node, day) groups, too few for sage.splits.n_folds = {k}: at least "
                        f"{min_groups(k)} are needed; raise sage.synthetic.n_times (a capture every {SYNTHETIC_STEP_NS // 10**9 / 3600:.2f} h) "
                        "or n_nodes, or lower n_folds")
    return problems
