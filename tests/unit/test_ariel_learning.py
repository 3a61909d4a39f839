"""Ariel: leak-free splits, fitted invertible transforms, the metric, models, loaders, resume."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.preprocessing import PowerTransformer

from hpcml.ariel import transforms as tf
from hpcml.ariel.evaluate import ensemble_weights, write_submission
from hpcml.ariel.formats import NAME_RE
from hpcml.ariel.ingest import ingest_all
from hpcml.ariel.metric import ariel_score, average_by_planet
from hpcml.ariel.models import ArielRegressor, BaselineMLP
from hpcml.ariel.prepare import fit_transforms, write_folds
from hpcml.ariel.synth import generate
from hpcml.ariel.dataset import ARRAYS, ArielData, load_splits
from hpcml.core import config
from hpcml.core.batches import RowBatches, ShuffledBatches
from hpcml.core.loaders import build_loader
from hpcml.core.splits import LeakageError, make_folds, split_indices

TINY = {"n_train_planets": 9, "n_test_planets": 2, "n_spot": 2, "n_photon": 2}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ariel")
    generate(root / "raw", TINY, seed=4)
    ingest_all(root / "raw", root / "data", shard_size=7)
    settings = config.validate({"ariel": {"splits": {"n_folds": 3}}})["ariel"]
    write_folds(root / "data", root / "folds.parquet", settings, seed=4)
    fit_transforms(root / "data", root / "folds.parquet", root / "transforms.json", settings)
    return root


def test_synthetic_files_have_the_challenge_format(tiny_data):
    raw = tiny_data / "raw"
    train = sorted((raw / "noisy_train").iterdir())
    assert len(train) == 9 * 4 and all(NAME_RE.match(p.name) for p in train)
    assert sorted(p.name for p in (raw / "params_train").iterdir()) == [p.name for p in train]
    lines = train[0].read_text().splitlines()
    assert [line.split(":")[0] for line in lines[:6]] == ["# star_temp", "# star_logg", "# star_rad", "# star_mass", "# star_k_mag", "# period"]
    assert len(lines) == 61 and all(len(line.split("\t")) == 300 for line in lines[6:])
    flux = np.array([line.split("\t") for line in lines[6:]], dtype=float)
    assert 0.45 < flux[:, 0].mean() < 0.55 and abs(np.median(flux[:, 20:60]) - 1) < 0.01  # ramp, then ~1
    params = (raw / "params_train" / train[0].name).read_text().splitlines()
    assert params[0].startswith("# sma: ") and params[1].startswith("# incl: ") and len(params[2].split("\t")) == 55
    assert len(list((raw / "noisy_test").iterdir())) == 2 * 4


def test_folds_keep_every_planet_in_one_fold(tiny_data):
    folds = pd.read_parquet(tiny_data / "folds.parquet")
    assert folds.group.is_unique and sorted(folds.fold.unique()) == [0, 1, 2]
    data = ArielData(tiny_data / "data" / "train")
    splits = load_splits(data, tiny_data / "folds.parquet", {"test_fold": 0, "val_fold": 1})
    planets = {k: set(data.meta.planet.to_numpy()[v]) for k, v in splits.items()}
    assert not (planets["train"] & planets["val"]) and not (planets["train"] & planets["holdout"]) and not (planets["val"] & planets["holdout"])
    assert sum(len(v) for v in splits.values()) == len(data)
    with pytest.raises(LeakageError):
        split_indices(data.meta.planet.to_numpy(), pd.concat([folds, folds.head(1).assign(fold=2)]), 0, 1)


def test_folds_are_reproducible_and_need_enough_planets():
    planets = np.repeat(np.arange(40), 10)
    assert make_folds(planets, 5, 1).equals(make_folds(planets, 5, 1))
    assert not make_folds(planets, 5, 1).equals(make_folds(planets, 5, 2))
    with pytest.raises(ValueError, match="cannot fill"):
        make_folds(np.arange(3), 5, 1)


def test_transforms_fitted_on_training_split_only_and_invertible(tiny_data):
    data = ArielData(tiny_data / "data" / "train")
    fitted = tf.Transforms.load(tiny_data / "transforms.json")
    splits = load_splits(data, tiny_data / "folds.parquet", {"test_fold": 0, "val_fold": 1})
    stellar = np.asarray(data.arrays["stellar"])
    assert np.allclose(fitted.stellar_mean, stellar[splits["train"]].mean(0))
    assert not np.allclose(fitted.stellar_mean, stellar.mean(0))
    y = np.asarray(data.arrays["targets"])
    assert np.allclose(fitted.targets_inverse(fitted.targets(y)), y, rtol=1e-5, atol=1e-7)
    z = fitted.targets(y[splits["train"]])
    assert np.allclose(z.mean(0), 0, atol=1e-4) and np.allclose(z.std(0), 1, atol=1e-3)


def test_yeo_johnson_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.lognormal(-2, 0.5, 500), rng.normal(0, 1, 500), -rng.lognormal(0, 0.3, 500)])
    power = PowerTransformer(standardize=False).fit(y)
    assert np.allclose(tf.yeo_johnson(y, power.lambdas_), power.transform(y))
    assert np.allclose(tf.yeo_johnson_inverse(power.transform(y), power.lambdas_), y)


def test_input_transform_shapes_ramp_and_binning():
    t = tf.Transforms(ramp_steps=10, time_bins=4, use_yeo_johnson=False, stellar_mean=[0] * 6, stellar_std=[1] * 6, target_lambda=[1] * 55, target_mean=[0] * 55, target_std=[1] * 55)
    x = np.ones((2, 55, 300), np.float32)
    x[..., :10] = 0.5
    out = t.inputs(x)
    assert out.shape == (2, 55, 75) and np.allclose(out, 0.0)


def test_challenge_score_formula():
    y = np.full((2, 55), 0.1)
    assert ariel_score(y, y) == 1e4
    pred = y + 0.001
    assert ariel_score(y, pred) == pytest.approx(1e4 - 2e6 * 0.1 * 0.001)
    w = np.ones((2, 55))
    w[1] = 3
    pred[1] += 0.001
    expected = 1e4 - 2e6 * (55 * 0.1 * 0.001 + 3 * 55 * 0.1 * 0.002) / (4 * 55)
    assert ariel_score(y, pred, w) == pytest.approx(expected)


def test_per_planet_averaging_and_ensemble_weights():
    pred = np.array([[1.0] * 55, [3.0] * 55, [5.0] * 55])
    out = average_by_planet(pred, np.array([7, 7, 9]))
    assert np.allclose(out[:2], 2.0) and np.allclose(out[2], 5.0)
    w = ensemble_weights({"a": 9900, "b": 9800})
    assert w["a"] == pytest.approx(0.8) and sum(w.values()) == pytest.approx(1)


def test_submission_format(tmp_path):
    pred = np.random.default_rng(1).uniform(0, 0.2, (3, 55))
    write_submission(pred, ["0003_01_01.txt", "0001_01_01.txt", "0002_01_01.txt"], tmp_path / "s.txt")
    lines = (tmp_path / "s.txt").read_text().splitlines()
    assert len(lines) == 3 and all(len(line.split("\t")) == 55 for line in lines)
    assert lines[0].split("\t")[0] == f"{pred[1, 0]:.10f}"
    assert all(len(v.split(".")[1]) == 10 for v in lines[2].split("\t"))


def test_baseline_is_the_organisers_architecture():
    shapes = [tuple(p.shape) for p in BaselineMLP(300).parameters()]
    assert shapes == [(1024, 16500), (1024,), (256, 1024), (256,), (55, 256), (55,)]


@pytest.mark.parametrize("model", ["baseline", "cnn"])
def test_every_trainable_parameter_gets_a_gradient(model):
    module = ArielRegressor(model, 300, 1e-3)
    optimiser = module.configure_optimizers()
    assert {id(p) for g in optimiser.param_groups for p in g["params"]} == {id(p) for p in module.parameters()}
    x, s, y = torch.randn(4, 55, 300), torch.randn(4, 6), torch.randn(4, 55)
    module._loss((x, s, y)).backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing


def test_loader_with_workers_returns_stored_dtypes(tiny_data):
    data = ArielData(tiny_data / "data" / "train")
    rows = np.arange(len(data))
    loader = build_loader(RowBatches(data.arrays, ARRAYS, rows), ShuffledBatches(len(rows), 8, shuffle=True, seed=1), num_workers=2)
    batches = list(loader)
    assert sum(len(b[0]) for b in batches) == len(data)
    x, s, y = batches[0]
    assert x.shape == (8, 55, 300) and s.shape == (8, 6) and y.shape == (8, 55)
    assert (x.dtype, s.dtype, y.dtype) == (torch.float32, torch.float64, torch.float32)


def test_killed_training_resumes_from_last_checkpoint(tiny_data, tmp_path):
    cfg = {"seed": 4, "training": {"num_workers": 0}, "wandb": {"mode": "offline"}, "ariel": {"cnn": {"max_epochs": 15, "batch_size": 4}, "splits": {"n_folds": 3}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "hpcml.cli", "ariel", "train", "--config", str(tmp_path / "c.yaml"), "--model", "cnn",
               "--data", str(tiny_data / "data"), "--folds", str(tiny_data / "folds.parquet"), "--transforms", str(tiny_data / "transforms.json"), "--out", str(out)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if last.exists() and torch.load(last, map_location="cpu", weights_only=False)["epoch"] >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
    assert 2 <= killed_at < 14 and not (out / "summary.json").exists()

    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "resuming from" in result.stderr
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 14
    assert (out / "summary.json").exists() and (out / "pred_test.npy").exists()
    assert list((out / "wandb").glob("offline-run-*")), "W&B wrote an offline run"
