"""The world a run takes place in: persons, phones, service providers and variant settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mjpki.spec.assumptions import Variants
from mjpki.spec.domain import PersonId, PhoneId, SEId, SPKind

__all__ = ["PersonSpec", "PhoneSpec", "ServiceProviderSpec", "World", "default_world"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonSpec:
    """A person: an identifier and a birth date (VAL-2 ties expiry to birthdays)."""

    id: PersonId
    birth: date
    has_card: bool = True
    """Whether the person starts with a My Number card and valid card certificates at time 0."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneSpec:
    """A phone's fixed properties; what changes (holder, app, SE contents) is in the state."""

    id: PhoneId
    se_id: SEId
    android: int = 13
    """Android major version; iOS is out of scope (ACT-3)."""
    gp_se: bool = True
    """Has a GP-SE that can install Java Card applets (ACT-3)."""
    nfc: bool = True
    """Can read the My Number card over NFC (ACT-3)."""
    biometric_class3: bool = True
    """Its biometrics are Class 3 (PIN-6)."""
    initial_holder: PersonId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceProviderSpec:
    """A verifier: public or private, approved or not (ACL-3), return URL whitelisted or not (ACL-2)."""

    id: str
    kind: SPKind = SPKind.PUBLIC
    approved: bool = True
    whitelisted: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    """Everything fixed for a run; a trace carries it so that it replays anywhere."""

    persons: tuple[PersonSpec, ...]
    phones: tuple[PhoneSpec, ...]
    service_providers: tuple[ServiceProviderSpec, ...] = (ServiceProviderSpec(id="portal"),)
    variants: Variants = field(default_factory=Variants)

    def __post_init__(self) -> None:
        for what, ids in (
            ("person", [p.id for p in self.persons]),
            ("phone", [p.id for p in self.phones]),
            ("SE-ID", [p.se_id for p in self.phones]),
            ("service provider", [s.id for s in self.service_providers]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"duplicate {what} ids in World: {dupes}; give each a distinct id")
        known = {p.id for p in self.persons}
        for ph in self.phones:
            if ph.initial_holder is not None and ph.initial_holder not in known:
                raise ValueError(f"phone {ph.id} is held by unknown person {ph.initial_holder!r}")

    def person(self, pid: PersonId) -> PersonSpec:
        """The person with this id (ValueError naming the known ids otherwise)."""
        for p in self.persons:
            if p.id == pid:
                return p
        raise ValueError(f"unknown person {pid!r}; this world has {[p.id for p in self.persons]}")

    def phone(self, did: PhoneId) -> PhoneSpec:
        """The phone with this id (ValueError naming the known ids otherwise)."""
        for p in self.phones:
            if p.id == did:
                return p
        raise ValueError(f"unknown phone {did!r}; this world has {[p.id for p in self.phones]}")

    def phone_by_se(self, se_id: SEId) -> PhoneSpec:
        """The phone whose SE has this SE-ID."""
        for p in self.phones:
            if p.se_id == se_id:
                return p
        raise ValueError(f"unknown SE-ID {se_id!r}")

    def service_provider(self, sid: str) -> ServiceProviderSpec:
        """The service provider with this id."""
        for s in self.service_providers:
            if s.id == sid:
                return s
        raise ValueError(f"unknown service provider {sid!r}; this world has {[s.id for s in self.service_providers]}")

    def to_json(self) -> dict[str, Any]:
        """The world as JSON data (the trace format's `world`)."""
        return {
            "persons": [{"id": p.id, "birth": p.birth.isoformat(), "has_card": p.has_card} for p in self.persons],
            "phones": [
                {
                    "id": p.id,
                    "se_id": p.se_id,
                    "android": p.android,
                    "gp_se": p.gp_se,
                    "nfc": p.nfc,
                    "biometric_class3": p.biometric_class3,
                    "initial_holder": p.initial_holder,
                }
                for p in self.phones
            ],
            "service_providers": [
                {"id": s.id, "kind": s.kind.value, "approved": s.approved, "whitelisted": s.whitelisted} for s in self.service_providers
            ],
            "variants": self.variants.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> World:
        """Read a world written by to_json."""
        return cls(
            persons=tuple(
                PersonSpec(id=p["id"], birth=date.fromisoformat(p["birth"]), has_card=p.get("has_card", True)) for p in data["persons"]
            ),
            phones=tuple(
                PhoneSpec(
                    id=p["id"],
                    se_id=p["se_id"],
                    android=p.get("android", 13),
                    gp_se=p.get("gp_se", True),
                    nfc=p.get("nfc", True),
                    biometric_class3=p.get("biometric_class3", True),
                    initial_holder=p.get("initial_holder"),
                )
                for p in data["phones"]
            ),
            service_providers=tuple(
                ServiceProviderSpec(
                    id=s["id"],
                    kind=SPKind(s.get("kind", "public")),
                    approved=s.get("approved", True),
                    whitelisted=s.get("whitelisted", True),
                )
                for s in data["service_providers"]
            ),
            variants=Variants(**data.get("variants", {})),
        )


def default_world(*, persons: int = 2, phones: int = 3, variants: Variants | None = None) -> World:
    """A small world: persons P1.. with distinct birthdays, phones D1.. (D1 held by P1, D2 by P2, ...)."""
    if persons < 1 or phones < 1:
        raise ValueError("a world needs at least one person and one phone")
    births = (date(1990, 6, 15), date(1985, 11, 3), date(2000, 2, 29), date(1972, 1, 20))
    ps = tuple(PersonSpec(id=f"P{i + 1}", birth=births[i % len(births)].replace(year=births[i % 4].year - i // 4)) for i in range(persons))
    ds = tuple(
        PhoneSpec(
            id=f"D{i + 1}",
            se_id=f"SE-{i + 1:04d}",
            initial_holder=ps[i].id if i < persons else ps[0].id,
        )
        for i in range(phones)
    )
    sps = (
        ServiceProviderSpec(id="portal"),
        ServiceProviderSpec(id="bank", kind=SPKind.PRIVATE, approved=True, whitelisted=True),
        ServiceProviderSpec(id="shady", kind=SPKind.PRIVATE, approved=False, whitelisted=False),
    )
    return World(persons=ps, phones=ds, service_providers=sps, variants=variants or Variants())
