"""Lens models: label transforms follow the physics, the set model is equivariant and
order-free, every parameter learns, and a tiny training run lowers the loss; the CNN's
image augmentation turns the sky the way its labels turn."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hpcml.core import config
from hpcml.core.randomness import uniforms
from hpcml.lensing.cnn import LensCNN, aperture, move_images
from hpcml.lensing.conventions import q_phi_to_e1e2
from hpcml.lensing.model import LensParams, deflection, potential
from hpcml.lensing.networks import DenseBaseline, SetModel
from hpcml.lensing.observables import build
from hpcml.lensing.render import S_SRC_Q, render
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


def test_set_model_cannot_learn_h0_from_the_delays():
    """A universe with another H0 scales every delay by one factor: the set model's
    predictions must not change, or the H0 it helps infer would echo the simulation's."""
    model = SetModel(SCALING, TARGETS, 4, 1e-3).eval()
    images, mask, lens = _batch()[:3]
    faster = images.clone()
    faster[..., 2] *= 67.7 / 73.0
    assert torch.allclose(model.predict_physical(faster, mask, lens)[0].nan_to_num(), model.predict_physical(images, mask, lens)[0].nan_to_num(), atol=1e-6)
    baseline = DenseBaseline(SCALING, TARGETS, 4, 1e-3, n_images=4).eval()
    assert not torch.allclose(baseline.predict_physical(faster, mask, lens)[0].nan_to_num(), baseline.predict_physical(images, mask, lens)[0].nan_to_num())


