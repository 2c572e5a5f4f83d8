"""Named scenarios: every flow the sources describe, as steps with the outcome each must have.

Each scenario is a world and a list of expected steps. The spec must produce exactly these
outcome codes (and the listed details); later, every system under test must too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import DAY, HOUR, fifth_birthday_expiry, from_datetime
from mjpki.spec.domain import AuthMethod, Kind, Profile, SPKind
from mjpki.spec.world import PersonSpec, PhoneSpec, ServiceProviderSpec, World

__all__ = ["Expect", "Scenario", "SCENARIOS", "scenario", "base_world", "boundary_world"]

SIGNING, AUTH = Kind.SIGNING, Kind.AUTH
BOTH = frozenset({SIGNING, AUTH})
SPIN, APIN = "ABC123", "1234"  # P1's phone PINs
SPIN2, APIN2 = "XYZ789", "5678"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """A step and the outcome it must have: a code and, optionally, some details."""

    action: A.Action
    code: str = "ACCEPTED"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A named flow: its id, what it shows, the requirements it exercises, its world and steps."""

    id: str
    title: str
    reqs: tuple[str, ...]
    world: World
    steps: tuple[Expect, ...]


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    sid: str, title: str, *, reqs: tuple[str, ...], world: World | None = None
) -> Callable[[Callable[[], list[Expect]]], Callable[[], list[Expect]]]:
    """Register a scenario; an id used twice is an error, as is one with no steps."""

    def wrap(fn: Callable[[], list[Expect]]) -> Callable[[], list[Expect]]:
        if sid in SCENARIOS:
            raise ValueError(f"scenario id {sid!r} is used twice")
        steps = tuple(fn())
        if not steps:
            raise ValueError(f"scenario {sid!r} has no steps")
        SCENARIOS[sid] = Scenario(id=sid, title=title, reqs=reqs, world=world or base_world(), steps=steps)
        return fn

    return wrap


def base_world(**variants: Any) -> World:
    """P1, P2 with cards, P3 without; D1 (P1), D2 (P2), D3 (P1), D4 Android 10 no Class 3 bio (P1), D5 Android 8."""
    return World(
        persons=(
            PersonSpec(id="P1", birth=date(1990, 6, 15)),
            PersonSpec(id="P2", birth=date(1985, 11, 3)),
            PersonSpec(id="P3", birth=date(2000, 2, 29), has_card=False),
        ),
        phones=(
            PhoneSpec(id="D1", se_id="SE-0001", initial_holder="P1"),
            PhoneSpec(id="D2", se_id="SE-0002", initial_holder="P2"),
            PhoneSpec(id="D3", se_id="SE-0003", initial_holder="P1"),
            PhoneSpec(id="D4", se_id="SE-0004", android=10, biometric_class3=False, initial_holder="P1"),
            PhoneSpec(id="D5", se_id="SE-0005", android=8, initial_holder="P1"),
        ),
        service_providers=(
            ServiceProviderSpec(id="portal"),
            ServiceProviderSpec(id="bank", kind=SPKind.PRIVATE, approved=True),
            ServiceProviderSpec(id="unapproved", kind=SPKind.PRIVATE, approved=False),
            ServiceProviderSpec(id="phishing", kind=SPKind.PRIVATE, approved=False, whitelisted=False),
        ),
        variants=Variants(**variants),
    )


def boundary_world(**variants: Any) -> World:
    """base_world's persons and providers with a phone at every eligibility and biometrics boundary (ACT-3, PIN-6).

    P1 holds D1 (Android 13), D3 (11: the OS credential stands in), D4 (10: Class 3 biometrics only), D5 (9: the
    oldest that qualifies, biometrics not Class 3) and D8 (no GP-SE); P2 holds D2 (13), D6 (Android 8) and D7 (no NFC).
    """
    world = base_world(**variants)
    phones = (
        PhoneSpec(id="D1", se_id="SE-0001", initial_holder="P1"),
        PhoneSpec(id="D2", se_id="SE-0002", initial_holder="P2"),
        PhoneSpec(id="D3", se_id="SE-0003", android=11, initial_holder="P1"),
        PhoneSpec(id="D4", se_id="SE-0004", android=10, initial_holder="P1"),
        PhoneSpec(id="D5", se_id="SE-0005", android=9, biometric_class3=False, initial_holder="P1"),
        PhoneSpec(id="D6", se_id="SE-0006", android=8, initial_holder="P2"),
        PhoneSpec(id="D7", se_id="SE-0007", nfc=False, initial_holder="P2"),
        PhoneSpec(id="D8", se_id="SE-0008", gp_se=False, initial_holder="P1"),
    )
    return World(persons=world.persons, phones=phones, service_providers=world.service_providers, variants=world.variants)


def E(action: A.Action, code: str = "ACCEPTED", **details: Any) -> Expect:
    """Shorthand for an expected step."""
    return Expect(action=action, code=code, details=details)


def to_morning() -> list[Expect]:
    """Time 0 is 00:00; move to 09:00, inside the push window."""
    return [E(A.AdvanceTime(minutes=9 * HOUR))]


def onboard(person: str, phone: str, kinds: frozenset[Kind] = BOTH, spin: str = SPIN, apin: str = APIN) -> list[Expect]:
    """Install, applet check, apply in the push window, push, register, set PINs."""
    steps = [
        E(A.InstallApp(phone=phone)),
        E(A.PrepareApplet(phone=phone)),
        E(
            A.Apply(
                person=person,
                phone=phone,
                kinds=kinds,
                signing_pin=spin if SIGNING in kinds else None,
                auth_pin=apin if AUTH in kinds else None,
            )
        ),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person=person)),
        E(A.Register(person=person, phone=phone)),
    ]
    steps += [E(A.SetPin(phone=phone, kind=k)) for k in sorted(kinds, key=lambda k: k.value)]
    return steps


def sign(phone: str, code: str = "ACCEPTED", pin: str = SPIN, sp: str = "portal", **details: Any) -> Expect:
    return E(A.Sign(phone=phone, sp=sp, pin=pin), code, **details)


