"""The explorer: stable small-scope counts, symmetry reduction that loses nothing, shortest counterexamples, coverage."""

from __future__ import annotations

from datetime import date

import pytest

from mjpki.properties.coverage import coverage, render_coverage
from mjpki.properties.explorer import Exploration, Scope, explore, start_state
from mjpki.properties.invariants import check_state, check_transition
from mjpki.properties.seeded_bugs import SEEDED_BUGS, SeededBug
from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.domain import CertStatus, Kind, PhoneLinkage, RevocationReason
from mjpki.spec.machine import step
from mjpki.spec.observe import observe
from mjpki.spec.state import initial_state
from mjpki.spec.trace import Trace, replay_on_spec


def test_small_scope_is_stable_and_clean() -> None:
    """A 1-person, 1-phone scope to depth 6: the counts are pinned, and every invariant holds everywhere."""
    exp = explore(Scope(persons=1, phones=1, depth=6))
    assert (exp.states, exp.edges) == (2038, 4909), "the reachable graph changed: if the spec changed on purpose, update these"
    assert exp.violations == [] and exp.per_invariant == {}
    assert exp.depth_reached == 6 and not exp.complete


def test_two_persons_three_phones_clean() -> None:
    """The 2-person, 3-phone scope of the issue, to a depth CI affords: no invariant broken."""
    exp = explore(Scope(persons=2, phones=3, depth=4))
    assert exp.violations == []
    assert exp.states > 2000


def test_symmetry_reduction_loses_no_state() -> None:
    """Orbit-counting the reduced graph gives exactly the states explored without reduction."""
    with_sym = explore(Scope(persons=2, phones=3, depth=3))
    without = explore(Scope(persons=2, phones=3, depth=3, symmetry=False))
    assert with_sym.symmetries == 2 and without.symmetries == 1
    assert with_sym.states < without.states
    assert with_sym.concrete_states == without.states


def test_onboarded_start() -> None:
    state = start_state(explore(Scope(persons=1, phones=1, depth=1)).world, "onboarded")
    assert len(state.phone_certs) == 2
    assert explore(Scope(persons=1, phones=2, depth=3, start="onboarded")).violations == []


def _cascaded_by_card_auth(exp: Exploration) -> set[Kind]:
    """The kinds of phone certificate some explored state has revoked by the cascade while its card signing one is not revoked."""
    kinds = set()
    for _n, data in exp.graph.nodes(data=True):
        st = data["state"]
        for pc in st.phone_certs.values():
            if pc.reason is RevocationReason.CASCADE and st.card_certs[pc.card_serial].status is not CertStatus.REVOKED:
                kinds.add(pc.kind)
    return kinds


@pytest.mark.parametrize(
    ("linkage", "cascades"),
    [("card_signing", set()), ("per_kind", {Kind.AUTH}), ("either", {Kind.AUTH, Kind.SIGNING})],
)
def test_every_phone_linkage_setting_is_explored_clean(linkage: str, cascades: set[Kind]) -> None:
    """ASM-PHONE-LINKAGE, each setting: from the onboarded state, with the card auth certificate revoked and renewed,
    no invariant breaks; revoking the card auth certificate cascades to the phone certificates the setting says."""
    scope = Scope(
        persons=1, phones=1, depth=4, start="onboarded", card_auth=True, holds=False, pins=False, kinds="auth",
        variants=Variants(phone_linkage=PhoneLinkage(linkage)),
    )  # fmt: skip
    exp = explore(scope)
    assert exp.violations == [] and exp.per_invariant == {}
    assert _cascaded_by_card_auth(exp) == cascades


