"""The Z3 encoding agrees with the executable spec, step by step: outcome code and next state (all rules)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import pytest
import z3

from mjpki.properties.explorer import Scope, alphabet, explore
from mjpki.properties.z3_bridge import Evaluator, Numbering, _z3_value, project
from mjpki.properties.z3_encoding import INSTANCES, Dom, Encoder, ZState, push_due_term
from mjpki.properties.z3_invariants import init_formula
from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import push_due
from mjpki.spec.domain import AuthMethod, Kind, PhoneLinkage, Profile
from mjpki.spec.machine import step
from mjpki.spec.rules import RULES
from mjpki.spec.state import State, initial_state
from mjpki.spec.world import PersonSpec, PhoneSpec, World, default_world
from mjpki.strategies import AUTH_PINS, SIGNING_PINS, probe_actions, progress_actions, relying_party_actions


def _random_action(rng: random.Random, world: World, state: State) -> A.Action:
    """Progress, probes, the explorer's alphabet, and arbitrary arguments (malformed PINs, bad signatures, shady SPs)."""
    persons = [p.id for p in world.persons]
    phones = [p.id for p in world.phones]
    sps = [s.id for s in world.service_providers]
    kind = rng.choice(list(Kind))
    pins = SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS
    arbitrary: list[A.Action] = [
        A.Apply(
            person=rng.choice(persons),
            phone=rng.choice(phones),
            kinds=rng.choice([frozenset(), frozenset({Kind.SIGNING}), frozenset({Kind.AUTH}), frozenset(Kind)]),
            signing_pin=rng.choice(SIGNING_PINS),
            auth_pin=rng.choice(AUTH_PINS),
            consent=rng.random() < 0.7,
            card_signature_valid=rng.random() < 0.8,
        ),
        A.Sign(phone=rng.choice(phones), sp=rng.choice(sps), pin=rng.choice(SIGNING_PINS), method=rng.choice(list(AuthMethod))),
        A.Authenticate(
            phone=rng.choice(phones),
            sp=rng.choice(sps),
            pin=rng.choice(AUTH_PINS),
            method=rng.choice(list(AuthMethod)),
            official_app=rng.random() < 0.8,
        ),
        A.UseCard(person=rng.choice(persons), kind=kind, sp=rng.choice(sps)),
        A.VerifyCertificate(
            person=rng.choice(persons),
            kind=kind,
            profile=rng.choice(list(Profile)),
            index=rng.choice([-1, 0, 0, 1, 1, 2, 3]),
            accept=rng.choice(list(Profile)),
        ),
        A.ChangePin(phone=rng.choice(phones), kind=kind, old_pin=rng.choice(pins), new_pin=rng.choice(pins)),
        A.InitialisePin(
            person=rng.choice(persons),
            phone=rng.choice(phones),
            kind=kind,
            new_pin=rng.choice(pins),
            card_signature_valid=rng.random() < 0.8,
        ),
        A.RevokeFromPhone(phone=rng.choice(phones), kind=kind, pin=rng.choice(pins)),
        A.EnrollOsAuth(phone=rng.choice(phones), pin=rng.choice(AUTH_PINS)),
        A.UnlockScreen(phone=rng.choice(phones)),
        A.ResumeFromApp(
            person=rng.choice(persons),
            phone=rng.choice(phones),
            signing_pin=rng.choice(SIGNING_PINS),
            card_signature_valid=rng.random() < 0.8,
        ),
        A.RevokeWithCard(person=rng.choice(persons), card_signature_valid=rng.random() < 0.8),
        A.RevokeCardCertificate(person=rng.choice(persons), kind=kind),
        A.IssueCardCertificate(person=rng.choice(persons), kind=kind),
        A.UninstallApp(phone=rng.choice(phones)),
        A.FactoryReset(phone=rng.choice(phones)),
        A.SetPushEnabled(phone=rng.choice(phones), enabled=rng.random() < 0.5),
        A.TransferPhone(phone=rng.choice(phones), to=rng.choice(persons)),
        A.AdvanceTime(minutes=rng.choice([0, 1, 5, 60, 12 * 60, 49 * 60, 400 * 24 * 60])),
    ]
    pools = [
        progress_actions(world, state),
        probe_actions(world, state),
        list(alphabet(world, state, Scope(persons=2, phones=3))),
        arbitrary,
        relying_party_actions(world, state),
    ]
    weights = [5, 2, 3, 3, 1]
    pool = rng.choices([p for p in pools if p], weights=[w for p, w in zip(pools, weights, strict=True) if p])[0]
    return rng.choice(pool)


