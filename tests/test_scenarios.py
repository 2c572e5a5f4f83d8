"""Every named scenario: each step's outcome as the scenario states it, every invariant after every step."""

from __future__ import annotations

import pytest

from mjpki.runner import run_scenario
from mjpki.scenarios import SCENARIOS, Expect, Scenario, scenario
from mjpki.spec import actions as A
from mjpki.spec.trace import Trace, replay_on_spec


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_scenario_on_spec(sid: str) -> None:
    result = run_scenario(SCENARIOS[sid])
    assert not result.mismatches, "\n".join(map(str, result.mismatches))
    assert not result.violations, "\n".join(result.violations)


@pytest.mark.parametrize("sid", list(SCENARIOS))
def test_scenario_trace_round_trips_and_replays(sid: str) -> None:
    trace = run_scenario(SCENARIOS[sid]).trace
    again = Trace.from_json(trace.to_json())
    assert again.to_json() == trace.to_json()
    assert [s.action for s in again.steps] == [s.action for s in trace.steps]
    assert replay_on_spec(again).agrees


def test_runner_reports_a_wrong_expectation() -> None:
    """The runner is not a rubber stamp: a scenario that expects the wrong outcome fails, at that step."""
    base = SCENARIOS["issue-both-kinds"]
    steps = list(base.steps)
    bad_index = next(i for i, e in enumerate(steps) if e.code == "PIN_NOT_SET")
    steps[bad_index] = Expect(action=steps[bad_index].action, code="ACCEPTED")
    result = run_scenario(Scenario(id="x", title="x", reqs=(), world=base.world, steps=tuple(steps)))
    assert [m.index for m in result.mismatches] == [bad_index]
    assert "PIN_NOT_SET" in result.mismatches[0].got


def test_runner_checks_details() -> None:
    base = SCENARIOS["outside-push-window"]
    steps = list(base.steps)
    i = next(i for i, e in enumerate(steps) if "push_due" in e.details)
    steps[i] = Expect(action=steps[i].action, code=steps[i].code, details={"push_due": 1})
    result = run_scenario(Scenario(id="x", title="x", reqs=(), world=base.world, steps=tuple(steps)))
    assert [m.index for m in result.mismatches] == [i]


def test_scenario_ids_are_unique() -> None:
    with pytest.raises(ValueError, match="used twice"):
        scenario("issue-both-kinds", "again", reqs=())(lambda: [Expect(action=A.InstallApp(phone="D1"))])


def test_scenario_needs_steps() -> None:
    with pytest.raises(ValueError, match="no steps"):
        scenario("empty-scenario", "nothing", reqs=())(lambda: [])
