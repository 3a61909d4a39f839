"""SAGE: the group's file format, pairing with a consistency report, arrays from shards, the
VICReg loss against its formula, and the loss and gradients under DDP equal to one process."""
from __future__ import annotations

import datetime
import faulthandler
import json
import re
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hpcml.core import config
from hpcml.sage.augment import crop_flip_maps, same_crop_flip
from hpcml.sage.pairing import pair
from hpcml.sage.preprocess import combine_shards, preprocess_shard
from hpcml.sage.synth import write_synthetic
from hpcml.sage.thermal import ThermalFormatError, read_thermal
from hpcml.sage.vicreg import vicreg_loss, vicreg_terms

WORLD = 2
RANK_DEADLINE_S = 240


@pytest.fixture(scope="module")
def sage():
    settings = config.validate({})["sage"]
    settings["synthetic"].update(n_nodes=2, n_times=6, positions=[1, 2], scale=0.03, n_corrupt=1)
    settings["preprocess"].update(size=[16, 16], shard_size=10, chunk_size=4)
    return settings


@pytest.fixture(scope="module")
def raw(tmp_path_factory, sage):
    out = tmp_path_factory.mktemp("raw")
    write_synthetic(out, sage["synthetic"], seed=3)
    return out


def test_synthetic_captures_are_in_the_cameras_format(raw, sage):
    rgb = sorted(raw.glob("rgb/*/*.jpg"))
    thermal = sorted(raw.glob("thermal/*/*.csv"))
    assert {p.parent.name for p in rgb} == {"W001", "W002"}
    assert all(re.match(sage["patterns"]["rgb"], p.name) for p in rgb)
    assert all(re.match(sage["patterns"]["thermal"], p.name) for p in thermal)
    manifest = json.loads((raw / "manifest.json").read_text())
    good = next(p for p in thermal if str(p.relative_to(raw)) not in {c["file"] for c in manifest["corrupt"]})
    lines = good.read_text().splitlines()
    assert lines[:8] == ["sensor;right", "bit depth;14 bit", "width;336", "height;252", "resolution;high",
                         "advanced radiometry support;yes", "unit;degrees Celsius", ""]
    assert len(lines) == 8 + 252 and all(len(row.split(";")) == 336 for row in lines[8:])
    celsius = read_thermal(good)
    assert celsius.shape == (252, 336) and -60 < celsius.min() < celsius.max() < 80
    from PIL import Image

    with Image.open(next(p for p in rgb if str(p.relative_to(raw)) not in {c["file"] for c in manifest["corrupt"]})) as image:
        assert image.size == (round(6144 * 0.03), round(2048 * 0.03))


def test_thermal_errors_name_the_file_and_line(tmp_path):
    from hpcml.sage.thermal import header_text

    body = "\n".join(";".join(["1.5"] * 336) for _ in range(252)) + "\n"
    bad_value = tmp_path / "value.csv"
    bad_value.write_text(header_text() + body.replace("1.5;1.5", "1.5;warm", 1))
    with pytest.raises(ThermalFormatError, match=rf"{re.escape(str(bad_value))}, line 9: .*warm.* not a"):
        read_thermal(bad_value)
    bad_unit = tmp_path / "unit.csv"
    bad_unit.write_text(header_text().replace("degrees Celsius", "degrees Fahrenheit") + body)
    with pytest.raises(ThermalFormatError, match=rf"{re.escape(str(bad_unit))}, line 7"):
        read_thermal(bad_unit)


def test_pairing_lists_every_bad_file_and_pairs_the_rest(raw, sage, tmp_path):
    work = tmp_path / "input"
    import shutil

    shutil.copytree(raw, work)
    node = work / "rgb" / "W001"
    first = sorted(node.glob("*.jpg"))[0]
    (node / ("0" + first.name)).write_bytes(first.read_bytes())  # the same capture under a second name
    (node / "notes.txt").write_text("not a capture")
    (node / ".partial.jpg.part").write_bytes(b"")  # a download in progress: skipped, not listed
    report = pair(work, tmp_path / "pairs", sage)

    manifest = json.loads((raw / "manifest.json").read_text())
    listed = {entry["file"] for group in ("damaged", "unmatched", "duplicates", "unrecognised") for entry in report[group]}
    for corrupt in manifest["corrupt"]:
        assert corrupt["file"] in listed, corrupt
    (duplicate,) = [e for e in report["duplicates"] if e["file"].startswith("rgb/W001/")]
    names = {f"rgb/W001/0{first.name}", f"rgb/W001/{first.name}"}
    assert duplicate["file"] in names and (names - {duplicate["file"]}).pop() in duplicate["error"]
    assert "rgb/W001/notes.txt" in {e["file"] for e in report["unrecognised"]}
    assert any(e.get("line") for e in report["damaged"]), "a malformed CSV is reported at its line"
    pairs = pd.read_parquet(tmp_path / "pairs" / "pairs.parquet")
    spoiled = len({re.search(r"(\d+)_", Path(c["file"]).name).group(1) for c in manifest["corrupt"]})
    assert len(pairs) == manifest["captures"] - spoiled == report["counts"]["pairs"]
    assert not pairs.duplicated(["node", "timestamp_ns", "position"]).any()
    assert pairs[["latitude", "longitude"]].notna().all().all()
    text = (tmp_path / "pairs" / "pairs" / pairs.node[0] / f"{pairs.timestamp_ns[0]}_position{pairs.position[0]}.txt").read_text()
    assert text.splitlines() == [pairs.rgb_path[0], pairs.thermal_path[0]]


