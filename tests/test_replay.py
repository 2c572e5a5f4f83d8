"""Replay of traces on adapters: the reference reproduces its agreement, a faulty system its divergence at the same step;
the `mjpki replay --adapter` exit codes; the generated standalone pytest file fails on the faulty system and passes on the reference."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mjpki.adapters.reference import factory as reference_factory
from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.cli import main
from mjpki.lockstep import Lockstep
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.replay import replay_on_adapter
from mjpki.scenarios import SCENARIOS
from mjpki.spec.trace import Trace, load_trace
from mjpki.spec.world import World
from mjpki.standalone import standalone_test

BUG = "card_found_resumes_signing"
SCENARIO = "lost-card-found"
FAULTY_MODULE = f"""
from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.properties.seeded_bugs import SEEDED_BUGS


def factory(world):
    return SpecSystem(world, stepper=SEEDED_BUGS[{BUG!r}].stepper)
"""


def faulty_factory(world: World) -> SpecSystem:
    """A system with one seeded bug: a found card's suspended signing certificate is resumed (SUS-3)."""
    return SpecSystem(world, stepper=SEEDED_BUGS[BUG].stepper)


def _recorded(factory, name: str) -> Trace:  # type: ignore[no-untyped-def]
    """The scenario run in lockstep on a system, as the trace a conformance run writes."""
    sc = SCENARIOS[SCENARIO]
    run = Lockstep(factory, sc.world, system_name=name)
    for e in sc.steps:
        run.step(e.action)
    run.close()
    return run.trace(title=f"{SCENARIO} on {name}", source="scenario")


