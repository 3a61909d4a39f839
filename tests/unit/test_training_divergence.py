"""A training whose loss becomes NaN or explodes stops and says so, instead of writing a score."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from hpcml.core.training import TrainingDiverged, build_trainer

TRAINING = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "deterministic": True, "num_workers": 0}


class Regression(pl.LightningModule):
    def __init__(self, learning_rate: float, scale: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(3, 1)

    def _loss(self, batch):
        return torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]) * self.hparams.scale

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def on_train_epoch_end(self):
        # After the first epoch the loss is scaled up, as a diverging run's would be.
        if self.current_epoch == 0 and self.hparams.scale > 1:
            self.hparams.scale = 1e12

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate)


def _fit(module, tmp_path):
    trainer, resume = build_trainer(tmp_path, TRAINING, {"mode": "disabled"}, 5, 1, "test")
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, 100 * x.sum(1, keepdim=True))
    trainer.fit(module, DataLoader(data, batch_size=8), DataLoader(data, batch_size=32), ckpt_path=resume)


def test_a_nan_loss_stops_the_training_naming_the_learning_rate(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"training loss became (nan|inf).*learning rate 1e\+12.*lower the model's learning_rate"):
        _fit(Regression(learning_rate=1e12), tmp_path)


def test_an_exploding_loss_stops_the_training(tmp_path):
    with pytest.raises(TrainingDiverged, match="diverged"):
        _fit(Regression(learning_rate=1e-4, scale=2.0), tmp_path)


def test_a_sound_training_is_not_stopped(tmp_path):
    _fit(Regression(learning_rate=1e-3), tmp_path)
