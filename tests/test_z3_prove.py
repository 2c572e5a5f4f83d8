"""Z3 proofs: every invariant proved for every reachable state (both settings of each Boolean variant, every value of
phone_linkage, the conformance run's variant worlds), seeded bugs come back as traces."""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys

import pytest

from mjpki.conformance import STATEFUL_WORLDS
from mjpki.properties.invariants import STATE_INVARIANTS, TRANSITION_INVARIANTS, check_transition
from mjpki.properties.prove import KNOWN_SHAPES, KNOWN_SPEC_VIOLATIONS, InductionResult, _bmc_world, _Engine, bmc, houdini, variant_delta
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.properties.z3_invariants import LEMMAS
from mjpki.spec.assumptions import Variants
from mjpki.spec.domain import PhoneLinkage
from mjpki.spec.machine import step
from mjpki.spec.observe import observe
from mjpki.spec.state import initial_state
from mjpki.spec.trace import Trace, replay_on_spec


@functools.lru_cache(maxsize=1)
def _default() -> InductionResult:
    return houdini(Variants(), jobs=2)  # RLIMIT resource units per query; a query that runs out gets four times that once more


def test_every_invariant_proved_parametric_as_launched() -> None:
    """1-induction over unbounded persons, phones and serials: all but the known spec violations survive, lemmas included."""
    ind = _default()
    assert set(LEMMAS) <= ind.kept, ind.dropped
    assert set(STATE_INVARIANTS) - ind.kept == set(KNOWN_SPEC_VIOLATIONS), ind.dropped
    assert all(why is None for why in ind.transition.values()), ind.transition


BOOLEAN_VARIANTS = [f.name for f in dataclasses.fields(Variants) if isinstance(f.default, bool)]


def test_every_boolean_variant_is_proved_in_its_other_setting() -> None:
    assert set(BOOLEAN_VARIANTS) == {"factory_reset_wipes_se", "remote_deletion_removes_applet", "card_found_fresh_expiry"}


@pytest.mark.parametrize("name", BOOLEAN_VARIANTS)
def test_other_setting_of_each_boolean_variant(name: str) -> None:
    """The other setting changes some instances' effect (or some invariant's reading); those queries are checked
    against the same inductive invariant, the rest are the launched setting's."""
    changed, failures = variant_delta(_default(), Variants(**{name: True}))
    assert changed, f"{name} should change what some rule does"
    assert failures == {}, failures


@pytest.mark.parametrize("linkage", [v for v in PhoneLinkage if v is not Variants().phone_linkage])
def test_each_other_value_of_phone_linkage(linkage: PhoneLinkage) -> None:
    """ASM-PHONE-LINKAGE: per kind and either card certificate, each proved like a Boolean variant's other setting."""
    changed, failures = variant_delta(_default(), Variants(phone_linkage=linkage))
    assert set(changed) == {"Apply", "Register"}, changed  # the rest reads the links the registration recorded
    assert failures == {}, failures


def test_variant_delta_finds_what_a_setting_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registration that records the launched links under per_kind breaks the per_kind reading of LNK-2, although
    the invariants' other queries are the launched setting's: the delta re-asks them because that invariant's formula
    changed."""
    from mjpki.properties.z3_encoding import Encoder

    monkeypatch.setattr(Encoder, "follows", lambda self, k: (True, False))
    _changed, failures = variant_delta(_default(), Variants(phone_linkage=PhoneLinkage.PER_KIND), rlimit=300_000)
    assert "phone_cert_linked_to_card_signing" in failures, failures


@pytest.mark.parametrize("name", [n for n in STATEFUL_WORLDS if n != "default"])
def test_the_conformance_run_variant_worlds(name: str) -> None:
    """The settings of the conformance run's variant worlds, all at once (numeric variants included)."""
    changed, failures = variant_delta(_default(), STATEFUL_WORLDS[name]().variants, jobs=2)
    assert changed and failures == {}, failures


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
    answers = {i: eng.query(bug.breaks, i, kept, 2_000_000)[0] for i in _mutated(name)}  # resource units: about 3 s
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


@pytest.mark.parametrize("incremental", [True, False])
def test_bmc_searches_every_depth_of_an_invariant_that_holds(incremental: bool) -> None:
    """Both ways (one incremental solver, a fresh solver per depth) answer every depth of an invariant that holds: no
    trace, and `searched` says every run of up to that many steps was refuted; a CPU budget stops the deepening."""
    world = _bmc_world(1, 1, Variants())
    levels: list[int] = []
    r = bmc(world, ["one_phone_cert_per_kind"], depth=2, incremental=incremental, progress=lambda d, _cpu: levels.append(d))
    found = r["one_phone_cert_per_kind"]
    assert found.trace is None and found.searched == 2 and levels == [1, 2]
    cut = bmc(world, ["one_phone_cert_per_kind"], depth=3, incremental=incremental, cpu_budget=0.0)["one_phone_cert_per_kind"]
    assert cut.trace is None and cut.searched == 1  # the budget is looked at before each depth after the first


_BOTH_MODES = """
import json, sys
from mjpki.properties.prove import _bmc_world, bmc
from mjpki.properties.seeded_bugs import SEEDED_BUGS
name, start, depth = sys.argv[1], sys.argv[2], int(sys.argv[3])
bug = SEEDED_BUGS[name]
world = _bmc_world(1, 1, bug.variants)
out = {}
for inc in (True, False):
    r = bmc(world, [bug.breaks], depth=depth, start=start, bug=name, incremental=inc)[bug.breaks]
    out[str(inc)] = {"depth": r.depth, "trace": r.trace is not None, "searched": r.searched}
print(json.dumps(out))
"""


@pytest.mark.parametrize("name", ["card_found_resumes_signing", "card_hold_skips_phone"])
def test_incremental_and_fresh_bmc_find_the_same_shortest_violation(name: str) -> None:
    """The incremental search (interior steps must change the state) finds a seeded bug at the depth the fresh one does,
    from the initial and from the onboarded state (whose empty arrays the incremental solver once took for quantifiers,
    answering "unknown" where a run exists)."""
    # In a fresh interpreter: Z3's terms live in one global context, and what earlier tests left there changes the
    # solver's term order and so its path; in a long pytest process the incremental query once ran past its rlimit
    # (alone it needs a tenth of it). A fresh process makes the rlimit, and so the answer, the same every run.
    start, depth = _STARTS[name]
    done = subprocess.run(
        [sys.executable, "-c", _BOTH_MODES, name, start, str(depth)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modes = json.loads(done.stdout)
    assert {r["depth"] for r in modes.values()} == {depth}
    assert all(r["trace"] for r in modes.values()), modes
    # Every shallower depth refuted by at least one mode; neither reports as searched more than it refuted.
    assert all(r["searched"] <= depth - 1 for r in modes.values())
    assert max(r["searched"] for r in modes.values()) == depth - 1


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
    from mjpki.properties.z3_invariants import Z_STATE, Z_TRANSITION

    assert set(Z_STATE) == set(STATE_INVARIANTS) and set(Z_TRANSITION) == set(TRANSITION_INVARIANTS)
