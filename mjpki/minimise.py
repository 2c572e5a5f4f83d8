"""Trace reduction: make a failing run as short as it can be while the system still fails the same way.

Hypothesis shrinks the choices that made a run, and a draw that depends on the state (the index of a phone among those
that can take the action) cannot be deleted without changing what the later draws mean. This works on the run itself,
whose steps name their persons and phones: it deletes the steps that change nothing on the spec, all the steps about
one phone or person at once, chunks of steps and single steps (delta debugging), merges time steps, shortens time
jumps and puts arguments back to their defaults, and keeps a change only when the system, replayed in lockstep, still
fails the same way (`same_failure`: the same invariants, or the same rule with the same blamed requirements). Every
candidate runs on the spec first, which costs microseconds: first only candidates in which every step kept gets the
spec's answer it had reach the system, then those that keep the failing step's answer, then (the failure may show
sooner) any. The search is deterministic and stops when its time is spent; the run it returns is the last one the
system failed, so it replays to the same failure (`mjpki replay`).

    done = minimise(trace, divergence, factory, seconds=15, timeout=10.0)
    done.trace, done.divergence, str(done)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from mjpki.adapters.system import AdapterFactory
from mjpki.lockstep import Divergence, Lockstep
from mjpki.spec import actions as A
from mjpki.spec.machine import step
from mjpki.spec.state import initial_state
from mjpki.spec.trace import Trace
from mjpki.spec.world import World

__all__ = ["FailureKey", "Minimised", "failure_key", "minimise", "same_failure"]

_IDENTITY_FIELDS = ("person", "phone", "to")
"""The action fields that name a person or a phone: the stable identifiers a step is about."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureKey:
    """What makes two failures the same one: the invariants broken, or else the diverging rule and the requirements blamed."""

    invariants: frozenset[str]
    rule: str
    """The diverging step's action ("" for an invariant: it may break after another step in a shorter run)."""
    reqs: frozenset[str]


def failure_key(divergence: Divergence) -> FailureKey:
    """The failure a divergence shows, without the step index and the system's own words."""
    if divergence.invariants:
        return FailureKey(invariants=frozenset(divergence.invariants), rule="", reqs=frozenset())
    rule = "" if divergence.action is None else divergence.action.name
    return FailureKey(invariants=frozenset(), rule=rule, reqs=frozenset(divergence.reqs))


def same_failure(a: Divergence, b: Divergence) -> bool:
    """True if both divergences show the same failure (the same invariants, or the same rule and blamed requirements)."""
    return failure_key(a) == failure_key(b)


@dataclass(frozen=True, slots=True, kw_only=True)
class Minimised:
    """The reduced run, its divergence, and what reducing it took."""

    trace: Trace
    divergence: Divergence
    before: int
    """Steps in the run given."""
    after: int
    candidates: int
    """Shorter or simpler runs considered."""
    replays: int
    """Of those, the ones the spec let through and that were replayed on the system."""
    seconds: float
    budget: float
    stopped: bool
    """The time ran out before no change was left to try (the run is the shortest found by then)."""

    def __str__(self) -> str:
        how = f"budget of {self.budget:g} s spent" if self.stopped else "done"
        return f"reduced {self.before} to {self.after} steps ({self.replays} replays on the system) in {self.seconds:.1f} s ({how})"


class _OutOfTime(Exception):
    """The reduction's time is spent: the run found so far is the answer."""


class _Level(IntEnum):
    """How much of the run a candidate must keep on the spec before the system sees it, strictest first."""

    STORY = 0
    """Every step kept keeps the spec's answer: most likely to fail the same way, so tried first (replays cost most)."""
    FAILING_STEP = 1
    """The failing step keeps its action and the spec's answer."""
    RELAXED = 2
    """The failing step may go too (the failure may show sooner); a failing rule needs one of its steps with the spec's
    answer anywhere in the run, an invariant nothing (the spec cannot tell where the system's state goes wrong)."""


Candidate = tuple[int | A.Action, ...]
"""A run built from the current one: an int is the current run's step at that index, an Action a new or simpler step."""


