"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import pytest
from shared_data import ROOT, SHARED_DATA, shared_path

__all__ = ["ROOT", "SHARED_DATA", "shared_path"]


@pytest.fixture
def shared():
    """``shared("models", "x.tflite")`` -> Path, or skip the test when ../shared/data is absent."""
    return shared_path
