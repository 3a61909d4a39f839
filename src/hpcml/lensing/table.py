"""Reading a user's table of lens parameters (CSV or Parquet), with row-level checks.

Every value that reaches the simulator must be one it handles correctly: a table that
reads but holds no lens, an id that is not a whole number, a lens flatter or a source
farther than the image finder and the distance table are accurate for would otherwise
give a catalogue that looks fine and is not.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hpcml.lensing.conventions import shear_polar_to_cartesian

REQUIRED = ["theta_e", "q", "phi", "gamma", "phi_gamma", "z_lens", "z_src"]
POSITION_PAIRS = [("source_x", "source_y"), ("image_x", "image_y")]
CSV, PARQUET = (".csv", ".txt"), (".parquet", ".pq")
# The flattest lens the priors can draw (Keeton e < 0.99); the image finder loses
# images of much flatter ones (q = 1e-12 found none).
Q_MIN = 0.01
# Distances come from a table up to the largest z_src; beyond z = 20 its spline loses
# accuracy for every lens (1e-9 relative at z = 100, 3e-3 at 1000).
Z_MAX = 20.0
# Whole numbers a float64 holds exactly.
ID_MAX = 2**53
# Galaxy and group lenses (the SIE's domain) have Einstein radii of 0.1-10 arcsec; clusters
# reach ~50. Outside (1e-3, 100] a value is a unit slip (degrees, radians, mas), not a lens.
THETA_E_RANGE = (1e-3, 100.0)
# Angles are radians: a value beyond 2 pi is almost always degrees.
ANGLE_MAX = 2 * np.pi
# Source and image positions within this many Einstein radii of the lens centre.
POSITION_MAX_THETA_E = 100.0


class LensTableError(ValueError):
    """A lens table is missing a column or holds an impossible value."""


def read_lens_table(path: str | Path) -> pd.DataFrame:
    """Read and check a table; the result has lenstronomy-convention columns.

    Errors name the file, the row (as a CSV line number, or a Parquet row index) and
    the column, so a user can fix the value at once.
    """
    path = Path(path)
    frame, where = _read(path)
    if frame.empty:
        raise LensTableError(f"{path}: the table has no lens rows (only a header?); it needs one row per lens")
    pair = _check_columns(path, frame)
    for column in REQUIRED + list(pair) + (["lens_id"] if "lens_id" in frame.columns else []):
        frame[column] = _numbers(frame, column, where)

    checks = [
        ("theta_e", frame.theta_e <= 0, "must be > 0 arcsec"),
        ("theta_e", (frame.theta_e < THETA_E_RANGE[0]) | (frame.theta_e > THETA_E_RANGE[1]),
         f"is outside [{THETA_E_RANGE[0]:g}, {THETA_E_RANGE[1]:g}] arcsec: is it in another unit? (Einstein radii of galaxy lenses are 0.1-10 arcsec)"),
        ("phi", frame.phi.abs() > ANGLE_MAX, "is beyond 2 pi: angles are in radians (degrees x pi / 180)"),
        ("phi_gamma", frame.phi_gamma.abs() > ANGLE_MAX, "is beyond 2 pi: angles are in radians (degrees x pi / 180)"),
        ("q", (frame.q < Q_MIN) | (frame.q > 1), f"must be in [{Q_MIN}, 1]"),
        ("gamma", (frame.gamma < 0) | (frame.gamma >= 1), "must be in [0, 1)"),
        ("z_lens", frame.z_lens <= 0, "must be > 0"),
        ("z_src", frame.z_src <= frame.z_lens, "must be greater than z_lens"),
        ("z_src", frame.z_src > Z_MAX, f"must be at most {Z_MAX:g}"),
    ]
    for column in pair:
        checks.append((column, frame[column].abs() > POSITION_MAX_THETA_E * frame.theta_e,
                       f"arcsec is over {POSITION_MAX_THETA_E:g} Einstein radii from the lens centre: is it in another unit?"))
    if "lens_id" in frame.columns:
        ids = frame.lens_id
        checks.append(("lens_id", (ids != np.floor(ids)) | (ids < 0) | (ids >= ID_MAX), "must be a whole number in [0, 2^53)"))
    for column, bad_mask, rule in checks:
        _refuse(frame, column, bad_mask.to_numpy(), f"column {column} = {{value}} {rule}", where)

    if "lens_id" in frame.columns:
        duplicated = np.flatnonzero(frame.lens_id.duplicated().to_numpy())
        if duplicated.size:
            raise LensTableError(f"{where(frame.index[duplicated[0]])}: lens_id {frame.lens_id.iloc[duplicated[0]]:.0f} appears twice")
    else:
        frame["lens_id"] = np.arange(len(frame))

    gamma1, gamma2 = shear_polar_to_cartesian(frame.gamma.to_numpy(), frame.phi_gamma.to_numpy())
    out = frame[["lens_id", "theta_e", "q", "phi", "z_lens", "z_src", *pair]].copy()
    out["gamma1"], out["gamma2"] = gamma1, gamma2
    out["lens_id"] = out["lens_id"].astype(np.int64)
    return out.reset_index(drop=True)


def _read(path: Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """The table's rows, indexed so that ``where(index)`` names a row as the user sees it.

    Blank CSV lines are dropped (they hold no lens) but keep the line numbers right.
    """
    if not path.exists():
        raise LensTableError(f"lens table not found: {path} (config key lensing.table)")
    if not path.is_file():
        raise LensTableError(f"lens table {path} is not a file (config key lensing.table)")
    suffix = path.suffix.lower()
    if suffix in CSV:
        try:
            # pandas would take an extra first value on every line for an index, shifting every column
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(path, skip_blank_lines=False, index_col=False)
        except pd.errors.EmptyDataError:
            raise LensTableError(f"{path}: the file is empty; a lens table has a header line and one line per lens") from None
        except pd.errors.ParserWarning:
            raise LensTableError(f"{path}: the lines hold more values than the header line names columns") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise LensTableError(f"{path}: not a readable CSV table ({str(error).strip()})") from None
        frame = frame[~frame.isna().all(axis=1)].copy()
        return frame, lambda i: f"{path}, line {i + 2}"
    if suffix in PARQUET:
        try:
            frame = pd.read_parquet(path)
        except (ValueError, OSError) as error:
            raise LensTableError(f"{path}: not a readable Parquet file ({error})") from None
        # a frame saved with lens_id as its index keeps it as a column here
        frame = frame.reset_index() if any(name is not None for name in frame.index.names) else frame.reset_index(drop=True)
        return frame, lambda i: f"{path}, row {i}"
    raise LensTableError(f"{path}: a lens table is a CSV ({', '.join(CSV)}) or Parquet ({', '.join(PARQUET)}) file (config key lensing.table)")


def _check_columns(path: Path, frame: pd.DataFrame) -> tuple[str, str]:
    """The position columns to use; every required column present, none twice."""
    names = [str(c) for c in frame.columns]
    # pandas renames a repeated CSV column 'q' to 'q.1'
    twice = sorted({n for n in names if names.count(n) > 1} | {m.group(1) for n in names if (m := re.fullmatch(r"(.+)\.\d+", n)) and m.group(1) in names})
    if twice:
        raise LensTableError(f"{path}: column(s) {', '.join(twice)} appear more than once; keep one of each")
    missing = [c for c in REQUIRED if c not in names]
    given = [p for p in POSITION_PAIRS if any(c in names for c in p)]
    if len(given) > 1:
        raise LensTableError(f"{path}: give source_x, source_y or image_x, image_y, not both (which would the simulation use?)")
    if not given:
        missing.append("source_x and source_y, or image_x and image_y")
    else:
        missing += [c for c in given[0] if c not in names]
    if missing:
        raise LensTableError(f"{path}: missing column(s): {', '.join(missing)}")
    return given[0]


def _numbers(frame: pd.DataFrame, column: str, where: Callable[[int], str]) -> np.ndarray:
    """A column as finite floats; a word, a blank, a true/false or an overflow is refused."""
    raw = frame[column]
    values = np.full(len(raw), np.nan) if pd.api.types.is_bool_dtype(raw) else pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    _refuse(frame, column, ~np.isfinite(values), f"column {column} is not a finite number ({{value}})", where, raw)
    return values


def _refuse(frame: pd.DataFrame, column: str, bad: np.ndarray, message: str, where: Callable[[int], str], shown: pd.Series | None = None) -> None:
    """Raise for the first row in ``bad``: ``message`` with its ``{value}`` (as written), and how many more."""
    rows = np.flatnonzero(bad)
    if rows.size:
        value = (frame[column] if shown is None else shown).iloc[rows[0]]
        text = repr(value) if isinstance(value, str) else str(value)
        more = f" (and {rows.size - 1} more rows)" if rows.size > 1 else ""
        raise LensTableError(f"{where(frame.index[rows[0]])}: {message.format(value=text)}{more}")
