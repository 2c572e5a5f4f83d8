"""The check generated from the explored graph (coverage:edges): what it covers, that it is deterministic, what it catches."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mjpki.adapters.reference import factory as reference_factory
from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.conformance import all_checks, render_summary, run_conformance
from mjpki.edge_checks import CHECK_ID, run_edge_tour
from mjpki.properties.edge_tour import MAX_RUN, TOUR_SCOPES, build_tour, default_tour
from mjpki.properties.explorer import Scope, alphabet, explore, onboarding_prefix
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.machine import DEADLINE_KINDS, deadlines, next_instants, step
from mjpki.spec.state import initial_state
from tests.faulty_impls import FAULTY


def test_deadlines_label_exactly_the_next_instants() -> None:
    """spec.machine.deadlines is next_instants with the reason for each instant (one source for both)."""
    world = default_tour().world
    state = initial_state(world)
    for a in [*onboarding_prefix(world), A.ChangePersonalData(person="P1"), A.UnlockScreen(phone="D1")]:
        state, _ = step(world, state, a)
        found = deadlines(world, state)
        assert next_instants(world, state, limit=99) == tuple(dict.fromkeys(t for t, _k in found))
        assert {k for _t, k in found} <= set(DEADLINE_KINDS)
    assert {k for _t, k in deadlines(world, state)} == {"push window", "expiry", "cascade", "primary auth"}


def test_tour_covers_every_reachable_pair_and_every_deadline_kind() -> None:
    """Every (rule, outcome) pair on the explored graphs' edges is asked on replay, and each deadline kind at a boundary."""
    tour = default_tour()
    reachable = set()
    for scope in tour.scopes:  # independently of the explorer's edge bookkeeping: every action of every expanded state
        for _node, data in explore(scope, invariants=False).graph.nodes(data=True):
            if data["depth"] < scope.depth:
                for a in alphabet(tour.world, data["state"], scope):
                    _s, outcome = step(tour.world, data["state"], a)
                    if outcome.reason is None or not outcome.reason.environmental:
                        reachable.add((a.name, outcome.code))
    assert tour.pairs == reachable and tour.pairs <= tour.covered  # the boundary runs and the onboarding prefix add more
    assert {("Sign", "CERT_EXPIRED"), ("Authenticate", "PRIMARY_AUTH_REQUIRED"), ("EnrollOsAuth", "ACCEPTED")} <= tour.pairs
    assert [b.kind for b in tour.boundaries] == list(DEADLINE_KINDS)
    assert all(b.probes for b in tour.boundaries), [b for b in tour.boundaries if not b.probes]
    prefix = len(onboarding_prefix(tour.world))
    assert all(len(r.actions) <= prefix + MAX_RUN + 1 for r in tour.runs)
    assert tour.summary().startswith(f"covered {len(tour.pairs)} of {len(tour.pairs)} (rule, outcome) pairs reachable in scope")


def test_boundary_runs_stand_one_minute_before_at_and_after() -> None:
    """For each boundary (ISS-7 push window and due time, MCH-3 deletion deadline, VAL-1 expiry, REV-2 cascade delay, PIN-6
    72-hour primary authentication) some run asks its probes at minute at-1, at and at+1, and the answers differ."""
    tour = default_tour()
    for b in tour.boundaries:
        asked: dict[int, set[str]] = {}
        for r in tour.runs:
            state = initial_state(tour.world)
            for a, code in zip(r.actions, r.codes, strict=True):
                before = state
                state, outcome = step(tour.world, state, a)
                assert outcome.code == code
                if a.name in b.probes and before.now in (b.at - 1, b.at, b.at + 1):
                    asked.setdefault(before.now, set()).add(f"{a.name}:{code}")
        assert set(asked) == {b.at - 1, b.at, b.at + 1}, (b, asked)
        assert len({frozenset(v) for v in asked.values()}) > 1, (b, asked)


def test_tour_is_deterministic() -> None:
    """Built again, the same runs with the same expected codes (nothing in it depends on timing, hashing or a cache)."""
    again = build_tour()
    assert again.runs == default_tour().runs and again.boundaries == default_tour().boundaries


def test_edge_check_passes_the_spec_and_reports_the_figure(tmp_path: Path) -> None:
    """The check is registered after the scenarios; its coverage figure reaches the summary and result.json."""
    check = next(c for c in all_checks() if c.id == CHECK_ID)
    result = run_conformance(SpecSystem, checks=(check,), out_dir=tmp_path, system_name="spec")
    assert result.passed
    (r,) = result.results
    tour = default_tour()
    assert r.runs == len(tour.runs) and r.steps == tour.steps
    assert r.note == tour.summary() and r.note in render_summary(result)
    data = json.loads((tmp_path / "result.json").read_text())
    cov = data["checks"][0]["coverage"]
    assert cov["pairs_covered"] == cov["pairs_reachable"] == len(tour.pairs)
    assert [b["kind"] for b in cov["deadline_boundaries"]] == list(DEADLINE_KINDS)


@pytest.mark.parametrize("name", list(SEEDED_BUGS))
def test_edge_check_catches_seeded_bugs(name: str) -> None:
    """Each seeded bug breaks its invariant on some run of the tour of its variant settings (no_cascade: zero delay, REV-2)."""
    bug = SEEDED_BUGS[name]
    tour = default_tour() if bug.variants == Variants() else build_tour(tuple(replace(s, variants=bug.variants) for s in TOUR_SCOPES))
    found = run_edge_tour(lambda w: SpecSystem(w, stepper=bug.stepper), system_name=name, tour=tour)
    assert found.divergence is not None and bug.breaks in found.divergence.what, found.divergence
    assert set(bug.reqs) & set(found.divergence.reqs)


@pytest.mark.parametrize("name", [n for n, f in FAULTY.items() if f.caught_by == "search"])
def test_edge_check_catches_what_no_scenario_does(name: str) -> None:
    """The faulty systems only the stateful search caught (PIN-2, MCH-2) are caught by the tour, deterministically, in seconds."""
    fault = FAULTY[name]
    found = run_edge_tour(fault.factory, system_name=name, timeout=30)
    assert found.divergence is not None, f"{name} passed the tour"
    assert set(fault.breaks) & set(found.divergence.reqs), found.divergence
    assert found.trace is not None and len(found.trace.steps) <= len(onboarding_prefix(default_tour().world)) + MAX_RUN + 1
    # The tour stops at the divergence: its figure counts what was asked, not what was planned.
    tour = default_tour()
    assert found.figures["tour_runs_completed"] == found.runs - 1 < len(tour.runs)
    assert found.summary == tour.summary(found.covered, found.runs - 1) and len(found.covered) < len(tour.pairs)


def test_edge_check_passes_the_reference() -> None:
    """The reference implementation answers every tour run as the spec does."""
    result = run_edge_tour(reference_factory, system_name="reference", timeout=30)
    assert result.divergence is None and result.message == "", result.divergence
    assert result.covered == default_tour().pairs


def test_tour_scopes_must_share_a_world() -> None:
    """Scopes with different worlds cannot make one tour (the runs go to one system)."""
    with pytest.raises(ValueError, match="one world"):
        build_tour((Scope(persons=1, phones=2, depth=1), Scope(persons=2, phones=2, depth=1)))
