"""Precise blame (issue 15, part 7): a divergence names what the differing part of the outcome is about."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import pytest

from mjpki.lockstep import COMPARED_DETAILS, Divergence, Lockstep
from mjpki.spec import actions as A
from mjpki.spec import rules
from mjpki.spec.blame import DETAIL_REQS, REASON_IN_RULE_REQS, blame, failure_reqs
from mjpki.spec.domain import AuthMethod, Kind
from mjpki.spec.machine import rule_for
from mjpki.spec.outcome import accepted, refused
from mjpki.spec.reasons import Reason as R
from mjpki.spec.requirements import REQUIREMENTS
from mjpki.spec.rules import RULES
from mjpki.spec.state import initial_state

APPLY = A.Apply(person="P1", phone="D1", kinds=frozenset({Kind.SIGNING}), signing_pin="ABC123", consent=False)


def test_every_compared_detail_and_refinement_names_known_requirements() -> None:
    assert frozenset(DETAIL_REQS) == COMPARED_DETAILS
    for key, reqs in DETAIL_REQS.items():
        assert reqs and len(reqs) <= 2 and set(reqs) <= set(REQUIREMENTS), key
    for (action, reason), reqs in REASON_IN_RULE_REQS.items():
        # A refinement names a requirement of the rule that gives the refusal, for a refusal that rule declares.
        rule = rule_for(action)
        assert reason in rule.reasons and set(reqs) <= set(rule.reqs), (action.__name__, reason)


def test_a_differing_detail_blames_its_requirement_not_the_rule() -> None:
    # A wrong push due time is ISS-7's, not the application's fifteen IDs.
    assert blame(APPLY, accepted(push_due=545), accepted(push_due=600)) == ("push_due: the spec says 545, the system 600", ("ISS-7",))
    wrong = A.Authenticate(phone="D1", sp="portal", pin="9999")
    assert blame(wrong, refused(R.WRONG_PIN, tries_left=2), refused(R.WRONG_PIN, tries_left=1))[1] == ("PIN-3",)  # type: ignore[index]
    push = A.DeliverDeletionPush(phone="D1")
    assert blame(push, accepted(deleted=("auth", "signing")), accepted(deleted=("auth",)))[1] == ("MCH-4", "DEL-1")  # type: ignore[index]
    # Details that name the system's own objects are never compared.
    assert blame(push, accepted(deleted=(), serial=4), accepted(deleted=(), serial=99)) is None


def test_a_different_code_blames_the_refusal_and_the_rules_own_reading_of_it() -> None:
    assert blame(APPLY, refused(R.CONSENT_REQUIRED), accepted())[1] == ("ISS-4", "MCH-1", "LNK-3")  # type: ignore[index]
    revoke = A.RevokeFromPhone(phone="D1", kind=Kind.AUTH, pin="1234")
    assert blame(revoke, refused(R.PIN_LOCKED), accepted())[1] == ("PIN-3", "REV-1")  # type: ignore[index]
    # Two refusals: a system that refuses at a later check than the spec's skipped the spec's check (a push before its
    # due time, whatever the token), one that refuses at an earlier check has its state wrong there (a signing PIN
    # initialisation that reset the auth PIN shows as PIN_NOT_SET where the spec says CERT_REVOKED).
    push = A.DeliverIssuancePush(person="P1")
    assert blame(push, refused(R.PUSH_NOT_DUE), refused(R.PUSH_TOKEN_INVALID))[1] == ("ISS-7", "OPS-2")  # type: ignore[index]
    assert blame(push, refused(R.PUSH_TOKEN_INVALID), refused(R.PUSH_NOT_DUE))[1] == ("ISS-7", "OPS-2")  # type: ignore[index]
    use = A.Sign(phone="D1", sp="portal", pin="123456")
    assert blame(use, refused(R.CERT_REVOKED), refused(R.PIN_NOT_SET))[1] == ("PIN-2", "ISS-7")  # type: ignore[index]
    assert blame(use, refused(R.PIN_NOT_SET), refused(R.CERT_REVOKED))[1] == ("PIN-2", "ISS-7")  # type: ignore[index]
    # A refusal the rule never gives: either may be what differs.
    assert blame(push, refused(R.PUSH_NOT_DUE), refused(R.WRONG_PIN))[1] == ("ISS-7", "OPS-2", "PIN-3")  # type: ignore[index]
    # The OS path of a key use is PIN-6's, whatever the refusal; a wrong PIN, which the spec never gives on it (the OS
    # presents the PIN the app holds), is PIN-6's alone, whatever the spec says.
    bio = A.Authenticate(phone="D1", sp="portal", method=AuthMethod.BIOMETRIC)
    assert blame(bio, refused(R.PIN_LOCKED), accepted())[1] == ("PIN-3", "PIN-6")  # type: ignore[index]
    assert blame(bio, accepted(), refused(R.WRONG_PIN))[1] == ("PIN-6",)  # type: ignore[index]
    assert blame(bio, refused(R.CERT_REVOKED), refused(R.WRONG_PIN))[1] == ("PIN-6",)  # type: ignore[index]
    assert blame(bio, accepted(), accepted()) is None
    typed = A.Authenticate(phone="D1", sp="portal", pin="1234")
    assert blame(typed, refused(R.CERT_EXPIRED), refused(R.WRONG_PIN))[1] == ("PIN-3",)  # type: ignore[index]


def _refusals_in_source_order(fn: Callable[..., object], seen: frozenset[str] = frozenset()) -> list[str]:
    """The Reason names a rule function refers to, in source order, with the rule helpers it calls expanded in place."""
    out: list[str] = []
    for m in re.finditer(r"R\.([A-Z_]+)|\b(_[a-z_]+)\(", inspect.getsource(fn)):
        if m.group(1):
            out.append(m.group(1))
        elif (helper := getattr(rules, m.group(2), None)) is not None and inspect.isfunction(helper) and m.group(2) not in seen:
            out += _refusals_in_source_order(helper, seen | {m.group(2)})
    return out


def test_every_rule_declares_its_refusals_in_the_order_it_checks_them() -> None:
    # blame() reads the order of a rule's checks from its declared refusals: each rule's guards must come in that order.
    for action, spec in RULES.items():
        declared = [r.name for r in spec.reasons]
        checked = [r for r in dict.fromkeys(_refusals_in_source_order(spec.fn)) if r in declared]
        assert checked == [r for r in declared if r in checked], action.__name__


def test_a_step_without_an_outcome_blames_the_refusal_or_the_rules_effect() -> None:
    # The adapter raised on a step the spec accepts: the checks passed, the effect (PIN-2's temporary PIN) did not happen.
    init = A.InitialisePin(person="P1", phone="D1", kind=Kind.SIGNING, new_pin="XYZ789")
    assert failure_reqs(init, accepted()) == ("PIN-2",)
    assert failure_reqs(init, refused(R.SE_ID_MISMATCH)) == ("PIN-4", "LNK-6")
    # A rule whose every requirement stands for a refusal keeps its whole list.
    assert failure_reqs(A.PhoneFound(person="P1"), accepted()) == rule_for(A.PhoneFound).reqs
    assert failure_reqs(A.SetPin(phone="D1", kind=Kind.SIGNING), accepted()) == ("PIN-2", "ISS-9")


# --- search finds: the broken requirement among at most three blamed -------------------------------------------------

_ISSUED = (
    A.InstallApp(phone="D1"),
    A.PrepareApplet(phone="D1"),
    A.Apply(person="P1", phone="D1", kinds=frozenset({Kind.AUTH, Kind.SIGNING}), signing_pin="ABC123", auth_pin="1234", consent=True),
    A.AdvanceTime(minutes=480),
    A.DeliverIssuancePush(person="P1"),
    A.Register(person="P1", phone="D1"),
)
"""P1's phone certificates of both kinds registered on D1 (their PINs still to be set)."""

