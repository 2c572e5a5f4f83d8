"""Exhaustive small-scope exploration of the spec: every reachable state, every invariant, shortest counterexamples.

Breadth-first search over the spec's own `step`, with a finite action alphabet for the scope
(persons, phones, kinds, a time horizon, a depth bound). States are canonicalised before
they are compared: fresh values (serials, keys, nonces, push tokens) are renumbered by the
structure that holds them, and persons and phones are renamed under every permutation that
leaves the initial state unchanged (symmetry reduction). The reachable graph is a
`networkx.DiGraph` whose edges carry the action and its outcome code.

Because the search is breadth-first and each stored state is the concrete result of
applying the edge's action to its parent's stored state, the path to the first violating
state found is a shortest one, and it replays on the spec as it is.
"""

from __future__ import annotations

import functools
import gc
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import networkx as nx

from mjpki.properties.invariants import STATE_INVARIANTS, check_state, check_transition
from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import DAY, HOUR
from mjpki.spec.domain import AuthMethod, Kind, Profile
from mjpki.spec.machine import next_instants, step
from mjpki.spec.observe import observe
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State, initial_state
from mjpki.spec.trace import Trace, TraceStep, step_reqs
from mjpki.spec.world import PersonSpec, PhoneSpec, ServiceProviderSpec, World

__all__ = [
    "Scope", "Violation", "Exploration", "Canon", "explore", "scope_world", "start_state", "onboarding_prefix", "alphabet", "canonical_key",
]  # fmt: skip

