"""Training the two-branch VICReg model through the shared learning path.

Writes into the model folder: ``checkpoints/{best,last}.ckpt`` (the thermal statistics are
in their hyper-parameters), ``normalisation.json`` (the same statistics, readable), the CSV
and W&B (offline) logs, and the shared ``summary.json`` whose objective is the validation
VICReg loss of the best checkpoint (lower is better).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hpcml.core.atomic import write_json
from hpcml.core.fit import fit
from hpcml.core.summary import write_summary
from hpcml.sage.dataset import RGB_SCALE, SageData, build_data_module, fit_thermal, load_splits
from hpcml.sage.model import TwoBranchVICReg

log = logging.getLogger(__name__)
OBJECTIVE = "val_vicreg_loss"


def train(data: Path, folds: Path, out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Train on the training folds of ``data``, choose the checkpoint by validation loss, write the
    summary; resumes from ``out/checkpoints/last.ckpt`` when settings and data are unchanged.
    Returns the summary (empty on DDP ranks other than 0)."""
    settings, training = config["sage"]["model"], config["training"]
    out = Path(out)
    sage = SageData(data)
    splits = load_splits(sage, folds, config["sage"]["splits"])
    for name in ("train", "val"):
        if len(splits[name]) < 2:
            raise ValueError(f"the {name} split holds {len(splits[name])} captures, VICReg needs at least 2: "
                             "add captures or days, or change sage.splits (n_folds, test_fold, val_fold)")
    thermal = fit_thermal(sage, splits["train"])
    module = TwoBranchVICReg(
        backbone=settings["backbone"], rgb_channels=sage.rgb_channels, expander=list(settings["expander"]),
        invariance=settings["invariance"], variance=settings["variance"], covariance=settings["covariance"],
        crop_scale=list(settings["crop_scale"]), learning_rate=settings["learning_rate"], weight_decay=settings["weight_decay"],
        thermal_mean=thermal.mean, thermal_std=thermal.std,
    )
    datamodule = build_data_module(sage, splits, thermal, settings["batch_size"], training, config["seed"])
    folds_settings = {k: config["sage"]["splits"][k] for k in ("test_fold", "val_fold")}
    result = fit(module, datamodule, out, training, config["wandb"], config["seed"], settings["max_epochs"], run_name="sage-vicreg",
                 hyperparameters={"model": "vicreg", **settings, **folds_settings}, data_files=[*sage.files(), Path(folds)])
    # Validation of the best checkpoint (every rank takes part: the loss gathers the split).
    best = result.trainer.validate(module, datamodule=datamodule, ckpt_path=str(result.best_checkpoint), verbose=False)[0]
    if not result.trainer.is_global_zero:
        return {}
    normalisation = {"rgb": {"mean": RGB_SCALE.mean, "std": RGB_SCALE.std}, "thermal_celsius": {"mean": thermal.mean, "std": thermal.std},
                     "fitted_on": "train split only", "n_train": int(len(splits["train"]))}
    write_json(out / "normalisation.json", normalisation)
    details = {
        "metric": "VICReg loss (weighted) on the embeddings of the whole validation split, best checkpoint",
        "terms": {k: float(best[f"val_{k}"]) for k in ("invariance", "variance", "covariance")},
        "checkpoint": result.best_checkpoint.name,
        "n_val": int(len(splits["val"])),
    }
    summary = write_summary(out / "summary.json", "vicreg", OBJECTIVE, "minimize", best["val_loss"], result.stats, details=details)
    log.info("vicreg: validation loss %.4f (invariance %.4f, variance %.4f, covariance %.4f)",
             best["val_loss"], *details["terms"].values())
    return summary