def auth(phone: str, code: str = "ACCEPTED", pin: str = APIN, sp: str = "portal", **details: Any) -> Expect:
    return E(A.Authenticate(phone=phone, sp=sp, pin=pin), code, **details)


# --- issuance ---------------------------------------------------------------------------------------


# CA-5 (RSA-2048, PKCS#1 v1.5) and ISS-9 (SCP03) are facts about the cryptography that the
# abstract spec cannot see; this scenario carries them so that runs on an implementation do.
@scenario(
    "issue-both-kinds",
    "Issue both phone certificates and use them",
    reqs=("ISS-1", "ISS-5", "ISS-6", "ISS-7", "PIN-2", "CA-1", "CA-5", "ISS-9", "ACL-1", "ACL-2", "ACL-3"),
)
def _issue_both() -> list[Expect]:
    return [
        *to_morning(),
        E(A.InstallApp(phone="D1")),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), "APPLET_NOT_READY"),
        E(A.PrepareApplet(phone="D1"), leftover_removed=False),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), push_due=9 * HOUR + 5),
        E(A.DeliverIssuancePush(person="P1"), "PUSH_NOT_DUE"),
        E(A.Register(person="P1", phone="D1"), "NOT_NOTIFIED"),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
        sign("D1", "PIN_NOT_SET"),
        E(A.SetPin(phone="D1", kind=SIGNING)),
        E(A.SetPin(phone="D1", kind=AUTH)),
        E(A.SetPin(phone="D1", kind=AUTH), "NO_PIN_PENDING"),
        sign("D1", profile="phone"),
        auth("D1", profile="phone"),
        sign("D1", sp="bank"),
        sign("D1", "SP_NOT_APPROVED", sp="unapproved"),
        auth("D1", sp="unapproved"),
        sign("D1", "SP_NOT_WHITELISTED", sp="phishing"),
        E(A.Sign(phone="D1", sp="portal", pin=SPIN, official_app=False), "ACCESS_DENIED"),
        E(A.Sign(phone="D1", sp="portal", method=AuthMethod.BIOMETRIC), "OS_AUTH_NOT_ALLOWED"),
    ]


@scenario("apply-refusals", "Applications that must be refused", reqs=("LNK-1", "ISS-2", "PIN-1", "ACT-3", "LNK-5"))
def _apply_refusals() -> list[Expect]:
    ap = A.Apply
    return [
        *to_morning(),
        E(A.InstallApp(phone="D1")),
        E(A.PrepareApplet(phone="D1")),
        E(ap(person="P1", phone="D1", kinds=frozenset()), "NO_KIND_SELECTED"),
        E(ap(person="P1", phone="D1", kinds=BOTH, signing_pin="abc123", auth_pin=APIN), "PIN_FORMAT_INVALID", kind="signing"),
        E(ap(person="P1", phone="D1", kinds=BOTH, signing_pin="ABCDEF", auth_pin=APIN), "PIN_FORMAT_INVALID", kind="signing"),
        E(ap(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin="12345"), "PIN_FORMAT_INVALID", kind="auth"),
        E(ap(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN, card_signature_valid=False), "CARD_SIGNATURE_INVALID"),
        E(A.SetOnline(phone="D1", online=False)),
        E(ap(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), "DEVICE_OFFLINE"),
        E(A.SetOnline(phone="D1", online=True)),
        E(A.RevokeCardCertificate(person="P1", kind=SIGNING)),
        E(ap(person="P1", phone="D1", kinds=frozenset({AUTH}), auth_pin=APIN), "CARD_SIGNING_CERT_NOT_VALID"),
        E(A.IssueCardCertificate(person="P1", kind=SIGNING)),
        E(ap(person="P1", phone="D1", kinds=frozenset({AUTH}), auth_pin=APIN)),
        E(A.InstallApp(phone="D5")),
        E(A.PrepareApplet(phone="D5"), "DEVICE_NOT_ELIGIBLE"),
    ]


@scenario("one-kind-then-other", "Signing first, auth later on the same phone", reqs=("LNK-5", "LNK-4", "LNK-3"))
def _one_then_other() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1", frozenset({SIGNING})),
        auth("D1", "NO_CERTIFICATE"),
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({AUTH}), auth_pin=APIN), revoked=(), deletion_warning=False),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
        E(A.SetPin(phone="D1", kind=AUTH)),
        sign("D1"),
        auth("D1"),
        # Asking for signing again on the same phone replaces the old one, with consent (ISS-4).
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({SIGNING}), signing_pin=SPIN2), "CONSENT_REQUIRED"),
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({SIGNING}), signing_pin=SPIN2, consent=True)),
        sign("D1", "CERT_REVOKED"),
        auth("D1"),
    ]


@scenario("outside-push-window", "An application at 21:00 is notified at 08:00 the next day", reqs=("ISS-7", "OPS-2"))
def _outside_window() -> list[Expect]:
    return [
        E(A.AdvanceTime(minutes=21 * HOUR)),
        E(A.InstallApp(phone="D1")),
        E(A.PrepareApplet(phone="D1")),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), push_due=DAY + 8 * HOUR),
        E(A.AdvanceTime(minutes=10)),
        E(A.DeliverIssuancePush(person="P1"), "PUSH_NOT_DUE", push_due=DAY + 8 * HOUR),
        E(A.AdvanceTime(minutes=11 * HOUR - 10 - 1)),
        E(A.DeliverIssuancePush(person="P1"), "PUSH_NOT_DUE"),
        E(A.AdvanceTime(minutes=1)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
    ]


@scenario("commitment-binds-the-se", "Registering from another phone fails the H(R)=S check", reqs=("ISS-6", "ISS-2", "LNK-6"))
def _commitment() -> list[Expect]:
    return [
        *to_morning(),
        E(A.InstallApp(phone="D1")),
        E(A.PrepareApplet(phone="D1")),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN)),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D3"), "COMMITMENT_MISMATCH"),
        # A superseding application on D3 makes D1's R stale (ASM-ONE-PENDING-APPLICATION).
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN)),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1"), "COMMITMENT_MISMATCH"),
        E(A.Register(person="P1", phone="D3")),
    ]


