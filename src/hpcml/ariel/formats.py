"""The Ariel ML Data Challenge 2021 text formats, parsed strictly and fast.

Noisy files: six ``# key: value`` header lines, then 55 rows (wavelengths) of 300
tab-separated relative fluxes. Params files: ``# sma:`` and ``# incl:``, then one row
of 55 Rp/Rs values. LF and CRLF both parse. Any deviation raises
:class:`ArielFormatError` naming the file and line; nothing is zero-filled or shifted,
and no value that is not a finite number in its physical range gets through (a NaN
header or an overflowing flux would otherwise poison every statistic fitted later).

Numbers are parsed by a compiled byte loop straight into the caller's float32 array:
the text is read once and never split into Python strings. Messages quote at most a
short excerpt of the file, however long the offending line.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from hpcml.ariel.layout import N_WAVELENGTHS

STELLAR_KEYS = ("star_temp", "star_logg", "star_rad", "star_mass", "star_k_mag", "period")
PARAM_KEYS = ("sma", "incl")
NAME_RE = re.compile(r"^(\d{4})_(\d{2})_(\d{2})\.txt$")
# Header values outside these (closed unless stated) ranges are physically impossible.
POSITIVE = ("star_temp", "star_rad", "star_mass", "period", "sma")
INCLINATION = (0.0, 180.0)
EXCERPT = 40


class ArielFormatError(ValueError):
    """A challenge file does not have the expected format."""


@dataclass(frozen=True)
class FileId:
    planet: int
    spot: int
    photon: int


def parse_name(path: str | Path) -> FileId:
    name = Path(path).name
    match = NAME_RE.match(name)
    if not match:
        hint = "; the extension must be lower-case .txt" if NAME_RE.match(name.lower()) else ""
        raise ArielFormatError(f"{path}: file name is not AAAA_BB_CC.txt (planet, spot instance, photon instance){hint}")
    return FileId(*(int(g) for g in match.groups()))


def _excerpt(text: str) -> str:
    """``text`` quoted, cut to a few dozen characters: a whole 310 KB line helps nobody."""
    return repr(text if len(text) <= EXCERPT else text[:EXCERPT] + "...")


# status codes of _parse_rows
_OK, _BAD_CHAR, _LONG_ROW, _SHORT_ROW, _TOO_MANY_ROWS, _BARE_CR = range(6)


@numba.njit(cache=True, nogil=True)
def _parse_rows(buf, start, out):  # pragma: no cover - compiled
    """Parse whitespace-separated decimals from buf[start:] into out [rows, cols].

    Rows end at LF or CRLF (blank lines are skipped). Stops at the first problem, so
    the byte offset it returns points at the row or value at fault: (rows filled,
    status, byte offset, values in the current row).
    """
    pow10 = 10.0 ** np.arange(0, 23)
    rows, cols = out.shape
    n = len(buf)
    i = start
    row = 0
    col = 0
    while i < n:
        c = buf[i]
        if c == 10 or c == 13:
            if c == 13 and i + 1 < n and buf[i + 1] != 10:
                return row, _BARE_CR, i, col
            if col > 0:
                if col != cols:
                    return row, _SHORT_ROW, i, col
                row += 1
                col = 0
            i += 1
            continue
        if c == 9 or c == 32:
            i += 1
            continue
        if col == cols:
            return row, _LONG_ROW, i, col
        if row == rows:
            return row, _TOO_MANY_ROWS, i, col
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
            return row, _BAD_CHAR, token, col
        if i < n and (buf[i] == 101 or buf[i] == 69):
            i += 1
            exp_negative = False
            if i < n and (buf[i] == 45 or buf[i] == 43):
                exp_negative = buf[i] == 45
                i += 1
            exponent = 0
            exp_digits = 0
            while i < n and 48 <= buf[i] <= 57:
                if exponent < 100000:
                    exponent = exponent * 10 + (buf[i] - 48)
                exp_digits += 1
                i += 1
            if exp_digits == 0:
                return row, _BAD_CHAR, token, col
            scale += -exponent if exp_negative else exponent
        if i < n and not (buf[i] == 9 or buf[i] == 10 or buf[i] == 13 or buf[i] == 32):
            return row, _BAD_CHAR, token, col
        value = float(mantissa)
        if scale < 0:
            value = value / pow10[-scale] if -scale < 23 else value * 10.0**scale
        elif scale > 0:
            value = value * pow10[scale] if scale < 23 else value * 10.0**scale
        out[row, col] = -value if negative else value
        col += 1
    if col > 0:
        if col != cols:
            return row, _SHORT_ROW, n, col
        row += 1
    return row, _OK, n, 0


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _data_line(raw: bytes, offset: int, row: int) -> tuple[int, bytes]:
    """Line number and text of data row ``row`` (0-based) of a body starting at ``offset``."""
    line = _line_of(raw, offset)
    for text in raw[offset:].split(b"\n"):
        if text.strip():
            if row == 0:
                return line, text
            row -= 1
        line += 1
    raise AssertionError("row beyond the parsed body")


def _line_at(raw: bytes, offset: int) -> bytes:
    start = raw.rfind(b"\n", 0, offset) + 1
    end = raw.find(b"\n", offset)
    return raw[start:len(raw) if end < 0 else end]


def _bare_cr(path: Path, line: int) -> ArielFormatError:
    return ArielFormatError(
        f"{path}:{line}: carriage return (\\r) without a line feed: lines must end in LF or CRLF "
        "(a file with classic Mac, CR-only, line endings converts with: tr '\\r' '\\n' < OLD > NEW)"
    )


def _header(raw: bytes, path: Path, keys: tuple[str, ...]) -> tuple[dict[str, float], int]:
    """Parse the leading ``# key: value`` lines; return them and where the data starts.

    Every key of ``keys`` exactly once, no other key, every value a finite number in its
    physical range: a value given twice or a typo'd key is a question only the file's
    author can answer.
    """
    values: dict[str, float] = {}
    first_line: dict[str, int] = {}
    offset = 0
    line_no = 0
    while offset < len(raw) and raw[offset:offset + 1] == b"#":
        end = raw.find(b"\n", offset)
        end = len(raw) if end < 0 else end
        line_no += 1
        line = raw[offset + 1:end]
        if b"\r" in line.rstrip(b"\r"):
            raise _bare_cr(path, line_no)
        text = line.decode("ascii", "replace").strip()
        key, sep, value = (part.strip() for part in text.partition(":"))
        where = f"{path}:{line_no}"
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not key or number is None:
            raise ArielFormatError(f"{where}: header line {_excerpt('#' + text)} is not '# key: number'")
        if key not in keys:
            raise ArielFormatError(f"{where}: unexpected header key {_excerpt(key)} (this file's keys are {', '.join(keys)})")
        if key in values:
            raise ArielFormatError(f"{where}: header key {key} appears twice (first on line {first_line[key]})")
        _check_range(where, key, number)
        values[key], first_line[key] = number, line_no
        offset = end + 1
    missing = [k for k in keys if k not in values]
    if missing:
        raise ArielFormatError(f"{path}:{line_no + 1}: missing header key(s) {', '.join(missing)} (expected {', '.join(keys)})")
    return values, offset


def _check_range(where: str, key: str, value: float) -> None:
    if not math.isfinite(value):
        raise ArielFormatError(f"{where}: header key {key} = {value} is not a finite number")
    if key in POSITIVE and value <= 0:
        raise ArielFormatError(f"{where}: header key {key} = {value} must be > 0")
    if key == "incl" and not INCLINATION[0] <= value <= INCLINATION[1]:
        raise ArielFormatError(f"{where}: header key incl = {value} must be an inclination in degrees, in [0, 180]")


def _parse_body(raw: bytes, offset: int, path: Path, out: np.ndarray) -> None:
    rows, cols = out.shape
    n_rows, status, where, col = _parse_rows(np.frombuffer(raw, dtype=np.uint8), offset, out)
    if status == _OK and n_rows == rows:
        # A value beyond float32's range parses to inf; one vectorised pass finds it
        # more cheaply than a test per value in the loop.
        if not np.isfinite(out).all():
            row, col = np.argwhere(~np.isfinite(out))[0]
            line, text = _data_line(raw, offset, row)
            token = text.split()[col].decode("ascii", "replace")
            raise ArielFormatError(f"{path}:{line}: value {_excerpt(token)} overflows a float32 (magnitudes up to 3.4e38)")
        return
    line = _line_of(raw, where)
    at = f"{path}:{line}"
    if status == _BAD_CHAR:
        token = raw[where:where + 2 * EXCERPT].split(maxsplit=1)[0].decode("ascii", "replace")
        raise ArielFormatError(f"{at}: value {_excerpt(token)} is not a number")
    if status == _BARE_CR:
        raise _bare_cr(path, line)
    if status == _LONG_ROW:
        raise ArielFormatError(f"{at}: data row {n_rows + 1} has {len(_line_at(raw, where).split())} values, expected {cols}")
    if status == _SHORT_ROW:
        raise ArielFormatError(f"{at}: data row {n_rows + 1} has {col} values, expected {cols}")
    if status == _TOO_MANY_ROWS:
        raise ArielFormatError(f"{at}: more than {rows} data rows (of {cols} values each)")
    if n_rows < rows:
        raise ArielFormatError(f"{at}: file has {n_rows} data rows, expected {rows} (empty or truncated?)")


def _read(path: Path) -> bytes:
    """The file's bytes; a folder or an unreadable file is a bad file like any other."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ArielFormatError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not raw.strip():
        raise ArielFormatError(f"{path}:1: file is empty")
    return raw


def read_noisy(path: str | Path, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (float32 [55, 300]) with the light curves; return the six stellar parameters."""
    path = Path(path)
    raw = _read(path)
    header, offset = _header(raw, path, STELLAR_KEYS)
    _parse_body(raw, offset, path, out)
    return np.array([header[k] for k in STELLAR_KEYS], dtype=np.float64)


def read_params(path: str | Path) -> tuple[np.ndarray, float, float]:
    """(Rp/Rs [55], sma in metres, inclination in degrees) from a params file."""
    path = Path(path)
    raw = _read(path)
    header, offset = _header(raw, path, PARAM_KEYS)
    targets = np.empty((1, N_WAVELENGTHS), dtype=np.float32)
    _parse_body(raw, offset, path, targets)
    bad = np.flatnonzero(targets[0] <= 0)
    if bad.size:
        line = _line_of(raw, len(raw) - len(raw[offset:].lstrip()))
        raise ArielFormatError(f"{path}:{line}: value {bad[0] + 1} of the data row is {targets[0, bad[0]]}; Rp/Rs must be > 0")
    return targets[0], header["sma"], header["incl"]
