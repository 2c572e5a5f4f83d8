"""The executable spec's entry points: step an action, list the instants that matter."""

from __future__ import annotations

import dataclasses
import functools

from mjpki.spec import actions as A
from mjpki.spec.clock import PRIMARY_AUTH_INTERVAL, next_window_edge
from mjpki.spec.domain import CASCADING_REASONS, CertStatus
from mjpki.spec.outcome import Outcome
from mjpki.spec.rules import RULES, RuleSpec
from mjpki.spec.state import State
from mjpki.spec.world import World

__all__ = ["SpecError", "step", "rule_for", "check_action", "next_instants", "deadlines", "DEADLINE_KINDS"]


class SpecError(AssertionError):
    """The spec broke its own contract (a rule returned an undeclared reason). A bug in spec/."""


def rule_for(action: A.Action | type[A.Action]) -> RuleSpec:
    """The rule that handles this action (type)."""
    cls = action if isinstance(action, type) else type(action)
    try:
        return RULES[cls]
    except KeyError:
        raise ValueError(f"{cls.__name__} has no rule; actions with rules: {sorted(c.__name__ for c in RULES)}") from None


@functools.cache
def _named(cls: type[A.Action]) -> tuple[str, ...]:
    """The fields of an action type that name a person, a phone or a service provider (looked up once per type)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name in ("person", "to", "phone", "sp"))  # type: ignore[arg-type]


def check_action(world: World, action: A.Action) -> None:
    """Raise ValueError if the action names a person, phone or service provider this world lacks."""
    for name in _named(type(action)):
        value = getattr(action, name)
        if name in ("person", "to"):
            world.person(value)
        elif name == "phone":
            world.phone(value)
        else:
            world.service_provider(value)


def step(world: World, state: State, action: A.Action) -> tuple[State, Outcome]:
    """Apply one action: the next state and the outcome (accepted, or refused with a reason).

    Pure and deterministic. A malformed action (unknown identifiers) raises ValueError; every
    well-formed action has an outcome, refusals included.
    """
    if not isinstance(action, A.Action):
        raise TypeError(f"step() takes an Action, got {type(action).__name__}")
    check_action(world, action)
    spec = rule_for(action)
    new_state, outcome = spec.fn(world, state, action)
    if outcome.reason is not None and outcome.reason not in spec.reasons:
        raise SpecError(f"{action.name} refused with undeclared reason {outcome.reason.name}")
    return new_state, outcome


DEADLINE_KINDS = ("push window", "push due", "deletion deadline", "expiry", "cascade", "primary auth")
"""What makes an instant matter (deadlines): ISS-7 push window and due time, MCH-3 deletion deadline, VAL-1/VAL-2 expiry,
REV-2 cascade delay, PIN-6 72-hour primary authentication."""


def deadlines(world: World, state: State) -> tuple[tuple[int, str], ...]:
    """Every instant after now at which some rule's answer can change, with what makes it matter (DEADLINE_KINDS), soonest first."""
    now = state.now
    delay = world.variants.cascade_delay_minutes
    found: set[tuple[int, str]] = {(next_window_edge(now), "push window")}
    found.update((app.push_due, "push due") for app in state.applications.values())
    found.update((d.deadline, "deletion deadline") for d in state.deletions.values())
    for cert in (*state.card_certs.values(), *state.phone_certs.values()):
        if cert.status is not CertStatus.REVOKED:
            found.add((cert.expiry, "expiry"))
    for pc in state.phone_certs.values():
        for serial in pc.follows:  # the cascade deadlines of the card certificates it follows (REV-2)
            card = state.card_certs[serial]
            if pc.status is not CertStatus.REVOKED and card.reason in CASCADING_REASONS and card.revoked_at is not None:
                found.add((card.revoked_at + delay, "cascade"))
    for ps in state.phones.values():
        if ps.last_primary_auth is not None:
            found.add((ps.last_primary_auth + PRIMARY_AUTH_INTERVAL + 1, "primary auth"))
    return tuple(sorted(d for d in found if d[0] > now))


def next_instants(world: World, state: State, *, limit: int = 8) -> tuple[int, ...]:
    """The next instants after now at which some rule's answer can change, soonest first.

    Abstract time (ARCHITECTURE decision 3): exploring only these keeps runs short and the
    state space finite. They are push dues, push-window edges, cascade deadlines, deletion
    deadlines, certificate expiries and the end of the 72-hour primary-authentication period (`deadlines`).
    """
    return tuple(dict.fromkeys(t for t, _ in deadlines(world, state)))[:limit]
