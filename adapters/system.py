"""The system-level adapter interface: how the suite drives a whole JPKI deployment under test.

A third party implements one class with three methods and a factory that builds it for a
world. The suite sends it the spec's actions one at a time, compares each outcome with the
spec's, and checks the invariants on what `observation()` reports.

Optional beside it: `artefacts()` and `ocsp()` (mjpki.adapters.artefacts), and `se_apdu(phone, apdu)` (`SeApdu`), through
which the suite reads each phone's SE itself when it is given the SEs' keys (mjpki.se_read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from mjpki.spec.actions import Action
from mjpki.spec.domain import PhoneId
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.world import World

__all__ = ["SystemAdapter", "SeApdu", "AdapterFactory", "AdapterError"]


class AdapterError(Exception):
    """An adapter could not carry out a step at all (as opposed to the system refusing it)."""


@runtime_checkable
class SystemAdapter(Protocol):
    """A system under test, driven by lifecycle operations.

    The harness calls `step` once per action of `mjpki.spec.actions` (never an action the spec
    refuses as environmental: a person acting on a phone they do not hold, time running
    backwards) and `observation` after every step. An adapter must not raise for a refusal:
    a refusal is an Outcome with a reason code from `mjpki.spec.reasons.Reason`. Raising, hanging
    past the harness's step timeout or returning anything but an Outcome counts as a
    conformance failure of that step.
    """

    def step(self, action: Action) -> Outcome:
        """Carry out one action and say what happened: accepted, or refused with a reason code.

        Time moves only with `AdvanceTime(minutes)`: the system's clock must be injectable.
        """
        ...

    def observation(self) -> Observation:
        """What the system's records, CRL/OCSP and SEs show now (see `mjpki.spec.observe.Observation`).

        Serials and key identifiers are the system's own; they need not match the spec's.
        """
        ...

    def close(self) -> None:
        """Release whatever the system holds (files, readers, processes)."""
        ...


@runtime_checkable
class SeApdu(Protocol):
    """The optional method through which the suite reads a phone's SE over APDUs instead of trusting `observation()`."""

    def se_apdu(self, phone: PhoneId, apdu: bytes) -> bytes:
        """Pass one command APDU to the SE of this phone, as the TSMs reach it (through the official app), unchanged; return
        the SE's response, data || SW1 SW2, unchanged. Raise (AdapterError) for a phone the world does not have or an SE
        that cannot be reached; a refusal is a status word, not an exception."""
        ...


AdapterFactory = Callable[[World], SystemAdapter]
"""Builds a fresh system in the initial state of a world (persons with valid card certificates at time 0)."""
