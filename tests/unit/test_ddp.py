"""DDP: two CPU processes learn what one process learns, and only rank 0 keeps the books.

The rank workers run in processes started with ``spawn`` and a gloo process group on a
free localhost port; each takes its share of one global batch from the project's own
sampler (``ShuffledBatches`` with ``equal_ranks``) and writes what it computed to a file
the test compares with a reference computed here, in one process.

PyTorch has no SyncBatchNorm on CPUs (DDP rejects SyncBatchNorm layers unless the module
is on a GPU), so on CPUs the CNN's batch norm normalises each rank's own half of the
batch; the CNN test checks exactly that, and the trainer factory syncs batch norm on
CUDA GPUs only.
"""
from __future__ import annotations

import datetime
import faulthandler
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from pytorch_lightning.utilities import rank_zero_only
from torch.nn.parallel import DistributedDataParallel

from hpcml.ariel.ingest import ingest_all
from hpcml.ariel.models import ArielRegressor
from hpcml.ariel.prepare import fit_transforms, write_folds
from hpcml.ariel.synth import generate
from hpcml.core import config
from hpcml.core.batches import RowBatches, ShuffledBatches
from hpcml.core.training import build_trainer

WORLD = 2
GLOBAL_BATCH = 8
N_STEPS = 300
NAMES = ("X", "stellar", "targets")
BOOKKEEPING = {"run_settings.json", "checkpoints", "wandb_run_id"}
RANK_DEADLINE_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "X": torch.randn(GLOBAL_BATCH, 55, N_STEPS, generator=generator),
        "stellar": torch.randn(GLOBAL_BATCH, 6, generator=generator),
        "targets": torch.randn(GLOBAL_BATCH, 55, generator=generator),
    }


def _loss(module: torch.nn.Module, x: torch.Tensor, stellar: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ArielRegressor's training loss, called through ``module`` so DDP's forward hooks run."""
    return torch.nn.functional.mse_loss(module(x, stellar), y)


def _rank_step(rank: int, port: int, model: str, state: dict, batch: dict, sync_batchnorm: bool, out: Path) -> None:
    """One training step of one rank on its share of the global batch; writes rank<N>.pt.

    The file holds the all-reduced mean loss, the gradients after DDP's averaging and
    the positions this rank was dealt, or DDP's error when it refuses the module.
    """
    # A rank still here near the deadline prints where it waits (a hang was seen once in a full suite).
    faulthandler.dump_traceback_later(RANK_DEADLINE_S - 30, exit=True)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        module = ArielRegressor(model, N_STEPS, 1e-3)
        module.load_state_dict(state)
        if sync_batchnorm:
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
        try:
            ddp = DistributedDataParallel(module)
        except ValueError as error:
            torch.save({"error": str(error)}, out / f"rank{rank}.pt")
            return
        sampler = ShuffledBatches(GLOBAL_BATCH, GLOBAL_BATCH // WORLD, shuffle=True, seed=3, equal_ranks=True, rank=rank, world_size=WORLD)
        (positions,) = list(sampler)
        loss = _loss(ddp, *RowBatches(batch, NAMES)[positions])
        loss.backward()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        grads = {name: p.grad for name, p in module.named_parameters()}
        torch.save({"loss": mean_loss / WORLD, "grads": grads, "positions": positions}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _run_ranks(module: ArielRegressor, batch: dict[str, torch.Tensor], sync_batchnorm: bool, out: Path) -> list[dict]:
    """The ranks' results; a rank that hangs (a lost peer, a taken port) fails the test
    after a deadline instead of stalling the suite."""
    context = mp.start_processes(_rank_step, args=(_free_port(), module.hparams.model, module.state_dict(), batch, sync_batchnorm, out),
                                 nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + RANK_DEADLINE_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"DDP ranks did not finish within {RANK_DEADLINE_S} s")
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def _one_process(module: ArielRegressor, batch: dict[str, torch.Tensor], positions: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and gradients of ``module`` on ``positions`` of the batch, in this process."""
    module.zero_grad()
    loss = _loss(module, *RowBatches(batch, NAMES)[positions])
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in module.named_parameters()}


def _assert_same_step(ranks: list[dict], loss: torch.Tensor, grads: dict[str, torch.Tensor]) -> None:
    """Every rank holds the reference loss and gradients, to float32 rounding."""
    for result in ranks:
        torch.testing.assert_close(result["loss"], loss, rtol=1e-5, atol=1e-7)
        assert result["grads"].keys() == grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(result["grads"][name], grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"{name}: {m}")