class _Reducer:
    """One reduction: the current failing run, the candidates already replayed, the clock."""

    def __init__(
        self, trace: Trace, divergence: Divergence, factory: AdapterFactory, *, deadline: float, timeout: float, system_name: str,
        progress: Callable[[str], None] | None,
    ) -> None:  # fmt: skip
        self.world: World = trace.world
        self.factory = factory
        self.deadline = deadline
        self.timeout = timeout
        self.system_name = system_name
        self.progress = progress
        self.key = failure_key(divergence)
        self.trace = Trace(
            world=trace.world, steps=trace.steps[: divergence.index + 1], title=trace.title, source=trace.source,
            system=trace.system, meta=trace.meta,
        )  # fmt: skip
        self.divergence = divergence
        self._adopt(tuple(s.action for s in self.trace.steps))
        self.seen: set[tuple[A.Action, ...]] = {self.actions}
        """Candidates replayed on the system (the system is deterministic: a second replay would say the same)."""
        self.level = _Level.STORY
        self.candidates = self.replays = 0
        self.longest = 0.0
        """The longest replay so far, in seconds."""
        self.started = time.monotonic()

    def _adopt(self, actions: tuple[A.Action, ...]) -> None:
        self.actions = actions
        self.codes, self.noops = self._on_spec(actions)

    def _on_spec(self, actions: tuple[A.Action, ...]) -> tuple[tuple[str, ...], frozenset[int]]:
        """The spec's answer to each step, and the steps that leave the spec's state as it was."""
        state = initial_state(self.world)
        codes, noops = [], set()
        for i, a in enumerate(actions):
            new, outcome = step(self.world, state, a)
            codes.append(outcome.code)
            if new == state:
                noops.add(i)
            state = new
        return tuple(codes), frozenset(noops)

    # --- judging one candidate ---

    def _plausible(self, candidate: Candidate, actions: tuple[A.Action, ...], level: _Level) -> bool:
        """The spec's verdict on a candidate at this level (see _Level)."""
        if not actions:
            return False
        try:
            codes, _noops = self._on_spec(actions)
        except (ValueError, TypeError):  # a simpler step the spec does not take (a malformed argument): not a run
            return False
        last, code = self.actions[-1], self.codes[-1]
        if level == _Level.RELAXED:
            return bool(self.key.invariants) or any(type(a) is type(last) and c == code for a, c in zip(actions, codes, strict=True))
        if type(actions[-1]) is not type(last) or codes[-1] != code:
            return False
        return level == _Level.FAILING_STEP or all(isinstance(o, A.Action) or codes[i] == self.codes[o] for i, o in enumerate(candidate))

    def attempt(self, candidate: Candidate, *, level: _Level | None = None) -> bool:
        """Keep the candidate if the system still fails the same way on it (a shorter prefix of it, if it fails sooner)."""
        actions = tuple(o if isinstance(o, A.Action) else self.actions[o] for o in candidate)
        if actions in self.seen:
            return False
        self.candidates += 1
        # Not remembered when the spec turns it away: a later, looser level may let it through (the spec costs microseconds).
        if not self._plausible(candidate, actions, self.level if level is None else level):
            return False
        # No replay that would end past the deadline, judged by the longest one so far (on the reference about a second).
        began = time.monotonic()
        if began + self.longest >= self.deadline:
            raise _OutOfTime
        self.seen.add(actions)
        self.replays += 1
        run = Lockstep(self.factory, self.world, timeout=self.timeout, system_name=self.system_name)
        try:
            for a in actions:
                run.step(a)
                if run.broken:
                    break
            else:
                run.finish()  # as the search does at a run's end: the last state's artefacts
        finally:
            run.close()
        self.longest = max(self.longest, time.monotonic() - began)
        d = run.divergence
        if d is None or d.index < 0 or failure_key(d) != self.key:
            return False
        shorter = len(run.steps) < len(self.actions)
        self.trace = run.trace(title=self.trace.title, source=self.trace.source)
        self.divergence = d
        self._adopt(tuple(s.action for s in run.steps))
        if shorter and self.progress is not None:
            self.progress(f"reduced to {len(self.actions)} steps, {time.monotonic() - self.started:.1f} s")
        return True

    def _keep(self, drop: set[int] | range) -> Candidate:
        return tuple(i for i in range(len(self.actions)) if i not in drop)

    # --- the passes; each returns True if it changed the run ---

    def drop_noops(self) -> bool:
        """Delete, in one go, every step before the failing one that leaves the spec's state as it was (mostly refusals)."""
        noops = {i for i in self.noops if i < len(self.actions) - 1}
        return bool(noops) and self.attempt(self._keep(noops))

    def drop_identities(self) -> bool:
        """Delete every step about one person or phone the failing step does not name (the setup of other phones)."""
        changed = False
        named = _identities(self.actions[-1])
        for who in sorted({x for a in self.actions[:-1] for x in _identities(a)} - named):
            changed |= self.attempt(self._keep({i for i, a in enumerate(self.actions[:-1]) if who in _identities(a)}))
        return changed

    def drop_chunks(self) -> bool:
        """Delta debugging over the steps before the failing one: chunks of half, a quarter, ... down to single steps."""
        changed = False
        last = 0 if self.level == _Level.RELAXED else 1  # the failing step stays, except in the relaxed round
        size = max(1, (len(self.actions) - last) // 2)
        while size >= 1:
            i = 0
            while i + size <= len(self.actions) - last:
                if self.attempt(self._keep(range(i, i + size))):
                    changed = True  # the run shrank: the same position now holds the next steps
                else:
                    i += size
            size //= 2
        return changed

    def merge_time(self) -> bool:
        """Two time steps become one that lets the same time pass, at the later one's place or at the earlier one's."""
        changed = False
        i = 0
        while i < len(self.actions):
            a = self.actions[i]
            j = next((j for j in range(i + 1, len(self.actions)) if isinstance(self.actions[j], A.AdvanceTime)), None)
            merged = False
            if isinstance(a, A.AdvanceTime) and j is not None:
                b = self.actions[j]
                assert isinstance(b, A.AdvanceTime)
                both = A.AdvanceTime(minutes=a.minutes + b.minutes)
                # What lies between them happens a little earlier, or a little later.
                between, after = tuple(range(i + 1, j)), tuple(range(j + 1, len(self.actions)))
                for candidate in ((*range(i), *between, both, *after), (*range(i), both, *between, *after)):
                    if self.attempt(candidate):
                        changed = merged = True
                        break
            if not merged:
                i += 1
        return changed

    def simplify(self) -> bool:
        """Shorter time jumps (halved while the story holds) and arguments put back to their defaults, one step at a time."""
        changed = False
        i = 0
        while i < len(self.actions):
            for simpler in _simpler(self.actions[i]):
                # Always at the story level: a simpler step must not change what any step of the run does on the spec.
                if self.attempt((*range(i), simpler, *range(i + 1, len(self.actions))), level=_Level.STORY):
                    changed = True
                    break  # the same step again: half of the half, the next argument
            else:
                i += 1
        return changed

    def run(self) -> bool:
        """Apply the passes, strictest level first, until none changes the run or the time is spent; True if it was spent."""
        passes = (self.drop_noops, self.drop_identities, self.drop_chunks, self.merge_time, self.simplify)
        try:
            while True:
                for level in (_Level.STORY, _Level.FAILING_STEP):
                    self.level = level
                    changed = True
                    while changed:
                        changed = False
                        for reduce_pass in passes:
                            changed |= reduce_pass()
                # Nothing left that keeps the failing step: let it go too (the failure may show at an earlier step). The
                # spec filters least here, so this round comes last.
                self.level = _Level.RELAXED
                if not self.drop_chunks():
                    return False
        except _OutOfTime:
            return True


def _identities(action: A.Action) -> frozenset[str]:
    """The persons and phones a step names."""
    return frozenset(str(getattr(action, f)) for f in _IDENTITY_FIELDS if hasattr(action, f))


def _simpler(action: A.Action) -> list[A.Action]:
    """Simpler forms of a step, most aggressive first: half the time jump, each argument that has a default set to it."""
    if isinstance(action, A.AdvanceTime):
        return [A.AdvanceTime(minutes=m) for m in (action.minutes // 2,) if 0 < m < action.minutes]
    out = []
    for f in dataclasses.fields(action):  # type: ignore[arg-type]
        if f.default is not dataclasses.MISSING and getattr(action, f.name) != f.default:
            out.append(dataclasses.replace(action, **{f.name: f.default}))  # type: ignore[type-var]
    return out


def minimise(
    trace: Trace,
    divergence: Divergence,
    factory: AdapterFactory,
    *,
    seconds: float,
    timeout: float = 10.0,
    system_name: str = "",
    progress: Callable[[str], None] | None = None,
) -> Minimised:
    """Reduce a failing run within `seconds`; the result fails the same way on the system (the input if none shorter did).

    A divergence before the first step (the factory, the initial state) has nothing to reduce. No replay starts that
    would end past the time given if it took as long as the longest so far; one that does take longer runs to its end
    (at most one step timeout per step on a system that hangs).
    """
    start = time.monotonic()
    before = len(trace.steps)
    if divergence.index < 0 or seconds <= 0:
        return Minimised(
            trace=trace, divergence=divergence, before=before, after=before, candidates=0, replays=0, seconds=0.0, budget=seconds,
            stopped=divergence.index >= 0,
        )  # fmt: skip
    reducer = _Reducer(
        trace, divergence, factory, deadline=start + seconds, timeout=timeout, system_name=system_name or (trace.system or ""),
        progress=progress,
    )  # fmt: skip
    stopped = reducer.run()
    return Minimised(
        trace=reducer.trace, divergence=reducer.divergence, before=before, after=len(reducer.actions), candidates=reducer.candidates,
        replays=reducer.replays, seconds=time.monotonic() - start, budget=seconds, stopped=stopped,
    )  # fmt: skip
