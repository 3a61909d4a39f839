"""Two-branch VICReg: RGB and thermal ResNets in ONE LightningModule with ONE optimiser.

The users' version built two models with two optimisers, so nothing checked that every
parameter was being trained; here both branches are sub-modules of one module and AdamW
gets ``self.parameters()``. Each branch is a torchvision ResNet (``weights=None``: nothing
is downloaded; the thermal stem takes one channel, the RGB stem 3 or 1) whose pooled
features (the *representation*) feed an expander MLP (the *embedding* the loss sees), as
in the VICReg reference: Linear-BatchNorm-ReLU blocks and a final Linear without bias.

Training views: the same random resized crop and flip for both modalities of a pair
(:mod:`hpcml.sage.augment`), drawn for the whole global batch from the seeded generator
and sliced per rank, so DDP ranks never repeat each other's crops and the augmentation
does not depend on the number of devices. The loss is :func:`hpcml.sage.vicreg.vicreg_loss`
on the gathered global batch.

Validation: no augmentation; the loss is computed once per epoch on the embeddings of the
whole validation split (gathered from every rank), so checkpoint choice and the summary's
objective do not depend on batch size or device count. Inputs arrive normalised (see
:mod:`hpcml.sage.dataset`); the thermal statistics are hyper-parameters, so they travel in
every checkpoint. Weights and activations are channels_last; bf16 comes from the trainer.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import nn
from torchvision.models import resnet18, resnet50

from hpcml.sage.augment import crop_flip_maps, same_crop_flip
from hpcml.sage.vicreg import Terms, gather_uneven, vicreg_loss, vicreg_terms

BACKBONES = {"resnet18": resnet18, "resnet50": resnet50}
Batch = tuple[torch.Tensor, torch.Tensor]


class Embedded(NamedTuple):
    """Backbone representations and expander embeddings of both modalities."""

    rgb: torch.Tensor
    thermal: torch.Tensor
    rgb_embedding: torch.Tensor
    thermal_embedding: torch.Tensor


def expander_mlp(n_in: int, widths: Sequence[int]) -> nn.Sequential:
    sizes = [n_in, *widths]
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1], bias=False))


class Branch(nn.Module):
    """One modality: a ResNet with a ``channels``-channel stem and no classifier, then the expander."""

    def __init__(self, backbone: str, channels: int, expander: Sequence[int]) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)} (sage.model.backbone)")
        net = BACKBONES[backbone](weights=None)
        stem = net.conv1
        net.conv1 = nn.Conv2d(channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
        self.features = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        self.expander = expander_mlp(self.features, expander)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x.contiguous(memory_format=torch.channels_last))
        return h, self.expander(h)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TwoBranchVICReg(pl.LightningModule):
    def __init__(
        self,
        backbone: str = "resnet18",
        rgb_channels: int = 3,
        expander: Sequence[int] = (512, 512),
        invariance: float = 25.0,
        variance: float = 25.0,
        covariance: float = 1.0,
        crop_scale: Sequence[float] = (0.5, 1.0),
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        thermal_mean: float = 0.0,
        thermal_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.rgb = Branch(backbone, rgb_channels, expander)
        self.thermal = Branch(backbone, 1, expander)
        self.to(memory_format=torch.channels_last)
        self._val: list[torch.Tensor] = []

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> Embedded:
        h_rgb, z_rgb = self.rgb(rgb)
        h_thermal, z_thermal = self.thermal(thermal)
        return Embedded(h_rgb, h_thermal, z_rgb, z_thermal)

    def augment(self, rgb: torch.Tensor, thermal: torch.Tensor) -> Batch:
        """This rank's slice of crops drawn for the whole global batch (ranks hold equal batch sizes in training)."""
        rank, world = _rank_world()
        n = len(rgb)
        maps = crop_flip_maps(n * world, self.hparams.crop_scale, device=rgb.device)[rank * n:(rank + 1) * n]
        return same_crop_flip((rgb, thermal), maps)

    def _weights(self) -> dict[str, float]:
        return {k: self.hparams[k] for k in ("invariance", "variance", "covariance")}

    def _log(self, stage: str, terms: Terms, batch_size: int) -> None:
        self.log(f"{stage}_loss", terms.loss, on_epoch=True, on_step=False, batch_size=batch_size, sync_dist=True)
        for name in ("invariance", "variance", "covariance"):
            self.log(f"{stage}_{name}", getattr(terms, name), on_epoch=True, on_step=False, batch_size=batch_size, sync_dist=True)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        rgb, thermal = batch
        if len(rgb) * _rank_world()[1] < 2:
            return None  # a last batch of one pair on one device: no variance to estimate
        out = self(*self.augment(rgb, thermal))
        terms = vicreg_loss(out.rgb_embedding, out.thermal_embedding, **self._weights())
        self._log("train", terms, len(rgb))
        return terms.loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self(*batch)
        self._val.append(torch.cat([out.rgb_embedding, out.thermal_embedding], dim=1).float())

    def on_validation_epoch_end(self) -> None:
        width = self.hparams.expander[-1]
        local = torch.cat(self._val) if self._val else torch.zeros(0, 2 * width, device=self.device)
        self._val = []
        z_rgb, z_thermal = gather_uneven(local).split(width, dim=1)
        if len(z_rgb) >= 2:
            self._log("val", vicreg_terms(z_rgb, z_thermal, **self._weights()), len(z_rgb))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)
