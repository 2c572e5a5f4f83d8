"""The mapper between the applet model's commands and an applet's bytes: the host side of SCP03, and nothing else.

`AppletHost.run(command)` sends one model command through an `AppletAdapter` and returns what the host saw as an
`Observed`: the status word, the plain data (unwrapped with the host's session where the answer was protected), and
the host's own findings (a card cryptogram or R-MAC that does not verify). The host never consults the model: it keeps
its own SCP03 state, so an applet whose secure channel drifts from the host's shows as a difference.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass

from mjpki.adapters.applet import AppletAdapter, AppletAdapterError
from mjpki.impl.scp03 import SCP03Error, SCP03Host, StaticKeys, initialize_update_command
from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Observed, Reset, Send, SwitchCaller, Tamper, Wrapped

__all__ = ["Exchange", "AppletHost"]

_LEVELS_HOST_BUILDS = (0x01, 0x03, 0x11, 0x13, 0x33)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One command on the wire: the bytes sent (None for a reset), the raw answer, and the host's reading of it."""

    sent: bytes | None
    received: bytes | None
    observed: Observed


class AppletHost:
    """Drives one AppletAdapter with model commands, holding the SCP03 host state (keys of the ISD and of the APSD)."""

    def __init__(self, adapter: AppletAdapter, *, isd_keys: StaticKeys, apsd_keys: StaticKeys | None = None) -> None:
        self.adapter = adapter
        self._keys = {"isd": isd_keys, "apsd": apsd_keys or isd_keys}
        self._pending: SCP03Host | None = None
        self._session: SCP03Host | None = None
        self._last_wrapped: bytes | None = None

    def run(self, command: Command) -> Exchange:
        """Carry out one command; transport failures propagate as AppletAdapterError."""
        if isinstance(command, Reset):
            self.adapter.reset()
            return Exchange(sent=None, received=None, observed=Observed(sw=b""))
        if isinstance(command, SwitchCaller):
            set_caller = getattr(self.adapter, "set_caller", None)
            if set_caller is None:
                raise AppletAdapterError(f"{self.adapter.name} cannot send as another caller (it has no set_caller)")
            set_caller(command.caller)
            return Exchange(sent=None, received=None, observed=Observed(sw=b""))
        if isinstance(command, Send):
            return self._plain(command.apdu)
        if isinstance(command, InitUpdate):
            return self._initialize_update(command)
        if isinstance(command, ExtAuth):
            return self._external_authenticate(command)
        if isinstance(command, Wrapped):
            return self._wrapped(command)
        raise TypeError(f"not an applet command: {command!r}")

    def _transmit(self, apdu: bytes) -> bytes:
        return bytes(self.adapter.transmit(apdu))

    def _plain(self, apdu: bytes) -> Exchange:
        received = self._transmit(apdu)
        return Exchange(sent=apdu, received=received, observed=_split(received))

    def _initialize_update(self, command: InitUpdate) -> Exchange:
        challenge = secrets.token_bytes(8)
        apdu = initialize_update_command(key_version=command.key_version, host_challenge=challenge)
        received = self._transmit(apdu)
        observed = _split(received)
        self._pending = None
        verified: set[str] = set()
        if observed.sw == b"\x90\x00":
            for name, keys in self._keys.items():
                host = SCP03Host(keys, random_bytes=lambda _n, c=challenge: c)
                try:
                    host.initialize_update(challenge)
                    host.process_initialize_update_response(received)
                except (SCP03Error, ValueError):
                    continue
                verified.add(name)
                self._pending = self._pending or host
        observed = Observed(sw=observed.sw, data=observed.data, host_error=observed.host_error, cryptogram_keys=frozenset(verified))
        return Exchange(sent=apdu, received=received, observed=observed)

    def _external_authenticate(self, command: ExtAuth) -> Exchange:
        pending, self._pending = self._pending, None  # one attempt per INITIALIZE UPDATE, as on the card
        apdu: bytes | None = None
        if pending is not None and command.level in _LEVELS_HOST_BUILDS:
            try:
                apdu = pending.external_authenticate(command.level)
            except ValueError:
                apdu = None
        if apdu is None:
            apdu = bytes([0x84, 0x82, command.level, 0x00, 0x10]) + secrets.token_bytes(16)
            pending = None
        if not command.cryptogram_ok:
            apdu = _flip(apdu, 5)
        if not command.mac_ok:
            apdu = _flip(apdu, len(apdu) - 1)
        received = self._transmit(apdu)
        observed = _split(received)
        if observed.sw == b"\x90\x00" and pending is not None and command.cryptogram_ok and command.mac_ok:
            self._session = pending
            self._last_wrapped = None
        return Exchange(sent=apdu, received=received, observed=observed)

    def _wrapped(self, command: Wrapped) -> Exchange:
        if command.tamper is Tamper.REPLAY and self._last_wrapped is not None:
            received = self._transmit(self._last_wrapped)
            return Exchange(sent=self._last_wrapped, received=received, observed=_split(received))
        session = self._session
        if session is None or not session.is_open:
            # No session on the host's side: what a host without keys would send (the C-MAC cannot verify).
            apdu = _fake_wrap(command.apdu)
            received = self._transmit(apdu)
            return Exchange(sent=apdu, received=received, observed=_split(received))
        backup = copy.deepcopy(session) if command.tamper is not Tamper.NONE else None
        apdu = session.wrap(command.apdu)
        if backup is not None:
            apdu = _flip(apdu, _mac_end(apdu) - 1)
            self._session = backup  # the host acts as if the spoiled command had never been sent
            received = self._transmit(apdu)
            return Exchange(sent=apdu, received=received, observed=_split(received))
        self._last_wrapped = apdu
        received = self._transmit(apdu)
        if len(received) < 2:
            return Exchange(sent=apdu, received=received, observed=_split(received))
        try:
            plain = session.unwrap(received)
        except (SCP03Error, ValueError) as exc:
            self._session = None
            observed = _split(received)
            return Exchange(sent=apdu, received=received, observed=Observed(sw=observed.sw, data=observed.data, host_error=str(exc)))
        return Exchange(sent=apdu, received=received, observed=_split(plain))


def _split(response: bytes) -> Observed:
    if len(response) < 2:
        return Observed(sw=b"", data=response, host_error=f"an answer of {len(response)} bytes has no status word")
    return Observed(sw=response[-2:], data=response[:-2])


def _flip(apdu: bytes, index: int) -> bytes:
    out = bytearray(apdu)
    out[index] ^= 0x01
    return bytes(out)


def _mac_end(wrapped: bytes) -> int:
    """The index just past the C-MAC in a wrapped short APDU (data ends before Le, if there is one)."""
    lc = wrapped[4]
    return 5 + lc


def _fake_wrap(plain: bytes) -> bytes:
    head, rest = plain[:4], plain[4:]
    data, le = b"", b""
    if len(rest) == 1:
        le = b"\x00"
    elif rest:
        lc = rest[0]
        data = rest[1 : 1 + lc]
        le = b"\x00" if len(rest) > 1 + lc else b""
    body = data + secrets.token_bytes(8)
    return bytes([head[0] | 0x04]) + head[1:] + bytes([len(body)]) + body + le
