"""Names of the lens models, importable by the Snakefile (no torch)."""
from __future__ import annotations

from typing import Any


def model_names(settings: dict[str, Any]) -> list[str]:
    """Every model the config asks for: baseline_n<k> per image count, set, and cnn (on rendered images)."""
    names = []
    if "baseline" in settings["train"]:
        names += [f"baseline_n{k}" for k in settings["baseline"]["image_counts"]]
    names += [m for m in ("set", "cnn") if m in settings["train"]]
    return names


def section(name: str) -> str:
    """The config section of a model name (baseline_n2 -> baseline)."""
    return name.split("_n")[0]


def image_count(name: str) -> int:
    """The image count a baseline is trained on (baseline_n2 -> 2)."""
    return int(name.split("_n")[1])
