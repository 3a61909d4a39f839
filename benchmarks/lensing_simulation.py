"""Lensing simulation speed, against lenstronomy on the same lenses, in one run.

Prints JSON: catalogue lenses/s per core, rendered images/s per core, the full-scale
wall time (100,000 lenses x 3 families on all cores, written as shards), and
lenstronomy's analytical and default solvers on the same lenses, with the ratios.
Goal: >= 20x lenstronomy's analytical solver per core; full scale < 60 s on 2 cores.

    .venv/bin/python benchmarks/lensing_simulation.py [--full-lenses 100000]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from hpcml.core import config
from hpcml.core.shards import plan_shards
from hpcml.lensing.simulate import FAMILIES, LensInputs, run_shard, simulate_family


def per_core_catalog(settings: dict, n: int) -> float:
    inputs = LensInputs(settings, 1)
    simulate_family(inputs.draws(0, 100), "both", inputs)
    tic = time.perf_counter()
    for a in range(0, n, 1000):
        draws = inputs.draws(a, min(a + 1000, n))
        for family in FAMILIES:
            simulate_family(draws, family, inputs)
    return n * len(FAMILIES) / (time.perf_counter() - tic)


def per_core_render(settings: dict, n: int) -> float:
    from hpcml.lensing.model import LensParams, ray_shoot
    from hpcml.lensing.render import render

    inputs = LensInputs(settings, 1)
    d = inputs.draws(0, n)
    p = LensParams(d["theta_e"], d["q"], d["phi"], d["gamma1"], d["gamma2"])
    bx, by = ray_shoot(d["image_x"], d["image_y"], p)
    tic = time.perf_counter()
    render(p, bx, by, 1, d["index"], settings["render"])
    return n / (time.perf_counter() - tic)


def _shard(args: tuple) -> None:
    settings, index, root = args
    run_shard(settings, 1, index, Path(root) / f"s{index}", Path(root) / f"w{index}")


def full_scale(settings: dict, n: int, workers: int) -> float:
    settings = {**settings, "n_lenses": n, "shard_size": n // (workers * 4), "chunk_size": 2500}
    shards = plan_shards(n, settings["shard_size"])
    with tempfile.TemporaryDirectory() as root, ProcessPoolExecutor(workers) as pool:
        tic = time.perf_counter()
        list(pool.map(_shard, [(settings, s.index, root) for s in shards]))
        return time.perf_counter() - tic


def lenstronomy_rate(settings: dict, n: int, solver: str) -> float:
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver

    from hpcml.lensing.conventions import q_phi_to_e1e2
    from hpcml.lensing.model import LensParams, ray_shoot

    d = LensInputs(settings, 1).draws(0, n)
    p = LensParams(d["theta_e"], d["q"], d["phi"], d["gamma1"], d["gamma2"])
    bx, by = ray_shoot(d["image_x"], d["image_y"], p)
    e1, e2 = q_phi_to_e1e2(d["q"], d["phi"])
    model = LensModel(["SIE", "SHEAR"])
    finder = LensEquationSolver(model)
    tic = time.perf_counter()
    for i in range(n):
        kw = [{"theta_E": d["theta_e"][i], "e1": e1[i], "e2": e2[i], "center_x": 0, "center_y": 0}, {"gamma1": d["gamma1"][i], "gamma2": d["gamma2"][i]}]
        x, y = finder.image_position_from_source(bx[i], by[i], kw, solver=solver)
        model.magnification(x, y, kw)
        model.potential(x, y, kw)
        model.alpha(x, y, kw)
    return n / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-core-lenses", type=int, default=20000)
    parser.add_argument("--full-lenses", type=int, default=100000)
    parser.add_argument("--lenstronomy-lenses", type=int, default=400)
    args = parser.parse_args()
    settings = config.validate({})["lensing"]
    catalog_settings = {**settings, "render": {**settings["render"], "enabled": False}}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ours = per_core_catalog(catalog_settings, args.per_core_lenses)
    analytical = lenstronomy_rate(settings, args.lenstronomy_lenses, "analytical")
    default = lenstronomy_rate(settings, max(args.lenstronomy_lenses // 8, 20), "lenstronomy")
    workers = os.cpu_count() or 2
    result = {
        "machine": {"cores": workers},
        "catalog_lenses_per_s_per_core": round(ours),
        "render_images_per_s_per_core": round(per_core_render(settings, 2000)),
        "render_size": settings["render"]["size"],
        "lenstronomy_analytical_lenses_per_s": round(analytical, 1),
        "lenstronomy_default_lenses_per_s": round(default, 1),
        "speedup_vs_lenstronomy_analytical": round(ours / analytical, 1),
        "speedup_vs_lenstronomy_default": round(ours / default, 1),
        "goal_speedup_vs_analytical": 20,
        f"full_scale_{args.full_lenses}_lenses_x3_families_catalog_s": round(full_scale(catalog_settings, args.full_lenses, workers), 1),
        "goal_full_scale_s": 60,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
