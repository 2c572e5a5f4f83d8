"""Seeded bugs: versions of the spec's transition function with one rule weakened.

Each one breaks one requirement in a way a real implementation could. They show that the
invariants, the explorer (and later Z3) catch what they should, with a short trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import DAY
from mjpki.spec.domain import CertStatus, HoldCause, Kind, RevocationReason
from mjpki.spec.machine import step
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State
from mjpki.spec.world import World

__all__ = ["SeededBug", "SEEDED_BUGS"]

Stepper = Callable[[World, State, A.Action], tuple[State, Outcome]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeededBug:
    """A faulty stepper, the invariant it must break, and the variant settings it needs."""

    name: str
    breaks: str
    reqs: tuple[str, ...]
    doc: str
    stepper: Stepper
    variants: Variants = field(default_factory=Variants)


def _after(action_type: type[A.Action], fix: Callable[[World, State, State, A.Action], State]) -> Stepper:
    """A stepper that runs the spec, then corrupts the result of accepted steps of one action type."""

    def stepper(world: World, state: State, action: A.Action) -> tuple[State, Outcome]:
        new, outcome = step(world, state, action)
        if isinstance(action, action_type) and outcome.ok:
            new = fix(world, state, new, action)
        return new, outcome

    return stepper


def _card_found_resumes_signing(world: World, pre: State, post: State, a: A.Action) -> State:
    held = [c for c in pre.card_certs.values() if c.kind is Kind.SIGNING and c.status is CertStatus.SUSPENDED]
    certs = post.card_certs
    for c in held:
        certs = certs.set(c.serial, replace(c, status=CertStatus.ACTIVE, holds=frozenset()))
    return replace(post, card_certs=certs)


def _renewal_unrevokes(world: World, pre: State, post: State, a: A.Action) -> State:
    assert isinstance(a, A.IssueCardCertificate)
    certs = post.card_certs.update_where(
        lambda _s, c: c.person == a.person and c.kind is a.kind and c.reason is RevocationReason.DATA_CHANGE,
        lambda c: replace(c, status=CertStatus.ACTIVE, revoked_at=None, reason=None),
    )
    return replace(post, card_certs=certs)


def _phone_expiry_a_day_late(world: World, pre: State, post: State, a: A.Action) -> State:
    new = [s for s in post.phone_certs if s not in pre.phone_certs]
    return replace(post, phone_certs=post.phone_certs.update_where(lambda s, _c: s in new, lambda c: replace(c, expiry=c.expiry + DAY)))


def _card_hold_skips_phone(world: World, pre: State, post: State, a: A.Action) -> State:
    def lift(c):  # type: ignore[no-untyped-def]
        holds = c.holds - {HoldCause.CARD_LOST}
        return replace(c, holds=holds, status=CertStatus.SUSPENDED if holds else CertStatus.ACTIVE)

    return replace(post, phone_certs=post.phone_certs.update_where(lambda _s, c: HoldCause.CARD_LOST in c.holds, lift))


def _no_cascade(world: World, state: State, action: A.Action) -> tuple[State, Outcome]:
    """Whatever the step, the cascade revocations it made are undone: the linkage sweep never works."""
    post, outcome = step(world, state, action)

    def undo(c):  # type: ignore[no-untyped-def]
        return replace(c, status=CertStatus.ACTIVE, revoked_at=None, reason=None)

    fresh = {s for s, c in post.phone_certs.items() if c.reason is RevocationReason.CASCADE and s in state.phone_certs}
    fresh -= {s for s in fresh if state.phone_certs[s].reason is RevocationReason.CASCADE}
    return replace(post, phone_certs=post.phone_certs.update_where(lambda s, _c: s in fresh, undo)), outcome


def _key_without_pin(world: World, pre: State, post: State, a: A.Action) -> State:
    # Register writes the real PIN straight away instead of the blocked temporary PIN; the
    # PIN stays unknown to the user (None), yet the slot counts as SET: keys usable without PIN-2.
    from mjpki.spec.domain import PinStatus

    phone = a.phone  # type: ignore[attr-defined]
    se = post.phones[phone].se
    slots = se.slots.update_where(
        lambda _k, s: s.pin_status is PinStatus.TEMP_BLOCKED, lambda s: replace(s, pin_status=PinStatus.SET, tries_left=0)
    )
    return post.with_se(phone, slots=slots)


SEEDED_BUGS: dict[str, SeededBug] = {
    b.name: b
    for b in (
        SeededBug(
            name="card_found_resumes_signing",
            breaks="suspended_signing_never_resumes",
            reqs=("SUS-3",),
            doc="A found card's suspended signing certificate is resumed instead of revoked and re-issued.",
            stepper=_after(A.CardFound, _card_found_resumes_signing),
        ),
        SeededBug(
            name="renewal_unrevokes",
            breaks="revoked_stays_revoked",
            reqs=("REV-4",),
            doc="Re-issuing a card certificate brings the one revoked for a data change back to life.",
            stepper=_after(A.IssueCardCertificate, _renewal_unrevokes),
        ),
        SeededBug(
            name="phone_expiry_a_day_late",
            breaks="phone_expiry_is_card_expiry",
            reqs=("VAL-1",),
            doc="Phone certificates get their own expiry, one day after the card's.",
            stepper=_after(A.Register, _phone_expiry_a_day_late),
        ),
        SeededBug(
            name="card_hold_skips_phone",
            breaks="card_hold_holds_phone",
            reqs=("SUS-2",),
            doc="A lost card's suspension is not passed on to the linked phone certificates.",
            stepper=_after(A.ReportCardLost, _card_hold_skips_phone),
        ),
        SeededBug(
            name="no_cascade",
            breaks="cascade_within_delay",
            reqs=("REV-2",),
            doc="The linkage sweep never revokes phone certificates after their card signing certificate (zero delay).",
            stepper=_no_cascade,
            variants=Variants(cascade_delay_minutes=0),
        ),
        SeededBug(
            name="pin_counter_broken",
            breaks="pin_counter_consistent",
            reqs=("PIN-3", "PIN-2"),
            doc="Registration marks the PIN as set with no tries left instead of blocking the temporary PIN.",
            stepper=_after(A.Register, _key_without_pin),
        ),
    )
}
