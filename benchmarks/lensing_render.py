"""Rendering speed per core against lenstronomy's ImageModel, in one run.

Both sides render the same lenses (the default priors, family `both`) as the default
`lensing.render` settings ask: 64x64 pixels, supersampling 2, Gaussian PSF (lenstronomy's
`GAUSSIAN` type, which our renderer reproduces) and Gaussian noise. lenstronomy renders
one lens per `ImageModel.image` call plus `image_util.add_background` (its keyword
arguments are built before the clock starts); ours renders all lenses with one call of
`hpcml.lensing.render.render`. One thread each: BLAS and OpenMP pools are limited to one
(threadpoolctl; numpy's element-wise loops and our compiled ones use one anyway), and
rates are images per second of the process's CPU time, so time spent waiting for a
core on a shared machine counts for neither. The two alternate `--repeat` times, so
both see the same load (caches shared with other jobs slow both); the JSON gives each
round's ratio and their range. Goal: >= 5x per core. Both are warmed up first (our
compiled loops, lenstronomy's numba-compiled profiles).
`tests/unit/test_lensing_physics.py` checks that the images agree to float32 round-off.

    .venv/bin/python benchmarks/lensing_render.py [--lenses 4000 --reference-lenses 300 --repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from hpcml.core import config
from hpcml.lensing.conventions import q_phi_to_e1e2
from hpcml.lensing.model import LensParams, ray_shoot
from hpcml.lensing.render import render, sersic_b, source_shapes
from hpcml.lensing.simulate import LensInputs

SEED = 1


def lenses(settings: dict[str, Any], n: int) -> tuple[LensParams, np.ndarray, np.ndarray, np.ndarray]:
    draws = LensInputs(settings, SEED).draws(0, n)
    p = LensParams(draws["theta_e"], draws["q"], draws["phi"], draws["gamma1"], draws["gamma2"])
    bx, by = ray_shoot(draws["image_x"], draws["image_y"], p)
    return p, bx, by, draws["index"]


def ours(settings: dict[str, Any], n: int) -> float:
    p, bx, by, index = lenses(settings, n)
    tic = time.process_time()
    render(p, bx, by, SEED, index, settings["render"])
    return n / (time.process_time() - tic)


def lenstronomy(settings: dict[str, Any], n: int) -> float:
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util import image_util

    r = settings["render"]
    size, scale = r["size"], r["pixel_scale"]
    corner = -(size - 1) / 2 * scale
    data = ImageData(image_data=np.zeros((size, size)), ra_at_xy_0=corner, dec_at_xy_0=corner, transform_pix2angle=np.eye(2) * scale)
    model = ImageModel(data, PSF(psf_type="GAUSSIAN", fwhm=r["psf_fwhm"], pixel_size=scale), lens_model_class=LensModel(["SIE", "SHEAR"]),
                       source_model_class=LightModel(["SERSIC_ELLIPSE"]), kwargs_numerics={"supersampling_factor": r["supersample"]})
    p, bx, by, index = lenses(settings, n)
    e1, e2 = q_phi_to_e1e2(p.q, p.phi)
    r_eff, q_s, phi_s = source_shapes(SEED, index, r)
    s1, s2 = q_phi_to_e1e2(q_s, phi_s)
    amp = np.exp(-sersic_b(r["source_n"])) / scale**2
    kwargs = [(
        [{"theta_E": p.theta_e[i], "e1": e1[i], "e2": e2[i], "center_x": 0.0, "center_y": 0.0}, {"gamma1": p.gamma1[i], "gamma2": p.gamma2[i]}],
        [{"amp": amp, "R_sersic": r_eff[i], "n_sersic": r["source_n"], "e1": s1[i], "e2": s2[i], "center_x": bx[i], "center_y": by[i]}],
    ) for i in range(n)]
    tic = time.process_time()
    for kw_lens, kw_source in kwargs:
        image = model.image(kw_lens, kw_source)
        image += image_util.add_background(image, r["noise_sigma"])
    return n / (time.process_time() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lenses", type=int, default=4000, help="lenses our renderer draws per round")
    parser.add_argument("--reference-lenses", type=int, default=300, help="lenses lenstronomy draws per round")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = config.validate({})["lensing"]
    rounds = []
    with threadpool_limits(limits=1):
        ours(settings, 64)
        lenstronomy(settings, 4)
        for _ in range(args.repeat):
            mine, ref = ours(settings, args.lenses), lenstronomy(settings, args.reference_lenses)
            rounds.append({"ours_images_per_s": round(mine), "lenstronomy_images_per_s": round(ref, 1), "ratio": round(mine / ref, 1)})
    ratios = [r["ratio"] for r in rounds]
    r = settings["render"]
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads_per_side": 1},
        "image": {k: r[k] for k in ("size", "supersample", "pixel_scale", "psf_fwhm", "noise_sigma", "source_n")},
        "rounds": rounds,
        "ours_images_per_s_per_core_median": round(float(np.median([r["ours_images_per_s"] for r in rounds]))),
        "lenstronomy_images_per_s_per_core_median": round(float(np.median([r["lenstronomy_images_per_s"] for r in rounds])), 1),
        "ratio_median": round(float(np.median(ratios)), 1),
        "ratio_range": [min(ratios), max(ratios)],
        "goal_ratio": 5,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