SEARCH_FINDS: dict[str, tuple[str, str, tuple[A.Action, ...], str]] = {
    # Each: the faulty system, the stateful world, the steps, and what the last step's divergence says: divergences the
    # search found (os-auth-*, signing-init-set-pin, revoke-with-card-*: shrunk), and the same flows to the narrowed cases
    # built by hand (the rest). What the fault broke happened earlier; the blame must name it from what differs now.
    "os-auth-revoked": (
        "os-auth-keeps-old-pin",
        "default",
        (
            *_ISSUED,
            A.SetPin(phone="D1", kind=Kind.AUTH),
            _ISSUED[2],  # a second application, for a model change on the same phone: the old certificates are revoked
            A.EnrollOsAuth(phone="D1", pin="1234"),
            A.ChangePin(phone="D1", kind=Kind.AUTH, old_pin="1234", new_pin="5678"),
            A.Authenticate(phone="D1", sp="portal", method=AuthMethod.OS_CREDENTIAL),
        ),
        "the spec says CERT_REVOKED, the system WRONG_PIN",  # was REV-4, REV-5, DEL-3, PIN-6, PIN-3
    ),
    "os-auth-biometric": (
        "os-auth-keeps-old-pin",
        "variants",
        (
            *_ISSUED[:2],
            A.Apply(person="P1", phone="D1", kinds=frozenset({Kind.AUTH}), auth_pin="1234", consent=True),
            A.AdvanceTime(minutes=480),
            *_ISSUED[4:],
            A.SetPin(phone="D1", kind=Kind.AUTH),
            A.EnrollOsAuth(phone="D1", pin="1234"),
            A.Authenticate(phone="D1", sp="portal", method=AuthMethod.OS_CREDENTIAL),
            A.ChangePin(phone="D1", kind=Kind.AUTH, old_pin="1234", new_pin="5678"),
            A.Authenticate(phone="D1", sp="portal", method=AuthMethod.BIOMETRIC),
        ),
        "the spec says ACCEPTED, the system WRONG_PIN",
    ),
    "signing-init-then-revoked-auth": (
        "signing-pin-init-resets-auth",
        "default",
        (
            *_ISSUED,
            A.SetPin(phone="D1", kind=Kind.AUTH),
            A.SetPin(phone="D1", kind=Kind.SIGNING),
            A.InitialisePin(person="P1", phone="D1", kind=Kind.SIGNING, new_pin="XYZ789"),
            A.RevokeCardCertificate(person="P1", kind=Kind.SIGNING),
            A.AdvanceTime(minutes=60 * 24 * 30),
            A.Authenticate(phone="D1", sp="portal", pin="1234"),
        ),
        "the spec says CERT_REVOKED, the system PIN_NOT_SET",
    ),
    "signing-init-set-pin": (
        "signing-pin-init-resets-auth",
        "default",
        (
            *_ISSUED,
            A.SetPin(phone="D1", kind=Kind.SIGNING),
            A.InitialisePin(person="P1", phone="D1", kind=Kind.SIGNING, new_pin="ABC123"),
            A.SetPin(phone="D1", kind=Kind.SIGNING),
        ),
        "the spec says ACCEPTED, the system NO_PIN_PENDING",
    ),
    "lifting-phone-hold-card-still-lost": (
        "lifting-one-hold-resumes",
        "default",
        (*_ISSUED, A.ReportPhoneLost(person="P1"), A.ReportCardLost(person="P1"), A.PhoneFound(person="P1")),
        "invariant: card_hold_holds_phone",
    ),
    "lifting-card-hold-phone-still-lost": (
        "lifting-one-hold-resumes",
        "default",
        (
            *_ISSUED,
            A.SetPin(phone="D1", kind=Kind.AUTH),
            A.ReportPhoneLost(person="P1"),
            A.ReportCardLost(person="P1"),
            A.CardFound(person="P1"),
            A.ResumeFromApp(person="P1", phone="D1", signing_pin="XYZ789"),
            A.Authenticate(phone="D1", sp="portal", pin="1234"),
        ),
        "the spec says CERT_SUSPENDED, the system ACCEPTED",  # was SUS-4, REV-5: the hold the system dropped is the phone's
    ),
    "ocsp-good-while-phone-lost": (
        "ocsp-good-while-on-hold",
        "default",
        (
            *_ISSUED,
            A.SetPin(phone="D1", kind=Kind.AUTH),
            A.ReportPhoneLost(person="P1"),
            A.Authenticate(phone="D1", sp="portal", pin="1234"),
        ),
        "the spec says CERT_SUSPENDED, the system ACCEPTED",
    ),
    "revoke-with-card-no-deletion": (
        "revoke-with-card-keeps-keys",
        "default",
        (*_ISSUED, A.RevokeWithCard(person="P1"), A.AdvanceTime(minutes=525600)),
        "deletions_failed: the spec says ('D1',), the system ()",
    ),
}


