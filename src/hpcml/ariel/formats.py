"""The Ariel ML Data Challenge 2021 text formats, parsed strictly and fast.

Noisy files: six ``# key: value`` header lines, then 55 rows (wavelengths) of 300
tab-separated relative fluxes. Params files: ``# sma:`` and ``# incl:``, then one row
of 55 Rp/Rs values. LF and CRLF both parse. Any deviation raises
:class:`ArielFormatError` naming the file and line; nothing is zero-filled or shifted.

Numbers are parsed by a compiled byte loop straight into the caller's float32 array:
the text is read once and never split into Python strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

N_WAVELENGTHS = 55
N_TIMESTEPS = 300
STELLAR_KEYS = ("star_temp", "star_logg", "star_rad", "star_mass", "star_k_mag", "period")
PARAM_KEYS = ("sma", "incl")
NAME_RE = re.compile(r"^(\d{4})_(\d{2})_(\d{2})\.txt$")


class ArielFormatError(ValueError):
    """A challenge file does not have the expected format."""


@dataclass(frozen=True)
class FileId:
    planet: int
    spot: int
    photon: int


def parse_name(path: str | Path) -> FileId:
    match = NAME_RE.match(Path(path).name)
    if not match:
        raise ArielFormatError(f"{path}: file name is not AAAA_BB_CC.txt (planet, spot instance, photon instance)")
    return FileId(*(int(g) for g in match.groups()))


# status codes of _parse_rows
_OK, _BAD_CHAR, _TOO_MANY_VALUES, _TOO_MANY_ROWS = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True)
def _parse_rows(buf, start, out, row_counts):  # pragma: no cover - compiled
    """Parse whitespace-separated decimals from buf[start:] into out; count values per row.

    Returns (values, rows, status, byte offset of the problem).
    """
    pow10 = 10.0 ** np.arange(0, 23)
    n = len(buf)
    i = start
    k = 0
    row = 0
    in_row = 0
    while i < n:
        c = buf[i]
        if c == 10:
            if in_row > 0:
                if row >= len(row_counts):
                    return k, row, 3, i
                row_counts[row] = in_row
                row += 1
                in_row = 0
            i += 1
            continue
        if c == 9 or c == 13 or c == 32:
            i += 1
            continue
        token = i
        negative = False
        if c == 45 or c == 43:
            negative = c == 45
            i += 1
        mantissa = 0
        digits = 0
        scale = 0
        seen = 0
        while i < n and 48 <= buf[i] <= 57:
            if digits < 18:
                mantissa = mantissa * 10 + (buf[i] - 48)
                if mantissa > 0:
                    digits += 1
            else:
                scale += 1
            seen += 1
            i += 1
        if i < n and buf[i] == 46:
            i += 1
            while i < n and 48 <= buf[i] <= 57:
                if digits < 18:
                    mantissa = mantissa * 10 + (buf[i] - 48)
                    if mantissa > 0:
                        digits += 1
                    scale -= 1
                seen += 1
                i += 1
        if seen == 0:
            return k, row, 1, token
        if i < n and (buf[i] == 101 or buf[i] == 69):
            i += 1
            exp_negative = False
            if i < n and (buf[i] == 45 or buf[i] == 43):
                exp_negative = buf[i] == 45
                i += 1
            exponent = 0
            exp_digits = 0
            while i < n and 48 <= buf[i] <= 57:
                exponent = exponent * 10 + (buf[i] - 48)
                exp_digits += 1
                i += 1
            if exp_digits == 0:
                return k, row, 1, token
            scale += -exponent if exp_negative else exponent
        if i < n and not (buf[i] == 9 or buf[i] == 10 or buf[i] == 13 or buf[i] == 32):
            return k, row, 1, token
        value = float(mantissa)
        if scale < 0:
            value = value / pow10[-scale] if -scale < 23 else value * 10.0**scale
        elif scale > 0:
            value = value * pow10[scale] if scale < 23 else value * 10.0**scale
        if k >= len(out):
            return k, row, 2, token
        out[k] = -value if negative else value
        k += 1
        in_row += 1
    if in_row > 0:
        if row >= len(row_counts):
            return k, row, 3, n
        row_counts[row] = in_row
        row += 1
    return k, row, 0, n


def _header(raw: bytes, path: Path, keys: tuple[str, ...]) -> tuple[dict[str, float], int]:
    """Parse the leading ``# key: value`` lines; return them and where the data starts."""
    values: dict[str, float] = {}
    offset = 0
    line_no = 0
    while offset < len(raw) and raw[offset:offset + 1] == b"#":
        end = raw.find(b"\n", offset)
        end = len(raw) if end < 0 else end
        line_no += 1
        text = raw[offset + 1:end].decode("ascii", "replace").strip()
        key, sep, value = text.partition(":")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise ArielFormatError(f"{path}:{line_no}: header line '#{text}' is not '# key: number'") from None
        if not sep:
            raise ArielFormatError(f"{path}:{line_no}: header line '#{text}' is not '# key: number'")
        offset = end + 1
    missing = [k for k in keys if k not in values]
    if missing:
        raise ArielFormatError(f"{path}:{line_no + 1}: missing header key(s) {', '.join(missing)} (expected {', '.join(keys)})")
    return values, offset


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _parse_body(raw: bytes, offset: int, path: Path, out: np.ndarray, rows: int, cols: int) -> None:
    flat = out.reshape(-1)
    counts = np.zeros(rows, dtype=np.int64)
    n_values, n_rows, status, where = _parse_rows(np.frombuffer(raw, dtype=np.uint8), offset, flat, counts)
    header_lines = _line_of(raw, offset) - 1
    if status == _BAD_CHAR:
        end = min(len(raw), where + 24)
        token = raw[where:end].split(maxsplit=1)[0].decode("ascii", "replace") if raw[where:end].strip() else ""
        raise ArielFormatError(f"{path}:{_line_of(raw, where)}: value {token!r} is not a number")
    if status in (_TOO_MANY_VALUES, _TOO_MANY_ROWS) or n_rows > rows:
        raise ArielFormatError(f"{path}:{_line_of(raw, where)}: more than {rows} data rows of {cols} values")
    bad = np.flatnonzero(counts[:n_rows] != cols)
    if bad.size:
        row = int(bad[0])
        raise ArielFormatError(f"{path}:{header_lines + row + 1}: data row {row + 1} has {counts[row]} values, expected {cols}")
    if n_rows < rows:
        raise ArielFormatError(f"{path}:{header_lines + n_rows + 1}: file has {n_rows} data rows, expected {rows} (empty or truncated?)")


def read_noisy(path: str | Path, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (float32 [55, 300]) with the light curves; return the six stellar parameters."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise ArielFormatError(f"{path}:1: file is empty")
    header, offset = _header(raw, path, STELLAR_KEYS)
    _parse_body(raw, offset, path, out, N_WAVELENGTHS, N_TIMESTEPS)
    return np.array([header[k] for k in STELLAR_KEYS], dtype=np.float64)


def read_params(path: str | Path) -> tuple[np.ndarray, float, float]:
    """(Rp/Rs [55], sma in metres, inclination in degrees) from a params file."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise ArielFormatError(f"{path}:1: file is empty")
    header, offset = _header(raw, path, PARAM_KEYS)
    targets = np.empty((1, N_WAVELENGTHS), dtype=np.float32)
    _parse_body(raw, offset, path, targets, 1, N_WAVELENGTHS)
    return targets[0], header["sma"], header["incl"]
