"""Observations: the part of a state a system under test can report, which the invariants check.

The spec computes an Observation from its State; an adapter builds one from the system's
records, CRLs and SE contents. The invariants in `properties/` read only Observations, so the
same predicates judge the spec and any implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mjpki.spec.domain import CertStatus, Kind, PersonId, PhoneId, PinStatus, Profile, RevocationReason, SEId, Serial
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.state import PhoneCert, State
from mjpki.spec.world import World

__all__ = ["CertView", "SlotView", "Observation", "observe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CertView:
    """A certificate as the JPKI system's records show it."""

    serial: Serial
    profile: Profile
    kind: Kind
    person: PersonId
    status: CertStatus
    issued_at: int
    expiry: int
    revoked_at: int | None = None
    reason: RevocationReason | None = None
    card_serial: Serial | None = None
    """Phone certificates: the linked card signing certificate (LNK-2)."""
    follows: frozenset[Serial] | None = None
    """Phone certificates: the card certificates whose revocation and suspension it follows (ASM-PHONE-LINKAGE). None:
    not reported, read as the card signing certificate it is linked to (the default reading)."""
    se_id: SEId | None = None
    key: str | None = None
    """Phone certificates: an opaque identifier of the certified public key."""
    commitment_ok: bool | None = None
    """Phone certificates: the R uploaded with the key matched the application's S (None: not reported)."""

    def in_force(self, now: int) -> bool:
        """Active and not expired."""
        return self.status is CertStatus.ACTIVE and now < self.expiry

    def live(self, now: int) -> bool:
        """Neither revoked nor expired."""
        return self.status is not CertStatus.REVOKED and now < self.expiry

    def followed(self) -> frozenset[Serial]:
        """The card certificates it follows, as reported or (None) by default: its card signing certificate."""
        if self.follows is not None:
            return self.follows
        return frozenset() if self.card_serial is None else frozenset({self.card_serial})


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotView:
    """One kind's data in a phone's JPKI applet."""

    phone: PhoneId
    se_id: SEId
    kind: Kind
    key: str
    cert_serial: Serial
    pin_status: PinStatus
    tries_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the invariants may look at."""

    now: int
    certs: tuple[CertView, ...]
    published: frozenset[tuple[Profile, Serial, CertStatus]]
    """CRL/OCSP: (profile whose list it is on, serial, REVOKED or SUSPENDED for certificateHold)."""
    linkage: FrozenMap[Serial, SEId]
    current_card: FrozenMap[tuple[PersonId, Kind], Serial]
    slots: tuple[SlotView, ...]
    holders: FrozenMap[PhoneId, PersonId | None] = field(default_factory=FrozenMap)

    def cert(self, serial: Serial) -> CertView | None:
        """The certificate with this serial (the first, should a faulty system report two)."""
        for c in self.certs:
            if c.serial == serial:
                return c
        return None

    def slot(self, phone: PhoneId, kind: Kind) -> SlotView | None:
        """The applet slot of this kind on this phone."""
        for s in self.slots:
            if s.phone == phone and s.kind is kind:
                return s
        return None

    def to_json(self) -> dict[str, Any]:
        """A compact JSON rendering, for counterexample reports."""
        return {
            "now": self.now,
            "certs": [
                {
                    "serial": c.serial,
                    "profile": c.profile.value,
                    "kind": c.kind.value,
                    "person": c.person,
                    "status": c.status.value,
                    "expiry": c.expiry,
                    "card_serial": c.card_serial,
                    "follows": None if c.follows is None else sorted(c.follows),
                    "se_id": c.se_id,
                }
                for c in self.certs
            ],
            "slots": [
                {"phone": s.phone, "kind": s.kind.value, "cert_serial": s.cert_serial, "pin": s.pin_status.value} for s in self.slots
            ],
        }


def observe(world: World, state: State) -> Observation:
    """The spec's own observation of a state."""
    certs: list[CertView] = []
    for c in (*state.card_certs.values(), *state.phone_certs.values()):
        phone = isinstance(c, PhoneCert)
        certs.append(
            CertView(
                serial=c.serial,
                profile=c.profile,
                kind=c.kind,
                person=c.person,
                status=c.status,
                issued_at=c.issued_at,
                expiry=c.expiry,
                revoked_at=c.revoked_at,
                reason=c.reason,
                card_serial=c.card_serial if phone else None,  # type: ignore[attr-defined]
                follows=c.follows if phone else None,  # type: ignore[attr-defined]
                se_id=c.se_id if phone else None,  # type: ignore[attr-defined]
                key=f"K{c.key_id}" if phone else None,  # type: ignore[attr-defined]
                commitment_ok=(c.commitment == c.presented_r) if phone else None,  # type: ignore[attr-defined]
            )
        )
    # CA-4: each revoked or suspended certificate is on its own profile's CRL and OCSP.
    published = frozenset((c.profile, c.serial, c.status) for c in certs if c.status is not CertStatus.ACTIVE)
    slots = tuple(
        SlotView(
            phone=pid,
            se_id=world.phone(pid).se_id,
            kind=kind,
            key=f"K{slot.key_id}",
            cert_serial=slot.cert_serial,
            pin_status=slot.pin_status,
            tries_left=slot.tries_left,
        )
        for pid, ps in state.phones.items()
        for kind, slot in ps.se.slots.items()
    )
    current = FrozenMap(
        ((pid, kind), serial) for pid, p in state.persons.items() for kind in Kind if (serial := p.current(kind)) is not None
    )
    return Observation(
        now=state.now,
        certs=tuple(certs),
        published=published,
        linkage=state.linkage,
        current_card=current,
        slots=slots,
        holders=FrozenMap((pid, ps.holder) for pid, ps in state.phones.items()),
    )
