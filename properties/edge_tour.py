"""Checks generated from the explored graph: a transition tour of a small scope, and every deadline at its boundary.

The explorer knows every state of a scope up to a depth and every (action, outcome) edge between them. From that
graph this module derives a few short runs that together ask the system for every (rule, outcome code) pair reachable
in each scope (a greedy tour: from where the run stands, the shortest way to an edge whose pair no run has taken yet),
and, for every kind of deadline that occurs in the scope (DEADLINE_KINDS: push window and due time, deletion deadline,
expiry, cascade delay, 72-hour primary authentication), runs that stand one minute before it, at it and one minute after
it and ask every action whose answer differs between those three instants. Everything is computed from the spec, the
same way on every run; `mjpki.edge_checks` runs the result in lockstep as the check `coverage:edges`.

Actions name persons, phones, kinds and PINs, never serials, and the scopes here have no symmetry reduction, so a path
of the graph replays on the spec as it is; the runs' expected codes are nevertheless the spec's own on replay, and the
coverage counted is what replay gave, not what the graph promised.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import networkx as nx

from mjpki.properties.explorer import Exploration, Scope, alphabet, explore, onboarding_prefix, scope_world
from mjpki.spec import actions as A
from mjpki.spec.machine import DEADLINE_KINDS, deadlines, step
from mjpki.spec.state import State, initial_state
from mjpki.spec.world import World

__all__ = ["TOUR_SCOPES", "MAX_RUN", "BOUNDARY_TRIES", "TourRun", "Boundary", "Tour", "build_tour", "default_tour"]

TOUR_SCOPES: tuple[Scope, ...] = (
    Scope(persons=1, phones=2, depth=4, symmetry=False, verifier=True),
    Scope(persons=1, phones=2, depth=3, start="onboarded", expiry=True, os_auth=True, symmetry=False, verifier=True),
)
"""The tour's scopes: one person with two phones (the second unheld: a transfer target), from the start to depth 4 and
from the onboarded state (both phone certificates in force) to depth 3 with OS authentication and jumps to the next
expiry, both with the relying-party probes. Small enough to explore in a few seconds at the start of a run; between them
they reach every deadline kind."""

MAX_RUN = 24
"""Steps a tour run takes after its start before a new run begins (shorter runs localise a divergence better)."""

BOUNDARY_TRIES = 60
"""States tried per kind of deadline in search of one where some action's answer changes at the deadline."""

