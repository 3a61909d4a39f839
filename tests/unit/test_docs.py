"""The README's config reference is generated from the schema: keep it current."""
from __future__ import annotations

from pathlib import Path

from hpcml.core.config import reference_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_config_reference_is_current():
    readme = (ROOT / "README.md").read_text()
    assert reference_table() in readme, "regenerate: hpcml config --reference (README, Config reference)"
    assert readme.startswith("# hpcml") and "make demo" in readme and "make test" in readme


def test_env_file_pins_match_pyproject():
    import re
    import tomllib

    pins = dict(re.match(r"([A-Za-z0-9_.-]+)==(.+)", d).groups() for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    env = (ROOT / "envs" / "hpcml.yaml").read_text()
    for name, version in re.findall(r"^\s+- ([A-Za-z0-9_.-]+)==(\S+)", env, re.M):
        assert pins.get(name) == version, f"envs/hpcml.yaml pins {name}=={version}, pyproject.toml {pins.get(name)}"
