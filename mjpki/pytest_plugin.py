"""The pytest plugin (entry point ``pytest11``): ``pytest --jpki-adapter=module:factory`` runs the conformance suite.

Each check of `mjpki.conformance` becomes one test, ``test_conformance[<check id>]``, so
pytest's own tools apply: ``-k`` selects checks, ``--junitxml`` writes JUnit XML (each case
carries its requirement IDs as properties), ``-x`` stops at the first failure. Known failures
are reported as xfail. At the end the per-requirement verdict table is printed and the
result JSON and failure traces are written to ``--jpki-out``.

``pytest --jpki-applet=MODULE:CLASS`` (a GpSe-like class, in process) or ``pytest --jpki-reader=NAME`` (a card in a
PC/SC reader; its ISD keys from ``--jpki-keys=FILE`` or $MJPKI_SE_KEYS) runs the applet-level checks of
`mjpki.applet_run` the same way: ``test_applet[<check id>]`` (collected from `applet_suite.py`), the verdicts per
requirement and per clause at the end, result.json (mjpki-applet-result/1) and the failures' artefacts in ``--jpki-out``.

``pytest -n N`` (pytest-xdist) runs the checks in N workers, each with its own system; the controller gathers their
results and prints the one verdict table and writes the one result.json, the checks in their usual order.

``--jpki-adapter`` runs the factory in a child process (``--jpki-in-process`` keeps it in pytest's); ``--jpki-shim=COMMAND``
and ``--jpki-url=URL`` drive a system in any language over the wire protocol mjpki-adapter/1 (docs/adapters.md).

Without one of ``--jpki-adapter``, ``--jpki-shim``, ``--jpki-url``, ``--jpki-applet``, ``--jpki-reader`` the plugin does nothing.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mjpki.adapters.system import AdapterFactory
from mjpki.conformance import PROFILES, CheckResult, ConformanceResult, all_checks, render_summary, result_json, unused_known, verdicts
from mjpki.known_failures import KnownFailures

if TYPE_CHECKING:
    from mjpki.applet_lockstep import AppletTarget
    from mjpki.applet_run import AppletCheckResult

__all__ = ["APPLET_SUITE_PATH", "SUITE_PATH", "AppletSession", "ConformanceSession", "applet_session", "conformance_session"]

SUITE_PATH = Path(__file__).with_name("suite.py")
"""The test module the plugin collects: one parametrised test over every check."""
APPLET_SUITE_PATH = Path(__file__).with_name("applet_suite.py")
"""The applet-level counterpart: one parametrised test over every check of mjpki.applet_run."""

_KEY = pytest.StashKey["ConformanceSession"]()
_APPLET_KEY = pytest.StashKey["AppletSession"]()


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
    shutdown: Callable[[], None] = lambda: None
    """Ends the adapter's child process, if it has one (at the end of the session)."""


def conformance_session(config: pytest.Config) -> ConformanceSession:
    """The session's conformance settings (only when --jpki-adapter was given)."""
    return config.stash[_KEY]


@dataclass(slots=True, kw_only=True)
class AppletSession:
    """The applet-level run in one pytest session: the target (class or reader), the options and the results so far."""

    target: AppletTarget
    profile: str
    out_dir: Path
    database_dir: Path | None
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    t0: float = field(default_factory=time.monotonic)
    results: list[AppletCheckResult] = field(default_factory=list)


