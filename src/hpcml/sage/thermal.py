"""The thermal camera's CSV: seven ``key;value`` header lines, a blank line, 252 rows of 336 values in degrees Celsius.

Every file is checked against that format before its numbers are used: another sensor,
unit or resolution would otherwise enter training as sky temperatures. Two depths of
reading: :func:`check_thermal` looks at the header, the row count, every row's width and
the characters (no number is parsed), fast enough to vet 100,000 files while pairing;
:func:`read_thermal` parses the body in one vectorised call. Errors name the file and,
where there is one, the line (counted from 1), and say what was expected.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from hpcml.sage.layout import THERMAL_HEIGHT, THERMAL_WIDTH

HEADER = (
    ("sensor", "right"),
    ("bit depth", "14 bit"),
    ("width", str(THERMAL_WIDTH)),
    ("height", str(THERMAL_HEIGHT)),
    ("resolution", "high"),
    ("advanced radiometry support", "yes"),
    ("unit", "degrees Celsius"),
)
FIRST_ROW_LINE = len(HEADER) + 2  # after the header and its blank line
# Anything but these in the body cannot be part of a number or a separator.
_NUMERIC_BYTES = b"0123456789.;+-eE\n \t"
_NOT_NUMERIC = re.compile(rb"[^0-9.;+\-eE\n \t]|;[ \t]*;|^[ \t]*;", re.MULTILINE)


class ThermalFormatError(ValueError):
    """A thermal CSV that is not the camera's format; ``line`` is None where no line is to blame."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path, self.reason, self.line = str(path), reason, line


def header_text() -> str:
    """The header the camera writes (with its blank line)."""
    return "".join(f"{key};{value}\n" for key, value in HEADER) + "\n"


def check_thermal(path: str | Path) -> None:
    """Raise :class:`ThermalFormatError` unless ``path`` has the camera's header and 252 rows of 336 plausible values.

    Numbers are not parsed (that is :func:`read_thermal`'s work), but a character that
    cannot belong to one, or an empty field, is caught here with its line.
    """
    rows = _rows(path)
    body = b"\n".join(rows)
    if not (body.translate(None, _NUMERIC_BYTES) or b";;" in body or b"\n;" in body or body.startswith(b";")):
        return
    found = _NOT_NUMERIC.search(body)
    if found is not None:
        k = body.count(b"\n", 0, found.start())
        raise ThermalFormatError(path, f"{_token(rows[k], found.group())} is not a number", FIRST_ROW_LINE + k)


def read_thermal(path: str | Path) -> np.ndarray:
    """The temperatures (252 x 336, float32, degrees Celsius) of a thermal CSV, checked as :func:`check_thermal` does."""
    rows = _rows(path)
    try:
        # numpy's C reader: 2.5x np.fromstring's speed on the camera's rows
        values = np.loadtxt(io.BytesIO(b"\n".join(rows)), delimiter=";", dtype=np.float32, ndmin=2)
    except ValueError:
        values = np.empty(0)
    if values.size != THERMAL_WIDTH * THERMAL_HEIGHT or not np.isfinite(values).all():
        line, token = _first_bad_value(rows)
        raise ThermalFormatError(path, f"{token} is not a finite number", line)
    return values.astype(np.float32).reshape(THERMAL_HEIGHT, THERMAL_WIDTH)


def _rows(path: str | Path) -> list[bytes]:
    """The body's rows after checking header, row count and widths (CRLF and a trailing ``;`` are accepted)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ThermalFormatError(path, f"cannot be read ({error.strerror or error})") from None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    lines = data.split(b"\n", len(HEADER) + 1)
    if len(lines) <= len(HEADER) + 1:
        raise ThermalFormatError(path, f"ends after {len(lines)} line(s), inside the header; expected {len(HEADER)} "
                                 "'key;value' lines, a blank line and the rows")
    for number, ((key, value), text) in enumerate(zip(HEADER, lines), start=1):
        if text.decode("utf-8", "replace").strip() != f"{key};{value}":
            raise ThermalFormatError(path, f"header reads {text.decode('utf-8', 'replace').strip()!r}, expected '{key};{value}' "
                                     "(another sensor, unit or resolution than the camera's right 336x252 radiometric one)", number)
    if lines[len(HEADER)].strip():
        raise ThermalFormatError(path, f"expected a blank line after the header, found {lines[len(HEADER)][:40]!r}", len(HEADER) + 1)
    rows = lines[-1].rstrip().split(b"\n")
    if len(rows) != THERMAL_HEIGHT:
        line = FIRST_ROW_LINE + min(len(rows), THERMAL_HEIGHT)
        raise ThermalFormatError(path, f"{len(rows)} rows of values, expected {THERMAL_HEIGHT}", line)
    rows = [row.rstrip(b"; \t") for row in rows]
    for k, row in enumerate(rows):
        if row.count(b";") != THERMAL_WIDTH - 1:
            raise ThermalFormatError(path, f"{row.count(b';') + 1 if row.strip() else 0} values, expected {THERMAL_WIDTH}", FIRST_ROW_LINE + k)
    return rows


def _first_bad_value(rows: list[bytes]) -> tuple[int, str]:
    """Line and text of the first field that is not a finite number (the slow path, taken only for a bad file)."""
    for k, row in enumerate(rows):
        for field in row.split(b";"):
            try:
                if np.isfinite(float(field)):
                    continue
            except ValueError:
                pass
            return FIRST_ROW_LINE + k, repr(field.decode("utf-8", "replace").strip())
    return FIRST_ROW_LINE, "a value"


def _token(row: bytes, found: bytes) -> str:
    """The field holding the offending characters, for the message."""
    if found.strip(b" \t").startswith(b";") or found.strip(b" \t") == b"":
        return "an empty field"
    field = next((f for f in row.split(b";") if found in f), found)
    return repr(field.decode("utf-8", "replace").strip())