SERIALS = 36


def _worlds() -> list[World]:
    base = default_world(persons=2, phones=3)
    # An old phone without Class 3 biometrics, to reach the ACT-3 and PIN-6 refusals.
    odd = World(
        persons=(PersonSpec(id="P1", birth=date(2000, 2, 29)), PersonSpec(id="P2", birth=date(1985, 11, 3))),
        phones=(
            PhoneSpec(id="D1", se_id="SE-1", initial_holder="P1"),
            PhoneSpec(id="D2", se_id="SE-2", android=10, biometric_class3=False, initial_holder="P2"),
            PhoneSpec(id="D3", se_id="SE-3", android=8),
        ),
        service_providers=base.service_providers,
        variants=Variants(
            factory_reset_wipes_se=True,
            remote_deletion_removes_applet=True,
            cascade_delay_minutes=0,
            auth_pin_tries=2,
            phone_linkage=PhoneLinkage.PER_KIND,
            card_found_fresh_expiry=True,
        ),
    )
    # The third reading of the linkage (ASM-PHONE-LINKAGE), with the fresh expiry of a re-issued card signing certificate.
    either = replace(base, variants=Variants(phone_linkage=PhoneLinkage.EITHER, card_found_fresh_expiry=True))
    return [base, odd, either]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_random_steps_agree(which: int) -> None:
    """Random runs (progress, probes, arbitrary arguments): every step's outcome code and next state agree."""
    world = _worlds()[which]
    ev = Evaluator(world, Dom(persons=2, phones=3, serials=SERIALS))
    rng = random.Random(20260401 + which)
    checked, seen = 0, set()
    while checked < 400:
        state = initial_state(world)
        for _ in range(70):
            action = _random_action(rng, world, state)
            post, outcome = step(world, state, action)
            if post.fresh > SERIALS:
                break
            r = ev.check(state, action, post, outcome.code)
            assert r.agrees, f"step {checked}: {action} on the spec {outcome.code}, in Z3 {r.z3_code}; fields differing: {r.differing}"
            seen.add((r.instance, outcome.code))
            checked += 1
            state = post
    assert len({i for i, _ in seen}) >= len(INSTANCES) - 4, f"instances exercised: {sorted({i for i, _ in seen})}"


def test_every_explored_transition_agrees() -> None:
    """Every edge of an explored state graph (recomputed from its source state) agrees with the relation."""
    exp = explore(Scope(persons=1, phones=1, depth=5))
    world = exp.world
    ev = Evaluator(world, Dom(persons=1, phones=1, serials=24))
    n = 0
    for u, _v, data in exp.graph.edges(data=True):
        state = exp.graph.nodes[u]["state"]
        post, outcome = step(world, state, data["action"])
        assert outcome.code == data["outcome"].code
        r = ev.check(state, data["action"], post, outcome.code)
        assert r.agrees, (
            f"{data['action']} from a depth-{exp.graph.nodes[u]['depth']} state: spec {outcome.code}, Z3 {r.z3_code}; {r.differing}"
        )
        n += 1
    assert n == exp.edges and n > 1000


