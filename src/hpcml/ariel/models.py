"""Ariel models: the organisers' baseline MLP, a 1-D CNN over time, one LightningModule."""
from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from hpcml.ariel.formats import STELLAR_KEYS
from hpcml.ariel.layout import N_WAVELENGTHS

NEURAL_MODELS = ("baseline", "cnn")


class BaselineMLP(nn.Module):
    """The organisers' baseline: flatten 55 x T, Linear 16500-1024-256-55 with ReLU."""

    def __init__(self, n_steps: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(N_WAVELENGTHS * n_steps, 1024), nn.ReLU(),
            nn.Linear(1024, 256), nn.ReLU(),
            nn.Linear(256, N_WAVELENGTHS),
        )

    def forward(self, x: torch.Tensor, stellar: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpectrumCNN(nn.Module):
    """Convolutions over time with wavelengths as channels, joined by the stellar parameters."""

    def __init__(self, n_steps: int, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(N_WAVELENGTHS, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(width, 2 * width, 5, padding=2), nn.BatchNorm1d(2 * width), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(2 * width, 2 * width, 5, padding=2), nn.BatchNorm1d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool1d(4), nn.Flatten(),
        )
        # Rp/Rs is close to sqrt(transit depth) per wavelength: give the head that
        # physical estimate (see hpcml.ariel.features) beside the learned features.
        n_head = 8 * width + N_WAVELENGTHS + len(STELLAR_KEYS)
        self.head = nn.Sequential(
            nn.Linear(n_head, 256), nn.ReLU(),
            nn.Linear(256, N_WAVELENGTHS),
        )

    def forward(self, x: torch.Tensor, stellar: torch.Tensor) -> torch.Tensor:
        steps = x.shape[-1]
        centre = x[..., int(0.4 * steps): int(0.6 * steps)].mean(-1)
        edges = torch.cat([x[..., int(0.05 * steps): int(0.2 * steps)], x[..., int(0.8 * steps):]], dim=-1).mean(-1)
        # inputs are (flux - 1) / 0.04, so the depth is 0.04 * (edges - centre)
        radius = (torch.sqrt(torch.clamp(0.04 * (edges - centre), min=0.0) + 1e-8) - 0.1) / 0.04
        return self.head(torch.cat([self.features(x), radius, stellar], dim=1))


def build_model(name: str, n_steps: int) -> nn.Module:
    if name == "baseline":
        return BaselineMLP(n_steps)
    if name == "cnn":
        return SpectrumCNN(n_steps)
    raise ValueError(f"unknown neural model {name!r}; choose from {NEURAL_MODELS}")


class ArielRegressor(pl.LightningModule):
    """MSE on transformed targets; the optimiser gets exactly this module's parameters."""

    def __init__(self, model: str, n_steps: int, learning_rate: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(model, n_steps)

    def forward(self, x: torch.Tensor, stellar: torch.Tensor) -> torch.Tensor:
        return self.net(x, stellar)

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, stellar, y = batch
        return nn.functional.mse_loss(self(x, stellar), y)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=len(batch[0]), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, batch_size=len(batch[0]), sync_dist=True)

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        x, stellar = batch
        return self(x, stellar)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