def applet_session(config: pytest.Config) -> AppletSession:
    """The session's applet-level settings (only when --jpki-applet or --jpki-reader was given)."""
    return config.stash[_APPLET_KEY]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mjpki", "mjpki conformance suite")
    group.addoption(
        "--jpki-adapter", metavar="MODULE:FACTORY", help="run the JPKI conformance suite on this system-level adapter (in a child process)"
    )
    group.addoption("--jpki-shim", metavar="COMMAND", help="run it on a program speaking mjpki-adapter/1 on stdin/stdout")
    group.addoption("--jpki-url", metavar="URL", help="run it on an mjpki-adapter/1 HTTP endpoint")
    group.addoption("--jpki-in-process", action="store_true", help="run the --jpki-adapter factory inside pytest's process")
    group.addoption("--jpki-adapter-memory", type=int, default=4096, metavar="MB", help="an adapter child's memory limit (4096; 0: none)")
    group.addoption("--jpki-profile", default="quick", choices=sorted(PROFILES), help="how hard the stateful search tries (quick)")
    group.addoption("--jpki-out", default="out/conformance", metavar="DIR", help="result.json and failure traces (out/conformance)")
    group.addoption("--jpki-known-failures", metavar="FILE", help="TOML file of ID = reason: failures reported apart, as xfail")
    group.addoption("--jpki-step-timeout", type=float, default=10.0, metavar="S", help="seconds one adapter call may take (10)")
    group.addoption("--jpki-db", default=_DEFAULT_DB, metavar="DIR", help="Hypothesis example database (.mjpki/examples)")
    group.addoption("--jpki-applet", metavar="MODULE:CLASS", help="run the applet-level checks on this GpSe-like class (in process)")
    group.addoption("--jpki-reader", metavar="NAME", help="run the applet-level checks on the card in this PC/SC reader (destructive)")
    group.addoption("--jpki-keys", metavar="FILE", help="the --jpki-reader SE's ISD SCP03 keys, JSON (or $MJPKI_SE_KEYS)")
    group.addoption(
        "--jpki-se-keys", metavar="FILE", help="read the SE slots over APDUs (se_apdu) with these SCP03 keys (as mjpki run --se-keys)"
    )
    group.addoption("--jpki-se-test-keys", action="store_true", help="the same with GlobalPlatform's test keys (a test system only)")


_DEFAULT_DB = ".mjpki/examples"
_APPLET_DB = ".mjpki/applet-examples"
"""The applet-level search's database when --jpki-db is left at its default (as `mjpki run --applet` does)."""