Label = tuple[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TourRun:
    """One generated run: the actions from the initial state and the spec's outcome code for each."""

    purpose: str
    actions: tuple[A.Action, ...]
    codes: tuple[str, ...]
    boundary: str = ""
    """The kind of deadline the run probes (DEADLINE_KINDS), or "" for a run of the transition tour."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Boundary:
    """A deadline probed one minute before, at and one minute after it."""

    kind: str
    """One of mjpki.spec.machine.DEADLINE_KINDS."""
    at: int
    """The deadline, in spec minutes."""
    probes: tuple[str, ...]
    """The actions whose outcome differs between the three instants (none: only the time steps' own effect is probed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tour:
    """The generated runs, the pairs they were built to cover and the boundaries they probe."""

    world: World
    scopes: tuple[Scope, ...]
    runs: tuple[TourRun, ...]
    pairs: frozenset[Label]
    """(action, outcome code) pairs on the explored graphs' edges: everything the scopes can give."""
    covered: frozenset[Label]
    """The pairs the runs' steps have on replay on the spec."""
    boundaries: tuple[Boundary, ...]
    states: int
    seconds: float

    @property
    def steps(self) -> int:
        """Steps in all runs."""
        return sum(len(r.actions) for r in self.runs)

    def scope_text(self) -> str:
        """The scopes in one phrase."""
        return "; ".join(f"{s.persons}x{s.phones} from {s.start} to depth {s.depth}" for s in self.scopes)

    def summary(self, covered: frozenset[Label] | None = None, runs_done: int | None = None) -> str:
        """The coverage figure: pairs covered of those reachable, and the deadline boundaries whose runs all ran."""
        got = self.covered if covered is None else covered
        done = self.runs if runs_done is None else self.runs[:runs_done]
        left = {r.boundary for r in self.runs[len(done) :]}
        kinds = [b.kind for b in self.boundaries if b.kind not in left]
        return (
            f"covered {len(got & self.pairs)} of {len(self.pairs)} (rule, outcome) pairs reachable in scope {self.scope_text()}; "
            f"{len(kinds)} deadline boundaries at -1/0/+1 min ({', '.join(kinds) or 'none'})"
        )


def _label(data: dict[str, Any]) -> Label:
    return (data["action"].name, data["outcome"].code)


def _out(graph: nx.DiGraph, u: Any) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    """Every edge out of u: the graph's, then the parallel ones the explorer kept (keep_parallel)."""
    yield from graph.out_edges(u, data=True)
    for action, outcome, v in graph.nodes[u].get("parallel", ()):
        yield u, v, {"action": action, "outcome": outcome}


def _edges(graph: nx.DiGraph) -> Iterator[dict[str, Any]]:
    for u in graph.nodes:
        for _u, _v, d in _out(graph, u):
            yield d


def _nearest(graph: nx.DiGraph, start: Any, wanted: set[Label]) -> list[tuple[Any, Any, dict[str, Any]]] | None:
    """The shortest path of edges from start whose last edge has a wanted label (BFS in insertion order: deterministic)."""
    parent: dict[Any, tuple[Any, dict[str, Any]] | None] = {start: None}
    queue: deque[Any] = deque([start])
    while queue:
        u = queue.popleft()
        for _, v, d in _out(graph, u):
            if _label(d) in wanted:
                path = [(u, v, d)]
                node = u
                while parent[node] is not None:
                    p, pd = parent[node]  # type: ignore[misc]
                    path.append((p, node, pd))
                    node = p
                return list(reversed(path))
            if v not in parent:
                parent[v] = (u, d)
                queue.append(v)
    return None


def _root(graph: nx.DiGraph) -> Any:
    return next(iter(graph.nodes))  # the explorer adds the start state first


def _tour_walks(graph: nx.DiGraph, wanted: set[Label]) -> Iterator[list[A.Action]]:
    """Greedy transition tour: runs from the root, each going to the nearest edge with a pair still wanted, until none is left."""
    root = _root(graph)
    while wanted:
        node, actions = root, []
        while len(actions) < MAX_RUN:
            path = _nearest(graph, node, wanted)
            if path is None or (actions and len(actions) + len(path) > MAX_RUN):
                break
            for _u, v, d in path:
                actions.append(d["action"])
                wanted.discard(_label(d))
                node = v
        if not actions:
            return  # nothing wanted is reachable from the root (the pairs of another scope)
        yield actions


def _replay(world: World, actions: list[A.Action]) -> tuple[State, tuple[str, ...]]:
    state, codes = initial_state(world), []
    for a in actions:
        state, outcome = step(world, state, a)
        codes.append(outcome.code)
    return state, tuple(codes)


def _path_to(graph: nx.DiGraph, node: Any) -> list[A.Action]:
    actions = []
    while (parent := graph.nodes[node]["parent"]) is not None:
        actions.append(graph.edges[parent, node]["action"])
        node = parent
    return list(reversed(actions))


def _boundary_runs(world: World, scope: Scope, prefix: list[A.Action], state: State, at: int, kind: str) -> tuple[Boundary, list[TourRun]]:
    """Runs that stand at at-1, at and at+1 and ask every action whose answer differs between the three instants."""
    instants = [x for x in (at - 1, at, at + 1) if x >= state.now]
    stood: dict[int, State] = {}
    for x in instants:
        s, outcome = (state, None) if x == state.now else step(world, state, A.AdvanceTime(minutes=x - state.now))
        if outcome is None or outcome.ok:
            stood[x] = s
    answers: dict[int, dict[A.Action, tuple[str, bool]]] = {}
    for x, s in stood.items():
        answers[x] = {}
        for a in alphabet(world, s, scope):
            if isinstance(a, A.AdvanceTime):
                continue
            after, outcome = step(world, s, a)
            if outcome.reason is None or not outcome.reason.environmental:
                answers[x][a] = (outcome.code, after is not s)
    common = set.intersection(*(set(v) for v in answers.values())) if answers else set()
    order = [a for a in answers[min(answers)] if a in common] if answers else []
    probes = [a for a in order if len({answers[x][a][0] for x in answers}) > 1]
    boundary = Boundary(kind=kind, at=at, probes=tuple(dict.fromkeys(a.name for a in probes)))
    # One run walks the three instants asking the probes that change nothing. The probes that change the state are asked
    # in further runs from each instant, packed greedily: a probe joins a run only while its answer there is still the one
    # it gives at the instant itself, so that every probe is asked the boundary's question.
    walk, now, runs = list(prefix), state.now, []
    for x in sorted(stood):
        if x > now:
            walk.append(A.AdvanceTime(minutes=x - now))
            now = x
        walk += [a for a in probes if not answers[x][a][1]]
        left = [a for a in probes if answers[x][a][1]]
        while left:
            run, cur = [*prefix, *([A.AdvanceTime(minutes=x - state.now)] if x > state.now else [])], stood[x]
            for a in list(left):
                after, outcome = step(world, cur, a)
                if outcome.code == answers[x][a][0] or len(run) == len(prefix) + (x > state.now):
                    run.append(a)
                    left.remove(a)
                    cur = after
            runs.append(run)
    out = []
    for i, actions in enumerate([walk, *runs]):
        _s, codes = _replay(world, actions)
        purpose = f"{kind} at minute {at}, -1/0/+1" + (f" (probe {i})" if i else "")
        out.append(TourRun(purpose=purpose, actions=tuple(actions), codes=codes, boundary=kind))
    return boundary, out


def build_tour(scopes: tuple[Scope, ...] = TOUR_SCOPES) -> Tour:
    """Explore the scopes (one world: the first scope's) and generate the tour and the boundary runs from their graphs."""
    started = time.perf_counter()
    world = scope_world(scopes[0])
    explored: list[tuple[Scope, Exploration, list[A.Action]]] = []
    for scope in scopes:
        if scope_world(scope) != world:
            raise ValueError("tour scopes must share one world (persons, phones, variants, birth)")
        prefix = onboarding_prefix(world) if scope.start == "onboarded" else []
        explored.append((scope, explore(scope, invariants=False, keep_parallel=True), prefix))
    pairs = frozenset(_label(d) for _s, e, _p in explored for d in _edges(e.graph))
    runs: list[TourRun] = []
    covered: set[Label] = set()
    for scope, e, prefix in explored:
        # Each scope's tour takes every pair of its own graph, even one an earlier scope's tour took: a pair asked from
        # another start is asked in another context (a personal-data change with and without phone certificates in force).
        wanted = {_label(d) for d in _edges(e.graph)}
        for walk in _tour_walks(e.graph, wanted):
            actions = [*prefix, *walk]
            _state, codes = _replay(world, actions)
            covered.update(zip((a.name for a in actions), codes, strict=True))
            runs.append(TourRun(purpose=f"tour of {scope.start} to depth {scope.depth}", actions=tuple(actions), codes=codes))
    # Per kind of deadline, the shallowest state (BFS order) where it occurs next and some action's answer changes at it;
    # failing that, the shallowest where it occurs at all (the time steps' own effect is still compared).
    chosen: dict[str, tuple[Boundary, list[TourRun]]] = {}
    tries: dict[str, int] = {}
    for scope, e, prefix in explored:
        for node, data in e.graph.nodes(data=True):
            todo = {kind: at for at, kind in reversed(deadlines(world, data["state"]))}  # reversed: the soonest of a kind wins
            for kind in sorted(todo, key=DEADLINE_KINDS.index):
                if (kind in chosen and chosen[kind][0].probes) or tries.get(kind, 0) >= BOUNDARY_TRIES:
                    continue
                tries[kind] = tries.get(kind, 0) + 1
                found = _boundary_runs(world, scope, [*prefix, *_path_to(e.graph, node)], data["state"], todo[kind], kind)
                if kind not in chosen or found[0].probes:
                    chosen[kind] = found
    boundaries = [chosen[k][0] for k in DEADLINE_KINDS if k in chosen]
    for k in DEADLINE_KINDS:
        for r in chosen.get(k, (None, []))[1]:
            runs.append(r)
            covered.update(zip((a.name for a in r.actions), r.codes, strict=True))
    return Tour(
        world=world, scopes=scopes, runs=tuple(runs), pairs=pairs, covered=frozenset(covered), boundaries=tuple(boundaries),
        states=sum(e.states for _s, e, _p in explored), seconds=time.perf_counter() - started,
    )  # fmt: skip


@cache
def default_tour() -> Tour:
    """The tour of TOUR_SCOPES, computed once per process (the same every time: everything in it comes from the spec)."""
    return build_tour()
