"""Shared pytest fixtures: paths to the real Landsat fixtures and tiny raster factories."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "landsat-fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The shared directory of real Landsat products (``../shared/landsat-fixtures``)."""
    if not FIXTURES.is_dir():
        raise RuntimeError(f"real Landsat fixtures not found at {FIXTURES}")
    return FIXTURES
