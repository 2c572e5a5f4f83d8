"""The transition rules: for each action, its guards (in order) and its update.

Each rule is registered with the requirement IDs it implements and every refusal reason it
may return; `mjpki.spec.machine.step` holds rules to that declaration, so the declared reasons are
an exact, checkable inventory of outcomes (used by coverage and the explorer).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from mjpki.spec import actions as A
from mjpki.spec.clock import DELETION_WINDOW, PRIMARY_AUTH_INTERVAL, push_due
from mjpki.spec.domain import (
    CASCADING_REASONS,
    AuthMethod,
    CertStatus,
    HoldCause,
    Kind,
    PersonId,
    PhoneId,
    PinStatus,
    RevocationReason,
    Serial,
    SPKind,
)
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.outcome import Outcome, accepted, refused
from mjpki.spec.reasons import Reason as R
from mjpki.spec.state import (
    Application,
    CardCert,
    Deletion,
    PhoneCert,
    SecureElement,
    Slot,
    State,
    issue_card_cert,
)
from mjpki.spec.world import World

__all__ = ["RuleSpec", "RULES", "pin_well_formed", "max_tries", "commitment_of"]

Step = tuple[State, Outcome]
RuleFn = Callable[[World, State, A.Action], Step]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """A rule: the action it handles, the requirements it implements, the refusals it may give."""

    action: type[A.Action]
    reqs: tuple[str, ...]
    reasons: tuple[R, ...]
    fn: RuleFn


RULES: dict[type[A.Action], RuleSpec] = {}


def rule(action: type[A.Action], *, reqs: tuple[str, ...], reasons: tuple[R, ...]) -> Callable[[RuleFn], RuleFn]:
    """Register fn as the rule for action; a second rule for the same action is an error."""

    def wrap(fn: RuleFn) -> RuleFn:
        if action in RULES:
            raise ValueError(f"two rules for {action.__name__}")
        RULES[action] = RuleSpec(action=action, reqs=reqs, reasons=reasons, fn=fn)
        return fn

    return wrap


# --- pure helpers ---------------------------------------------------------------------------

_SIGNING_PIN = re.compile(r"(?=.*[A-Z])(?=.*[0-9])[A-Z0-9]{6,16}")
_AUTH_PIN = re.compile(r"[0-9]{4}")


def pin_well_formed(kind: Kind, pin: str | None) -> bool:
    """PIN-1: signing 6-16 upper-case letters and digits (at least one of each); auth 4 digits."""
    if pin is None:
        return False
    pattern = _SIGNING_PIN if kind is Kind.SIGNING else _AUTH_PIN
    return pattern.fullmatch(pin) is not None


def max_tries(world: World, kind: Kind) -> int:
    """PIN-3: the retry limit of a phone PIN of this kind."""
    v = world.variants
    return v.signing_pin_tries if kind is Kind.SIGNING else v.auth_pin_tries


def commitment_of(r: int) -> int:
    """The abstract hash H: injective, so H(R) = S exactly when R is the R that S commits to."""
    return r


def _eligible(world: World, phone: PhoneId) -> bool:
    spec = world.phone(phone)
    return spec.android >= 9 and spec.gp_se and spec.nfc  # ACT-3


def _revoke(state: State, serial: Serial, reason: RevocationReason, at: int | None = None) -> State:
    """Revoke a phone or card certificate (a revoked one stays revoked: REV-4)."""
    when = state.now if at is None else at
    if serial in state.phone_certs:
        c: CardCert = state.phone_certs[serial]
        if c.status is CertStatus.REVOKED:
            return state
        return replace(
            state,
            phone_certs=state.phone_certs.set(
                serial,
                replace(c, status=CertStatus.REVOKED, revoked_at=when, reason=reason),  # type: ignore[arg-type]
            ),
        )
    c = state.card_certs[serial]
    if c.status is CertStatus.REVOKED:
        return state
    return replace(
        state,
        card_certs=state.card_certs.set(serial, replace(c, status=CertStatus.REVOKED, revoked_at=when, reason=reason)),
    )


def _cascade_due(world: World, state: State, pc: PhoneCert, until: int) -> int | None:
    """The deadline of pc's cascade, if one falls due by `until`: the earliest revocation, for a cascading reason,
    of a card certificate pc follows (ASM-PHONE-LINKAGE), plus the cascade delay."""
    delay = world.variants.cascade_delay_minutes
    due = [
        card.revoked_at + delay
        for serial in pc.follows
        if (card := state.card_certs[serial]).status is CertStatus.REVOKED
        and card.reason in CASCADING_REASONS
        and card.revoked_at is not None
        and card.revoked_at + delay <= until
    ]
    return min(due, default=None)


def _sweep(world: World, state: State, until: int) -> tuple[State, list[Serial]]:
    """The periodic linkage sweep (REV-2, ASM-CASCADE-AT-DEADLINE): revoke, at its deadline, every phone
    certificate a card certificate it follows was revoked for a cascading reason at least the cascade delay
    before `until`."""
    due = sorted(
        (at, pc.serial)
        for pc in state.phone_certs.values()
        if pc.status is not CertStatus.REVOKED and (at := _cascade_due(world, state, pc, until)) is not None
    )
    for at, serial in due:
        state = _revoke(state, serial, RevocationReason.CASCADE, at=max(at, state.now))
    return state, [serial for _at, serial in due]


def _followed_kinds(world: World, kind: Kind) -> frozenset[Kind]:
    """The kinds of card certificate a phone certificate of this kind follows (ASM-PHONE-LINKAGE)."""
    return world.variants.phone_linkage.follows(kind)


def _card_auth_guard(world: World, state: State, person: PersonId, kinds: frozenset[Kind]) -> Outcome | None:
    """Where a phone certificate applied for is to follow the card auth certificate, that must be in force."""
    if any(Kind.AUTH in _followed_kinds(world, k) for k in kinds):
        card = state.card_cert(person, Kind.AUTH)
        if card is None or not card.in_force(state.now):
            return refused(R.CARD_AUTH_CERT_NOT_VALID)
    return None


def _hold(cert: CardCert, cause: HoldCause) -> CardCert:
    return replace(cert, status=CertStatus.SUSPENDED, holds=cert.holds | {cause})


def _release(cert: CardCert, cause: HoldCause) -> CardCert:
    holds = cert.holds - {cause}
    return replace(cert, holds=holds, status=CertStatus.SUSPENDED if holds else CertStatus.ACTIVE)


def _verifier(world: World, state: State, cert: CardCert) -> R | None:
    """What the verifier's check at the CRL/OCSP of the certificate's profile says (ASM-VERIFIER-ORDER)."""
    if cert.expired(state.now):
        return R.CERT_EXPIRED
    if cert.status is CertStatus.REVOKED:
        return R.CERT_REVOKED
    if cert.status is CertStatus.SUSPENDED:
        return R.CERT_SUSPENDED
    return None


def _check_pin(world: World, state: State, phone: PhoneId, kind: Kind, pin: str | None) -> tuple[State, Outcome | None]:
    """Verify a PIN in the applet: status first, then the value; counts wrong entries (PIN-3)."""
    slot = state.phones[phone].se.slots.get(kind)
    if slot is None:
        return state, refused(R.NO_CERTIFICATE)
    if slot.pin_status is PinStatus.TEMP_BLOCKED:
        return state, refused(R.PIN_NOT_SET)
    if slot.pin_status is PinStatus.LOCKED:
        return state, refused(R.PIN_LOCKED)
    if pin != slot.pin:
        left = slot.tries_left - 1
        status = PinStatus.LOCKED if left == 0 else PinStatus.SET
        new = replace(slot, tries_left=left, pin_status=status)
        state = state.with_se(phone, slots=state.phones[phone].se.slots.set(kind, new))
        return state, refused(R.WRONG_PIN, tries_left=left)
    full = replace(slot, tries_left=max_tries(world, kind))
    return state.with_se(phone, slots=state.phones[phone].se.slots.set(kind, full)), None


def _start_application(
    world: World, state: State, person: PersonId, phone: PhoneId, kinds: frozenset[Kind], pins: dict[Kind, str]
) -> tuple[State, Application]:
    """The SE makes R and S = H(R); the JPKI system holds S with the application (ISS-2, ISS-7)."""
    r, state = state.take_fresh()
    ps = state.phones[phone]
    card = state.card_cert(person, Kind.SIGNING)
    assert card is not None  # guarded by the callers
    app = Application(
        person=person,
        phone=phone,
        se_id=world.phone(phone).se_id,
        kinds=kinds,
        commitment=commitment_of(r),
        card_serial=card.serial,
        push_token=ps.app_token,  # type: ignore[arg-type]
        push_due=push_due(state.now),
    )
    held = ps.held_pins
    for kind, pin in pins.items():
        held = held.set(kind, pin)
    state = state.with_phone(phone, held_pins=held, se=replace(ps.se, nonce=r))
    return replace(state, applications=state.applications.set(person, app)), app


def _request_deletion(world: World, state: State, certs: list[PhoneCert]) -> State:
    """Queue remote deletions to each old phone's app, addressed by the registering install's token."""
    for cert in certs:
        phone = world.phone_by_se(cert.se_id).id
        key = (phone, cert.person)
        old = state.deletions.get(key)
        serials = frozenset({cert.serial}) | (old.serials if old else frozenset())
        d = Deletion(
            phone=phone,
            person=cert.person,
            serials=serials,
            push_token=cert.push_token,
            deadline=state.now + DELETION_WINDOW,
        )
        state = replace(state, deletions=state.deletions.set(key, d))
    return state


def _drop_slots(world: World, state: State, phone: PhoneId, serials: frozenset[Serial]) -> tuple[State, tuple[str, ...]]:
    """Delete from the SE only the slots holding these certificates (DEL-1)."""
    se = state.phones[phone].se
    gone = tuple(k.value for k, s in se.slots.items() if s.cert_serial in serials)
    slots = FrozenMap((k, s) for k, s in se.slots.items() if s.cert_serial not in serials)
    return state.with_se(phone, slots=slots), gone


def _phone_guards(world: World, state: State, phone: PhoneId, *, online: bool = True) -> Outcome | None:
    ps = state.phones[phone]
    if ps.app_token is None:
        return refused(R.APP_NOT_INSTALLED)
    if online and not ps.online:
        return refused(R.DEVICE_OFFLINE)
    return None


def _holder_guard(state: State, person: PersonId, phone: PhoneId) -> Outcome | None:
    if state.phones[phone].holder != person:
        return refused(R.NOT_PHONE_HOLDER)
    return None


def _card_signature_guard(state: State, person: PersonId, signature_valid: bool) -> Outcome | None:
    card = state.card_cert(person, Kind.SIGNING)
    if card is None or not card.in_force(state.now):
        return refused(R.CARD_SIGNING_CERT_NOT_VALID)
    if not signature_valid:
        return refused(R.CARD_SIGNATURE_INVALID)
    return None


# --- card side ------------------------------------------------------------------------------


@rule(A.IssueCardCertificate, reqs=("VAL-2", "VAL-3", "CA-1", "CA-2", "CA-5", "REV-2"), reasons=())
def _issue_card(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.IssueCardCertificate)
    old = state.card_cert(a.person, a.kind)
    if old is not None and old.status is not CertStatus.REVOKED:
        state = _revoke(state, old.serial, RevocationReason.SUPERSEDED)
    state = issue_card_cert(world, state, a.person, a.kind)
    new = state.card_cert(a.person, a.kind)
    assert new is not None
    state, cascaded = _sweep(world, state, state.now)  # a zero cascade delay takes effect at once
    return state, accepted(serial=new.serial, expiry=new.expiry, superseded=old.serial if old else None, cascaded=tuple(cascaded))


@rule(A.RevokeCardCertificate, reqs=("REV-2", "REV-4"), reasons=(R.NOTHING_TO_REVOKE,))
def _revoke_card(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.RevokeCardCertificate)
    cert = state.card_cert(a.person, a.kind)
    if cert is None or cert.status is CertStatus.REVOKED:
        return state, refused(R.NOTHING_TO_REVOKE)
    state, cascaded = _sweep(world, _revoke(state, cert.serial, RevocationReason.USER_REQUEST), state.now)
    return state, accepted(revoked=(cert.serial,), cascaded=tuple(cascaded))


@rule(A.ChangePersonalData, reqs=("REV-2", "CA-3"), reasons=(R.NOTHING_TO_REVOKE,))
def _change_data(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.ChangePersonalData)
    cert = state.card_cert(a.person, Kind.SIGNING)
    if cert is None or cert.status is CertStatus.REVOKED:
        return state, refused(R.NOTHING_TO_REVOKE)
    state, cascaded = _sweep(world, _revoke(state, cert.serial, RevocationReason.DATA_CHANGE), state.now)
    return state, accepted(revoked=(cert.serial,), cascaded=tuple(cascaded))


@rule(A.ReportCardLost, reqs=("SUS-1", "SUS-2", "OPS-1"), reasons=(R.NO_CERTIFICATE,))
def _card_lost(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.ReportCardLost)
    cards = [c for k in Kind if (c := state.card_cert(a.person, k)) is not None and c.live(state.now)]
    if not cards:
        return state, refused(R.NO_CERTIFICATE)
    card_serials = {c.serial for c in cards}
    state = replace(
        state,
        card_certs=state.card_certs.update_where(lambda s, _c: s in card_serials, lambda c: _hold(c, HoldCause.CARD_LOST)),
    )
    # SUS-2: the phone certificates that follow a suspended card certificate are suspended too (ASM-PHONE-LINKAGE).
    linked = {c.serial for c in state.live_phone_certs(a.person) if c.follows & card_serials}
    state = replace(
        state,
        phone_certs=state.phone_certs.update_where(
            lambda s, _c: s in linked,
            lambda c: _hold(c, HoldCause.CARD_LOST),  # type: ignore[return-value]
        ),
    )
    return state, accepted(suspended=tuple(sorted(card_serials | linked)))


@rule(A.CardFound, reqs=("SUS-3", "VAL-2"), reasons=(R.NOTHING_SUSPENDED,))
def _card_found(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.CardFound)
    held = [
        c
        for k in Kind
        if (c := state.card_cert(a.person, k)) is not None and HoldCause.CARD_LOST in c.holds and c.status is CertStatus.SUSPENDED
    ]
    if not held:
        return state, refused(R.NOTHING_SUSPENDED)
    resumed: list[Serial] = []
    reissued: list[Serial] = []
    for cert in held:
        if cert.kind is Kind.AUTH:
            state = replace(state, card_certs=state.card_certs.set(cert.serial, _release(cert, HoldCause.CARD_LOST)))
            resumed.append(cert.serial)
        else:
            # SUS-3: a suspended signing certificate is never resumed (ASM-CARD-FOUND). One that
            # expired while on hold is not re-issued either: the person renews it (VAL-3). The re-issue
            # keeps the expiry, or with card_found_fresh_expiry runs to the 5th birthday from now (VAL-2).
            state = _revoke(state, cert.serial, RevocationReason.SUPERSEDED_AFTER_HOLD)
            if cert.expiry > state.now:
                expiry = None if world.variants.card_found_fresh_expiry else cert.expiry
                state = issue_card_cert(world, state, a.person, Kind.SIGNING, expiry=expiry)
                reissued.append(cert.serial)
    return state, accepted(resumed=tuple(resumed), reissued=tuple(reissued))


# --- app and applet ---------------------------------------------------------------------------


@rule(A.InstallApp, reqs=("ACT-1", "MCH-2"), reasons=())
def _install(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.InstallApp)
    token, state = state.take_fresh()
    state = state.with_phone(a.phone, app_token=token, applet_ready=False, os_auth_enrolled=False, held_pins=FrozenMap())
    return state, accepted()


@rule(A.UninstallApp, reqs=("MCH-3",), reasons=(R.APP_NOT_INSTALLED,))
def _uninstall(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.UninstallApp)
    if state.phones[a.phone].app_token is None:
        return state, refused(R.APP_NOT_INSTALLED)
    state = state.with_phone(a.phone, app_token=None, applet_ready=False, os_auth_enrolled=False, held_pins=FrozenMap())
    return state, accepted()


@rule(
    A.PrepareApplet,
    reqs=("ISS-8", "ACT-2", "ACL-1", "ISS-9"),
    reasons=(R.APP_NOT_INSTALLED, R.DEVICE_OFFLINE, R.DEVICE_NOT_ELIGIBLE),
)
def _prepare(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.PrepareApplet)
    if (no := _phone_guards(world, state, a.phone)) is not None:
        return state, no
    if not _eligible(world, a.phone):
        return state, refused(R.DEVICE_NOT_ELIGIBLE)
    se = state.phones[a.phone].se
    removed = tuple(k.value for k in se.slots) if se.applet else ()
    # ASM-APPLET-CHECK-WIPES: the SEI-TSM removes any leftover applet and installs a fresh one
    # with the access rules that admit only the official app (ACL-1).
    state = state.with_phone(a.phone, applet_ready=True, se=SecureElement(applet=True))
    return state, accepted(leftover_removed=se.applet, removed=removed)


# --- issuance ----------------------------------------------------------------------------------


@rule(
    A.Apply,
    reqs=(
        "ISS-1",
        "ISS-2",
        "ISS-3",
        "ISS-4",
        "LNK-1",
        "LNK-3",
        "LNK-4",
        "LNK-5",
        "PIN-1",
        "ACT-3",
        "MCH-1",
        "MCH-2",
        "MCH-3",
        "REV-3",
        "CA-4",
    ),
    reasons=(
        R.NOT_PHONE_HOLDER,
        R.APP_NOT_INSTALLED,
        R.DEVICE_OFFLINE,
        R.DEVICE_NOT_ELIGIBLE,
        R.APPLET_NOT_READY,
        R.NO_KIND_SELECTED,
        R.PIN_FORMAT_INVALID,
        R.CARD_SIGNING_CERT_NOT_VALID,
        R.CARD_SIGNATURE_INVALID,
        R.CARD_AUTH_CERT_NOT_VALID,
        R.CONSENT_REQUIRED,
    ),
)
def _apply(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.Apply)
    if (no := _holder_guard(state, a.person, a.phone) or _phone_guards(world, state, a.phone)) is not None:
        return state, no
    if not _eligible(world, a.phone):
        return state, refused(R.DEVICE_NOT_ELIGIBLE)
    if not state.phones[a.phone].applet_ready:
        return state, refused(R.APPLET_NOT_READY)
    if not a.kinds:
        return state, refused(R.NO_KIND_SELECTED)
    pins = {Kind.SIGNING: a.signing_pin, Kind.AUTH: a.auth_pin}
    for kind in sorted(a.kinds, key=lambda k: k.value):
        if not pin_well_formed(kind, pins[kind]):
            return state, refused(R.PIN_FORMAT_INVALID, kind=kind.value)
    if (no := _card_signature_guard(state, a.person, a.card_signature_valid)) is not None:
        return state, no
    if (no := _card_auth_guard(world, state, a.person, a.kinds)) is not None:
        return state, no
    # ISS-3/ISS-4 with ASM-EXISTING-CERTS-BY-PERSON and ASM-OTHER-SE-IS-MODEL-CHANGE.
    se_id = world.phone(a.phone).se_id
    other_se = [c for c in state.live_phone_certs(a.person) if c.se_id != se_id]
    same_se = [c for c in state.live_phone_certs(a.person) if c.se_id == se_id and c.kind in a.kinds]
    to_revoke = other_se + same_se
    if to_revoke and not a.consent:
        return state, refused(R.CONSENT_REQUIRED, serials=tuple(c.serial for c in to_revoke))
    for c in other_se:
        state = _revoke(state, c.serial, RevocationReason.DEVICE_STOPPED)
    for c in same_se:
        state = _revoke(state, c.serial, RevocationReason.SUPERSEDED)
    state = _request_deletion(world, state, other_se)
    chosen = {k: pins[k] for k in a.kinds}
    state, app = _start_application(world, state, a.person, a.phone, a.kinds, chosen)  # type: ignore[arg-type]
    # MCH-3, ASM-DELETION-WARNING: the app warns that the old phone's data may stay if the deletion cannot reach it.
    return state, accepted(revoked=tuple(c.serial for c in to_revoke), push_due=app.push_due, deletion_warning=bool(other_se))


@rule(
    A.DeliverIssuancePush,
    reqs=("ISS-7", "OPS-2"),
    reasons=(R.NO_APPLICATION, R.PUSH_NOT_DUE, R.PUSH_TOKEN_INVALID, R.PUSH_DISABLED, R.DEVICE_OFFLINE),
)
def _issuance_push(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.DeliverIssuancePush)
    app = state.applications.get(a.person)
    if app is None:
        return state, refused(R.NO_APPLICATION)
    if state.now < app.push_due:
        return state, refused(R.PUSH_NOT_DUE, push_due=app.push_due)
    ps = state.phones[app.phone]
    if ps.app_token != app.push_token:
        return state, refused(R.PUSH_TOKEN_INVALID)
    if not ps.push_enabled:
        return state, refused(R.PUSH_DISABLED)
    if not ps.online:
        return state, refused(R.DEVICE_OFFLINE)
    state = replace(state, applications=state.applications.set(a.person, replace(app, notified=True)))
    return state, accepted(phone=app.phone)


@rule(
    A.Register,
    reqs=("ISS-5", "ISS-6", "ISS-7", "ISS-9", "LNK-2", "LNK-6", "VAL-1", "CA-1", "CA-2", "CA-3", "CA-5"),
    reasons=(
        R.NOT_PHONE_HOLDER,
        R.APP_NOT_INSTALLED,
        R.DEVICE_OFFLINE,
        R.NO_APPLICATION,
        R.NOT_NOTIFIED,
        R.CARD_SIGNING_CERT_NOT_VALID,
        R.CARD_AUTH_CERT_NOT_VALID,
        R.APPLET_NOT_READY,
        R.COMMITMENT_MISMATCH,
    ),
)
def _register(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.Register)
    if (no := _holder_guard(state, a.person, a.phone) or _phone_guards(world, state, a.phone)) is not None:
        return state, no
    app = state.applications.get(a.person)
    if app is None:
        return state, refused(R.NO_APPLICATION)
    if not app.notified:
        return state, refused(R.NOT_NOTIFIED)
    card = state.card_cert(a.person, Kind.SIGNING)
    if card is None or card.serial != app.card_serial or not card.in_force(state.now):
        return state, refused(R.CARD_SIGNING_CERT_NOT_VALID)
    if (no := _card_auth_guard(world, state, a.person, app.kinds)) is not None:
        return state, no
    ps = state.phones[a.phone]
    if not ps.se.applet:
        return state, refused(R.APPLET_NOT_READY)
    # ISS-5/ISS-6: the SE generates the key pair and uploads the public key with R; the CA
    # certifies only if H(R) equals the S held for this application.
    if ps.se.nonce is None or commitment_of(ps.se.nonce) != app.commitment:
        return state, refused(R.COMMITMENT_MISMATCH)
    se_id = world.phone(a.phone).se_id
    issued: list[tuple[str, Serial]] = []
    slots = ps.se.slots
    for kind in sorted(app.kinds, key=lambda k: k.value):
        key_id, state = state.take_fresh()
        serial, state = state.take_fresh()
        # ASM-PHONE-LINKAGE: it follows the person's current card certificates of the kinds the variant names.
        follows = frozenset(s for k in _followed_kinds(world, kind) if (s := state.persons[a.person].current(k)) is not None)
        cert = PhoneCert(
            serial=serial,
            person=a.person,
            kind=kind,
            issued_at=state.now,
            expiry=min(state.card_certs[s].expiry for s in follows),  # VAL-1
            se_id=se_id,
            card_serial=card.serial,  # LNK-2
            follows=follows,
            key_id=key_id,
            commitment=app.commitment,
            presented_r=ps.se.nonce,
            push_token=ps.app_token,
        )
        state = replace(state, phone_certs=state.phone_certs.set(serial, cert))
        # PIN-2 begins: the temporary PIN is set and blocked with the certificate.
        slots = slots.set(
            kind,
            Slot(
                person=a.person,
                key_id=key_id,
                cert_serial=serial,
                pin_status=PinStatus.TEMP_BLOCKED,
                pin=None,
                tries_left=max_tries(world, kind),
            ),
        )
        issued.append((kind.value, serial))
    state = state.with_se(a.phone, slots=slots, nonce=None)
    state = replace(
        state,
        linkage=state.linkage.set(card.serial, se_id),  # LNK-6
        applications=state.applications.remove(a.person),
    )
    return state, accepted(issued=tuple(issued))


@rule(
    A.SetPin,
    reqs=("PIN-2", "ISS-9"),
    reasons=(R.APP_NOT_INSTALLED, R.DEVICE_OFFLINE, R.NO_CERTIFICATE, R.NO_PIN_PENDING),
)
def _set_pin(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.SetPin)
    if (no := _phone_guards(world, state, a.phone)) is not None:
        return state, no
    ps = state.phones[a.phone]
    slot = ps.se.slots.get(a.kind)
    if slot is None:
        return state, refused(R.NO_CERTIFICATE)
    pin = ps.held_pins.get(a.kind)
    if slot.pin_status is not PinStatus.TEMP_BLOCKED or pin is None:
        return state, refused(R.NO_PIN_PENDING)
    new = replace(slot, pin=pin, pin_status=PinStatus.SET, tries_left=max_tries(world, a.kind))
    state = state.with_phone(a.phone, held_pins=ps.held_pins.remove(a.kind), se=replace(ps.se, slots=ps.se.slots.set(a.kind, new)))
    return state, accepted()


# --- use ------------------------------------------------------------------------------------------


@rule(A.UnlockScreen, reqs=("PIN-6",), reasons=())
def _unlock(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.UnlockScreen)
    return state.with_phone(a.phone, last_primary_auth=state.now), accepted()


@rule(
    A.EnrollOsAuth,
    reqs=("PIN-6", "PIN-3"),
    reasons=(
        R.APP_NOT_INSTALLED,
        R.NO_CERTIFICATE,
        R.OS_AUTH_NOT_ALLOWED,
        R.PIN_NOT_SET,
        R.PIN_LOCKED,
        R.WRONG_PIN,
    ),
)
def _enroll(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.EnrollOsAuth)
    if (no := _phone_guards(world, state, a.phone, online=False)) is not None:
        return state, no
    if Kind.AUTH not in state.phones[a.phone].se.slots:
        return state, refused(R.NO_CERTIFICATE)
    spec = world.phone(a.phone)
    if spec.android < 11 and not spec.biometric_class3:
        return state, refused(R.OS_AUTH_NOT_ALLOWED)  # Android 9/10: Class 3 biometrics only
    state, no = _check_pin(world, state, a.phone, Kind.AUTH, a.pin)
    if no is not None:
        return state, no
    return state.with_phone(a.phone, os_auth_enrolled=True), accepted()


def _sp_guards(world: World, sp_id: str, *, signing: bool) -> Outcome | None:
    sp = world.service_provider(sp_id)
    if not sp.whitelisted:
        return refused(R.SP_NOT_WHITELISTED)
    if signing and sp.kind is SPKind.PRIVATE and not sp.approved:
        return refused(R.SP_NOT_APPROVED)
    return None


def _use_key(world: World, state: State, phone: PhoneId, kind: Kind, method: AuthMethod, pin: str | None) -> tuple[State, Outcome]:
    """Unlock the key of this kind in the SE and have the verifier check its certificate."""
    slot = state.phones[phone].se.slots.get(kind)
    if slot is None:
        return state, refused(R.NO_CERTIFICATE)
    if method is AuthMethod.PIN:
        state, no = _check_pin(world, state, phone, kind, pin)
        if no is not None:
            return state, no
    else:
        if slot.pin_status is PinStatus.TEMP_BLOCKED:
            return state, refused(R.PIN_NOT_SET)
        if slot.pin_status is PinStatus.LOCKED:
            return state, refused(R.PIN_LOCKED)  # PIN-3: a locked PIN admits no key use at all
        spec, ps = world.phone(phone), state.phones[phone]
        if kind is Kind.SIGNING or (method is AuthMethod.OS_CREDENTIAL and spec.android < 11):
            return state, refused(R.OS_AUTH_NOT_ALLOWED)
        if method is AuthMethod.BIOMETRIC and not spec.biometric_class3:
            return state, refused(R.BIOMETRIC_NOT_CLASS3)
        if not ps.os_auth_enrolled:
            return state, refused(R.OS_AUTH_NOT_ENROLLED)
        if method is AuthMethod.OS_CREDENTIAL:
            state = state.with_phone(phone, last_primary_auth=state.now)  # this is primary authentication
        elif ps.last_primary_auth is None or state.now - ps.last_primary_auth > PRIMARY_AUTH_INTERVAL:
            return state, refused(R.PRIMARY_AUTH_REQUIRED)
        # ASM-OS-AUTH-PRESENTS-PIN: the OS releases the stored PIN and the app presents it; a
        # correct presentation restores the retry count, as a typed one does (PIN-3).
        se = state.phones[phone].se
        state = state.with_se(phone, slots=se.slots.set(kind, replace(slot, tries_left=max_tries(world, kind))))
    cert = state.phone_certs[slot.cert_serial]
    if (why := _verifier(world, state, cert)) is not None:
        return state, refused(why, serial=cert.serial)
    return state, accepted(serial=cert.serial, profile=cert.profile.value)


_KEY_USE_REASONS = (
    R.NO_CERTIFICATE,
    R.PIN_NOT_SET,
    R.PIN_LOCKED,
    R.WRONG_PIN,
    R.OS_AUTH_NOT_ALLOWED,
    R.BIOMETRIC_NOT_CLASS3,
    R.OS_AUTH_NOT_ENROLLED,
    R.PRIMARY_AUTH_REQUIRED,
    R.CERT_EXPIRED,
    R.CERT_REVOKED,
    R.CERT_SUSPENDED,
)


@rule(
    A.Authenticate,
    reqs=("PIN-3", "PIN-6", "REV-5", "SUS-4", "SP-1", "CA-3", "CA-4", "ACL-1", "ACL-2", "SP-2"),
    reasons=(R.APP_NOT_INSTALLED, R.DEVICE_OFFLINE, R.ACCESS_DENIED, R.SP_NOT_WHITELISTED, *_KEY_USE_REASONS),
)
def _authenticate(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.Authenticate)
    if (no := _phone_guards(world, state, a.phone)) is not None:
        return state, no
    if not a.official_app:
        return state, refused(R.ACCESS_DENIED)
    if (no := _sp_guards(world, a.sp, signing=False)) is not None:
        return state, no
    return _use_key(world, state, a.phone, Kind.AUTH, a.method, a.pin)


@rule(
    A.Sign,
    reqs=(
        "ISS-5",
        "PIN-3",
        "PIN-6",
        "REV-5",
        "SUS-4",
        "SP-1",
        "CA-3",
        "CA-4",
        "CA-5",
        "ACL-1",
        "ACL-2",
        "ACL-3",
        "DEL-3",
    ),
    # The signing key never takes the OS screen lock (PIN-6), so the OS-auth refusals past
    # OS_AUTH_NOT_ALLOWED cannot happen here.
    reasons=(
        R.APP_NOT_INSTALLED,
        R.DEVICE_OFFLINE,
        R.ACCESS_DENIED,
        R.SP_NOT_WHITELISTED,
        R.SP_NOT_APPROVED,
        *(r for r in _KEY_USE_REASONS if r not in (R.BIOMETRIC_NOT_CLASS3, R.OS_AUTH_NOT_ENROLLED, R.PRIMARY_AUTH_REQUIRED)),
    ),
)
def _sign(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.Sign)
    if (no := _phone_guards(world, state, a.phone)) is not None:
        return state, no
    if not a.official_app:
        return state, refused(R.ACCESS_DENIED)
    if (no := _sp_guards(world, a.sp, signing=True)) is not None:
        return state, no
    return _use_key(world, state, a.phone, Kind.SIGNING, a.method, a.pin)


@rule(
    A.UseCard,
    reqs=("SP-1", "REV-5", "SUS-4", "ACL-3"),
    reasons=(R.SP_NOT_APPROVED, R.NO_CERTIFICATE, R.CERT_EXPIRED, R.CERT_REVOKED, R.CERT_SUSPENDED),
)
def _use_card(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.UseCard)
    sp = world.service_provider(a.sp)
    if a.kind is Kind.SIGNING and sp.kind is SPKind.PRIVATE and not sp.approved:
        return state, refused(R.SP_NOT_APPROVED)
    cert = state.card_cert(a.person, a.kind)
    if cert is None:
        return state, refused(R.NO_CERTIFICATE)
    if (why := _verifier(world, state, cert)) is not None:
        return state, refused(why, serial=cert.serial)
    return state, accepted(serial=cert.serial, profile=cert.profile.value)


@rule(
    A.VerifyCertificate,
    reqs=("SP-1", "CA-3", "CA-4", "REV-5", "SUS-4", "VAL-3"),
    reasons=(R.WRONG_PROFILE, R.UNKNOWN_CERTIFICATE, R.CERT_EXPIRED, R.CERT_REVOKED, R.CERT_SUSPENDED),
)
def _verify_certificate(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.VerifyCertificate)
    # ASM-RELYING-PARTY-ORDER: the profile (CA-3) is read from the certificate before any status is asked (SP-1).
    if a.profile is not a.accept:
        return state, refused(R.WRONG_PROFILE, profile=a.profile.value)
    issued = state.issued(a.person, a.kind, a.profile)
    if not 0 <= a.index < len(issued):
        return state, refused(R.UNKNOWN_CERTIFICATE)  # CA-4: the OCSP of its profile answers unknown, never good
    cert = issued[a.index]
    if (why := _verifier(world, state, cert)) is not None:
        return state, refused(why, serial=cert.serial)
    return state, accepted(serial=cert.serial, profile=cert.profile.value)


@rule(
    A.ChangePin,
    reqs=("PIN-5", "PIN-1", "PIN-3"),
    reasons=(R.APP_NOT_INSTALLED, R.NO_CERTIFICATE, R.PIN_FORMAT_INVALID, R.PIN_NOT_SET, R.PIN_LOCKED, R.WRONG_PIN),
)
def _change_pin(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.ChangePin)
    if (no := _phone_guards(world, state, a.phone, online=False)) is not None:
        return state, no
    if a.kind not in state.phones[a.phone].se.slots:
        return state, refused(R.NO_CERTIFICATE)
    if not pin_well_formed(a.kind, a.new_pin):
        return state, refused(R.PIN_FORMAT_INVALID, kind=a.kind.value)
    state, no = _check_pin(world, state, a.phone, a.kind, a.old_pin)
    if no is not None:
        return state, no
    se = state.phones[a.phone].se
    state = state.with_se(a.phone, slots=se.slots.set(a.kind, replace(se.slots[a.kind], pin=a.new_pin)))
    return state, accepted()


@rule(
    A.InitialisePin,
    reqs=("PIN-4", "LNK-6", "PIN-1", "PIN-2"),
    reasons=(
        R.NOT_PHONE_HOLDER,
        R.APP_NOT_INSTALLED,
        R.DEVICE_OFFLINE,
        R.PIN_FORMAT_INVALID,
        R.CARD_SIGNING_CERT_NOT_VALID,
        R.CARD_SIGNATURE_INVALID,
        R.PHONE_CERT_NOT_FOUND,
        R.SE_ID_MISMATCH,
    ),
)
def _initialise_pin(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.InitialisePin)
    if (no := _holder_guard(state, a.person, a.phone) or _phone_guards(world, state, a.phone)) is not None:
        return state, no
    if not pin_well_formed(a.kind, a.new_pin):
        return state, refused(R.PIN_FORMAT_INVALID, kind=a.kind.value)
    if (no := _card_signature_guard(state, a.person, a.card_signature_valid)) is not None:
        return state, no
    live = [c for c in state.live_phone_certs(a.person) if c.kind is a.kind]
    if not live:
        return state, refused(R.PHONE_CERT_NOT_FOUND)
    card = state.card_cert(a.person, Kind.SIGNING)
    assert card is not None
    # PIN-4: the SE-ID read from this phone must be the one recorded for the card (LNK-6).
    if state.linkage.get(card.serial) != world.phone(a.phone).se_id:
        return state, refused(R.SE_ID_MISMATCH)
    ps = state.phones[a.phone]
    slot = ps.se.slots.get(a.kind)
    if slot is None or slot.cert_serial not in {c.serial for c in live}:
        return state, refused(R.PHONE_CERT_NOT_FOUND)
    new = replace(slot, pin_status=PinStatus.TEMP_BLOCKED, pin=None, tries_left=max_tries(world, a.kind))
    state = state.with_phone(a.phone, held_pins=ps.held_pins.set(a.kind, a.new_pin), se=replace(ps.se, slots=ps.se.slots.set(a.kind, new)))
    return state, accepted()


# --- revocation, suspension, deletion ------------------------------------------------------------


@rule(
    A.RevokeFromPhone,
    reqs=("REV-1", "REV-3", "REV-4", "DEL-1", "PIN-3"),
    reasons=(R.APP_NOT_INSTALLED, R.DEVICE_OFFLINE, R.NO_CERTIFICATE, R.PIN_NOT_SET, R.PIN_LOCKED, R.WRONG_PIN),
)
def _revoke_from_phone(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.RevokeFromPhone)
    if (no := _phone_guards(world, state, a.phone)) is not None:
        return state, no
    state, no = _check_pin(world, state, a.phone, a.kind, a.pin)
    if no is not None:
        return state, no
    slot = state.phones[a.phone].se.slots[a.kind]
    cert = state.phone_certs[slot.cert_serial]
    revoked: tuple[Serial, ...] = ()
    if cert.live(state.now):
        state = _revoke(state, cert.serial, RevocationReason.DEVICE_STOPPED)
        revoked = (cert.serial,)
    state, gone = _drop_slots(world, state, a.phone, frozenset({cert.serial}))
    return state, accepted(revoked=revoked, deleted=gone)


@rule(
    A.RevokeWithCard,
    reqs=("REV-3", "MCH-2", "MCH-3", "REV-4"),
    reasons=(R.CARD_SIGNING_CERT_NOT_VALID, R.CARD_SIGNATURE_INVALID, R.NOTHING_TO_REVOKE),
)
def _revoke_with_card(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.RevokeWithCard)
    if (no := _card_signature_guard(state, a.person, a.card_signature_valid)) is not None:
        return state, no
    live = list(state.live_phone_certs(a.person))
    if not live:
        return state, refused(R.NOTHING_TO_REVOKE)
    for c in live:
        state = _revoke(state, c.serial, RevocationReason.DEVICE_STOPPED)
    state = _request_deletion(world, state, live)
    return state, accepted(revoked=tuple(c.serial for c in live), deletion_warning=True)  # MCH-3, ASM-DELETION-WARNING


@rule(A.ReportPhoneLost, reqs=("SUS-1", "OPS-1"), reasons=(R.PHONE_CERT_NOT_FOUND,))
def _phone_lost(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.ReportPhoneLost)
    live = {c.serial for c in state.live_phone_certs(a.person)}
    if not live:
        return state, refused(R.PHONE_CERT_NOT_FOUND)
    state = replace(
        state,
        phone_certs=state.phone_certs.update_where(
            lambda s, _c: s in live,
            lambda c: _hold(c, HoldCause.PHONE_LOST),  # type: ignore[return-value]
        ),
    )
    return state, accepted(suspended=tuple(sorted(live)))


@rule(A.PhoneFound, reqs=("SUS-3",), reasons=(R.NOTHING_SUSPENDED,))
def _phone_found(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.PhoneFound)
    held = [c for c in state.live_phone_certs(a.person) if HoldCause.PHONE_LOST in c.holds]
    if not held:
        return state, refused(R.NOTHING_SUSPENDED)
    resumed: list[Serial] = []
    revoked: list[Serial] = []
    for cert in held:
        if cert.kind is Kind.AUTH:
            state = replace(state, phone_certs=state.phone_certs.set(cert.serial, _release(cert, HoldCause.PHONE_LOST)))  # type: ignore[arg-type]
            resumed.append(cert.serial)
        else:
            state = _revoke(state, cert.serial, RevocationReason.SUSPENDED_SIGNING)
            revoked.append(cert.serial)
    return state, accepted(resumed=tuple(resumed), revoked=tuple(revoked))


def _continues(world: World, state: State, cert: PhoneCert, card: CardCert) -> bool:
    """ASM-CARD-FOUND: every card certificate cert follows continues, so that cert may be resumed from the app.

    A card signing one continues if it was re-issued on the card's finding: revoked as superseded after the hold, with
    the current card signing certificate (`card`) carrying its expiry (with card_found_fresh_expiry, one no earlier).
    A card auth one continues if it is in force (CardFound resumed it). A phone certificate whose card certificate was
    since renewed or revoked for another reason stays on hold and is revoked by the cascade (REV-2), so that resuming
    never takes a phone certificate past its card certificate's expiry (VAL-1) or rescues it from a cascade.
    """
    for serial in cert.follows:
        old = state.card_certs[serial]
        if old.kind is Kind.SIGNING:
            if old.reason is not RevocationReason.SUPERSEDED_AFTER_HOLD:
                return False
            kept = card.expiry >= old.expiry if world.variants.card_found_fresh_expiry else card.expiry == old.expiry
            if not kept:
                return False
        elif not old.in_force(state.now):
            return False
    return True


@rule(
    A.ResumeFromApp,
    reqs=("SUS-3", "SUS-2", "LNK-6", "PIN-1", "VAL-1"),
    reasons=(
        R.NOT_PHONE_HOLDER,
        R.APP_NOT_INSTALLED,
        R.DEVICE_OFFLINE,
        R.CARD_SIGNING_CERT_NOT_VALID,
        R.CARD_SIGNATURE_INVALID,
        R.NOTHING_SUSPENDED,
        R.SE_ID_MISMATCH,
        R.PIN_FORMAT_INVALID,
        R.APPLET_NOT_READY,
    ),
)
def _resume_from_app(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.ResumeFromApp)
    if (no := _holder_guard(state, a.person, a.phone) or _phone_guards(world, state, a.phone)) is not None:
        return state, no
    if (no := _card_signature_guard(state, a.person, a.card_signature_valid)) is not None:
        return state, no
    card = state.card_cert(a.person, Kind.SIGNING)
    assert card is not None  # the card signature guard passed: the current card signing certificate is in force
    # ASM-RESUME-WHILE-PHONE-LOST: only the card hold is lifted here; a phone hold stays until PhoneFound.
    held = [c for c in state.live_phone_certs(a.person) if HoldCause.CARD_LOST in c.holds and _continues(world, state, c, card)]
    if not held:
        return state, refused(R.NOTHING_SUSPENDED)
    se_id = world.phone(a.phone).se_id
    if any(c.se_id != se_id for c in held):
        return state, refused(R.SE_ID_MISMATCH)
    signing = [c for c in held if c.kind is Kind.SIGNING]
    if signing and not pin_well_formed(Kind.SIGNING, a.signing_pin):
        return state, refused(R.PIN_FORMAT_INVALID, kind=Kind.SIGNING.value)
    if signing and not state.phones[a.phone].se.applet:
        return state, refused(R.APPLET_NOT_READY)  # the re-issued signing key needs an applet to be made in
    resumed: list[Serial] = []
    for cert in held:
        if cert.kind is Kind.AUTH:
            # ASM-CARD-FOUND: re-linked to the new card signing certificate; it keeps the expiry written in it.
            follows = frozenset(card.serial if state.card_certs[s].kind is Kind.SIGNING else s for s in cert.follows)
            relinked = replace(_release(cert, HoldCause.CARD_LOST), card_serial=card.serial, follows=follows)
            state = replace(state, phone_certs=state.phone_certs.set(cert.serial, relinked))  # type: ignore[arg-type]
            resumed.append(cert.serial)
    for cert in signing:
        state = _revoke(state, cert.serial, RevocationReason.SUSPENDED_SIGNING)
    state = replace(state, linkage=state.linkage.set(card.serial, se_id))
    due = None
    if signing:
        assert a.signing_pin is not None
        state, app = _start_application(world, state, a.person, a.phone, frozenset({Kind.SIGNING}), {Kind.SIGNING: a.signing_pin})
        due = app.push_due
    return state, accepted(resumed=tuple(resumed), revoked=tuple(c.serial for c in signing), push_due=due)


@rule(
    A.DeliverDeletionPush,
    reqs=("MCH-2", "MCH-3", "MCH-4", "DEL-1"),
    reasons=(R.NO_PENDING_DELETION, R.PUSH_TOKEN_INVALID, R.PUSH_DISABLED, R.DEVICE_OFFLINE),
)
def _deletion_push(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.DeliverDeletionPush)
    pending = [d for (ph, _p), d in state.deletions.items() if ph == a.phone]
    if not pending:
        return state, refused(R.NO_PENDING_DELETION)
    ps = state.phones[a.phone]
    reachable = [d for d in pending if d.push_token is not None and d.push_token == ps.app_token]
    if not reachable:
        return state, refused(R.PUSH_TOKEN_INVALID)
    if not ps.push_enabled:
        return state, refused(R.PUSH_DISABLED)
    if not ps.online:
        return state, refused(R.DEVICE_OFFLINE)
    deleted: list[str] = []
    for d in reachable:
        state, gone = _drop_slots(world, state, a.phone, d.serials)
        deleted.extend(gone)
        state = replace(state, deletions=state.deletions.remove((d.phone, d.person)))
    if world.variants.remote_deletion_removes_applet and not state.phones[a.phone].se.slots:
        state = state.with_phone(a.phone, applet_ready=False, se=SecureElement())  # MCH-4, via the SEI-TSM
    return state, accepted(deleted=tuple(sorted(deleted)))


# --- the phone's world ------------------------------------------------------------------------------


@rule(A.SetOnline, reqs=("OPS-2", "MCH-3"), reasons=(R.ALREADY_IN_THAT_STATE,))
def _set_online(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.SetOnline)
    if state.phones[a.phone].online == a.online:
        return state, refused(R.ALREADY_IN_THAT_STATE)
    return state.with_phone(a.phone, online=a.online), accepted()


@rule(A.SetPushEnabled, reqs=("MCH-3",), reasons=(R.ALREADY_IN_THAT_STATE,))
def _set_push(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.SetPushEnabled)
    if state.phones[a.phone].push_enabled == a.enabled:
        return state, refused(R.ALREADY_IN_THAT_STATE)
    return state.with_phone(a.phone, push_enabled=a.enabled), accepted()


@rule(A.FactoryReset, reqs=("DEL-2", "MCH-3"), reasons=())
def _factory_reset(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.FactoryReset)
    ps = state.phones[a.phone]
    wipe = world.variants.factory_reset_wipes_se
    # DEL-2: the app and its push token go either way; the SE only if the variant says so.
    state = state.with_phone(
        a.phone,
        **{
            **_FRESH_PHONE,
            "se": SecureElement() if wipe else ps.se,
        },
    )
    return state, accepted(se_wiped=wipe)


_FRESH_PHONE: dict[str, object] = {
    "app_token": None,
    "applet_ready": False,
    "os_auth_enrolled": False,
    "last_primary_auth": None,
    "held_pins": FrozenMap(),
    "push_enabled": True,
}
"""What a factory reset leaves of a phone's own state (the SE is the variant's business)."""


@rule(A.TransferPhone, reqs=("DEL-3", "REV-3"), reasons=(R.ALREADY_IN_THAT_STATE,))
def _transfer(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.TransferPhone)
    world.person(a.to)
    if state.phones[a.phone].holder == a.to:
        return state, refused(R.ALREADY_IN_THAT_STATE)
    return state.with_phone(a.phone, holder=a.to), accepted()


@rule(A.AdvanceTime, reqs=("REV-2", "MCH-2", "MCH-3", "VAL-2", "VAL-3", "ISS-7", "PIN-6"), reasons=(R.INVALID_TIME_STEP,))
def _advance(world: World, state: State, a: A.Action) -> Step:
    assert isinstance(a, A.AdvanceTime)
    if a.minutes < 1:
        return state, refused(R.INVALID_TIME_STEP)
    target = state.now + a.minutes
    state, cascaded = _sweep(world, state, target)
    # MCH-2/MCH-3: a deletion the old phone did not receive within 48 hours has failed.
    expired = tuple(sorted(k for k, d in state.deletions.items() if d.deadline <= target))
    state = replace(state, deletions=FrozenMap((k, d) for k, d in state.deletions.items() if k not in expired))
    state = replace(state, now=target)
    return state, accepted(cascaded=tuple(cascaded), deletions_failed=tuple(p for p, _ in expired))