def _collect(config: pytest.Config, suite: Path) -> None:
    """With no paths on the command line, run the suite alone (not the project's own tests); else add it."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args = [str(suite)]
    elif str(suite) not in config.args:
        config.args.append(str(suite))


def _configure_applet(config: pytest.Config, applet: str | None, reader: str | None) -> None:
    from mjpki.adapterspec import AdapterSpecError
    from mjpki.applet_run import KeysError, applet_target_for_class, applet_target_for_reader, load_applet_class, load_keys

    if config.getoption("--jpki-adapter", default=None):
        raise pytest.UsageError("--jpki-adapter (system level) and --jpki-applet/--jpki-reader (applet level): give one")
    if applet and reader:
        raise pytest.UsageError("give --jpki-applet or --jpki-reader, not both")
    keys = config.getoption("--jpki-keys")
    if applet and keys:
        raise pytest.UsageError("--jpki-keys is for --jpki-reader (the harness makes its own keys for --jpki-applet)")
    try:
        if applet:
            target = applet_target_for_class(load_applet_class(applet), name=applet)
        else:
            assert reader is not None
            target = applet_target_for_reader(reader, load_keys(keys, keys_option="--jpki-keys", reader_option="--jpki-reader"))
    except (AdapterSpecError, KeysError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    db = config.getoption("--jpki-db")
    config.stash[_APPLET_KEY] = AppletSession(
        target=target,
        profile=config.getoption("--jpki-profile"),
        out_dir=Path(config.getoption("--jpki-out")),
        database_dir=Path(_APPLET_DB if db == _DEFAULT_DB else db) if db else None,
    )
    _collect(config, APPLET_SUITE_PATH)


def pytest_configure(config: pytest.Config) -> None:
    applet = config.getoption("--jpki-applet", default=None)
    reader = config.getoption("--jpki-reader", default=None)
    if applet or reader:
        _configure_applet(config, applet, reader)
        return
    if config.getoption("--jpki-keys", default=None):
        raise pytest.UsageError("--jpki-keys goes with --jpki-reader NAME")
    spec = config.getoption("--jpki-adapter", default=None)
    shim = config.getoption("--jpki-shim", default=None)
    url = config.getoption("--jpki-url", default=None)
    if not (spec or shim or url):
        return
    from mjpki.adapterspec import AdapterSpecError
    from mjpki.known_failures import KnownFailuresError, load_known_failures
    from mjpki.se_read import SeKeyedFactory, se_keys_for_run
    from mjpki.wire.choose import choose_system

    try:
        # First: a Python adapter mjpki starts gets the SE keys in its environment.
        se_keys = se_keys_for_run(
            config.getoption("--jpki-se-keys"), test_keys=config.getoption("--jpki-se-test-keys"), python_adapter=not (shim or url)
        )
        chosen = choose_system(
            adapter=spec, shim=shim, url=url, in_process=config.getoption("--jpki-in-process"),
            step_timeout=config.getoption("--jpki-step-timeout"), memory_mb=config.getoption("--jpki-adapter-memory"), prefix="--jpki-",
        )  # fmt: skip
        kf = config.getoption("--jpki-known-failures")
        known = load_known_failures(kf, check_ids={c.id for c in all_checks()}) if kf else None
    except (AdapterSpecError, KnownFailuresError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    problem = chosen.start()  # an adapter that cannot start is a usage error, not the same failure in every check
    if problem:
        raise pytest.UsageError(problem)
    if se_keys is not None:
        from dataclasses import replace

        chosen = replace(chosen, factory=SeKeyedFactory(chosen.factory, se_keys))
    db = config.getoption("--jpki-db")
    config.stash[_KEY] = ConformanceSession(
        adapter=chosen.name,
        factory=chosen.factory,
        profile=config.getoption("--jpki-profile"),
        out_dir=Path(config.getoption("--jpki-out")),
        known=known,
        timeout=chosen.timeout,
        database_dir=Path(db) if db else None,
        shutdown=chosen.shutdown,
    )
    _collect(config, SUITE_PATH)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _KEY in config.stash:
        conformance_session(config).shutdown()  # the adapter's child process ends with the session


def pytest_report_header(config: pytest.Config) -> str | None:
    if _APPLET_KEY in config.stash:
        a = applet_session(config)
        return f"mjpki applet-level conformance: {a.target.name}, profile {a.profile}, artefacts in {a.out_dir}/"
    if _KEY not in config.stash:
        return None
    s = conformance_session(config)
    return f"mjpki conformance: adapter {s.adapter}, profile {s.profile}, artefacts in {s.out_dir}/"


def _applet_summary(terminalreporter: Any, config: pytest.Config) -> None:
    from mjpki.applet_run import conformance_of, render_applet_summary, write_result

    a = applet_session(config)
    if not a.results:
        return
    result = conformance_of(a.target.name, a.profile, a.results, started=a.started, seconds=time.monotonic() - a.t0)
    path = write_result(result, a.out_dir)
    terminalreporter.write_sep("=", "JPKI applet conformance: verdict per requirement and per clause")
    for line in render_applet_summary(result).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"result: {path}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    # An xdist worker hands its checks' results to the controller, which writes the one summary and result.json.
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None and _KEY in config.stash:
        workeroutput["mjpki_results"] = [pickle.dumps(r) for r in conformance_session(config).results]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist (pytest -n N): collect a worker's check results on the controller (its own processes' pickles)."""
    config = node.config
    if _KEY in config.stash:
        conformance_session(config).results.extend(pickle.loads(b) for b in getattr(node, "workeroutput", {}).get("mjpki_results", ()))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _APPLET_KEY in config.stash:
        _applet_summary(terminalreporter, config)
        return
    if _KEY not in config.stash or hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    s = conformance_session(config)
    if not s.results:
        return
    order = {c.id: i for i, c in enumerate(all_checks())}
    s.results.sort(key=lambda r: order.get(r.check.id, len(order)))  # with xdist they arrive as workers finish
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