# --- model change -------------------------------------------------------------------------------------


@scenario(
    "model-change-old-online",
    "Model change; the old phone is online and deletes its keys",
    reqs=("MCH-1", "MCH-2", "MCH-4", "REV-3", "DEL-1"),
)
def _model_change_online() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2), "CONSENT_REQUIRED"),
        # MCH-3: the app warns that the old phone's data stays if the deletion cannot reach it (ASM-DELETION-WARNING).
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True), deletion_warning=True),
        sign("D1", "CERT_REVOKED"),
        E(A.DeliverDeletionPush(phone="D1"), deleted=("auth", "signing")),
        sign("D1", "NO_CERTIFICATE"),
        E(A.DeliverDeletionPush(phone="D1"), "NO_PENDING_DELETION"),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D3")),
        E(A.SetPin(phone="D3", kind=SIGNING)),
        sign("D3", pin=SPIN2),
    ]


@scenario("model-change-old-offline", "Model change; the old phone stays offline past 48 hours", reqs=("MCH-2", "MCH-3", "REV-5", "DEL-3"))
def _model_change_offline() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.SetOnline(phone="D1", online=False)),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True)),
        E(A.DeliverDeletionPush(phone="D1"), "DEVICE_OFFLINE"),
        E(A.AdvanceTime(minutes=48 * HOUR), deletions_failed=("D1",)),
        E(A.SetOnline(phone="D1", online=True)),
        E(A.DeliverDeletionPush(phone="D1"), "NO_PENDING_DELETION"),
        # The keys are left on the old phone; they still sign, but no verifier accepts (REV-5).
        sign("D1", "CERT_REVOKED"),
        auth("D1", "CERT_REVOKED"),
        # Stopping use from the old phone still deletes the leftovers (ASM-REVOKE-FROM-PHONE-PER-KIND).
        E(A.RevokeFromPhone(phone="D1", kind=SIGNING, pin=SPIN), revoked=(), deleted=("signing",)),
    ]


@scenario(
    "deletion-late-within-48-hours",
    "Model change; the old phone comes online an hour before the 48-hour deadline and still deletes its keys",
    reqs=("MCH-2", "MCH-3", "MCH-4"),
)
def _deletion_late() -> list[Expect]:
    # Between a too-short deadline and the right one (issue 15): nothing has failed at 47 h, the push still deletes.
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.SetOnline(phone="D1", online=False)),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True), deletion_warning=True),
        E(A.AdvanceTime(minutes=47 * HOUR), deletions_failed=()),
        E(A.SetOnline(phone="D1", online=True)),
        E(A.DeliverDeletionPush(phone="D1"), deleted=("auth", "signing")),
        E(A.AdvanceTime(minutes=HOUR), deletions_failed=()),
    ]


@scenario(
    "deletion-after-the-slot-changed-hands",
    "A deletion queued for the old phone arrives after the person moved back to it: it deletes the old keys only",
    reqs=("DEL-1", "MCH-2", "MCH-4", "LNK-3"),
)
def _deletion_after_slot_changed() -> list[Expect]:
    # D1's slots hold new certificates by the time D1's deletion (of the old serials) arrives: nothing of them is deleted.
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True), deletion_warning=True),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D3")),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN, consent=True), deletion_warning=True),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
        E(A.SetPin(phone="D1", kind=SIGNING)),
        E(A.DeliverDeletionPush(phone="D1"), deleted=()),
        sign("D1"),
        E(A.DeliverDeletionPush(phone="D3"), deleted=("auth", "signing")),
    ]


@scenario(
    "model-change-app-reinstalled", "Remote deletion addressed to the old app's token fails after a reinstall", reqs=("MCH-2", "MCH-3")
)
def _model_change_token() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.InstallApp(phone="D1")),  # reinstall: a new token
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True)),
        E(A.DeliverDeletionPush(phone="D1"), "PUSH_TOKEN_INVALID"),
    ]


@scenario("auth-on-other-phone-is-model-change", "Adding auth on a different phone moves everything", reqs=("LNK-4", "LNK-5", "MCH-1"))
def _other_phone() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1", frozenset({SIGNING})),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=frozenset({AUTH}), auth_pin=APIN), "CONSENT_REQUIRED"),
        E(A.Apply(person="P1", phone="D3", kinds=frozenset({AUTH}), auth_pin=APIN, consent=True)),
        sign("D1", "CERT_REVOKED"),
    ]


# --- lost phone, lost card ------------------------------------------------------------------------------


@scenario(
    "lost-phone-found",
    "Lost phone: call centre suspends; found: auth resumes, signing is revoked",
    reqs=("SUS-1", "SUS-3", "SUS-4", "OPS-1"),
)
def _lost_phone() -> list[Expect]:
    return [
        E(A.AdvanceTime(minutes=9 * HOUR)),
        *onboard("P1", "D1"),
        E(A.AdvanceTime(minutes=14 * HOUR)),  # 23:10: the call centre answers at any hour
        E(A.ReportPhoneLost(person="P1")),
        sign("D1", "CERT_SUSPENDED"),
        auth("D1", "CERT_SUSPENDED"),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal")),
        E(A.PhoneFound(person="P1")),
        auth("D1"),
        sign("D1", "CERT_REVOKED"),
        E(A.PhoneFound(person="P1"), "NOTHING_SUSPENDED"),
    ]


