"""Hypothesis strategies for lifecycle actions, steered by the current spec state.

Random arguments alone rarely get past the application, so each draw chooses between
*progress* actions, computed from the state to be likely accepted (install, applet check,
apply with the right PINs, wait for the push, register, set the PIN, use the key with the
PIN that is set), and *random* actions with arbitrary arguments that produce the refusals:
wrong and malformed PINs, someone else's phone, offline phones, invalid card signatures,
unapproved service providers.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from hypothesis import strategies as st

from mjpki.spec import actions as A
from mjpki.spec.clock import DAY
from mjpki.spec.domain import AuthMethod, CertStatus, HoldCause, Kind, PinStatus
from mjpki.spec.machine import next_instants
from mjpki.spec.rules import max_tries
from mjpki.spec.state import State
from mjpki.spec.world import World

__all__ = ["SIGNING_PINS", "AUTH_PINS", "HOLDER", "action_strategy", "progress_actions", "probe_actions"]

SIGNING_PINS = ("ABC123", "XYZ789", "ABCDEF", "abc123", "A1")
"""Two well-formed signing PINs and three malformed ones (PIN-1)."""
AUTH_PINS = ("1234", "5678", "12345", "12a4")
"""Two well-formed auth PINs and two malformed ones (PIN-1)."""
HOLDER = "<holder>"
"""Placeholder person in a random action: replaced by the phone's holder when drawn."""

BOTH = frozenset({Kind.SIGNING, Kind.AUTH})


def probe_actions(world: World, state: State) -> list[A.Action]:
    """Actions that should be refused in this state for an interesting reason (wrong PIN on a set
    PIN, OS authentication where it is not allowed, an invalid card signature where it is the
    only thing wrong, a deletion push to a phone that cannot take it)."""
    out: list[A.Action] = []
    sp = world.service_providers[0].id
    for d, ps in state.phones.items():
        h = ps.holder
        for kind, slot in ps.se.slots.items():
            wrong = "ZZZ999" if kind is Kind.SIGNING else "9999"
            if kind is Kind.SIGNING:
                out += [A.Sign(phone=d, sp=sp, pin=wrong), A.Sign(phone=d, sp=sp, method=AuthMethod.BIOMETRIC)]
            else:
                out += [A.Authenticate(phone=d, sp=sp, pin=wrong)] * 2
                out += [A.Authenticate(phone=d, sp=sp, method=m) for m in (AuthMethod.BIOMETRIC, AuthMethod.OS_CREDENTIAL)]
                out.append(A.EnrollOsAuth(phone=d, pin=slot.pin or AUTH_PINS[0]))
            right = slot.pin or wrong
            out.append(A.ChangePin(phone=d, kind=kind, old_pin=wrong, new_pin=right))
            if slot.pin_status is PinStatus.SET and slot.tries_left < max_tries(world, kind):
                # Follow a wrong entry through to the lock (PIN-3).
                use = A.Sign(phone=d, sp=sp, pin=wrong) if kind is Kind.SIGNING else A.Authenticate(phone=d, sp=sp, pin=wrong)
                out += [use] * 6 + [A.RevokeFromPhone(phone=d, kind=kind, pin=wrong)] * 2
                if kind is Kind.AUTH:
                    out.append(A.EnrollOsAuth(phone=d, pin=wrong))
            if slot.pin_status is PinStatus.SET:
                out += [A.SetPin(phone=d, kind=kind), A.ChangePin(phone=d, kind=kind, old_pin=right, new_pin="1")]
            else:  # locked or waiting for the real PIN: every use must be refused
                out += [A.RevokeFromPhone(phone=d, kind=kind, pin=right), A.ChangePin(phone=d, kind=kind, old_pin=right, new_pin=right)]
                out.append(A.Sign(phone=d, sp=sp, pin=right) if kind is Kind.SIGNING else A.EnrollOsAuth(phone=d, pin=right))
            if h is not None:
                pin = (SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)[0]
                out.append(A.InitialisePin(person=h, phone=d, kind=kind, new_pin=pin, card_signature_valid=False))
        deleting = any(ph == d for ph, _p in state.deletions)
        waiting = any(a.phone == d for a in state.applications.values()) or any(
            sl.pin_status is PinStatus.TEMP_BLOCKED for sl in ps.se.slots.values()
        )
        if deleting or waiting:
            out += [A.SetOnline(phone=d, online=False), A.SetPushEnabled(phone=d, enabled=False)]
        if deleting:
            out.append(A.InstallApp(phone=d))  # a reinstall invalidates the old token (MCH-3)
        if not ps.online:
            out.append(A.SetOnline(phone=d, online=True))
        if h is not None and ps.applet_ready and state.live_phone_certs(h):
            kinds = BOTH
            out.append(A.Apply(person=h, phone=d, kinds=kinds, signing_pin=SIGNING_PINS[0], auth_pin=AUTH_PINS[0], consent=False))
            out.append(
                A.Apply(person=h, phone=d, kinds=kinds, signing_pin=SIGNING_PINS[0], auth_pin=AUTH_PINS[0], card_signature_valid=False)
            )
        if h is not None and any(HoldCause.CARD_LOST in c.holds for c in state.live_phone_certs(h)):
            out.append(A.ResumeFromApp(person=h, phone=d, signing_pin=SIGNING_PINS[3]))
    for p, app in state.applications.items():
        if not app.notified:
            out += [A.DeliverIssuancePush(person=p), A.Register(person=p, phone=app.phone)]
        # Registering from another phone of the applicant's must fail the H(R)=S check (ISS-6).
        others = [d for d, ps in state.phones.items() if ps.holder == p and d != app.phone and ps.app_token is not None]
        out += [A.Register(person=p, phone=d) for d in others] * 2
    for cc in state.card_certs.values():
        if cc.status is CertStatus.SUSPENDED:
            out.append(A.UseCard(person=cc.person, kind=cc.kind, sp=sp))
    return out


