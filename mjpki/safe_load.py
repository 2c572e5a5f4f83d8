"""Reading files the CLI is given, none of which is trusted: traces of both formats, known-failures files.

Every file is read through `read_bytes`: a regular file (not a directory, FIFO or device), at most `MAX_BYTES`. JSON goes
through `parse_json`: UTF-8, at most `MAX_CONTAINERS` arrays and objects and `MAX_DEPTH` levels, integers of at most
`MAX_INT_DIGITS` digits, no NaN or Infinity. A system-level trace is then checked against the trace schema
(mjpki.spec.schema), its size (`MAX_STEPS` steps, `MAX_WORLD` entries per list of its world), and every person, phone and
service provider its steps name must be in its world; an applet-level trace against its own schema (mjpki.spec.apdu). What
is wrong is one `LoadError` line, never a traceback: the CLI prints it and exits 2.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mjpki.escape import cut

if TYPE_CHECKING:  # imported where used: reading a known-failures file needs none of the trace machinery
    from mjpki.spec.apdu.trace_schema import ApduTrace
    from mjpki.spec.trace import Trace

__all__ = [
    "MAX_BYTES",
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_STEPS",
    "MAX_WORLD",
    "LoadError",
    "read_bytes",
    "read_text",
    "parse_json",
    "load_json",
    "load_toml",
    "system_trace",
    "applet_trace",
    "load_trace",
]

MAX_BYTES: Final = 64 * 1024 * 1024
"""The largest file read (a long Hypothesis trace is well under 1 MiB)."""
MAX_CONTAINERS: Final = 2_000_000
"""The most JSON arrays, objects and list separators a document may have (counted before parsing, to bound memory)."""
MAX_DEPTH: Final = 64
"""The deepest nesting of JSON arrays and objects (a trace needs about 8)."""
MAX_INT_DIGITS: Final = 100
"""The longest JSON integer (a certificate serial has at most 49 digits)."""
MAX_STEPS: Final = 10_000
"""The most steps a trace may have (replaying 10,000 on the spec takes about a second)."""
MAX_WORLD: Final = 1_000
"""The most persons, phones or service providers a trace's world may have."""
_PROBLEM_CHARS: Final = 300


class LoadError(ValueError):
    """A file the CLI cannot use: the message is one line that names the file and what to do."""


# --- bytes and text -----------------------------------------------------------------------------------------------------


def read_bytes(path: str | Path, *, what: str = "file", limit: int = MAX_BYTES) -> bytes:
    """The content of a regular file of at most `limit` bytes; LoadError for anything else (missing, a directory, a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # NONBLOCK: a FIFO must not hang us
    except FileNotFoundError:
        raise LoadError(f"no such {what}: {path}") from None
    except OSError as exc:
        raise LoadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise LoadError(f"cannot read {what} {path}: it is {kind}; give the {what} itself")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise LoadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise LoadError(f"cannot read {what} {path}: it is larger than {limit:,} bytes, which no {what} needs")
    return data


def read_text(path: str | Path, *, what: str = "file", limit: int = MAX_BYTES) -> str:
    """read_bytes, decoded as UTF-8; LoadError naming the first bad byte otherwise."""
    data = read_bytes(path, what=what, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadError(f"cannot read {what} {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


# --- JSON and TOML ------------------------------------------------------------------------------------------------------


class _Refused(ValueError):
    """Raised from json's hooks for a value that parses but is refused."""


def _parse_int(text: str) -> int:
    """json's parse_int: integers up to MAX_INT_DIGITS digits."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_constant(name: str) -> float:
    """json's parse_constant: NaN and Infinity are not JSON."""
    raise _Refused(f"{name}, which is not JSON")


