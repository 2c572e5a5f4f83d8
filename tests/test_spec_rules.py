"""Rule-level tests of the spec: guards in the right order, and what each step makes observable."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mjpki.scenarios import APIN, BOTH, SPIN, base_world, onboard, to_morning
from mjpki.spec import actions as A
from mjpki.spec import initial_state, step
from mjpki.spec.domain import AuthMethod, Kind, PinStatus, Profile
from mjpki.spec.observe import observe
from mjpki.spec.state import State
from mjpki.spec.world import World

WORLD = base_world()


def run(actions: list[A.Action], world: World = WORLD) -> State:
    state = initial_state(world)
    for a in actions:
        state, _ = step(world, state, a)
    return state


def onboarded(world: World = WORLD) -> State:
    return run([e.action for e in [*to_morning(), *onboard("P1", "D1")]], world)


def tries(state: State, kind: Kind) -> int:
    return state.phones["D1"].se.slots[kind].tries_left


def test_app_is_needed_for_phone_operations() -> None:
    """ACT-1: the phone app is the user's only way in; without it every phone operation is refused."""
    state = initial_state(WORLD)
    for a in (
        A.PrepareApplet(phone="D1"),
        A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN),
        A.Sign(phone="D1", sp="portal", pin=SPIN),
        A.RevokeFromPhone(phone="D1", kind=Kind.AUTH, pin=APIN),
    ):
        assert step(WORLD, state, a)[1].code == "APP_NOT_INSTALLED", a


def test_applet_check_installs_a_fresh_applet() -> None:
    """ACT-2, ISS-8: the SEI-TSM installs the applet (empty) after removing any leftover."""
    state = onboarded()
    assert state.phones["D1"].se.slots
    state, out = step(WORLD, state, A.InstallApp(phone="D1"))
    state, out = step(WORLD, state, A.PrepareApplet(phone="D1"))
    assert out.details["leftover_removed"] is True
    se = state.phones["D1"].se
    assert se.applet and not se.slots and se.nonce is None


@pytest.mark.parametrize(
    "action",
    [
        A.Sign(phone="D1", sp="portal", pin="WRONG9", official_app=False),
        A.Authenticate(phone="D1", sp="portal", pin="0000", official_app=False),
    ],
)
def test_unofficial_app_is_refused_before_the_pin(action: A.Action) -> None:
    """ACL-1: the access rule refuses another app; the PIN is never tried, so no retry is spent."""
    state = onboarded()
    kind = Kind.SIGNING if isinstance(action, A.Sign) else Kind.AUTH
    new, out = step(WORLD, state, action)
    assert out.code == "ACCESS_DENIED"
    assert tries(new, kind) == tries(state, kind)


def test_return_url_whitelist_and_approval() -> None:
    """ACL-2: results go only to whitelisted servers; ACL-3: private verifiers of signatures need approval."""
    state = onboarded()
    new, out = step(WORLD, state, A.Sign(phone="D1", sp="phishing", pin="WRONG9"))
    assert out.code == "SP_NOT_WHITELISTED" and tries(new, Kind.SIGNING) == tries(state, Kind.SIGNING)
    assert step(WORLD, state, A.Sign(phone="D1", sp="unapproved", pin=SPIN))[1].code == "SP_NOT_APPROVED"
    assert step(WORLD, state, A.Authenticate(phone="D1", sp="unapproved", pin=APIN))[1].ok  # approval is about signatures
    assert step(WORLD, state, A.Sign(phone="D1", sp="bank", pin=SPIN))[1].ok
    assert step(WORLD, state, A.UseCard(person="P1", kind=Kind.SIGNING, sp="unapproved"))[1].code == "SP_NOT_APPROVED"


