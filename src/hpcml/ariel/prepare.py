"""Preparation steps between ingest and training: planet folds, fitted transforms."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.ariel import transforms
from hpcml.ariel.dataset import ArielData, load_splits
from hpcml.core.atomic import write_json, write_parquet
from hpcml.core.splits import make_folds

log = logging.getLogger(__name__)


def write_folds(data_dir: str | Path, out_path: str | Path, settings: dict[str, Any], seed: int) -> pd.DataFrame:
    train = ArielData(Path(data_dir) / "train")
    folds = make_folds(train.meta.planet.to_numpy(), settings["splits"]["n_folds"], seed, what="planet", key="ariel.splits.n_folds")
    write_parquet(out_path, folds)
    log.info("%d planets in %d folds", len(folds), settings["splits"]["n_folds"])
    return folds


def fit_transforms(data_dir: str | Path, folds_path: str | Path, out_path: str | Path, settings: dict[str, Any]) -> None:
    train = ArielData(Path(data_dir) / "train")
    index = load_splits(train, folds_path, settings["splits"])["train"]
    fitted = transforms.fit(np.asarray(train.arrays["stellar"][index]), np.asarray(train.arrays["targets"][index]), settings["transforms"])
    fitted.save(out_path)
    write_json(Path(out_path).with_name("fit_info.json"), {"fitted_on": "train split only", "n_samples": int(len(index)), "planets": int(train.meta.planet.iloc[index].nunique())})
