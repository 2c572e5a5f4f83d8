"""Hypothesis stateful testing of the spec alone: several persons and phones, every invariant after every step."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mjpki.properties import check_state, check_transition
from mjpki.scenarios import base_world
from mjpki.spec import Variants, initial_state, step
from mjpki.spec import actions as A
from mjpki.spec.machine import SpecError
from mjpki.spec.observe import observe
from mjpki.spec.rules import RULES
from mjpki.spec.world import World
from mjpki.strategies import action_strategy


class SpecMachine(RuleBasedStateMachine):
    """Drive the spec with generated actions; check the transition invariants on each step."""

    world: World = base_world()

    def __init__(self) -> None:
        super().__init__()
        self.state = initial_state(self.world)
        self.obs = observe(self.world, self.state)

    @rule(data=st.data())
    def act(self, data: st.DataObject) -> None:
        action = data.draw(action_strategy(self.world, self.state), label="action")
        new_state, outcome = step(self.world, self.state, action)
        # Determinism: the same step from the same state gives the same result.
        assert step(self.world, self.state, action) == (new_state, outcome)
        post = observe(self.world, new_state)
        violations = check_transition(self.world, self.obs, action, outcome, post)
        assert not violations, f"{action} -> {outcome}:\n" + "\n".join(map(str, violations))
        self.state, self.obs = new_state, post

    @invariant()
    def state_invariants_hold(self) -> None:
        violations = check_state(self.world, self.obs)
        assert not violations, "\n".join(map(str, violations))


TestSpecDefaultVariants = SpecMachine.TestCase


class SpecMachineWipingReset(SpecMachine):
    """The same, with the design study's variants: reset wipes the SE, deletion removes the applet, no cascade delay;
    and the phone certificates linked per kind, a found card's signing certificate re-issued with a fresh expiry."""

    world = base_world(
        factory_reset_wipes_se=True,
        remote_deletion_removes_applet=True,
        cascade_delay_minutes=0,
        phone_linkage="per_kind",
        card_found_fresh_expiry=True,
    )


TestSpecOtherVariants = SpecMachineWipingReset.TestCase


class SpecMachineEitherLinkage(SpecMachine):
    """The same, with the third linkage setting: both phone certificates follow both card certificates."""

    world = base_world(phone_linkage="either")


TestSpecEitherLinkage = SpecMachineEitherLinkage.TestCase


VARIANT_ONLY = {("Apply", "CARD_AUTH_CERT_NOT_VALID"), ("Register", "CARD_AUTH_CERT_NOT_VALID")}
"""Refusals only a non-default variant gives (phone_linkage per_kind or either): test_generated_runs_reach_the_linkage_refusals."""


def test_generated_runs_reach_every_outcome() -> None:
    """The action strategy reaches every rule's acceptance and nearly all of its declared refusals.

    A generator that never gets past the application would make the stateful tests above
    (and the lockstep tests built on the same strategy) vacuous; this guards against that.
    """
    world = base_world()
    seen: Counter[tuple[str, str]] = Counter()

    @settings(max_examples=300, derandomize=True, database=None)
    @given(st.data())
    def walk(data: st.DataObject) -> None:
        state = initial_state(world)
        for _ in range(100):
            action = data.draw(action_strategy(world, state))
            state, outcome = step(world, state, action)
            seen[(action.name, outcome.code)] += 1

    walk()
    never_accepted = [cls.__name__ for cls in RULES if (cls.__name__, "ACCEPTED") not in seen]
    assert not never_accepted, f"never accepted in generated runs: {never_accepted}"
    declared = {(cls.__name__, r.name) for cls, spec in RULES.items() for r in spec.reasons} - VARIANT_ONLY
    missing = sorted(declared - set(seen))
    assert len(missing) <= len(declared) // 10, f"{len(missing)} of {len(declared)} refusals never generated: {missing}"


def test_undeclared_reason_is_a_spec_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """step() holds every rule to the refusal reasons it declares."""
    from dataclasses import replace

    from mjpki.spec import actions as A
    from mjpki.spec.reasons import Reason

    world = base_world()
    spec = RULES[A.UnlockScreen]
    bad = replace(spec, fn=lambda w, s, a: (s, __import__("spec").refused(Reason.PIN_LOCKED)))
    monkeypatch.setitem(RULES, A.UnlockScreen, bad)
    try:
        step(world, initial_state(world), A.UnlockScreen(phone="D1"))
    except SpecError as exc:
        assert "PIN_LOCKED" in str(exc)
    else:
        raise AssertionError("an undeclared refusal reason went unnoticed")


def test_variants_validate() -> None:
    """Variant settings outside their range are refused with a message that says the range."""
    import pytest

    with pytest.raises(ValueError, match=r"1\.\.15"):
        Variants(auth_pin_tries=0)
    with pytest.raises(ValueError, match=">= 0"):
        Variants(cascade_delay_minutes=-1)
    with pytest.raises(ValueError, match="card_signing, per_kind, either"):
        Variants(phone_linkage="both")  # type: ignore[arg-type]
    assert Variants.parse(["phone_linkage=either", "card_found_fresh_expiry=yes", "auth_pin_tries=4"]).to_json() == {
        **Variants().to_json(),
        "phone_linkage": "either",
        "card_found_fresh_expiry": True,
        "auth_pin_tries": 4,
    }
    with pytest.raises(ValueError, match="true or false"):
        Variants.parse(["card_found_fresh_expiry=maybe"])


def test_generated_runs_reach_the_linkage_refusals() -> None:
    """Under the linkage variants the generator reaches the refusals only they give (CARD_AUTH_CERT_NOT_VALID)."""
    world = base_world(phone_linkage="either")
    seen: Counter[tuple[str, str]] = Counter()

    @settings(max_examples=150, derandomize=True, database=None)
    @given(st.data())
    def walk(data: st.DataObject) -> None:
        state = initial_state(world)
        for _ in range(60):
            action = data.draw(action_strategy(world, state))
            state, outcome = step(world, state, action)
            seen[(action.name, outcome.code)] += 1

    walk()
    assert ("Apply", "CARD_AUTH_CERT_NOT_VALID") in seen
    assert all((cls.__name__, "ACCEPTED") in seen for cls in (A.Apply, A.Register, A.RevokeCardCertificate, A.IssueCardCertificate))
