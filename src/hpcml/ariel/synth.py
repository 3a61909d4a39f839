"""Synthetic data in exactly the challenge's text format, with physically plausible transits.

Per planet: a transmission spectrum Rp/Rs(lambda) (a flat radius, a Rayleigh slope and
absorption bands of random strength), a star (temperature, log g, radius, mass, K
magnitude), an orbit (period, semi-major axis from Kepler's law, inclination). Per
wavelength the light curve is a transit of depth ~(Rp/Rs)^2 through a quadratically
limb-darkened star, times the instrument's initial ramp (0.5 -> 1 over ~10 steps).
Stellar-spot instances (BB) scale the depth and add slow variability; photon-noise
instances (CC) add white noise that grows with star_k_mag. All randomness is
counter-based on (seed, planet, instance), so any file can be regenerated alone.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hpcml.ariel.formats import STELLAR_KEYS
from hpcml.ariel.layout import N_TIMESTEPS, N_WAVELENGTHS
from hpcml.core.atomic import write_json, write_text
from hpcml.ariel.layout import too_many_planets
from hpcml.core.config import ConfigError
from hpcml.core.randomness import normals, uniforms

log = logging.getLogger(__name__)
G = 6.674e-11
M_SUN = 1.989e30
DAY = 86400.0
WAVE = np.linspace(0.0, 1.0, N_WAVELENGTHS)  # 0 = bluest channel
STEPS = np.arange(N_TIMESTEPS, dtype=np.float64)
BANDS = np.array([0.18, 0.45, 0.62, 0.85])


def planet_draws(seed: int, planet: np.ndarray) -> dict[str, np.ndarray]:
    u = lambda s: uniforms(seed, planet, s)  # noqa: E731
    star_rad = 0.4 + 1.1 * u(0)
    draws = {
        "star_temp": 3200 + 3300 * u(1),
        "star_logg": np.round((4.0 + 1.0 * u(2)) * 2) / 2,
        "star_rad": star_rad,
        "star_mass": star_rad * (0.9 + 0.2 * u(3)),
        "star_k_mag": 7.0 + 5.0 * u(4),
        "period": 1.0 + 14.0 * u(5),
        "incl": 86.0 + 4.0 * u(6),
        "r0": 0.04 + 0.12 * u(7),
        "atmosphere": 0.08 * u(8),
        "slope": u(9),
        "half_width": 45 + 30 * u(10),
        "t0": 150 + 10 * (u(11) - 0.5),
    }
    draws["band_strength"] = np.stack([u(20 + k) for k in range(len(BANDS))], axis=1)
    a = (G * draws["star_mass"] * M_SUN * (draws["period"] * DAY) ** 2 / (4 * np.pi**2)) ** (1 / 3)
    draws["sma"] = a
    return draws


def spectrum(d: dict[str, np.ndarray], i: int) -> np.ndarray:
    """Rp/Rs per wavelength for planet i of the draws."""
    bands = (d["band_strength"][i][:, None] * np.exp(-0.5 * ((WAVE[None, :] - BANDS[:, None]) / 0.04) ** 2)).sum(0)
    shape = bands + d["slope"][i] * np.exp(-WAVE / 0.15)
    return d["r0"][i] * (1 + d["atmosphere"][i] * (shape - shape.mean()))


def blocked_fraction(z: np.ndarray, k: np.ndarray, u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Fraction of stellar flux hidden by a planet of radius k at separation z (small-planet approximation)."""
    r = np.clip(z, 0.0, 1.0)
    mu = np.sqrt(1.0 - r**2)
    intensity = (1 - u1 * (1 - mu) - u2 * (1 - mu) ** 2) / (1 - u1 / 3 - u2 / 6)
    # overlap area of two discs (radii 1 and k, centres z apart) over pi k^2
    zc = np.clip(z, np.abs(1 - k) + 1e-12, 1 + k - 1e-12)
    a1 = np.arccos(np.clip((zc**2 + k**2 - 1) / (2 * zc * k), -1, 1))
    a2 = np.arccos(np.clip((zc**2 + 1 - k**2) / (2 * zc), -1, 1))
    partial = (k**2 * a1 + a2 - 0.5 * np.sqrt(np.clip(4 * zc**2 - (1 + zc**2 - k**2) ** 2, 0, None))) / (np.pi * k**2)
    covered = np.where(z <= 1 - k, 1.0, np.where(z >= 1 + k, 0.0, partial))
    return k**2 * intensity * covered


