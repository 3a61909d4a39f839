"""A CNN that infers the lens from its rendered image and the two redshifts.

torchvision's ResNet-18 (``weights=None``: nothing is downloaded) with a one-channel
stem reads the image; its pooled features and the normalised redshifts feed a small
head that predicts a mean and a log-variance per lens target (Gaussian negative
log-likelihood, as the set model). It predicts no per-image quantities: those outputs
are NaN, so its predictions keep the other models' layout [N, T + 3M, 2].

Augmentation is label-aware and runs on the training device on whole batches: each
image is the same sky rotated by a random angle and shifted by a random sub-pixel
offset (bilinear resampling); the spin-2 targets turn by twice the angle, scalars and
redshifts stay, translations change no lens target. Every image, augmented or not, is
seen through the circular aperture inscribed in it, so a rotation never shows the
network an empty corner that an unrotated test image would fill.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from hpcml.lensing.networks import LOGVAR_RANGE, Batch, LensModel, gaussian_nll, mlp

RENDER = "render"


def move_images(images: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Square images [B, N, N] of the sky rotated counter-clockwise by ``angle`` [B] and then
    shifted by ``shift`` [B, 2] pixels (x, y): I'(r) = I(R(-a) (r - t)) about the image centre.

    Pixels are laid out as :func:`hpcml.lensing.render.pixel_grid` renders them: column j
    at x_j, row i at y_i, both increasing with the index. ``affine_grid`` runs its first
    coordinate along columns and its second along rows, from -1 to 1 across the whole
    image (``align_corners=False``), so (x, y) map onto it without a flip, at 2/N per pixel.
    """
    n = images.shape[-1]
    if images.shape[-2] != n:
        raise ValueError(f"rendered images must be square, got {tuple(images.shape[-2:])}")
    c, s = torch.cos(angle), torch.sin(angle)
    inverse = torch.stack([torch.stack([c, s], dim=-1), torch.stack([-s, c], dim=-1)], dim=1)
    offset = -(inverse @ (shift * (2 / n))[..., None])
    grid = F.affine_grid(torch.cat([inverse, offset], dim=2), [len(images), 1, n, n], align_corners=False)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def aperture(n: int, device: torch.device) -> torch.Tensor:
    """The disc of diameter ``n`` pixels inscribed in an n x n image, as 0/1 weights."""
    c = torch.arange(n, device=device) - (n - 1) / 2
    return ((c[:, None] ** 2 + c[None, :] ** 2) <= (n / 2) ** 2).float()


class LensCNN(LensModel):
    """ResNet-18 on the rendered image, plus both redshifts; Gaussian outputs for the lens targets.

    ``shift`` (arcsec, as the baselines') bounds the random translations per axis;
    ``pixel_scale`` (arcsec per pixel) converts it to pixels.
    """

    probabilistic = True
    batch_names = (RENDER, "lens", "targets")
    input_names = (RENDER, "lens")

    def __init__(self, scaling: dict[str, Any], targets: list[str], max_images: int, learning_rate: float, pixel_scale: float,
                 width: int = 128, augment: bool = True, shift: float = 0.1) -> None:
        super().__init__(scaling, targets, max_images, learning_rate, augment, shift)
        self.backbone = resnet18(weights=None, num_classes=width)
        stem = self.backbone.conv1
        self.backbone.conv1 = nn.Conv2d(1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
        self.head = mlp(width + 2, width, 2 * len(targets), depth=2)

    def transform(self, batch: Batch, angle: torch.Tensor, shift: torch.Tensor) -> Batch:
        """The same systems seen on a sky rotated by ``angle`` [B] and then shifted by ``shift`` [B, 2] arcsec."""
        render, lens, targets = batch
        moved = move_images(render, angle, shift / self.hparams.pixel_scale)
        return moved, self.move_lens(lens, angle, shift), self.rotate_targets(targets, angle)

    def _forward(self, render: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised means and log-variances [B, T] of the lens targets."""
        seen = render * aperture(render.shape[-1], render.device)
        features = F.gelu(self.backbone(seen[:, None]))
        out = self.head(torch.cat([features, self.redshifts(lens)], dim=1)).view(-1, len(self.targets), 2)
        return out[..., 0], out[..., 1].clamp(*LOGVAR_RANGE)

    def loss(self, batch: Batch) -> torch.Tensor:
        render, lens, targets = batch
        mean, logvar = self._forward(render, lens)
        return gaussian_nll(mean, logvar, (targets - self.t_mean) / self.t_std)

    def predict_physical(self, render: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self._forward(render, lens)
        none = mean.new_full((len(mean), self.m, 3), torch.nan)
        return self._flat(mean * self.t_std + self.t_mean, none), self._flat(torch.exp(0.5 * logvar) * self.t_std, none)
