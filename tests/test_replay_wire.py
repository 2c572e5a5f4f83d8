"""Issue 14 (follow-up): `mjpki replay TRACE --adapter M:F` runs the adapter in a child process, as `mjpki run` does.

A replay on the reference through a child agrees with the spec; an adapter that exits with status 0 or hangs in the middle
of a replay is a failure line and exit 1 within the deadline, never a false exit 0 or a hung replay; the options that do
not go together are one line and exit 2. The trace is a dozen-step scenario (ISS-1..ISS-7) recorded on the spec adapter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.cli import main
from mjpki.lockstep import Lockstep
from mjpki.scenarios import SCENARIOS

SCENARIO = "issue-both-kinds"

BROKEN = textwrap.dedent(
    """
    import os, sys, time
    from mjpki.adapters.spec_adapter import SpecSystem
    from mjpki.spec.outcome import accepted, refused
    from mjpki.spec.reasons import Reason

    MODE = {mode!r}
    PIDFILE = {pidfile!r}

    class Broken(SpecSystem):
        steps = 0

        def step(self, action):
            self.steps += 1
            if self.steps == 3:
                if MODE == "os-exit-0":
                    os._exit(0)
                if MODE == "sys-exit-0":
                    sys.exit(0)
                if MODE == "hang":
                    time.sleep(3600)
                if MODE == "lie":  # an answer, but another one than the spec's
                    right = super().step(action)
                    return refused(Reason.APPLET_NOT_READY) if right.ok else accepted()
            return super().step(action)

    def factory(world):
        with open(PIDFILE, "w", encoding="utf-8") as f:  # which process built the system: the suite's or a child
            f.write(str(os.getpid()))
        return Broken(world)
    """
)


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scenario run in lockstep on the spec adapter, written as a trace file (the replay starts from the file)."""
    sc = SCENARIOS[SCENARIO]
    run = Lockstep(SpecSystem, sc.world, system_name="spec")
    for e in sc.steps:
        run.step(e.action)
    run.close()
    assert run.divergence is None and len(run.steps) > 3
    path = tmp_path_factory.mktemp("traces") / "issue_both_kinds.json"
    path.write_text(run.trace(title=SCENARIO, source="scenario").dumps(), encoding="utf-8")
    return path


def _adapter(tmp_path: Path, mode: str) -> tuple[str, Path]:
    pidfile = tmp_path / f"{mode}.pid"
    path = tmp_path / f"broken_{mode.replace('-', '_')}.py"
    path.write_text(BROKEN.format(mode=mode, pidfile=str(pidfile)), encoding="utf-8")
    return f"{path}:factory", pidfile


def _children() -> set[int]:
    """Processes whose parent is this one (an adapter child left behind would be one)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(os.getpid()) and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def test_replay_on_the_reference_through_a_child_agrees(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(trace_file), "--adapter", "mjpki.adapters.reference:factory"]) == 0
    out = capsys.readouterr().out
    assert "replayed on mjpki.adapters.reference:factory in lockstep with the spec" in out
    assert "mjpki.adapters.reference:factory and the spec agree at every step" in out and ">>" not in out


@pytest.mark.parametrize(("option", "child"), [((), True), (("--in-process",), False)], ids=["child", "in-process"])
def test_the_adapter_is_built_in_a_child_unless_in_process(
    trace_file: Path, tmp_path: Path, option: tuple[str, ...], child: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter, pidfile = _adapter(tmp_path, "well")
    assert main(["replay", str(trace_file), "--adapter", adapter, *option]) == 0
    assert "agree at every step" in capsys.readouterr().out
    assert (int(pidfile.read_text()) != os.getpid()) is child


EXPECTED = {
    "os-exit-0": "it exited with status 0",
    "sys-exit-0": "the adapter raised SystemExit: 0",
    "hang": "no answer to step within 1 s",
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_an_adapter_exiting_or_hanging_mid_replay_is_a_failure(
    trace_file: Path, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter, _ = _adapter(tmp_path, mode)
    before = _children()
    start = time.monotonic()
    code = main(["replay", str(trace_file), "--adapter", adapter, "--step-timeout", "1"])
    seconds = time.monotonic() - start
    out = capsys.readouterr().out
    assert code == 1, out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith(f"{adapter} failed during the replay, at step 2 "), verdict  # the third step, where it misbehaved
    assert EXPECTED[mode] in verdict, verdict
    assert "agree at every step" not in out
    assert seconds < 20, f"{mode}: the replay took {seconds:.0f} s"
    assert _children() <= before, "an adapter process was left behind"


def test_another_outcome_keeps_the_verdict_of_a_normal_replay(trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adapter, _ = _adapter(tmp_path, "lie")
    assert main(["replay", str(trace_file), "--adapter", adapter]) == 1
    out = capsys.readouterr().out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith(f"{adapter} and the spec part at step 2 "), verdict  # an outcome, not a failure of the adapter
    assert "failed during the replay" not in out and ">>2" in out


def test_options_that_do_not_go_together_are_one_line(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(trace_file), "--shim", "x", "--url", "http://127.0.0.1:1/"]) == 2
    assert "give one of --adapter, --shim and --url" in capsys.readouterr().err
    assert main(["replay", str(trace_file), "--in-process"]) == 2
    assert "--in-process goes with --adapter" in capsys.readouterr().err
    assert main(["replay", str(trace_file), "--adapter", "mjpki.adapters.reference:factory", "--step-timeout", "0"]) == 2
    assert "--step-timeout 0: give a positive number" in capsys.readouterr().err


def test_an_in_process_adapter_that_hangs_still_lets_the_replay_exit(trace_file: Path, tmp_path: Path) -> None:
    # In process nothing can kill the hung call: the verdict must come at the deadline and the process must still end.
    adapter, _ = _adapter(tmp_path, "hang")
    args = ["replay", str(trace_file), "--adapter", adapter, "--in-process", "--step-timeout", "1"]
    done = subprocess.run(
        [sys.executable, "-c", f"from mjpki.cli import main; raise SystemExit(main({args!r}))"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no answer within 1 s (the adapter hangs)" in done.stdout and "agree at every step" not in done.stdout
