"""Each invariant detects the violation it names: faulty observations are built by hand and must be caught.

Properties that never fire would make every conformance verdict meaningless, so each one is
shown here to fail on a state or step that breaks its requirement.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mjpki.properties.invariants import STATE_INVARIANTS, TRANSITION_INVARIANTS, check_state
from mjpki.scenarios import BOTH, SPIN, base_world, onboard, to_morning
from mjpki.spec import actions as A
from mjpki.spec import initial_state, step
from mjpki.spec.domain import CertStatus, Kind, PinStatus, Profile, RevocationReason
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.observe import CertView, Observation, observe
from mjpki.spec.outcome import accepted
from mjpki.spec.world import World

WORLD = base_world()


def _good() -> Observation:
    state = initial_state(WORLD)
    for e in [*to_morning(), *onboard("P1", "D1")]:
        state, _ = step(WORLD, state, e.action)
    return observe(WORLD, state)


GOOD = _good()


def phone_cert(obs: Observation, kind: Kind) -> CertView:
    return next(c for c in obs.certs if c.profile is Profile.PHONE and c.kind is kind)


def with_cert(obs: Observation, old: CertView, new: CertView) -> Observation:
    return replace(obs, certs=tuple(new if c is old else c for c in obs.certs))


def fires(name: str, obs: Observation) -> list[str]:
    return STATE_INVARIANTS[name].check(WORLD, obs)


def test_good_observation_is_clean() -> None:
    assert check_state(WORLD, GOOD) == []


def test_lnk3_second_live_phone_certificate() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    bad = replace(GOOD, certs=(*GOOD.certs, replace(c, serial=999)))
    assert fires("one_phone_cert_per_kind", bad)


def test_lnk4_split_across_ses() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    assert fires("phone_certs_on_one_se", with_cert(GOOD, c, replace(c, se_id="SE-0003")))


def test_lnk1_lnk2_unlinked_phone_certificate() -> None:
    c = phone_cert(GOOD, Kind.SIGNING)
    card_auth = GOOD.current_card[("P1", Kind.AUTH)]
    assert fires("phone_cert_linked_to_card_signing", with_cert(GOOD, c, replace(c, card_serial=card_auth)))
    assert fires("phone_cert_linked_to_card_signing", with_cert(GOOD, c, replace(c, card_serial=12345)))


def test_val1_expiry_not_tied_to_card() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    assert fires("phone_expiry_is_card_expiry", with_cert(GOOD, c, replace(c, expiry=c.expiry + 1)))


def _good_in(world: World) -> Observation:
    state = initial_state(world)
    for e in [*to_morning(), *onboard("P1", "D1")]:
        state, _ = step(world, state, e.action)
    return observe(world, state)


def test_lnk2_follows_what_the_linkage_setting_says() -> None:
    """ASM-PHONE-LINKAGE: a phone certificate must follow exactly the card certificates its setting names."""
    per_kind = base_world(phone_linkage="per_kind")
    obs = _good_in(per_kind)
    card_sign, card_auth = obs.current_card[("P1", Kind.SIGNING)], obs.current_card[("P1", Kind.AUTH)]
    auth = phone_cert(obs, Kind.AUTH)
    assert auth.follows == {card_auth} and phone_cert(obs, Kind.SIGNING).follows == {card_sign}
    assert STATE_INVARIANTS["phone_cert_linked_to_card_signing"].check(per_kind, obs) == []
    for wrong in ({card_sign}, {card_sign, card_auth}, frozenset(), None):  # None: not reported, read as card signing
        bad = with_cert(obs, auth, replace(auth, follows=wrong))
        assert STATE_INVARIANTS["phone_cert_linked_to_card_signing"].check(per_kind, bad), wrong
    launched = phone_cert(GOOD, Kind.AUTH)  # by default it follows the card signing certificate only
    to_auth = replace(launched, follows={GOOD.current_card[("P1", Kind.AUTH)]})
    assert fires("phone_cert_linked_to_card_signing", with_cert(GOOD, launched, to_auth))
    assert not fires("phone_cert_linked_to_card_signing", with_cert(GOOD, launched, replace(launched, follows=None)))


def test_rev2_sus2_val1_read_every_followed_card_certificate() -> None:
    """Under either, revoking or suspending the card auth certificate reaches both phone certificates, and each expires
    with the earlier of its two card certificates."""
    either = base_world(phone_linkage="either")
    obs = _good_in(either)
    card = obs.cert(obs.current_card[("P1", Kind.AUTH)])
    assert card is not None
    revoked = replace(card, status=CertStatus.REVOKED, revoked_at=obs.now, reason=RevocationReason.USER_REQUEST)
    late = replace(with_cert(obs, card, revoked), now=obs.now + either.variants.cascade_delay_minutes)
    assert len(STATE_INVARIANTS["cascade_within_delay"].check(either, late)) == 2
    held = with_cert(obs, card, replace(card, status=CertStatus.SUSPENDED))
    assert len(STATE_INVARIANTS["card_hold_holds_phone"].check(either, held)) == 2
    earlier = with_cert(obs, card, replace(card, expiry=card.expiry - 1))
    assert len(STATE_INVARIANTS["phone_expiry_is_card_expiry"].check(either, earlier)) == 2


def test_val1_never_later_with_a_fresh_expiry() -> None:
    """card_found_fresh_expiry: a phone certificate re-linked to a card signing certificate issued after it may expire
    earlier than that, never later; a phone certificate issued after its card certificate still expires with it."""
    fresh = base_world(card_found_fresh_expiry=True)
    c = phone_cert(GOOD, Kind.AUTH)
    card = GOOD.cert(c.card_serial)
    assert card is not None
    reissued = replace(card, issued_at=c.issued_at + 10, expiry=card.expiry + 365 * 24 * 60)
    relinked = with_cert(GOOD, card, reissued)
    assert STATE_INVARIANTS["phone_expiry_is_card_expiry"].check(fresh, relinked) == []
    assert fires("phone_expiry_is_card_expiry", relinked)  # as launched the re-issue keeps the expiry
    later = with_cert(relinked, c, replace(c, expiry=reissued.expiry + 1))
    assert STATE_INVARIANTS["phone_expiry_is_card_expiry"].check(fresh, later)
    not_relinked = with_cert(GOOD, card, replace(card, expiry=card.expiry + 1))
    assert STATE_INVARIANTS["phone_expiry_is_card_expiry"].check(fresh, not_relinked)


def test_sus2_an_expired_phone_certificate_is_not_in_force() -> None:
    """card_hold_holds_phone asks that no phone certificate be in force; an expired one is not, whatever its status."""
    card = GOOD.cert(GOOD.current_card[("P1", Kind.SIGNING)])
    assert card is not None
    held = with_cert(GOOD, card, replace(card, status=CertStatus.SUSPENDED))
    assert not fires("card_hold_holds_phone", replace(held, now=phone_cert(GOOD, Kind.AUTH).expiry))


def test_ca2_serial_collision() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    card = GOOD.current_card[("P2", Kind.AUTH)]
    assert fires("serials_unique", with_cert(GOOD, c, replace(c, serial=card)))


def test_rev2_no_cascade() -> None:
    card_serial = GOOD.current_card[("P1", Kind.SIGNING)]
    card = GOOD.cert(card_serial)
    assert card is not None
    revoked = replace(card, status=CertStatus.REVOKED, revoked_at=GOOD.now, reason=RevocationReason.DATA_CHANGE)
    late = replace(with_cert(GOOD, card, revoked), now=GOOD.now + WORLD.variants.cascade_delay_minutes)
    assert fires("cascade_within_delay", late)
    early = replace(with_cert(GOOD, card, revoked), now=GOOD.now + WORLD.variants.cascade_delay_minutes - 1)
    assert not fires("cascade_within_delay", early)
    no_cascade = replace(revoked, reason=RevocationReason.SUPERSEDED_AFTER_HOLD)
    assert not fires("cascade_within_delay", replace(with_cert(GOOD, card, no_cascade), now=late.now))


def test_sus2_card_hold_not_passed_on() -> None:
    card = GOOD.cert(GOOD.current_card[("P1", Kind.SIGNING)])
    assert card is not None
    assert fires("card_hold_holds_phone", with_cert(GOOD, card, replace(card, status=CertStatus.SUSPENDED)))


def test_pin3_counter_inconsistent() -> None:
    slot = GOOD.slots[0]
    locked_with_tries = replace(slot, pin_status=PinStatus.LOCKED)
    assert fires("pin_counter_consistent", replace(GOOD, slots=(locked_with_tries, *GOOD.slots[1:])))
    too_many = replace(slot, tries_left=99)
    assert fires("pin_counter_consistent", replace(GOOD, slots=(too_many, *GOOD.slots[1:])))


def test_iss4_new_issued_before_old_revoked() -> None:
    c = phone_cert(GOOD, Kind.SIGNING)
    newer = replace(c, serial=999, issued_at=c.issued_at + 10, se_id=c.se_id)
    old_revoked_late = replace(c, status=CertStatus.REVOKED, revoked_at=c.issued_at + 11)
    bad = replace(with_cert(GOOD, c, old_revoked_late), certs=(*with_cert(GOOD, c, old_revoked_late).certs, newer))
    assert fires("old_revoked_before_new_issued", bad)
    old_revoked_first = replace(c, status=CertStatus.REVOKED, revoked_at=c.issued_at + 10)
    ok = with_cert(GOOD, c, old_revoked_first)
    assert not fires("old_revoked_before_new_issued", replace(ok, certs=(*ok.certs, newer)))


def test_iss5_key_copied_or_misfiled() -> None:
    slot = GOOD.slots[0]
    copy = replace(slot, phone="D3", se_id="SE-0003")
    assert fires("key_only_in_its_se", replace(GOOD, slots=(*GOOD.slots, copy)))
    swapped = replace(slot, key="K-other")
    assert fires("key_only_in_its_se", replace(GOOD, slots=(swapped, *GOOD.slots[1:])))


def test_iss6_commitment_not_checked() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    assert fires("certified_against_own_commitment", with_cert(GOOD, c, replace(c, commitment_ok=False)))


def test_ca4_published_on_the_wrong_list() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    revoked = with_cert(GOOD, c, replace(c, status=CertStatus.REVOKED, revoked_at=GOOD.now))
    assert fires("status_published_on_own_profile", revoked)  # not published at all
    wrong = replace(revoked, published=frozenset({(Profile.CARD, c.serial, CertStatus.REVOKED)}))
    assert fires("status_published_on_own_profile", wrong)
    right = replace(revoked, published=frozenset({(Profile.PHONE, c.serial, CertStatus.REVOKED)}))
    assert not fires("status_published_on_own_profile", right)
    as_hold = replace(revoked, published=frozenset({(Profile.PHONE, c.serial, CertStatus.SUSPENDED)}))
    assert fires("status_published_on_own_profile", as_hold)


def test_lnk6_linkage_to_the_wrong_se() -> None:
    card = GOOD.current_card[("P1", Kind.SIGNING)]
    assert fires("linkage_names_se_of_live_certs", replace(GOOD, linkage=FrozenMap({card: "SE-0002"})))


# --- transition invariants ---------------------------------------------------------------------------


def steps_fire(name: str, pre: Observation, action: A.Action, outcome, post: Observation) -> list[str]:  # type: ignore[no-untyped-def]
    return TRANSITION_INVARIANTS[name].check(WORLD, pre, action, outcome, post)


def test_rev4_unrevoked() -> None:
    c = phone_cert(GOOD, Kind.AUTH)
    pre = with_cert(GOOD, c, replace(c, status=CertStatus.REVOKED, revoked_at=1))
    assert steps_fire("revoked_stays_revoked", pre, A.UnlockScreen(phone="D1"), accepted(), GOOD)
    vanished = replace(GOOD, certs=tuple(x for x in GOOD.certs if x is not c))
    assert steps_fire("revoked_stays_revoked", GOOD, A.UnlockScreen(phone="D1"), accepted(), vanished)


@pytest.mark.parametrize("profile", [Profile.PHONE, Profile.CARD])
def test_sus3_suspended_signing_resumed(profile: Profile) -> None:
    c = next(x for x in GOOD.certs if x.profile is profile and x.kind is Kind.SIGNING and x.person == "P1")
    pre = with_cert(GOOD, c, replace(c, status=CertStatus.SUSPENDED))
    assert steps_fire("suspended_signing_never_resumes", pre, A.PhoneFound(person="P1"), accepted(), GOOD)
    auth = next(x for x in GOOD.certs if x.profile is profile and x.kind is Kind.AUTH and x.person == "P1")
    pre_auth = with_cert(GOOD, auth, replace(auth, status=CertStatus.SUSPENDED))
    assert not steps_fire("suspended_signing_never_resumes", pre_auth, A.PhoneFound(person="P1"), accepted(), GOOD)


def test_pin3_key_use_with_locked_pin() -> None:
    slot = next(s for s in GOOD.slots if s.kind is Kind.SIGNING)
    pre = replace(GOOD, slots=tuple(replace(s, pin_status=PinStatus.LOCKED, tries_left=0) if s is slot else s for s in GOOD.slots))
    sign = A.Sign(phone="D1", sp="portal", pin=SPIN)
    assert steps_fire("locked_pin_admits_no_key_use", pre, sign, accepted(), GOOD)
    assert not steps_fire("locked_pin_admits_no_key_use", GOOD, sign, accepted(), GOOD)


def test_rev5_verifier_accepts_revoked() -> None:
    c = phone_cert(GOOD, Kind.SIGNING)
    pre = with_cert(GOOD, c, replace(c, status=CertStatus.REVOKED, revoked_at=1))
    sign = A.Sign(phone="D1", sp="portal", pin=SPIN)
    assert steps_fire("verifier_accepts_only_in_force", pre, sign, accepted(), pre)
    expired = replace(GOOD, now=c.expiry)
    assert steps_fire("verifier_accepts_only_in_force", expired, sign, accepted(), expired)
    card = GOOD.cert(GOOD.current_card[("P1", Kind.AUTH)])
    assert card is not None
    held = with_cert(GOOD, card, replace(card, status=CertStatus.SUSPENDED))
    assert steps_fire("verifier_accepts_only_in_force", held, A.UseCard(person="P1", kind=Kind.AUTH, sp="portal"), accepted(), held)
    # A relying party's verifier (SP-1) is judged on the serial it names: held, it must not be accepted.
    probe = A.VerifyCertificate(person="P1", kind=Kind.AUTH, profile=Profile.CARD, index=0, accept=Profile.CARD)
    assert steps_fire("verifier_accepts_only_in_force", held, probe, accepted(serial=card.serial, profile="card"), held)
    assert not steps_fire("verifier_accepts_only_in_force", GOOD, probe, accepted(serial=card.serial, profile="card"), GOOD)


def test_pin4_initialisation_on_foreign_se() -> None:
    init = A.InitialisePin(person="P1", phone="D3", kind=Kind.AUTH, new_pin="1234")
    assert steps_fire("pin_initialisation_only_on_linked_se", GOOD, init, accepted(), GOOD)
    ok = A.InitialisePin(person="P1", phone="D1", kind=Kind.AUTH, new_pin="1234")
    assert not steps_fire("pin_initialisation_only_on_linked_se", GOOD, ok, accepted(), GOOD)


def test_del1_deletion_beyond_its_target() -> None:
    post = replace(GOOD, slots=())
    # A deletion push to D3 must not touch D1.
    assert steps_fire("deletion_touches_only_its_target", GOOD, A.DeliverDeletionPush(phone="D3"), accepted(), post)
    # On D1 itself, deleting the data of live certificates is wrong too.
    assert steps_fire("deletion_touches_only_its_target", GOOD, A.DeliverDeletionPush(phone="D1"), accepted(), post)
    # The applet check (ISS-8) is allowed to clear its own phone.
    assert not steps_fire("deletion_touches_only_its_target", GOOD, A.PrepareApplet(phone="D1"), accepted(), post)


def test_time_only_moves_forward_with_advance() -> None:
    later = replace(GOOD, now=GOOD.now + 5)
    assert steps_fire("time_never_goes_back", later, A.AdvanceTime(minutes=1), accepted(), GOOD)
    assert steps_fire("time_never_goes_back", GOOD, A.UnlockScreen(phone="D1"), accepted(), later)
    assert not steps_fire("time_never_goes_back", GOOD, A.AdvanceTime(minutes=5), accepted(), later)


def test_every_invariant_has_a_test_here() -> None:
    """A new invariant needs a test in this file that shows it can fail."""
    text = Path(__file__).read_text(encoding="utf-8")
    untested = [n for n in (*STATE_INVARIANTS, *TRANSITION_INVARIANTS) if f'"{n}"' not in text]
    assert not untested, f"invariants with no failing example here: {untested}"


def test_apply_and_register_keep_the_invariants() -> None:
    """A sanity anchor: the spec's own model change leaves a clean observation."""
    state = initial_state(WORLD)
    for e in [*to_morning(), *onboard("P1", "D1")]:
        state, _ = step(WORLD, state, e.action)
    for a in (
        A.InstallApp(phone="D3"),
        A.PrepareApplet(phone="D3"),
        A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN, auth_pin="1234", consent=True),
    ):
        state, _ = step(WORLD, state, a)
    assert check_state(WORLD, observe(WORLD, state)) == []


