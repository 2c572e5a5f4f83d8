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
from mjpki.spec.apdu.state import CardState
from mjpki.spec.apdu.state import Slot as CardSlot
from mjpki.spec.domain import Kind, PinStatus
from mjpki.spec.fmap import FrozenMap

__all__ = ["EMPTY", "SlotView", "SeView", "se_view", "lifecycle_view", "slot_view"]


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
