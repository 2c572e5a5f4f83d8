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

# The suite's own PC/SC stacks serve test SEs: it says so in words, as a user must (serve-se and mjpki.adapters.pcsc_system
# refuse to fall back to GlobalPlatform's published keys; issue 12). Subprocesses (serve-se, pytest) inherit it.
os.environ.setdefault("MJPKI_PCSC_KEYS", "test")


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


@pytest.fixture
def pooled_keys():  # type: ignore[no-untyped-def]
    """The reference system's SE key pairs and new card keys from mjpki.key_pool's test-only pool (issue 15, part 4).

    Key generation is most of what the reference does; a test that judges its lifecycle, not its keys, asks for this. The
    keys are still distinct RSA-2048 keys, so the invariants about keys (ISS-5, ISS-6) judge the same.
    """
    from mjpki.key_pool import pooled_reference_keys

    with pooled_reference_keys() as pool:
        yield pool


def pytest_configure(config: pytest.Config) -> None:
    # This process is the suite's own test session: the test-only key pool may be used here (never in its child processes).
    from mjpki.key_pool import mark_suite_session

    mark_suite_session()


PCSC_MODULES = frozenset(
    {
        "test_pcsc",
        "test_applet_pcsc",
        "test_serve_applet",
        "test_vpcd",
        "test_applet_checks",
        "test_applet_plugin",
        "test_hardening",
        "test_secrets",
    }
)
"""Modules whose tests start pcscd and serve-se: one pcscd socket and one vpcd port per machine, so they share a worker."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`-n N --dist loadgroup`, as scripts/test.sh runs), keep every PC/SC test on one worker."""
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rsplit(".", 1)[-1] in PCSC_MODULES:
            item.add_marker(pytest.mark.xdist_group(name="pcsc"))
