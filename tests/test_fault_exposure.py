"""tests/fault_exposure.py's predicates say where each edge fault shows: checked against the faulty systems themselves.

bench/search_reach.py estimates how often a search misses these faults from the predicates alone, on the spec; that is
only as good as the predicates. Here each one must name exactly the step at which its faulty system first diverges, on
the fault's scenario and on generated runs (one that exposes the fault, one that does not).
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mjpki.conformance import STATEFUL_WORLDS
from mjpki.lockstep import Lockstep
from mjpki.scenarios import SCENARIOS
from mjpki.spec import actions as A
from mjpki.spec.clock import DAY
from mjpki.spec.machine import step
from mjpki.spec.state import State, initial_state
from mjpki.spec.world import World
from mjpki.strategies import action_strategy
from tests.fault_exposure import EXPOSES
from tests.faulty_impls import FAULTY, shared_parts


def _first_exposure(name: str, world: World, actions: list[A.Action]) -> int | None:
    """The index of the first step of the actions, stepped on the spec, that the predicate marks."""
    state = initial_state(world)
    for i, action in enumerate(actions):
        after, outcome = step(world, state, action)
        if EXPOSES[name](world, state, action, outcome, after):
            return i
        state = after
    return None


def _first_divergence(name: str, world: World, actions: list[A.Action]) -> int | None:
    """The index of the step at which the faulty system first diverges from the spec, in lockstep."""
    run = Lockstep(FAULTY[name].factory, world, system_name=name, timeout=30)
    try:
        for action in actions:
            run.step(action)
            if run.broken:
                break
        else:
            run.finish()
        return None if run.divergence is None else run.divergence.index
    finally:
        run.close()


@cache
def _drawn(world_name: str) -> tuple[tuple[A.Action, ...], ...]:
    """150 derandomized runs of 50 steps (a ci profile search's) in a stateful world, drawn once for every fault."""
    world = STATEFUL_WORLDS[world_name]()
    runs: list[tuple[A.Action, ...]] = []

    @settings(
        max_examples=150, derandomize=True, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        state, actions = initial_state(world), []
        for _ in range(50):
            action = data.draw(action_strategy(world, state))
            state, _outcome = step(world, state, action)
            actions.append(action)
        runs.append(tuple(actions))

    draw()
    return tuple(runs)


def _generated(world_name: str, name: str) -> tuple[list[A.Action], list[A.Action]]:
    """Of the drawn runs: the first that exposes the fault, cut after the step that does, and the first that does not."""
    world = STATEFUL_WORLDS[world_name]()
    exposing = quiet = None
    for run in _drawn(world_name):
        at = _first_exposure(name, world, list(run))
        if at is None:
            quiet = quiet or list(run)
        else:
            exposing = exposing or list(run[: at + 1])
    assert exposing, f"{len(_drawn(world_name))} generated runs never expose {name}"
    assert quiet, f"every generated run exposes {name}"
    return exposing, quiet


@pytest.fixture(scope="module", autouse=True)
def _parts() -> None:
    shared_parts()


def test_every_predicate_is_of_a_shipped_fault() -> None:
    assert set(EXPOSES) <= set(FAULTY)


@pytest.mark.parametrize("name", sorted(EXPOSES))
def test_predicate_marks_where_the_scenario_diverges(name: str) -> None:
    scenario = SCENARIOS[FAULTY[name].caught_by]
    actions = [e.action for e in scenario.steps]
    marked = _first_exposure(name, scenario.world, actions)
    assert marked is not None, f"{name}: the predicate marks no step of {scenario.id}, which catches the fault"
    assert _first_divergence(name, scenario.world, actions) == marked


@pytest.mark.parametrize("name", sorted(EXPOSES))
def test_predicate_marks_where_a_generated_run_diverges(name: str) -> None:
    world = STATEFUL_WORLDS["default"]()
    exposing, quiet = _generated("default", name)
    assert _first_divergence(name, world, exposing) == len(exposing) - 1, f"{name}: {exposing}"
    assert _first_divergence(name, world, quiet) is None, f"{name} diverges where the predicate marks nothing: {quiet}"


def _state_after(scenario_id: str, steps: int) -> tuple[World, State]:
    scenario = SCENARIOS[scenario_id]
    state = initial_state(scenario.world)
    for e in scenario.steps[:steps]:
        state, _outcome = step(scenario.world, state, e.action)
    return scenario.world, state


def _time_steps_drawn(world: World, state: State, *, draws: int = 600) -> list[A.AdvanceTime]:
    """The time steps among `draws` derandomized draws of the action strategy in one state."""
    out: list[A.AdvanceTime] = []

    @settings(max_examples=draws, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        action = data.draw(action_strategy(world, state))
        if isinstance(action, A.AdvanceTime):
            out.append(action)

    draw()
    return out


def test_time_steps_stop_at_a_waiting_cascades_deadline() -> None:
    """Drawn while a cascade waits, most time steps that reach its deadline stop there, where a late cascade shows."""
    world, state = _state_after("cascade-after-delay", 10)  # just after ChangePersonalData: the cascade waits a day
    deadline = state.now + world.variants.cascade_delay_minutes
    reaching = [a for a in _time_steps_drawn(world, state) if state.now + a.minutes >= deadline]
    exposing = [a for a in reaching if EXPOSES["cascade-delay-doubled"](world, state, a, *reversed(step(world, state, a)))]
    assert len(reaching) >= 20, f"only {len(reaching)} drawn time steps reach the cascade's deadline"
    assert len(exposing) >= 0.6 * len(reaching), f"{len(exposing)} of {len(reaching)} time steps past the deadline stop in time"


def test_time_steps_stop_a_day_before_a_waiting_deletions_deadline() -> None:
    """Drawn while the person goes back to a phone whose deletion waits, most time steps that reach the deletion's last
    day stop at its start: the deletion still waits there (the flow goes on) and a window a day short shows."""
    world, state = _state_after("deletion-after-the-slot-changed-hands", 16)  # just after the Apply back to the old phone
    ((person, app),) = state.applications.items()
    deletion = state.deletions[(app.phone, person)]
    reaching = [a for a in _time_steps_drawn(world, state) if state.now + a.minutes >= deletion.deadline - DAY]
    exposing = [a for a in reaching if EXPOSES["deletion-window-one-day"](world, state, a, *reversed(step(world, state, a)))]
    assert len(reaching) >= 20, f"only {len(reaching)} drawn time steps reach the deletion's last day"
    assert len(exposing) >= 0.6 * len(reaching), f"{len(exposing)} of {len(reaching)} time steps into the last day stop in it"
