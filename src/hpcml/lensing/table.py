"""Reading a user's table of lens parameters (CSV or Parquet), with row-level checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpcml.lensing.conventions import shear_polar_to_cartesian

REQUIRED = ["theta_e", "q", "phi", "gamma", "phi_gamma", "z_lens", "z_src"]
POSITION_PAIRS = [("source_x", "source_y"), ("image_x", "image_y")]


class LensTableError(ValueError):
    """A lens table is missing a column or holds an impossible value."""


def read_lens_table(path: str | Path) -> pd.DataFrame:
    """Read and check a table; the result has lenstronomy-convention columns.

    Errors name the file, the row (as a CSV line number, or a Parquet row index) and
    the column, so a user can fix the value at once.
    """
    path = Path(path)
    if not path.exists():
        raise LensTableError(f"lens table not found: {path} (config key lensing.table)")
    is_csv = path.suffix.lower() in (".csv", ".txt")
    frame = pd.read_csv(path) if is_csv else pd.read_parquet(path)
    where = (lambda i: f"{path}, line {i + 2}") if is_csv else (lambda i: f"{path}, row {i}")  # noqa: E731

    missing = [c for c in REQUIRED if c not in frame.columns]
    pair = next((p for p in POSITION_PAIRS if all(c in frame.columns for c in p)), None)
    if pair is None:
        missing.append("source_x and source_y, or image_x and image_y")
    if missing:
        raise LensTableError(f"{path}: missing column(s): {', '.join(missing)}")

    columns = REQUIRED + list(pair)
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise LensTableError(f"{where(bad[0])}: column {column} is not a finite number ({frame[column].iloc[bad[0]]!r})")
        frame[column] = values

    checks = [
        ("theta_e", frame.theta_e <= 0, "must be > 0 arcsec"),
        ("q", (frame.q <= 0) | (frame.q > 1), "must be in (0, 1]"),
        ("gamma", (frame.gamma < 0) | (frame.gamma >= 1), "must be in [0, 1)"),
        ("z_lens", frame.z_lens <= 0, "must be > 0"),
        ("z_src", frame.z_src <= frame.z_lens, "must be greater than z_lens"),
    ]
    for column, bad_mask, rule in checks:
        bad = np.flatnonzero(bad_mask.to_numpy())
        if bad.size:
            raise LensTableError(f"{where(bad[0])}: column {column} = {frame[column].iloc[bad[0]]} {rule}")

    if "lens_id" in frame.columns:
        duplicated = np.flatnonzero(frame.lens_id.duplicated().to_numpy())
        if duplicated.size:
            raise LensTableError(f"{where(duplicated[0])}: lens_id {frame.lens_id.iloc[duplicated[0]]} appears twice")
    else:
        frame["lens_id"] = np.arange(len(frame))

    gamma1, gamma2 = shear_polar_to_cartesian(frame.gamma.to_numpy(), frame.phi_gamma.to_numpy())
    out = frame[["lens_id", "theta_e", "q", "phi", "z_lens", "z_src", *pair]].copy()
    out["gamma1"], out["gamma2"] = gamma1, gamma2
    out["lens_id"] = out["lens_id"].astype(np.int64)
    return out.reset_index(drop=True)