def test_verifier_probes_agree_on_every_outcome() -> None:
    """VerifyCertificate (SP-1, CA-3, CA-4, REV-5, SUS-4, VAL-3): each of its outcome codes agrees with the relation."""
    world = default_world(persons=2, phones=3)
    ev = Evaluator(world, Dom(persons=2, phones=3, serials=SERIALS))
    card, phone = Profile.CARD, Profile.PHONE
    onboard: list[A.Action] = [
        A.AdvanceTime(minutes=9 * 60),
        A.InstallApp(phone="D1"),
        A.PrepareApplet(phone="D1"),
        A.Apply(person="P1", phone="D1", kinds=frozenset(Kind), signing_pin="ABC123", auth_pin="1234"),
        A.AdvanceTime(minutes=5),
        A.DeliverIssuancePush(person="P1"),
        A.Register(person="P1", phone="D1"),
    ]
    probes = [
        A.VerifyCertificate(person="P1", kind=k, profile=pr, index=i, accept=acc)
        for k in Kind
        for pr in (card, phone)
        for acc in (card, phone)
        for i in (-1, 0, 1, 2)
    ]
    life: list[A.Action] = [A.ReportPhoneLost(person="P1"), A.PhoneFound(person="P1"), A.IssueCardCertificate(person="P1", kind=Kind.AUTH)]
    life += [A.AdvanceTime(minutes=40 * 365 * 24 * 60)]
    state, codes = initial_state(world), set()
    for action in onboard:
        state, _o = step(world, state, action)
    for action in [None, *life]:
        if action is not None:
            state, _o = step(world, state, action)
        for probe in probes:
            post, outcome = step(world, state, probe)
            r = ev.check(state, probe, post, outcome.code)
            assert r.agrees, f"{probe}: the spec {outcome.code}, Z3 {r.z3_code}; {r.differing}"
            codes.add(outcome.code)
    assert codes == {"ACCEPTED", "WRONG_PROFILE", "UNKNOWN_CERTIFICATE", "CERT_EXPIRED", "CERT_REVOKED", "CERT_SUSPENDED"}


def test_relation_determines_the_post_state() -> None:
    """With a solver: given the pre-state and the action, no other post-state or outcome satisfies the relation."""
    world = default_world(persons=1, phones=1)
    dom = Dom(persons=1, phones=1, serials=20)
    ev = Evaluator(world, dom)
    rng = random.Random(7)
    state = initial_state(world)
    for _ in range(25):
        action = _random_action(rng, world, state)
        post, outcome = step(world, state, action)
        if post.fresh > 20:
            break
        from mjpki.properties.z3_bridge import action_params

        inst, pvals = action_params(world, state, action, ev.num)
        code, agree, _ = ev._terms(inst)
        s = z3.Solver()
        for name, val in project(world, state, ev.num).items():
            s.add(ev.pre.f[name] == _z3_value(name, val))
        for name, val in project(world, post, ev.num).items():
            s.add(ev.exp.f[name] == _z3_value(name, val))
        for name, val in pvals.items():
            s.add(getattr(ev.params, name) == val)
        from mjpki.properties.z3_encoding import CODE_INDEX

        s.add(z3.Not(z3.And(agree, code == CODE_INDEX[outcome.code])))
        assert s.check() == z3.unsat, f"{action}: the relation admits another outcome or post-state"
        state = post


def test_every_action_is_in_the_relation() -> None:
    assert {i.action for i in INSTANCES} == set(RULES)


def test_initial_states_satisfy_the_initial_condition() -> None:
    """The parametric Init of the proofs holds on the spec's own initial states."""
    for world in _worlds():
        num = Numbering(world)
        st = ZState({n: _z3_value(n, v) for n, v in project(world, initial_state(world), num).items()})
        enc = Encoder(Dom(persons=2, phones=3, serials=10), world.variants)
        assert z3.is_true(z3.simplify(init_formula(enc, st)))


def test_push_due_term_is_the_clock() -> None:
    t = z3.Int("t")
    for now in [0, 479, 480, 481, 1169, 1170, 1439, 1440 * 3 + 600, 1440 * 40 + 1300]:
        assert z3.simplify(z3.substitute(push_due_term(t), (t, z3.IntVal(now)))).as_long() == push_due(now)
