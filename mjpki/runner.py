"""Run scenarios on the spec: check each step's outcome and every invariant, record a trace."""

from __future__ import annotations

from dataclasses import dataclass

from mjpki.properties.invariants import check_state, check_transition
from mjpki.scenarios import Scenario
from mjpki.spec.machine import step
from mjpki.spec.observe import observe
from mjpki.spec.state import initial_state
from mjpki.spec.trace import Trace, TraceStep, step_reqs

__all__ = ["Mismatch", "ScenarioResult", "run_scenario"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """A step whose outcome is not what the scenario expects."""

    index: int
    action: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"step {self.index} {self.action}: expected {self.expected}, got {self.got}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    """The trace of a scenario run, with what did not match and what invariants broke."""

    scenario: Scenario
    trace: Trace
    mismatches: tuple[Mismatch, ...]
    violations: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True if every step matched and no invariant broke."""
        return not self.mismatches and not self.violations


def run_scenario(sc: Scenario) -> ScenarioResult:
    """Play a scenario on the spec."""
    world = sc.world
    state = initial_state(world)
    pre = observe(world, state)
    mismatches: list[Mismatch] = []
    violations: list[str] = [f"initial state: {v}" for v in check_state(world, pre)]
    steps: list[TraceStep] = []
    for i, exp in enumerate(sc.steps):
        state, outcome = step(world, state, exp.action)
        post = observe(world, state)
        found = check_transition(world, pre, exp.action, outcome, post)
        violations += [f"step {i} {exp.action.name}: {v}" for v in found]
        details_ok = all(outcome.details.get(k) == v for k, v in exp.details.items())
        if outcome.code != exp.code or not details_ok:
            want = exp.code + (f" {exp.details}" if exp.details else "")
            mismatches.append(Mismatch(index=i, action=str(exp.action), expected=want, got=str(outcome)))
        steps.append(
            TraceStep(
                action=exp.action,
                expected=outcome,
                reqs=step_reqs(exp.action, outcome),
                violations=tuple(str(v) for v in found),
            )
        )
        pre = post
    trace = Trace(world=world, steps=tuple(steps), title=f"{sc.id}: {sc.title}", source="scenario")
    return ScenarioResult(scenario=sc, trace=trace, mismatches=tuple(mismatches), violations=tuple(violations))
