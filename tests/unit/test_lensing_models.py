"""Lens models: label transforms follow the physics, the set model is equivariant and
order-free, every parameter learns, and a tiny training run lowers the loss."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hpcml.core import config
from hpcml.lensing.conventions import q_phi_to_e1e2
from hpcml.lensing.model import LensParams, deflection, potential
from hpcml.lensing.networks import DenseBaseline, SetModel
from hpcml.lensing.observables import build
from hpcml.lensing.simulate import LensInputs, simulate_family
from hpcml.lensing.symmetry import rotate, rotate_spin2
from hpcml.lensing.train import train_model

TARGETS = ["theta_e", "e1", "e2", "gamma1", "gamma2"]
SCALING = {"position": 1.0, "delay": [0.0, 1.0], "flux": [0.0, 1.0], "z": [[0.35, 0.1], [2.0, 0.5]], "potential": [1.0, 1.0],
           "deflection": 1.0, "targets": {"theta_e": [1.2, 0.1], "e1": [0.0, 0.2], "e2": [0.0, 0.2], "gamma1": [0.0, 0.05], "gamma2": [0.0, 0.05]}}


def _batch(n: int = 6, m: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, m, 4, generator=g)
    images[..., 2] = torch.rand(n, m, generator=g) * 30
    images[:, 0, 2] = 0.0
    mask = torch.ones(n, m, dtype=torch.bool)
    mask[: n // 2, 2:] = False
    images = images * mask[..., None]
    return images, mask, torch.randn(n, 4, generator=g), torch.randn(n, 5, generator=g), torch.randn(n, m, 3, generator=g)


def test_label_transforms_match_hand_computed_rotations():
    assert np.allclose(rotate(1.0, 0.0, math.pi / 2), (0.0, 1.0))
    assert np.allclose(rotate_spin2(0.1, 0.0, math.pi / 4), (0.0, 0.1))
    assert np.allclose(rotate_spin2(0.1, 0.0, math.pi / 2), (-0.1, 0.0))
    model = DenseBaseline(SCALING, TARGETS, 4, 1e-3, n_images=4)
    images = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 5.0, 0.3], [0, 0, 0, 0], [0, 0, 0, 0]]])
    mask = torch.tensor([[True, True, False, False]])
    lens = torch.tensor([[0.01, 0.0, 0.3, 2.0]])
    targets = torch.tensor([[1.1, 0.2, 0.0, 0.05, 0.0]])
    image_targets = torch.tensor([[[0.7, 1.0, 0.0], [0.9, 0.0, 1.0], [0, 0, 0], [0, 0, 0]]])
    out = model.transform((images, mask, lens, targets, image_targets), torch.tensor([math.pi / 2]), torch.tensor([[0.5, -0.5]]))
    assert torch.allclose(out[0][0, :2], torch.tensor([[0.5, 0.5, 0.0, 0.0], [-1.5, -0.5, 5.0, 0.3]]), atol=1e-6)
    assert torch.allclose(out[2], torch.tensor([[0.5, -0.49, 0.3, 2.0]]), atol=1e-6)
    assert torch.allclose(out[3], torch.tensor([[1.1, -0.2, 0.0, -0.05, 0.0]]), atol=1e-6)
    assert torch.allclose(out[4][0, :2], torch.tensor([[0.7, 0.0, 1.0], [0.9, -1.0, 0.0]]), atol=1e-6)


def test_rotation_law_is_the_physics_of_an_sie_with_shear():
    """Rotating the lens (position angles +a) deflects rotated rays by the rotated deflection,
    keeps the potential, and turns (e1, e2) and (gamma1, gamma2) by 2a."""
    a = 0.7
    q, phi = np.array([0.7]), np.array([0.3])
    g1, g2 = np.array([0.04]), np.array([-0.02])
    lens = LensParams(np.array([1.2]), q, phi, g1, g2)
    rg1, rg2 = rotate_spin2(g1, g2, a)
    turned = LensParams(np.array([1.2]), q, phi + a, rg1, rg2)
    x, y = np.array([0.9]), np.array([-0.4])
    rx, ry = rotate(x, y, a)
    assert np.allclose(deflection(rx, ry, turned), rotate(*deflection(x, y, lens), a))
    assert np.allclose(potential(rx, ry, turned), potential(x, y, lens))
    assert np.allclose(q_phi_to_e1e2(q, phi + a), rotate_spin2(*q_phi_to_e1e2(q, phi), a))


def test_set_model_is_equivariant_and_ignores_image_order():
    torch.manual_seed(0)
    model = SetModel(SCALING, TARGETS, 4, 1e-3).eval()
    batch = _batch()
    mean, std = model.predict_physical(*batch[:3])
    angle, shift = torch.rand(6) * 6.28, torch.randn(6, 2)
    moved = model.transform(batch, angle, shift)
    mean_moved, _ = model.predict_physical(*moved[:3])
    assert torch.allclose(mean_moved[:, :5], model.rotate_targets(mean[:, :5], angle), atol=1e-5)
    image = model.rotate_image_targets(mean[:, 5:].view(6, 4, 3), angle)
    assert torch.allclose(mean_moved[:, 5:].view(6, 4, 3).nan_to_num(), image.nan_to_num(), atol=1e-5)
    order = torch.tensor([1, 0, 3, 2])
    shuffled = (batch[0][:, order], batch[1][:, order], batch[2])
    mean_shuffled, std_shuffled = model.predict_physical(*shuffled)
    assert torch.allclose(mean_shuffled[:, :5], mean[:, :5], atol=1e-5) and torch.allclose(std_shuffled[:, :5], std[:, :5], atol=1e-5)
    assert torch.allclose(mean_shuffled[:, 5:].view(6, 4, 3).nan_to_num(), mean[:, 5:].view(6, 4, 3)[:, order].nan_to_num(), atol=1e-5)


@pytest.mark.parametrize("model", [SetModel(SCALING, TARGETS, 4, 1e-3), DenseBaseline(SCALING, TARGETS, 4, 1e-3, n_images=2)])
def test_every_trainable_parameter_gets_a_gradient(model):
    optimiser = model.configure_optimizers()
    assert {id(p) for g in optimiser.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    model.loss(model.augmented(_batch())).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing


@pytest.fixture(scope="module")
def tiny_lens_data(tmp_path_factory):
    cfg = config.validate({"lensing": {"render": {"enabled": False}, "models": {"splits": {"n_folds": 4}}}})
    settings, seed = cfg["lensing"], cfg["seed"]
    inputs = LensInputs(settings, seed)
    result = simulate_family(inputs.draws(0, 400), "both", inputs)
    root = tmp_path_factory.mktemp("lensdata")
    catalog = root / "catalog"
    catalog.mkdir()
    result["lenses"].to_parquet(catalog / "lenses.parquet")
    result["images"].to_parquet(catalog / "images.parquet")
    build(catalog, settings["models"], seed, root / "data")
    return root / "data", cfg


def test_tiny_training_lowers_the_loss(tiny_lens_data, tmp_path):
    data, cfg = tiny_lens_data
    cfg = config.validate({**cfg, "wandb": {"mode": "disabled"}, "training": {"num_workers": 0},
                           "lensing": {**cfg["lensing"], "models": {**cfg["lensing"]["models"], "set": {"max_epochs": 12, "batch_size": 64, "learning_rate": 3e-3}}}})
    train_model("set", data, tmp_path / "set", cfg)
    log = pd.read_csv(tmp_path / "set" / "csv" / "metrics.csv").dropna(subset=["train_loss"])
    assert log.train_loss.iloc[-1] < log.train_loss.iloc[0] - 0.3
    pred = np.load(tmp_path / "set" / "pred_test.npy")
    rows = np.load(tmp_path / "set" / "rows_test.npy")
    assert pred.shape == (len(rows), 5 + 3 * 4, 2) and np.isfinite(pred[:, :5]).all()
    assert set(rows).isdisjoint(np.load(tmp_path / "set" / "rows_val.npy"))