def test_phone_and_card_certificates_are_told_apart() -> None:
    """CA-1, CA-3, SP-1, SP-2: the verifier sees the profile and the serial, so it can keep its own linkage."""
    state = onboarded()
    phone = step(WORLD, state, A.Authenticate(phone="D1", sp="portal", pin=APIN))[1]
    card = step(WORLD, state, A.UseCard(person="P1", kind=Kind.AUTH, sp="portal"))[1]
    assert phone.details["profile"] == Profile.PHONE.value and card.details["profile"] == Profile.CARD.value
    assert phone.details["serial"] != card.details["serial"]
    obs = observe(WORLD, state)
    phone_certs = [c for c in obs.certs if c.profile is Profile.PHONE]
    assert {c.kind for c in phone_certs} == {Kind.SIGNING, Kind.AUTH}
    card_signing = obs.current_card[("P1", Kind.SIGNING)]
    assert all(c.card_serial == card_signing for c in phone_certs)


def test_relying_party_checks_the_profile_before_the_status() -> None:
    """SP-1, CA-3, CA-4 (ASM-RELYING-PARTY-ORDER): a card-only or phone-only verifier reads the profile first, then the
    status at that profile's OCSP; a certificate the CA never issued is refused, never good."""
    state = onboarded()

    def verify(st: State, kind: Kind, profile: Profile, accept: Profile, index: int = 0, person: str = "P1") -> str:
        new, out = step(WORLD, st, A.VerifyCertificate(person=person, kind=kind, profile=profile, index=index, accept=accept))
        assert new is st, "a verifier changes nothing"
        return out.code

    for kind in Kind:
        for profile in Profile:
            assert verify(state, kind, profile, profile) == "ACCEPTED"
            other = Profile.CARD if profile is Profile.PHONE else Profile.PHONE
            assert verify(state, kind, profile, other) == "WRONG_PROFILE"
            assert verify(state, kind, profile, profile, index=1) == "UNKNOWN_CERTIFICATE"
            assert verify(state, kind, profile, profile, index=-1) == "UNKNOWN_CERTIFICATE"
            assert verify(state, kind, profile, other, index=1) == "WRONG_PROFILE"  # the profile before the OCSP
    assert verify(state, Kind.SIGNING, Profile.CARD, Profile.CARD, person="P3") == "UNKNOWN_CERTIFICATE"  # P3 has no card
    out = step(WORLD, state, A.VerifyCertificate(person="P1", kind=Kind.AUTH, profile=Profile.PHONE, index=0, accept=Profile.PHONE))[1]
    assert out.details["serial"] == state.phones["D1"].se.slots[Kind.AUTH].cert_serial and out.details["profile"] == "phone"
    held = step(WORLD, state, A.ReportPhoneLost(person="P1"))[0]
    assert verify(held, Kind.AUTH, Profile.PHONE, Profile.PHONE) == "CERT_SUSPENDED"
    assert verify(held, Kind.AUTH, Profile.PHONE, Profile.CARD) == "WRONG_PROFILE"
    assert verify(held, Kind.AUTH, Profile.CARD, Profile.CARD) == "ACCEPTED"  # a lost phone holds no card certificate
    renewed = step(WORLD, state, A.IssueCardCertificate(person="P1", kind=Kind.AUTH))[0]
    assert verify(renewed, Kind.AUTH, Profile.CARD, Profile.CARD) == "CERT_REVOKED"  # the superseded one
    assert verify(renewed, Kind.AUTH, Profile.CARD, Profile.CARD, index=1) == "ACCEPTED"
    expired = step(WORLD, renewed, A.AdvanceTime(minutes=40 * 365 * 24 * 60))[0]
    assert verify(expired, Kind.AUTH, Profile.CARD, Profile.CARD) == "CERT_EXPIRED"  # the validity period before the status


def test_wrong_pin_counts_down_and_a_right_one_restores() -> None:
    """PIN-3 (ASM-PIN-RESET-BY-CORRECT-ENTRY)."""
    state = onboarded()
    for left in (4, 3):
        state, out = step(WORLD, state, A.Sign(phone="D1", sp="portal", pin="WRONG9"))
        assert out.code == "WRONG_PIN" and out.details["tries_left"] == left
    state, out = step(WORLD, state, A.Sign(phone="D1", sp="portal", pin=SPIN))
    assert out.ok and tries(state, Kind.SIGNING) == 5
    for _ in range(5):
        state, out = step(WORLD, state, A.Sign(phone="D1", sp="portal", pin="WRONG9"))
    assert out.details["tries_left"] == 0 and state.phones["D1"].se.slots[Kind.SIGNING].pin_status is PinStatus.LOCKED
    assert step(WORLD, state, A.Sign(phone="D1", sp="portal", pin=SPIN))[1].code == "PIN_LOCKED"


