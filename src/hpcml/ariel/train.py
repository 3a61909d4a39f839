"""Training Ariel models and writing their predictions (Rp/Rs) for every split.

Each model writes ``pred_val.npy``, ``pred_holdout.npy`` and ``pred_test.npy`` (rows in
the data sets' sorted file order) plus ``summary.json``; evaluation needs no torch.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from torch.utils.data import Dataset

from hpcml.ariel import features
from hpcml.ariel.formats import N_WAVELENGTHS
from hpcml.ariel.metric import ariel_score
from hpcml.ariel.models import ArielRegressor
from hpcml.ariel.splits import split_indices
from hpcml.ariel.transforms import Transforms
from hpcml.core.atomic import atomic_path, write_json, write_npy
from hpcml.core.loaders import MemmapArrays, build_loader
from hpcml.core.training import best_checkpoint, build_trainer, epochs_run

log = logging.getLogger(__name__)
_PREDICT_BATCH = 512


class ArielData:
    """The ingested arrays of one data set, memory-mapped."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.meta = pd.read_parquet(self.folder / "meta.parquet")
        self.arrays = MemmapArrays({k: self.folder / f"{k}.npy" for k in ("X", "stellar", "targets")})

    def __len__(self) -> int:
        return len(self.meta)


class ArielDataset(Dataset):
    """Samples (inputs, stellar, targets) of some rows, transformed a batch at a time."""

    def __init__(self, data: ArielData, index: np.ndarray, transforms: Transforms) -> None:
        self.arrays, self.index, self.transforms = data.arrays, np.asarray(index), transforms

    def __len__(self) -> int:
        return len(self.index)

    def __getitems__(self, positions: list[int]) -> list[tuple[torch.Tensor, ...]]:
        rows = np.sort(self.index[positions])
        x = torch.from_numpy(self.transforms.inputs(self.arrays["X"][rows]))
        s = torch.from_numpy(self.transforms.stellar(self.arrays["stellar"][rows]))
        y = torch.from_numpy(self.transforms.targets(self.arrays["targets"][rows]))
        return list(zip(x, s, y))

    def __getitem__(self, position: int) -> tuple[torch.Tensor, ...]:
        return self.__getitems__([position])[0]


def load_splits(train: ArielData, folds_path: str | Path, split_settings: dict[str, Any]) -> dict[str, np.ndarray]:
    return split_indices(train.meta.planet.to_numpy(), pd.read_parquet(folds_path), split_settings)


def _predict_neural(module: ArielRegressor, data: ArielData, index: np.ndarray, transforms: Transforms) -> np.ndarray:
    module.eval()
    device = next(module.parameters()).device
    out = np.empty((len(index), N_WAVELENGTHS))
    with torch.no_grad():
        for a in range(0, len(index), _PREDICT_BATCH):
            rows = index[a:a + _PREDICT_BATCH]
            x = torch.from_numpy(transforms.inputs(data.arrays["X"][rows])).to(device)
            s = torch.from_numpy(transforms.stellar(data.arrays["stellar"][rows])).to(device)
            out[a:a + len(rows)] = transforms.targets_inverse(module(x, s).float().cpu().numpy())
    return out


def train_neural(name: str, train: ArielData, test: ArielData | None, splits: dict[str, np.ndarray], transforms: Transforms, out_dir: Path, settings: dict[str, Any], training: dict[str, Any], wandb: dict[str, Any], seed: int) -> dict[str, Any]:
    n_steps = transforms.inputs(np.ones((1, N_WAVELENGTHS, 300), dtype=np.float32)).shape[-1]
    module = ArielRegressor(name, n_steps, settings["learning_rate"])
    loaders = {
        split: build_loader(ArielDataset(train, splits[split], transforms), settings["batch_size"], split == "train", training["num_workers"], seed)
        for split in ("train", "val")
    }
    hyperparameters = {"model": name, "transforms": settings["transforms"], "splits": settings["splits"], **{k: settings[k] for k in ("max_epochs", "batch_size", "learning_rate")}}
    trainer, resume = build_trainer(out_dir, training, wandb, settings["max_epochs"], seed, run_name=f"ariel-{name}", hyperparameters=hyperparameters)
    tic = time.perf_counter()
    trainer.fit(module, loaders["train"], loaders["val"], ckpt_path=resume)
    seconds = time.perf_counter() - tic
    if not trainer.is_global_zero:
        return {}
    module = ArielRegressor.load_from_checkpoint(best_checkpoint(out_dir), map_location="cpu")
    predictions = {split: _predict_neural(module, train, splits[split], transforms) for split in ("val", "holdout")}
    predictions["test"] = _predict_neural(module, test, np.arange(len(test)), transforms) if test is not None else np.empty((0, N_WAVELENGTHS))
    return {"predictions": predictions, "train_seconds": seconds, "samples_per_second": epochs_run(trainer) * len(splits["train"]) / max(seconds, 1e-9)}