def _first_clause(exc: Exception) -> str:
    """The start of an exception's message, up to its first colon (Python's advice after it is not the user's to take)."""
    return cut(str(exc).split(":", 1)[0], _PROBLEM_CHARS)


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in value (iteratively: a deep value must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(text: str, *, where: str) -> Any:
    """A JSON document within the limits above; LoadError (its message starts with `where`) otherwise."""
    containers = text.count("[") + text.count("{") + text.count(",")
    if containers > MAX_CONTAINERS:
        raise LoadError(f"{where}: more than {MAX_CONTAINERS:,} arrays, objects and items; no trace is that large")
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except _Refused as exc:
        raise LoadError(f"{where}: refused {exc}") from None
    except json.JSONDecodeError as exc:
        raise LoadError(f"{where}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise LoadError(f"{where}: arrays or objects nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. a number Python refuses to convert
        raise LoadError(f"{where}: not usable JSON ({_first_clause(exc)})") from None
    if _depth(data) > MAX_DEPTH:
        raise LoadError(f"{where}: arrays or objects nested deeper than {MAX_DEPTH} levels")
    return data


def load_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """read_text then parse_json; LoadError messages say "PATH is not a valid WHAT: ..."."""
    return parse_json(read_text(path, what=what), where=f"{path} is not a valid {what}")


def load_toml(path: str | Path, *, what: str = "TOML file", limit: int = 1024 * 1024) -> dict[str, Any]:
    """A TOML document of at most `limit` bytes; LoadError for anything tomllib refuses or cannot handle."""
    text = read_text(path, what=what, limit=limit)
    if text.count("[") + text.count("{") > MAX_CONTAINERS // 100:
        raise LoadError(f"{path}: too many arrays and tables for a {what}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise LoadError(f"{path}: arrays or tables nested too deeply for a {what}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise LoadError(f"{path} is not usable TOML: {_first_clause(exc)}") from None


# --- traces -------------------------------------------------------------------------------------------------------------


def _problem(where: str, problems: list[str]) -> LoadError:
    """The first schema problem as a LoadError, with how many more there are."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return LoadError(f"{where}: {cut(problems[0], _PROBLEM_CHARS)}{more}")


def _check_size(doc: dict[str, Any], where: str) -> None:
    """At most MAX_STEPS steps and MAX_WORLD entries in each list of the world: checked before anything is built."""
    steps = doc.get("steps")
    if isinstance(steps, list) and len(steps) > MAX_STEPS:
        raise LoadError(f"{where}: {len(steps):,} steps; mjpki reads traces of at most {MAX_STEPS:,}")
    world = doc.get("world")
    for key in ("persons", "phones", "service_providers"):
        entries = world.get(key) if isinstance(world, dict) else None
        if isinstance(entries, list) and len(entries) > MAX_WORLD:
            raise LoadError(f"{where}: its world has {len(entries):,} {key.replace('_', ' ')}; mjpki reads at most {MAX_WORLD:,}")


def _check_system_shape(doc: Any, where: str) -> None:
    """The trace schema, step by step (a bad step names its own action's problem, not the 30 forms it fails to be)."""
    from mjpki.spec.apdu.trace_schema import APDU_TRACE_FORMAT, validate
    from mjpki.spec.schema import trace_schema
    from mjpki.spec.trace import TRACE_FORMAT

    if not isinstance(doc, dict):
        raise LoadError(f"{where}: a trace is a JSON object with format, world and steps, not a {type(doc).__name__}")
    if doc.get("format") != TRACE_FORMAT:
        raise LoadError(f"{where}: format is {doc.get('format')!r:.60}; this mjpki reads {TRACE_FORMAT!r} (and {APDU_TRACE_FORMAT!r})")
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise LoadError(f"{where}: steps must be a list")
    _check_size(doc, where)
    schema = trace_schema()
    problems = validate({**doc, "steps": []}, schema)
    if problems:
        raise _problem(where, problems)
    for i, step in enumerate(steps):
        name = step.get("action") if isinstance(step, dict) else None
        sub = schema["$defs"].get(f"step_{name}") if isinstance(name, str) else None
        if not isinstance(step, dict):
            raise LoadError(f"{where}: $.steps[{i}]: expected object, got {type(step).__name__}")
        if sub is None:
            raise LoadError(f"{where}: $.steps[{i}]: unknown action {name!r:.60} (`mjpki rules` lists them)")
        problems = validate(step, sub, schema, f"$.steps[{i}]")
        if problems:
            raise _problem(where, problems)


def _check_meta(meta: dict[str, Any], where: str) -> None:
    """meta.divergence, which the step table and the reports read, has the shape the lockstep engine writes."""
    div = meta.get("divergence")
    if div is None:
        return
    reqs = div.get("reqs", []) if isinstance(div, dict) else None
    ok = (
        isinstance(div, dict)
        and isinstance(div.get("index"), int)
        and not isinstance(div.get("index"), bool)
        and isinstance(div.get("what", ""), str)
        and isinstance(reqs, list)
        and all(isinstance(r, str) for r in reqs)
    )
    if not ok:
        raise LoadError(f"{where}: $.meta.divergence must be an object with index (an integer), what (a string) and reqs (strings)")


_REFERENCES: Final = {"person": "person", "to": "person", "phone": "phone", "sp": "service provider"}


def _check_references(trace: Trace, where: str) -> None:
    """Every person, phone and service provider a step names is in the trace's world."""
    known = {
        "person": {p.id for p in trace.world.persons},
        "phone": {p.id for p in trace.world.phones},
        "service provider": {s.id for s in trace.world.service_providers},
    }
    for i, step in enumerate(trace.steps):
        for arg, value in step.action.to_json()["args"].items():
            kind = _REFERENCES.get(arg)
            if kind is not None and value not in known[kind]:
                raise LoadError(f"{where}: step {i} names {kind} {value!r:.60}, which its world does not have")


def system_trace(doc: Any, *, where: str) -> Trace:
    """A system-level trace (mjpki-trace/1) from a parsed document, checked; LoadError (starting with `where`) otherwise."""
    from mjpki.spec.trace import Trace, TraceError

    _check_system_shape(doc, where)
    _check_meta(doc.get("meta", {}), where)
    try:
        trace = Trace.from_json(doc)
    except (TraceError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise LoadError(f"{where}: {cut(str(exc), _PROBLEM_CHARS)}") from None
    _check_references(trace, where)
    return trace


def applet_trace(doc: Any, *, where: str) -> ApduTrace:
    """An applet-level trace (mjpki-apdu-trace/1) from a parsed document, checked; LoadError (starting with `where`) otherwise."""
    from mjpki.spec.apdu.trace_schema import ApduTraceError, apdu_trace_from_json

    steps = doc.get("steps") if isinstance(doc, dict) else None
    if isinstance(steps, list) and len(steps) > MAX_STEPS:
        raise LoadError(f"{where}: {len(steps):,} steps; mjpki reads traces of at most {MAX_STEPS:,}")
    try:
        return apdu_trace_from_json(doc)
    except (ApduTraceError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise LoadError(f"{where}: {cut(str(exc), _PROBLEM_CHARS)}") from None


def load_trace(path: str | Path) -> Trace | ApduTrace:
    """A trace file of either format (its "format" says which), read and checked; LoadError otherwise."""
    from mjpki.spec.apdu.trace_schema import is_apdu_trace

    doc = load_json(path, what="trace file")
    if is_apdu_trace(doc):
        return applet_trace(doc, where=f"{path} is not a valid applet trace")
    return system_trace(doc, where=f"{path} is not a valid trace")