GOOD = {Kind.SIGNING: "ABC123", Kind.AUTH: "1234"}
WRONG = {Kind.SIGNING: "XYZ789", Kind.AUTH: "5678"}
KIND_SETS = {
    "both": (frozenset({Kind.SIGNING, Kind.AUTH}),),
    "signing": (frozenset({Kind.SIGNING}),),
    "auth": (frozenset({Kind.AUTH}),),
    "any": (frozenset({Kind.SIGNING, Kind.AUTH}), frozenset({Kind.SIGNING}), frozenset({Kind.AUTH})),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What the exploration covers; every count it prints is for this scope."""

    persons: int = 2
    phones: int = 3
    kinds: str = "both"
    """Which applications are made: both kinds at once, signing only, auth only, or any of these."""
    depth: int = 8
    """The longest path explored, in actions."""
    horizon_minutes: int = 3 * DAY
    """Time advances (to the next instant that matters) only up to this long after the start."""
    holds: bool = True
    """Include lost phone / lost card reports and their resumption."""
    card_issues: int = 1
    """How many more card certificates each person may be issued (renewal, data change) in a run."""
    card_auth: bool = False
    """Also revoke and renew the card auth certificate (under the phone_linkage variant per_kind or either, the phone
    certificates follow it; as launched it touches no phone certificate)."""
    phone_certs: int = 4
    """How many phone certificates each person may be issued in a run."""
    pins: bool = True
    """Include wrong PIN entries, PIN initialisation and PIN setting."""
    os_auth: bool = False
    """Include OS authentication (PIN-6): enrolling it, unlocking the screen (primary authentication) and biometric login,
    so that the 72-hour primary-authentication deadline occurs."""
    verifier: bool = False
    """Include relying-party probes (SP-1, CA-3, CA-4): each person's latest certificate of every kind and profile put to
    a card-only and a phone-only verifier, and one the CA never issued. They change no state: edges only, no new states."""
    variants: Variants = field(default_factory=Variants)
    birth: date = date(1990, 6, 15)
    """Every person's birth date (one for all, so that persons stay interchangeable). A birthday inside the time horizon
    (e.g. 2 April, the day after the epoch) gives a card certificate issued after it a later expiry (VAL-2), which is
    what card_found_fresh_expiry needs to make a difference."""
    symmetry: bool = True
    expiry: bool = False
    """Also jump straight to the next certificate expiry (beyond the horizon), to explore what follows it."""
    start: str = "initial"
    """Where to start: "initial" (time 0, nothing on any phone) or "onboarded" (every person holding
    a phone has both phone certificates registered on it with PINs set, at 09:05 on day 0)."""

    def __post_init__(self) -> None:
        if not 1 <= self.persons <= 3 or not 1 <= self.phones <= 4:
            raise ValueError("scope: 1-3 persons and 1-4 phones (the state space grows very fast beyond)")
        if self.kinds not in KIND_SETS:
            raise ValueError(f"scope: kinds must be one of {sorted(KIND_SETS)}")
        if self.depth < 1:
            raise ValueError("scope: depth must be at least 1")
        if self.start not in ("initial", "onboarded"):
            raise ValueError("scope: start must be 'initial' or 'onboarded'")

    def describe(self) -> str:
        """One line naming the scope."""
        return (
            f"{self.persons} persons, {self.phones} phones, kinds={self.kinds}, depth<={self.depth}, "
            f"time horizon {self.horizon_minutes // HOUR} h, card issues<={self.card_issues}, phone certs<={self.phone_certs}, "
            f"holds={'on' if self.holds else 'off'}, card auth={'on' if self.card_auth else 'off'}, "
            f"pins={'on' if self.pins else 'off'}, "
            + ("os auth=on, " if self.os_auth else "")
            + ("verifier=on, " if self.verifier else "")
            + f"symmetry={'on' if self.symmetry else 'off'}, start={self.start}, "
            f"born {self.birth.isoformat()}"
            + "".join(f", {n}={v}" for n, v in self.variants.to_json().items() if v != Variants().to_json()[n])
        )


def scope_world(scope: Scope) -> World:
    """The world of a scope: interchangeable persons (same birthday) and phones; phone i held by person i, the rest unheld."""
    persons = tuple(PersonSpec(id=f"P{i + 1}", birth=scope.birth) for i in range(scope.persons))
    phones = tuple(
        PhoneSpec(id=f"D{i + 1}", se_id=f"SE-{i + 1:04d}", initial_holder=persons[i].id if i < scope.persons else None)
        for i in range(scope.phones)
    )
    return World(persons=persons, phones=phones, service_providers=(ServiceProviderSpec(id="portal"),), variants=scope.variants)


def onboarding_prefix(world: World) -> list[A.Action]:
    """The onboarded start as actions: every holder's phone with both phone certificates, PINs set."""
    both = frozenset({Kind.SIGNING, Kind.AUTH})
    held = [(ph.id, ph.initial_holder) for ph in world.phones if ph.initial_holder is not None]
    prefix: list[A.Action] = [A.AdvanceTime(minutes=9 * HOUR)]
    for d, p in held:
        prefix += [
            A.InstallApp(phone=d),
            A.PrepareApplet(phone=d),
            A.Apply(person=p, phone=d, kinds=both, signing_pin=GOOD[Kind.SIGNING], auth_pin=GOOD[Kind.AUTH]),
        ]
    prefix.append(A.AdvanceTime(minutes=5))
    for d, p in held:
        prefix += [A.DeliverIssuancePush(person=p), A.Register(person=p, phone=d), A.SetPin(phone=d, kind=Kind.SIGNING)]
        prefix.append(A.SetPin(phone=d, kind=Kind.AUTH))
    return prefix


def start_state(world: World, start: str) -> State:
    """The state an exploration starts from (see Scope.start)."""
    state = initial_state(world)
    if start == "initial":
        return state
    for a in onboarding_prefix(world):
        state, outcome = step(world, state, a)
        if not outcome.ok:
            raise AssertionError(f"the onboarding prefix was refused at {a}: {outcome}")
    return state


def alphabet(world: World, state: State, scope: Scope) -> Iterator[A.Action]:
    """The finite set of actions the explorer tries in a state (only ones the world can take)."""
    persons = [p.id for p in world.persons]
    for d, ps in state.phones.items():
        h = ps.holder
        yield A.InstallApp(phone=d)
        yield A.PrepareApplet(phone=d)
        yield A.SetOnline(phone=d, online=not ps.online)
        yield A.DeliverDeletionPush(phone=d)
        for other in persons:
            if other != h:
                yield A.TransferPhone(phone=d, to=other)
        for kind in Kind:
            yield (
                A.Sign(phone=d, sp="portal", pin=GOOD[kind])
                if kind is Kind.SIGNING
                else A.Authenticate(phone=d, sp="portal", pin=GOOD[kind])
            )
            yield A.RevokeFromPhone(phone=d, kind=kind, pin=GOOD[kind])
            yield A.SetPin(phone=d, kind=kind)
            if scope.pins:
                yield (
                    A.Sign(phone=d, sp="portal", pin=WRONG[kind])
                    if kind is Kind.SIGNING
                    else A.Authenticate(phone=d, sp="portal", pin=WRONG[kind])
                )
        if scope.os_auth:
            yield A.EnrollOsAuth(phone=d, pin=GOOD[Kind.AUTH])
            yield A.UnlockScreen(phone=d)
            yield A.Authenticate(phone=d, sp="portal", method=AuthMethod.BIOMETRIC)
        if h is None:
            continue
        for kinds in KIND_SETS[scope.kinds]:
            for consent in (False, True):
                yield A.Apply(person=h, phone=d, kinds=kinds, signing_pin=GOOD[Kind.SIGNING], auth_pin=GOOD[Kind.AUTH], consent=consent)
        if sum(1 for c in state.phone_certs.values() if c.person == h) + 2 <= scope.phone_certs:
            yield A.Register(person=h, phone=d)
        if scope.pins:
            for kind in Kind:
                yield A.InitialisePin(person=h, phone=d, kind=kind, new_pin=GOOD[kind])
        if scope.holds:
            yield A.ResumeFromApp(person=h, phone=d, signing_pin=GOOD[Kind.SIGNING])
    for p in persons:
        yield A.DeliverIssuancePush(person=p)
        yield A.ChangePersonalData(person=p)
        if sum(1 for c in state.card_certs.values() if c.person == p) < 2 + scope.card_issues:
            yield A.IssueCardCertificate(person=p, kind=Kind.SIGNING)
            if scope.card_auth:
                yield A.IssueCardCertificate(person=p, kind=Kind.AUTH)
        if scope.card_auth:
            yield A.RevokeCardCertificate(person=p, kind=Kind.AUTH)
        yield A.RevokeWithCard(person=p)
        if scope.verifier:
            for kind in Kind:
                for profile in Profile:
                    issued = len(state.issued(p, kind, profile))
                    if issued:  # the latest only: the earlier ones are revoked or superseded, answered like it
                        yield from (
                            A.VerifyCertificate(person=p, kind=kind, profile=profile, index=issued - 1, accept=accept) for accept in Profile
                        )
                    yield A.VerifyCertificate(person=p, kind=kind, profile=profile, index=issued, accept=profile)
        if scope.holds:
            yield A.ReportPhoneLost(person=p)
            yield A.PhoneFound(person=p)
            yield A.ReportCardLost(person=p)
            yield A.CardFound(person=p)
    for t in next_instants(world, state, limit=1):
        if t <= scope.horizon_minutes:
            yield A.AdvanceTime(minutes=t - state.now)
    if scope.expiry:
        live = [c.expiry for c in (*state.card_certs.values(), *state.phone_certs.values()) if c.expiry > state.now]
        if live:
            yield A.AdvanceTime(minutes=min(live) - state.now)


# --- canonical form -------------------------------------------------------------------------------------


def _symmetries(world: World, state: State) -> list[tuple[dict[str, str], dict[str, str]]]:
    """Permutations of person and phone ids that leave this (initial) state unchanged, identity first."""
    persons = [p.id for p in world.persons]
    phones = [p.id for p in world.phones]
    births = {p.id: p.birth for p in world.persons}
    specs = {p.id: (p.android, p.gp_se, p.nfc, p.biometric_class3) for p in world.phones}
    ident = (dict(zip(persons, persons, strict=True)), dict(zip(phones, phones, strict=True)))
    base = canonical_key(world, state, *ident)
    found = [ident]
    for pp in itertools.permutations(persons):
        pmap = dict(zip(persons, pp, strict=True))
        if any(births[a] != births[b] for a, b in pmap.items()):
            continue
        for dp in itertools.permutations(phones):
            dmap = dict(zip(phones, dp, strict=True))
            if (pmap, dmap) == ident or any(specs[a] != specs[b] for a, b in dmap.items()):
                continue
            if canonical_key(world, state, pmap, dmap) == base:
                found.append((pmap, dmap))
    return found


class Canon:
    """Canonical keys of states in one world: fresh values renumbered, symmetric names merged."""

    def __init__(self, world: World, start: State | None = None, *, symmetry: bool = True) -> None:
        self.world = world
        syms = _symmetries(world, start if start is not None else initial_state(world))
        self.symmetries = syms if symmetry else syms[:1]
        self._makers = [_KeyMaker(world, pm, dm) for pm, dm in self.symmetries]

    def key(self, state: State) -> tuple[Any, ...]:
        """The class of this state."""
        return self.key_and_orbit(state)[0]

    def orbit(self, state: State) -> int:
        """How many distinct states (without symmetry reduction) this state's class stands for."""
        return self.key_and_orbit(state)[1]

    def key_and_orbit(self, state: State) -> tuple[tuple[Any, ...], int]:
        """The class of this state and its orbit size, each symmetric image's key computed once for both."""
        keys = [m.key(state) for m in self._makers]
        if len(keys) == 1:
            return _Key(keys[0]), 1
        return _Key(_least(keys)), len(set(keys))


class _Key(tuple):  # type: ignore[type-arg]
    """A canonical key that hashes once: the search looks each up in several maps per edge (seen, graph, edge, orbit), and
    hashing a nested tuple again each time was a measurable part of its time. Equal, and hashing equal, to the plain tuple."""

    def __hash__(self) -> int:
        h: int | None = self.__dict__.get("h")
        if h is None:
            h = self.__dict__["h"] = tuple.__hash__(self)
        return h


def _least(keys: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One of a class's keys, the same whichever state of the class they were computed from.

    Every state of a class has the same set of symmetric keys, so any choice that depends on the key alone will do.
    Keys mix None and numbers (no < between them): the least hash, and the least text among keys of equal hash (rare;
    the text of a key costs seven times its hash)."""
    best = min(keys, key=hash)
    ties = [k for k in keys if k != best and hash(k) == hash(best)]
    return min([best, *ties], key=repr) if ties else best


def canonical_key(world: World, state: State, pmap: dict[str, str], dmap: dict[str, str]) -> tuple[Any, ...]:
    """The state with persons and phones renamed and every fresh value renumbered by where it is held."""
    return _KeyMaker(world, pmap, dmap).key(state)


class _KeyMaker:
    """canonical_key for one renaming of persons and phones, with what depends on the renaming alone computed once."""

    __slots__ = ("dmap", "dorder", "pmap", "porder", "se_name")

    def __init__(self, world: World, pmap: dict[str, str], dmap: dict[str, str]) -> None:
        self.pmap, self.dmap = pmap, dmap
        self.se_name = {ph.se_id: world.phone(dmap[ph.id]).se_id for ph in world.phones}
        self.porder = sorted(pmap, key=pmap.__getitem__)
        self.dorder = sorted(dmap, key=dmap.__getitem__)

    def key(self, state: State) -> tuple[Any, ...]:
        """The state with persons and phones renamed and every fresh value renumbered by where it is held."""
        # Enum values read as `_value_` (the member's own attribute; `.value` is a property, and this runs for every
        # certificate of every state reached).
        pmap, dmap, se_name = self.pmap, self.dmap, self.se_name
        numbers: dict[int, int] = {}
        number = numbers.setdefault  # the next number to a value not numbered yet: len(numbers) is taken before it is added

        def n(v: int | None) -> int | None:
            return None if v is None else number(v, len(numbers))

        sp, sd = state.persons, state.phones
        # Every person and phone of the world is in a state; the sort by the renamed id is done once, in __init__.
        persons = [(p, sp[p]) for p in self.porder] if len(sp) == len(self.porder) else sorted(sp.items(), key=lambda kv: pmap[kv[0]])
        phones = [(d, sd[d]) for d in self.dorder] if len(sd) == len(self.dorder) else sorted(sd.items(), key=lambda kv: dmap[kv[0]])
        key: list[Any] = [state.now]
        for pid, ps in persons:
            key.append((pmap[pid], n(ps.card_signing), n(ps.card_auth)))
        for did, ph in phones:
            se = ph.se
            slots = se.slots
            key.append(
                (
                    dmap[did],
                    None if ph.holder is None else pmap[ph.holder],
                    n(ph.app_token),
                    ph.applet_ready,
                    ph.online,
                    ph.push_enabled,
                    ph.os_auth_enrolled,
                    ph.last_primary_auth,
                    tuple(sorted((k._value_, v) for k, v in ph.held_pins.items())) if ph.held_pins else (),
                    se.applet,
                    n(se.nonce),
                    tuple(
                        (k._value_, pmap[s.person], n(s.key_id), n(s.cert_serial), s.pin_status._value_, s.pin, s.tries_left)
                        for k, s in sorted(slots.items(), key=lambda kv: kv[0]._value_)
                    )
                    if slots
                    else (),
                )
            )
        apps = state.applications
        for _pid, app in sorted(apps.items(), key=lambda kv: pmap[kv[0]]) if len(apps) > 1 else apps.items():
            key.append(
                (
                    "app",
                    pmap[app.person],
                    dmap[app.phone],
                    tuple(sorted(k._value_ for k in app.kinds)),
                    n(app.commitment),
                    n(app.card_serial),
                    n(app.push_token),
                    app.push_due,
                    app.notified,
                )
            )

        def cert_sort(c: Any) -> tuple[Any, ...]:
            return (pmap[c.person], c.kind._value_, c.issued_at, c.serial)

        def record(c: Any) -> tuple[Any, ...]:
            return (
                n(c.serial),
                pmap[c.person],
                c.kind._value_,
                c.status._value_,
                tuple(sorted(h._value_ for h in c.holds)) if c.holds else (),
                c.issued_at,
                c.expiry,
                c.revoked_at,
                c.reason and c.reason._value_,
            )

        for c in sorted(state.card_certs.values(), key=cert_sort):
            key.append(("card", *record(c)))
        for c in sorted(state.phone_certs.values(), key=cert_sort):
            follows = tuple(sorted(n(s) for s in c.follows))  # type: ignore[type-var]
            links = (se_name[c.se_id], n(c.card_serial), follows, n(c.key_id), n(c.commitment), n(c.presented_r), n(c.push_token))
            key.append(("phone", *record(c), *links))
        key.append(tuple(sorted((n(s), se_name[se]) for s, se in state.linkage.items())))
        dels = state.deletions
        key.append(
            tuple(
                sorted(
                    (dmap[d.phone], pmap[d.person], tuple(sorted(n(s) for s in d.serials)), n(d.push_token), d.deadline)
                    for d in dels.values()
                )
            )
            if dels
            else ()
        )
        return tuple(key)


# --- the search -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    """An invariant violation found by exploration, with the shortest path to it as a trace."""

    invariant: str
    reqs: tuple[str, ...]
    message: str
    trace: Trace


@dataclass(slots=True, kw_only=True)
class Exploration:
    """The explored graph and what was found on it."""

    scope: Scope
    world: World
    graph: nx.DiGraph
    depth_reached: int
    complete: bool
    """False if the depth bound cut off states that had unexplored successors."""
    seconds: float
    concrete_states: int
    """How many states there are without symmetry reduction (each class counted by its orbit)."""
    symmetries: int
    canon: Canon
    violations: list[Violation] = field(default_factory=list)
    per_invariant: dict[str, int] = field(default_factory=dict)
    """Invariant name -> number of violations found (0 means it held on every state or step)."""

    @property
    def states(self) -> int:
        """Reachable states after symmetry reduction."""
        return self.graph.number_of_nodes()

    @property
    def edges(self) -> int:
        """Distinct transitions between them."""
        return self.graph.number_of_edges()


def _path(graph: nx.DiGraph, node: Any) -> list[tuple[A.Action, Outcome]]:
    steps = []
    while True:
        parent = graph.nodes[node].get("parent")
        if parent is None:
            break
        data = graph.edges[parent, node]
        steps.append((data["action"], data["outcome"]))
        node = parent
    return list(reversed(steps))


def _trace(world: World, steps: list[tuple[A.Action, Outcome]], title: str) -> Trace:
    return Trace(
        world=world,
        steps=tuple(TraceStep(action=a, expected=o, reqs=step_reqs(a, o)) for a, o in steps),
        title=title,
        source="explorer",
    )


def _without_cyclic_gc(fn: Callable[..., Exploration]) -> Callable[..., Exploration]:
    """Run fn with Python's cyclic garbage collector paused (reference counting still frees everything).

    A search keeps hundreds of thousands of states, keys and graph entries alive and makes millions of small objects;
    every full collection walks all of them to find cycles that the explorer does not make. Paused, depth 6 of the 2 x 3
    scope took a sixth less CPU (docs/performance.md)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Exploration:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return wrapper


@_without_cyclic_gc
def explore(
    scope: Scope,
    *,
    stepper: Callable[[World, State, A.Action], tuple[State, Outcome]] = step,
    stop_at_first: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    state_invariants_on_every_edge: bool = False,
    invariants: bool = True,
    keep_parallel: bool = False,
    on_level: Callable[[int, int], bool] | None = None,
) -> Exploration:
    """Explore every state reachable in the scope; check every state invariant on every state, every transition one on every edge.

    `stepper` is the transition function (the spec's `step` unless a test seeds a bug). `state_invariants_on_every_edge`
    brings back the former, slower way (state invariants evaluated on every edge's post-state, then discarded for states
    already seen): same result, kept so that bench/figures.py measures both in one run. `invariants=False` builds
    the graph alone (mjpki.properties.edge_tour needs nothing else): per_invariant stays empty. A DiGraph holds one edge
    per pair of states, so most refusals (self-loops) are not on it; `keep_parallel=True` keeps the others as well, as
    (action, outcome, successor) in the node attribute "parallel" (the tour needs every (rule, outcome) pair).
    `on_level(d, states)` is called when every state at depth d - 1 has been expanded, that is when every run of up to
    d actions has been checked (a bounded model check of depth d over the scope's alphabet); if it returns False the
    search stops there (complete=False).
    """
    started = time.perf_counter()
    world = scope_world(scope)
    init = start_state(world, scope.start)
    canon = Canon(world, init, symmetry=scope.symmetry)
    key_of, orbit, key_and_orbit = canon.key, canon.orbit, canon.key_and_orbit

    graph: nx.DiGraph = nx.DiGraph()
    root = key_of(init)
    graph.add_node(root, state=init, depth=0, parent=None)
    per: dict[str, int] = {}
    violations: list[Violation] = []
    seen_invariants: set[str] = set()

    def record(found: list[Any], node: Any, extra: tuple[A.Action, Outcome] | None) -> None:
        for v in found:
            per[v.invariant] = per.get(v.invariant, 0) + 1
            if v.invariant in seen_invariants:
                continue  # BFS: the first one found for an invariant is a shortest
            seen_invariants.add(v.invariant)
            steps = _path(graph, node) + ([extra] if extra else [])
            violations.append(
                Violation(invariant=v.invariant, reqs=v.reqs, message=v.message, trace=_trace(world, steps, f"{v.invariant}: {v.message}"))
            )

    if invariants:
        record(check_state(world, observe(world, init)), root, None)
    concrete = orbit(init)
    frontier: deque[Any] = deque([root])
    depth_reached = 0
    complete = True
    obs_cache: dict[Any, Any] = {}
    key_cache: dict[State, Any] = {}
    orbit_of: dict[Any, int] = {}
    while frontier:
        node = frontier.popleft()
        data = graph.nodes[node]
        depth = data["depth"]
        if depth > depth_reached:
            depth_reached = depth
            if on_level is not None and not on_level(depth, graph.number_of_nodes()):
                complete = False
                break
        if depth >= scope.depth:
            complete = False
            continue
        state: State = data["state"]
        pre = (obs_cache.pop(node, None) or observe(world, state)) if invariants else None
        for action in alphabet(world, state, scope):
            new_state, outcome = stepper(world, state, action)
            if outcome.reason is not None and outcome.reason.environmental:
                continue
            if new_state is state:  # most refusals change nothing: a self-loop, same observation
                child, post = node, pre
            else:
                child = key_cache.get(new_state)
                post = None
                if child is None:
                    child, orbit_of[child] = key_and_orbit(new_state)  # the orbit is used only if the class is new
                    key_cache[new_state] = child
                elif child in obs_cache and graph.nodes[child]["state"] == new_state:
                    post = obs_cache[child]  # the same concrete state, reached again before it is expanded
                # The observation of this concrete state: a stored representative of the same
                # class may be a symmetric image with other names and serials.
                if post is None and invariants:
                    post = observe(world, new_state)
            is_new = child not in graph
            child_orbit = orbit_of.pop(child, 0)
            if is_new:
                graph.add_node(child, state=new_state, depth=depth + 1, parent=node)
                concrete += child_orbit
                frontier.append(child)
                if invariants:
                    obs_cache[child] = post
            if not graph.has_edge(node, child):
                graph.add_edge(node, child, action=action, outcome=outcome, label=f"{action.name}:{outcome.code}")
            elif keep_parallel:
                data["parallel"] = (*data.get("parallel", ()), (action, outcome, child))
            if not invariants:
                continue
            # Transition invariants on every edge; state invariants once per new state (a function of the state alone).
            found = check_transition(world, pre, action, outcome, post, states=is_new or state_invariants_on_every_edge)
            if not is_new:
                found = [v for v in found if v.invariant not in STATE_INVARIANTS]
            if found:
                record(found, node, (action, outcome))
                if stop_at_first:
                    frontier.clear()
                    break
        if progress and graph.number_of_nodes() % 5000 < 60:
            progress(graph.number_of_nodes(), graph.number_of_edges(), depth)
    return Exploration(
        scope=scope,
        world=world,
        graph=graph,
        depth_reached=depth_reached,
        complete=complete,
        seconds=time.perf_counter() - started,
        concrete_states=concrete,
        symmetries=len(canon.symmetries),
        canon=canon,
        violations=violations,
        per_invariant=per,
    )
