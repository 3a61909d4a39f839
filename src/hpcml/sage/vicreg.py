"""The VICReg loss on the global batch: embeddings gathered from every rank, gradients sent back.

Bardes, Ponce & LeCun (2022), with the reference implementation's weights and constants:

- invariance: mean squared difference of the two branches' embeddings;
- variance: mean over dimensions of ``relu(1 - sqrt(var + 1e-4))`` per branch, halved and
  summed (unbiased variance over the batch);
- covariance: squared off-diagonal entries of each branch's covariance matrix
  (``Z^T Z / (n - 1)`` of centred embeddings), summed and divided by the dimension.

Under DDP each rank holds ``B`` of the ``n = world * B`` pairs; variance and covariance
estimated on ``B`` alone (while dividing by ``n - 1``, the users' bug) are wrong. Every
term here is computed on the gathered global batch, so every rank computes the same loss
the one-process run computes on the whole batch.

Gradients. :class:`FullGather` is the reference's ``FullGatherLayer``: forward all-gathers
the ranks' embeddings; backward all-reduces (sums) the gradient of the gathered tensor,
because every rank's copy of the loss depends on every rank's embeddings, and returns this
rank's slice. Each rank's embedding gradient is therefore ``world`` times the one-process
gradient of the global loss, and DDP's mean over ranks of the parameter gradients turns
that into exactly the one-process parameter gradient. A gather whose backward returns only
the local gradient of the local copy (lightly's) misses the other ranks' contributions and,
after DDP's mean, scales the step down by ``world``.

``torch.distributed.nn.functional.all_gather`` has the same backward (a sum-reduce-scatter,
emulated with all-to-all on gloo), but torch 2.13 deprecates it; the few lines here use
only the stable collectives, work on NCCL and gloo alike, and say what they do. The loss is
computed in float32 whatever the autocast precision (sums of squares over the batch).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

# The reference's epsilon inside the standard deviation.
EPS = 1e-4


class Terms(NamedTuple):
    """The weighted loss and its three unweighted terms."""

    loss: torch.Tensor
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


class FullGather(torch.autograd.Function):
    """All-gather along dim 0 with gradients summed over ranks and each rank's slice returned."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # the incoming gradient is not ours to reduce in place
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


def gather(x: torch.Tensor) -> torch.Tensor:
    """The global batch of ``x`` (ranks in order), or ``x`` itself outside DDP. Every rank must hold the same batch size."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return FullGather.apply(x)
    return x


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m.masked_select(~torch.eye(len(m), dtype=torch.bool, device=m.device))


def vicreg_terms(x: torch.Tensor, y: torch.Tensor, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0) -> Terms:
    """The loss on embeddings ``x``, ``y`` [n, D] that already form the whole batch."""
    x, y = x.float(), y.float()
    n, d = x.shape
    if n < 2:
        raise ValueError(f"VICReg needs at least 2 pairs in a batch (variance over the batch), got {n}")
    inv = F.mse_loss(x, y)
    x, y = x - x.mean(0), y - y.mean(0)
    std_x, std_y = torch.sqrt(x.var(0) + EPS), torch.sqrt(y.var(0) + EPS)
    var = F.relu(1 - std_x).mean() / 2 + F.relu(1 - std_y).mean() / 2
    cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)
    cov = off_diagonal(cov_x).pow(2).sum() / d + off_diagonal(cov_y).pow(2).sum() / d
    return Terms(invariance * inv + variance * var + covariance * cov, inv, var, cov)


def vicreg_loss(x: torch.Tensor, y: torch.Tensor, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0) -> Terms:
    """The loss on this rank's embeddings [B, D] gathered with every other rank's into the global batch (one collective)."""
    both = gather(torch.cat([x.float(), y.float()], dim=1))
    return vicreg_terms(*both.split(x.shape[1], dim=1), invariance, variance, covariance)


def gather_uneven(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of ``x`` [n_r, D] concatenated, where ranks may hold different counts
    (validation sets are not dealt evenly); no gradient. ``x`` itself outside DDP."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return x
    world = dist.get_world_size()
    counts = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(x)], device=x.device))
    most = int(max(c.item() for c in counts))
    padded = torch.cat([x, x.new_zeros(most - len(x), *x.shape[1:])]).contiguous()
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(c.item())] for p, c in zip(parts, counts)])
