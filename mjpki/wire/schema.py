"""The JSON Schema of `mjpki-adapter/1`, generated from spec/ (never written by hand): `schemas/adapter-protocol.schema.json`.

Worlds, actions and outcomes are the trace format's (`mjpki.spec.schema`); observations and artefacts come from their
dataclasses through `mjpki.spec.codec`, so a field added there appears here. `mjpki schema --check` fails on drift.
"""

from __future__ import annotations

import json
from typing import Any

from mjpki.adapters.artefacts import Artefacts
from mjpki.spec.actions import ACTION_TYPES
from mjpki.spec.codec import schema_of
from mjpki.spec.observe import Observation
from mjpki.spec.schema import SCHEMA_PATH, trace_schema
from mjpki.wire.protocol import CAPABILITIES, PROTOCOL

__all__ = ["PROTOCOL_SCHEMA_PATH", "protocol_schema", "protocol_schema_text"]

PROTOCOL_SCHEMA_PATH = SCHEMA_PATH.parent / "adapter-protocol.schema.json"

_ID = {"type": ["integer", "null"], "description": "The request's id; a reply repeats it."}
_SESSION = {"type": "string", "minLength": 1, "maxLength": 200, "description": "HTTP only: the client's id for one system."}
_B64 = {"type": "string", "contentEncoding": "base64"}


def _message(required: dict[str, Any], optional: dict[str, Any] | None = None, *, doc: str) -> dict[str, Any]:
    props = {**required, **(optional or {})}
    return {"description": doc, "type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _requests() -> dict[str, Any]:
    op = lambda name: {"const": name}  # noqa: E731 - a one-line table helper
    session = {"session": _SESSION}
    return {
        "request_hello": _message(
            {"id": _ID, "op": op("hello"), "protocol": {"const": PROTOCOL}}, doc="First request: the protocol the suite speaks."
        ),
        "request_new": _message(
            {"id": _ID, "op": op("new"), "world": {"$ref": "#/$defs/world"}}, session,
            doc="Build a fresh system in the world's initial state (replacing any current one).",
        ),
        "request_step": _message(
            {"id": _ID, "op": op("step"), "action": {"$ref": "#/$defs/action"}}, session, doc="Carry out one action."
        ),
        "request_observation": _message({"id": _ID, "op": op("observation")}, session, doc="Report what the system shows now."),
        "request_artefacts": _message({"id": _ID, "op": op("artefacts")}, session, doc="Capability artefacts: the published DER."),
        "request_ocsp": _message(
            {"id": _ID, "op": op("ocsp"), "request": _B64}, session, doc="Capability ocsp: answer a DER OCSP request (RFC 6960)."
        ),
        "request_se_apdu": _message(
            {"id": _ID, "op": op("se_apdu"), "phone": {"type": "string", "minLength": 1}, "apdu": _B64}, session,
            doc="Capability se_apdu: pass one command APDU to the phone's SE, as the TSMs reach it through the official app.",
        ),
        "request_close": _message({"id": _ID, "op": op("close")}, session, doc="Release the current system."),
    }  # fmt: skip


def _replies() -> dict[str, Any]:
    ok = {"const": True}
    caps = {"type": "array", "items": {"enum": list(CAPABILITIES)}, "uniqueItems": True}
    return {
        "reply_hello": _message(
            {"id": _ID, "ok": ok, "protocol": {"const": PROTOCOL}, "capabilities": caps}, {"adapter": {"type": "string"}},
            doc="The adapter's protocol, name and optional ops.",
        ),
        "reply_new": _message({"id": _ID, "ok": ok}, {"capabilities": caps}, doc="Built; capabilities, if given, hold for this system."),
        "reply_step": _message({"id": _ID, "ok": ok, "outcome": {"$ref": "#/$defs/outcome"}}, doc="The action's outcome."),
        "reply_observation": _message(
            {"id": _ID, "ok": ok, "observation": {"$ref": "#/$defs/Observation"}}, doc="The system's observation."
        ),
        "reply_artefacts": _message({"id": _ID, "ok": ok, "artefacts": {"$ref": "#/$defs/Artefacts"}}, doc="The published artefacts."),
        "reply_ocsp": _message({"id": _ID, "ok": ok, "response": _B64}, doc="The DER OCSP response."),
        "reply_se_apdu": _message({"id": _ID, "ok": ok, "response": _B64}, doc="The SE's response APDU: data || SW1 SW2."),
        "reply_close": _message({"id": _ID, "ok": ok}, doc="Released."),
        "reply_error": _message(
            {"id": _ID, "ok": {"const": False}, "error": {"type": "string"}},
            doc="The request could not be carried out at all (a failed step; a refusal is an outcome, not an error).",
        ),
    }  # fmt: skip


def protocol_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every request and reply of mjpki-adapter/1."""
    trace_defs = trace_schema()["$defs"]
    data_defs: dict[str, Any] = {}
    schema_of(Observation, data_defs)
    schema_of(Artefacts, data_defs)
    actions = [
        {"type": "object", "properties": {"action": {"const": n}, "args": trace_defs[f"step_{n}"]["properties"]["args"]},
         "required": ["action", "args"], "additionalProperties": False}
        for n in ACTION_TYPES
    ]  # fmt: skip
    requests, replies = _requests(), _replies()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mjpki.invalid/schemas/adapter-protocol.schema.json",
        "title": f"mjpki adapter protocol {PROTOCOL}",
        "description": "Every message between the suite and a system under test (one JSON object each). Generated from spec/; do not edit.",
        "oneOf": [{"$ref": "#/$defs/request"}, {"$ref": "#/$defs/reply"}],
        "$defs": {
            "request": {"oneOf": [{"$ref": f"#/$defs/{k}"} for k in requests]},
            # a reply says which request it answers by its id, not by its shape: close's and new's may look alike
            "reply": {"anyOf": [{"$ref": f"#/$defs/{k}"} for k in replies]},
            **requests,
            **replies,
            "world": trace_defs["world"],
            "action": {"oneOf": actions},
            "outcome": trace_defs["outcome"],
            **data_defs,
        },
    }


def protocol_schema_text() -> str:
    """The schema as the file holds it."""
    return json.dumps(protocol_schema(), indent=2, ensure_ascii=False) + "\n"


