"""Synthetic SAGE captures in exactly the group's format, with skies both cameras agree on.

Each capture draws its own cloud field (a random smooth field thresholded to a random
cover; seeded from (seed, capture index), so any capture is regenerable alone and no two
look alike). The same field, sampled where each camera looks, makes the clouds of both
modalities: whiter or greyer than the sky in the optical half (blue by day, dark with
stars and faint cloud glow at night, tinted at twilight, from the node's real solar
elevation) and warmer than the clear sky in the thermal CSV (low clouds more than high
ones). The thermal camera sees the ``sage.preprocess.box`` default [0.1, 0.1, 0.9, 0.9]
of the optical half, so a crop to that box lines the two up. Positions beyond the
scanner's eight sky positions show a horizon with ground below.

Files: ``rgb/<node>/<ts>_6144x2048_position<k>.jpg`` (optical left half, thermal
rendering right half, sized ``scale`` x 6144x2048), ``thermal/<node>/<ts>_right_336x252_14bit.thermal.celsius_position<k>.csv``,
``nodes.csv``, ``metadata.parquet`` (as ``sage_data_client.query`` returns it) and
``manifest.json``, written last: data files are written plainly and the manifest marks
the set complete (the workflow waits for it), which spares a sync per file.
"""
from __future__ import annotations

import functools
import io
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from hpcml.core.atomic import write_json, write_parquet, write_text
from hpcml.core.config import ConfigError
from hpcml.sage.layout import (
    FULL_HEIGHT, FULL_WIDTH, NODES_FILE, RGB, SYNTHETIC_SKY_POSITIONS, THERMAL, THERMAL_HEIGHT, THERMAL_WIDTH,
    rgb_name, synthetic_nodes, synthetic_timestamp, thermal_name,
)
from hpcml.sage.solar import solar_elevation
from hpcml.sage.thermal import HEADER, header_text

log = logging.getLogger(__name__)
GENERATOR = "hpcml sage synth"
PARTIAL = ".synthetic-partial"
MANIFEST = "manifest.json"
BOX = (0.1, 0.1, 0.9, 0.9)  # the thermal field of view in the optical half (left, top, right, bottom)
FIELD = (48, 72)  # coarse cloud-field grid over the optical half (rows, columns)
JPEG_QUALITY = 85
# Kinds of damage, each with the folder of the file the consistency report must list.
CORRUPTIONS = {"truncated_jpg": RGB, "thermal_wrong_header": THERMAL, "thermal_wrong_size": THERMAL,
               "rgb_without_thermal": RGB, "thermal_without_rgb": THERMAL}
URL = "https://storage.sagecontinuum.org/api/v1/data/mobotix-scan/sage-mobotix-scan-0.3.0/{node_id}/{ts}-{name}"
# Stream ids of the seeded generators: one per capture (1, index) and one for the choice of bad files.
_CAPTURE_STREAM, _CORRUPT_STREAM = 1, 2
# Ironbow-like palette of the thermal rendering, cold to warm.
_PALETTE = np.array([[0, 0, 10], [70, 0, 120], [190, 30, 90], [245, 120, 20], [255, 220, 80], [255, 255, 240]], dtype=np.float32)


