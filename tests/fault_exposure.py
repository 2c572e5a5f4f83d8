"""Where the edge faults of tests/faulty_impls.py show: the spec steps on which each faulty system first answers differently.

A faulty system agrees with the spec until such a step, so a generated run exposes the fault exactly when it draws one.
bench/search_reach.py simulates whole searches on the spec alone with these predicates (far cheaper than running the
faulty systems); tests/test_fault_exposure.py checks each predicate against its faulty system, step for step.
"""

from __future__ import annotations

from collections.abc import Callable

from mjpki.spec import actions as A
from mjpki.spec.clock import DAY
from mjpki.spec.domain import CASCADING_REASONS, CertStatus, RevocationReason
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State
from mjpki.spec.world import World

__all__ = ["EXPOSES", "Exposes", "cascaded"]

Exposes = Callable[[World, State, A.Action, Outcome, State], bool]
"""A predicate on one spec step: (world, state before, action, outcome, state after)."""


def _cascade_revocations(pre: State, post: State) -> list[int]:
    """For each phone certificate the step revoked by the cascade (REV-2; not one revoked by a model change, say, whose
    card certificate happens to be revoked too): the earliest revocation, for a cascading reason, of a card certificate
    it follows."""
    out: list[int] = []
    for serial, cert in post.phone_certs.items():
        old = pre.phone_certs.get(serial)
        if cert.reason is not RevocationReason.CASCADE or (old is not None and old.reason is RevocationReason.CASCADE):
            continue
        revoked = [
            c.revoked_at
            for f in cert.follows
            if (c := post.card_certs.get(f)) is not None and c.status is CertStatus.REVOKED and c.reason in CASCADING_REASONS
            and c.revoked_at is not None
        ]  # fmt: skip
        if revoked:
            out.append(min(revoked))
    return out


def cascaded(pre: State, post: State) -> bool:
    """The step revoked a phone certificate by the cascade (REV-2)."""
    return bool(_cascade_revocations(pre, post))


def _cascade_before_doubled_delay(w: World, s: State, a: A.Action, o: Outcome, t: State) -> bool:
    # cascade-delay-doubled revokes at the card certificate's revocation plus two delays: a cascade the spec makes
    # before that shows (with a zero delay both are immediate).
    delay = w.variants.cascade_delay_minutes
    return delay > 0 and any(t.now < r + 2 * delay for r in _cascade_revocations(s, t))


def _deletion_hits_new_certificate(w: World, s: State, a: A.Action, o: Outcome, t: State) -> bool:
    # deletion-of-what-the-slot-holds-now empties the slots of the request's kinds: it shows when one of them holds a
    # certificate the request was not made for.
    if not isinstance(a, A.DeliverDeletionPush) or not o.ok:
        return False
    slots = s.phones[a.phone].se.slots
    for (phone, _person), d in s.deletions.items():
        if phone != a.phone or d.push_token is None or d.push_token != s.phones[phone].app_token:
            continue
        for serial in d.serials:
            slot = slots.get(s.phone_certs[serial].kind)
            if slot is not None and slot.cert_serial not in d.serials:
                return True
    return False


def _time_into_deletions_last_day(w: World, s: State, a: A.Action, o: Outcome, t: State) -> bool:
    # deletion-window-one-day fails a deletion a day before its deadline: it shows when time stops in that day while
    # the deletion still waits.
    return (
        isinstance(a, A.AdvanceTime)
        and o.ok
        and any(d.deadline - DAY <= t.now < d.deadline for key, d in s.deletions.items() if key in t.deletions)
    )


EXPOSES: dict[str, Exposes] = {
    "no-cascade": lambda w, s, a, o, t: cascaded(s, t),
    "cascade-delay-doubled": _cascade_before_doubled_delay,
    "push-ignores-due-time": lambda w, s, a, o, t: isinstance(a, A.DeliverIssuancePush) and o.code == "PUSH_NOT_DUE",
    "deletion-of-what-the-slot-holds-now": _deletion_hits_new_certificate,
    "deletion-window-one-day": _time_into_deletions_last_day,
}
"""Per edge fault (tests/faulty_impls.FAULTY's names), the steps on which that faulty system first differs from the spec."""
