"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import pytest
from shared_data import ROOT, SHARED_DATA, shared_path

__all__ = ["ROOT", "SHARED_DATA", "shared_path"]


@pytest.fixture
def shared():
    """``shared("models", "x.tflite")`` -> Path, or skip the test when ../shared/data is absent."""
    return shared_path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Third-party-style models of every family at several input quantizations
    (tests/model_corpus.py), built on first use and cached in pytest's tmp dir. Needs
    TensorFlow (skips without it)."""
    pytest.importorskip("tensorflow")
    from model_corpus import Corpus

    return Corpus(tmp_path_factory.mktemp("corpus"))
