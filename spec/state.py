"""The spec state: immutable records of the JPKI system, the phones and their SEs, and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from mjpki.spec.clock import fifth_birthday_expiry
from mjpki.spec.domain import (
    CertStatus,
    HoldCause,
    Kind,
    PersonId,
    PhoneId,
    PinStatus,
    Profile,
    RevocationReason,
    SEId,
    Serial,
)
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.world import World

__all__ = [
    "CardCert",
    "PhoneCert",
    "Slot",
    "SecureElement",
    "PhoneState",
    "Application",
    "Deletion",
    "PersonState",
    "State",
    "initial_state",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CardCert:
    """A card certificate record at the JPKI system."""

    serial: Serial
    person: PersonId
    kind: Kind
    issued_at: int
    expiry: int
    status: CertStatus = CertStatus.ACTIVE
    holds: frozenset[HoldCause] = frozenset()
    revoked_at: int | None = None
    reason: RevocationReason | None = None

    profile = Profile.CARD

    def expired(self, now: int) -> bool:
        """True once the validity period has ended (VAL-3)."""
        return now >= self.expiry

    def in_force(self, now: int) -> bool:
        """Active and not expired: what a verifier accepts (REV-5, SUS-4)."""
        return self.status is CertStatus.ACTIVE and not self.expired(now)

    def live(self, now: int) -> bool:
        """Not revoked and not expired (a suspended certificate is live but not in force)."""
        return self.status is not CertStatus.REVOKED and not self.expired(now)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneCert(CardCert):
    """A phone certificate record: a card certificate's fields plus its linkage and key."""

    se_id: SEId
    card_serial: Serial
    """The card signing certificate it was issued on, or re-linked to when resumed after a found card (LNK-2); the
    SE-ID is recorded against it (LNK-6)."""
    follows: frozenset[Serial]
    """The card certificates whose revocation (REV-2) and suspension (SUS-2) it follows and whose expiry it took
    (VAL-1): the card signing certificate as launched, others under the phone_linkage variant (ASM-PHONE-LINKAGE)."""
    key_id: int
    """The public key certified; the private key exists only in the SE (ISS-5)."""
    commitment: int
    """The S = H(R) of the application it was issued on (ISS-6)."""
    presented_r: int
    """The R the SE uploaded with the public key; the CA certified only if H(R) = S."""
    push_token: int | None
    """The registering app install's push token, used for remote deletion (MCH-2)."""

    profile = Profile.PHONE


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One kind's data in the JPKI applet: key pair, certificate, PIN."""

    person: PersonId
    key_id: int
    cert_serial: Serial
    pin_status: PinStatus
    pin: str | None
    tries_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SecureElement:
    """A phone's GP-SE as far as JPKI goes: applet present, pending random R, one slot per kind."""

    applet: bool = False
    nonce: int | None = None
    """The random R generated for the pending application (ISS-2); S = H(R) left with the application."""
    slots: FrozenMap[Kind, Slot] = field(default_factory=FrozenMap)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneState:
    """What changes about a phone: its holder, the app install, connectivity, screen lock, SE."""

    holder: PersonId | None
    app_token: int | None = None
    """The push token of the installed app; None when the app is not installed."""
    applet_ready: bool = False
    """The applet check (ISS-8) ran for the current app install."""
    online: bool = True
    push_enabled: bool = True
    os_auth_enrolled: bool = False
    last_primary_auth: int | None = None
    held_pins: FrozenMap[Kind, str] = field(default_factory=FrozenMap)
    """PINs the user chose, held by the app until set through the temporary PIN (PIN-2)."""
    se: SecureElement = field(default_factory=SecureElement)


