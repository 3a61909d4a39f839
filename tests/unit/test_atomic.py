"""Atomic outputs in shared folders: the umask decides their mode, as for a plain open()."""
from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from hpcml.core import atomic
from hpcml.core.figures import save_figure


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    atomic._umask_set_and_restored.cache_clear()
    yield request.param
    os.umask(previous)
    atomic._umask_set_and_restored.cache_clear()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_outputs_get_the_mode_of_a_plain_open(tmp_path, umask):
    with open(tmp_path / "plain", "w"):
        pass
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "plain") == expected == {0o022: 0o644, 0o027: 0o640}[umask]

    atomic.write_json(tmp_path / "new" / "deeper" / "a.json", {"x": 1})
    atomic.write_text(tmp_path / "b.txt", "hello")
    atomic.write_npy(tmp_path / "c.npy", np.zeros(3))
    atomic.write_parquet(tmp_path / "d.parquet", pd.DataFrame({"x": [1, 2]}))
    with atomic.atomic_npy_memmap(tmp_path / "e.npy", (2, 2)) as array:
        array[:] = 1
    for name in ("new/deeper/a.json", "b.txt", "c.npy", "d.parquet", "e.npy"):
        assert _mode(tmp_path / name) == expected, name
    for directory in ("new", "new/deeper"):
        assert _mode(tmp_path / directory) == 0o777 & ~umask, directory


def test_rewriting_a_private_output_gives_it_the_umask_mode(tmp_path, umask):
    target = tmp_path / "a.json"
    target.write_text("{}")
    target.chmod(0o600)
    atomic.write_json(target, {"x": 2})
    assert _mode(target) == 0o666 & ~umask


def test_umask_fallback_leaves_the_umask_unchanged(umask):
    assert atomic._umask_set_and_restored() == umask
    assert os.umask(umask) == umask


def test_save_figure_writes_png_atomically_and_closes(tmp_path, umask):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "plot.png", dpi=50)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _mode(tmp_path / "plot.png") == 0o666 & ~umask
    assert not plt.fignum_exists(fig.number)

    fig, _ = plt.subplots()
    save_figure(fig, tmp_path / "no_suffix")
    assert (tmp_path / "no_suffix").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_suffix", "plot.png"]
