"""Transforms fitted on the training split only, saved as JSON, and invertible.

Inputs: the organisers' scaling (x - 1) / 0.04, optional ramp handling (the first
``ramp_steps`` steps replaced by the first step after the ramp) and optional time
binning. Stellar parameters: standardised. Targets (Rp/Rs): Yeo-Johnson per
wavelength (lambdas fitted by scikit-learn's maximum likelihood), then standardised;
the inverse maps model outputs back to Rp/Rs.

The forward transforms take numpy arrays or torch tensors alike (numpy and torch share
``where``, ``log1p``, ``abs``), so training applies them to whole batches on the
device and the classical model and the tests use the same code on the host.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import PowerTransformer

from hpcml.core.atomic import write_json


def _namespace(x: Any) -> Any:
    """numpy for arrays, torch for tensors (imported only when a tensor is passed)."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _constant(values: list[float], like: Any) -> Any:
    """Fitted parameters as an array (or tensor on ``like``'s device) of ``like``'s dtype."""
    if _namespace(like) is np:
        return np.asarray(values, dtype=like.dtype)
    return _device_constant(tuple(values), like.dtype, like.device)


@functools.lru_cache(maxsize=64)
def _device_constant(values: tuple[float, ...], dtype: Any, device: Any) -> Any:
    """Copied to the device once: a copy per batch would make the host wait for the GPU."""
    import torch

    return torch.as_tensor(values, dtype=dtype, device=device)


def yeo_johnson(y: Any, lmbda: np.ndarray) -> Any:
    xp = _namespace(y)
    y = _float(y, 64)
    lam = _constant(list(np.broadcast_to(lmbda, y.shape[-1:])), y)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = xp.where(xp.abs(lam) > 1e-12, ((y.clip(min=0) + 1) ** lam - 1) / lam, xp.log1p(y.clip(min=0)))
        b = xp.where(xp.abs(lam - 2) > 1e-12, -((1 - y.clip(max=0)) ** (2 - lam) - 1) / (2 - lam), -xp.log1p(-y.clip(max=0)))
    return xp.where(y >= 0, a, b)


def yeo_johnson_inverse(z: np.ndarray, lmbda: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    lam = np.broadcast_to(lmbda, z.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = np.where(np.abs(lam) > 1e-12, (z * lam + 1) ** (1 / lam) - 1, np.expm1(z))
        b = np.where(np.abs(lam - 2) > 1e-12, 1 - (1 - (2 - lam) * z) ** (1 / (2 - lam)), -np.expm1(-z))
    out[pos], out[~pos] = a[pos], b[~pos]
    return out


@dataclass
class Transforms:
    ramp_steps: int
    time_bins: int
    use_yeo_johnson: bool
    stellar_mean: list[float]
    stellar_std: list[float]
    target_lambda: list[float]
    target_mean: list[float]
    target_std: list[float]

    def inputs(self, x: Any) -> Any:
        """Raw light curves [..., 55, 300] -> float32 model inputs [..., 55, 300 // time_bins]."""
        x = (_float(x, 32) - 1.0) / 0.04
        if self.ramp_steps:
            x[..., : self.ramp_steps] = x[..., self.ramp_steps : self.ramp_steps + 1]
        if self.time_bins > 1:
            steps = x.shape[-1] // self.time_bins * self.time_bins
            x = x[..., :steps].reshape(*x.shape[:-1], -1, self.time_bins).mean(-1)
        return x

    def stellar(self, s: Any) -> Any:
        s = _float(s, 64)
        return _float((s - _constant(self.stellar_mean, s)) / _constant(self.stellar_std, s), 32)

    def targets(self, y: Any) -> Any:
        z = yeo_johnson(y, np.array(self.target_lambda)) if self.use_yeo_johnson else _float(y, 64)
        return _float((z - _constant(self.target_mean, z)) / _constant(self.target_std, z), 32)

    def targets_inverse(self, t: np.ndarray) -> np.ndarray:
        z = np.asarray(t, dtype=np.float64) * np.array(self.target_std) + np.array(self.target_mean)
        return yeo_johnson_inverse(z, np.array(self.target_lambda)) if self.use_yeo_johnson else z

    def save(self, path: str | Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "Transforms":
        return cls(**json.loads(Path(path).read_text()))


def _float(x: Any, bits: int) -> Any:
    """``x`` as floats of the given width (arrays stay arrays, tensors stay on their device)."""
    if _namespace(x) is np:
        return np.asarray(x, dtype=np.float32 if bits == 32 else np.float64)
    import torch

    return x.to(torch.float32 if bits == 32 else torch.float64)


def fit(stellar: np.ndarray, targets: np.ndarray, settings: dict[str, Any]) -> Transforms:
    """Fit on the training split's stellar parameters and targets (never on val or holdout)."""
    if settings["yeo_johnson"]:
        power = PowerTransformer(method="yeo-johnson", standardize=False).fit(targets.astype(np.float64))
        lambdas = power.lambdas_
        z = yeo_johnson(targets, lambdas)
    else:
        lambdas = np.ones(targets.shape[1])
        z = targets.astype(np.float64)
    return Transforms(
        ramp_steps=settings["ramp_steps"],
        time_bins=settings["time_bins"],
        use_yeo_johnson=settings["yeo_johnson"],
        stellar_mean=stellar.mean(0).tolist(),
        stellar_std=np.maximum(stellar.std(0), 1e-12).tolist(),
        target_lambda=lambdas.tolist(),
        target_mean=z.mean(0).tolist(),
        target_std=np.maximum(z.std(0), 1e-12).tolist(),
    )
