"""Where ../shared/data is, and a helper that skips a test when it is absent.

Import as ``from shared_data import SHARED_DATA, shared_path`` (not from ``conftest``: several
folders have their own conftest.py, so the module name ``conftest`` is ambiguous).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGEKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path
