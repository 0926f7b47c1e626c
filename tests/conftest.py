"""Shared test fixtures: paths to the bundled models, the zoo cache and the console scripts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BIN = Path(sys.executable).parent
# Zoo models (ResNet50, ...) are built once per machine and shared by xdist workers.
ZOO = Path(os.environ.get("NEURONCLI_ZOO", ROOT / "build" / "zoo"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def zoo_root() -> Path:
    ZOO.mkdir(parents=True, exist_ok=True)
    return ZOO


def script(name: str) -> str:
    """Path of an installed console script of this venv."""
    return str(BIN / name)
