"""Lockstep runs: every step goes to the spec and to a system under test; outcomes and invariants are compared.

A `Lockstep` holds the spec's state and one system. Each step is applied to both; the
system's outcome is compared with the spec's (the code, and details that are values rather
than the system's own identifiers), and every invariant is checked on the system's
observation. An adapter that raises, hangs past the step timeout, or returns something
that is not an Outcome or Observation is a failure of that step, recorded like any other.
The run so far is always available as a trace.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mjpki.adapters.system import AdapterFactory, SystemAdapter
from mjpki.properties.invariants import check_state, check_transition
from mjpki.spec.actions import Action
from mjpki.spec.machine import step
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State, initial_state
from mjpki.spec.trace import Trace, TraceStep, step_reqs
from mjpki.spec.world import World

__all__ = ["COMPARED_DETAILS", "Divergence", "Lockstep", "lockstep_machine", "write_failure"]

COMPARED_DETAILS = frozenset(
    {"tries_left", "push_due", "kind", "leftover_removed", "se_wiped", "profile", "removed", "deleted", "deletion_warning"}
)
"""Outcome details compared with the spec's; the rest name the system's own serials and are not."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """Where the system first parted from the spec, and why."""

    index: int
    """The diverging step, or -1 before the first step (factory or initial observation)."""
    action: Action | None
    what: str
    reqs: tuple[str, ...]

    def __str__(self) -> str:
        where = "before the first step" if self.action is None else f"step {self.index} {self.action}"
        return f"{where}: {self.what} [{', '.join(self.reqs)}]"


class Lockstep:
    """The spec and one system under test, stepped together."""

    def __init__(
        self, factory: AdapterFactory, world: World, *, timeout: float = 10.0, system_name: str = "", factory_timeout: float | None = None
    ) -> None:
        self.world = world
        self.timeout = timeout
        self.system_name = system_name or getattr(factory, "__qualname__", repr(factory))
        self.state: State = initial_state(world)
        self.steps: list[TraceStep] = []
        self.divergence: Divergence | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mjpki-adapter")
        self._hung = False
        """An adapter call timed out: its worker thread is still busy, so nothing more is sent."""
        self.system: SystemAdapter | None = None
        self._obs: Observation | None = None
        # Building a system (keys, databases, readers) takes longer than a step: by default six step timeouts, at least a minute.
        limit = factory_timeout if factory_timeout is not None else max(6 * timeout, 60.0)
        made, problem = self._call(lambda: factory(world), timeout=limit)
        if problem:
            self._diverge(-1, None, f"the adapter factory failed: {problem}", ())
            return
        self.system = made
        obs, problem = self._observe()
        if problem:
            self._diverge(-1, None, problem, ())
            return
        self._obs = obs
        found = check_state(world, obs)  # type: ignore[arg-type]
        if found:
            self._diverge(-1, None, "initial state: " + "; ".join(map(str, found)), tuple(r for v in found for r in v.reqs))

    # --- calling the adapter safely ---

    def _call(self, fn: Callable[[], T], *, timeout: float | None = None) -> tuple[T | None, str | None]:
        limit = self.timeout if timeout is None else timeout
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=limit), None
        except concurrent.futures.TimeoutError:
            self._hung = True
            return None, f"no answer within {limit:g} s (the adapter hangs)"
        except Exception as exc:  # an adapter's exception is a finding, never a crash of the suite
            return None, f"the adapter raised {type(exc).__name__}: {exc}"

    def _observe(self) -> tuple[Observation | None, str | None]:
        assert self.system is not None
        obs, problem = self._call(self.system.observation)
        if problem:
            return None, f"observation(): {problem}"
        if not isinstance(obs, Observation):
            return None, f"observation() returned {type(obs).__name__}, not an Observation"
        return obs, None

    def _diverge(self, index: int, action: Action | None, what: str, reqs: tuple[str, ...]) -> None:
        if self.divergence is None:
            self.divergence = Divergence(index=index, action=action, what=what, reqs=reqs)

    # --- stepping ---

    @property
    def broken(self) -> bool:
        """True once the system has diverged (further steps are not sent)."""
        return self.divergence is not None

    def step(self, action: Action) -> TraceStep:
        """Apply one action to the spec and, unless the world cannot take it, to the system."""
        new_state, expected = step(self.world, self.state, action)
        self.state = new_state
        index = len(self.steps)
        reqs = step_reqs(action, expected)
        if (expected.reason is not None and expected.reason.environmental) or self.broken or self.system is None:
            record = TraceStep(action=action, expected=expected, reqs=reqs, note="not sent to the system")
            self.steps.append(record)
            return record
        actual, problem = self._call(lambda: self.system.step(action))  # type: ignore[union-attr]
        violations: tuple[str, ...] = ()
        if problem is None and not isinstance(actual, Outcome):
            problem = f"step() returned {type(actual).__name__}, not an Outcome"
        if problem is not None:
            self._diverge(index, action, problem, reqs)
            record = TraceStep(action=action, expected=expected, reqs=reqs, note=problem)
            self.steps.append(record)
            return record
        assert isinstance(actual, Outcome)
        mismatch = _compare(expected, actual)
        if mismatch:
            extra = actual.reason.reqs if actual.reason is not None else ()
            self._diverge(index, action, mismatch, tuple(dict.fromkeys(reqs + extra)))
        post, problem = self._observe()
        if problem is not None:
            self._diverge(index, action, problem, reqs)
        else:
            assert post is not None and self._obs is not None
            found = check_transition(self.world, self._obs, action, actual, post)
            violations = tuple(str(v) for v in found)
            if found:
                self._diverge(
                    index, action, "invariant: " + "; ".join(map(str, found)), tuple(dict.fromkeys(r for v in found for r in v.reqs))
                )
            self._obs = post
        record = TraceStep(action=action, expected=expected, actual=actual, reqs=reqs, violations=violations, note=problem)
        self.steps.append(record)
        return record

    def trace(self, *, title: str = "", source: str = "hypothesis") -> Trace:
        """The run so far, with the system's outcomes and violations."""
        meta: dict[str, Any] = {}
        if self.divergence is not None:
            meta["divergence"] = {"index": self.divergence.index, "what": self.divergence.what, "reqs": list(self.divergence.reqs)}
        return Trace(world=self.world, steps=tuple(self.steps), title=title, source=source, system=self.system_name, meta=meta)

    def close(self) -> None:
        """Close the system, diverged or not (it may hold readers or files), unless it hangs; stop the worker thread."""
        if self.system is not None and not self._hung:
            self._call(self.system.close)  # a close that raises is not a finding: the divergence, if any, is already recorded
        self._pool.shutdown(wait=False, cancel_futures=True)


