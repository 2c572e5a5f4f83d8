"""The pytest plugin (entry point ``pytest11``): ``pytest --jpki-adapter=module:factory`` runs the conformance suite.

Each check of `mjpki.conformance` becomes one test, ``test_conformance[<check id>]``, so
pytest's own tools apply: ``-k`` selects checks, ``--junitxml`` writes JUnit XML (each case
carries its requirement IDs as properties), ``-x`` stops at the first failure. Known failures
are reported as xfail. At the end the per-requirement verdict table is printed and the
result JSON and failure traces are written to ``--jpki-out``.

Without ``--jpki-adapter`` the plugin does nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.system import AdapterFactory
from mjpki.conformance import PROFILES, CheckResult, ConformanceResult, all_checks, render_summary, result_json, unused_known, verdicts
from mjpki.known_failures import KnownFailures

__all__ = ["SUITE_PATH", "ConformanceSession", "conformance_session"]

SUITE_PATH = Path(__file__).with_name("suite.py")
"""The test module the plugin collects: one parametrised test over every check."""

_KEY = pytest.StashKey["ConformanceSession"]()


@dataclass(slots=True, kw_only=True)
class ConformanceSession:
    """What the plugin knows in one pytest session: the adapter, the options and the results so far."""

    adapter: str
    factory: AdapterFactory
    profile: str
    out_dir: Path
    known: KnownFailures | None
    timeout: float
    database_dir: Path | None
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    results: list[CheckResult] = field(default_factory=list)


def conformance_session(config: pytest.Config) -> ConformanceSession:
    """The session's conformance settings (only when --jpki-adapter was given)."""
    return config.stash[_KEY]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mjpki", "mjpki conformance suite")
    group.addoption("--jpki-adapter", metavar="MODULE:FACTORY", help="run the JPKI conformance suite on this system-level adapter")
    group.addoption("--jpki-profile", default="quick", choices=sorted(PROFILES), help="how hard the stateful search tries (quick)")
    group.addoption("--jpki-out", default="out/conformance", metavar="DIR", help="result.json and failure traces (out/conformance)")
    group.addoption("--jpki-known-failures", metavar="FILE", help="TOML file of ID = reason: failures reported apart, as xfail")
    group.addoption("--jpki-step-timeout", type=float, default=10.0, metavar="S", help="seconds one adapter call may take (10)")
    group.addoption("--jpki-db", default=".mjpki/examples", metavar="DIR", help="Hypothesis example database (.mjpki/examples)")


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("--jpki-adapter", default=None)
    if not spec:
        return
    from mjpki.adapterspec import AdapterSpecError, load_factory
    from mjpki.known_failures import KnownFailuresError, load_known_failures

    try:
        factory = load_factory(spec)
        kf = config.getoption("--jpki-known-failures")
        known = load_known_failures(kf, check_ids={c.id for c in all_checks()}) if kf else None
    except (AdapterSpecError, KnownFailuresError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    db = config.getoption("--jpki-db")
    config.stash[_KEY] = ConformanceSession(
        adapter=spec,
        factory=factory,
        profile=config.getoption("--jpki-profile"),
        out_dir=Path(config.getoption("--jpki-out")),
        known=known,
        timeout=config.getoption("--jpki-step-timeout"),
        database_dir=Path(db) if db else None,
    )
    # With no paths on the command line, run the conformance suite alone (not the project's own tests).
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args = [str(SUITE_PATH)]
    elif str(SUITE_PATH) not in config.args:
        config.args.append(str(SUITE_PATH))


def pytest_report_header(config: pytest.Config) -> str | None:
    if _KEY not in config.stash:
        return None
    s = conformance_session(config)
    return f"mjpki conformance: adapter {s.adapter}, profile {s.profile}, artefacts in {s.out_dir}/"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _KEY not in config.stash:
        return
    s = conformance_session(config)
    if not s.results:
        return
    result = ConformanceResult(
        system=s.adapter,
        profile=s.profile,
        started=s.started,
        seconds=sum(r.seconds for r in s.results),
        results=tuple(s.results),
        verdicts=verdicts(s.results),
        unused_known=unused_known(s.results, s.known),
    )
    s.out_dir.mkdir(parents=True, exist_ok=True)
    path = s.out_dir / "result.json"
    path.write_text(json.dumps(result_json(result), indent=2) + "\n", encoding="utf-8")
    terminalreporter.write_sep("=", "JPKI conformance: verdict per requirement")
    for line in render_summary(result).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"result: {path}")
