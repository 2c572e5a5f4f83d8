"""The applet-level trace format (mjpki-apdu-trace/1): its JSON Schema, generated from the command classes, and a loader.

`schemas/apdu-trace.schema.json` is `apdu_trace_schema()` written out (`mjpki schema --write` regenerates it, `mjpki
schema --check` fails when it drifts). `load_apdu_trace(path)` reads a trace, checks it against the schema (a small
validator of the schema subset used here: no third-party package needed) and decodes its commands and observations.

A trace is what `mjpki run --applet/--reader` writes for a failing check:

    {"format": "mjpki-apdu-trace/1",
     "meta": {"applet": ..., "check": ..., "divergence": ..., "config": {"se_id", "caller", "reader_access", ...}},
     "steps": [{"command": {...}, "sent", "received", "observed": {...}, "expected": {...}, "reqs", "problems"}, ...]}
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Observed, Reset, Send, SwitchCaller, Wrapped, command_from_json

__all__ = [
    "APDU_TRACE_FORMAT",
    "APDU_SCHEMA_PATH",
    "COMMAND_CLASSES",
    "ApduTrace",
    "ApduTraceError",
    "ApduTraceStep",
    "apdu_trace_schema",
    "apdu_schema_text",
    "load_apdu_trace",
    "validate",
]

APDU_TRACE_FORMAT = "mjpki-apdu-trace/1"
APDU_SCHEMA_PATH = Path(__file__).resolve().parent.parent.parent / "schemas" / "apdu-trace.schema.json"
COMMAND_CLASSES: tuple[type, ...] = (Send, InitUpdate, ExtAuth, Wrapped, Reset, SwitchCaller)
"""The members of mjpki.spec.apdu.commands.Command, in the order of the schema's oneOf."""

_HEX = "^([0-9A-Fa-f]{2})*$"
_REQ = "^[A-Z]+-[0-9]+$"


def _placeholder(hint: Any) -> Any:
    if hint == bytes | None:
        return None
    if hint is bytes:
        return b""
    if hint is bool:
        return True
    if hint is int:
        return 0
    if isinstance(hint, type) and issubclass(hint, Enum):
        return next(iter(hint))
    raise TypeError(f"no placeholder for {hint!r}")


def _field_schema(hint: Any) -> dict[str, Any]:
    if hint == bytes | None:
        return {"anyOf": [{"type": "string", "pattern": _HEX}, {"type": "null"}]}
    if hint is bytes:
        return {"type": "string", "pattern": _HEX}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer", "minimum": 0, "maximum": 255}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return {"enum": [m.value for m in hint]}
    raise TypeError(f"no JSON Schema for {hint!r}; extend mjpki.spec.apdu.trace_schema._field_schema")