def progress_actions(world: World, state: State) -> list[A.Action]:
    """Actions that move the lifecycle forward from this state (most will be accepted)."""
    out: list[A.Action] = []
    now = state.now
    for d, ps in state.phones.items():
        h = ps.holder
        if h is None:
            continue
        if ps.app_token is None:
            out.append(A.InstallApp(phone=d))
            continue
        if not ps.applet_ready:
            spec = world.phone(d)
            if spec.android >= 9 and spec.gp_se and spec.nfc:  # ACT-3; the random branch tries the others
                out.append(A.PrepareApplet(phone=d))
            continue
        pending = state.applications.get(h)
        dead = pending is not None and state.phones[pending.phone].app_token != pending.push_token
        if pending is None or dead:
            # A person's own flow: apply for what is missing on the SE that holds their live
            # certificates (or on any phone if none). Model changes come from random actions.
            live = state.live_phone_certs(h)
            se_id = world.phone(d).se_id
            if not live or all(c.se_id == se_id for c in live):
                missing = BOTH - {c.kind for c in live}
                for kinds in {missing, *(frozenset({k}) for k in missing)} - {frozenset()}:
                    out.append(A.Apply(person=h, phone=d, kinds=kinds, signing_pin=SIGNING_PINS[0], auth_pin=AUTH_PINS[0], consent=True))
        for kind, slot in ps.se.slots.items():
            if slot.pin_status is PinStatus.TEMP_BLOCKED:
                out.append(A.SetPin(phone=d, kind=kind))
                out.append(A.InitialisePin(person=h, phone=d, kind=kind, new_pin=(SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)[1]))
            elif slot.pin_status is PinStatus.SET and slot.pin is not None:
                # Key use is what most steps of a real life are: offered twice.
                if kind is Kind.SIGNING:
                    out += [A.Sign(phone=d, sp=world.service_providers[0].id, pin=slot.pin)] * 2
                else:
                    out += [A.Authenticate(phone=d, sp=world.service_providers[0].id, pin=slot.pin)] * 2
                    out.append(A.EnrollOsAuth(phone=d, pin=slot.pin))
                    if ps.os_auth_enrolled:
                        out.append(A.Authenticate(phone=d, sp=world.service_providers[0].id, method=AuthMethod.BIOMETRIC))
                        out.append(A.UnlockScreen(phone=d))
                other = (SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)[
                    1 if slot.pin == (SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)[0] else 0
                ]
                out.append(A.ChangePin(phone=d, kind=kind, old_pin=slot.pin, new_pin=other))
                out.append(A.RevokeFromPhone(phone=d, kind=kind, pin=slot.pin))
            elif slot.pin_status is PinStatus.LOCKED:
                out.append(A.InitialisePin(person=h, phone=d, kind=kind, new_pin=(SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)[0]))
        if any(ph == d for ph, _p in state.deletions):
            out.append(A.DeliverDeletionPush(phone=d))
    for p, app in state.applications.items():
        ps = state.phones[app.phone]
        if not ps.online:
            out.append(A.SetOnline(phone=app.phone, online=True))
        elif not ps.push_enabled:
            out.append(A.SetPushEnabled(phone=app.phone, enabled=True))
        elif now < app.push_due:
            out.append(A.AdvanceTime(minutes=app.push_due - now))
        elif not app.notified:
            out.append(A.DeliverIssuancePush(person=p))
        else:
            out.append(A.Register(person=p, phone=app.phone))
    for c in state.phone_certs.values():
        if c.status is CertStatus.SUSPENDED:
            if HoldCause.PHONE_LOST in c.holds:
                out.append(A.PhoneFound(person=c.person))
            if HoldCause.CARD_LOST in c.holds:
                holder_phone = next(
                    (d for d, ps in state.phones.items() if ps.holder == c.person and world.phone(d).se_id == c.se_id), None
                )
                if holder_phone is not None:
                    out.append(A.ResumeFromApp(person=c.person, phone=holder_phone, signing_pin=SIGNING_PINS[1]))
    for cc in state.card_certs.values():
        if cc.status is CertStatus.SUSPENDED:
            out.append(A.CardFound(person=cc.person))
    for p in state.persons:
        if any(c.status is CertStatus.ACTIVE for c in state.live_phone_certs(p)):
            out += [A.ReportPhoneLost(person=p), A.ReportCardLost(person=p), A.RevokeWithCard(person=p)]
        # The card auth certificate matters to the phone certificates only where they follow it (ASM-PHONE-LINKAGE).
        auth_matters = any(Kind.AUTH in world.variants.phone_linkage.follows(k) for k in Kind)
        for kind in (Kind.SIGNING, Kind.AUTH) if auth_matters else (Kind.SIGNING,):
            card = state.card_cert(p, kind)
            if card is None or not card.live(now):
                out.append(A.IssueCardCertificate(person=p, kind=kind))
    return out


