"""The applet-level adapter interface: how the suite drives one JPKI applet (a phone's SE, or a card in a reader).

The system-level suite (`mjpki.adapters.system`) drives a whole deployment; this one drives a single applet byte by byte,
through whatever carries APDUs to it. Two implementations come with mjpki:

    ReferenceApplet(GpSe(...))             the reference GP-SE in process (this module)
    PcscApplet("Virtual PCD 00 00")        any PC/SC reader, chosen by name or substring (mjpki.adapters.pcsc)

`mjpki.adapters.applet_checks.run_checks(adapter, keys)` runs the applet-level conformance checks through any of them. The
APDUs an applet must answer, and how, are in docs/apdu-interface.md.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mjpki.impl.se import GpSe

__all__ = ["AppletAdapter", "AppletAdapterError", "ReferenceApplet"]


class AppletAdapterError(Exception):
    """The transport failed (no reader, card removed, link broken): not an answer of the applet."""


@runtime_checkable
class AppletAdapter(Protocol):
    """One applet behind one transport: send command APDUs, reset the card, let go.

    An adapter carries bytes and nothing else: it must not retry, split, wrap or interpret commands, and must not
    answer for the applet (no GET RESPONSE or 61xx/6Cxx handling beyond what the transport itself does). Transport
    failures raise AppletAdapterError; every answer of the applet, whatever its status word, is returned.
    """

    @property
    def name(self) -> str:
        """A human-readable name of what is being driven (reader name, "reference GpSe SE-0001", ...)."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one short command APDU exactly as given; return the response data followed by SW1 SW2 (at least 2 bytes)."""
        ...

    def reset(self) -> None:
        """Power-cycle (or warm-reset) the card: afterwards nothing is selected, no PIN is verified, no secure channel is
        open, as after insertion. Non-volatile state (keys, certificates, PINs, counters) stays."""
        ...

    def close(self) -> None:
        """Release the reader or card; the adapter is not used afterwards. Calling it twice is harmless."""
        ...


class ReferenceApplet:
    """The reference GP-SE (mjpki.impl.se.GpSe) in process, reached as a contact reader would reach it (caller None)."""

    def __init__(self, se: GpSe, *, caller: bytes | None = None) -> None:
        self.se = se
        self._caller = caller
        self._closed = False

    @property
    def name(self) -> str:
        """The SE-ID of the wrapped SE."""
        return f"reference GpSe {self.se.se_id}"

    def transmit(self, apdu: bytes) -> bytes:
        """GpSe.transmit with this adapter's caller (None: a reader, admitted iff the SE's reader_access)."""
        if self._closed:
            raise AppletAdapterError("the adapter is closed")
        return self.se.transmit(bytes(apdu), caller=self._caller)

    def set_caller(self, caller: bytes | None) -> None:
        """Send the following commands as another app (its certificate's SHA-256) or as a reader (None): ACL-1 checks.

        An optional capability of an AppletAdapter: the applet search uses it when the adapter has it.
        """
        if caller is not None and len(caller) != 32:
            raise ValueError("a caller is the 32-byte SHA-256 of an app's signing certificate, or None for a reader")
        self._caller = caller

    def reset(self) -> None:
        """GpSe.power_reset."""
        if self._closed:
            raise AppletAdapterError("the adapter is closed")
        self.se.power_reset()

    def close(self) -> None:
        """Nothing is held; later calls raise AppletAdapterError."""
        self._closed = True
