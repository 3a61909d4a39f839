"""Core pieces of sharded work: the resumable chunk runner, streaming .npy concatenation, id checks."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hpcml.core.chunks import SETTINGS_FILE, run_chunks
from hpcml.core.concat import ConcatError, concat_npy
from hpcml.core.ids import IdCheckError, check_ids
from hpcml.core.shards import chunk_ranges, size_for_wall_limit, slurm_minutes

RANGES = chunk_ranges(0, 50, 10)


class Writer:
    """Writes ``value * index`` per item; can be told to die at a chunk, as a killed job would."""

    def __init__(self, value: int, die_at: int | None = None) -> None:
        self.value, self.die_at, self.calls = value, die_at, []

    def __call__(self, start, stop, folder):
        if start == self.die_at:
            (folder / "half.npy").write_bytes(b"partial")
            raise KeyboardInterrupt
        self.calls.append(start)
        np.save(folder / "part.npy", self.value * np.arange(start, stop))


def run(work, writer, fingerprint):
    folders = run_chunks(work, RANGES, writer, fingerprint, label="test")
    return np.concatenate([np.load(f / "part.npy") for f in folders])


def test_resume_skips_complete_chunks(tmp_path, caplog):
    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        run(work, Writer(1, die_at=30), {"seed": 1})
    assert sorted(p.name for p in work.iterdir()) == ["chunk_0000000000-0000000010", "chunk_0000000010-0000000020", "chunk_0000000020-0000000030", SETTINGS_FILE]
    writer = Writer(1)
    with caplog.at_level(logging.INFO, logger="hpcml.core.chunks"):
        assert np.array_equal(run(work, writer, {"seed": 1}), np.arange(50))
    assert writer.calls == [30, 40]
    assert "resuming, 3 of 5 chunks already complete" in caplog.text
    assert "chunk 5/5 (items 40-49) done" in caplog.text and "items/s" in caplog.text


def test_changed_fingerprint_discards_old_chunks(tmp_path, caplog):
    work = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        run(work, Writer(1, die_at=30), {"seed": 1, "lensing": {"priors": {"b_low": 1.0}, "chunk_size": 10}})
    (work / "notes.txt").write_text("not a chunk: kept")
    writer = Writer(2)
    with caplog.at_level(logging.WARNING, logger="hpcml.core.chunks"):
        result = run(work, writer, {"seed": 2, "lensing": {"priors": {"b_low": 1.1}, "chunk_size": 10}})
    assert np.array_equal(result, 2 * np.arange(50)), "no chunk of the old settings may survive"
    assert writer.calls == [0, 10, 20, 30, 40]
    assert "discarding 3 chunk folder(s)" in caplog.text and "settings changed: lensing.priors.b_low, seed" in caplog.text
    assert json.loads((work / SETTINGS_FILE).read_text())["seed"] == 2
    assert (work / "notes.txt").exists()


def test_chunks_without_settings_record_are_discarded(tmp_path, caplog):
    work = tmp_path / "work"
    (work / "chunk_0000000000-0000000010").mkdir(parents=True)
    writer = Writer(1)
    with caplog.at_level(logging.WARNING, logger="hpcml.core.chunks"):
        assert np.array_equal(run(work, writer, {"seed": 1}), np.arange(50))
    assert writer.calls == [0, 10, 20, 30, 40] and "no settings record" in caplog.text


def test_concat_equals_numpy_concatenate(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(n, 3, 4)).astype(np.float32) for n in (5, 0, 7, 1)]
    parts = []
    for k, array in enumerate(arrays):
        parts.append(tmp_path / f"p{k}.npy")
        np.save(parts[-1], array)
    assert concat_npy(parts, tmp_path / "out.npy", rows=13) == (13, 3, 4)
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32 and np.array_equal(out, np.concatenate(arrays))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((2, 3, 5), np.float32), r"bad.npy: dtype float32, shape \(2, 3, 5\) does not match"),
        (np.zeros((2, 3, 4), np.float64), r"bad.npy: dtype float64, shape \(2, 3, 4\) does not match .*good.npy: dtype float32"),
        (np.float32(1), "bad.npy: a 0-d array"),
    ],
)
def test_concat_rejects_mismatched_parts(tmp_path, bad, message):
    np.save(tmp_path / "good.npy", np.zeros((2, 3, 4), np.float32))
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ConcatError, match=message):
        concat_npy([tmp_path / "good.npy", tmp_path / "bad.npy"], tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists()


def test_concat_checks_the_expected_total(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(ConcatError, match="the 2 parts hold 4 rows, expected 5"):
        concat_npy([tmp_path / "a.npy", tmp_path / "a.npy"], tmp_path / "out.npy", rows=5)
    with pytest.raises(ConcatError, match="no parts"):
        concat_npy([], tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists()


def test_id_check_names_counts_first_ids_and_what_to_rerun():
    check_ids(np.arange(10), np.arange(10), context="family both")
    seen = np.concatenate([np.arange(0, 20), np.arange(10, 20), [99]])
    with pytest.raises(IdCheckError) as error:
        check_ids(seen, np.arange(30), context="family both", label="lens ids")
    assert str(error.value) == (
        "family both: 10 lens ids repeated (first: [10, 11, 12, 13, 14]); "
        "10 lens ids missing (first: [20, 21, 22, 23, 24]); 1 lens ids unexpected (first: [99]). "
        "Re-run the affected shards."
    )
    with pytest.raises(IdCheckError, match=r"lens ids out of order \(position 0 holds 10, expected 0\); pass shard folders in shard order"):
        check_ids(np.r_[10:20, 0:10], np.arange(20), context="family both", label="lens ids")


def test_id_check_without_expected_set_finds_repeats_only():
    check_ids(["b.txt", "a.txt"], context="train")
    with pytest.raises(IdCheckError, match=r"train: 1 files repeated \(first: \['a.txt'\]\)\. Re-run the ingest shards\."):
        check_ids(np.array(["a.txt", "b.txt", "a.txt"]), context="train", label="files", rerun="the ingest shards")


def test_shards_take_a_quarter_of_the_wall_limit():
    assert [slurm_minutes(t) for t in ("45", "30:30", "02:00:00", "2-00:00:00", "1-12", "1-12:30")] == [45, 30.5, 120, 2880, 2160, 2190]
    with pytest.raises(ValueError, match="no time limit"):
        slurm_minutes("UNLIMITED")
    assert size_for_wall_limit(rate=100.0, wall_limit_minutes=48 * 60) == 100 * 48 * 3600 // 4
    assert size_for_wall_limit(rate=1e-4, wall_limit_minutes=1) == 1


def test_calibration_writes_an_overlay_the_schema_accepts(tmp_path):
    """The rate is measured on the shard's own code path; the overlay sizes shards and their SLURM runtime."""
    import yaml

    from hpcml.cli import main
    from hpcml.core.config import validate
    from hpcml.lensing.calibrate import plan

    assert plan(rate=10.0, wall_limit_minutes=60, n_lenses=100_000) == {
        "rate_lenses_per_s": 10.0, "wall_limit_minutes": 60, "shard_size": 9000, "chunk_size": 3000, "shard_minutes": 15.0, "shards": 12}
    overlay = tmp_path / "shards.yaml"
    assert main(["-q", "lensing", "calibrate", "--wall-limit", "60", "--sample", "40", "--set", "lensing.render.enabled=false",
                 "--set", "lensing.n_lenses=100000", "--out", str(overlay)]) == 0
    settings = validate(yaml.safe_load(overlay.read_text()))["lensing"]
    assert settings["shard_size"] <= 100_000 and settings["chunk_size"] <= settings["shard_size"]
    assert 0 < settings["shard_minutes"] <= 15.0