@dataclass(frozen=True, slots=True, kw_only=True)
class Application:
    """A pending application for phone certificates (ISS-2): the commitment S and what was asked."""

    person: PersonId
    phone: PhoneId
    se_id: SEId
    kinds: frozenset[Kind]
    commitment: int
    card_serial: Serial
    push_token: int
    push_due: int
    notified: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Deletion:
    """A remote deletion request waiting for the old phone (MCH-2)."""

    phone: PhoneId
    person: PersonId
    serials: frozenset[Serial]
    push_token: int | None
    deadline: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonState:
    """A person's current card certificates (None when there is none)."""

    card_signing: Serial | None = None
    card_auth: Serial | None = None

    def current(self, kind: Kind) -> Serial | None:
        """The current card certificate serial of this kind."""
        return self.card_signing if kind is Kind.SIGNING else self.card_auth


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """The whole spec state. Immutable; rules return new states."""

    now: int = 0
    fresh: int = 1
    """The next fresh value for serials, keys, nonces and push tokens (all distinct)."""
    persons: FrozenMap[PersonId, PersonState] = field(default_factory=FrozenMap)
    card_certs: FrozenMap[Serial, CardCert] = field(default_factory=FrozenMap)
    phone_certs: FrozenMap[Serial, PhoneCert] = field(default_factory=FrozenMap)
    linkage: FrozenMap[Serial, SEId] = field(default_factory=FrozenMap)
    """Card signing serial -> SE-ID of the SE where the phone key pair was generated (LNK-6)."""
    applications: FrozenMap[PersonId, Application] = field(default_factory=FrozenMap)
    deletions: FrozenMap[tuple[PhoneId, PersonId], Deletion] = field(default_factory=FrozenMap)
    phones: FrozenMap[PhoneId, PhoneState] = field(default_factory=FrozenMap)

    # --- queries shared by rules and invariants ---

    def card_cert(self, person: PersonId, kind: Kind) -> CardCert | None:
        """The person's current card certificate of this kind."""
        serial = self.persons[person].current(kind)
        return None if serial is None else self.card_certs[serial]

    def phone_certs_of(self, person: PersonId) -> tuple[PhoneCert, ...]:
        """Every phone certificate ever issued to the person, oldest first."""
        return tuple(c for c in self.phone_certs.values() if c.person == person)

    def live_phone_certs(self, person: PersonId) -> tuple[PhoneCert, ...]:
        """The person's phone certificates that are neither revoked nor expired."""
        return tuple(c for c in self.phone_certs_of(person) if c.live(self.now))

    def issued(self, person: PersonId, kind: Kind, profile: Profile) -> tuple[CardCert, ...]:
        """The person's certificates of this kind and profile, in the order the CA issued them (ASM-CERTIFICATE-BY-ISSUE-ORDER)."""
        records = self.card_certs if profile is Profile.CARD else self.phone_certs
        return tuple(sorted((c for c in records.values() if c.person == person and c.kind is kind), key=lambda c: c.serial))

    def phone_slot_cert(self, phone: PhoneId, kind: Kind) -> PhoneCert | None:
        """The certificate record of the certificate written in the phone's SE slot, if any."""
        slot = self.phones[phone].se.slots.get(kind)
        return None if slot is None else self.phone_certs.get(slot.cert_serial)

    def with_phone(self, phone: PhoneId, **changes: Any) -> State:
        """A copy with the phone's state changed."""
        return replace(self, phones=self.phones.set(phone, replace(self.phones[phone], **changes)))

    def with_se(self, phone: PhoneId, **changes: Any) -> State:
        """A copy with the phone's SE changed."""
        ps = self.phones[phone]
        return self.with_phone(phone, se=replace(ps.se, **changes))

    def take_fresh(self) -> tuple[int, State]:
        """A fresh value and the state that has used it."""
        return self.fresh, replace(self, fresh=self.fresh + 1)


@lru_cache(maxsize=64)
def initial_state(world: World) -> State:
    """Time 0: persons with cards get card certificates; phones are with their initial holders.

    Remembered per world (states never change): every run of a search starts from the very same object, so the oracle,
    a spec adapter and the observation's memo (mjpki.spec.observe) share its parts instead of building them per run."""
    state = State(
        persons=FrozenMap((p.id, PersonState()) for p in world.persons),
        phones=FrozenMap((ph.id, PhoneState(holder=ph.initial_holder)) for ph in world.phones),
    )
    for p in world.persons:
        if p.has_card:
            for kind in (Kind.SIGNING, Kind.AUTH):
                state = issue_card_cert(world, state, p.id, kind)
    return state


def issue_card_cert(world: World, state: State, person: PersonId, kind: Kind, *, expiry: int | None = None) -> State:
    """Issue a card certificate (VAL-2 expiry unless given) and make it the person's current one."""
    serial, state = state.take_fresh()
    exp = fifth_birthday_expiry(world.person(person).birth, state.now) if expiry is None else expiry
    cert = CardCert(serial=serial, person=person, kind=kind, issued_at=state.now, expiry=exp)
    ps = state.persons[person]
    ps = replace(ps, card_signing=serial) if kind is Kind.SIGNING else replace(ps, card_auth=serial)
    return replace(state, card_certs=state.card_certs.set(serial, cert), persons=state.persons.set(person, ps))
