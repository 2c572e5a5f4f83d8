"""mjpki's lifecycle invariants: predicates over observations (and, later, their Z3 encodings)."""

from properties.invariants import (
    STATE_INVARIANTS,
    TRANSITION_INVARIANTS,
    Invariant,
    TransitionInvariant,
    Violation,
    check_state,
    check_transition,
    invariant_names,
)

__all__ = [
    "STATE_INVARIANTS",
    "TRANSITION_INVARIANTS",
    "Invariant",
    "TransitionInvariant",
    "Violation",
    "check_state",
    "check_transition",
    "invariant_names",
]