def write_failure(trace: Trace, divergence: Divergence, out_dir: Path, name: str) -> tuple[Path, ...]:
    """Write a failing run as <name>.json (the trace), .txt (the step table) and .md (report with sequence diagram)."""
    from mjpki.mermaid import markdown_report
    from mjpki.render import step_table

    out_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    paths = (out_dir / f"{safe}.json", out_dir / f"{safe}.txt", out_dir / f"{safe}.md")
    paths[0].write_text(trace.dumps(), encoding="utf-8")
    paths[1].write_text(f"{trace.title}\n{divergence}\n\n{step_table(trace)}\n", encoding="utf-8")
    paths[2].write_text(markdown_report(trace, name=safe), encoding="utf-8")
    return paths


def _compare(expected: Outcome, actual: Outcome) -> str | None:
    if expected.code != actual.code:
        return f"the spec says {expected.code}, the system {actual.code}"
    for key in sorted(COMPARED_DETAILS & set(expected.details)):
        if key in actual.details and actual.details[key] != expected.details[key]:
            return f"{key}: the spec says {expected.details[key]!r}, the system {actual.details[key]!r}"
    return None


def lockstep_machine(
    factory: AdapterFactory,
    world: World,
    *,
    trace_dir: str | None = None,
    timeout: float = 10.0,
    name: str = "",
    on_divergence: Callable[[Trace, Divergence], None] | None = None,
    on_run_end: Callable[[Lockstep], None] | None = None,
) -> type:
    """A Hypothesis RuleBasedStateMachine that runs generated steps in lockstep on the spec and a system.

    On a divergence it writes the run as a trace (and a step table next to it) into
    trace_dir and calls on_divergence; Hypothesis replays the shrunk example last, so the
    file (and the last call) hold the shortest failing run it found. on_run_end sees every
    run as it ends (for progress and requirement coverage).
    """

    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    from mjpki.render import step_table
    from mjpki.strategies import action_strategy

    system_name = name or getattr(factory, "__qualname__", repr(factory))

    class LockstepMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.run = Lockstep(factory, world, timeout=timeout, system_name=system_name)
            self._fail_if_diverged()

        @rule(data=st.data())
        def act(self, data: st.DataObject) -> None:
            action = data.draw(action_strategy(world, self.run.state), label="action")
            self.run.step(action)
            self._fail_if_diverged()

        def _fail_if_diverged(self) -> None:
            d = self.run.divergence
            if d is None:
                return
            trace = self.run.trace(title=f"{system_name} diverges from the spec", source="hypothesis")
            if on_divergence is not None:
                on_divergence(trace, d)
            table = step_table(trace)
            if trace_dir:
                write_failure(trace, d, Path(trace_dir), system_name)
            raise AssertionError(f"{system_name} diverges from the spec: {d}\n{table}")

        def teardown(self) -> None:
            self.run.close()
            if on_run_end is not None:
                on_run_end(self.run)

    LockstepMachine.__name__ = f"Lockstep_{system_name}"
    return LockstepMachine
