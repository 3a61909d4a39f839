"""Training Ariel models and writing their predictions (Rp/Rs) for every split.

Each model writes ``pred_val.npy``, ``pred_holdout.npy`` and ``pred_test.npy`` (rows in
the data sets' sorted file order) plus the shared ``summary.json`` layout
(:mod:`hpcml.core.summary`); evaluation needs no torch. Neural models go through the
one learning path of :mod:`hpcml.core.fit`; the classical model is fitted here.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV

from hpcml.ariel import features
from hpcml.ariel.dataset import ARRAYS, ArielData, load_splits
from hpcml.ariel.layout import N_TIMESTEPS, N_WAVELENGTHS
from hpcml.ariel.metric import ariel_score
from hpcml.ariel.transforms import Transforms
from hpcml.core.atomic import atomic_path, write_npy
from hpcml.core.summary import write_summary

log = logging.getLogger(__name__)
PREDICTED = ("val", "holdout", "test")


def train_neural(name: str, train: ArielData, test: ArielData | None, splits: dict[str, np.ndarray], transforms: Transforms, out_dir: Path, config: dict[str, Any], data_files: list[Path]) -> dict[str, Any]:
    from hpcml.ariel.models import ArielRegressor
    from hpcml.core.data import ArrayDataModule, Split
    from hpcml.core.fit import fit, predict

    settings, training = config["ariel"][name], config["training"]
    n_steps = transforms.inputs(np.ones((1, N_WAVELENGTHS, N_TIMESTEPS), dtype=np.float32)).shape[-1]
    module = ArielRegressor(name, n_steps, settings["learning_rate"])
    predict_sets = {s: Split(train.arrays, splits[s]) for s in ("val", "holdout")}
    if test is not None and len(test):
        predict_sets["test"] = Split(test.arrays, np.arange(len(test)))
    data = ArrayDataModule(
        Split(train.arrays, splits["train"]), Split(train.arrays, splits["val"]), ARRAYS,
        settings["batch_size"], training["num_workers"], config["seed"], training["placement"],
        transforms={"X": transforms.inputs, "stellar": transforms.stellar, "targets": transforms.targets},
        predict=predict_sets, predict_names=("X", "stellar"),
    )
    hyperparameters = {"model": name, **settings, "test_fold": config["ariel"]["splits"]["test_fold"], "val_fold": config["ariel"]["splits"]["val_fold"]}
    result = fit(module, data, out_dir, training, config["wandb"], config["seed"], settings["max_epochs"], run_name=f"ariel-{name}",
                 hyperparameters=hyperparameters, data_files=data_files)
    outputs = predict(result, module, data)
    if not result.trainer.is_global_zero:
        return {}
    predictions = {s: transforms.targets_inverse(outputs[s]) if s in outputs else np.empty((0, N_WAVELENGTHS)) for s in PREDICTED}
    return {"predictions": predictions, "run": result.stats}


def train_gbt(train: ArielData, test: ArielData | None, splits: dict[str, np.ndarray], transforms: Transforms, out_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
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
        HistGradientBoostingRegressor(max_iter=config["ariel"]["gbt"]["max_iter"], learning_rate=0.05, max_leaf_nodes=15, early_stopping=False, random_state=config["seed"]).fit(x, residual[:, j])
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
    run = {"train_seconds": seconds, "steady_samples_per_s": len(splits["train"]) / max(seconds, 1e-9), "device": "cpu", "n_train": int(len(splits["train"])), "epochs": 1, "epochs_this_run": 1}
    return {"predictions": predictions, "run": run}


def train_model(name: str, data_dir: str | Path, folds_path: str | Path, transforms_path: str | Path, out_dir: str | Path, config: dict[str, Any]) -> None:
    """Train model ``name`` with the settings in ``config`` (its ``ariel.<name>`` section,
    the validation/test folds, ``training``, ``wandb`` and ``seed``)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = ArielData(data_dir / "train")
    test = ArielData(data_dir / "test") if (data_dir / "test" / "meta.parquet").exists() else None
    splits = load_splits(train, folds_path, config["ariel"]["splits"])
    transforms = Transforms.load(transforms_path)
    if name == "gbt":
        result = train_gbt(train, test, splits, transforms, out_dir, config)
    else:
        result = train_neural(name, train, test, splits, transforms, out_dir, config, [*train.files(), Path(folds_path), Path(transforms_path)])
    if not result:
        return
    for split, pred in result["predictions"].items():
        write_npy(out_dir / f"pred_{split}.npy", pred.astype(np.float64))
    val_score = ariel_score(train.arrays["targets"][splits["val"]], result["predictions"]["val"])
    summary = write_summary(out_dir / "summary.json", name, "val_score", "maximize", val_score, result["run"],
                            details={"metric": "challenge score on the validation fold, per noise instance"})
    log.info("%s: validation score %.1f (%s samples/s steady state)", name, val_score, _rate(summary["steady_samples_per_s"]))


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"
