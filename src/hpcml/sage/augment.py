"""Random resized crop and horizontal flip, identical for both modalities, on whole batches on the device.

One affine map per pair (``F.affine_grid``) samples the same region of the RGB and the
thermal image, whatever their channel count or resolution: the map works in normalised
coordinates ([-1, 1] across each image). No per-sample Python loop, no host round trip.
The crop follows torchvision's ``RandomResizedCrop``: an area fraction drawn uniformly from
``scale``, an aspect ratio (relative to the image's) drawn log-uniformly from 3/4 to 4/3,
a position uniform among those that keep the crop inside the image; the flip is a sign.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

RATIO = (3 / 4, 4 / 3)


def crop_flip_maps(n: int, scale: Sequence[float], device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` affine maps [n, 2, 3] from output to input coordinates: a random crop, flipped horizontally with probability 1/2."""
    u = torch.rand(n, 5, device=device, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    ratio = torch.exp(math.log(RATIO[0]) + (math.log(RATIO[1]) - math.log(RATIO[0])) * u[:, 1])
    width, height = torch.sqrt(area * ratio).clamp(max=1), torch.sqrt(area / ratio).clamp(max=1)
    cx, cy = (2 * u[:, 2] - 1) * (1 - width), (2 * u[:, 3] - 1) * (1 - height)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    zero = torch.zeros_like(width)
    return torch.stack([torch.stack([width * flip, zero, cx], dim=-1), torch.stack([zero, height, cy], dim=-1)], dim=1)


def resample(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """``images`` [n, C, H, W] seen through ``maps`` (bilinear), at their own size."""
    grid = F.affine_grid(maps.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def same_crop_flip(images: Sequence[torch.Tensor], maps: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every tensor in ``images`` (one per modality, same pairs in the same order) through the same ``maps``."""
    return tuple(resample(x, maps) for x in images)
