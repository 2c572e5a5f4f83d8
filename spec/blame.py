"""Blame: which requirements a difference between the spec's outcome and a system's is about.

A step whose outcome differs from the spec's touches the whole rule (Apply alone names fifteen
requirements), but the difference itself is about far fewer: the refusal reason that was given
or skipped, the detail that differs (a retry count is PIN-3, a push due time ISS-7, the kinds a
deletion removed MCH-4). `blame` names those; a divergence (mjpki.lockstep) and the verdicts
built on it FAIL only them, and fall back to the rule's list only where nothing narrower applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mjpki.spec import actions as A
from mjpki.spec.domain import AuthMethod
from mjpki.spec.machine import rule_for
from mjpki.spec.outcome import Outcome
from mjpki.spec.reasons import Reason as R

__all__ = ["DETAIL_REQS", "REASON_IN_RULE_REQS", "blame", "detail_reqs", "failure_reqs", "reason_reqs"]

DETAIL_REQS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "tries_left": ("PIN-3",),
        "push_due": ("ISS-7",),
        "kind": ("PIN-1",),  # which PIN of an application was malformed
        "leftover_removed": ("ISS-8",),
        "removed": ("ISS-8",),
        "se_wiped": ("DEL-2",),
        "profile": ("CA-3", "SP-1"),
        "deleted": ("MCH-4", "DEL-1"),
        "deletion_warning": ("MCH-3",),
        "deletions_failed": ("MCH-2", "MCH-3"),
    }
)
"""The outcome details compared with the spec's (values, not the system's own serials), and the requirement each is about."""

_DETAIL_IN_RULE: Mapping[tuple[type[A.Action], str], tuple[str, ...]] = MappingProxyType(
    {
        # What a revocation from the phone deletes is its own certificate's keys, nothing else (REV-1, DEL-1).
        (A.RevokeFromPhone, "deleted"): ("REV-1", "DEL-1"),
        # An application warns of a deletion exactly when it is a model change, one that revokes the certificates on another
        # SE first: a wrong warning there says the application missed (or imagined) the person's certificates in force
        # (LNK-3, ISS-4). The warning's own requirement, MCH-3, is blamed where it is all a step says (RevokeWithCard).
        (A.Apply, "deletion_warning"): ("LNK-3", "ISS-4"),
    }
)

REASON_IN_RULE_REQS: Mapping[tuple[type[A.Action], R], tuple[str, ...]] = MappingProxyType(
    {
        # Consent is asked because the person already has certificates in force: one of each kind per person (LNK-3).
        (A.Apply, R.CONSENT_REQUIRED): ("LNK-3",),
        # The phone's own revocation is guarded by the PIN (REV-1): a PIN refusal there is about REV-1 too.
        (A.RevokeFromPhone, R.WRONG_PIN): ("REV-1",),
        (A.RevokeFromPhone, R.PIN_LOCKED): ("REV-1",),
        (A.RevokeFromPhone, R.PIN_NOT_SET): ("REV-1",),
    }
)
"""Where a refusal given by one rule is about a requirement of that rule beyond the reason's own IDs."""


def reason_reqs(action: A.Action, reason: R | None) -> tuple[str, ...]:
    """The requirement IDs of a refusal given (or due) for this action: the reason's and the rule's for that reason."""
    if reason is None:
        return ()
    return tuple(dict.fromkeys(reason.reqs + REASON_IN_RULE_REQS.get((type(action), reason), ())))


def detail_reqs(action: A.Action, key: str) -> tuple[str, ...]:
    """The requirement IDs a compared detail of this action's outcome is about."""
    return _DETAIL_IN_RULE.get((type(action), key)) or DETAIL_REQS[key]


def _path_reqs(action: A.Action) -> tuple[str, ...]:
    # A key use through the screen lock takes the OS path of PIN-6: whatever goes wrong on it is about PIN-6.
    if isinstance(action, (A.Authenticate, A.Sign)) and action.method is not AuthMethod.PIN:
        return ("PIN-6",)
    return ()


def blame(action: A.Action, expected: Outcome, actual: Outcome) -> tuple[str, tuple[str, ...]] | None:
    """How the system's outcome differs from the spec's, and the requirement IDs that difference is about; None if equal.

    A different code blames the refusal the spec gives (the check the system skipped, or made after
    another that then refused), and the system's own refusal if it gave one (its state may differ
    there), or where the spec accepts, the refusal the system gave; a
    different detail blames that detail's requirement. Only details in DETAIL_REQS that both
    outcomes carry are compared.
    """
    if expected.code != actual.code:
        refusal = expected.reason if expected.reason is not None else actual.reason
        reqs = reason_reqs(action, refusal) + _path_reqs(action)
        if expected.reason is not None and actual.reason is not None:
            # Both refuse, for different reasons: either the system skipped the spec's check, or its state differs where
            # its own refusal looks (a PIN it wrongly reset answers PIN_NOT_SET before a revoked certificate's check).
            reqs += reason_reqs(action, actual.reason)
        return f"the spec says {expected.code}, the system {actual.code}", tuple(dict.fromkeys(reqs))
    for key in sorted(set(DETAIL_REQS) & set(expected.details)):
        if key in actual.details and actual.details[key] != expected.details[key]:
            what = f"{key}: the spec says {expected.details[key]!r}, the system {actual.details[key]!r}"
            return what, detail_reqs(action, key)
    return None


def failure_reqs(action: A.Action, expected: Outcome) -> tuple[str, ...]:
    """The requirement IDs a step blames when the system gave no outcome to compare (it raised, hung, or answered junk).

    Where the spec refuses, the refusal's; where it accepts, every check of the rule passed, so what the system failed
    at is the rule's effect: its requirements that no refusal of the rule stands for (the whole list if there are none).
    """
    if expected.reason is not None:
        return reason_reqs(action, expected.reason) + tuple(r for r in _path_reqs(action) if r not in expected.reason.reqs)
    if type(action) in _EFFECT_REQS:
        return _EFFECT_REQS[type(action)]
    rule = rule_for(action)
    refusals = {r for reason in rule.reasons if not reason.environmental for r in reason.reqs}
    return tuple(r for r in rule.reqs if r not in refusals) or rule.reqs


_EFFECT_REQS: Mapping[type[A.Action], tuple[str, ...]] = MappingProxyType(
    {
        # Setting the PIN is PIN-2's effect (the hidden temporary PIN replaced), over SCP03 (ISS-9), though PIN-2 also
        # stands for its refusal NO_PIN_PENDING.
        A.SetPin: ("PIN-2", "ISS-9"),
    }
)
