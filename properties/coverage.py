"""Coverage of a run: which actions and outcome codes it exercised, and which explored edges it touched."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from mjpki.properties.explorer import Exploration
from mjpki.spec.machine import step
from mjpki.spec.rules import RULES
from mjpki.spec.state import initial_state
from mjpki.spec.trace import Trace

__all__ = ["Coverage", "coverage", "render_coverage"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """What a set of traces exercised, against everything the spec can do."""

    outcomes: Counter[tuple[str, str]]
    """(action, outcome code) -> how many steps had it."""
    never_actions: tuple[str, ...]
    never_outcomes: tuple[tuple[str, str], ...]
    """Declared (action, code) pairs no step had; environmental refusals are left out."""
    edges_touched: int | None = None
    edges_total: int | None = None
    edges_note: str = ""

    @property
    def possible(self) -> int:
        """How many (action, outcome) pairs the spec declares."""
        return sum(len(_declared(cls.__name__)) for cls in RULES)


def _declared(name: str) -> list[str]:
    spec = next(r for cls, r in RULES.items() if cls.__name__ == name)
    return ["ACCEPTED", *(r.name for r in spec.reasons if not r.environmental)]


def coverage(traces: Iterable[Trace], exploration: Exploration | None = None) -> Coverage:
    """Count what the traces exercised; with an exploration of the same world, also the graph edges touched."""
    traces = list(traces)
    seen: Counter[tuple[str, str]] = Counter()
    for t in traces:
        for s in t.steps:
            outcome = s.actual if s.actual is not None else s.expected
            seen[(s.action.name, outcome.code)] += 1
    names = [cls.__name__ for cls in RULES]
    never_actions = tuple(n for n in names if not any(a == n for a, _ in seen))
    never_outcomes = tuple((n, c) for n in names for c in _declared(n) if (n, c) not in seen)
    touched = total = None
    note = ""
    if exploration is not None:
        total = exploration.edges
        same = [t for t in traces if t.world == exploration.world]
        if len(same) < len(traces):
            note = f"{len(traces) - len(same)} traces ran in another world than the explored scope; their edges are not counted"
        edges: set[tuple[object, object]] = set()
        canon, graph = exploration.canon, exploration.graph
        for t in same:
            state = initial_state(t.world)
            for s in t.steps:
                new, _ = step(t.world, state, s.action)
                u, v = canon.key(state), canon.key(new)
                if graph.has_edge(u, v):
                    edges.add((u, v))
                state = new
        touched = len(edges)
    return Coverage(
        outcomes=seen, never_actions=never_actions, never_outcomes=never_outcomes, edges_touched=touched, edges_total=total, edges_note=note
    )


def render_coverage(cov: Coverage) -> str:
    """A short report: counts, then what was never exercised."""
    hit = cov.possible - len(cov.never_outcomes)
    lines = [f"action/outcome coverage: {hit} of {cov.possible} declared outcomes exercised"]
    if cov.never_actions:
        lines.append(f"  actions never exercised: {', '.join(cov.never_actions)}")
    by_action: dict[str, list[str]] = {}
    for a, c in cov.never_outcomes:
        if a not in cov.never_actions:
            by_action.setdefault(a, []).append(c)
    for a, codes in by_action.items():
        lines.append(f"  {a}: never {', '.join(codes)}")
    if cov.edges_total is not None:
        lines.append(f"explored-graph edges touched: {cov.edges_touched} of {cov.edges_total}")
        if cov.edges_note:
            lines.append(f"  ({cov.edges_note})")
    return "\n".join(lines)