def test_pin_limits_are_a_variant() -> None:
    """PIN-3: the retry limits follow the variant settings."""
    from mjpki.spec import Variants

    world = replace(WORLD, variants=Variants(auth_pin_tries=2))
    state = onboarded(world)
    state, out = step(world, state, A.Authenticate(phone="D1", sp="portal", pin="0000"))
    assert out.details["tries_left"] == 1


def test_biometrics_do_not_bypass_a_locked_pin() -> None:
    """PIN-3 with PIN-6: a locked auth PIN blocks the key whatever unlocks it."""
    state = onboarded()
    for a in (A.EnrollOsAuth(phone="D1", pin=APIN), A.UnlockScreen(phone="D1")):
        state, _ = step(WORLD, state, a)
    for _ in range(3):
        state, _ = step(WORLD, state, A.Authenticate(phone="D1", sp="portal", pin="0000"))
    out = step(WORLD, state, A.Authenticate(phone="D1", sp="portal", method=AuthMethod.BIOMETRIC))[1]
    assert out.code == "PIN_LOCKED"


def test_unknown_identifiers_are_argument_errors() -> None:
    """A step naming a person, phone or verifier the world lacks is a caller error, not an outcome."""
    state = initial_state(WORLD)
    with pytest.raises(ValueError, match="unknown phone 'D9'"):
        step(WORLD, state, A.InstallApp(phone="D9"))
    with pytest.raises(ValueError, match="unknown service provider"):
        step(WORLD, state, A.Sign(phone="D1", sp="nobody", pin=SPIN))
    with pytest.raises(TypeError):
        step(WORLD, state, "InstallApp")  # type: ignore[arg-type]


def test_model_change_deletion_is_addressed_to_the_old_token() -> None:
    """MCH-2: the deletion request carries the token of the app that registered, not the current one."""
    state = onboarded()
    token = state.phones["D1"].app_token
    for a in (
        A.InstallApp(phone="D3"),
        A.PrepareApplet(phone="D3"),
        A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN, consent=True),
    ):
        state, out = step(WORLD, state, a)
        assert out.ok, (a, out)
    (deletion,) = state.deletions.values()
    assert deletion.push_token == token and deletion.phone == "D1"
    assert deletion.deadline == state.now + 48 * 60


def test_os_authentication_presents_the_pin_and_restores_tries() -> None:
    """PIN-6 with PIN-3 (ASM-OS-AUTH-PRESENTS-PIN): a successful biometric use resets the count like a typed PIN."""
    state = onboarded()
    for a in (A.EnrollOsAuth(phone="D1", pin=APIN), A.UnlockScreen(phone="D1")):
        state, _ = step(WORLD, state, a)
    state, out = step(WORLD, state, A.Authenticate(phone="D1", sp="portal", pin="0000"))
    assert out.details["tries_left"] == 2
    state, out = step(WORLD, state, A.Authenticate(phone="D1", sp="portal", method=AuthMethod.BIOMETRIC))
    assert out.ok and tries(state, Kind.AUTH) == 3


def test_resume_from_app_needs_an_applet_for_the_new_signing_key() -> None:
    """SUS-3 with ISS-8: the re-issued signing key is made in the SE, so an SE without the applet is refused first."""
    default = onboarded()
    for a in (A.ReportCardLost(person="P1"), A.CardFound(person="P1")):
        default, _ = step(WORLD, default, a)
    no_applet = default.with_phone("D1", se=replace(default.phones["D1"].se, applet=False))
    assert step(WORLD, no_applet, A.ResumeFromApp(person="P1", phone="D1", signing_pin="XYZ789"))[1].code == "APPLET_NOT_READY"
