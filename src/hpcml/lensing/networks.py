"""Networks that infer lens parameters, per-image potentials and deflections from observables.

Batches hold physical units: ``images`` [B, M, 4] (x, y, delay, log flux ratio),
``mask`` [B, M], ``lens`` [B, 4] (centre x0, y0, z_lens, z_src), ``targets`` [B, T],
``image_targets`` [B, M, 3] (potential, alpha_x, alpha_y). Each model normalises with
the scales fitted on the training split (buffers, saved in its checkpoints) and
predicts physical values, so every number reported downstream is in physical units.

- :class:`DenseBaseline`, the group's reference: one dense network per image count on
  the flattened observables, trained with random rotations and translations that move
  the labels with the sky.
- :class:`SetModel`: one network for any number of images. It works in a canonical
  frame (lens centre at the origin, first-arriving image on the +x axis) and rotates
  its outputs back, so it is equivariant to rotations and translations by construction;
  a permutation-invariant encoder with masking reads the images; it predicts a mean and
  a standard deviation per target (Gaussian negative log-likelihood). It reads the delays
  only as ratios to the longest one: delays scale as 1/H0, so absolute delays would let it
  learn the simulation's H0 and hand it back to the H0 inference (a circular estimate);
  ratios keep what delays say about the lens shape and nothing about H0.

:mod:`hpcml.lensing.cnn` adds a CNN on rendered images on the same base.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from hpcml.lensing.observables import ARRAYS
from hpcml.lensing.symmetry import rotate, rotate_spin2, spin2_partner

Batch = tuple[torch.Tensor, ...]
# Log-variances are kept where exp() neither underflows the loss nor explodes it.
LOGVAR_RANGE = (-12, 8)


def mlp(n_in: int, width: int, n_out: int, depth: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(depth):
        layers += [nn.Linear(n_in if k == 0 else width, width), nn.GELU()]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (constant dropped), over the entries ``weight`` keeps."""
    nll = 0.5 * (logvar + (mean - labels) ** 2 * torch.exp(-logvar))
    return nll.mean() if weight is None else (nll * weight).sum() / weight.sum()


