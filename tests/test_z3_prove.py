"""Z3 proofs: every invariant proved for every reachable state (both settings of each Boolean variant), seeded bugs come back as traces."""

from __future__ import annotations

import functools

import pytest

from properties.invariants import STATE_INVARIANTS, TRANSITION_INVARIANTS, check_transition
from properties.prove import KNOWN_SHAPES, KNOWN_SPEC_VIOLATIONS, InductionResult, _bmc_world, _Engine, bmc, houdini, variant_delta
from properties.seeded_bugs import SEEDED_BUGS
from properties.z3_invariants import LEMMAS
from spec.assumptions import Variants
from spec.machine import step
from spec.observe import observe
from spec.state import initial_state
from spec.trace import Trace, replay_on_spec


@functools.lru_cache(maxsize=1)
def _default() -> InductionResult:
    return houdini(Variants(), timeout=30.0, jobs=2)  # per query; a query that runs out gets four times that once more


def test_every_invariant_proved_parametric_as_launched() -> None:
    """1-induction over unbounded persons, phones and serials: all but the known spec violations survive, lemmas included."""
    ind = _default()
    assert set(LEMMAS) <= ind.kept, ind.dropped
    assert set(STATE_INVARIANTS) - ind.kept == set(KNOWN_SPEC_VIOLATIONS), ind.dropped
    assert all(why is None for why in ind.transition.values()), ind.transition


@pytest.mark.parametrize("name", ["factory_reset_wipes_se", "remote_deletion_removes_applet"])
def test_other_setting_of_each_boolean_variant(name: str) -> None:
    """The other setting changes some instances' effect; those are checked against the same inductive invariant."""
    changed, failures = variant_delta(_default(), Variants(**{name: True}), timeout=20.0)
    assert changed, f"{name} should change what some rule does"
    assert failures == {}, failures


_STARTS = {
    "card_found_resumes_signing": ("initial", 2),
    "renewal_unrevokes": ("initial", 2),
    "card_hold_skips_phone": ("onboarded", 1),
    "no_cascade": ("onboarded", 1),
    "phone_expiry_a_day_late": ("applied", 2),
    "pin_counter_broken": ("applied", 2),
}


@pytest.mark.parametrize("name", list(SEEDED_BUGS))
def test_seeded_bug_is_not_inductive_and_comes_back_as_a_trace(name: str) -> None:
    bug = SEEDED_BUGS[name]
    assert set(_STARTS) == set(SEEDED_BUGS)
    # The proof fails: some instance breaks the invariant from the spec's inductive invariant.
    eng = _Engine(bug.variants, name)
    kept = frozenset(_default().kept)
    answers = {i: eng.query(bug.breaks, i, kept, 3_000)[0] for i in _mutated(name)}
    assert any(r != "unsat" for r in answers.values()), answers
    # BMC finds a shortest run; it replays on the faulty stepper and breaks the same invariant at its last step.
    start, depth = _STARTS[name]
    world = _bmc_world(1, 1, bug.variants)
    found = bmc(world, [bug.breaks], depth=depth, start=start, bug=name)[bug.breaks]
    assert found.trace is not None and found.depth == depth
    trace = Trace.from_json(found.trace.to_json())
    assert trace.source == "z3" and trace.meta["seeded_bug"] == name
    state = initial_state(world)
    for i, s in enumerate(trace.steps):
        post, outcome = bug.stepper(world, state, s.action)
        assert outcome == s.expected
        broken = {v.invariant for v in check_transition(world, observe(world, state), s.action, outcome, observe(world, post))}
        assert (bug.breaks in broken) == (i == len(trace.steps) - 1), f"step {i} of {len(trace.steps)}"
        state = post
    assert bug.breaks in {v for v in trace.steps[-1].violations}
    # On the spec the same actions give the same outcomes and break nothing.
    spec_state = initial_state(world)
    for s in trace.steps:
        pre = spec_state
        spec_state, outcome = step(world, pre, s.action)
        assert outcome.code == s.expected.code
        assert check_transition(world, observe(world, pre), s.action, outcome, observe(world, spec_state)) == []
    assert replay_on_spec(trace).final.now == spec_state.now


def _mutated(name: str) -> list[str]:
    return {
        "card_found_resumes_signing": ["CardFound"],
        "renewal_unrevokes": ["IssueCardCertificate[signing]", "IssueCardCertificate[auth]"],
        "card_hold_skips_phone": ["ReportCardLost"],
        "no_cascade": ["AdvanceTime", "ChangePersonalData", "RevokeCardCertificate[signing]"],
        "phone_expiry_a_day_late": ["Register"],
        "pin_counter_broken": ["Register"],
    }[name]


def test_the_fixed_spec_violations_stay_fixed_along_their_shapes() -> None:
    """VAL-1 and SUS-2 were broken by a found-card resumption re-linking to a renewed card: BMC along those shapes finds nothing now."""
    assert KNOWN_SPEC_VIOLATIONS == {}
    world = _bmc_world(1, 1, Variants())
    for name, (start, shape, days) in KNOWN_SHAPES.items():
        r = bmc(world, [name], depth=len(shape), start=start, shape=shape, horizon_days=days)[name]
        assert r.trace is None, f"{name}: {r}"


def test_transition_invariants_have_twins() -> None:
    from properties.z3_invariants import Z_STATE, Z_TRANSITION

    assert set(Z_STATE) == set(STATE_INVARIANTS) and set(Z_TRANSITION) == set(TRANSITION_INVARIANTS)
