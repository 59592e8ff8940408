"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CURVES = REPO.parent / "shared" / "curves"


@pytest.fixture(scope="session")
def curves_dir() -> Path:
    """The real training curves of ../shared/curves (present beside every clone, CI included)."""
    if not CURVES.is_dir():
        pytest.skip(f"{CURVES} not found")
    return CURVES
