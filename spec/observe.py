"""Observations: the part of a state a system under test can report, which the invariants check.

The spec computes an Observation from its State; an adapter builds one from the system's
records, CRLs and SE contents. The invariants in `properties/` read only Observations, so the
same predicates judge the spec and any implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mjpki.spec.domain import CertStatus, Kind, PersonId, PhoneId, PinStatus, Profile, RevocationReason, SEId, Serial
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.state import CardCert, PhoneCert, PhoneState, State
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


T = TypeVar("T")


class _ByIdentity:
    """A memo of values computed from immutable parts of a state, keyed by those parts' identity.

    A rule returns a new State that shares every map it did not change with the old one, so an observation after a step
    rebuilds only the parts whose maps (and certificate records) are new objects. The memo holds the parts it keys on,
    so their ids are not reused while remembered; it forgets everything when full.
    """

    __slots__ = ("_memo", "_size")

    def __init__(self, size: int) -> None:
        self._memo: dict[tuple[object, ...], tuple[tuple[object, ...], Any]] = {}
        self._size = size

    def get(self, parts: tuple[object, ...], make: Callable[[], T], *, also: object = None) -> T:
        """make()'s value, remembered for these very parts (and an equal `also`, a plain value such as the clock)."""
        key = (also, *map(id, parts))
        hit = self._memo.get(key)
        if hit is not None:
            # The same ids are the same objects: the entry keeps its parts alive, so no other object can have their ids.
            return hit[1]  # type: ignore[no-any-return]
        value = make()
        if len(self._memo) >= self._size:
            self._memo.clear()
        self._memo[key] = (parts, value)
        return value


_VIEWS = _ByIdentity(16384)
"""Certificate record -> its CertView."""
_CERTS = _ByIdentity(4096)
"""(card_certs, phone_certs) -> (the CertViews, the publication)."""
_PHONES = _ByIdentity(4096)
"""(world, phones) -> (slots, holders)."""
_SLOTS = _ByIdentity(16384)
"""(world, one phone's state) -> its SlotViews."""
_HOLDERS: dict[tuple[tuple[PhoneId, PersonId | None], ...], FrozenMap[PhoneId, PersonId | None]] = {}
"""The phones' holders -> the holders map (a handful of distinct values per world)."""
_OBSERVATIONS = _ByIdentity(4096)
"""(now, the parts above) -> the Observation: a step that changed nothing observed gives the very same object."""
_PERSONS = _ByIdentity(4096)
"""persons -> current card certificates."""


def _view(c: CardCert) -> CertView:
    phone = isinstance(c, PhoneCert)
    return CertView(
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


def _certs(state: State) -> tuple[tuple[CertView, ...], frozenset[tuple[Profile, Serial, CertStatus]]]:
    certs = tuple(_VIEWS.get((c,), lambda c=c: _view(c)) for c in (*state.card_certs.values(), *state.phone_certs.values()))
    # CA-4: each revoked or suspended certificate is on its own profile's CRL and OCSP.
    published = frozenset((c.profile, c.serial, c.status) for c in certs if c.status is not CertStatus.ACTIVE)
    return certs, published


def _phone_slots(world: World, pid: PhoneId, ps: PhoneState) -> tuple[SlotView, ...]:
    se_id = world.phone(pid).se_id
    return tuple(
        SlotView(
            phone=pid,
            se_id=se_id,
            kind=kind,
            key=f"K{slot.key_id}",
            cert_serial=slot.cert_serial,
            pin_status=slot.pin_status,
            tries_left=slot.tries_left,
        )
        for kind, slot in ps.se.slots.items()
    )


def _phones(world: World, state: State) -> tuple[tuple[SlotView, ...], FrozenMap[PhoneId, PersonId | None]]:
    slots = tuple(
        view for pid, ps in state.phones.items() for view in _SLOTS.get((world, ps), lambda pid=pid, ps=ps: _phone_slots(world, pid, ps))
    )
    held = tuple((pid, ps.holder) for pid, ps in state.phones.items())
    holders = _HOLDERS.get(held)
    if holders is None:
        if len(_HOLDERS) >= 4096:
            _HOLDERS.clear()
        holders = _HOLDERS[held] = FrozenMap(held)
    return slots, holders


_KINDS = tuple(Kind)
"""Iterating an enum class is slow; the current-card map is rebuilt whenever a person's record changes."""


def _current(state: State) -> FrozenMap[tuple[PersonId, Kind], Serial]:
    return FrozenMap(
        ((pid, kind), serial) for pid, p in state.persons.items() for kind in _KINDS if (serial := p.current(kind)) is not None
    )


def observe(world: World, state: State) -> Observation:
    """The spec's own observation of a state (built from the parts of the state that changed since one observed before)."""
    certs, published = _CERTS.get((state.card_certs, state.phone_certs), lambda: _certs(state))
    slots, holders = _PHONES.get((world, state.phones), lambda: _phones(world, state))
    current = _PERSONS.get((state.persons,), lambda: _current(state))
    return _OBSERVATIONS.get(
        (certs, slots, holders, current, state.linkage),
        lambda: Observation(
            now=state.now, certs=certs, published=published, linkage=state.linkage, current_card=current, slots=slots, holders=holders
        ),
        also=state.now,
    )