@pytest.mark.parametrize("linkage", ["card_signing", "either"])
def test_fresh_expiry_of_a_found_card_is_explored_clean(linkage: str) -> None:
    """card_found_fresh_expiry: with a birthday on day 1, a card found then is re-issued with a later expiry; the resumed
    phone auth certificate keeps its own (VAL-1 as "never later" when it follows the card signing certificate), and no
    invariant breaks."""
    variants = Variants(card_found_fresh_expiry=True, phone_linkage=PhoneLinkage(linkage))
    scope = Scope(
        persons=1, phones=1, depth=5, start="onboarded", pins=False, kinds="auth", birth=date(1990, 4, 2), card_issues=0, variants=variants
    )
    exp = explore(scope)
    assert exp.violations == [] and exp.per_invariant == {}
    earlier = [
        pc
        for _n, data in exp.graph.nodes(data=True)
        for pc in data["state"].phone_certs.values()
        if pc.kind is Kind.AUTH
        and pc.status is CertStatus.ACTIVE
        and any(data["state"].card_certs[f].kind is Kind.SIGNING and data["state"].card_certs[f].expiry > pc.expiry for f in pc.follows)
    ]
    assert earlier, "a resumed phone auth certificate following a later-expiring card signing certificate should be reached"


def _bug_scope(bug: SeededBug, depth: int) -> Scope:
    return Scope(persons=1, phones=1, depth=depth, pins=False, variants=bug.variants)


@pytest.mark.parametrize("name", list(SEEDED_BUGS))
def test_seeded_bug_found_with_a_shortest_trace(name: str) -> None:
    bug = SEEDED_BUGS[name]
    exp = explore(_bug_scope(bug, 8), stepper=bug.stepper)
    found = {v.invariant: v for v in exp.violations}
    assert bug.breaks in found, f"{name} should break {bug.breaks}; found {sorted(found)}"
    trace = found[bug.breaks].trace
    n = len(trace.steps)
    # Shortest: no path of fewer steps breaks this invariant.
    shorter = explore(_bug_scope(bug, n - 1), stepper=bug.stepper)
    assert bug.breaks not in shorter.per_invariant
    # The trace replays on the faulty stepper and breaks the invariant at its last step.
    world = exp.world
    state = start_state(world, "initial")
    for s in trace.steps[:-1]:
        state, _ = bug.stepper(world, state, s.action)
    last = trace.steps[-1].action
    post, outcome = bug.stepper(world, state, last)
    broken = check_transition(world, observe(world, state), last, outcome, observe(world, post))
    assert bug.breaks in {v.invariant for v in broken}
    # On the real spec the same steps break nothing: the bug is in the stepper, not the spec.
    spec_state = initial_state(world)
    for s in trace.steps:
        spec_state, _ = step(world, spec_state, s.action)
    assert check_state(world, observe(world, spec_state)) == []
    # And the trace round-trips through JSON for `mjpki replay`.
    again = Trace.from_json(trace.to_json())
    assert [s.action for s in again.steps] == [s.action for s in trace.steps]
    assert replay_on_spec(again).final.now == spec_state.now


def test_coverage_flags_what_a_restricted_run_never_did() -> None:
    """A run that never reports a lost phone is told so, and its touched edges are counted against the graph."""
    exp = explore(Scope(persons=1, phones=1, depth=4))
    world = exp.world
    actions = [A.InstallApp(phone="D1"), A.PrepareApplet(phone="D1"), A.SetOnline(phone="D1", online=False)]
    from mjpki.spec.trace import record

    cov = coverage([record(world, actions)], exp)
    assert "ReportPhoneLost" in cov.never_actions
    assert ("PrepareApplet", "ACCEPTED") not in cov.never_outcomes
    assert ("PrepareApplet", "DEVICE_OFFLINE") in cov.never_outcomes
    assert cov.edges_touched == 3 and cov.edges_total == exp.edges
    report = render_coverage(cov)
    assert "ReportPhoneLost" in report and f"3 of {exp.edges}" in report