_kinds = st.sampled_from([Kind.SIGNING, Kind.AUTH])
_kind_sets = st.sampled_from([BOTH, frozenset({Kind.SIGNING}), frozenset({Kind.AUTH}), frozenset()])
_mostly_true = st.sampled_from([True, True, True, False])


def _pin(kind: Kind) -> st.SearchStrategy[str]:
    return st.sampled_from(SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)


@lru_cache(maxsize=16)
def _random_actions(world: World) -> st.SearchStrategy[A.Action]:
    """Actions with arbitrary arguments over this world (built once per world)."""
    persons = [p.id for p in world.persons]
    person = st.sampled_from(persons)
    actor = st.sampled_from([HOLDER, HOLDER, *persons])
    phone = st.sampled_from([p.id for p in world.phones])
    sp = st.sampled_from([s.id for s in world.service_providers])
    method = st.sampled_from(list(AuthMethod))
    return st.one_of(
        st.builds(
            A.Apply,
            person=actor,
            phone=phone,
            kinds=_kind_sets,
            signing_pin=_pin(Kind.SIGNING),
            auth_pin=_pin(Kind.AUTH),
            consent=_mostly_true,
            card_signature_valid=_mostly_true,
        ),
        st.builds(A.Register, person=actor, phone=phone),
        st.builds(A.DeliverIssuancePush, person=person),
        st.builds(A.SetPin, phone=phone, kind=_kinds),
        st.builds(A.Sign, phone=phone, sp=sp, pin=_pin(Kind.SIGNING), method=method, official_app=_mostly_true),
        st.builds(A.Authenticate, phone=phone, sp=sp, method=method, pin=_pin(Kind.AUTH), official_app=_mostly_true),
        st.builds(A.UseCard, person=person, kind=_kinds, sp=sp),
        _kinds.flatmap(lambda k: st.builds(A.ChangePin, phone=phone, kind=st.just(k), old_pin=_pin(k), new_pin=_pin(k))),
        _kinds.flatmap(
            lambda k: st.builds(
                A.InitialisePin, person=actor, phone=phone, kind=st.just(k), new_pin=_pin(k), card_signature_valid=_mostly_true
            )
        ),
        _kinds.flatmap(lambda k: st.builds(A.RevokeFromPhone, phone=phone, kind=st.just(k), pin=_pin(k))),
        st.builds(A.EnrollOsAuth, phone=phone, pin=_pin(Kind.AUTH)),
        st.builds(A.UnlockScreen, phone=phone),
        st.builds(A.ResumeFromApp, person=actor, phone=phone, signing_pin=_pin(Kind.SIGNING), card_signature_valid=_mostly_true),
        st.builds(A.RevokeWithCard, person=person, card_signature_valid=_mostly_true),
        st.builds(A.ReportPhoneLost, person=person),
        st.builds(A.PhoneFound, person=person),
        st.builds(A.ReportCardLost, person=person),
        st.builds(A.CardFound, person=person),
        st.builds(A.IssueCardCertificate, person=person, kind=_kinds),
        st.builds(A.RevokeCardCertificate, person=person, kind=_kinds),
        st.builds(A.ChangePersonalData, person=person),
        st.builds(A.DeliverDeletionPush, phone=phone),
        st.builds(A.InstallApp, phone=phone),
        st.builds(A.UninstallApp, phone=phone),
        st.builds(A.PrepareApplet, phone=phone),
        st.builds(A.SetOnline, phone=phone, online=st.booleans()),
        st.builds(A.SetPushEnabled, phone=phone, enabled=st.booleans()),
        st.builds(A.FactoryReset, phone=phone),
        st.builds(A.TransferPhone, phone=phone, to=person),
        st.builds(A.AdvanceTime, minutes=st.sampled_from([1, 5, 60, 12 * 60, 49 * 60, 0])),
    )


