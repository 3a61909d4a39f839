"""The CSV metrics log of a training that is killed, resumed and rerun (core.training)."""
from __future__ import annotations

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from hpcml.core.training import build_trainer

TRAINING = {"accelerator": "cpu", "devices": 1, "precision": "32-true", "deterministic": True, "num_workers": 0}
EPOCHS = 4
STEPS_PER_EPOCH = 16


class Regression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class Killed(Exception):
    pass


class KillMidEpoch(pl.Callback):
    """Stands in for a wall-time kill late in an epoch, after some of its rows were logged
    (every 10 steps) and written (Lightning flushes the log when a run fails)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == STEPS_PER_EPOCH - 2:
            raise Killed


def _train(run_dir, callbacks=()):
    trainer, resume = build_trainer(run_dir, TRAINING, {"mode": "disabled"}, EPOCHS, 1, "test", callbacks=callbacks)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS_PER_EPOCH * 4, 3, generator=g)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    trainer.fit(Regression(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=16), ckpt_path=resume)
    return resume


def test_a_resumed_training_keeps_every_epoch_once_and_a_rerun_keeps_the_log(tmp_path):
    with pytest.raises(Killed):
        _train(tmp_path, [KillMidEpoch(epoch=2)])
    metrics = tmp_path / "csv" / "metrics.csv"
    before = pd.read_csv(metrics)
    assert before.epoch.max() == 2, "the killed epoch's first rows were written"

    assert _train(tmp_path) is not None
    log = pd.read_csv(metrics)
    steps = log.dropna(subset=["train_loss_step"])
    assert steps.step.is_monotonic_increasing and not steps.step.duplicated().any()
    assert log.dropna(subset=["val_loss"]).epoch.tolist() == list(range(EPOCHS))
    assert log.dropna(subset=["train_loss_epoch"]).epoch.tolist() == list(range(EPOCHS))
    pd.testing.assert_frame_equal(log[log.epoch < 2].reset_index(drop=True), before[before.epoch < 2].reset_index(drop=True), check_dtype=False)

    _train(tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(metrics), log)


def test_a_rerun_on_changed_data_starts_afresh_instead_of_resuming(tmp_path):
    """A checkpoint made on other data (more planets, a rebuilt data set) must not be resumed: its
    score would be the old model's, with no epoch trained on the new data."""
    data = tmp_path / "X.npy"
    data.write_bytes(b"first version")
    run = tmp_path / "run"

    def resume_point():
        return build_trainer(run, TRAINING, {"mode": "disabled"}, EPOCHS, 1, "test", data_files=[data])[1]

    assert resume_point() is None
    (run / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint")
    assert resume_point() is not None, "same settings and data: resumed"
    data.write_bytes(b"second version, more planets")
    assert resume_point() is None
    assert any(p.name.startswith("stale-") for p in run.iterdir()), "the old checkpoints are moved aside, not deleted"
