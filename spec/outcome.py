"""Outcomes: what an action did, as a value. Every layer compares these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mjpki.spec.fmap import FrozenMap
from mjpki.spec.reasons import Reason

__all__ = ["Outcome", "accepted", "refused"]

Detail = int | str | bool | None | tuple[Any, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Accepted (reason is None) or refused with a reason code; details say what became observable."""

    reason: Reason | None
    details: FrozenMap[str, Detail] = field(default_factory=FrozenMap)

    @property
    def ok(self) -> bool:
        """True if the action was accepted."""
        return self.reason is None

    @property
    def code(self) -> str:
        """ "ACCEPTED" or the refusal reason's name."""
        return "ACCEPTED" if self.reason is None else self.reason.name

    def to_json(self) -> dict[str, Any]:
        """The outcome as JSON data (the trace format's `outcome`)."""
        return {"code": self.code, "details": {k: _jsonable(v) for k, v in self.details.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        """Read an outcome written by to_json."""
        code = data["code"]
        reason = None if code == "ACCEPTED" else Reason[code]
        details = FrozenMap((k, _frozen(v)) for k, v in data.get("details", {}).items())
        return cls(reason=reason, details=details)

    def __str__(self) -> str:
        if not self.details:
            return self.code
        inner = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.code}({inner})"


_NO_DETAILS: FrozenMap[str, Detail] = FrozenMap()
"""Shared by the outcomes without details (most refusals): building an empty map per step is a measurable part of the
explorer's time."""


def accepted(**details: Detail) -> Outcome:
    """An accepted outcome with the given observable details."""
    return Outcome(reason=None, details=FrozenMap(details) if details else _NO_DETAILS)


def refused(reason: Reason, **details: Detail) -> Outcome:
    """A refusal with its reason code."""
    return Outcome(reason=reason, details=FrozenMap(details) if details else _NO_DETAILS)


def _jsonable(value: Detail) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _frozen(value: Any) -> Detail:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
