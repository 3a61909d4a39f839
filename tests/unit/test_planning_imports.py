"""What the Snakefile imports to plan jobs stays light: every SLURM job re-parses it."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

WATCHED = ("torch", "astropy", "numba", "lightning", "sklearn", "matplotlib", "scipy", "numpy", "pandas")


def loaded_after(code: str) -> list[str]:
    """The watched packages a fresh interpreter holds after running ``code``."""
    probe = f"import sys\n{code}\nprint(__import__('json').dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_planning_imports_pull_in_no_third_party_package():
    smk_imports = ("hpcml.checks", "hpcml.core.config", "hpcml.core.shards", "hpcml.lensing.planning", "hpcml.lensing.naming",
                   "hpcml.lensing.cli", "hpcml.ariel.layout", "hpcml.ariel.cli", "hpcml.sweeps.trainers")
    assert loaded_after("\n".join(f"import {m}" for m in smk_imports)) == []


def test_counting_a_user_table_needs_only_pandas(tmp_path):
    table = tmp_path / "lenses.csv"
    pd.DataFrame({
        "theta_e": [1.2, 1.0], "q": [0.8, 0.9], "phi": [0.1, 0.2], "gamma": [0.05, 0.02], "phi_gamma": [0.0, 0.1],
        "z_lens": [0.3, 0.4], "z_src": [1.5, 2.0], "source_x": [0.0, 0.1], "source_y": [0.1, 0.0],
    }).to_csv(table, index=False)
    settings = {"source": "table", "table": str(table)}
    code = f"from hpcml.lensing.planning import count_lenses\nassert count_lenses({settings!r}) == 2"
    assert loaded_after(code) == ["numpy", "pandas"]
