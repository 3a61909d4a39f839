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


def _good_file() -> str:
    header = "".join(f"# {k}: {v}\n" for k, v in [("star_temp", 5000), ("star_logg", 4.5), ("star_rad", 1.0), ("star_mass", 1.0), ("star_k_mag", 9.0), ("period", 3.0)])
    rows = "\n".join("\t".join(["1.0"] * 300) for _ in range(55)) + "\n"
    return header + rows


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
}


def _replace_nth(text: str, old: str, new: str, n: int) -> str:
    parts = text.split(old)
    return old.join(parts[: n + 1]) + new + old.join(parts[n + 1:])


def _write_set(root: Path, bad: str | None) -> None:
    for folder in ("noisy_train", "params_train", "noisy_test"):
        (root / folder).mkdir(parents=True)
    for i in (1, 2, 3):
        text = _good_file()
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