def _fermat_population(n: int, h0: float, h0_sim: float, seed: int, f: float = 0.03) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Lenses as a network trained with a Gaussian likelihood sees them: given the images, the
    true dPhi scatters about the prediction by twice the stated spread, and the predictions run
    3% high (an overconfident, biased model, which the validation split calibrates); delays
    measured in a universe at ``h0``."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.05, 1.5, n)
    s = mu * rng.uniform(0.03, 0.15, n)
    truth = mu + 2 * s * rng.standard_normal(n)
    distance = rng.uniform(1500, 5000, n)
    per_arcsec2 = hubble_days_per_mpc_arcsec2() * distance * h0_sim / h0
    delay = per_arcsec2 * truth * (1 + f * rng.standard_normal(n))
    table = pd.DataFrame({"row": np.arange(n), "n_images": 2, "mu": 1.03 * mu, "s": s, "truth": truth, "delay": delay})
    return table.iloc[: n // 2], table.iloc[n // 2:], distance


def hubble_days_per_mpc_arcsec2() -> float:
    from hpcml.lensing.cosmology import delay_days_per_arcsec2

    return float(delay_days_per_arcsec2(1.0))


@pytest.mark.parametrize("h0_true", [67.66, 73.0])
def test_population_h0_is_unbiased_and_its_intervals_cover(h0_true):
    from hpcml.lensing.hubble import calibrate, infer

    val, test, distance = _fermat_population(4000, h0_true, 67.66, seed=int(h0_true))
    calibration = calibrate(val, probabilistic=True)
    fit = calibration["by_image_count"]["2"]
    assert 1.8 < fit["spread"] < 2.2 and abs(fit["scale"] * 1.03 - 1) < 3 * fit["scale_error"]
    lenses, result = infer(test, calibration, 0.03, h0_true, hubble_days_per_mpc_arcsec2(), distance * 67.66 / h0_true, (20, 200))
    assert result["n_lenses"] == 2000 and result["h0_error"] < 0.01 * h0_true
    assert abs(result["bias_in_sigma"]) < 3, result
    assert 0.63 <= result["coverage_68"] <= 0.73, result
    pulls = [p["bias_in_sigma"] for p in result["populations_of_200"]]
    assert len(pulls) == 10 and np.sqrt(np.mean(np.square(pulls))) < 2, pulls
    assert lenses.h0.between(20, 200).all()
    assert calibrate(val.assign(mu=-val.mu), probabilistic=True) is None
    assert "lensing.n_lenses" in infer(test, None, 0.03, h0_true, hubble_days_per_mpc_arcsec2(), distance, (20, 200))[1]["reason"]
    with pytest.raises(ValueError, match="lensing.models.h0.range"):
        infer(test, calibration, 0.03, h0_true, hubble_days_per_mpc_arcsec2(), distance, (80, 200))


def test_paired_comparison_names_a_winner_only_beyond_the_test_noise():
    from hpcml.lensing.compare import tally, versus

    rng = np.random.default_rng(3)
    n = 3000
    truth = rng.normal(size=(n, 2))
    n_images = np.where(np.arange(n) < 2000, 2, 1)
    shared = rng.normal(size=(n, 2))
    better = truth + 0.5 * shared  # 1.0 * shared below: a clearly larger error on target 0 ...
    worse = truth + np.column_stack([1.0 * shared[:, 0], 0.5 * shared[:, 1] + 1e-3 * rng.normal(size=n)])  # ... a hair's on 1
    rows = np.arange(n)
    order = rng.permutation(n)  # the reference predicts the same lenses in another order, and one lens fewer
    stack = lambda mean: np.stack([mean, np.full_like(mean, np.nan)], axis=-1)  # noqa: E731
    result = versus(stack(better), rows, stack(worse)[order[1:]], rows[order[1:]], truth, n_images, ["a", "b"])
    assert tally(result) == {"1": {"lower": 1, "tie": 1, "higher": 0}, "2": {"lower": 1, "tie": 1, "higher": 0}}
    assert result["2"]["a"]["rmse"] == pytest.approx(0.5, rel=0.05) and result["2"]["a"]["rmse_reference"] == pytest.approx(1.0, rel=0.05)
    swapped = versus(stack(worse), rows, stack(better), rows, truth, n_images, ["a", "b"])
    assert swapped["2"]["a"]["verdict"] == "higher"


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


# -- CNN on rendered images ----------------------------------------------------
RENDER = {"size": 16, "pixel_scale": 0.1, "supersample": 2, "psf_fwhm": 0.1, "noise_sigma": 0.0, "source_r_eff": 0.15, "source_n": 1.5}


def _cnn_batch(n: int = 4, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.cat([torch.zeros(n, 2), 0.35 + 0.1 * torch.randn(n, 1, generator=g), 2 + 0.5 * torch.randn(n, 1, generator=g)], dim=1)
    return torch.rand(n, size, size, generator=g), lens, torch.randn(n, 5, generator=g)


def test_image_rotation_of_the_augmentation_is_the_sky_rotation_of_the_labels():
    """A rendered lens turned 90 degrees by the augmentation equals the lens rendered with its
    position angle +90, its shear and its source position rotated as the labels are; the
    other direction does not. The source (whose own orientation render draws from the lens
    index) is one the stream makes round, so turning the lens turns the whole sky."""
    seed = 7
    index = np.array([int(np.argmax(uniforms(seed, np.arange(2000), S_SRC_Q)))])
    assert 0.5 + 0.5 * uniforms(seed, index, S_SRC_Q)[0] > 0.999
    a = math.pi / 2
    g1, g2, bx, by = np.array([0.05]), np.array([-0.02]), np.array([0.12]), np.array([0.05])
    sky = render(LensParams(np.array([1.1]), np.array([0.7]), np.array([0.4]), g1, g2), bx, by, seed, index, RENDER)
    turned = render(LensParams(np.array([1.1]), np.array([0.7]), np.array([0.4 + a]), *rotate_spin2(g1, g2, a)), *rotate(bx, by, a), seed, index, RENDER)
    disc = aperture(RENDER["size"], torch.device("cpu"))
    expected = torch.from_numpy(turned) * disc
    for angle, matches in ((a, True), (-a, False)):
        moved = move_images(torch.from_numpy(sky), torch.tensor([angle]), torch.zeros(1, 2)) * disc
        assert (torch.abs(moved - expected).max() < 1e-3 * expected.max()) == matches


def test_image_translation_moves_the_sky_along_x_and_y():
    """Columns run along +x and rows along +y (render.pixel_grid): a shift of (+2, -1) pixels
    moves content two columns right and one row down; sub-pixel shifts interpolate."""
    images = torch.zeros(1, 16, 16)
    images[0, 8, 5] = 1.0
    moved = move_images(images, torch.zeros(1), torch.tensor([[2.0, -1.0]]))
    assert moved[0, 7, 7] == pytest.approx(1.0, abs=1e-6) and moved.sum() == pytest.approx(1.0, abs=1e-6)
    half = move_images(images, torch.zeros(1), torch.tensor([[0.5, 0.0]]))
    assert half[0, 8, 5] == pytest.approx(0.5, abs=1e-6) and half[0, 8, 6] == pytest.approx(0.5, abs=1e-6)


def test_cnn_transform_rotates_labels_and_keeps_the_prediction_layout():
    model = LensCNN(SCALING, TARGETS, 4, 1e-3, pixel_scale=0.1).eval()
    batch = _cnn_batch()
    angle = torch.full((4,), math.pi / 2)
    moved = model.transform(batch, angle, torch.zeros(4, 2))
    assert torch.allclose(moved[2], model.rotate_targets(batch[2], angle))
    assert torch.allclose(moved[1][:, 2:], batch[1][:, 2:])
    out = model.predict_step(batch[:2], 0)
    assert out.shape == (4, 5 + 3 * 4, 2)
    assert torch.isfinite(out[:, :5]).all() and (out[:, :5, 1] > 0).all() and torch.isnan(out[:, 5:]).all()


def test_every_cnn_parameter_gets_a_gradient():
    model = LensCNN(SCALING, TARGETS, 4, 1e-3, pixel_scale=0.1)
    optimiser = model.configure_optimizers()
    assert {id(p) for g in optimiser.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    assert model.backbone.conv1.in_channels == 1
    model.loss(model.augmented(_cnn_batch())).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing


def test_tiny_cnn_training_runs_through_the_shared_path(tiny_lens_data, tmp_path):
    """Images from another folder (the catalogue's render.npy) line up with the dataset's rows;
    a mismatched file is refused."""
    data, cfg = tiny_lens_data
    n = len(np.load(data / "targets.npy"))
    rng = np.random.default_rng(0)
    np.save(tmp_path / "render.npy", rng.random((n, 16, 16), dtype=np.float32))
    cfg = config.validate({**cfg, "wandb": {"mode": "disabled"}, "training": {"num_workers": 0},
                           "lensing": {**cfg["lensing"], "models": {**cfg["lensing"]["models"], "cnn": {"max_epochs": 1, "batch_size": 64}}}})
    train_model("cnn", data, tmp_path / "cnn", cfg, render=tmp_path / "render.npy")
    pred = np.load(tmp_path / "cnn" / "pred_test.npy")
    assert pred.shape == (len(np.load(tmp_path / "cnn" / "rows_test.npy")), 5 + 3 * 4, 2)
    assert np.isfinite(pred[:, :5]).all() and np.isnan(pred[:, 5:]).all()
    assert json.loads((tmp_path / "cnn" / "equivariance.json").read_text())["n_systems"] > 0
    np.save(tmp_path / "short.npy", np.zeros((n - 1, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="different catalogues"):
        train_model("cnn", data, tmp_path / "cnn2", cfg, render=tmp_path / "short.npy")
