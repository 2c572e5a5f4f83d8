"""The conformance run (mjpki run, the pytest plugin): verdicts, artefacts, known failures, bad adapters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.cli import main
from mjpki.conformance import all_checks, run_conformance
from mjpki.known_failures import KnownFailures, KnownFailuresError, load_known_failures
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.spec.requirements import conformance_ids
from mjpki.spec.trace import load_trace, replay_on_spec
from mjpki.spec.world import World

ROOT = Path(__file__).resolve().parent.parent
BUG = SEEDED_BUGS["card_found_resumes_signing"]  # breaks SUS-3; the lost-card-found scenario walks into it
CHECKS = {c.id: c for c in all_checks()}
LOST_CARD = (CHECKS["scenario:lost-card-found"], CHECKS["scenario:issue-both-kinds"])

FAULTY_MODULE = """
from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.properties.seeded_bugs import SEEDED_BUGS

def factory(world):
    return SpecSystem(world, stepper=SEEDED_BUGS["card_found_resumes_signing"].stepper)

def broken(world):
    raise RuntimeError("cannot reach the test system")
"""


def faulty(world: World) -> SpecSystem:
    return SpecSystem(world, stepper=BUG.stepper)


def test_every_check_has_a_unique_id_and_scenarios_come_first() -> None:
    ids = [c.id for c in all_checks()]
    assert len(ids) == len(set(ids))
    kinds = [c.kind for c in all_checks()]
    assert kinds == sorted(kinds, key=lambda k: k != "scenario")
    assert {"stateful:default", "stateful:variants"} <= set(ids)


def test_the_spec_conforms_with_every_requirement_exercised(tmp_path: Path) -> None:
    result = run_conformance(SpecSystem, profile="quick", out_dir=tmp_path, system_name="spec")
    assert result.passed, [str(r.divergence) for r in result.new_failures]
    assert set(result.verdicts) == set(conformance_ids())
    assert set(result.verdicts.values()) == {"pass"}
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["format"] == "mjpki-result/1" and data["passed"] is True
    assert data["summary"]["pass"] == len(all_checks())
    assert [p for p in tmp_path.iterdir() if p.name != "result.json"] == []


def test_a_faulty_system_fails_with_a_trace_naming_the_broken_requirement(tmp_path: Path) -> None:
    result = run_conformance(faulty, profile="quick", out_dir=tmp_path, checks=LOST_CARD, system_name="faulty")
    assert not result.passed
    (failure,) = result.new_failures
    assert failure.check.id == "scenario:lost-card-found"
    assert failure.divergence is not None and "SUS-3" in failure.divergence.reqs
    assert result.verdicts["SUS-3"] == "FAIL"
    assert result.verdicts["ISS-1"] == "pass"
    suffixes = {p.suffix for p in failure.artefacts}
    assert {".json", ".txt"} <= suffixes
    trace = load_trace(next(p for p in failure.artefacts if p.suffix == ".json"))
    assert trace.first_divergence == failure.divergence.index
    replay_on_spec(trace)  # the failing run is a valid run of the spec: it replays with the spec's outcomes
    data = json.loads((tmp_path / "result.json").read_text())
    (entry,) = [c for c in data["checks"] if c["status"] == "fail"]
    assert "SUS-3" in entry["divergence"]["reqs"] and entry["artefacts"]


def test_the_stateful_search_catches_a_fault_no_scenario_was_given(tmp_path: Path) -> None:
    bug = SEEDED_BUGS["pin_counter_broken"]
    result = run_conformance(
        lambda w: SpecSystem(w, stepper=bug.stepper), profile="quick", out_dir=tmp_path, checks=(CHECKS["stateful:default"],)
    )
    (failure,) = result.new_failures
    assert failure.divergence is not None and set(bug.reqs) & set(failure.divergence.reqs)
    trace = load_trace(next(p for p in failure.artefacts if p.suffix == ".json"))
    assert trace.source == "hypothesis" and trace.first_divergence == len(trace.steps) - 1


def test_known_failures_are_reported_apart_and_do_not_fail_the_run(tmp_path: Path) -> None:
    known = KnownFailures(entries={"SUS-3": "vendor ticket 812", "REV-2": "not expected to fail"})
    result = run_conformance(faulty, profile="quick", out_dir=tmp_path, checks=LOST_CARD, known_failures=known)
    assert result.passed
    (r,) = [r for r in result.results if r.status == "known"]
    assert r.known_reason == "SUS-3: vendor ticket 812"
    assert result.verdicts["SUS-3"] == "known failure"
    assert result.unused_known == ("REV-2",)


def test_known_failures_file_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "known.toml"
    good.write_text('"SUS-3" = "ticket 1"\n"scenario:lost-card-found" = "ticket 2"\n')
    kf = load_known_failures(good, check_ids=set(CHECKS))
    assert kf.match("scenario:x", ("ISS-1", "SUS-3")) == ("SUS-3", "ticket 1")
    assert kf.match("scenario:lost-card-found", ()) == ("scenario:lost-card-found", "ticket 2")
    assert kf.match("scenario:x", ("ISS-1",)) is None
    bad = tmp_path / "bad.toml"
    typo = "SUS-" + "99"  # not a requirement ID (spelled in two parts so the traceability scan does not cite it)
    bad.write_text(f'"{typo}" = "typo"\n"LNK-3" = ""\n')
    with pytest.raises(KnownFailuresError, match=r"SUS-[9]+.*neither.*LNK-3.*non-empty"):
        load_known_failures(bad, check_ids=set(CHECKS))
    (tmp_path / "broken.toml").write_text("SUS-3 = \n")
    with pytest.raises(KnownFailuresError, match="not valid TOML"):
        load_known_failures(tmp_path / "broken.toml")


def test_a_factory_that_raises_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    def broken(world: World) -> SpecSystem:
        raise RuntimeError("no connection")

    result = run_conformance(broken, profile="quick", out_dir=tmp_path, checks=LOST_CARD)
    assert not result.passed and len(result.new_failures) == 2
    assert all("factory failed" in str(r.divergence) and "no connection" in str(r.divergence) for r in result.new_failures)
    assert set(result.verdicts.values()) == {"not exercised"}


def test_cli_run_exit_codes_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "faultymod.py").write_text(FAULTY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    args = ["run", "--out", str(out), "--check", "scenario:lost-card-found", "-q", "--db", ""]
    assert main([*args, "--adapter", "faultymod:factory"]) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "SUS-3" in text and "DOES NOT CONFORM" in text
    assert (out / "scenario-lost-card-found.json").exists()
    (tmp_path / "known.toml").write_text('"SUS-3" = "ticket 812"\n')
    assert main([*args, "--adapter", "faultymod:factory", "--known-failures", str(tmp_path / "known.toml")]) == 0
    text = capsys.readouterr().out
    # Exit 0 only with CONFORMS in the summary; a selection of checks says that it is not a verdict on the whole spec.
    assert "Known failures" in text and "; CONFORMS on the checks run (" in text and "not a verdict on the whole spec" in text
    assert main([*args, "--adapter", "faultymod:nope"]) == 2
    assert "has no attribute" in capsys.readouterr().err
    assert main([*args, "--adapter", "faultymod:broken"]) == 1
    assert main(["run", "--check", "scenario:nope"]) == 2
    assert main(["run", "--list"]) == 0
    assert "stateful:variants" in capsys.readouterr().out


def _pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)])}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_pytest_plugin_fails_a_faulty_adapter_with_junit_and_json(tmp_path: Path) -> None:
    (tmp_path / "faultymod.py").write_text(FAULTY_MODULE)
    out = tmp_path / "out"
    common = ["--jpki-adapter=faultymod:factory", f"--jpki-out={out}", "--jpki-db=", "-k", "lost-card-found or issue-both-kinds"]
    done = _pytest(*common, f"--junitxml={tmp_path / 'junit.xml'}", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "verdict per requirement" in done.stdout and "DOES NOT CONFORM" in done.stdout
    junit = (tmp_path / "junit.xml").read_text()
    assert 'failures="1"' in junit and 'name="diverging_requirements"' in junit and "SUS-3" in junit
    assert json.loads((out / "result.json").read_text())["passed"] is False
    (tmp_path / "known.toml").write_text('"SUS-3" = "ticket 812"\n')
    done = _pytest(*common, f"--jpki-known-failures={tmp_path / 'known.toml'}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "1 xfailed" in done.stdout


def test_pytest_plugin_rejects_a_bad_adapter_with_a_usage_error(tmp_path: Path) -> None:
    done = _pytest("--jpki-adapter=nosuchmodule:factory", cwd=tmp_path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "cannot import 'nosuchmodule'" in done.stderr


def test_plugin_is_inert_without_an_adapter(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text(textwrap.dedent("""
        def test_one():
            assert True
    """))
    done = _pytest(cwd=tmp_path)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout
