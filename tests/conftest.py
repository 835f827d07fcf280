"""Shared fixtures: where the real SBU data is (skip with a reason when it is absent)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def sbu_dir() -> Path | None:
    """$JAXPRUNE_SBU_DIR, else ../shared/data/sbu beside the repository, if it exists."""
    env = os.environ.get("JAXPRUNE_SBU_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "sbu"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def sbu_path() -> Path:
    path = sbu_dir()
    if path is None:
        pytest.skip("real SBU data not found: set JAXPRUNE_SBU_DIR or place it at ../shared/data/sbu")
    return path


@pytest.fixture(scope="session")
def sbu(sbu_path):
    from jaxprune.data.sbu import load_sbu
    return load_sbu(sbu_path)