def _fresh(model: str) -> ArielRegressor:
    torch.manual_seed(0)
    return ArielRegressor(model, N_STEPS, 1e-3)


def test_two_ranks_match_one_process_on_the_global_batch(tmp_path):
    """Equal shares and DDP's gradient mean give the global batch's mean loss and gradients."""
    fresh, batch = _fresh("baseline"), _global_batch()
    ranks = _run_ranks(fresh, batch, sync_batchnorm=False, out=tmp_path)
    assert sorted(ranks[0]["positions"] + ranks[1]["positions"]) == list(range(GLOBAL_BATCH))
    _assert_same_step(ranks, *_one_process(fresh, batch, list(range(GLOBAL_BATCH))))


def test_cnn_on_cpus_averages_the_ranks_own_batch_norm_steps(tmp_path):
    """Without SyncBatchNorm each rank normalises its own share: DDP then averages what
    one process computes on each share, which is not the global batch's step."""
    fresh, batch = _fresh("cnn"), _global_batch()
    ranks = _run_ranks(fresh, batch, sync_batchnorm=False, out=tmp_path)
    per_share = [_one_process(fresh, batch, r["positions"]) for r in ranks]
    loss = torch.stack([share_loss for share_loss, _ in per_share]).mean()
    grads = {name: torch.stack([share_grads[name] for _, share_grads in per_share]).mean(0) for name in per_share[0][1]}
    _assert_same_step(ranks, loss, grads)
    _, global_grads = _one_process(fresh, batch, list(range(GLOBAL_BATCH)))
    assert not all(torch.allclose(global_grads[name], grad, rtol=1e-2, atol=1e-6) for name, grad in grads.items())


def test_ddp_refuses_sync_batchnorm_on_cpus(tmp_path):
    """Why the trainer factory syncs batch norm on CUDA GPUs only."""
    ranks = _run_ranks(_fresh("cnn"), _global_batch(), sync_batchnorm=True, out=tmp_path)
    assert all("SyncBatchNorm layers only work with GPU modules" in r["error"] for r in ranks)


@pytest.mark.parametrize("rank", [0, 1])
def test_run_directory_bookkeeping_happens_on_rank_zero_only(rank, tmp_path, monkeypatch):
    """Rank 1 starts after rank 0 has written the books; it must neither write nor move them."""
    monkeypatch.setattr(rank_zero_only, "rank", rank)
    # The factory seeds and quiets W&B through the environment: restored after the test.
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")
    monkeypatch.setenv("WANDB_SILENT", "true")
    defaults = config.validate({})
    run_dir = tmp_path / "run"
    build_trainer(run_dir, {**defaults["training"], "accelerator": "cpu", "devices": 1}, {**defaults["wandb"], "mode": "offline"}, max_epochs=1, seed=0, run_name="ddp")
    made = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert made & BOOKKEEPING == (BOOKKEEPING if rank == 0 else set())


def test_lightning_ddp_on_two_cpu_processes_trains_end_to_end(tmp_path):
    """The CLI's own path: Lightning re-launches the command for rank 1 and trains the CNN
    (batch norm and all) on two gloo processes; rank 0 alone keeps the books and writes
    the summary."""
    generate(tmp_path / "raw", {"n_train_planets": 9, "n_test_planets": 2, "n_spot": 2, "n_photon": 2}, seed=4)
    ingest_all(tmp_path / "raw", tmp_path / "data", shard_size=7)
    settings = config.validate({"ariel": {"splits": {"n_folds": 3}}})["ariel"]
    write_folds(tmp_path / "data", tmp_path / "folds.parquet", settings, seed=4)
    fit_transforms(tmp_path / "data", tmp_path / "folds.parquet", tmp_path / "transforms.json", settings)
    cfg = {"seed": 4, "training": {"num_workers": 0}, "wandb": {"mode": "offline"}, "ariel": {"cnn": {"max_epochs": 2, "batch_size": 4}, "splits": {"n_folds": 3}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "hpcml.cli", "ariel", "train", "--config", str(tmp_path / "c.yaml"), "--model", "cnn",
         "--data", str(tmp_path / "data"), "--folds", str(tmp_path / "folds.parquet"), "--transforms", str(tmp_path / "transforms.json"),
         "--out", str(out), "--set", "training.devices=2", "--set", "training.accelerator=cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stderr
    assert result.stderr.count("cnn: validation score") == 1, "summary.json written by rank 0 only"
    assert json.loads((out / "summary.json").read_text())["device"] == "cpu x2"
    for name in ("run_settings.json", "wandb_run_id"):
        assert list(out.rglob(name)) == [out / name]
    assert not list(out.glob("stale-*"))
