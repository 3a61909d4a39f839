"""Training one lens model through the shared learning path, and what it predicts.

The CNN reads the images rendered beside the catalogue (``render.npy``, rows in the
catalogue's order, which the dataset keeps) together with the dataset's arrays.

Writes into the model's folder: ``pred_{val,test}.npy`` [N, T + 3M, 2] (physical mean
and standard deviation; NaN where a model has none), ``rows_{val,test}.npy`` (dataset
rows, so evaluation needs no torch), ``scaling.json`` (fitted on the training split),
``equivariance.json`` and the shared ``summary.json``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hpcml.core.atomic import write_json, write_npy
from hpcml.core.batches import ArraySet
from hpcml.core.data import ArrayDataModule, Split
from hpcml.core.fit import fit, predict
from hpcml.core.summary import write_summary
from hpcml.lensing import scaling as scaling_io
from hpcml.lensing.cnn import RENDER, LensCNN
from hpcml.lensing.naming import image_count, section
from hpcml.lensing.networks import DenseBaseline, LensModel, SetModel
from hpcml.lensing.observables import load_splits

log = logging.getLogger(__name__)
_EQUIVARIANCE_SEED = 12345
# Applied on the device to a batch's arrays by name (masks are stored as uint8).
ON_DEVICE = {"mask": torch.Tensor.bool}


def build_model(name: str, config: dict[str, Any], scaling: dict[str, Any]) -> LensModel:
    """The module for model ``name`` (set, cnn, baseline_nK) from the config and the fitted scaling."""
    settings = config["lensing"]["models"]
    s = settings[section(name)]
    common = {"scaling": scaling, "targets": settings["targets"], "max_images": settings["max_images"], "learning_rate": s["learning_rate"]}
    if name == "cnn":
        return LensCNN(**common, pixel_scale=config["lensing"]["render"]["pixel_scale"], shift=s["shift"])
    if name == "set":
        return SetModel(**common, width=s["width"])
    return DenseBaseline(**common, width=s["width"], n_images=image_count(name), shift=s["shift"])


def _arrays(name: str, data_dir: Path, render: Path | None) -> ArraySet:
    """The dataset's arrays, and for the CNN the rendered images, which must line up with them row by row."""
    if name != "cnn":
        return ArraySet(data_dir, LensModel.batch_names)
    if render is None:
        raise ValueError("the cnn model reads rendered images: pass --render <catalogue>/render.npy (lensing.render.enabled)")
    arrays = ArraySet(data_dir, [n for n in LensCNN.batch_names if n != RENDER], files={RENDER: render})
    if len(arrays[RENDER]) != len(arrays["targets"]):
        raise ValueError(f"{render} holds {len(arrays[RENDER])} images but the dataset {len(arrays['targets'])} systems: "
                         "render and dataset come from different catalogues; re-run the dataset step")
    return arrays


