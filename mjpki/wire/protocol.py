"""The messages of `mjpki-adapter/1` and their codecs: one JSON object per request, one per reply.

A request is `{"id": N, "op": OP, ...}`; its reply `{"id": N, "ok": true, ...}` or `{"id": N, "ok": false, "error": TEXT}`
(the system cannot carry the request out at all: an AdapterError, a failed step; a refusal is an outcome, not an error).
Over stdin/stdout each message is one line of UTF-8 JSON; over HTTP each request is the body of a POST.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mjpki.adapters.artefacts import Artefacts
from mjpki.spec.actions import Action, action_from_json
from mjpki.spec.codec import CodecError, decode, encode
from mjpki.spec.observe import CertView, Observation, SlotView
from mjpki.spec.outcome import Outcome
from mjpki.spec.reasons import Reason
from mjpki.spec.world import World

__all__ = [
    "PROTOCOL",
    "OPS",
    "CAPABILITIES",
    "MAX_LINE",
    "ProtocolError",
    "AdapterSaid",
    "Hello",
    "request",
    "dumps",
    "parse_reply",
    "parse_hello",
    "world_from",
    "action_from",
    "outcome_to",
    "outcome_from",
    "observation_to",
    "observation_from",
    "artefacts_to",
    "artefacts_from",
]

PROTOCOL = "mjpki-adapter/1"
OPS = ("hello", "new", "step", "observation", "artefacts", "ocsp", "se_apdu", "close")
"""Every request's op: hello first, then per system new, step/observation (and artefacts/ocsp/se_apdu if offered), close."""
CAPABILITIES = ("artefacts", "ocsp", "se_apdu")
"""Optional ops an adapter offers by naming them in its hello reply's capabilities."""
MAX_LINE = 16 * 1024 * 1024
"""The longest message, in bytes (a reply with every artefact fits many times over); longer is a protocol violation."""


class ProtocolError(ValueError):
    """A message that breaks the protocol: not JSON, not an object, a wrong id, a field of the wrong type."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """What an adapter says about itself in its hello reply."""

    adapter: str
    capabilities: frozenset[str]


def request(op: str, ident: int, **fields: Any) -> dict[str, Any]:
    """A request message."""
    assert op in OPS, op
    return {"id": ident, "op": op, **fields}


def dumps(message: dict[str, Any]) -> bytes:
    """One message as a line: compact JSON, UTF-8, newline-terminated."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def parse_reply(raw: bytes | str, ident: int) -> dict[str, Any]:
    """A reply to request `ident` that says ok; a ProtocolError for a malformed one, an `_AdapterSaid` for ok: false."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"the adapter answered with something that is not JSON ({exc}): {_snippet(raw)}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"the adapter answered with JSON that is not an object: {_snippet(raw)}")
    if data.get("id") != ident:
        raise ProtocolError(f"the adapter answered request {data.get('id')!r} when request {ident} was pending: {_snippet(raw)}")
    ok = data.get("ok")
    if ok is False:
        error = data.get("error")
        raise AdapterSaid(str(error) if error is not None else "no error text")
    if ok is not True:
        raise ProtocolError(f"the reply's ok must be true or false, got {ok!r}")
    return data


class AdapterSaid(Exception):
    """The adapter replied ok: false with this error text."""


def parse_hello(reply: dict[str, Any]) -> Hello:
    """The hello reply's protocol, name and capabilities; a ProtocolError when it speaks another protocol."""
    if reply.get("protocol") != PROTOCOL:
        raise ProtocolError(f"the adapter speaks {reply.get('protocol')!r}; this mjpki speaks {PROTOCOL!r}")
    caps = reply.get("capabilities", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ProtocolError("the hello reply's capabilities must be an array of strings")
    name = reply.get("adapter", "")
    return Hello(adapter=str(name), capabilities=frozenset(c for c in caps if c in CAPABILITIES))


def world_from(data: Any) -> World:
    """The world of a `new` request."""
    try:
        return World.from_json(data)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"new.world: {exc}") from None


def action_from(data: Any) -> Action:
    """The action of a `step` request."""
    if not isinstance(data, dict):
        raise ProtocolError("step.action must be an object {action, args}")
    try:
        return action_from_json(data)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"step.action: {exc}") from None


def outcome_to(outcome: Outcome) -> dict[str, Any]:
    """A step reply's outcome."""
    return outcome.to_json()