def write_synthetic(out: Path, settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Write captures of every node, time and position in ``settings`` (``sage.synthetic``) into ``out``; return the manifest.

    ``n_corrupt`` captures of each kind in :data:`CORRUPTIONS` are spoilt on purpose and
    listed in the manifest, so the pairing's consistency report can be checked against it.
    """
    out, tic = Path(out), time.perf_counter()
    _start(out)
    nodes = synthetic_nodes(settings["n_nodes"])
    positions = list(settings["positions"])
    grid = np.array([(k, t, p) for k in range(len(nodes)) for t in range(settings["n_times"]) for p in positions], dtype=np.int64)
    timestamps = np.array([synthetic_timestamp(int(k), int(t), int(p)) for k, t, p in grid], dtype=np.int64)
    latitude = np.array([nodes[k][1] for k in grid[:, 0]])
    elevation = solar_elevation(timestamps, latitude, [nodes[k][2] for k in grid[:, 0]])
    spoilt = _choose_corruptions(seed, len(grid), settings["n_corrupt"])
    renderer = Renderer(settings["scale"])
    rows, corrupt = [], []
    for i, ((k, _, position), ts) in enumerate(zip(grid, timestamps)):
        node = nodes[k][0]
        sky = Sky.draw(np.random.default_rng([seed, _CAPTURE_STREAM, i]), float(elevation[i]), float(latitude[i]), int(position))
        jpg, csv = renderer.jpg(sky), renderer.csv(sky)
        kind = spoilt.get(i)
        jpg, csv = _spoil(kind, jpg, csv, i)
        files = {RGB: (rgb_name(int(ts), int(position)), jpg), THERMAL: (thermal_name(int(ts), int(position)), csv)}
        for modality, (name, data) in files.items():
            if data is None:
                continue
            path = out / modality / node / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            rows.append((int(ts), node, int(position), name))
        if kind:
            listed = CORRUPTIONS[kind]
            corrupt.append({"kind": kind, "file": f"{listed}/{node}/{files[listed][0]}"})
        if (i + 1) % 500 == 0:
            log.info("synthetic SAGE captures: %d/%d written", i + 1, len(grid))
    write_text(out / NODES_FILE, "vsn,latitude,longitude\n" + "".join(f"{v},{lat},{lon}\n" for v, lat, lon in nodes))
    write_parquet(out / "metadata.parquet", _metadata(rows, nodes))
    seconds = time.perf_counter() - tic
    manifest = {
        "generator": GENERATOR, "seed": seed, **settings, "captures": len(grid), "files": len(rows),
        "pairs": len(grid) - len(corrupt), "corrupt": corrupt, "day_fraction": float((elevation > 0).mean()),
        "jpg_size": [renderer.width * 2, renderer.height], "seconds": round(seconds, 2),
    }
    write_json(out / MANIFEST, manifest)
    (out / PARTIAL).unlink()
    log.info("synthetic SAGE set: %d captures (%d spoilt on purpose) from %d nodes in %s, %.1f s", len(grid), len(corrupt), len(nodes), out, seconds)
    return manifest


def _start(out: Path) -> None:
    """Clear what an earlier run of the generator left in ``out``, and only that.

    A set with fewer captures must not inherit files of a larger one; a folder of real
    captures (no manifest or marker of ours) is never touched.
    """
    out.mkdir(parents=True, exist_ok=True)
    ours = (out / PARTIAL).exists()
    if (out / MANIFEST).exists():
        try:
            ours = ours or json.loads((out / MANIFEST).read_text()).get("generator") == GENERATOR
        except (json.JSONDecodeError, AttributeError):
            pass
    present = [out / d for d in (RGB, THERMAL) if (out / d).exists()]
    if present and not ours:
        raise FileExistsError(f"{out} already holds {' and '.join(p.name + '/' for p in present)} that the synthetic generator did not "
                              "write; give an empty or new folder")
    (out / PARTIAL).write_text("synthetic captures being written; a rerun of 'hpcml sage synth' replaces them\n")
    (out / MANIFEST).unlink(missing_ok=True)
    for folder in present:
        shutil.rmtree(folder)


def _choose_corruptions(seed: int, n_captures: int, n_corrupt: int) -> dict[int, str]:
    """Capture index -> kind of damage, ``n_corrupt`` distinct captures per kind."""
    wanted = n_corrupt * len(CORRUPTIONS)
    if wanted >= n_captures:
        raise ConfigError(f"sage.synthetic.n_corrupt = {n_corrupt} spoils {wanted} of {n_captures} captures; lower it or add captures")
    chosen = np.random.default_rng([seed, _CORRUPT_STREAM]).choice(n_captures, wanted, replace=False)
    kinds = list(CORRUPTIONS)
    return {int(i): kinds[j // n_corrupt] for j, i in enumerate(chosen)}


def _spoil(kind: str | None, jpg: bytes, csv: bytes, i: int) -> tuple[bytes | None, bytes | None]:
    """The capture's files after the damage ``kind`` (alternating between two variants by capture)."""
    if kind == "truncated_jpg":
        return jpg[: len(jpg) * 2 // 3], csv
    if kind == "thermal_wrong_header":
        key, value = HEADER[0] if i % 2 else HEADER[-1]
        wrong = f"{key};{'left' if i % 2 else 'degrees Fahrenheit'}\n"
        return jpg, csv.replace(f"{key};{value}\n".encode(), wrong.encode(), 1)
    if kind == "thermal_wrong_size":
        lines = csv.split(b"\n")
        if i % 2:
            return jpg, b"\n".join(lines[:-13]) + b"\n"  # 12 rows missing
        row = len(HEADER) + 1 + 100
        lines[row] = lines[row].rsplit(b";", 1)[0]  # one value missing
        return jpg, b"\n".join(lines)
    if kind == "rgb_without_thermal":
        return jpg, None
    if kind == "thermal_without_rgb":
        return None, csv
    return jpg, csv


def _metadata(rows: list[tuple[int, str, int, str]], nodes: list[tuple[str, float, float]]) -> pd.DataFrame:
    """One row per file written, in the columns ``sage_data_client.query`` returns (meta values are strings there)."""
    node_ids = {vsn: f"000048b02d{k + 0x15a0:06x}" for k, (vsn, _, _) in enumerate(nodes)}
    ts, vsn, position, name = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return pd.DataFrame({
        "timestamp": pd.to_datetime(np.array(ts, dtype=np.int64), unit="ns", utc=True),
        "name": "upload",
        "value": [URL.format(node_id=node_ids[v], ts=t, name=n) for v, t, n in zip(vsn, ts, name)],
        "meta.filename": name,
        "meta.host": [f"{node_ids[v]}.ws-nxcore" for v in vsn],
        "meta.job": "sage",
        "meta.node": [node_ids[v] for v in vsn],
        "meta.plugin": "registry.sagecontinuum.org/sage/mobotix-scan:0.3.0",
        "meta.position": [str(p) for p in position],
        "meta.task": "mobotix-scan",
        "meta.vsn": vsn,
    })


@dataclass(frozen=True)
class Sky:
    """What one capture shows: a coarse cloud field and the weather and light around it."""

    field: np.ndarray  # FIELD-shaped, zero mean, unit spread; clouds where it exceeds `threshold`
    threshold: float
    elevation: float  # solar elevation, degrees
    air: float  # air temperature near the ground, degrees Celsius
    clear: float  # clear-sky temperature at the centre of view
    warmth: float  # share of (air - clear) a thick cloud adds: low clouds near 1, high ones less
    position: int
    noise_seed: int

    @classmethod
    def draw(cls, rng: np.random.Generator, elevation: float, latitude: float, position: int) -> Sky:
        white = np.fft.rfft2(rng.standard_normal(FIELD))
        ky = np.fft.fftfreq(FIELD[0])[:, None] * FIELD[0]
        kx = np.fft.rfftfreq(FIELD[1])[None, :] * FIELD[1]
        slope = rng.uniform(2.6, 4.0)  # steep: broad stratus, shallow: broken cumulus
        field = np.fft.irfft2(white * (kx**2 + ky**2 + 1.0) ** (-slope / 4), s=FIELD)
        field = (field - field.mean()) / field.std()
        draw = rng.random()
        cover = 0.0 if draw < 0.15 else rng.uniform(0.9, 1.0) if draw < 0.3 else rng.uniform(0.05, 0.9)
        threshold = float(np.quantile(field, 1.0 - cover)) if cover > 0 else float(field.max()) + 1.0
        air = 24.0 - 0.6 * (latitude - 30.0) + 8.0 * max(np.sin(np.radians(elevation)), 0.0) - 3.0 * (elevation < 0) + rng.normal(0, 1.5)
        return cls(field, threshold, elevation, float(air), float(air - rng.uniform(25, 40)), float(rng.uniform(0.35, 1.0)),
                   position, int(rng.integers(2**63)))


class Renderer:
    """Both images of a :class:`Sky` at one JPG size; the interpolation from the coarse field is fixed per size."""

    def __init__(self, scale: float) -> None:
        self.width = max(1, round(FULL_WIDTH / 2 * scale))  # of each half
        self.height = max(1, round(FULL_HEIGHT * scale))
        self.optical = _Grid.across((0.0, 0.0, 1.0, 1.0), self.height, self.width)
        self.rendering = _Grid.across(BOX, self.height, self.width)
        self.thermal = _Grid.across(BOX, THERMAL_HEIGHT, THERMAL_WIDTH)

    def jpg(self, sky: Sky) -> bytes:
        """The dual image: optical left half, false-colour thermal right half, JPEG-encoded."""
        rng = np.random.default_rng([sky.noise_seed, 0])
        left = _optical(sky, self.optical, rng)
        heat = _temperature(sky, self.rendering, rng)
        lo, hi = np.percentile(heat, [1, 99])
        level = np.clip((heat - lo) / max(hi - lo, 1e-3), 0, 1) * (len(_PALETTE) - 1)
        right = np.stack([np.interp(level, np.arange(len(_PALETTE)), _PALETTE[:, c]) for c in range(3)], axis=-1)
        image = np.concatenate([left, right], axis=1).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()

    def csv(self, sky: Sky) -> bytes:
        """The thermal CSV: header, blank line, 252 rows of 336 temperatures (two decimals)."""
        heat = _temperature(sky, self.thermal, np.random.default_rng([sky.noise_seed, 1]))
        return header_text().encode() + format_celsius(heat)


@dataclass(frozen=True)
class _Grid:
    """Pixel centres of an image over part of the optical half, with the linear maps from the coarse field onto them."""

    u: np.ndarray  # (1, W) horizontal fraction of the optical half
    v: np.ndarray  # (H, 1) vertical fraction, 0 at the top
    rows: np.ndarray  # (H, FIELD[0])
    cols: np.ndarray  # (FIELD[1], W)

    @classmethod
    def across(cls, box: tuple[float, float, float, float], height: int, width: int) -> _Grid:
        left, top, right, bottom = box
        u = left + (right - left) * (np.arange(width) + 0.5) / width
        v = top + (bottom - top) * (np.arange(height) + 0.5) / height
        return cls(u[None, :], v[:, None], _linear(v, FIELD[0]), _linear(u, FIELD[1]).T)

    def sample(self, field: np.ndarray) -> np.ndarray:
        return self.rows @ field @ self.cols


def _linear(coords: np.ndarray, n: int) -> np.ndarray:
    """Rows of weights that interpolate linearly between ``n`` nodes spread evenly over [0, 1]."""
    x = np.clip(coords, 0.0, 1.0) * (n - 1)
    i = np.minimum(x.astype(np.int64), n - 2)
    weights = np.zeros((len(coords), n))
    weights[np.arange(len(coords)), i] = 1.0 - (x - i)
    weights[np.arange(len(coords)), i + 1] = x - i
    return weights


def _thickness(sky: Sky, grid: _Grid) -> np.ndarray:
    """Cloud thickness in [0, 1] at each pixel: 0 clear, 1 opaque."""
    return np.clip((grid.sample(sky.field) - sky.threshold) / 0.8, 0.0, 1.0)


def _ground(sky: Sky, grid: _Grid) -> np.ndarray | None:
    """Where the ground hides the sky (positions past the sky-looking ones), else None."""
    if sky.position in SYNTHETIC_SKY_POSITIONS:
        return None
    horizon = 0.55 + 0.1 * np.sin(sky.position) + 0.03 * np.sin(12.0 * grid.u + sky.position)
    return grid.v > horizon


def _temperature(sky: Sky, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """Degrees Celsius: the clear sky (a gentle tilt across the view) warmed where clouds are, plus sensor noise."""
    angle = 0.785 * sky.position
    tilt = 2.5 * (np.cos(angle) * (grid.u - 0.5) + np.sin(angle) * (grid.v - 0.5))
    cloud = np.clip(1.8 * _thickness(sky, grid), 0.0, 1.0) * sky.warmth * (sky.air - 3.0 - sky.clear)
    heat = sky.clear + tilt + cloud
    ground = _ground(sky, grid)
    if ground is not None:
        heat = np.where(ground, sky.air + 4.0 * max(np.sin(np.radians(sky.elevation)), 0.0) + 1.5 * np.sin(9.0 * grid.u), heat)
    return heat + rng.normal(0.0, 0.12, heat.shape)


def _optical(sky: Sky, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """RGB floats 0-255: sky by daylight, twilight or night, clouds over it, stars in the clear night sky, sensor noise."""
    day = float(np.clip((sky.elevation + 6.0) / 12.0, 0.0, 1.0))
    day = day * day * (3 - 2 * day)  # smooth from civil dusk to full day
    dusk = float(np.exp(-((sky.elevation / 5.0) ** 2)))
    v = grid.v[..., None]
    top = _mix(np.array([6.0, 8.0, 20.0]), np.array([55.0, 115.0, 210.0]), day)
    bottom = _mix(np.array([12.0, 14.0, 28.0]), np.array([165.0, 195.0, 235.0]), day)
    sky_rgb = top + (bottom - top) * v + np.array([70.0, 25.0, -15.0]) * dusk * v
    thick = _thickness(sky, grid)[..., None]
    alpha = np.clip(1.5 * thick, 0.0, 1.0)
    grey = _mix(30.0 + 20.0 * thick, 245.0 * (1.0 - 0.55 * thick) * (0.35 + 0.65 * day), day)
    cloud = grey * np.array([1.0, 1.0, 1.04]) + np.array([25.0, 10.0, -5.0]) * dusk
    image = sky_rgb * (1.0 - alpha) + cloud * alpha
    stars = (rng.random(thick.shape[:2]) < 0.003 * (1.0 - day)) & (alpha[..., 0] < 0.1)
    image = image + 160.0 * stars[..., None]
    ground = _ground(sky, grid)
    if ground is not None:
        soil = _mix(np.array([10.0, 12.0, 8.0]), np.array([75.0, 100.0, 50.0]), day) * (1.0 + 0.15 * np.sin(40.0 * grid.u))[..., None]
        image = np.where(ground[..., None], soil, image)
    return image + rng.normal(0.0, 2.0, image.shape)


def _mix(night: np.ndarray | float, day: np.ndarray | float, weight: float) -> np.ndarray:
    return np.asarray(night) * (1.0 - weight) + np.asarray(day) * weight


@functools.cache
def _celsius_table() -> tuple[np.ndarray, np.ndarray]:
    """Text of every hundredth of a degree from -100.00 to 100.00, as padded bytes and a mask of the real characters."""
    text = [f"{c / 100:.2f}".encode() for c in range(-10_000, 10_001)]
    width = max(map(len, text))
    chars = np.zeros((len(text), width + 1), dtype=np.uint8)
    mask = np.zeros_like(chars, dtype=bool)
    for k, t in enumerate(text):
        chars[k, : len(t)] = np.frombuffer(t, dtype=np.uint8)
        mask[k, : len(t)] = True
    mask[:, -1] = True  # the separator's place
    return chars, mask


def format_celsius(values: np.ndarray) -> bytes:
    """Rows of ``;``-separated temperatures with two decimals, one line per row, without formatting a value in Python.

    Each value's text comes from a table of every hundredth of a degree (-100 to 100),
    and the masked characters of all values are gathered in one step.
    """
    chars, mask = _celsius_table()
    index = (np.clip(np.rint(values * 100.0), -10_000, 10_000) + 10_000).astype(np.int64)
    text, keep = chars[index], mask[index]  # (rows, cols, width + 1)
    text[..., -1] = ord(";")
    text[:, -1, -1] = ord("\n")
    return text[keep].tobytes()
