"""The system side of `mjpki-adapter/1` for a Python adapter: requests in, the adapter's answers out.

A `Session` holds at most one system at a time (`new` replaces it) and turns each request into a call on the
`SystemAdapter` a factory built; `serve_stdio` runs one session over stdin/stdout, one JSON line each way. Whatever the
adapter raises, BaseException included (SystemExit, KeyboardInterrupt, MemoryError), becomes an `ok: false` reply, so
the suite reports it as the failure of that step. What the adapter prints goes to stderr: stdout carries the protocol.
"""

from __future__ import annotations

import os
import sys
import typing
from collections.abc import Callable
from typing import Any, BinaryIO

from mjpki.adapters.system import AdapterFactory, SystemAdapter
from mjpki.wire.protocol import (
    CAPABILITIES,
    MAX_LINE,
    PROTOCOL,
    ProtocolError,
    action_from,
    artefacts_to,
    dumps,
    observation_to,
    outcome_to,
    world_from,
)

__all__ = ["Session", "factory_capabilities", "serve_stdio"]


def _capabilities_of(obj: object) -> list[str]:
    return [c for c in CAPABILITIES if callable(getattr(obj, c, None))]


def factory_capabilities(factory: AdapterFactory) -> list[str]:
    """The optional ops the factory's systems offer, as far as can be told before one is built (its class or return type)."""
    if isinstance(factory, type):
        return _capabilities_of(factory)
    try:
        made = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: nothing can be told; each `new` reply says it exactly
        return []
    return _capabilities_of(made) if isinstance(made, type) else []


class Session:
    """One client's system: built by `new`, driven by step/observation/artefacts/ocsp/se_apdu, released by `close`."""

    def __init__(self, factory: AdapterFactory, *, name: str) -> None:
        self.factory = factory
        self.name = name
        self.system: SystemAdapter | None = None

    def handle(self, message: Any) -> dict[str, Any]:
        """The reply to one request (never raises for anything the request or the adapter does)."""
        ident = message.get("id") if isinstance(message, dict) else None
        try:
            if not isinstance(message, dict):
                raise ProtocolError("a request is a JSON object {id, op, ...}")
            return {"id": ident, "ok": True, **self._dispatch(message)}
        except ProtocolError as exc:
            return {"id": ident, "ok": False, "error": f"bad request: {exc}"}
        except BaseException as exc:
            return {"id": ident, "ok": False, "error": f"the adapter raised {type(exc).__name__}: {exc}"}

    def _dispatch(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "hello":
            return {"protocol": PROTOCOL, "adapter": self.name, "capabilities": factory_capabilities(self.factory)}
        if op == "new":
            self._release()
            world = world_from(message.get("world"))
            self.system = self.factory(world)
            return {"capabilities": _capabilities_of(self.system)}
        if op == "close":
            self._release()
            return {}
        system = self._system(op)
        if op == "step":
            return {"outcome": outcome_to(system.step(action_from(message.get("action"))))}
        if op == "observation":
            return {"observation": observation_to(system.observation())}
        if op in CAPABILITIES:
            call: Callable[..., Any] | None = getattr(system, op, None)
            if call is None:
                raise ProtocolError(f"this adapter does not offer {op} (not in its capabilities)")
            if op == "artefacts":
                return {"artefacts": artefacts_to(call())}
            import base64

            if op == "se_apdu":
                phone = message.get("phone")
                if not isinstance(phone, str) or not phone:
                    raise ProtocolError("se_apdu.phone must be a phone id")
                response = call(phone, _base64(message.get("apdu"), "se_apdu.apdu"))
                if not isinstance(response, bytes | bytearray):
                    raise TypeError(f"se_apdu returned {type(response).__name__}, not bytes")
                return {"response": base64.b64encode(bytes(response)).decode("ascii")}
            der = _base64(message.get("request"), "ocsp.request")
            return {"response": base64.b64encode(call(der)).decode("ascii")}
        raise ProtocolError(f"unknown op {op!r}")

    def _system(self, op: object) -> SystemAdapter:
        if self.system is None:
            raise ProtocolError(f"{op} before new: there is no system")
        return self.system

    def _release(self) -> None:
        system, self.system = self.system, None
        if system is not None:
            system.close()


def _base64(value: Any, where: str) -> bytes:
    import base64
    import binascii

    if not isinstance(value, str):
        raise ProtocolError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{where} is not valid base64") from None


def serve_stdio(factory: AdapterFactory, *, name: str) -> int:
    """Answer requests from stdin on the original stdout until stdin ends; the adapter's own prints go to stderr."""
    proto_out: BinaryIO = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # print() in the adapter, even from C code, must not corrupt the protocol channel
    sys.stdout = sys.stderr
    session = Session(factory, name=name)
    stdin = sys.stdin.buffer
    try:
        while True:
            line = stdin.readline(MAX_LINE + 1)
            if not line:
                break
            if len(line) > MAX_LINE:
                proto_out.write(dumps({"id": None, "ok": False, "error": f"bad request: a line longer than {MAX_LINE} bytes"}))
                break
            if not line.strip():
                continue
            try:
                import json

                message = json.loads(line)
            except ValueError as exc:
                reply: dict[str, Any] = {"id": None, "ok": False, "error": f"bad request: not JSON ({exc})"}
            else:
                reply = session.handle(message)
            proto_out.write(dumps(reply))
    finally:
        try:
            session.handle({"id": None, "op": "close"})
        finally:
            proto_out.close()
    return 0
