"""Shared fixtures: the repository root and a validated default configuration."""
from __future__ import annotations

import os

import pytest

from hpcml.core import config

os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def default_config() -> dict:
    return config.validate({})


@pytest.fixture
def lens_settings(default_config) -> dict:
    settings = default_config["lensing"]
    settings["render"].update(size=16, supersample=1)
    return settings
