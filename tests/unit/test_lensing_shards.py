"""Shards: results independent of shard count; a killed shard resumes; combine checks ids."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hpcml.core.ids import IdCheckError
from hpcml.core.shards import plan_shards
from hpcml.lensing.combine import combine_family
from hpcml.lensing import simulate
from hpcml.lensing.simulate import run_shard, simulate_family
from hpcml.lensing.table import LensTableError, read_lens_table


def simulate_all(settings: dict, root: Path, shard_size: int) -> Path:
    settings = {**settings, "shard_size": shard_size}
    shards = plan_shards(settings["n_lenses"], shard_size)
    for shard in shards:
        run_shard(settings, 5, shard.index, root / shard.name, root / f"{shard.name}.work")
    for family in settings["families"]:
        combine_family(settings, 5, family, [root / s.name for s in shards], root / "catalog" / family)
    return root / "catalog"


def assert_catalogs_equal(a: Path, b: Path, families) -> None:
    for family in families:
        for name in ("lenses.parquet", "images.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(a / family / name), pd.read_parquet(b / family / name), check_exact=True)
        assert np.array_equal(np.load(a / family / "render.npy"), np.load(b / family / "render.npy"))


def test_one_shard_equals_seven(tmp_path, lens_settings):
    lens_settings.update(n_lenses=350, chunk_size=40)
    one = simulate_all(lens_settings, tmp_path / "one", 350)
    seven = simulate_all(lens_settings, tmp_path / "seven", 50)
    assert_catalogs_equal(one, seven, lens_settings["families"])
    lenses = pd.read_parquet(one / "both" / "lenses.parquet")
    images = pd.read_parquet(one / "both" / "images.parquet")
    assert lenses.lens_id.tolist() == list(range(350))
    assert np.array_equal(images.groupby("lens_id").size().reindex(range(350), fill_value=0).to_numpy(), lenses.n_images.to_numpy())
    assert np.load(one / "both" / "render.npy").shape == (350, 16, 16)


def test_killed_shard_resumes_identically(tmp_path, lens_settings):
    lens_settings.update(n_lenses=3000, shard_size=3000, chunk_size=100)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"seed": 5, "lensing": lens_settings}))
    out, work = tmp_path / "killed" / "shard_00000", tmp_path / "killed" / "shard_00000.work"
    command = [sys.executable, "-m", "hpcml.cli", "lensing", "simulate", "--config", str(config), "--shard", "0", "--out", str(out), "--work", str(work)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 120
    while len(list(work.glob("chunk_*"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(work.glob("chunk_*"))
    assert 3 <= len(finished) < 30, "the kill should land mid-way"
    assert not (out / "both" / "lenses.parquet").exists()

    subprocess.run(command, check=True)
    assert not work.exists()
    clean = tmp_path / "clean" / "shard_00000"
    run_shard(lens_settings, 5, 0, clean, tmp_path / "clean" / "work")
    for family in lens_settings["families"]:
        for name in ("lenses.parquet", "images.parquet"):
            resumed = pd.read_parquet(out / family / name)
            pd.testing.assert_frame_equal(resumed, pd.read_parquet(clean / family / name), check_exact=True)
        assert pd.read_parquet(out / family / "lenses.parquet").lens_id.tolist() == list(range(3000))


@pytest.mark.parametrize("change", [{"seed": 6}, {"chunk_size": 30}, {"priors": {"b_high": 1.4}}])
def test_interrupted_shard_rerun_with_other_settings_starts_afresh(tmp_path, lens_settings, monkeypatch, change):
    lens_settings.update(n_lenses=100, shard_size=100, chunk_size=20)
    work = tmp_path / "work"
    calls = []

    def dies_in_fourth_chunk(draws, family, inputs):
        calls.append(family)
        if len(calls) > 3 * len(lens_settings["families"]):
            raise KeyboardInterrupt
        return simulate_family(draws, family, inputs)

    monkeypatch.setattr(simulate, "simulate_family", dies_in_fourth_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_shard(lens_settings, 5, 0, tmp_path / "killed", work)
    monkeypatch.undo()
    assert len(list(work.glob("chunk_*"))) == 3

    seed = change.get("seed", 5)
    changed = {**lens_settings, "chunk_size": change.get("chunk_size", 20)}
    changed["priors"] = {**lens_settings["priors"], **change.get("priors", {})}
    run_shard(changed, seed, 0, tmp_path / "rerun", work)
    run_shard(changed, seed, 0, tmp_path / "clean", tmp_path / "clean.work")
    for family in lens_settings["families"]:
        for name in ("lenses.parquet", "images.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "rerun" / family / name), pd.read_parquet(tmp_path / "clean" / family / name), check_exact=True)
        assert np.array_equal(np.load(tmp_path / "rerun" / family / "render.npy"), np.load(tmp_path / "clean" / family / "render.npy"))


def test_combine_refuses_missing_or_repeated_lenses(tmp_path, lens_settings):
    lens_settings.update(n_lenses=60, shard_size=20, chunk_size=20)
    shards = plan_shards(60, 20)
    for shard in shards:
        run_shard(lens_settings, 1, shard.index, tmp_path / shard.name, tmp_path / f"{shard.name}.work")
    dirs = [tmp_path / s.name for s in shards]
    with pytest.raises(IdCheckError, match="20 lens ids missing"):
        combine_family(lens_settings, 1, "both", dirs[:2], tmp_path / "out")
    with pytest.raises(IdCheckError, match="repeated"):
        combine_family(lens_settings, 1, "both", dirs + dirs[:1], tmp_path / "out")
    with pytest.raises(IdCheckError, match="out of order"):
        combine_family(lens_settings, 1, "both", dirs[::-1], tmp_path / "out")
    assert not (tmp_path / "out" / "lenses.parquet").exists()


def test_user_table_drives_the_simulation(tmp_path, lens_settings):
    table = pd.DataFrame({
        "lens_id": [101, 102, 103], "theta_e": [1.2, 1.0, 1.4], "q": [0.8, 1.0, 0.6], "phi": [0.3, 0.0, 1.0],
        "gamma": [0.05, 0.0, 0.1], "phi_gamma": [0.2, 0.0, 2.0], "z_lens": [0.3, 0.4, 0.5], "z_src": [1.5, 2.0, 2.5],
        "source_x": [0.01, 0.3, -0.1], "source_y": [0.005, -0.1, 0.05],
    })
    path = tmp_path / "lenses.csv"
    table.to_csv(path, index=False)
    lens_settings.update(source="table", table=str(path), families=["both"], shard_size=2)
    run_shard(lens_settings, 0, 0, tmp_path / "s0", tmp_path / "w0")
    run_shard(lens_settings, 0, 1, tmp_path / "s1", tmp_path / "w1")
    combine_family(lens_settings, 0, "both", [tmp_path / "s0", tmp_path / "s1"], tmp_path / "cat")
    lenses = pd.read_parquet(tmp_path / "cat" / "lenses.parquet")
    assert lenses.lens_id.tolist() == [101, 102, 103]
    assert np.allclose(lenses.source_x, table.source_x) and np.allclose(lenses.gamma, table.gamma)
    assert lenses.n_images.tolist()[0] == 4  # inside the caustic (lenstronomy also finds 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "z_src"}, "missing column"),
        ({"q": (1, 1.3)}, "line 3: column q = 1.3 must be in"),
        ({"z_src": (0, 0.1)}, "line 2: column z_src = 0.1 must be greater than z_lens"),
        ({"theta_e": (2, "abc")}, "line 4: column theta_e is not a finite number"),
        ({"q": (0, 0.0)}, r"line 2: column q = 0.0 must be in \[0.01, 1\]"),
        ({"q": (2, 1e-12)}, r"line 4: column q = 1e-12 must be in \[0.01, 1\]"),
        ({"theta_e": (1, -1.0)}, "line 3: column theta_e = -1.0 must be > 0 arcsec"),
        ({"z_src": (2, 0.5)}, "line 4: column z_src = 0.5 must be greater than z_lens"),
        ({"z_src": (1, 1e6)}, "line 3: column z_src = 1000000.0 must be at most 20"),
        ({"gamma": (1, "1e400")}, r"line 3: column gamma is not a finite number \(inf\)"),
        ({"phi": (0, "nan")}, r"line 2: column phi is not a finite number \(nan\)"),
        ({"lens_id": [0.5, 1.5, 2.0]}, r"line 2: column lens_id = 0.5 must be a whole number in \[0, 2\^53\) \(and 1 more rows\)"),
        ({"lens_id": [3, -1, 2]}, r"line 3: column lens_id = -1.0 must be a whole number"),
        ({"lens_id": [3, "x7", 2]}, r"line 3: column lens_id is not a finite number \('x7'\)"),
        ({"lens_id": [3, 1, 3]}, "line 4: lens_id 3 appears twice"),
        ({"source_x": [0.1, 0.2, 0.3]}, "give source_x, source_y or image_x, image_y, not both"),
        ({"theta_e": (1, 1e6)}, r"line 3: column theta_e = 1000000.0 is outside \[0.001, 100\] arcsec: is it in another unit"),
        ({"theta_e": (0, 1e-9)}, r"line 2: column theta_e = 1e-09 is outside"),
        ({"phi": (2, 45.0)}, r"line 4: column phi = 45.0 is beyond 2 pi: angles are in radians"),
        ({"phi_gamma": (0, 1e30)}, r"line 2: column phi_gamma = 1e\+30 is beyond 2 pi"),
        ({"image_x": (1, 1e6)}, r"line 3: column image_x = 1000000.0 arcsec is over 100 Einstein radii"),
    ],
)
def test_bad_table_names_line_and_column(tmp_path, change, message):
    table = pd.DataFrame({
        "theta_e": [1.2, 1.0, 1.1], "q": [0.8, 0.9, 0.7], "phi": [0.1, 0.2, 0.3], "gamma": [0.05, 0.02, 0.0],
        "phi_gamma": [0.0, 0.1, 0.2], "z_lens": [0.3, 0.4, 0.5], "z_src": [1.5, 2.0, 2.5],
        "image_x": [1.0, 1.1, -1.0], "image_y": [0.3, 0.0, 0.5],
    }).astype(object)
    for column, value in change.items():
        if column == "drop":
            table = table.drop(columns=value)
        elif isinstance(value, list):
            table[column] = value
        else:
            table.loc[value[0], column] = value[1]
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    with pytest.raises(LensTableError, match=message):
        read_lens_table(path)


GOOD_ROW = "1.2,0.8,0.1,0.05,0.0,0.3,1.5,1.0,0.3"
HEADER = "theta_e,q,phi,gamma,phi_gamma,z_lens,z_src,image_x,image_y"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("t.csv", HEADER + "\n", "t.csv: the table has no lens rows"),
        ("t.csv", "", "t.csv: the file is empty"),
        ("t.csv", f"{HEADER}\n{GOOD_ROW},7\n", r"t.csv: the lines hold more values than the header line names columns"),
        ("t.csv", f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW},7\n", r"t.csv: not a readable CSV table \(.*Expected 9 fields in line 3, saw 10\)"),
        ("t.csv", HEADER.replace("phi,", "phi,q,") + "\n" + GOOD_ROW.replace("0.1,", "0.1,0.5,") + "\n", "t.csv: column\\(s\\) q appear more than once"),
        ("t.csv", HEADER.replace("image_x,image_y", "source_x") + "\n" + GOOD_ROW.rsplit(",", 1)[0] + "\n", "missing column\\(s\\): source_y"),
        ("t.csv", f"{HEADER}\n\n{GOOD_ROW}\n\n{GOOD_ROW.replace('0.8', '1.7')}\n", r"t.csv, line 5: column q = 1.7"),
        ("t.xlsx", "x", r"t.xlsx: a lens table is a CSV \(.csv, .txt\) or Parquet \(.parquet, .pq\) file \(config key lensing.table\)"),
        ("t.parquet", "not parquet", "t.parquet: not a readable Parquet file"),
    ],
)
def test_unreadable_or_empty_table_names_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LensTableError, match=message):
        read_lens_table(path)


def test_table_blank_lines_are_skipped_and_a_lens_id_index_is_kept(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(f"{HEADER}\n\n{GOOD_ROW}\n{GOOD_ROW}\n\n")
    assert read_lens_table(path).lens_id.tolist() == [0, 1]
    table = pd.read_csv(path).assign(lens_id=[7, 9]).set_index("lens_id")
    table.to_parquet(tmp_path / "t.parquet")
    assert read_lens_table(tmp_path / "t.parquet").lens_id.tolist() == [7, 9]
    with pytest.raises(LensTableError, match="is not a file"):
        read_lens_table(tmp_path)


def test_cli_count_and_help(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"lensing": {"n_lenses": 1001, "shard_size": 100}}))
    out = subprocess.run([sys.executable, "-m", "hpcml.cli", "lensing", "count", "--config", str(config)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "11"
    helptext = subprocess.run([sys.executable, "-m", "hpcml.cli", "--help"], capture_output=True, text=True, check=True).stdout
    assert "lensing" in helptext and "ariel" in helptext