def command_schema(cls: type) -> tuple[str, dict[str, Any]]:
    """The op name and the JSON Schema of one command class's to_json, derived from its fields."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    op = cls(**{f.name: _placeholder(hints[f.name]) for f in fields}).to_json()["op"]
    props: dict[str, Any] = {"op": {"const": op}}
    required = ["op"]
    for f in fields:
        props[f.name] = _field_schema(hints[f.name])
        required.append(f.name)
    sample = cls(**{f.name: _placeholder(hints[f.name]) for f in fields}).to_json()
    if set(sample) != set(props):  # to_json and the fields must agree, or the schema would describe something else
        raise TypeError(f"{cls.__name__}.to_json writes {sorted(sample)}, its fields are {sorted(props)}")
    return op, {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _observed_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "sw": {"type": "string", "pattern": "^([0-9A-Fa-f]{4})?$"},
            "data": {"type": "string", "pattern": _HEX},
            "host_error": {"type": "string"},
            "cryptogram_keys": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sw", "data"],
        "additionalProperties": False,
    }


def apdu_trace_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an applet-level trace (mjpki-apdu-trace/1)."""
    commands = [command_schema(cls) for cls in COMMAND_CLASSES]
    hex_or_null = {"anyOf": [{"type": "string", "pattern": _HEX}, {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mjpki.invalid/schemas/apdu-trace.schema.json",
        "title": "mjpki applet-level (APDU) trace",
        "description": "Commands sent to one applet in lockstep with the APDU model, and what it answered. "
        "Generated from spec/apdu/; do not edit.",
        "type": "object",
        "properties": {
            "format": {"const": APDU_TRACE_FORMAT},
            "meta": {
                "type": "object",
                "properties": {
                    "applet": {"type": "string"},
                    "check": {"type": "string"},
                    "divergence": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "divergence_index": {"anyOf": [{"type": "integer", "minimum": -1}, {"type": "null"}]},
                    "config": {"$ref": "#/$defs/config"},
                },
                "required": ["applet", "check"],
            },
            "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}},
        },
        "required": ["format", "meta", "steps"],
        "additionalProperties": False,
        "$defs": {
            "command": {"oneOf": [{"$ref": f"#/$defs/command_{op.replace('-', '_')}"} for op, _ in commands]},
            **{f"command_{op.replace('-', '_')}": schema for op, schema in commands},
            "observed": _observed_schema(),
            "config": {
                "type": "object",
                "properties": {
                    "se_id": {"type": "string"},
                    "caller": hex_or_null,
                    "reader_access": {"type": "boolean"},
                    "auth_tries": {"type": "integer", "minimum": 1, "maximum": 15},
                    "signing_tries": {"type": "integer", "minimum": 1, "maximum": 15},
                },
                "required": ["se_id", "caller"],
                "additionalProperties": False,
            },
            "step": {
                "type": "object",
                "properties": {
                    "command": {"$ref": "#/$defs/command"},
                    "sent": hex_or_null,
                    "received": hex_or_null,
                    "observed": {"$ref": "#/$defs/observed"},
                    "expected": {
                        "type": "object",
                        "properties": {
                            "rule": {"type": "string"},
                            "sw": {"type": "string"},
                            "data": hex_or_null,
                            "check": {"type": "string"},
                        },
                        "required": ["rule", "sw"],
                        "additionalProperties": False,
                    },
                    "reqs": {"type": "array", "items": {"type": "string", "pattern": _REQ}},
                    "problems": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["command", "observed", "expected"],
                "additionalProperties": False,
            },
        },
    }


def apdu_schema_text() -> str:
    """The schema as schemas/apdu-trace.schema.json holds it."""
    return json.dumps(apdu_trace_schema(), indent=2, ensure_ascii=False) + "\n"


# --- validation (the subset of JSON Schema the generated schema uses) ----------------------------------------------

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    """What is wrong with `value` under `schema` (an empty list: nothing), each problem with its JSON path."""
    root = root if root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return validate(value, target, root, path)
    if "const" in schema and value != schema["const"]:
        return [f"{path}: expected {schema['const']!r}, got {value!r:.60}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: expected one of {schema['enum']}, got {value!r:.60}"]
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        results = [validate(value, option, root, path) for option in options]
        if any(not r for r in results):
            return []
        if isinstance(value, dict) and "op" in value:  # a command: say what is wrong with the one its op names
            named = [r for r in results if not any(p.startswith(f"{path}.op:") for p in r)]
            if len(named) == 1:
                return named[0]
        return [f"{path}: matches none of the allowed forms ({'; '.join(r[0] for r in results)})"]
    if "type" in schema and not _is_type(value, schema["type"]):
        return [f"{path}: expected {schema['type']}, got {type(value).__name__}"]
    problems: list[str] = []
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{path}: {value!r:.60} does not match {schema['pattern']}")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{path}: missing {key!r}" for key in schema.get("required", ()) if key not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{path}: unexpected key {key!r}" for key in value if key not in props]
        for key, sub in props.items():
            if key in value:
                problems += validate(value[key], sub, root, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], root, f"{path}[{i}]")
    return problems


# --- loading ---------------------------------------------------------------------------------------------------------


class ApduTraceError(ValueError):
    """A file that is not a valid mjpki-apdu-trace/1 document (the message says where and why)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApduTraceStep:
    """One recorded step: the command, what the card answered, what the model demanded then."""

    command: Command
    observed: Observed
    rule: str
    expected_sw: str
    reqs: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApduTrace:
    """An applet-level trace read from a file."""

    meta: dict[str, Any]
    steps: tuple[ApduTraceStep, ...]

    @property
    def divergence_index(self) -> int | None:
        """The first step with problems (as recorded), if any."""
        return next((i for i, s in enumerate(self.steps) if s.problems), None)


def _observed(data: dict[str, Any]) -> Observed:
    """Observed.from_json (which also reads the empty status word of a reset or a failed transport)."""
    return Observed.from_json(data)


def is_apdu_trace(data: Any) -> bool:
    """Whether a decoded JSON document says it is an applet-level trace."""
    return isinstance(data, dict) and data.get("format") == APDU_TRACE_FORMAT


def load_apdu_trace(path: str | Path) -> ApduTrace:
    """Read and check a trace file; ApduTraceError (one line, with the JSON path) if it is not a valid one.

    FileNotFoundError and other OSErrors pass through for the caller to word.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApduTraceError(f"not JSON: {exc}") from None
    return apdu_trace_from_json(data)


def apdu_trace_from_json(data: Any) -> ApduTrace:
    """Check and decode a trace document already parsed from JSON."""
    if not isinstance(data, dict):
        raise ApduTraceError(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != APDU_TRACE_FORMAT:
        raise ApduTraceError(f"format is {data.get('format')!r}, expected {APDU_TRACE_FORMAT!r}")
    problems = validate(data, apdu_trace_schema())
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ApduTraceError(problems[0] + more)
    steps = []
    for i, s in enumerate(data["steps"]):
        try:
            command = command_from_json(s["command"])
            observed = _observed(s["observed"])
        except ValueError as exc:
            raise ApduTraceError(f"$.steps[{i}]: {exc}") from None
        steps.append(
            ApduTraceStep(
                command=command,
                observed=observed,
                rule=s["expected"]["rule"],
                expected_sw=s["expected"]["sw"],
                reqs=tuple(s.get("reqs", ())),
                problems=tuple(s.get("problems", ())),
                raw=s,
            )
        )
    return ApduTrace(meta=data["meta"], steps=tuple(steps))
