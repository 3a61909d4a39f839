"""Solar elevation for many captures at once: day or night depends on where and when.

NOAA's solar-position equations (Meeus' low-precision series, as in NOAA's solar
calculator spreadsheet) are vectorised over numpy arrays: a few hundredths of a degree,
far better than day/night and cloud brightness need, and no astronomy package is
imported by the pipeline's steps. Refraction is left out (it lifts the sun by about half
a degree at the horizon), so the elevation is geometric.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

_DAY_NS = 86_400 * 10**9
_UNIX_EPOCH_JD = 2440587.5
_J2000_JD = 2451545.0


def solar_elevation(timestamp_ns: ArrayLike, latitude: ArrayLike, longitude: ArrayLike) -> np.ndarray:
    """Geometric elevation of the sun's centre in degrees (negative: below the horizon).

    ``timestamp_ns`` are nanoseconds since 1970 (UTC); latitude and longitude in degrees
    (east positive). Arrays broadcast against each other; NaN positions give NaN.
    """
    ts = np.asarray(timestamp_ns, dtype=np.int64)
    days, rest = np.divmod(ts, _DAY_NS)
    jd = _UNIX_EPOCH_JD + days + rest / _DAY_NS
    t = (jd - _J2000_JD) / 36525.0  # Julian centuries since J2000
    mean_long = np.radians((280.46646 + t * (36000.76983 + 0.0003032 * t)) % 360.0)
    anomaly = np.radians(357.52911 + t * (35999.05029 - 0.0001537 * t))
    eccentricity = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    centre = np.radians(
        np.sin(anomaly) * (1.914602 - t * (0.004817 + 0.000014 * t))
        + np.sin(2 * anomaly) * (0.019993 - 0.000101 * t)
        + np.sin(3 * anomaly) * 0.000289
    )
    omega = np.radians(125.04 - 1934.136 * t)
    apparent_long = mean_long + centre - np.radians(0.00569 + 0.00478 * np.sin(omega))
    obliquity = np.radians(
        23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0 + 0.00256 * np.cos(omega)
    )
    declination = np.arcsin(np.sin(obliquity) * np.sin(apparent_long))
    y = np.tan(obliquity / 2) ** 2
    equation_of_time = 4 * np.degrees(  # minutes
        y * np.sin(2 * mean_long)
        - 2 * eccentricity * np.sin(anomaly)
        + 4 * eccentricity * y * np.sin(anomaly) * np.cos(2 * mean_long)
        - 0.5 * y**2 * np.sin(4 * mean_long)
        - 1.25 * eccentricity**2 * np.sin(2 * anomaly)
    )
    minutes_utc = rest / 60e9
    true_solar_minutes = minutes_utc + equation_of_time + 4 * np.asarray(longitude, dtype=np.float64)
    hour_angle = np.radians(true_solar_minutes / 4.0 - 180.0)
    lat = np.radians(np.asarray(latitude, dtype=np.float64))
    cos_zenith = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    return 90.0 - np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
