"""The suite's side of `mjpki-adapter/1`: a `SystemAdapter` whose calls are messages over a `Transport`.

`WireFactory` is an `AdapterFactory`: each call sends `new` (connecting first, or reconnecting after the transport
failed) and returns a `WireAdapter` for that system. The adapter has `artefacts()`, `ocsp()` and `se_apdu()` only when the
other side offers them (its capabilities), so the suite's `getattr(system, "artefacts", None)` sees what the system can do.
Every failure (a deadline, a dead process, a malformed reply, `ok: false`) is an `AdapterError`: a failed step.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from mjpki.adapters.artefacts import Artefacts
from mjpki.adapters.system import AdapterError
from mjpki.spec.actions import Action
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.world import World
from mjpki.wire.protocol import (
    CAPABILITIES,
    PROTOCOL,
    AdapterSaid,
    Hello,
    ProtocolError,
    artefacts_from,
    observation_from,
    outcome_from,
    parse_hello,
)

__all__ = ["Transport", "WireAdapter", "WireFactory"]


class Transport(Protocol):
    """Carries one request to the adapter and brings back its reply (the raw JSON object, `id` already checked)."""

    name: str

    def call(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send message and return the reply; AdapterError when the transport fails, AdapterSaid for ok: false."""
        ...

    @property
    def alive(self) -> bool:
        """False once the transport failed (the factory then opens a new one)."""
        ...

    def shutdown(self) -> None:
        """Release the transport (end the child process, for a shim); idempotent."""
        ...


class WireAdapter:
    """One system on the other side of a transport."""

    def __init__(self, transport: Transport, *, session: dict[str, Any], timeout: float) -> None:
        self._transport = transport
        self._session = session
        self._timeout = timeout
        self._closed = False

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        try:
            return self._transport.call({"op": op, **self._session, **fields}, timeout=self._timeout)
        except AdapterSaid as exc:
            raise AdapterError(f"{op}: {exc}") from None

    def step(self, action: Action) -> Outcome:
        """Send the action; the reply's outcome."""
        reply = self._call("step", action=action.to_json())
        try:
            return outcome_from(reply.get("outcome"))
        except ProtocolError as exc:
            raise AdapterError(f"step reply: {exc}") from None

    def observation(self) -> Observation:
        """Ask for the observation."""
        reply = self._call("observation")
        try:
            return observation_from(reply.get("observation"))
        except ProtocolError as exc:
            raise AdapterError(f"observation reply: {exc}") from None

    def close(self) -> None:
        """Release the system on the other side (the transport stays for the next system)."""
        if self._closed or not self._transport.alive:
            return
        self._closed = True
        self._call("close")


class _WithArtefacts:
    def artefacts(self: Any) -> Artefacts:
        """The system's published artefacts (offered: `artefacts` in its capabilities)."""
        reply = self._call("artefacts")
        try:
            return artefacts_from(reply.get("artefacts"))
        except ProtocolError as exc:
            raise AdapterError(f"artefacts reply: {exc}") from None


class _WithOcsp:
    def ocsp(self: Any, request: bytes) -> bytes:
        """The system's OCSP answer to a DER request (offered: `ocsp` in its capabilities)."""
        reply = self._call("ocsp", request=base64.b64encode(request).decode("ascii"))
        response = reply.get("response")
        try:
            return base64.b64decode(response if isinstance(response, str) else "-", validate=True)
        except ValueError:
            raise AdapterError("ocsp reply: response must be base64 DER") from None


class _WithSeApdu:
    def se_apdu(self: Any, phone: str, apdu: bytes) -> bytes:
        """The response (data || SW) of the phone's SE to one command APDU (offered: `se_apdu` in its capabilities)."""
        reply = self._call("se_apdu", phone=phone, apdu=base64.b64encode(apdu).decode("ascii"))
        response = reply.get("response")
        try:
            return base64.b64decode(response if isinstance(response, str) else "-", validate=True)
        except ValueError:
            raise AdapterError("se_apdu reply: response must be base64 (data || SW)") from None


@cache
def _adapter_class(capabilities: frozenset[str]) -> type[WireAdapter]:
    """WireAdapter with exactly the optional methods the system offers."""
    bases: list[type] = []
    if "artefacts" in capabilities:
        bases.append(_WithArtefacts)
    if "ocsp" in capabilities:
        bases.append(_WithOcsp)
    if "se_apdu" in capabilities:
        bases.append(_WithSeApdu)
    if not bases:
        return WireAdapter
    name = "WireAdapter_" + "_".join(sorted(capabilities))
    return type(name, (*bases, WireAdapter), {"__slots__": (), "__doc__": WireAdapter.__doc__})


class WireFactory:
    """An AdapterFactory over a transport: connects on first use and again after the transport failed."""

    enforces_deadline = True
    """Every call it and its adapters make carries its own deadline (the transport fails it, killing a hung child), so
    the lockstep makes their calls on its own thread, with no worker thread to time them (mjpki.lockstep.Lockstep)."""

    def __init__(
        self, connect: Callable[[], Transport], *, name: str, timeout: float, start_timeout: float, sessions: Callable[[], dict[str, Any]]
    ) -> None:
        self._connect = connect
        self.name = name
        self.__qualname__ = name
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._sessions = sessions
        self._transport: Transport | None = None
        self._hello: Hello | None = None

    def __call__(self, world: World) -> WireAdapter:
        """A fresh system in the world's initial state, on the other side of the transport."""
        began = time.monotonic()
        transport, hello = self._ready()
        session = self._sessions()
        left = max(self.start_timeout - (time.monotonic() - began), 1.0)  # starting and building share one deadline
        try:
            reply = transport.call({"op": "new", **session, "world": world.to_json()}, timeout=left)
        except AdapterSaid as exc:
            raise AdapterError(f"the adapter could not build a system (new): {exc}") from None
        caps = reply.get("capabilities")
        offered = hello.capabilities
        if isinstance(caps, list):
            offered = frozenset(c for c in caps if isinstance(c, str)) & frozenset(CAPABILITIES)
        return _adapter_class(offered)(transport, session=session, timeout=self.timeout)

    def _ready(self) -> tuple[Transport, Hello]:
        if self._transport is not None and self._transport.alive and self._hello is not None:
            return self._transport, self._hello
        if self._transport is not None:
            self._transport.shutdown()
        self._transport, self._hello = None, None
        transport = self._connect()
        try:
            reply = transport.call({"op": "hello", "protocol": PROTOCOL}, timeout=self.start_timeout)
            hello = parse_hello(reply)
        except AdapterSaid as exc:
            transport.shutdown()
            raise AdapterError(f"the adapter refused hello: {exc}") from None
        except ProtocolError as exc:
            transport.shutdown()
            raise AdapterError(f"hello: {exc}") from None
        self._transport, self._hello = transport, hello
        return transport, hello

    def hello(self) -> Hello:
        """Connect (if not yet) and return what the adapter said in its hello reply."""
        return self._ready()[1]

    def shutdown(self) -> None:
        """End the transport (the child process, for a shim); the factory reconnects if called again."""
        if self._transport is not None:
            self._transport.shutdown()
        self._transport, self._hello = None, None
