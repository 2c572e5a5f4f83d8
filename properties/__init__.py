"""mjpki's properties of the lifecycle and the tools that check them against the spec.

The invariants over observations (`invariants`, re-exported here); exhaustive small-scope exploration with shortest
counterexamples (`explorer`), coverage of runs (`coverage`), lifecycle diagrams derived from the explored graph
(`diagrams`) and the runs of the check coverage:edges generated from it (`edge_tour`); the Z3 encoding of the rules
(`z3_encoding`), of the invariants and their lemmas (`z3_invariants`), the bridge between spec and encoding
(`z3_bridge`) and `mjpki prove`: proofs for every reachable state and violations as traces (`prove`); and the seeded
bugs that show each of them catches what it should (`seeded_bugs`).
"""

from mjpki.properties.invariants import (
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