def _divergence(name: str) -> Divergence | None:
    """SEARCH_FINDS[name]'s steps in lockstep on its faulty system: the divergence."""
    from mjpki.conformance import STATEFUL_WORLDS
    from tests.faulty_impls import FAULTY

    fault_name, world, steps, _what = SEARCH_FINDS[name]
    run = Lockstep(FAULTY[fault_name].factory, STATEFUL_WORLDS[world](), timeout=60)
    try:
        for action in steps:
            run.step(action)
    finally:
        run.close()
    return run.divergence


@pytest.mark.parametrize("name", sorted(SEARCH_FINDS))
def test_search_found_divergences_blame_the_broken_requirement_among_at_most_three(name: str) -> None:
    from tests.faulty_impls import FAULTY

    fault_name, _world, steps, what = SEARCH_FINDS[name]
    fault = FAULTY[fault_name]
    d = _divergence(name)
    assert d is not None and d.index == len(steps) - 1 and d.what.startswith(what), d
    assert set(d.reqs) & set(fault.breaks) and len(d.reqs) <= 3, (d.reqs, fault.breaks)


@pytest.mark.parametrize(
    ("name", "blamed"),
    [
        # The system's records hold the certificate suspended: the hold was kept, the use let through (its OCSP says good).
        ("ocsp-good-while-phone-lost", {"SUS-4", "REV-5"}),
        # The system's records hold it active: it dropped the phone's hold (SUS-1) and its verifier followed its records.
        ("lifting-card-hold-phone-still-lost", {"SUS-1"}),
    ],
)
def test_a_use_let_through_on_hold_blames_the_hold_or_the_verifier_by_the_systems_records(name: str, blamed: set[str]) -> None:
    d = _divergence(name)
    assert d is not None and set(d.reqs) == blamed, d


def test_with_no_record_to_go_by_a_use_let_through_on_hold_blames_both() -> None:
    from mjpki.scenarios import base_world
    from mjpki.spec.machine import step

    world = base_world()
    state = initial_state(world)
    for action in (*_ISSUED, A.SetPin(phone="D1", kind=Kind.AUTH), A.ReportPhoneLost(person="P1")):
        state, _o = step(world, state, action)
    use = A.Authenticate(phone="D1", sp="portal", pin="1234")
    state, expected = step(world, state, use)
    assert expected.reason is R.CERT_SUSPENDED
    assert set(blame(use, expected, accepted(), state=state)[1]) == {"SUS-4", "REV-5", "SUS-1"}  # type: ignore[index]
