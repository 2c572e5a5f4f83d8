"""The `mjpki` command: subcommands listed, scenario run, replay and show, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mjpki.cli import main
from mjpki.runner import run_scenario
from mjpki.scenarios import SCENARIOS


def test_help_lists_subcommands(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("scenarios", "explore", "coverage", "diagrams", "replay", "show", "requirements", "rules", "assumptions", "schema"):
        assert cmd in out


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "mjpki"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("mjpki ")


def test_scenarios_pass_and_write_traces(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["scenarios", "--id", "lost-phone-found", "--id", "revoke-from-phone", "--traces", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 passed, 0 failed" in out and "SUS-1" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lost-phone-found.json", "revoke-from-phone.json"]


def test_unknown_scenario(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["scenarios", "--id", "nope"]) == 2
    assert "unknown scenario" in capsys.readouterr().err


def test_replay_agrees_then_finds_divergence(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = run_scenario(SCENARIOS["cascade-after-delay"]).trace
    path = tmp_path / "t.json"
    path.write_text(trace.dumps())
    assert main(["replay", str(path)]) == 0
    data = json.loads(path.read_text())
    data["steps"][-1]["expected"] = {"code": "ACCEPTED", "details": {}}
    path.write_text(json.dumps(data))
    assert main(["replay", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"step {len(data['steps']) - 1}" in out and "CERT_REVOKED" in out


def test_show_and_bad_files(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = run_scenario(SCENARIOS["outside-push-window"]).trace
    path = tmp_path / "t.json"
    path.write_text(trace.dumps())
    assert main(["show", str(path)]) == 0
    assert "PUSH_NOT_DUE" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "missing.json")]) == 2
    assert "no such trace file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"format": "x"}')
    assert main(["replay", str(tmp_path / "bad.json")]) == 2
    assert "not a valid trace" in capsys.readouterr().err


def test_rules_and_requirements_listing(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert "Register" in out and "COMMITMENT_MISMATCH" in out
    assert main(["requirements"]) == 0
    assert "LNK-3" in capsys.readouterr().out
    assert main(["schema", "--check"]) == 0


def test_explore_small_scope(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["explore", "--persons", "1", "--phones", "1", "--depth", "3", "--variant", "cascade_delay_minutes=0"]) == 0
    out = capsys.readouterr().out
    assert "scope: 1 persons, 1 phones" in out and "exhaustive up to depth 3" in out
    assert "one_phone_cert_per_kind" in out and "VIOLATED" not in out


def test_explore_rejects_bad_options(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["explore", "--persons", "7"]) == 2
    assert "persons" in capsys.readouterr().err
    try:
        main(["explore", "--variant", "colour=red"])
    except SystemExit as exc:
        assert "NAME=VALUE" in str(exc)
    else:
        raise AssertionError("an unknown variant must be refused")


def test_coverage_command(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    trace = run_scenario(SCENARIOS["lost-phone-found"]).trace
    (tmp_path / "t.json").write_text(trace.dumps())
    assert main(["coverage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 traces" in out and "declared outcomes exercised" in out and "never" in out


def test_scenarios_against_the_reference_implementation(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The main job's path: the reference system in lockstep; the trace carries the system's outcomes."""
    assert main(["scenarios", "--system", "reference", "--id", "revoke-from-phone", "--traces", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reference implementation" in out and "1 passed, 0 failed" in out
    data = json.loads((tmp_path / "revoke-from-phone.json").read_text())
    assert data["system"] == "reference"
    assert all(s["actual"]["code"] == s["expected"]["code"] for s in data["steps"])


# --- an adapter's preflight(): a usage error before any check ---------------------------------------------------------

PREFLIGHT_ADAPTER = """
import os

from mjpki.adapters.reference import factory


def preflight():
    if not os.environ.get("H7_ADAPTER_SETTING"):
        raise RuntimeError("set $H7_ADAPTER_SETTING to the lab's reader\\n    (see the adapter's docs)")
"""


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "mjpki"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=300)


def test_an_adapter_that_cannot_run_here_is_a_usage_error_before_any_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    # The PC/SC system adapter without its keys: exit 2 and one line naming the setting, not a failed run (exit 1).
    env = {k: v for k, v in os.environ.items() if k not in ("MJPKI_PCSC_KEYS", "H7_ADAPTER_SETTING")}
    for mode in ([], ["--in-process"]):
        out = tmp_path / f"out{len(mode)}"
        done = _cli(["run", "--adapter", "mjpki.adapters.pcsc_system:factory", *mode, "--out", str(out)], env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "$MJPKI_PCSC_KEYS must hold" in done.stderr and "Traceback" not in done.stderr
        assert not (out / "result.json").exists() and "system under test" not in done.stdout  # no check ran
    done = _cli(["serve-system", "--adapter", "mjpki.adapters.pcsc_system:factory", "--port", "0"], env)
    assert done.returncode == 2 and "$MJPKI_PCSC_KEYS must hold" in done.stderr, done.stderr
    # Any adapter module may say so: its message on one line (a newline in it is folded), in the child host too.
    module = tmp_path / "needs_setting.py"
    module.write_text(PREFLIGHT_ADAPTER, encoding="utf-8")
    done = _cli(["run", "--adapter", f"{module}:factory", "--out", str(tmp_path / "o"), "--check", "scenario:issue-both-kinds"], env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot run here: set $H7_ADAPTER_SETTING to the lab's reader (see the adapter's docs)" in done.stderr
    # Set, the hook lets it run (asked here in this process, as the child host asks it).
    from mjpki.adapterspec import preflight

    monkeypatch.setenv("H7_ADAPTER_SETTING", "reader 1")
    assert preflight(f"{module}:factory") is None
    monkeypatch.delenv("H7_ADAPTER_SETTING")
    assert preflight(f"{module}:factory") == (
        f"adapter '{module}:factory' cannot run here: set $H7_ADAPTER_SETTING to the lab's reader (see the adapter's docs)"
    )
    assert preflight("mjpki.adapters.reference:factory") is None  # a module without the hook can always run