def test_invariants_marked_quiet_are_quiet_on_every_explored_unchanged_refusal() -> None:
    """check_transition skips the invariants marked quiet_on_unchanged_refusal on a refusal that changed nothing: each
    must give nothing on every such step of an explored scope (every action the explorer tries, seeded faults aside)."""
    from mjpki.properties.explorer import Scope, alphabet, explore

    scope = Scope(persons=1, phones=2, depth=4)
    e = explore(scope, invariants=False)
    quiet = [inv for inv in TRANSITION_INVARIANTS.values() if inv.quiet_on_unchanged_refusal]
    judged = 0
    for _node, data in e.graph.nodes(data=True):
        state = data["state"]
        obs = observe(e.world, state)
        for action in alphabet(e.world, state, scope):
            after, outcome = step(e.world, state, action)
            if after is not state or outcome.ok:
                continue
            judged += 1
            for inv in quiet:
                assert inv.check(e.world, obs, action, outcome, obs) == [], (inv.name, action, outcome)
    assert judged > 1000, f"only {judged} unchanged refusals explored"


def test_check_transition_still_runs_an_invariant_that_can_fire_on_an_unchanged_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    from mjpki.properties import invariants
    from mjpki.properties.invariants import TransitionInvariant, check_transition
    from mjpki.spec.outcome import refused
    from mjpki.spec.reasons import Reason

    loud = TransitionInvariant(name="refusals_are_findings", reqs=("PIN-3",), doc="", check=lambda w, pre, a, o, post: ["refused"])
    refusal = refused(next(iter(Reason)))
    action = A.Sign(phone="D1", sp="SP1", pin="ZZZ999")
    assert check_transition(WORLD, GOOD, action, refusal, GOOD, states=False) == []
    monkeypatch.setattr(invariants, "LOUD_ON_UNCHANGED_REFUSAL", (loud,))
    assert [v.invariant for v in check_transition(WORLD, GOOD, action, refusal, GOOD, states=False)] == ["refusals_are_findings"]