def train_gbt(train: ArielData, test: ArielData | None, splits: dict[str, np.ndarray], transforms: Transforms, out_dir: Path, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Classical model: transit depths -> ridge regression across all wavelengths -> per-wavelength
    gradient-boosted trees on the ridge's residuals.

    Trees alone are piecewise constant and would quantise Rp/Rs over the few training
    planets; the linear stage carries the smooth depth-radius relation and the
    correlation across wavelengths (spot bias, smooth spectra), the trees what is left.
    """
    def feature_rows(data: ArielData, index: np.ndarray) -> np.ndarray:
        depth = np.concatenate([features.depths(data.arrays["X"][index[a:a + 2048]]) for a in range(0, len(index), 2048)]) if len(index) else np.empty((0, N_WAVELENGTHS))
        return np.column_stack([depth, transforms.stellar(data.arrays["stellar"][index])])

    tic = time.perf_counter()
    x = feature_rows(train, splits["train"])
    y = np.asarray(train.arrays["targets"][splits["train"]], dtype=np.float64)
    linear = RidgeCV(alphas=np.logspace(-6, 2, 17)).fit(x, y)
    residual = y - linear.predict(x)
    trees = [
        HistGradientBoostingRegressor(max_iter=settings["gbt_max_iter"], learning_rate=0.05, max_leaf_nodes=15, early_stopping=False, random_state=seed).fit(x, residual[:, j])
        for j in range(N_WAVELENGTHS)
    ]
    seconds = time.perf_counter() - tic
    with atomic_path(out_dir / "model.joblib") as tmp:
        joblib.dump({"linear": linear, "trees": trees}, tmp)

    def predict(data: ArielData, index: np.ndarray) -> np.ndarray:
        if not len(index):
            return np.empty((0, N_WAVELENGTHS))
        f = feature_rows(data, index)
        return linear.predict(f) + np.column_stack([t.predict(f) for t in trees])

    predictions = {split: predict(train, splits[split]) for split in ("val", "holdout")}
    predictions["test"] = predict(test, np.arange(len(test))) if test is not None else np.empty((0, N_WAVELENGTHS))
    return {"predictions": predictions, "train_seconds": seconds, "samples_per_second": len(splits["train"]) / max(seconds, 1e-9)}


def train_model(name: str, data_dir: str | Path, folds_path: str | Path, transforms_path: str | Path, out_dir: str | Path, settings: dict[str, Any], training: dict[str, Any], wandb: dict[str, Any], seed: int) -> None:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = ArielData(data_dir / "train")
    test = ArielData(data_dir / "test") if (data_dir / "test" / "meta.parquet").exists() else None
    splits = load_splits(train, folds_path, settings["splits"])
    transforms = Transforms.load(transforms_path)
    if name == "gbt":
        result = train_gbt(train, test, splits, transforms, out_dir, settings, seed)
    else:
        result = train_neural(name, train, test, splits, transforms, out_dir, settings, training, wandb, seed)
    if not result:
        return
    for split, pred in result["predictions"].items():
        write_npy(out_dir / f"pred_{split}.npy", pred.astype(np.float64))
    val_true = train.arrays["targets"][splits["val"]]
    summary = {
        "model": name,
        "val_score": ariel_score(val_true, result["predictions"]["val"]),
        "train_seconds": result["train_seconds"],
        "train_samples_per_second": result["samples_per_second"],
        "n_train": int(len(splits["train"])),
    }
    write_json(out_dir / "summary.json", summary)
    log.info("%s: validation score %.1f (%.0f samples/s)", name, summary["val_score"], summary["train_samples_per_second"])