@scenario(
    "lost-card-found",
    "Lost card: card and phone certificates suspended; found: auth resumes, signing re-issued and registered",
    reqs=("SUS-2", "SUS-3", "SUS-4", "LNK-6"),
)
def _lost_card() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ReportCardLost(person="P1")),
        auth("D1", "CERT_SUSPENDED"),
        E(A.UseCard(person="P1", kind=AUTH, sp="portal"), "CERT_SUSPENDED"),
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin=SPIN2), "CARD_SIGNING_CERT_NOT_VALID"),
        E(A.CardFound(person="P1")),
        E(A.UseCard(person="P1", kind=AUTH, sp="portal")),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal")),
        auth("D1", "CERT_SUSPENDED"),
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin="bad"), "PIN_FORMAT_INVALID"),
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin=SPIN2)),
        auth("D1"),
        sign("D1", "CERT_REVOKED"),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
        E(A.SetPin(phone="D1", kind=SIGNING)),
        sign("D1", pin=SPIN2),
        # The new card signing certificate's linkage lets PIN initialisation work on D1 (PIN-4).
        E(A.InitialisePin(person="P1", phone="D1", kind=AUTH, new_pin=APIN2)),
        E(A.SetPin(phone="D1", kind=AUTH)),
        auth("D1", pin=APIN2),
    ]


# --- relying parties -----------------------------------------------------------------------------------------


@scenario(
    "verifier-tells-phone-from-card",
    "A relying party's verifier takes only the profile it accepts, asks that profile's OCSP for the status, and never "
    "accepts a certificate the CA did not issue",
    reqs=("SP-1", "CA-3", "CA-4", "REV-5", "SUS-4", "VAL-3"),
)
def _verifier_profiles() -> list[Expect]:
    card, phone = Profile.CARD, Profile.PHONE
    end = fifth_birthday_expiry(date(1990, 6, 15), 0)  # P1's card certificates, and the phone ones that took their expiry

    def verify(kind: Kind, profile: Profile, accept: Profile, code: str = "ACCEPTED", index: int = 0, person: str = "P1") -> Expect:
        details = {"profile": profile.value} if code in ("ACCEPTED", "WRONG_PROFILE") else {}
        return E(A.VerifyCertificate(person=person, kind=kind, profile=profile, index=index, accept=accept), code, **details)

    steps = [*to_morning(), *onboard("P1", "D1")]
    for kind in (SIGNING, AUTH):
        # SP-1, CA-3: each certificate in force is taken by the verifier of its profile and refused by the other.
        steps += [
            verify(kind, card, card),
            verify(kind, phone, phone),
            verify(kind, card, phone, "WRONG_PROFILE"),
            verify(kind, phone, card, "WRONG_PROFILE"),
        ]
    return [
        *steps,
        # CA-4: a certificate under the CA's name that it never issued: its OCSP answers unknown, which is never good.
        verify(SIGNING, phone, phone, "UNKNOWN_CERTIFICATE", index=1),
        verify(AUTH, card, card, "UNKNOWN_CERTIFICATE", index=1),
        verify(SIGNING, card, card, "UNKNOWN_CERTIFICATE", person="P3"),  # P3 has no card at all
        verify(AUTH, phone, card, "WRONG_PROFILE", index=1),  # ASM-RELYING-PARTY-ORDER: the profile before the OCSP
        E(A.ReportPhoneLost(person="P1")),
        verify(AUTH, phone, phone, "CERT_SUSPENDED"),  # SUS-4, at the phone responder
        verify(AUTH, phone, card, "WRONG_PROFILE"),
        verify(AUTH, card, card),  # a lost phone holds no card certificate
        E(A.PhoneFound(person="P1")),
        verify(SIGNING, phone, phone, "CERT_REVOKED"),  # REV-5: SUS-3 revoked the phone signing certificate
        verify(AUTH, phone, phone),
        E(A.ReportCardLost(person="P1")),
        verify(SIGNING, card, card, "CERT_SUSPENDED"),
        verify(AUTH, phone, phone, "CERT_SUSPENDED"),  # SUS-2: it follows the card signing certificate
        E(A.CardFound(person="P1")),
        verify(SIGNING, card, card, "CERT_REVOKED"),  # the held one, revoked on the card's finding
        verify(SIGNING, card, card, index=1),  # and the one re-issued for it
        verify(SIGNING, card, phone, "WRONG_PROFILE", index=1),
        verify(AUTH, card, card),
        E(A.AdvanceTime(minutes=end - (9 * HOUR + 5))),
        verify(AUTH, card, card, "CERT_EXPIRED"),  # VAL-3, before any status is asked
        verify(AUTH, phone, phone, "CERT_EXPIRED"),
        verify(SIGNING, phone, phone, "CERT_EXPIRED"),  # expired and revoked: the validity period is checked first
    ]


# --- revocation and cascade ------------------------------------------------------------------------------


@scenario("revoke-from-phone", "Stop using the phone: revoke with the phone PIN, no card; data deleted", reqs=("REV-1", "REV-3", "REV-4"))
def _revoke_from_phone() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.RevokeFromPhone(phone="D1", kind=SIGNING, pin="WRONG1"), "WRONG_PIN", tries_left=4),
        E(A.RevokeFromPhone(phone="D1", kind=SIGNING, pin=SPIN), deleted=("signing",)),
        sign("D1", "NO_CERTIFICATE"),
        auth("D1"),
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin=APIN), deleted=("auth",)),
        auth("D1", "NO_CERTIFICATE"),
        E(A.RevokeWithCard(person="P1"), "NOTHING_TO_REVOKE"),
    ]


@scenario("cascade-after-delay", "Card signing revoked: the phone certificates follow after the cascade delay", reqs=("REV-2", "REV-5"))
def _cascade() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ChangePersonalData(person="P1")),
        sign("D1"),
        E(A.AdvanceTime(minutes=24 * HOUR - 1), cascaded=()),
        auth("D1"),
        E(A.AdvanceTime(minutes=1)),
        auth("D1", "CERT_REVOKED"),
        sign("D1", "CERT_REVOKED"),
    ]


