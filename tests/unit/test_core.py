"""Shared core: shard planning, atomic writes, counter-based randomness, config validation, array sets."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from hpcml import checks
from hpcml.core import atomic, config
from hpcml.core.batches import ArraySet
from hpcml.core.randomness import normals, truncated_normals, uniforms
from hpcml.core.shards import chunk_ranges, plan_shards


def test_shards_cover_every_item_once():
    for n, size in [(0, 5), (1, 5), (10, 5), (11, 5), (100000, 7)]:
        shards = plan_shards(n, size)
        covered = np.concatenate([np.arange(s.start, s.stop) for s in shards]) if shards else np.array([])
        assert np.array_equal(covered, np.arange(n))
        assert all(0 < s.size <= size for s in shards)
    assert [s.name for s in plan_shards(3, 1)] == ["shard_00000", "shard_00001", "shard_00002"]
    assert chunk_ranges(10, 25, 10) == [(10, 20), (20, 25)]
    with pytest.raises(ValueError):
        plan_shards(10, 0)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    atomic.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_memmap_appears_complete(tmp_path):
    target = tmp_path / "a.npy"
    with atomic.atomic_npy_memmap(target, (3, 4)) as array:
        assert not target.exists()
        array[:] = 2.0
    assert np.load(target).sum() == 24.0


def test_randomness_depends_only_on_seed_index_stream():
    all_items = uniforms(1, np.arange(1000), 3)
    assert np.array_equal(uniforms(1, np.array([17, 500]), 3), all_items[[17, 500]])
    assert not np.allclose(uniforms(2, np.arange(1000), 3), all_items)
    assert not np.allclose(uniforms(1, np.arange(1000), 4), all_items)
    big = uniforms(9, np.arange(200000), 0)
    assert 0 < big.min() and big.max() < 1
    assert abs(big.mean() - 0.5) < 0.003 and abs(big.var() - 1 / 12) < 0.002
    z = normals(9, np.arange(200000), 1)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    t = truncated_normals(9, np.arange(100000), 2, 0.3, 0.16, 0.0, 0.9)
    assert t.min() >= 0 and t.max() < 0.9


def test_config_defaults_and_errors_name_the_key():
    filled = config.validate({})
    assert filled["lensing"]["priors"]["b_low"] == 1.0 and filled["wandb"]["mode"] == "offline"
    with pytest.raises(config.ConfigError) as error:
        config.validate({"lensing": {"n_lenses": 0, "families": ["shear", "nope"]}, "typo": 1})
    text = str(error.value)
    assert "lensing.n_lenses" in text and ">= 1" in text
    assert "lensing.families.1" in text and "typo" in text


def test_config_refuses_credentials():
    with pytest.raises(config.ConfigError, match="WANDB_API_KEY"):
        config.validate({"wandb": {"api_key": "0123456789abcdef"}})


def test_shipped_configs_and_sweeps_are_valid():
    from hpcml.sweeps.definition import load

    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "config").glob("*.yaml")):
        if not path.name.endswith("schema.yaml"):
            checks.load(path)
    sweeps = sorted((root / "config" / "sweeps").glob("*.yaml")) + sorted((root / "tests" / "sweeps").glob("*.yaml"))
    assert sweeps
    for path in sweeps:
        load(path, config.validate({}))


def test_array_set_reads_arrays_from_two_folders_and_pickles_as_paths(tmp_path):
    """A dataset's arrays and a file kept elsewhere, by name; workers receive paths, not data."""
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "targets.npy", np.arange(6.0))
    np.save(tmp_path / "render.npy", np.ones((6, 4, 4), dtype=np.float32))
    arrays = ArraySet(tmp_path / "data", ["targets"], files={"render": tmp_path / "render.npy"})
    assert arrays.names == ("targets", "render") and len(arrays) == 6
    assert arrays["render"].shape == (6, 4, 4) and arrays.nbytes(["render"], 2) == 2 * 64
    state = pickle.dumps(arrays)
    assert len(state) < 1000
    copy = pickle.loads(state)
    assert copy._arrays is None and np.array_equal(copy["targets"], np.arange(6.0))
