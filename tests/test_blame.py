"""Precise blame (issue 15, part 7): a divergence names what the differing part of the outcome is about."""

from __future__ import annotations

from mjpki.lockstep import COMPARED_DETAILS
from mjpki.spec import actions as A
from mjpki.spec.blame import DETAIL_REQS, REASON_IN_RULE_REQS, blame, failure_reqs
from mjpki.spec.domain import AuthMethod, Kind
from mjpki.spec.machine import rule_for
from mjpki.spec.outcome import accepted, refused
from mjpki.spec.reasons import Reason as R
from mjpki.spec.requirements import REQUIREMENTS

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
    # Two refusals: the spec's is the check the system skipped or made too late, the system's is where its state may
    # differ (a signing PIN initialisation that reset the auth PIN shows as PIN_NOT_SET where the spec says CERT_REVOKED).
    push = A.DeliverIssuancePush(person="P1")
    both = blame(push, refused(R.PUSH_NOT_DUE), refused(R.PUSH_TOKEN_INVALID))[1]  # type: ignore[index]
    assert both[:2] == ("ISS-7", "OPS-2") and set(R.PUSH_TOKEN_INVALID.reqs) <= set(both)
    use = A.Sign(phone="D1", sp="portal", pin="123456")
    assert {"REV-4", "PIN-2"} <= set(blame(use, refused(R.CERT_REVOKED), refused(R.PIN_NOT_SET))[1])  # type: ignore[index]
    # The OS path of a key use is PIN-6's, whatever the refusal.
    bio = A.Authenticate(phone="D1", sp="portal", method=AuthMethod.BIOMETRIC)
    assert blame(bio, accepted(), refused(R.WRONG_PIN))[1] == ("PIN-3", "PIN-6")  # type: ignore[index]
    assert blame(bio, accepted(), accepted()) is None


def test_a_step_without_an_outcome_blames_the_refusal_or_the_rules_effect() -> None:
    # The adapter raised on a step the spec accepts: the checks passed, the effect (PIN-2's temporary PIN) did not happen.
    init = A.InitialisePin(person="P1", phone="D1", kind=Kind.SIGNING, new_pin="XYZ789")
    assert failure_reqs(init, accepted()) == ("PIN-2",)
    assert failure_reqs(init, refused(R.SE_ID_MISMATCH)) == ("PIN-4", "LNK-6")
    # A rule whose every requirement stands for a refusal keeps its whole list.
    assert failure_reqs(A.PhoneFound(person="P1"), accepted()) == rule_for(A.PhoneFound).reqs
    assert failure_reqs(A.SetPin(phone="D1", kind=Kind.SIGNING), accepted()) == ("PIN-2", "ISS-9")
