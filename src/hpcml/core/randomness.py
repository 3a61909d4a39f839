"""Counter-based random numbers: a value depends only on (seed, item index, stream).

This is what makes any lens (or any synthetic planet) regenerable on its own and
makes results independent of the shard count: there is no generator state carried
from one item to the next. The mixer is SplitMix64's finaliser, vectorised in uint64
arithmetic; it passes BigCrush when fed a counter, which is how it is used here.
"""
from __future__ import annotations

import numpy as np
from scipy import special

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_STREAM = np.uint64(0xD1B54A32D192ED03)


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, index: np.ndarray, stream: int | np.ndarray) -> np.ndarray:
    """Uniform floats in the open interval (0, 1), one per (index, stream) pair."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed) * _GOLDEN + np.uint64(0x632BE59BD9B4E019))
        idx = np.asarray(index, dtype=np.uint64)
        st = np.asarray(stream, dtype=np.uint64)
        z = _mix(key ^ (idx * _GOLDEN)) + (st + np.uint64(1)) * _STREAM
        bits = _mix(_mix(z)) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) * 2.0**-53


def normals(seed: int, index: np.ndarray, stream: int | np.ndarray) -> np.ndarray:
    """Standard normal deviates by inverse transform of :func:`uniforms`."""
    return special.ndtri(uniforms(seed, index, stream))


def truncated_normals(
    seed: int, index: np.ndarray, stream: int, mean: float, sd: float, low: float, high: float
) -> np.ndarray:
    """Normal(mean, sd) restricted to [low, high), by inverse transform."""
    a, b = special.ndtr((low - mean) / sd), special.ndtr((high - mean) / sd)
    u = a + uniforms(seed, index, stream) * (b - a)
    return np.clip(mean + sd * special.ndtri(u), low, np.nextafter(high, low))