def test_preprocessing_shards_make_the_arrays_and_index(raw, sage, tmp_path):
    pair(raw, tmp_path / "pairs", sage)
    pairs = tmp_path / "pairs" / "pairs.parquet"
    n = len(pd.read_parquet(pairs))
    shards = [tmp_path / f"shard_{k}" for k in range(3)]
    for k, folder in enumerate(shards):
        preprocess_shard(pairs, k, folder, sage)
    assert np.load(shards[-1] / "rgb.npy").shape == (0, 3, 16, 16), "a shard past the pairs is empty"
    combine_shards(shards, tmp_path / "data")
    rgb, thermal = np.load(tmp_path / "data" / "rgb.npy"), np.load(tmp_path / "data" / "thermal.npy")
    index = pd.read_parquet(tmp_path / "data" / "index.parquet")
    assert rgb.shape == (n, 3, 16, 16) and rgb.dtype == np.uint8
    assert thermal.shape == (n, 1, 16, 16) and thermal.dtype == np.float16
    assert len(index) == n and index.capture.is_unique
    assert index.sky_pointing.all() and index.is_day.any() and (~index.is_day).any()
    assert ((index.cloud_fraction >= 0) & (index.cloud_fraction <= 1)).all() and index.cloud_fraction.std() > 0

    grey = {**sage, "preprocess": {**sage["preprocess"], "greyscale": True}}
    preprocess_shard(pairs, 0, tmp_path / "grey", grey)
    assert np.load(tmp_path / "grey" / "rgb.npy").shape[1] == 1


def test_the_same_crop_and_flip_reach_both_modalities():
    images = torch.rand(6, 3, 16, 16)
    maps = crop_flip_maps(6, (0.3, 1.0), generator=torch.Generator().manual_seed(0))
    rgb, thermal = same_crop_flip([images, images[:, :1]], maps)
    assert torch.allclose(rgb[:, :1], thermal)
    assert not torch.allclose(rgb, images)


def _direct_vicreg(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The formula of Bardes et al. (2022) written out in float64, weights 25, 25, 1."""
    x, y = x.double(), y.double()
    n, d = x.shape
    invariance = ((x - y) ** 2).sum() / (n * d)
    variance = 0.0
    covariance = 0.0
    for z in (x, y):
        z = z - z.mean(0)
        std = torch.sqrt((z ** 2).sum(0) / (n - 1) + 1e-4)
        variance = variance + torch.clamp(1 - std, min=0).mean() / 2
        c = z.T @ z / (n - 1)
        covariance = covariance + ((c ** 2).sum() - (torch.diagonal(c) ** 2).sum()) / d
    return 25 * invariance + 25 * variance + covariance


def test_vicreg_loss_matches_the_formula():
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=generator) * 0.5, torch.randn(32, 8, generator=generator)
    assert torch.allclose(vicreg_terms(x, y).loss.double(), _direct_vicreg(x, y), rtol=1e-5)
    assert torch.allclose(vicreg_loss(x, y).loss, vicreg_terms(x, y).loss)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, x: torch.Tensor, y: torch.Tensor, out: Path) -> None:
    """This rank's half of the global batch through the gathered loss; its loss and input gradients."""
    faulthandler.dump_traceback_later(RANK_DEADLINE_S - 30, exit=True)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        half = len(x) // WORLD
        xs = x[rank * half:(rank + 1) * half].clone().requires_grad_(True)
        ys = y[rank * half:(rank + 1) * half].clone().requires_grad_(True)
        loss = vicreg_loss(xs, ys).loss
        loss.backward()
        torch.save({"loss": loss.detach(), "gx": xs.grad, "gy": ys.grad}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_loss_and_gradients_equal_one_process_on_the_global_batch(tmp_path):
    """Two gloo ranks, each with half the pairs: both compute the one-process loss, and their input
    gradients, once DDP averages parameter gradients over the ranks (x world / world), are the
    one-process gradients of their rows."""
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(16, 6, generator=generator), torch.randn(16, 6, generator=generator)
    context = mp.start_processes(_rank, args=(_free_port(), x, y, tmp_path), nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + RANK_DEADLINE_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"DDP ranks did not finish within {RANK_DEADLINE_S} s")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    loss = vicreg_terms(xr, yr).loss
    loss.backward()
    half = len(x) // WORLD
    for rank, result in enumerate(ranks):
        assert torch.allclose(result["loss"], loss.detach(), rtol=1e-5)
        rows = slice(rank * half, (rank + 1) * half)
        assert torch.allclose(result["gx"] / WORLD, xr.grad[rows], atol=1e-6)
        assert torch.allclose(result["gy"] / WORLD, yr.grad[rows], atol=1e-6)
