"""Trace reduction (mjpki.minimise, issue 15 "Shrinking"): as short as the explorer's shortest, the same failure, bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.lockstep import Divergence, Lockstep, lockstep_machine
from mjpki.minimise import failure_key, minimise, same_failure
from mjpki.properties.explorer import Scope, explore
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.replay import replay_on_adapter
from mjpki.scenarios import base_world
from mjpki.spec import actions as A
from mjpki.spec.domain import Kind
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome, refused
from mjpki.spec.reasons import Reason
from mjpki.spec.trace import Trace
from mjpki.spec.world import World

BUG = SEEDED_BUGS["card_hold_skips_phone"]  # SUS-2: the explorer's shortest run that shows it has 7 steps


def _faulty(world: World) -> SpecSystem:
    return SpecSystem(world, stepper=BUG.stepper)


def _run(factory, world: World, actions: list[A.Action]) -> tuple[Trace, Divergence]:  # type: ignore[no-untyped-def]
    """The actions in lockstep up to the first divergence, as the search would report them."""
    run = Lockstep(factory, world)
    try:
        for a in actions:
            run.step(a)
            if run.broken:
                break
    finally:
        run.close()
    assert run.divergence is not None, "the hand-made run must fail"
    return run.trace(title="hand-made"), run.divergence


def _hand_made() -> list[A.Action]:
    """P1's first phone registered, amid another phone's setup, a card used by P2, a PIN refusal and a lost phone."""
    both = frozenset({Kind.SIGNING, Kind.AUTH})
    return [
        A.InstallApp(phone="D3"), A.InstallApp(phone="D1"), A.PrepareApplet(phone="D3"), A.SetOnline(phone="D2", online=False),
        A.PrepareApplet(phone="D1"), A.Apply(person="P1", phone="D1", kinds=both, signing_pin="ABC123", auth_pin="1234"),
        A.AdvanceTime(minutes=240), A.UseCard(person="P2", kind=Kind.AUTH, sp="portal"), A.AdvanceTime(minutes=240),
        A.DeliverIssuancePush(person="P1"), A.Register(person="P1", phone="D1"), A.Authenticate(phone="D1", sp="portal", pin="1234"),
        A.ReportPhoneLost(person="P1"), A.ReportCardLost(person="P1"), A.PhoneFound(person="P1"),
    ]  # fmt: skip


def test_a_hand_made_failing_run_is_reduced_to_the_explorers_shortest_and_replays_to_the_same_failure() -> None:
    trace, divergence = _run(_faulty, base_world(), _hand_made())
    assert len(trace.steps) == 15 and divergence.invariants == (BUG.breaks,)
    scope = Scope(persons=1, phones=1, depth=8, pins=False, variants=BUG.variants)
    shortest = next(v for v in explore(scope, stepper=BUG.stepper, stop_at_first=True).violations if v.invariant == BUG.breaks)
    done = minimise(trace, divergence, _faulty, seconds=60)
    assert not done.stopped and done.before == 15
    assert [s.action.name for s in done.trace.steps] == [s.action.name for s in shortest.trace.steps]
    assert done.after == len(done.trace.steps) == len(shortest.trace.steps) == 7
    assert same_failure(done.divergence, divergence) and done.divergence.index == 6
    # What `mjpki replay` does: the reported run fails again, at the step it records, the same way.
    again = replay_on_adapter(done.trace, _faulty)
    assert again.reproduces and again.divergence is not None and same_failure(again.divergence, divergence)
    assert again.agrees is False and replay_on_adapter(done.trace, SpecSystem).agrees


class TwoFaults:
    """Fails one way in long runs (UseCard refused after three steps) and another in short ones (early time steps raise)."""

    def __init__(self, world: World) -> None:
        self.inner = SpecSystem(world)
        self.steps = 0

    def step(self, action: A.Action) -> Outcome:
        n, self.steps = self.steps, self.steps + 1
        if isinstance(action, A.AdvanceTime) and n < 2:
            raise RuntimeError("the clock is not set yet")
        outcome = self.inner.step(action)
        return refused(Reason.CERT_REVOKED) if isinstance(action, A.UseCard) and n >= 3 else outcome

    def observation(self) -> Observation:
        return self.inner.observation()

    def close(self) -> None:
        pass


def test_a_shorter_run_that_fails_another_way_is_never_returned() -> None:
    world = base_world()
    use = A.UseCard(person="P1", kind=Kind.AUTH, sp="portal")
    actions = [A.InstallApp(phone="D1"), A.InstallApp(phone="D2"), A.AdvanceTime(minutes=10), use]
    trace, divergence = _run(TwoFaults, world, actions)
    assert divergence.index == 3 and divergence.action == actions[3]
    # A reducer that kept any failure would take this one: two steps, but the adapter raising at the time step.
    _short, other = _run(TwoFaults, world, actions[1:3])
    assert other.index == 1 and failure_key(other) != failure_key(divergence)
    done = minimise(trace, divergence, TwoFaults, seconds=60)
    assert same_failure(done.divergence, divergence) and failure_key(done.divergence) == failure_key(divergence)
    assert done.after == 4 and done.replays > 0 and not done.stopped  # three steps must come before the UseCard
    assert replay_on_adapter(done.trace, TwoFaults).reproduces


def test_a_budget_of_zero_returns_the_run_given() -> None:
    trace, divergence = _run(_faulty, base_world(), _hand_made())
    done = minimise(trace, divergence, _faulty, seconds=0)
    assert done.trace is trace and done.divergence is divergence
    assert (done.before, done.after, done.replays, done.stopped) == (15, 15, 0, True)
    assert "budget of 0 s spent" in str(done)


def test_a_spent_budget_stops_between_replays_with_a_failing_run() -> None:
    """However little time there is, what comes back fails the same way (at worst it is the run given)."""
    trace, divergence = _run(_faulty, base_world(), _hand_made())
    done = minimise(trace, divergence, _faulty, seconds=1e-9)
    assert done.stopped and done.after <= 15 and same_failure(done.divergence, divergence)
    assert replay_on_adapter(done.trace, _faulty).reproduces


def test_the_lockstep_machine_writes_the_reduced_run(tmp_path: Path) -> None:
    """lockstep_machine(reduce_seconds=...): the file Hypothesis's final replay writes holds the reduced run."""
    b = SEEDED_BUGS["pin_counter_broken"]
    factory = lambda w: SpecSystem(w, stepper=b.stepper)  # noqa: E731
    machine = lockstep_machine(factory, base_world(), trace_dir=str(tmp_path), name="bug", timeout=30, reduce_seconds=30)
    how = settings(max_examples=300, stateful_step_count=50, derandomize=True, database=None, deadline=None, phases=[Phase.generate])
    with pytest.raises(AssertionError, match="diverges from the spec"):
        run_state_machine_as_test(machine, settings=how)
    data = json.loads((tmp_path / "bug.json").read_text())
    scope = Scope(persons=1, phones=1, depth=8, pins=False, variants=b.variants)
    shortest = next(v for v in explore(scope, stepper=b.stepper, stop_at_first=True).violations if v.invariant == b.breaks)
    assert len(data["steps"]) == len(shortest.trace.steps) and data["meta"]["divergence"]["index"] == len(data["steps"]) - 1
    assert b.breaks in data["meta"]["divergence"]["what"]