@scenario(
    "renewal-during-cascade-delay",
    "A new application during the cascade delay still revokes the old phone certificates",
    reqs=("ISS-3", "ISS-4", "LNK-3", "VAL-3"),
)
def _renewal_cascade() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.IssueCardCertificate(person="P1", kind=SIGNING)),
        auth("D1"),  # the old phone certificates are still in force until the sweep
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), "CONSENT_REQUIRED"),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN, consent=True)),
        auth("D1", "CERT_REVOKED"),
    ]


@scenario(
    "card-auth-revocation-does-not-cascade",
    "As launched, only the card signing certificate carries the linkage (phone_linkage card_signing)",
    reqs=("LNK-2", "REV-2"),
)
def _card_auth_revocation() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.RevokeCardCertificate(person="P1", kind=AUTH)),
        E(A.AdvanceTime(minutes=2 * DAY), cascaded=()),
        auth("D1"),
        # Nothing the phone certificates need comes from the card auth certificate.
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({AUTH}), auth_pin=APIN2, consent=True)),
    ]


@scenario(
    "card-auth-revocation-cascades-per-kind",
    "Linkage per kind: revoking the card auth certificate revokes the phone auth certificate only",
    reqs=("LNK-2", "LNK-1", "REV-2", "VAL-1"),
    world=base_world(phone_linkage="per_kind"),
)
def _card_auth_per_kind() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.RevokeCardCertificate(person="P1", kind=AUTH)),
        auth("D1"),  # until the sweep, after the cascade delay (REV-2)
        # A phone auth certificate would follow a revoked card certificate: not issued (ASM-PHONE-LINKAGE).
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({AUTH}), auth_pin=APIN2, consent=True), "CARD_AUTH_CERT_NOT_VALID"),
        E(A.AdvanceTime(minutes=DAY)),
        auth("D1", "CERT_REVOKED"),
        sign("D1"),
        E(A.IssueCardCertificate(person="P1", kind=AUTH)),
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({AUTH}), auth_pin=APIN2)),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
        E(A.SetPin(phone="D1", kind=AUTH)),
        auth("D1", pin=APIN2),
        # The card signing certificate's revocation now reaches the phone signing certificate only.
        E(A.ChangePersonalData(person="P1")),
        E(A.AdvanceTime(minutes=DAY)),
        sign("D1", "CERT_REVOKED"),
        auth("D1", pin=APIN2),
    ]


@scenario(
    "card-auth-revocation-cascades-either",
    "Linkage to either card certificate: revoking the card auth certificate revokes both phone certificates",
    reqs=("LNK-2", "LNK-1", "REV-2"),
    world=base_world(phone_linkage="either"),
)
def _card_auth_either() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.RevokeCardCertificate(person="P1", kind=AUTH)),
        E(A.AdvanceTime(minutes=DAY)),
        auth("D1", "CERT_REVOKED"),
        sign("D1", "CERT_REVOKED"),
        # Every phone certificate follows the card auth certificate too, so none is issued without one in force.
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({SIGNING}), signing_pin=SPIN2), "CARD_AUTH_CERT_NOT_VALID"),
        E(A.IssueCardCertificate(person="P1", kind=AUTH)),
        E(A.Apply(person="P1", phone="D1", kinds=frozenset({SIGNING}), signing_pin=SPIN2)),
        # Renewing the card auth certificate before registration: the registration follows the new one.
        E(A.IssueCardCertificate(person="P1", kind=AUTH)),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),
        E(A.SetPin(phone="D1", kind=SIGNING)),
        sign("D1", pin=SPIN2),
        E(A.RevokeCardCertificate(person="P1", kind=AUTH)),
        E(A.AdvanceTime(minutes=DAY)),
        sign("D1", "CERT_REVOKED", pin=SPIN2),
    ]


# --- PINs -----------------------------------------------------------------------------------------------


@scenario(
    "pin-lock-and-initialise",
    "Auth PIN locks after 3 wrong entries; initialisation on one's own phone only",
    reqs=("PIN-3", "PIN-4", "PIN-5", "PIN-2"),
)
def _pin_lock() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.InstallApp(phone="D3")),
        auth("D1", "WRONG_PIN", pin="0000", tries_left=2),
        auth("D1", pin=APIN),
        auth("D1", "WRONG_PIN", pin="0000", tries_left=2),
        auth("D1", "WRONG_PIN", pin="0000", tries_left=1),
        auth("D1", "WRONG_PIN", pin="0000", tries_left=0),
        auth("D1", "PIN_LOCKED", pin=APIN),
        E(A.ChangePin(phone="D1", kind=AUTH, old_pin=APIN, new_pin=APIN2), "PIN_LOCKED"),
        E(A.InitialisePin(person="P1", phone="D3", kind=AUTH, new_pin=APIN2), "SE_ID_MISMATCH"),
        E(A.InitialisePin(person="P1", phone="D1", kind=AUTH, new_pin="99"), "PIN_FORMAT_INVALID"),
        E(A.InitialisePin(person="P1", phone="D1", kind=AUTH, new_pin=APIN2, card_signature_valid=False), "CARD_SIGNATURE_INVALID"),
        E(A.InitialisePin(person="P1", phone="D1", kind=AUTH, new_pin=APIN2)),
        auth("D1", "PIN_NOT_SET", pin=APIN2),
        E(A.SetPin(phone="D1", kind=AUTH)),
        auth("D1", pin=APIN2),
        E(A.ChangePin(phone="D1", kind=AUTH, old_pin=APIN2, new_pin="12a4"), "PIN_FORMAT_INVALID"),
        E(A.ChangePin(phone="D1", kind=AUTH, old_pin=APIN2, new_pin=APIN)),
        auth("D1", pin=APIN),
        E(A.ChangePin(phone="D1", kind=SIGNING, old_pin="WRONG1", new_pin=SPIN2), "WRONG_PIN", tries_left=4),
    ]


