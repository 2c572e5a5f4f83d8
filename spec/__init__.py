"""mjpki's executable specification of the smartphone JPKI lifecycle: pure, deterministic, no I/O.

The vocabulary (`domain`: kinds, statuses, hold causes, revocation reasons, the phone linkage), the world a run takes
place in (`world`) with the named assumptions and variant settings (`assumptions`), the state (`state`) and the abstract
clock (`clock`), one action per process of the sources (`actions`) and one rule per action (`rules`), the refusal
reasons (`reasons`) and outcomes (`outcome`), `machine.step` and the instants that matter (`machine`), what a system
can report for the invariants to judge (`observe`), the requirement catalogue (`requirements`), the trace format
(`trace`) and its JSON Schema (`schema`). The applet level's model of the GP-SE's APDU interface is a subpackage.
"""

from mjpki.spec.actions import ACTION_TYPES, Action, action_from_json
from mjpki.spec.assumptions import ASSUMPTIONS, Assumption, Variants
from mjpki.spec.domain import AuthMethod, CertStatus, HoldCause, Kind, PinStatus, Profile, RevocationReason, SPKind
from mjpki.spec.machine import SpecError, next_instants, rule_for, step
from mjpki.spec.outcome import Outcome, accepted, refused
from mjpki.spec.reasons import Reason
from mjpki.spec.rules import RULES, RuleSpec
from mjpki.spec.state import State, initial_state
from mjpki.spec.world import PersonSpec, PhoneSpec, ServiceProviderSpec, World, default_world

__all__ = [
    "ACTION_TYPES",
    "ASSUMPTIONS",
    "RULES",
    "Action",
    "Assumption",
    "AuthMethod",
    "CertStatus",
    "HoldCause",
    "Kind",
    "Outcome",
    "PersonSpec",
    "PhoneSpec",
    "PinStatus",
    "Profile",
    "Reason",
    "RevocationReason",
    "RuleSpec",
    "SPKind",
    "ServiceProviderSpec",
    "SpecError",
    "State",
    "Variants",
    "World",
    "accepted",
    "action_from_json",
    "default_world",
    "initial_state",
    "next_instants",
    "refused",
    "rule_for",
    "step",
]
