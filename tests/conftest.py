"""Test configuration: Hypothesis profiles (quick, ci, thorough) and the example database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# Failures found once are replayed first next time; the database lives in the checkout.
_DB = DirectoryBasedExampleDatabase(str(Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"))
_COMMON = {"database": _DB, "deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

settings.register_profile("quick", max_examples=60, stateful_step_count=40, **_COMMON)
settings.register_profile("ci", max_examples=200, stateful_step_count=50, **_COMMON)
settings.register_profile("thorough", max_examples=3000, stateful_step_count=120, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(scope="module")
def openssl() -> str:
    """The openssl binary; its absence fails the tests that need it (they must not be skipped)."""
    path = shutil.which("openssl")
    assert path, "the openssl command line tool is required for these tests: install it (e.g. apt-get install openssl)"
    return path


@pytest.fixture(scope="module")
def ca():  # type: ignore[no-untyped-def]
    """Both JPKI CAs (two RSA-2048 keys), generated once per test module."""
    from mjpki.impl.ca import JpkiCa

    return JpkiCa.generate()
