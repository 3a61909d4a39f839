"""Ariel ingest: the real sample files, LF and CRLF, and every kind of bad file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpcml.ariel.formats import ArielFormatError, read_noisy, read_params
from hpcml.ariel.ingest import ingest_all
from hpcml.ariel.layout import list_files

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ariel-2021-samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real sample files not found at {SAMPLES}")


@needs_samples
def test_real_sample_files_ingest_exactly(tmp_path):
    summary = ingest_all(SAMPLES, tmp_path, shard_size=2)
    assert summary["train"]["ingested"] == 3 and summary["test"]["ingested"] == 3
    x = np.load(tmp_path / "train" / "X.npy")
    meta = pd.read_parquet(tmp_path / "train" / "meta.parquet")
    assert x.shape == (3, 55, 300) and x.dtype == np.float32
    assert meta.file.tolist() == ["0001_01_01.txt", "0052_01_01.txt", "0100_01_01.txt"]
    assert meta.planet.tolist() == [1, 52, 100]
    for k, name in enumerate(meta.file):
        ref = np.loadtxt(SAMPLES / "noisy_train" / name, dtype=np.float32, comments="#", delimiter="\t")
        assert np.array_equal(x[k], ref)
    stellar = np.load(tmp_path / "train" / "stellar.npy")
    assert stellar[0].tolist() == [3667.42, 5.0, 0.4395, 0.476, 9.429, 5.707099633]
    targets = np.load(tmp_path / "train" / "targets.npy")
    assert targets[0, 0] == np.float32(0.054270115338366544)
    assert meta.sma.iloc[0] == 7300914576 and meta.incl.iloc[0] == pytest.approx(88.77912914)


@needs_samples
def test_crlf_and_lf_parse_the_same(tmp_path):
    src = SAMPLES / "noisy_train" / "0052_01_01.txt"
    crlf = tmp_path / "0052_01_01.txt"
    crlf.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    a, b = np.empty((55, 300), np.float32), np.empty((55, 300), np.float32)
    assert np.array_equal(read_noisy(src, a), read_noisy(crlf, b)) and np.array_equal(a, b)
    params = tmp_path / "p.txt"
    params.write_bytes((SAMPLES / "params_train" / "0052_01_01.txt").read_bytes().replace(b"\n", b"\r\n"))
    assert np.array_equal(read_params(params)[0], read_params(SAMPLES / "params_train" / "0052_01_01.txt")[0])


def _good_file(last: str = "0.5") -> str:
    """A valid noisy file; ``last`` (the final flux) tells files apart: exact copies are refused."""
    header = "".join(f"# {k}: {v}\n" for k, v in [("star_temp", 5000), ("star_logg", 4.5), ("star_rad", 1.0), ("star_mass", 1.0), ("star_k_mag", 9.0), ("period", 3.0)])
    rows = "\n".join("\t".join(["1.0"] * 300) for _ in range(55))
    return header + rows[:-3] + last + "\n"


def _params() -> str:
    return "# sma: 1e10\n# incl: 89.0\n" + "\t".join(["0.1"] * 55) + "\n"


BAD_CASES = {
    "missing row": (lambda t: t.rsplit("\n", 2)[0] + "\n", r"0002_01_01.txt:61: file has 54 data rows, expected 55"),
    "short row": (lambda t: t.replace("\t1.0\n", "\n", 1), r"0002_01_01.txt:7: data row 1 has 299 values, expected 300"),
    # the header holds two "1.0" (radius, mass): occurrence 902 is data value 901, on line 10
    "non-numeric": (lambda t: _replace_nth(t, "1.0", "1.O", 902), r"0002_01_01.txt:10: value '1.O' is not a number"),
    "missing header key": (lambda t: t.replace("# period: 3.0\n", ""), r"0002_01_01.txt:6: missing header key\(s\) period"),
    "empty": (lambda t: "", r"0002_01_01.txt:1: file is empty"),
    "truncated": (lambda t: t[: len(t) // 2], r"0002_01_01.txt:3[0-9]: data row"),
    "long row": (lambda t: _edit_line(t, 9, lambda line: line + "\t1.0"), r"0002_01_01.txt:9: data row 3 has 301 values, expected 300"),
    "long last row": (lambda t: _edit_line(t, 61, lambda line: line + "\t1.0"), r"0002_01_01.txt:61: data row 55 has 301 values, expected 300"),
    "extra row": (lambda t: t + "\t".join(["1.0"] * 300) + "\n", r"0002_01_01.txt:62: more than 55 data rows"),
    "CR-only line endings": (lambda t: t.replace("\n", "\r"), r"0002_01_01.txt:1: carriage return \(\\r\) without a line feed"),
    "stray CR": (lambda t: _edit_line(t, 20, lambda line: line.replace("\t", "\r", 1)), r"0002_01_01.txt:20: carriage return"),
    "NaN header value": (lambda t: t.replace("star_temp: 5000", "star_temp: nan"), r"0002_01_01.txt:1: header key star_temp = nan is not a finite number"),
    "overflowing header value": (lambda t: t.replace("star_temp: 5000", "star_temp: 1e400"), r"0002_01_01.txt:1: header key star_temp = inf is not a finite number"),
    "negative header value": (lambda t: t.replace("star_rad: 1.0", "star_rad: -1.0"), r"0002_01_01.txt:3: header key star_rad = -1.0 must be > 0"),
    "duplicate header key": (lambda t: t.replace("star_logg: 4.5", "star_temp: 4.5"), r"0002_01_01.txt:2: header key star_temp appears twice \(first on line 1\)"),
    "unknown header key": (lambda t: t.replace("# star_logg", "# star_lgg"), r"0002_01_01.txt:2: unexpected header key 'star_lgg'"),
    "overflowing value": (lambda t: _edit_line(t, 8, lambda line: "1e400" + line[3:]), r"0002_01_01.txt:8: value '1e400' overflows a float32"),
    "float32 overflow": (lambda t: _edit_line(t, 8, lambda line: "-4e38" + line[3:]), r"0002_01_01.txt:8: value '-4e38' overflows a float32"),
    "NaN value": (lambda t: _edit_line(t, 8, lambda line: "nan" + line[3:]), r"0002_01_01.txt:8: value 'nan' is not a number"),
}


def _edit_line(text: str, number: int, edit) -> str:
    lines = text.split("\n")
    lines[number - 1] = edit(lines[number - 1])
    return "\n".join(lines)


def _replace_nth(text: str, old: str, new: str, n: int) -> str:
    parts = text.split(old)
    return old.join(parts[: n + 1]) + new + old.join(parts[n + 1:])


def _write_set(root: Path, bad: str | None) -> None:
    for folder in ("noisy_train", "params_train", "noisy_test"):
        (root / folder).mkdir(parents=True)
    for i in (1, 2, 3):
        text = _good_file(f"0.{i}")
        if bad and i == 2:
            text = BAD_CASES[bad][0](text)
        (root / "noisy_train" / f"000{i}_01_01.txt").write_text(text)
        (root / "params_train" / f"000{i}_01_01.txt").write_text(_params())
    (root / "noisy_test" / "0009_01_01.txt").write_text(_good_file())


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_file_stops_with_file_and_line(tmp_path, case):
    _write_set(tmp_path / "in", case)
    with pytest.raises(ArielFormatError, match=BAD_CASES[case][1]):
        ingest_all(tmp_path / "in", tmp_path / "out")


@pytest.mark.parametrize("case", ["non-numeric", "empty"])
def test_bad_file_skipped_and_reported(tmp_path, case):
    _write_set(tmp_path / "in", case)
    summary = ingest_all(tmp_path / "in", tmp_path / "out", on_bad_file="skip")
    assert summary["train"]["ingested"] == 2
    report = json.loads((tmp_path / "out" / "train" / "ingest_report.json").read_text())
    assert [Path(b["file"]).name for b in report["bad_files"]] == ["0002_01_01.txt"]
    meta = pd.read_parquet(tmp_path / "out" / "train" / "meta.parquet")
    assert meta.file.tolist() == ["0001_01_01.txt", "0003_01_01.txt"]
    assert np.load(tmp_path / "out" / "train" / "X.npy").shape == (2, 55, 300)


def test_training_file_without_params_is_an_error(tmp_path):
    _write_set(tmp_path / "in", None)
    (tmp_path / "in" / "params_train" / "0003_01_01.txt").unlink()
    with pytest.raises(ArielFormatError, match="0003_01_01.txt: training file has no params file"):
        ingest_all(tmp_path / "in", tmp_path / "out")


def test_missing_folder_names_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="ariel.input_dir"):
        list_files(tmp_path / "nowhere", "train")


def test_bad_header_value(tmp_path):
    _write_set(tmp_path / "in", None)
    path = tmp_path / "in" / "noisy_test" / "0009_01_01.txt"
    path.write_text(path.read_text().replace("# star_logg: 4.5", "# star_logg: high"))
    with pytest.raises(ArielFormatError, match=r"0009_01_01.txt:2: header line"):
        ingest_all(tmp_path / "in", tmp_path / "out")
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


@needs_samples
def test_messages_quote_a_short_excerpt_of_a_long_line(tmp_path):
    """A CR-only file is one 310 KB line: the error names the problem, not the whole file."""
    path = tmp_path / "0001_01_01.txt"
    path.write_bytes((SAMPLES / "noisy_train" / "0001_01_01.txt").read_bytes().replace(b"\n", b"\r"))
    with pytest.raises(ArielFormatError, match="0001_01_01.txt:1: carriage return") as error:
        read_noisy(path, np.empty((55, 300), np.float32))
    assert len(str(error.value)) < 300
    path.write_text("# star_temp: " + "9" * 100_000 + "x\n")
    with pytest.raises(ArielFormatError, match=r"header line '#star_temp: 9{20,40}\.\.\.' is not") as error:
        read_noisy(path, np.empty((55, 300), np.float32))
    assert len(str(error.value)) < 200


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("# sma: 1e10", "# sma: -1e10"), r"0002_01_01.txt:1: header key sma = -10000000000.0 must be > 0"),
    (lambda t: t.replace("# incl: 89.0", "# incl: 189.0"), r"0002_01_01.txt:2: header key incl = 189.0 must be an inclination in degrees, in \[0, 180\]"),
    (lambda t: t.replace("# incl: 89.0", "# incl: nan"), r"0002_01_01.txt:2: header key incl = nan is not a finite number"),
    (lambda t: t.replace("\t0.1\n", "\t-0.1\n"), r"0002_01_01.txt:3: value 55 of the data row is -0.1.*; Rp/Rs must be > 0"),
    (lambda t: t.replace("\t0.1\n", "\n"), r"0002_01_01.txt:3: data row 1 has 54 values, expected 55"),
])
def test_impossible_params_stop_with_file_and_line(tmp_path, edit, message):
    _write_set(tmp_path / "in", None)
    params = tmp_path / "in" / "params_train" / "0002_01_01.txt"
    params.write_text(edit(params.read_text()))
    with pytest.raises(ArielFormatError, match=message):
        ingest_all(tmp_path / "in", tmp_path / "out")


@pytest.mark.parametrize(("entry", "message"), [
    ("0004_01_01.TXT", r"0004_01_01.TXT: file name is not AAAA_BB_CC.txt .*; the extension must be lower-case .txt"),
    ("notes.md", r"notes.md: file name is not AAAA_BB_CC.txt"),
    ("0004_01_01.txt/", r"0004_01_01.txt: cannot be read \(Is a directory\)"),
])
def test_entries_that_are_not_challenge_files_are_named_not_skipped(tmp_path, entry, message):
    _write_set(tmp_path / "in", None)
    path = tmp_path / "in" / "noisy_train" / entry.rstrip("/")
    path.mkdir() if entry.endswith("/") else path.write_text(_good_file("0.4"))
    (tmp_path / "in" / "params_train" / "0004_01_01.txt").write_text(_params())
    with pytest.raises(ArielFormatError, match=message):
        ingest_all(tmp_path / "in", tmp_path / "out")
    summary = ingest_all(tmp_path / "in", tmp_path / "skip", on_bad_file="skip")
    assert summary["train"]["ingested"] == 3
    assert [Path(b["file"]).name for b in summary["train"]["bad_files"]] == [entry.rstrip("/")]


def test_hidden_entries_are_left_out_and_listed(tmp_path):
    _write_set(tmp_path / "in", None)
    for name in (".DS_Store", ".tmp-0004_01_01.txt-x1y2"):
        (tmp_path / "in" / "noisy_train" / name).write_text("not data")
    summary = ingest_all(tmp_path / "in", tmp_path / "out")
    assert summary["train"]["ingested"] == 3 and summary["train"]["bad_files"] == []
    assert summary["train"]["hidden_entries_left_out"] == [".DS_Store", ".tmp-0004_01_01.txt-x1y2"]


def test_empty_data_folder_names_folder_and_key(tmp_path):
    _write_set(tmp_path / "in", None)
    for path in (tmp_path / "in" / "noisy_test").iterdir():
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"noisy_test is empty: .*ariel.input_dir"):
        ingest_all(tmp_path / "in", tmp_path / "out")


def test_exact_copies_under_other_names_stop_or_are_all_set_aside(tmp_path):
    _write_set(tmp_path / "in", None)
    noisy = tmp_path / "in" / "noisy_train"
    # planet 1 copied as planet 7, byte for byte, and again with CRLF line endings
    shutil.copy(noisy / "0001_01_01.txt", noisy / "0007_01_01.txt")
    (noisy / "0008_01_01.txt").write_bytes((noisy / "0001_01_01.txt").read_bytes().replace(b"\n", b"\r\n"))
    for planet in (7, 8):
        (tmp_path / "in" / "params_train" / f"000{planet}_01_01.txt").write_text(_params())
    with pytest.raises(ArielFormatError, match=r"3 files in .*noisy_train repeat another file's light curves exactly") as error:
        ingest_all(tmp_path / "in", tmp_path / "out", shard_size=2)
    assert "0007_01_01.txt: same light curves as 0001_01_01.txt, 0008_01_01.txt" in str(error.value)
    summary = ingest_all(tmp_path / "in", tmp_path / "skip", shard_size=2, on_bad_file="skip")
    assert summary["train"]["ingested"] == 2 and summary["train"]["files"] == 5
    assert sorted(Path(b["file"]).name for b in summary["train"]["bad_files"]) == ["0001_01_01.txt", "0007_01_01.txt", "0008_01_01.txt"]
    meta = pd.read_parquet(tmp_path / "skip" / "train" / "meta.parquet")
    assert meta.file.tolist() == ["0002_01_01.txt", "0003_01_01.txt"]
    x = np.load(tmp_path / "skip" / "train" / "X.npy")
    assert x.shape == (2, 55, 300) and x[:, -1, -1].tolist() == [np.float32(0.2), np.float32(0.3)]
    assert np.load(tmp_path / "skip" / "train" / "targets.npy").shape == (2, 55)


def test_a_data_set_with_no_good_file_stops(tmp_path):
    _write_set(tmp_path / "in", None)
    (tmp_path / "in" / "noisy_test" / "0009_01_01.txt").write_text("")
    with pytest.raises(ArielFormatError, match=r"none of the 1 files in .*noisy_test could be ingested; the first: .*0009_01_01.txt:1: file is empty"):
        ingest_all(tmp_path / "in", tmp_path / "out", on_bad_file="skip")
