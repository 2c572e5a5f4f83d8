"""Test configuration: Hypothesis profiles (quick, ci, thorough) and the example database."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# Failures found once are replayed first next time; the database lives in the checkout.
_DB = DirectoryBasedExampleDatabase(str(Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"))
_COMMON = {"database": _DB, "deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

settings.register_profile("quick", max_examples=60, stateful_step_count=40, **_COMMON)
settings.register_profile("ci", max_examples=200, stateful_step_count=50, **_COMMON)
settings.register_profile("thorough", max_examples=3000, stateful_step_count=120, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
