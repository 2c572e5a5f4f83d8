"""Blame: which requirements a difference between the spec's outcome and a system's is about.

A step whose outcome differs from the spec's touches the whole rule (Apply alone names fifteen
requirements), but the difference itself is about far fewer: the refusal reason that was given
or skipped, the detail that differs (a retry count is PIN-3, a push due time ISS-7, the kinds a
deletion removed MCH-4). `blame` names those; a divergence (mjpki.lockstep) and the verdicts
built on it FAIL only them, and fall back to the rule's list only where nothing narrower applies.

Where both refuse, for different reasons, the order of the rule's checks says which refusal the difference is about (a
rule declares its refusals in the order it checks them; tests/test_blame.py holds every rule to that): a system that
refuses at an earlier check than the spec's failed a check the spec's state passes, so its state differs there (a PIN it
wrongly reset answers PIN_NOT_SET before the certificate's revocation is looked at); one that refuses at a later check
skipped the spec's. And a refusal that the action's path never gives in the spec is the path's alone: the OS screen
lock presents the PIN the app holds (ASM-OS-AUTH-PRESENTS-PIN), so a WRONG_PIN on it is PIN-6's, not a wrong entry.

Given the spec's state, the spec's own refusal names the state behind it: a certificate the spec keeps suspended for one
cause (a lost phone, SUS-1; a lost card, SUS-2) that the system lets through differs from the spec's in that hold, if the
system's own records hold it active; if they hold it suspended, the system kept the hold and let the use through anyway
(SUS-4, REV-5: its verifier or what it publishes).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mjpki.spec import actions as A
from mjpki.spec.domain import AuthMethod, CertStatus, HoldCause, Kind
from mjpki.spec.machine import rule_for
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.reasons import Reason as R
from mjpki.spec.state import State

__all__ = ["DETAIL_REQS", "HOLD_REQS", "REASON_IN_RULE_REQS", "blame", "detail_reqs", "failure_reqs", "reason_reqs"]

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

HOLD_REQS: Mapping[HoldCause, tuple[str, ...]] = MappingProxyType({HoldCause.PHONE_LOST: ("SUS-1",), HoldCause.CARD_LOST: ("SUS-2",)})
"""The requirement that puts (and keeps) a certificate on hold for each cause."""


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


_OFF_PATH: Mapping[str, frozenset[R]] = MappingProxyType(
    {
        # The OS path presents the stored PIN (ASM-OS-AUTH-PRESENTS-PIN): the spec never answers it with a wrong PIN.
        "PIN-6": frozenset({R.WRONG_PIN}),
    }
)
"""Per path (its requirement, as _path_reqs names it): refusals the spec never gives on it."""


def _off_path(action: A.Action, reason: R | None) -> tuple[str, ...]:
    """The path's requirements if reason is one the spec never gives on the action's path, else ()."""
    path = _path_reqs(action)
    return path if reason is not None and any(reason in _OFF_PATH.get(p, ()) for p in path) else ()


def _spec_refusal(action: A.Action, expected: Outcome, actual: Outcome, state: State | None, system: Observation | None) -> tuple[str, ...]:
    """The requirements a spec refusal the system did not give is about: the reason's and the path's, and the state's.

    A certificate the spec keeps suspended for one cause (a lost phone, SUS-1; a lost card, SUS-2) that the system let
    through: where the system's own records (its observation before the step) still hold that certificate suspended,
    it kept the hold and its verifier or its publication let the use through (the reason's SUS-4, REV-5 alone); where
    they hold it active, it lost the hold and its verifier did as its records say (the hold's requirement alone); with
    no record to go by, both."""
    base = reason_reqs(action, expected.reason) + _path_reqs(action)
    hold = _hold_reqs(expected, state)
    if not hold:
        return tuple(dict.fromkeys(base))
    status = _system_status(action, actual, system)
    if status is CertStatus.SUSPENDED:
        return tuple(dict.fromkeys(base))
    if status is CertStatus.ACTIVE:
        return tuple(dict.fromkeys(_path_reqs(action) + hold))
    return tuple(dict.fromkeys(base + hold))


def _hold_reqs(expected: Outcome, state: State | None) -> tuple[str, ...]:
    """The requirement behind the spec's CERT_SUSPENDED, where one cause explains it; else ()."""
    if state is None or expected.reason is not R.CERT_SUSPENDED:
        return ()
    serial = expected.details.get("serial")
    cert = state.phone_certs.get(serial) or state.card_certs.get(serial)  # type: ignore[arg-type]
    if cert is None or len(cert.holds) != 1:
        return ()  # two causes: either could be the one the system lost, or its verifier ignores holds (SUS-4) altogether
    return HOLD_REQS[next(iter(cert.holds))]


def _system_status(action: A.Action, actual: Outcome, system: Observation | None) -> CertStatus | None:
    """The status the system's own records give the certificate the action used (its serials, its observation), if known."""
    if system is None:
        return None
    serial: object = None
    if isinstance(action, A.Sign | A.Authenticate):
        slot = system.slot(action.phone, Kind.SIGNING if isinstance(action, A.Sign) else Kind.AUTH)
        serial = slot.cert_serial if slot is not None else None
    elif isinstance(action, A.UseCard):
        serial = system.current_card.get((action.person, action.kind))
    elif isinstance(action, A.VerifyCertificate):
        serial = actual.details.get("serial")  # the system's verifier names its own serial
    cert = system.cert(serial) if isinstance(serial, int) else None
    return cert.status if cert is not None else None


def _check_order(action: A.Action, reason: R) -> int | None:
    """Where the rule checks for this refusal among its declared refusals (their order), or None if it declares none such."""
    reasons = rule_for(action).reasons
    return reasons.index(reason) if reason in reasons else None


def blame(
    action: A.Action, expected: Outcome, actual: Outcome, *, state: State | None = None, system: Observation | None = None
) -> tuple[str, tuple[str, ...]] | None:
    """How the system's outcome differs from the spec's, and the requirement IDs that difference is about; None if equal.

    A different code blames the refusal the spec gives where the system accepts, and the system's where the spec accepts.
    Where both refuse, it blames the system's refusal if the rule checks for it before the spec's (the system's state
    differs where it looked), the spec's if after (the system skipped that check), both if the order is unknown. A
    refusal the action's path never gives in the spec blames the path alone. Where the spec's refusal is the one
    blamed, state (the spec's, after the step) adds the requirement behind it (HOLD_REQS), or names it alone, as system (the
    system's observation before the step) says whether the system lost the hold or let it be ignored. A different detail blames that
    detail's requirement. Only details in DETAIL_REQS that both outcomes carry are compared.
    """
    if expected.code != actual.code:
        what = f"the spec says {expected.code}, the system {actual.code}"
        if off := _off_path(action, actual.reason):
            return what, off
        if expected.reason is not None and actual.reason is not None:
            first, second = _check_order(action, actual.reason), _check_order(action, expected.reason)
            if first is not None and second is not None:
                if first < second:
                    return what, tuple(dict.fromkeys(reason_reqs(action, actual.reason) + _path_reqs(action)))
                return what, _spec_refusal(action, expected, actual, state, system)
            # The system's refusal is not one the rule gives: either may be what differs.
            both = reason_reqs(action, expected.reason) + _path_reqs(action) + reason_reqs(action, actual.reason)
            return what, tuple(dict.fromkeys(both))
        if expected.reason is not None:
            return what, _spec_refusal(action, expected, actual, state, system)
        return what, tuple(dict.fromkeys(reason_reqs(action, actual.reason) + _path_reqs(action)))
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