@scenario("pin-init-on-someone-elses-phone", "P2 cannot initialise P1's PIN, nor P1 on P2's phone", reqs=("PIN-4", "DEL-1"))
def _pin_init_foreign() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        *onboard("P2", "D2", spin=SPIN2, apin=APIN2),
        E(A.InitialisePin(person="P2", phone="D1", kind=AUTH, new_pin="0000"), "NOT_PHONE_HOLDER"),
        E(A.TransferPhone(phone="D2", to="P1")),
        E(A.InitialisePin(person="P1", phone="D2", kind=AUTH, new_pin="0000"), "SE_ID_MISMATCH"),
        auth("D2", pin=APIN2),
    ]


@scenario("biometrics-rules", "OS screen lock and biometrics for the auth key by Android version and 72-hour rule", reqs=("PIN-6",))
def _biometrics() -> list[Expect]:
    bio = AuthMethod.BIOMETRIC
    osc = AuthMethod.OS_CREDENTIAL
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.Authenticate(phone="D1", sp="portal", method=bio), "OS_AUTH_NOT_ENROLLED"),
        E(A.EnrollOsAuth(phone="D1", pin="0000"), "WRONG_PIN", tries_left=2),
        E(A.EnrollOsAuth(phone="D1", pin=APIN)),
        E(A.Authenticate(phone="D1", sp="portal", method=bio), "PRIMARY_AUTH_REQUIRED"),
        E(A.UnlockScreen(phone="D1")),
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),
        E(A.AdvanceTime(minutes=72 * HOUR)),
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),
        E(A.AdvanceTime(minutes=1)),
        E(A.Authenticate(phone="D1", sp="portal", method=bio), "PRIMARY_AUTH_REQUIRED"),
        E(A.Authenticate(phone="D1", sp="portal", method=osc)),
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),
        E(A.Sign(phone="D1", sp="portal", method=bio), "OS_AUTH_NOT_ALLOWED"),
        # Android 10 without Class 3 biometrics: neither the OS credential nor biometrics.
        E(A.RevokeWithCard(person="P1"), deletion_warning=True),
        *onboard("P1", "D4"),
        E(A.EnrollOsAuth(phone="D4", pin=APIN), "OS_AUTH_NOT_ALLOWED"),
        E(A.Authenticate(phone="D4", sp="portal", method=osc), "OS_AUTH_NOT_ALLOWED"),
        E(A.Authenticate(phone="D4", sp="portal", method=bio), "BIOMETRIC_NOT_CLASS3"),
        auth("D4"),
    ]


# --- second-hand phones, reset, transfer -------------------------------------------------------------------


@scenario(
    "second-hand-phone-leftover-applet",
    "A second-hand phone's leftover applet is removed before a new holder applies",
    reqs=("ISS-8", "DEL-3", "REV-5"),
)
def _second_hand() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ChangePersonalData(person="P1")),
        E(A.AdvanceTime(minutes=DAY)),
        E(A.TransferPhone(phone="D1", to="P2")),
        # The new holder knows the old PIN by chance: the SE signs, the verifier refuses.
        sign("D1", "CERT_REVOKED"),
        E(A.InstallApp(phone="D1")),
        E(A.PrepareApplet(phone="D1"), leftover_removed=True, removed=("auth", "signing")),
        sign("D1", "NO_CERTIFICATE"),
        E(A.Apply(person="P2", phone="D1", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2)),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P2")),
        E(A.Register(person="P2", phone="D1")),
    ]


@scenario(
    "factory-reset-keeps-certificate", "Factory reset (as launched) leaves the certificate and keys in the SE", reqs=("DEL-2", "MCH-3")
)
def _reset_default() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.FactoryReset(phone="D1"), se_wiped=False),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True)),
        E(A.DeliverDeletionPush(phone="D1"), "PUSH_TOKEN_INVALID"),
        E(A.InstallApp(phone="D1")),
        sign("D1", "CERT_REVOKED"),
    ]


@scenario(
    "factory-reset-wipes-se",
    "Factory reset with the design study's SE wipe (variant factory_reset_wipes_se)",
    reqs=("DEL-2",),
    world=base_world(factory_reset_wipes_se=True),
)
def _reset_wipes() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.FactoryReset(phone="D1"), se_wiped=True),
        E(A.InstallApp(phone="D1")),
        sign("D1", "NO_CERTIFICATE"),
        E(A.ReportPhoneLost(person="P1")),
    ]


# --- validity ------------------------------------------------------------------------------------------


@scenario("expiry-on-fifth-birthday", "Phone certificates expire with the card, after the 5th birthday", reqs=("VAL-1", "VAL-2", "VAL-3"))
def _expiry() -> list[Expect]:
    # P1 is born 15 June 1990. Card certificates issued 1 April 2026: the 1st birthday after
    # issuance is 15 June 2026, the 5th is 15 June 2030; they expire at 00:00 on 16 June 2030.
    end = from_datetime(datetime(2030, 6, 16))
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.AdvanceTime(minutes=end - 1 - (9 * HOUR + 5))),
        auth("D1"),
        E(A.AdvanceTime(minutes=1)),
        auth("D1", "CERT_EXPIRED"),
        sign("D1", "CERT_EXPIRED"),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal"), "CERT_EXPIRED"),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), "CARD_SIGNING_CERT_NOT_VALID"),
        E(A.IssueCardCertificate(person="P1", kind=SIGNING)),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN)),
    ]


@scenario(
    "cascade-immediate",
    "With a zero cascade delay, the revoking step itself revokes the linked phone certificates",
    reqs=("REV-2",),
    world=base_world(cascade_delay_minutes=0),
)
def _cascade_immediate() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ChangePersonalData(person="P1")),
        auth("D1", "CERT_REVOKED"),
        sign("D1", "CERT_REVOKED"),
    ]


# --- gaps the deliberately faulty systems showed (docs/detection.md) -----------------------------------------


