"""Simulating lenses: per-family catalogues for a range of global lens indices.

A shard is processed in chunks; each finished chunk is a folder renamed into place,
so a shard killed at the wall-time limit restarts from its last complete chunk.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.atomic import write_npy, write_parquet
from hpcml.core.shards import chunk_ranges, plan_shards
from hpcml.lensing.conventions import lenstronomy_to_keeton, q_phi_to_e1e2, shear_cartesian_to_polar
from hpcml.lensing.cosmology import DistanceTable, build_cosmology, delay_days_per_arcsec2
from hpcml.lensing.model import LensParams, deflection, magnification, potential, ray_shoot
from hpcml.lensing.priors import check_priors, sample_lenses
from hpcml.lensing.render import render
from hpcml.lensing.solver import find_images
from hpcml.lensing.table import read_lens_table

log = logging.getLogger(__name__)
FAMILIES = ("shear", "ellipticity", "both")


class LensInputs:
    """Where lens parameters come from (priors or a user table), for any index range."""

    def __init__(self, settings: dict[str, Any], seed: int) -> None:
        self.settings, self.seed = settings, seed
        if settings["source"] == "table":
            if not settings.get("table"):
                raise ValueError("lensing.source is 'table' but lensing.table is not set")
            self.table: pd.DataFrame | None = read_lens_table(settings["table"])
            self.n_lenses = len(self.table)
            z_max = float(self.table.z_src.max())
        else:
            check_priors(settings["priors"])
            self.table = None
            self.n_lenses = settings["n_lenses"]
            z_max = settings["priors"]["z_src_high"]
        self.distances = DistanceTable(build_cosmology(settings["cosmology"]), z_max)

    def draws(self, start: int, stop: int) -> dict[str, np.ndarray]:
        index = np.arange(start, stop, dtype=np.int64)
        if self.table is None:
            out = sample_lenses(self.seed, index, self.settings["priors"])
            out["lens_id"] = index
        else:
            rows = self.table.iloc[start:stop]
            out = {c: rows[c].to_numpy() for c in rows.columns}
        out["index"] = index
        return out


def simulate_family(draws: dict[str, np.ndarray], family: str, inputs: LensInputs) -> dict[str, Any]:
    """Lens table, image table and (optionally) rendered images for one family."""
    n = len(draws["index"])
    q = np.ones(n) if family == "shear" else draws["q"]
    zero = np.zeros(n)
    g1, g2 = (zero, zero) if family == "ellipticity" else (draws["gamma1"], draws["gamma2"])
    p = LensParams(draws["theta_e"], q, draws["phi"], g1, g2)
    if "image_x" in draws:
        bx, by = ray_shoot(draws["image_x"], draws["image_y"], p)
    else:
        bx, by = draws["source_x"], draws["source_y"]

    found = find_images(bx, by, p, inputs.settings["solver"]["angular_grid"])
    pk = p.take(found.lens)
    d_dt = inputs.distances.time_delay_distance(draws["z_lens"], draws["z_src"])
    fermat = 0.5 * ((found.x - bx[found.lens]) ** 2 + (found.y - by[found.lens]) ** 2) - potential(found.x, found.y, pk)
    delay = delay_days_per_arcsec2(d_dt)[found.lens] * fermat
    order = np.lexsort((delay, found.lens))
    lens_pos = found.lens[order]
    counts = np.bincount(lens_pos, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    x, y = found.x[order], found.y[order]
    pk = p.take(lens_pos)
    ax, ay = deflection(x, y, pk)
    images = pd.DataFrame({
        "lens_id": draws["lens_id"][lens_pos],
        "image": (np.arange(len(order)) - first[lens_pos]).astype(np.int16),
        "x": x, "y": y,
        "magnification": magnification(x, y, pk),
        "time_delay": delay[order],
        "potential": potential(x, y, pk),
        "alpha_x": ax, "alpha_y": ay,
    })

    e1, e2 = q_phi_to_e1e2(q, draws["phi"])
    b, e_c, e_s = lenstronomy_to_keeton(draws["theta_e"], q, draws["phi"])
    gamma, phi_gamma = shear_cartesian_to_polar(g1, g2)
    lenses = pd.DataFrame({
        "lens_id": draws["lens_id"], "family": family,
        "theta_e": draws["theta_e"], "q": q, "phi": draws["phi"], "e1": e1, "e2": e2,
        "b": b, "e_c": e_c, "e_s": e_s,
        "gamma": gamma, "phi_gamma": phi_gamma, "gamma1": g1, "gamma2": g2,
        "z_lens": draws["z_lens"], "z_src": draws["z_src"],
        "source_x": bx, "source_y": by,
        "n_images": counts.astype(np.int16),
        "time_delay_distance": d_dt,
    })
    rendered = None
    if inputs.settings["render"]["enabled"]:
        rendered = render(p, bx, by, inputs.seed, draws["index"], inputs.settings["render"])
    return {"lenses": lenses, "images": images, "render": rendered}


def shard_outputs(shard_dir: Path, family: str) -> dict[str, Path]:
    base = Path(shard_dir) / family
    return {"lenses": base / "lenses.parquet", "images": base / "images.parquet", "render": base / "render.npy"}


def run_shard(settings: dict[str, Any], seed: int, shard_index: int, shard_dir: Path, work_dir: Path) -> None:
    """Simulate one shard, resuming from the chunks a killed earlier attempt finished."""
    inputs = LensInputs(settings, seed)
    shards = plan_shards(inputs.n_lenses, settings["shard_size"])
    if not 0 <= shard_index < len(shards):
        raise ValueError(f"shard {shard_index} does not exist: {inputs.n_lenses} lenses make {len(shards)} shards")
    shard = shards[shard_index]
    families = settings["families"]
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    chunks = chunk_ranges(shard.start, shard.stop, settings["chunk_size"])
    done = sum((work_dir / _chunk_name(a)).is_dir() for a, _ in chunks)
    if done:
        log.info("shard %d: resuming, %d of %d chunks already complete", shard_index, done, len(chunks))
    for k, (a, b) in enumerate(chunks):
        final = work_dir / _chunk_name(a)
        if final.is_dir():
            continue
        tic = time.perf_counter()
        draws = inputs.draws(a, b)
        tmp = work_dir / f".tmp-{_chunk_name(a)}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for family in families:
            result = simulate_family(draws, family, inputs)
            result["lenses"].to_parquet(tmp / f"{family}_lenses.parquet", index=False)
            result["images"].to_parquet(tmp / f"{family}_images.parquet", index=False)
            if result["render"] is not None:
                np.save(tmp / f"{family}_render.npy", result["render"])
        os.replace(tmp, final)
        rate = (b - a) * len(families) / (time.perf_counter() - tic)
        log.info("shard %d: chunk %d/%d (lenses %d-%d) done, %.0f lenses/s", shard_index, k + 1, len(chunks), a, b - 1, rate)

    for family in families:
        out = shard_outputs(shard_dir, family)
        parts = [work_dir / _chunk_name(a) for a, _ in chunks]
        write_parquet(out["lenses"], pd.concat([pd.read_parquet(c / f"{family}_lenses.parquet") for c in parts], ignore_index=True))
        write_parquet(out["images"], pd.concat([pd.read_parquet(c / f"{family}_images.parquet") for c in parts], ignore_index=True))
        if settings["render"]["enabled"]:
            write_npy(out["render"], np.concatenate([np.load(c / f"{family}_render.npy") for c in parts]))
    shutil.rmtree(work_dir)
    log.info("shard %d: %d lenses x %d families written to %s", shard_index, shard.size, len(families), shard_dir)


def _chunk_name(start: int) -> str:
    return f"chunk_{start:010d}"


def count_lenses(settings: dict[str, Any]) -> int:
    """Lenses per family, known before any job runs (the Snakefile plans shards from it)."""
    if settings["source"] == "table":
        if not settings.get("table"):
            raise ValueError("lensing.source is 'table' but lensing.table is not set")
        return len(read_lens_table(settings["table"]))
    return settings["n_lenses"]
