"""One spec, two levels: the abstraction from the applet-level model's state to the lifecycle spec's SecureElement.

The lifecycle spec (spec/state.py) sees a phone's SE as `SecureElement(applet, nonce, slots)`, each slot
`Slot(person, key_id, cert_serial, pin_status, pin, tries_left)`. The applet-level model (spec/apdu/state.py) knows far
more (sessions, EFs, chains, public keys). `se_view` keeps only the facts both levels state about a card: applet
installed, R pending, and per kind key present, certificate serial, PIN status and tries left. `lifecycle_view` maps
the lifecycle SecureElement to the same summary, so that a refinement test can compare the two after each TSM script
(tests/test_apdu_refinement.py).

Not abstracted: the lifecycle slot's `person` and `key_id` (the card knows neither), its `pin` value (secret in both),
the nonce's value (the card shows only that R is pending), the temporary PIN's tries and the CA certificates (the
lifecycle spec has neither).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mjpki.spec import state as lifecycle
from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.state import CardState
from mjpki.spec.apdu.state import Slot as CardSlot
from mjpki.spec.apdu.tlv import TlvError, parse_tlv
from mjpki.spec.domain import Kind, PinStatus
from mjpki.spec.fmap import FrozenMap

__all__ = ["EMPTY", "SlotView", "SeView", "SlotStatusError", "se_view", "lifecycle_view", "slot_view", "parse_slot_status"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotView:
    """One kind's facts as both levels state them."""

    key: bool
    cert_serial: int | None
    pin_status: PinStatus | None
    tries_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SeView:
    """An SE's JPKI facts as both levels state them; `slots` holds only the non-empty ones (as the lifecycle's map does)."""

    applet: bool = False
    r_pending: bool = False
    slots: FrozenMap[Kind, SlotView] = field(default_factory=FrozenMap)


EMPTY = SlotView(key=False, cert_serial=None, pin_status=None, tries_left=0)
"""An emptied slot (no key, certificate or PIN): the lifecycle spec has no slot for it at all."""


def slot_view(slot: CardSlot) -> SlotView:
    """One applet-level slot's facts."""
    return SlotView(key=slot.key, cert_serial=slot.serial, pin_status=slot.pin_status, tries_left=slot.tries)


def se_view(state: CardState) -> SeView:
    """The applet-level model's card, seen as the lifecycle spec sees an SE."""
    applet = state.applet
    if applet is None:
        return SeView()
    slots = FrozenMap((kind, view) for kind, slot in applet.slots.items() if (view := slot_view(slot)) != EMPTY)
    return SeView(applet=True, r_pending=applet.r_pending, slots=slots)


def lifecycle_view(se: lifecycle.SecureElement) -> SeView:
    """The lifecycle spec's SE, in the same terms: a lifecycle slot always holds a key (it is made at Register)."""
    slots = FrozenMap(
        (kind, SlotView(key=True, cert_serial=s.cert_serial, pin_status=s.pin_status, tries_left=s.tries_left))
        for kind, s in se.slots.items()
    )
    return SeView(applet=se.applet, r_pending=se.nonce is not None, slots=slots)


class SlotStatusError(ValueError):
    """GET SLOT STATUS data that is not what docs/apdu-interface.md says it is."""


_PIN_STATUS = {0x00: None, 0x01: PinStatus.TEMP_BLOCKED, 0x02: PinStatus.SET, 0x03: PinStatus.LOCKED}
_SLOT_TAGS = frozenset({0x83, 0x84, 0xC2, 0x85, 0x86, 0x87})
_MAX_SERIAL = 20
"""A certificate serial is at most 20 bytes (RFC 5280 4.1.2.2), as DELETE's C2 is."""


def _byte(value: bytes, what: str, allowed: range | None = None) -> int:
    if len(value) != 1:
        raise SlotStatusError(f"{what} must be 1 byte, got {len(value)}")
    if allowed is not None and value[0] not in allowed:
        raise SlotStatusError(f"{what} {value[0]:02X} is not one of {allowed.start:02X}..{allowed.stop - 1:02X}")
    return value[0]


def parse_slot_status(data: bytes) -> SeView:
    """GET SLOT STATUS's data (`C3 r-pending`, then one `E1` per kind, auth first) as an installed applet's SeView.

    SlotStatusError for anything else: another tag or order, a missing or repeated fact, a value out of its range.
    """
    try:
        top = parse_tlv(data)
    except TlvError as exc:
        raise SlotStatusError(f"not BER-TLV: {exc}") from None
    want = [0xC3, *(0xE1 for _ in I.KIND_ORDER)]
    if [t for t, _v in top] != want:
        raise SlotStatusError(f"tags {' '.join(f'{t:02X}' for t, _v in top) or '(none)'}, expected C3 E1 E1")
    r_pending = _byte(top[0][1], "C3 r-pending", range(2)) == 1
    slots: list[tuple[Kind, SlotView]] = []
    for kind, (_t, body) in zip(I.KIND_ORDER, top[1:], strict=True):
        try:
            facts = parse_tlv(body)
        except TlvError as exc:
            raise SlotStatusError(f"{kind.value} slot: not BER-TLV: {exc}") from None
        tags = [t for t, _v in facts]
        if len(set(tags)) != len(tags) or not set(tags) <= _SLOT_TAGS or not {0x83, 0x84, 0x85, 0x86, 0x87} <= set(tags):
            raise SlotStatusError(f"{kind.value} slot: tags {' '.join(f'{t:02X}' for t in tags)}, expected 83 84 [C2] 85 86 87")
        got = dict(facts)
        ref = _byte(got[0x83], f"{kind.value} slot: 83 kind-ref")
        if ref != I.KIND_REF[kind]:
            raise SlotStatusError(f"the {kind.value} slot (the {'first' if kind is I.KIND_ORDER[0] else 'second'}) has kind-ref {ref:02X}")
        serial = None
        if 0xC2 in got:
            raw = got[0xC2]
            if not 1 <= len(raw) <= _MAX_SERIAL:
                raise SlotStatusError(f"{kind.value} slot: C2 serial of {len(raw)} bytes (1..{_MAX_SERIAL})")
            serial = int.from_bytes(raw, "big")
        view = SlotView(
            key=_byte(got[0x84], f"{kind.value} slot: 84 key-present", range(2)) == 1,
            cert_serial=serial,
            pin_status=_PIN_STATUS[_byte(got[0x85], f"{kind.value} slot: 85 pin-status", range(4))],
            tries_left=_byte(got[0x86], f"{kind.value} slot: 86 tries-left"),
        )
        _byte(got[0x87], f"{kind.value} slot: 87 temp-tries-left")
        if view != EMPTY:
            slots.append((kind, view))
    return SeView(applet=True, r_pending=r_pending, slots=FrozenMap(slots))