class LensModel(pl.LightningModule, ABC):
    """What every lens model shares: scaling, label-aware augmentation, losses, predict.

    ``batch_names`` are the dataset arrays of a training batch, in order; a prediction
    batch holds the first ``len(input_names)`` of them.
    """

    probabilistic = False
    batch_names: tuple[str, ...] = ARRAYS
    input_names: tuple[str, ...] = ARRAYS[:3]

    def __init__(self, scaling: dict[str, Any], targets: list[str], max_images: int, learning_rate: float, augment: bool, shift: float) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.targets, self.m = list(targets), max_images
        t = scaling["targets"]
        self.register_buffer("t_mean", torch.tensor([t[n][0] for n in targets], dtype=torch.float32))
        self.register_buffer("t_std", torch.tensor([t[n][1] for n in targets], dtype=torch.float32))
        self.register_buffer("i_mean", torch.tensor([scaling["potential"][0], 0.0, 0.0]))
        self.register_buffer("i_std", torch.tensor([scaling["potential"][1], scaling["deflection"], scaling["deflection"]]))
        self.pos, self.delay, self.flux = scaling["position"], scaling["delay"], scaling["flux"]
        self.register_buffer("z_mean", torch.tensor([scaling["z"][0][0], scaling["z"][1][0]]))
        self.register_buffer("z_std", torch.tensor([scaling["z"][0][1], scaling["z"][1][1]]))
        self.pairs = [(k, targets.index(spin2_partner(n)[0])) for k, n in enumerate(targets) if spin2_partner(n) and spin2_partner(n)[1] == 0]

    @property
    def n_out(self) -> int:
        return len(self.targets) + 3 * self.m

    # -- symmetry -------------------------------------------------------------
    def transform(self, batch: Batch, angle: torch.Tensor, shift: torch.Tensor) -> Batch:
        """The same systems seen on a sky rotated by ``angle`` [B] and then shifted by ``shift`` [B, 2]."""
        images, mask, lens, targets, image_targets = batch
        a = angle[:, None]
        x, y = rotate(images[..., 0], images[..., 1], a)
        images = torch.stack([x + shift[:, :1], y + shift[:, 1:], images[..., 2], images[..., 3]], dim=-1) * mask[..., None]
        return images, mask, self.move_lens(lens, angle, shift), self.rotate_targets(targets, angle), self.rotate_image_targets(image_targets, angle)

    @staticmethod
    def move_lens(lens: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Lens rows [B, 4] (x0, y0, z_lens, z_src): the centre rotates and shifts, the redshifts stay."""
        x0, y0 = rotate(lens[:, 0], lens[:, 1], angle)
        return torch.stack([x0 + shift[:, 0], y0 + shift[:, 1], lens[:, 2], lens[:, 3]], dim=-1)

    def rotate_targets(self, targets: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        targets = targets.clone()
        for i, j in self.pairs:
            targets[:, i], targets[:, j] = rotate_spin2(targets[:, i], targets[:, j], angle)
        return targets

    def rotate_image_targets(self, image_targets: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        ax, ay = rotate(image_targets[..., 1], image_targets[..., 2], angle[:, None])
        return torch.stack([image_targets[..., 0], ax, ay], dim=-1)

    def augmented(self, batch: Batch) -> Batch:
        n = len(batch[0])
        angle = torch.rand(n, device=self.device) * 2 * math.pi
        shift = (torch.rand(n, 2, device=self.device) * 2 - 1) * self.hparams.shift
        return self.transform(batch, angle, shift)

    # -- normalisation --------------------------------------------------------
    def image_features(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        delay = self.delay_feature(images[..., 2], mask)
        flux = (images[..., 3] - self.flux[0]) / self.flux[1]
        return torch.stack([images[..., 0] / self.pos, images[..., 1] / self.pos, delay, flux], dim=-1) * mask[..., None]

    def delay_feature(self, delay: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Delays as measured (days, log-scaled): the group's choice, which lets a network learn the
        simulation's H0 from delays and redshifts."""
        return (torch.log1p(delay.clamp(min=0)) - self.delay[0]) / self.delay[1]

    def redshifts(self, lens: torch.Tensor) -> torch.Tensor:
        return (lens[:, 2:] - self.z_mean) / self.z_std

    def normalised_labels(self, targets: torch.Tensor, image_targets: torch.Tensor) -> torch.Tensor:
        t = (targets - self.t_mean) / self.t_std
        i = (image_targets - self.i_mean) / self.i_std
        return torch.cat([t, i.flatten(1)], dim=1)

    def physical(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised outputs [B, n_out] -> (lens targets [B, T], image targets [B, M, 3])."""
        t = out[:, : len(self.targets)] * self.t_std + self.t_mean
        i = out[:, len(self.targets):].view(-1, self.m, 3) * self.i_std + self.i_mean
        return t, i

    # -- training -------------------------------------------------------------
    def label_mask(self, mask: torch.Tensor) -> torch.Tensor:
        lens = torch.ones(len(mask), len(self.targets), device=mask.device)
        return torch.cat([lens, mask.float().repeat_interleave(3, dim=1)], dim=1)

    @abstractmethod
    def loss(self, batch: Batch) -> torch.Tensor:
        """Training objective on normalised labels (image labels masked)."""

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.augmented(batch) if self.hparams.augment else batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=len(batch[0]), sync_dist=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.log("val_loss", self.loss(batch), on_epoch=True, batch_size=len(batch[0]), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate, weight_decay=1e-4)

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """[B, T + 3M, 2]: physical mean and standard deviation (NaN where a model has none)."""
        mean, std = self.predict_physical(*batch[: len(self.input_names)])
        return torch.stack([mean, std], dim=-1)

    @abstractmethod
    def predict_physical(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical means and standard deviations [B, T + 3M] (NaN for absent images) from the
        arrays named ``input_names``."""

    def _flat(self, t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, i.flatten(1)], dim=1)


class DenseBaseline(LensModel):
    """The group's model for systems of exactly ``n_images`` images."""

    def __init__(self, scaling: dict[str, Any], targets: list[str], max_images: int, learning_rate: float, n_images: int,
                 width: int = 128, augment: bool = True, shift: float = 0.2) -> None:
        super().__init__(scaling, targets, max_images, learning_rate, augment, shift)
        self.k = n_images
        self.net = mlp(4 * n_images + 4, width, len(targets) + 3 * n_images)

    def _forward(self, images: torch.Tensor, mask: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        feats = self.image_features(images, mask)[:, : self.k].flatten(1)
        return self.net(torch.cat([feats, lens[:, :2] / self.pos, self.redshifts(lens)], dim=1))

    def _padded(self, out: torch.Tensor) -> torch.Tensor:
        pad = out.new_zeros(len(out), 3 * (self.m - self.k))
        return torch.cat([out, pad], dim=1)

    def loss(self, batch: Batch) -> torch.Tensor:
        images, mask, lens, targets, image_targets = batch
        weight = self.label_mask(mask)
        error = (self._padded(self._forward(images, mask, lens)) - self.normalised_labels(targets, image_targets)) ** 2
        return (error * weight).sum() / weight.sum()

    def predict_physical(self, images: torch.Tensor, mask: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, i = self.physical(self._padded(self._forward(images, mask, lens)))
        mean = self._flat(t, torch.where(mask[..., None].bool(), i, torch.nan))
        return mean, torch.full_like(mean, torch.nan)


class SetModel(LensModel):
    """Any number of images: canonical frame, masked set encoder, Gaussian outputs."""

    probabilistic = True

    def __init__(self, scaling: dict[str, Any], targets: list[str], max_images: int, learning_rate: float,
                 width: int = 128, augment: bool = False, shift: float = 0.2) -> None:
        super().__init__(scaling, targets, max_images, learning_rate, augment, shift)
        n_in = 4 + 2 + 1
        self.encode = mlp(n_in, width, width, depth=2)
        self.interact = mlp(2 * width, width, width, depth=2)
        self.lens_head = mlp(2 * width + 3, width, 2 * len(targets), depth=2)
        self.image_head = mlp(2 * width, width, 6, depth=2)

    @staticmethod
    def frame(images: torch.Tensor, mask: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Angle of the first-arriving image (the smallest delay, wherever it sits in the
        array, so the order of the images does not matter) about the lens centre, and the centre."""
        first = images[..., 2].masked_fill(~mask.bool(), torch.inf).argmin(1)
        pick = images[torch.arange(len(images), device=images.device), first]
        return torch.atan2(pick[:, 1] - lens[:, 1], pick[:, 0] - lens[:, 0]), lens[:, :2]

    def delay_feature(self, delay: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each delay over the system's longest (0 for a single image): unchanged when H0 changes."""
        delay = delay.clamp(min=0) * mask
        longest = delay.amax(1, keepdim=True)
        return torch.where(longest > 0, delay / longest.clamp(min=1e-30), torch.zeros_like(delay))

    def _pool(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = mask[..., None].float()
        return (h * w).sum(1) / w.sum(1).clamp(min=1)

    def _forward(self, images: torch.Tensor, mask: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised mean and log-variance [B, n_out] in the canonical frame."""
        angle, centre = self.frame(images, mask, lens)
        x, y = rotate(images[..., 0] - centre[:, :1], images[..., 1] - centre[:, 1:], -angle[:, None])
        canon = torch.stack([x, y, images[..., 2], images[..., 3]], dim=-1)
        count = mask.float().sum(1, keepdim=True) / self.m
        z = self.redshifts(lens)
        per_image = torch.cat([self.image_features(canon, mask), z[:, None].expand(-1, self.m, -1), count[:, None].expand(-1, self.m, -1)], dim=-1)
        h = self.encode(per_image)
        h = self.interact(torch.cat([h, self._pool(h, mask)[:, None].expand(-1, self.m, -1)], dim=-1)) + h
        pooled = torch.cat([self._pool(h, mask), h.masked_fill(~mask[..., None].bool(), -1e4).amax(1)], dim=1)
        lens_out = self.lens_head(torch.cat([pooled, z, count], dim=1)).view(-1, len(self.targets), 2)
        image_out = self.image_head(torch.cat([h, pooled[:, None, : h.shape[-1]].expand(-1, self.m, -1)], dim=-1)).view(-1, self.m, 3, 2)
        mean = torch.cat([lens_out[..., 0], image_out[..., 0].flatten(1)], dim=1)
        logvar = torch.cat([lens_out[..., 1], image_out[..., 1].flatten(1)], dim=1).clamp(*LOGVAR_RANGE)
        return mean, logvar

    def loss(self, batch: Batch) -> torch.Tensor:
        images, mask, lens, targets, image_targets = batch
        angle, _ = self.frame(images, mask, lens)
        labels = self.normalised_labels(self.rotate_targets(targets, -angle), self.rotate_image_targets(image_targets, -angle))
        mean, logvar = self._forward(images, mask, lens)
        return gaussian_nll(mean, logvar, labels, self.label_mask(mask))

    def predict_physical(self, images: torch.Tensor, mask: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angle, _ = self.frame(images, mask, lens)
        mean, logvar = self._forward(images, mask, lens)
        t, i = self.physical(mean)
        t, i = self.rotate_targets(t, angle), self.rotate_image_targets(i, angle)
        var_t = torch.exp(logvar[:, : len(self.targets)]) * self.t_std**2
        var_i = torch.exp(logvar[:, len(self.targets):]).view(-1, self.m, 3) * self.i_std**2
        var_t, var_i = self._rotate_variances(var_t, var_i, angle)
        keep = mask[..., None].bool()
        mean = self._flat(t, torch.where(keep, i, torch.nan))
        std = self._flat(var_t.sqrt(), torch.where(keep, var_i.sqrt(), torch.nan))
        return mean, std

    def _rotate_variances(self, var_t: torch.Tensor, var_i: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Marginal variances of components after rotating independent canonical-frame errors."""
        var_t = var_t.clone()
        c2, s2 = torch.cos(2 * angle) ** 2, torch.sin(2 * angle) ** 2
        for i, j in self.pairs:
            var_t[:, i], var_t[:, j] = c2 * var_t[:, i] + s2 * var_t[:, j], s2 * var_t[:, i] + c2 * var_t[:, j]
        c, s = torch.cos(angle)[:, None] ** 2, torch.sin(angle)[:, None] ** 2
        vx, vy = var_i[..., 1], var_i[..., 2]
        return var_t, torch.stack([var_i[..., 0], c * vx + s * vy, s * vx + c * vy], dim=-1)
