"""Shared helpers: the repo root and configs built from the shipped seed config."""

import copy
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
PROFILES = ROOT / "plugin/layerwise/hardware/profiles"  # shipped as package data


def seed_config_data(name: str = "seed_dense_layerwise") -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


@pytest.fixture
def seed_data() -> dict:
    """The shipped seed-dense config with the planner's default "auto" replicas (the shipped
    file sets one pipeline, the seed's proposal)."""
    data = copy.deepcopy(seed_config_data())
    data["layerwise"]["replicas"] = "auto"
    return data