@pytest.fixture(scope="module")
def faulty_trace(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The faulty system's trace, written to a file and read back (the replay starts from the file)."""
    path = tmp_path_factory.mktemp("traces") / "lost_card_faulty.json"
    trace = _recorded(faulty_factory, "faulty")
    assert trace.meta["divergence"]["index"] == 13
    path.write_text(trace.dumps(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def faulty_module(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The faulty system as a module file, for `--adapter path.py:factory` and the generated test."""
    path = tmp_path_factory.mktemp("adapter") / "faulty_adapter.py"
    path.write_text(textwrap.dedent(FAULTY_MODULE), encoding="utf-8")
    return path


# --- replay_on_adapter -------------------------------------------------------------------------------


def test_reference_trace_replays_on_the_reference_without_divergence() -> None:
    trace = Trace.from_json(_recorded(reference_factory, "reference").to_json())
    assert trace.first_divergence is None and "divergence" not in trace.meta
    result = replay_on_adapter(trace, reference_factory)
    assert result.agrees and result.divergence is None
    assert result.recorded_index is None and not result.reproduces
    assert result.spec_changed == ()
    assert len(result.trace.steps) == len(trace.steps)
    assert all(s.actual is not None and s.actual.code == s.expected.code for s in result.trace.steps)


def test_faulty_trace_reproduces_on_the_faulty_system_at_the_same_step(faulty_trace: Path) -> None:
    trace = load_trace(faulty_trace)
    result = replay_on_adapter(trace, faulty_factory)
    assert result.divergence is not None and result.divergence.index == 13
    assert result.recorded_index == 13 and result.reproduces
    assert "suspended_signing_never_resumes" in result.divergence.what and "SUS-3" in result.divergence.reqs
    assert result.trace.meta["divergence"]["index"] == 13
    assert len(result.trace.steps) == len(trace.steps), "steps after the divergence are kept (on the spec alone)"


def test_faulty_trace_shows_no_divergence_on_the_reference(faulty_trace: Path) -> None:
    result = replay_on_adapter(load_trace(faulty_trace), reference_factory)
    assert result.agrees and result.recorded_index == 13 and not result.reproduces


def test_a_different_divergence_is_not_a_reproduction(faulty_trace: Path) -> None:
    """A system that fails earlier (here: its factory raises) diverges, but not at the recorded step."""

    def broken(world: World) -> SpecSystem:
        raise RuntimeError("no test deployment today")

    result = replay_on_adapter(load_trace(faulty_trace), broken)
    assert result.divergence is not None and result.divergence.index == -1 and "no test deployment today" in result.divergence.what
    assert not result.reproduces


def test_spec_changes_are_reported(faulty_trace: Path) -> None:
    """A trace whose recorded expected outcome the spec no longer gives: the step is listed."""
    import json

    data = json.loads(faulty_trace.read_text())
    data["steps"][2]["expected"] = {"code": "APPLET_NOT_READY", "details": {}}
    result = replay_on_adapter(Trace.from_json(data), faulty_factory)
    assert result.spec_changed == (2,)


# --- mjpki replay --adapter ----------------------------------------------------------------------------


def test_cli_replay_on_adapter_exit_codes(faulty_trace: Path, faulty_module: Path, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["replay", str(faulty_trace), "--adapter", f"{faulty_module}:factory", "--markdown", str(tmp_path / "r.md")]) == 1
    out = capsys.readouterr().out
    assert ">>13" in out and "part at step 13" in out and "reproduced at the same step" in out
    report = (tmp_path / "r.md").read_text()
    assert "```mermaid" in report and "rect rgb(255,220,220)" in report
    assert main(["replay", str(faulty_trace), "--adapter", "mjpki.adapters.reference:factory"]) == 0
    out = capsys.readouterr().out
    assert "agree at every step" in out and "not reproduced" in out
    spec_only = ["replay", str(faulty_trace), "--markdown", str(tmp_path / "s.md")]
    assert main(spec_only) == 0, "without --adapter: the spec-only replay, which agrees with the recorded expectations"
    assert "rect rgb(255,220,220)" in (tmp_path / "s.md").read_text(), "the report of the trace as recorded shows its divergence"


def test_cli_replay_errors(faulty_trace: Path, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    for bad in ("no-colon", "nosuchmodule_xyz:factory", "mjpki.adapters.reference:nothing"):
        assert main(["replay", str(faulty_trace), "--adapter", bad]) == 2
        err = capsys.readouterr().err
        assert f"adapter {bad!r}" in err and "Traceback" not in err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["replay", str(tmp_path / "bad.json"), "--adapter", "mjpki.adapters.reference:factory"]) == 2
    assert "not a valid trace" in capsys.readouterr().err
    assert main(["replay", str(tmp_path), "--adapter", "mjpki.adapters.reference:factory"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["replay", str(faulty_trace), "--emit-pytest", str(tmp_path / "t.py")]) == 2
    assert "--emit-pytest needs --adapter" in capsys.readouterr().err
    assert main(["replay", str(faulty_trace), "--markdown", str(tmp_path / "no" / "such" / "dir.md")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_cli_replay_in_a_subprocess_has_no_traceback(faulty_trace: Path) -> None:
    exe = Path(sys.executable).parent / "mjpki"
    done = subprocess.run([str(exe), "replay", str(faulty_trace), "--adapter", "nope:nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "cannot import" in done.stderr and "Traceback" not in done.stderr


# --- the standalone pytest file ------------------------------------------------------------------------


def _run_pytest(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=300,
    )


def test_standalone_file_fails_on_the_faulty_system_and_passes_on_the_reference(faulty_trace: Path, faulty_module: Path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    failing = tmp_path / "faulty" / "test_replay_lost_card_faulty.py"
    failing.parent.mkdir()
    failing.write_text(standalone_test(faulty_trace, adapter=f"{faulty_module}:factory"), encoding="utf-8")
    text = failing.read_text()
    assert "def test_replay_lost_card_faulty" in text and ">>13" in text.split('"""')[1], "the step table is in the docstring"
    assert str(faulty_trace) not in text.split('"""', 2)[2], "the trace is inline: the file needs no other file"
    done = _run_pytest(failing)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "parts from the spec at step 13" in done.stdout and "suspended_signing_never_resumes" in done.stdout

    passing = tmp_path / "reference" / "test_replay_lost_card_faulty.py"
    passing.parent.mkdir()
    passing.write_text(standalone_test(faulty_trace, adapter="mjpki.adapters.reference:factory"), encoding="utf-8")
    faulty_trace.rename(faulty_trace.with_suffix(".moved"))  # the generated file must not read it
    try:
        done = _run_pytest(passing)
    finally:
        faulty_trace.with_suffix(".moved").rename(faulty_trace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_standalone_file_runs_the_adapter_in_a_child_like_mjpki_run(faulty_trace: Path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # An adapter that ends its process while building a system: behind the child-process host (the default, as in `mjpki
    # run`) that is the test's failure, reported; only --in-process puts it in the test's own process, which it then ends.
    crash = tmp_path / "crashing_adapter.py"
    crash.write_text("import os\n\n\ndef factory(world):\n    os._exit(7)\n", encoding="utf-8")
    child = tmp_path / "child" / "test_replay_crash.py"
    child.parent.mkdir()
    child.write_text(standalone_test(faulty_trace, adapter=f"{crash}:factory", timeout=5.0), encoding="utf-8")
    assert "IN_PROCESS = False" in child.read_text()
    done = _run_pytest(child)
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout + done.stderr
    assert "exited with status 7" in done.stdout, done.stdout
    inside = tmp_path / "inside" / "test_replay_crash.py"
    inside.parent.mkdir()
    inside.write_text(standalone_test(faulty_trace, adapter=f"{crash}:factory", in_process=True), encoding="utf-8")
    assert "IN_PROCESS = True" in inside.read_text() and "--in-process --emit-pytest" in inside.read_text()
    assert _run_pytest(inside).returncode == 7


def test_cli_emits_the_standalone_file(faulty_trace: Path, faulty_module: Path, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "test_replay_x.py"
    assert main(["replay", str(faulty_trace), "--adapter", f"{faulty_module}:factory", "--emit-pytest", str(out)]) == 1
    assert "standalone test written" in capsys.readouterr().out
    compile(out.read_text(), str(out), "exec")
    assert f"ADAPTER = {str(faulty_module) + ':factory'!r}" in out.read_text() and "IN_PROCESS = False" in out.read_text()
    assert main(["replay", str(faulty_trace), "--adapter", f"{faulty_module}:factory", "--in-process", "--emit-pytest", str(out)]) == 1
    assert "IN_PROCESS = True" in out.read_text()
