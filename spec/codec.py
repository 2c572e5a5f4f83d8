"""A JSON codec for the spec's typed values, driven by type hints: the same hints give the encoding, the decoding and
the JSON Schema, so a field added to a dataclass (an Observation, a CertView) flows through all three without edits.

Encodings: dataclasses are objects keyed by field name (fields with a default may be left out); enums their value;
tuples and frozensets arrays (frozensets sorted, for stable output); `FrozenMap` an array of `[key, value]` pairs
(keys may be tuples); bytes base64 (RFC 4648, with padding); int, float, str, bool and None as themselves.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any

from mjpki.spec.fmap import FrozenMap

__all__ = ["CodecError", "encode", "decode", "schema_of"]


class CodecError(ValueError):
    """JSON data that does not have the type it should; the message names the field (e.g. certs[2].status)."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional_field(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def encode(hint: Any, value: Any) -> Any:
    """The value, of type hint, as JSON data."""
    origin = typing.get_origin(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            if arm is not type(None) and _matches(arm, value):
                return encode(arm, value)
        raise CodecError(f"{value!r} is none of {hint}")
    if dataclasses.is_dataclass(hint):
        return {f.name: encode(_hints(hint)[f.name], getattr(value, f.name)) for f in dataclasses.fields(hint)}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return value.value
    if hint is bytes:
        return base64.b64encode(value).decode("ascii")
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return [encode(args[0], v) for v in value]
        return [encode(a, v) for a, v in zip(args, value, strict=True)]
    if origin is frozenset:
        (inner,) = typing.get_args(hint)
        return sorted((encode(inner, v) for v in value), key=lambda x: json.dumps(x, sort_keys=True))
    if origin is FrozenMap:
        k, v = typing.get_args(hint)
        return [[encode(k, key), encode(v, val)] for key, val in value.items()]
    return value


def _matches(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin)


def decode(hint: Any, data: Any, where: str = "value") -> Any:
    """The value of type hint that `encode` wrote as data; a CodecError names the field that is wrong."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        if data is None and type(None) in arms:
            return None
        problems = []
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return decode(arm, data, where)
            except CodecError as exc:
                problems.append(str(exc))
        raise CodecError(problems[0] if len(problems) == 1 else f"{where}: {_short(data)} is none of the allowed types")
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise CodecError(f"{where} must be an object, got {_short(data)}")
        fields = {f.name: f for f in dataclasses.fields(hint)}
        extra = sorted(set(data) - set(fields))
        if extra:
            raise CodecError(f"{where}: unexpected field {extra[0]!r} (known: {', '.join(fields)})")
        missing = [n for n, f in fields.items() if n not in data and not _is_optional_field(f)]
        if missing:
            raise CodecError(f"{where}: missing field {missing[0]!r}")
        kwargs = {n: decode(_hints(hint)[n], data[n], f"{where}.{n}") for n in fields if n in data}
        try:
            return hint(**kwargs)
        except (TypeError, ValueError) as exc:
            raise CodecError(f"{where}: {exc}") from None
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(data)
        except ValueError:
            raise CodecError(f"{where} must be one of {[m.value for m in hint]}, got {_short(data)}") from None
    if hint is bytes:
        if not isinstance(data, str):
            raise CodecError(f"{where} must be a base64 string, got {_short(data)}")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise CodecError(f"{where} is not valid base64") from None
    if origin in (tuple, frozenset, FrozenMap):
        if not isinstance(data, list):
            raise CodecError(f"{where} must be an array, got {_short(data)}")
        args = typing.get_args(hint)
        if origin is frozenset:
            return frozenset(decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if origin is FrozenMap:
            pairs = []
            for i, pair in enumerate(data):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise CodecError(f"{where}[{i}] must be a [key, value] pair, got {_short(pair)}")
                pairs.append((decode(args[0], pair[0], f"{where}[{i}][0]"), decode(args[1], pair[1], f"{where}[{i}][1]")))
            return FrozenMap(pairs)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(data) != len(args):
            raise CodecError(f"{where} must have {len(args)} items, got {len(data)}")
        return tuple(decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))
    if hint is type(None):
        if data is not None:
            raise CodecError(f"{where} must be null, got {_short(data)}")
        return None
    if hint is bool:
        if not isinstance(data, bool):
            raise CodecError(f"{where} must be true or false, got {_short(data)}")
        return data
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise CodecError(f"{where} must be an integer, got {_short(data)}")
        return data
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise CodecError(f"{where} must be a number, got {_short(data)}")
        return float(data)
    if hint is str:
        if not isinstance(data, str):
            raise CodecError(f"{where} must be a string, got {_short(data)}")
        return data
    raise TypeError(f"no JSON codec for {hint!r}; extend mjpki.spec.codec")


def _short(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=True) if isinstance(data, (dict, list, str, int, float, bool, type(None))) else repr(data)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_of(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of hint's encoding; dataclasses go into defs (by class name) and are referenced."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a, defs) for a in typing.get_args(hint)]}
    if dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: a recursive reference stops here
            props = {f.name: schema_of(_hints(hint)[f.name], defs) for f in dataclasses.fields(hint)}
            required = [f.name for f in dataclasses.fields(hint) if not _is_optional_field(f)]
            doc = (hint.__doc__ or "").strip().splitlines()
            defs[name] = {
                "description": doc[0] if doc else name,
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{name}"}
    if isinstance(hint, type) and issubclass(hint, Enum):
        return {"enum": [m.value for m in hint]}
    if hint is bytes:
        return {"type": "string", "contentEncoding": "base64"}
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0], defs)}
        items = [schema_of(a, defs) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin is frozenset:
        return {"type": "array", "items": schema_of(typing.get_args(hint)[0], defs), "uniqueItems": True}
    if origin is FrozenMap:
        k, v = typing.get_args(hint)
        pair = [schema_of(k, defs), schema_of(v, defs)]
        return {"type": "array", "items": {"type": "array", "prefixItems": pair, "minItems": 2, "maxItems": 2}}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no JSON Schema for {hint!r}; extend mjpki.spec.codec")