def light_curves(d: dict[str, np.ndarray], i: int, spot_seed: int, photon_seed: int, seed: int) -> np.ndarray:
    k = spectrum(d, i)[:, None]
    u1 = (0.55 - 0.3 * WAVE)[:, None]
    u2 = (0.2 - 0.05 * WAVE)[:, None]
    b = min(d["sma"][i] / (d["star_rad"][i] * 6.957e8) * np.cos(np.radians(d["incl"][i])), 0.85)
    x = (STEPS[None, :] - d["t0"][i]) / d["half_width"][i] * np.sqrt((1 + k) ** 2 - b**2)
    z = np.sqrt(x**2 + b**2)
    spot = int(spot_seed)
    depth_bias = 1 + 0.02 * normals(seed, np.array([spot]), 100)[0] * (1.3 - WAVE)[:, None]
    variability = 2e-4 * (1.3 - WAVE)[:, None] * np.sin(2 * np.pi * STEPS[None, :] / (400 + 400 * uniforms(seed, spot, 101)) + 2 * np.pi * uniforms(seed, spot, 102))
    flux = (1 - blocked_fraction(z, k, u1, u2) * depth_bias) * (1 + variability)
    sigma = 4e-4 * 10 ** (0.2 * (d["star_k_mag"][i] - 9)) * (1 + 0.5 * WAVE)[:, None]
    noise = normals(seed, np.array([photon_seed], dtype=np.int64)[:, None], np.arange(N_WAVELENGTHS * N_TIMESTEPS)).reshape(N_WAVELENGTHS, N_TIMESTEPS)
    ramp = 1 - 0.5 * np.exp(-STEPS / 2.5)
    return (flux + sigma * noise) * ramp[None, :]


def _rows(values: np.ndarray) -> str:
    return "\n".join("\t".join(repr(float(v)) for v in row) for row in values) + "\n"


def generate(out_dir: str | Path, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Write noisy_train/, params_train/, noisy_test/ and a manifest.json (written last)."""
    out_dir = Path(out_dir)
    n_train, n_test = settings["n_train_planets"], settings["n_test_planets"]
    problem = too_many_planets(settings)
    if problem:
        raise ConfigError(problem)
    planets = np.arange(1, n_train + n_test + 1)
    d = planet_draws(seed, planets)
    files = {"train": 0, "test": 0}
    for i, planet in enumerate(planets):
        dataset = "train" if planet <= n_train else "test"
        header = "".join(f"# {key}: {d[key][i]:.10g}\n" for key in STELLAR_KEYS)
        for spot in range(1, settings["n_spot"] + 1):
            for photon in range(1, settings["n_photon"] + 1):
                name = f"{planet:04d}_{spot:02d}_{photon:02d}.txt"
                spot_id = planet * 100 + spot
                curves = light_curves(d, i, spot_id, spot_id * 100 + photon, seed)
                write_text(out_dir / f"noisy_{dataset}" / name, header + _rows(curves))
                if dataset == "train":
                    params = f"# sma: {d['sma'][i]:.10g}\n# incl: {d['incl'][i]:.10g}\n" + _rows(spectrum(d, i)[None, :])
                    write_text(out_dir / "params_train" / name, params)
                files[dataset] += 1
        if (i + 1) % 50 == 0:
            log.info("synthetic Ariel data: %d/%d planets written", i + 1, len(planets))
    manifest = {"seed": seed, **settings, "files": files}
    write_json(out_dir / "manifest.json", manifest)
    return manifest
