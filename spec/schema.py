"""The trace format's JSON Schema, generated from the spec's model classes (never written by hand).

`schemas/trace.schema.json` is this module's output; a test fails when the two drift apart,
and `mjpki schema --write` regenerates the file.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

from mjpki.spec.actions import ACTION_TYPES
from mjpki.spec.assumptions import Variants
from mjpki.spec.reasons import Reason
from mjpki.spec.trace import TRACE_FORMAT
from mjpki.spec.world import PersonSpec, PhoneSpec, ServiceProviderSpec

__all__ = ["trace_schema", "schema_text", "SCHEMA_PATH"]

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "trace.schema.json"


def _type_schema(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_schema(h) for h in typing.get_args(hint)]
        return {"anyOf": parts}
    if origin is frozenset:
        (inner,) = typing.get_args(hint)
        return {"type": "array", "items": _type_schema(inner), "uniqueItems": True}
    if hint is date:
        return {"type": "string", "format": "date"}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return {"enum": [m.value for m in hint]}
    simple = {str: "string", int: "integer", bool: "boolean"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no JSON Schema for {hint!r}; extend mjpki.spec.schema._type_schema")


def _dataclass_schema(cls: type, *, required_all: bool = False) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        props[f.name] = _type_schema(hints[f.name])
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required_all or no_default:
            required.append(f.name)
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _outcome_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "code": {"enum": ["ACCEPTED", *(r.name for r in Reason)]},
            "details": {"type": "object"},
        },
        "required": ["code"],
        "additionalProperties": False,
    }


def _step_schema(name: str, cls: type) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "action": {"const": name},
            "args": _dataclass_schema(cls),
            "expected": {"$ref": "#/$defs/outcome"},
            "actual": {"$ref": "#/$defs/outcome"},
            "reqs": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"}},
            "violations": {"type": "array", "items": {"type": "string"}},
            "note": {"type": "string"},
        },
        "required": ["action", "args", "expected"],
        "additionalProperties": False,
    }


def trace_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a trace document."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mjpki.invalid/schemas/trace.schema.json",
        "title": "mjpki trace",
        "description": "A run of the smartphone JPKI lifecycle: a world and its steps. Generated from spec/; do not edit.",
        "type": "object",
        "properties": {
            "format": {"const": TRACE_FORMAT},
            "title": {"type": "string"},
            "source": {"enum": ["scenario", "hypothesis", "z3", "explorer", "manual"]},
            "system": {"type": "string"},
            "meta": {"type": "object"},
            "world": {"$ref": "#/$defs/world"},
            "steps": {"type": "array", "items": {"oneOf": [{"$ref": f"#/$defs/step_{n}"} for n in ACTION_TYPES]}},
        },
        "required": ["format", "world", "steps"],
        "additionalProperties": False,
        "$defs": {
            "outcome": _outcome_schema(),
            "world": {
                "type": "object",
                "properties": {
                    "persons": {"type": "array", "items": _dataclass_schema(PersonSpec)},
                    "phones": {"type": "array", "items": _dataclass_schema(PhoneSpec)},
                    "service_providers": {"type": "array", "items": _dataclass_schema(ServiceProviderSpec)},
                    "variants": _dataclass_schema(Variants),
                },
                "required": ["persons", "phones", "service_providers"],
                "additionalProperties": False,
            },
            **{f"step_{n}": _step_schema(n, cls) for n, cls in ACTION_TYPES.items()},
        },
    }


def schema_text() -> str:
    """The schema as the file holds it."""
    return json.dumps(trace_schema(), indent=2, ensure_ascii=False) + "\n"