def train_model(name: str, data_dir: str | Path, out_dir: str | Path, config: dict[str, Any], render: str | Path | None = None) -> None:
    """Train ``name`` on the dataset in ``data_dir`` (and, for the CNN, the images in ``render``)."""
    settings, training = config["lensing"]["models"], config["training"]
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    render = None if render is None else Path(render)
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = load_splits(data_dir, settings["splits"])
    if name.startswith("baseline"):
        n_images = pd.read_parquet(data_dir / "meta.parquet", columns=["n_images"]).n_images.to_numpy()
        k = image_count(name)
        splits = {s: rows[n_images[rows] == k] for s, rows in splits.items()}
        if len(splits["train"]) == 0 or len(splits["val"]) == 0:
            raise ValueError(f"{name}: no {k}-image systems in the training or validation split; "
                             f"simulate more lenses or drop {k} from lensing.models.baseline.image_counts")
    scaling = scaling_io.fit(data_dir, splits["train"], settings["targets"])
    scaling_io.save(out_dir / "scaling.json", scaling)
    module = build_model(name, config, scaling)
    arrays = _arrays(name, data_dir, render)
    s = settings[section(name)]
    data = ArrayDataModule(
        Split(arrays, splits["train"]), Split(arrays, splits["val"]), module.batch_names, s["batch_size"], training["num_workers"],
        config["seed"], training["placement"], transforms=ON_DEVICE,
        predict={k: Split(arrays, splits[k]) for k in ("val", "test")}, predict_names=module.input_names,
    )
    hyperparameters = {"model": name, **s, "targets": settings["targets"], "splits": settings["splits"]}
    if name == "cnn":
        hyperparameters["pixel_scale"] = module.hparams.pixel_scale
    files = [*arrays.paths.values(), data_dir / "meta.parquet", data_dir / "folds.parquet"]
    result = fit(module, data, out_dir, training, config["wandb"], config["seed"], s["max_epochs"], run_name=f"lensing-{name}",
                 hyperparameters=hyperparameters, data_files=files)
    outputs = predict(result, module, data)
    if not result.trainer.is_global_zero:
        return
    for split in ("val", "test"):
        write_npy(out_dir / f"pred_{split}.npy", outputs[split].astype(np.float32))
        write_npy(out_dir / f"rows_{split}.npy", splits[split])
    write_json(out_dir / "equivariance.json", equivariance(module, arrays, splits["test"], settings["targets"]))
    value = normalised_rmse(outputs["val"][:, : len(settings["targets"]), 0], np.load(data_dir / "targets.npy", mmap_mode="r")[splits["val"]], scaling, settings["targets"])
    write_summary(out_dir / "summary.json", name, "val_nrmse", "minimize", value, result.stats,
                  details={"metric": "mean over lens targets of validation RMSE / training scatter"})
    log.info("%s: validation normalised RMSE %.4f", name, value)


def normalised_rmse(pred: np.ndarray, truth: np.ndarray, scaling: dict[str, Any], targets: list[str]) -> float:
    scale = np.array([scaling["targets"][t][1] for t in targets])
    return float(np.mean(np.sqrt(np.mean((pred - truth) ** 2, axis=0)) / scale))


def equivariance(module: LensModel, arrays: ArraySet, rows: np.ndarray, targets: list[str], batch: int = 4096) -> dict[str, Any]:
    """How far predictions on rotated and shifted systems are from the rotated predictions,
    per lens target, relative to that target's scatter in the test split."""
    module.eval()
    n_inputs = len(module.input_names)
    generator = torch.Generator().manual_seed(_EQUIVARIANCE_SEED)
    diffs, truths = [], []
    with torch.no_grad():
        for a in range(0, len(rows), batch):
            part = np.sort(rows[a:a + batch])
            tensors = tuple(_tensor(n, arrays[n][part], module.device) for n in module.batch_names)
            angle = (torch.rand(len(part), generator=generator) * 2 * np.pi).to(module.device)
            shift = (torch.rand(len(part), 2, generator=generator) - 0.5).to(module.device)
            mean, _ = module.predict_physical(*tensors[:n_inputs])
            moved = module.transform(tensors, angle, shift)
            mean_moved, _ = module.predict_physical(*moved[:n_inputs])
            expected = module.rotate_targets(mean[:, : len(targets)], angle)
            diffs.append((mean_moved[:, : len(targets)] - expected).float().cpu().numpy())
            truths.append(tensors[module.batch_names.index("targets")].float().cpu().numpy())
    diff, truth = np.concatenate(diffs), np.concatenate(truths)
    scatter = truth.std(0)
    ratio = np.sqrt(np.mean(diff**2, axis=0)) / np.maximum(scatter, 1e-12)
    return {"rms_over_scatter": dict(zip(targets, ratio.tolist())), "max_rms_over_scatter": float(ratio.max()), "n_systems": int(len(rows))}


def _tensor(name: str, values: np.ndarray, device: torch.device) -> torch.Tensor:
    """One array's rows on ``device``, as the data module hands them to a model."""
    tensor = torch.from_numpy(np.ascontiguousarray(values)).to(device)
    return ON_DEVICE[name](tensor) if name in ON_DEVICE else tensor
