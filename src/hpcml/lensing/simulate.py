"""Simulating lenses: per-family catalogues for a range of global lens indices.

A shard is processed in chunks (:mod:`hpcml.core.chunks`), so a shard killed at the
wall-time limit restarts from its last complete chunk made with the same settings.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hpcml.core.atomic import write_parquet
from hpcml.core.chunks import run_chunks
from hpcml.core.concat import concat_npy
from hpcml.core.shards import chunk_ranges, plan_shards
from hpcml.lensing.conventions import lenstronomy_to_keeton, q_phi_to_e1e2, shear_cartesian_to_polar
from hpcml.lensing.cosmology import DistanceTable, build_cosmology, delay_days_per_arcsec2
from hpcml.lensing.model import LensParams, deflection, magnification, potential, ray_shoot
from hpcml.lensing.planning import table_path
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
            self.table: pd.DataFrame | None = read_lens_table(table_path(settings))
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
    """Simulate one shard, resuming from the chunks a killed earlier attempt with the same settings finished."""
    inputs = LensInputs(settings, seed)
    shards = plan_shards(inputs.n_lenses, settings["shard_size"])
    if not 0 <= shard_index < len(shards):
        raise ValueError(f"shard {shard_index} does not exist: {inputs.n_lenses} lenses make {len(shards)} shards")
    shard = shards[shard_index]
    families = settings["families"]

    def write_chunk(start: int, stop: int, folder: Path) -> None:
        draws = inputs.draws(start, stop)
        for family in families:
            result = simulate_family(draws, family, inputs)
            result["lenses"].to_parquet(folder / f"{family}_lenses.parquet", index=False)
            result["images"].to_parquet(folder / f"{family}_images.parquet", index=False)
            if result["render"] is not None:
                np.save(folder / f"{family}_render.npy", result["render"])

    ranges = chunk_ranges(shard.start, shard.stop, settings["chunk_size"])
    chunks = run_chunks(work_dir, ranges, write_chunk, _chunk_fingerprint(settings, seed), label=f"shard {shard_index}", unit="lenses")
    for family in families:
        out = shard_outputs(shard_dir, family)
        write_parquet(out["lenses"], pd.concat([pd.read_parquet(c / f"{family}_lenses.parquet") for c in chunks], ignore_index=True))
        write_parquet(out["images"], pd.concat([pd.read_parquet(c / f"{family}_images.parquet") for c in chunks], ignore_index=True))
        if settings["render"]["enabled"]:
            concat_npy([c / f"{family}_render.npy" for c in chunks], out["render"], rows=shard.size)
    shutil.rmtree(work_dir)
    log.info("shard %d: %d lenses x %d families written to %s", shard_index, shard.size, len(families), shard_dir)


def _chunk_fingerprint(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Everything that changes a chunk's content: the lensing section but its figures, the
    seed and, for a user table, the file's bytes (edited in place, it keeps its path)."""
    fingerprint = {"seed": seed, "lensing": {k: v for k, v in settings.items() if k != "report"}}
    if settings["source"] == "table":
        with open(table_path(settings), "rb") as table:
            fingerprint["table_sha256"] = hashlib.file_digest(table, "sha256").hexdigest()
    return fingerprint
