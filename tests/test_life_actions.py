"""The life branch of the strategies walks a user's flows after registering, each stage reachable from the one before."""

from __future__ import annotations

from mjpki.scenarios import base_world
from mjpki.spec import actions as A
from mjpki.spec import initial_state, step
from mjpki.spec.domain import AuthMethod, Kind, PinStatus
from mjpki.spec.state import State
from mjpki.spec.world import World
from mjpki.strategies import deep_flow_step, life_actions


def _until(world: World, state: State, done) -> State:  # type: ignore[no-untyped-def]
    """Follow the deep flow until done(state) holds (at most 60 steps)."""
    for _ in range(60):
        if done(state):
            return state
        action = deep_flow_step(world, state)
        assert action is not None, "the deep flow stopped before the state wanted"
        state, _outcome = step(world, state, action)
    raise AssertionError("the deep flow did not get there in 60 steps")


def _pick(world: World, state: State, want) -> A.Action:  # type: ignore[no-untyped-def]
    options = [a for a in life_actions(world, state) if want(a)]
    assert options, f"life_actions offers none of the wanted actions: {life_actions(world, state)}"
    return options[0]


def _registered(world: World) -> tuple[State, str]:
    state = _until(world, initial_state(world), lambda s: any(len(ps.se.slots) == 2 for ps in s.phones.values()))
    phone = next(d for d, ps in state.phones.items() if len(ps.se.slots) == 2)
    for _ in range(2):  # registered with both PINs waiting to be set: the walk sets them first (PIN-2)
        state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.SetPin)))
        assert outcome.ok, outcome
    return state, phone


def test_screen_lock_pin_change_lock_and_initialisation() -> None:
    """PIN-6, PIN-3, REV-1, PIN-4: screen lock, PIN changed behind it, key through it; then on to the lock and init."""
    world = base_world()
    state, d = _registered(world)
    for want in (
        lambda a: isinstance(a, A.EnrollOsAuth),
        lambda a: isinstance(a, A.ChangePin) and a.kind is Kind.AUTH,
        lambda a: isinstance(a, A.UnlockScreen),  # the screen lock stands in only after a recent primary unlock (PIN-6)
        lambda a: isinstance(a, A.Authenticate) and a.method is AuthMethod.BIOMETRIC,
    ):
        state, outcome = step(world, state, _pick(world, state, want))
        assert outcome.ok, outcome
    signing = lambda a: a.phone == d and getattr(a, "kind", Kind.SIGNING) is Kind.SIGNING  # noqa: E731
    for _ in range(10):
        if state.phones[d].se.slots[Kind.SIGNING].pin_status is PinStatus.LOCKED:
            break
        state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.Sign) and signing(a)))
        assert outcome.code == "WRONG_PIN" or outcome.code == "PIN_LOCKED", outcome
    assert state.phones[d].se.slots[Kind.SIGNING].pin_status is PinStatus.LOCKED
    _state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.RevokeFromPhone) and signing(a)))
    assert outcome.code == "PIN_LOCKED"
    state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.InitialisePin) and signing(a)))
    assert outcome.ok, outcome
    assert state.phones[d].se.slots[Kind.SIGNING].pin_status is PinStatus.TEMP_BLOCKED


def test_push_setting_around_a_model_change() -> None:
    """MCH-3: the old phone's notifications turned off while its deletion is queued; the push waits; back on, it arrives."""
    world = base_world()
    state = _until(world, initial_state(world), lambda s: bool(s.deletions))
    ((old, _person),) = state.deletions.keys()
    state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.SetPushEnabled) and not a.enabled))
    assert outcome.ok and not state.phones[old].push_enabled
    _state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.DeliverDeletionPush)))
    assert outcome.code == "PUSH_DISABLED"
    state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.SetPushEnabled) and a.enabled))
    assert outcome.ok
    state, outcome = step(world, state, A.DeliverDeletionPush(phone=old))
    assert outcome.ok and outcome.details.get("deleted")


def test_lost_phone_then_card_found_in_either_order() -> None:
    """SUS-1, SUS-2, SUS-3: a lost phone, then the card reported lost too, then each found first, all offered by the walk."""
    world = base_world()
    registered, d = _registered(world)
    person = registered.phones[d].holder
    assert person is not None
    state, outcome = step(world, registered, A.ReportPhoneLost(person=person))
    assert outcome.ok, outcome
    state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.ReportCardLost)))
    assert outcome.ok, outcome
    for found in (A.PhoneFound, A.CardFound):
        _state, outcome = step(world, state, _pick(world, state, lambda a, found=found: isinstance(a, found)))
        assert outcome.ok, outcome


def test_a_mistyped_pin_is_walked_on_to_the_lock() -> None:
    """PIN-3, PIN-4: once a PIN has a wrong entry counted, its kind's walk offers only the next wrong entries, then the
    refusals and the initialisation; a PIN whose certificate is revoked is walked no further."""
    world = base_world()
    state, d = _registered(world)
    state, outcome = step(world, state, A.Sign(phone=d, sp=world.service_providers[0].id, pin="ZZZ999"))
    assert outcome.code == "WRONG_PIN"
    signing = [a for a in life_actions(world, state) if getattr(a, "kind", None) is Kind.SIGNING or isinstance(a, A.Sign)]
    assert signing and all(isinstance(a, A.Sign | A.RevokeFromPhone) and a.pin == "ZZZ999" for a in signing), signing
    for _ in range(10):
        if state.phones[d].se.slots[Kind.SIGNING].pin_status is PinStatus.LOCKED:
            break
        state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.Sign) and a.phone == d))
    assert state.phones[d].se.slots[Kind.SIGNING].pin_status is PinStatus.LOCKED
    state, outcome = step(world, state, _pick(world, state, lambda a: isinstance(a, A.InitialisePin) and a.kind is Kind.SIGNING))
    assert outcome.ok, outcome
    revoked, outcome = step(world, state, A.RevokeWithCard(person=state.phones[d].holder or "P1"))
    assert outcome.ok, outcome
    assert not any(a.phone == d for a in life_actions(world, revoked) if isinstance(a, A.SetPin))