def _resolve_holder(state: State, action: A.Action) -> A.Action:
    if getattr(action, "person", None) != HOLDER:
        return action
    holder = state.phones[action.phone].holder or next(iter(state.persons))  # type: ignore[attr-defined]
    return replace(action, person=holder)  # type: ignore[type-var]


def action_strategy(world: World, state: State) -> st.SearchStrategy[A.Action]:
    """A strategy for one next action, given the state the spec is in."""
    instants = next_instants(world, state, limit=4)
    near = [A.AdvanceTime(minutes=t - state.now) for t in instants if t - state.now <= 3 * DAY]
    far = [A.AdvanceTime(minutes=t - state.now) for t in instants if t - state.now > 3 * DAY]
    progress = progress_actions(world, state) + near
    probes = probe_actions(world, state)
    random = _random_actions(world).map(lambda a: _resolve_holder(state, a))
    branches = [
        (30, st.sampled_from(progress) if progress else random),
        (8, st.sampled_from(probes) if probes else random),
        (11, random),
        (1, st.sampled_from(far) if far else random),
    ]
    # Three draws in five make progress, about one in six probes for a refusal, one in fifty
    # jumps to a distant instant (an expiry); shrinking leans towards index 0, towards progress.
    table = [strategy for weight, strategy in branches for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])