@scenario(
    "held-for-phone-and-card",
    "A certificate held for a lost phone and a lost card stays suspended until both holds are lifted",
    reqs=("SUS-1", "SUS-2", "SUS-3", "SUS-4"),
)
def _held_twice() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ReportPhoneLost(person="P1")),
        # SUS-2: the card's hold reaches the phone certificates, which are already held for the phone.
        E(A.ReportCardLost(person="P1")),
        auth("D1", "CERT_SUSPENDED"),
        # The phone hold is lifted (auth resumed, signing revoked: SUS-3); the card hold remains.
        E(A.PhoneFound(person="P1")),
        auth("D1", "CERT_SUSPENDED"),
        sign("D1", "CERT_REVOKED"),
        # The card certificates come back (auth resumed, signing re-issued); the phone's card hold remains.
        E(A.CardFound(person="P1")),
        E(A.UseCard(person="P1", kind=AUTH, sp="portal")),
        auth("D1", "CERT_SUSPENDED"),
        # The last hold is lifted from the app; the signing certificate is already revoked, so no PIN is asked.
        E(A.ResumeFromApp(person="P1", phone="D1"), revoked=(), push_due=None),
        auth("D1"),
    ]


@scenario(
    "held-for-card-and-phone-card-found-first",
    "Held for a lost phone and a lost card; the card hold is lifted first and the phone hold still suspends",
    reqs=("SUS-1", "SUS-2", "SUS-3", "SUS-4", "LNK-6"),
)
def _held_twice_card_first() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ReportPhoneLost(person="P1")),
        E(A.ReportCardLost(person="P1")),
        E(A.CardFound(person="P1")),
        auth("D1", "CERT_SUSPENDED"),
        # The card hold is lifted from the app (auth re-linked, signing revoked and applied for again);
        # the phone hold remains on the auth certificate.
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin=SPIN2)),
        auth("D1", "CERT_SUSPENDED"),
        E(A.PhoneFound(person="P1"), revoked=()),
        auth("D1"),
        E(A.PhoneFound(person="P1"), "NOTHING_SUSPENDED"),
    ]


@scenario(
    "deletion-push-while-notifications-off",
    "A remote deletion is refused while the old phone's notifications are off and delivered once they are on",
    reqs=("MCH-1", "MCH-2", "MCH-3", "MCH-4", "REV-5"),
)
def _deletion_push_disabled() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.SetPushEnabled(phone="D1", enabled=False)),
        E(A.SetPushEnabled(phone="D1", enabled=False), "ALREADY_IN_THAT_STATE"),
        E(A.InstallApp(phone="D3")),
        E(A.PrepareApplet(phone="D3")),
        E(A.Apply(person="P1", phone="D3", kinds=BOTH, signing_pin=SPIN2, auth_pin=APIN2, consent=True)),
        # MCH-3: the push is refused; the keys stay in the old SE, under a revoked certificate (REV-5).
        E(A.DeliverDeletionPush(phone="D1"), "PUSH_DISABLED"),
        sign("D1", "CERT_REVOKED"),
        E(A.SetPushEnabled(phone="D1", enabled=True)),
        E(A.DeliverDeletionPush(phone="D1"), deleted=("auth", "signing")),
        sign("D1", "NO_CERTIFICATE"),
        E(A.DeliverDeletionPush(phone="D1"), "NO_PENDING_DELETION"),
    ]


@scenario(
    "revoke-from-phone-with-locked-pin",
    "Revocation from the phone needs the PIN: a locked PIN refuses it until the PIN is initialised",
    reqs=("REV-1", "PIN-3", "PIN-4", "REV-3"),
)
def _revoke_locked() -> list[Expect]:
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin="0000"), "WRONG_PIN", tries_left=2),
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin="0000"), "WRONG_PIN", tries_left=1),
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin="0000"), "WRONG_PIN", tries_left=0),
        # REV-1 asks for the PIN, and a locked PIN admits nothing (PIN-3), not even the right one.
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin=APIN), "PIN_LOCKED"),
        auth("D1", "PIN_LOCKED"),
        sign("D1"),  # the signing PIN has its own counter
        E(A.InitialisePin(person="P1", phone="D1", kind=AUTH, new_pin=APIN2)),
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin=APIN2), "PIN_NOT_SET"),
        E(A.SetPin(phone="D1", kind=AUTH)),
        E(A.RevokeFromPhone(phone="D1", kind=AUTH, pin=APIN2), deleted=("auth",)),
        auth("D1", "NO_CERTIFICATE"),
        sign("D1"),
    ]


@scenario(
    "os-auth-after-pin-change",
    "After a PIN change or initialisation, the screen lock presents the new auth PIN",
    reqs=("PIN-6", "PIN-5", "PIN-4", "PIN-3"),
)
def _os_auth_after_change() -> list[Expect]:
    bio = AuthMethod.BIOMETRIC
    osc = AuthMethod.OS_CREDENTIAL
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.EnrollOsAuth(phone="D1", pin=APIN)),
        E(A.UnlockScreen(phone="D1")),
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),
        E(A.ChangePin(phone="D1", kind=AUTH, old_pin=APIN, new_pin=APIN2)),
        # ASM-OS-AUTH-PRESENTS-PIN: the screen lock stands in for the current PIN, not the one enrolled with.
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),
        E(A.Authenticate(phone="D1", sp="portal", method=osc)),
        auth("D1", "WRONG_PIN", pin=APIN, tries_left=2),
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),  # a right presentation restores the count (PIN-3)
        auth("D1", "WRONG_PIN", pin=APIN, tries_left=2),
        auth("D1", pin=APIN2),
        # The same after a PIN initialisation: not usable until set, then the screen lock presents the new PIN.
        E(A.InitialisePin(person="P1", phone="D1", kind=AUTH, new_pin=APIN)),
        E(A.Authenticate(phone="D1", sp="portal", method=bio), "PIN_NOT_SET"),
        E(A.SetPin(phone="D1", kind=AUTH)),
        E(A.Authenticate(phone="D1", sp="portal", method=bio)),
        auth("D1", "WRONG_PIN", pin=APIN2, tries_left=2),
        E(A.Authenticate(phone="D1", sp="portal", method=osc)),
    ]