def test_state_invariants_once_per_state_find_what_every_edge_found() -> None:
    """Checking state invariants once per new state (the fast way) finds the same violations, counts and shortest traces
    as checking them on every edge; building the graph without invariants gives the same graph."""
    bug = SEEDED_BUGS["card_found_resumes_signing"]
    scope = _bug_scope(bug, 5)
    fast, slow = explore(scope, stepper=bug.stepper), explore(scope, stepper=bug.stepper, state_invariants_on_every_edge=True)
    assert fast.per_invariant == slow.per_invariant and bug.breaks in fast.per_invariant
    assert [(v.invariant, v.trace.steps) for v in fast.violations] == [(v.invariant, v.trace.steps) for v in slow.violations]
    bare = explore(scope, stepper=bug.stepper, invariants=False)
    assert (bare.states, bare.edges, bare.per_invariant) == (fast.states, fast.edges, {})


def test_breadth_first_levels_are_bounded_model_checks() -> None:
    """When on_level(d) is called every run of up to d actions has been checked: stopping there gives the exploration
    of depth d (same graph, same violations, same shortest traces), so the BFS is a BMC of that depth over the alphabet."""
    bug = SEEDED_BUGS["card_found_resumes_signing"]
    levels: list[int] = []
    cut = explore(_bug_scope(bug, 9), stepper=bug.stepper, on_level=lambda d, _n: levels.append(d) is None and d < 5)
    full = explore(_bug_scope(bug, 5), stepper=bug.stepper)
    assert levels == [1, 2, 3, 4, 5] and not cut.complete and cut.depth_reached == 5
    assert (cut.states, cut.edges, cut.per_invariant) == (full.states, full.edges, full.per_invariant)
    assert [(v.invariant, v.trace.steps) for v in cut.violations] == [(v.invariant, v.trace.steps) for v in full.violations]
    assert bug.breaks in cut.per_invariant


def test_scope_validation() -> None:
    with pytest.raises(ValueError, match="kinds"):
        Scope(kinds="all")
    with pytest.raises(ValueError, match="persons"):
        Scope(persons=9)


def test_lifecycle_diagrams_are_derived_from_the_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The certificate diagram has the transitions the sources describe, and Graphviz renders it."""
    import os
    import shutil

    from mjpki.properties.diagrams import lifecycle_graphs, render, to_dot

    cert_g, se_g = lifecycle_graphs(
        explore(Scope(persons=1, phones=1, depth=7, pins=False)), explore(Scope(persons=1, phones=1, depth=3, start="onboarded"))
    )
    assert "Register" in cert_g.edges["not issued", "issued, temporary PIN"]["actions"]
    assert "SetPin" in cert_g.edges["issued, temporary PIN", "in force"]["actions"]
    assert "RevokeFromPhone" in cert_g.edges["in force", "revoked, deleted"]["actions"]
    assert {"ReportPhoneLost", "ReportCardLost"} <= cert_g.edges["in force", "suspended"]["actions"]
    assert not cert_g.has_edge("revoked, deleted", "in force")  # REV-4, visible in the picture too
    assert "PrepareApplet" in se_g.edges["no applet", "applet, empty"]["actions"]
    dot = to_dot(cert_g, title="t", start="not issued")
    if shutil.which("dot") is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("Graphviz is missing in CI: scripts/bootstrap.sh installs it as root")
        pytest.skip("Graphviz's dot is not installed here (bootstrap installs it when run as root)")
    out = render(dot, tmp_path / "cert.svg")
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_canonical_keys_hash_once_and_stand_for_the_plain_tuple() -> None:
    """The explorer's keys cache their hash; they must still equal, and hash like, the tuple they are, so that a key
    computed afresh (mjpki.properties.coverage) finds its node in the graph."""
    import pickle

    e = explore(Scope(persons=1, phones=2, depth=2))
    for node, data in e.graph.nodes(data=True):
        plain = tuple(node)
        assert plain == node and hash(plain) == hash(node) and plain in e.graph
        assert e.canon.key(data["state"]) == node and hash(e.canon.key(data["state"])) == hash(node)
        assert pickle.loads(pickle.dumps(node)) == node