def outcome_from(data: Any) -> Outcome:
    """The outcome of a step reply: ACCEPTED or a reason code, details an object."""
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise ProtocolError("the step reply's outcome must be an object with a code")
    code = data["code"]
    if code != "ACCEPTED" and code not in Reason.__members__:
        raise ProtocolError(f"outcome code {code!r} is neither ACCEPTED nor a reason code (mjpki rules lists them)")
    if not isinstance(data.get("details", {}), dict):
        raise ProtocolError("the outcome's details must be an object")
    try:
        return Outcome.from_json(data)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProtocolError(f"outcome: {exc}") from None


class _Last:
    """The last value converted and what it became: a system hands over the same observation and artefacts step after
    step while nothing changes, and converting them again (JSON, base64) would be most of the wire's cost. One tuple,
    replaced whole, so that threads serving other sessions never see one's input with another's result."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[Any, Any] | None = None

    def same_object(self, given: Any, make: Callable[[Any], Any]) -> Any:
        """make(given), or what it made last time if given is the very object it was given then (values are immutable)."""
        last = self._last
        if last is not None and last[0] is given:
            return last[1]
        made = make(given)
        self._last = (given, made)
        return made

    def equal_data(self, given: Any, make: Callable[[Any], Any]) -> Any:
        """make(given), or what it made last time if given is, as JSON text, the data it was given then: the same object
        back, which the lockstep recognises as already judged. (As text, not ==: true == 1 in Python, not in the codec.)"""
        text = json.dumps(given)
        last = self._last
        if last is not None and last[0] == text:
            return last[1]
        made = make(given)  # raises, remembering nothing, for data that does not decode
        self._last = (text, made)
        return made


_OBSERVATION_TO, _OBSERVATION_FROM, _ARTEFACTS_TO, _ARTEFACTS_FROM = _Last(), _Last(), _Last(), _Last()


def observation_to(obs: Observation) -> Any:
    """An observation reply's observation (every field of Observation and its views)."""
    return _OBSERVATION_TO.same_object(obs, lambda o: encode(Observation, o))


_VIEWS: dict[tuple[type, str], Any] = {}
"""(CertView or SlotView, its JSON text) -> the view: most of an observation is as it was at the step before."""


def _views(cls: type, data: Any, where: str) -> Any:
    """A list of views decoded one by one, each once per JSON text (the views are immutable)."""
    if not isinstance(data, list):
        return data  # decode() names what is wrong with it
    out = []
    for i, item in enumerate(data):
        key = (cls, json.dumps(item))
        view = _VIEWS.get(key)
        if view is None:
            view = decode(cls, item, f"{where}[{i}]")
            if len(_VIEWS) >= 8192:
                _VIEWS.clear()
            _VIEWS[key] = view
        out.append(view)
    return tuple(out)


def _decode_observation(data: Any) -> Observation:
    if not isinstance(data, dict) or not isinstance(data.get("certs"), list) or not isinstance(data.get("slots"), list):
        return decode(Observation, data, "observation")  # type: ignore[no-any-return]
    certs, slots = _views(CertView, data["certs"], "observation.certs"), _views(SlotView, data["slots"], "observation.slots")
    rest = decode(Observation, {**data, "certs": [], "slots": []}, "observation")
    return replace(rest, certs=certs, slots=slots)


def observation_from(data: Any) -> Observation:
    """The observation of an observation reply (the same object as last time for the same data)."""
    try:
        return _OBSERVATION_FROM.equal_data(data, _decode_observation)  # type: ignore[no-any-return]
    except CodecError as exc:
        raise ProtocolError(str(exc)) from None


def artefacts_to(art: Artefacts) -> Any:
    """An artefacts reply's artefacts: arrays of base64 DER."""
    return _ARTEFACTS_TO.same_object(art, lambda a: encode(Artefacts, a))


def artefacts_from(data: Any) -> Artefacts:
    """The artefacts of an artefacts reply (the same object as last time for the same data)."""
    try:
        return _ARTEFACTS_FROM.equal_data(data, lambda d: decode(Artefacts, d, "artefacts"))  # type: ignore[no-any-return]
    except CodecError as exc:
        raise ProtocolError(str(exc)) from None


def _snippet(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    return repr(text if len(text) <= 120 else text[:117] + "...")