@scenario(
    "card-found-after-signing-expiry",
    "A card found after its held signing certificate expired: revoked, not re-issued; the person renews it",
    reqs=("SUS-3", "VAL-3", "ISS-3"),
)
def _card_found_expired() -> list[Expect]:
    # The card certificates of P1 expire at 00:00 on 16 June 2030 (see expiry-on-fifth-birthday).
    end = from_datetime(datetime(2030, 6, 16))
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ReportCardLost(person="P1")),
        E(A.AdvanceTime(minutes=end - (9 * HOUR + 5))),
        # ASM-CARD-FOUND: an expired held signing certificate is revoked without a re-issue.
        E(A.CardFound(person="P1"), reissued=()),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal"), "CERT_EXPIRED"),
        auth("D1", "CERT_EXPIRED"),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN), "CARD_SIGNING_CERT_NOT_VALID"),
        E(A.IssueCardCertificate(person="P1", kind=SIGNING)),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal")),
        E(A.Apply(person="P1", phone="D1", kinds=BOTH, signing_pin=SPIN, auth_pin=APIN)),
    ]


@scenario(
    "card-renewed-while-lost",
    "Card signing certificate renewed while the card is reported lost: the phone certificates are not resumed, the cascade revokes them",
    reqs=("SUS-3", "REV-2", "VAL-1", "LNK-2"),
)
def _renewed_while_lost() -> list[Expect]:
    # Found by the thorough stateful search on the reference: re-linking a phone certificate to a renewed card
    # signing certificate gave it a card certificate with another expiry (VAL-1). ASM-CARD-FOUND now resumes only
    # phone certificates whose card signing certificate was re-issued on the card's finding.
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.ReportCardLost(person="P1")),
        E(A.IssueCardCertificate(person="P1", kind=SIGNING)),
        E(A.CardFound(person="P1"), reissued=()),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal")),
        auth("D1", "CERT_SUSPENDED"),
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin=SPIN2), "NOTHING_SUSPENDED"),
        E(A.AdvanceTime(minutes=DAY)),
        auth("D1", "CERT_REVOKED"),
        sign("D1", "CERT_REVOKED"),
    ]


@scenario(
    "card-found-fresh-expiry",
    "A found card's signing certificate re-issued with a fresh expiry (variant card_found_fresh_expiry): the resumed "
    "phone auth certificate keeps its own, earlier expiry",
    reqs=("SUS-3", "VAL-1", "VAL-2", "SUS-2"),
    world=base_world(card_found_fresh_expiry=True),
)
def _card_found_fresh_expiry() -> list[Expect]:
    # P1 (born 15 June 1990) is issued card certificates on 1 April 2026, valid to 00:00 on 16 June 2030. The card is
    # lost and found on 20 June 2026, after a birthday: re-issued then, the card signing certificate runs to 16 June 2031
    # (003 FAQ 1: from the day of issue to the 5th birthday).
    found = 80 * DAY + 9 * HOUR + 5
    old_end, new_end = from_datetime(datetime(2030, 6, 16)), from_datetime(datetime(2031, 6, 16))
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.AdvanceTime(minutes=found - (9 * HOUR + 5))),
        E(A.ReportCardLost(person="P1")),
        E(A.CardFound(person="P1")),
        # ASM-CARD-FOUND: the re-issued certificate runs later than the held phone certificates; they are resumed all
        # the same (the phone auth certificate keeps the expiry written in it, VAL-1 as "never later").
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin=SPIN2), push_due=found + 5),
        auth("D1"),
        E(A.AdvanceTime(minutes=5)),
        E(A.DeliverIssuancePush(person="P1")),
        E(A.Register(person="P1", phone="D1")),  # the new phone signing certificate takes the new expiry
        E(A.SetPin(phone="D1", kind=SIGNING)),
        sign("D1", pin=SPIN2),
        E(A.AdvanceTime(minutes=old_end - (found + 5))),
        auth("D1", "CERT_EXPIRED"),
        E(A.UseCard(person="P1", kind=AUTH, sp="portal"), "CERT_EXPIRED"),
        sign("D1", pin=SPIN2),
        E(A.UseCard(person="P1", kind=SIGNING, sp="portal")),
        E(A.AdvanceTime(minutes=new_end - old_end)),
        sign("D1", "CERT_EXPIRED", pin=SPIN2),
    ]


# --- hours -------------------------------------------------------------------------------------------------


@scenario(
    "call-centre-and-office-at-any-hour",
    "Lost phone and lost card reported at 02:30 on a Sunday, card and phone found at the office at 23:00: the spec "
    "has no opening hours (ASM-SERVICE-HOURS); only the push waits for 08:00",
    reqs=("OPS-1", "SUS-1", "SUS-2", "SUS-3", "ISS-7"),
)
def _any_hour() -> list[Expect]:
    # 1 April 2026 is a Wednesday; Sunday 5 April starts at day 4.
    night, late, monday = 4 * DAY + 2 * HOUR + 30, 4 * DAY + 23 * HOUR, 5 * DAY + 8 * HOUR
    return [
        *to_morning(),
        *onboard("P1", "D1"),
        E(A.AdvanceTime(minutes=night - (9 * HOUR + 5))),
        # 003: the call centre suspends for a lost phone 24 hours a day, 365 days a year.
        E(A.ReportPhoneLost(person="P1")),
        # 003 names no hours for a lost card; the spec takes it at any hour too.
        E(A.ReportCardLost(person="P1")),
        E(A.AdvanceTime(minutes=late - night)),
        # The office steps: 002 mentions opening hours (開庁時間) but gives none; the spec models none.
        E(A.CardFound(person="P1")),
        E(A.ResumeFromApp(person="P1", phone="D1", signing_pin=SPIN2), push_due=monday),
        E(A.PhoneFound(person="P1")),
        auth("D1"),
        E(A.AdvanceTime(minutes=monday - 1 - late)),
        E(A.DeliverIssuancePush(person="P1"), "PUSH_NOT_DUE", push_due=monday),
        E(A.AdvanceTime(minutes=1)),
        E(A.DeliverIssuancePush(person="P1")),
    ]
