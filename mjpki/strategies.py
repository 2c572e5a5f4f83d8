"""Hypothesis strategies for lifecycle actions, steered by the current spec state.

Random arguments alone rarely get past the application, so each draw chooses between
*progress* actions, computed from the state to be likely accepted (install, applet check,
apply with the right PINs, wait for the push, register, set the PIN, use the key with the
PIN that is set), and *random* actions with arbitrary arguments that produce the refusals:
wrong and malformed PINs, someone else's phone, offline phones, invalid card signatures,
unapproved service providers.

Two more kinds of draw reach what short random runs rarely do (issue 15): *flow* actions continue
the multi-step flows that need a complete registration on one phone and then several steps on
another (a model change and back while the old phone's deletion is pending, PIN initialisation on
a phone whose SE holds none of the person's certificates, a phone changing hands with a deletion
queued for it, key use at every kind of relying party), and time steps aim at the instants where
an answer changes (the spec's `next_instants`, one minute either side, the holders' birthdays and
the anniversary of now), where a deadline configured wrong shows; while a cascade or a deletion waits, a time step that
would pass its deadline mostly stops there (`_stop_instant`). *Life* actions walk what a user goes through after
registering, one stage at a time: the screen lock enrolled, the PIN changed behind it and the key used through it, wrong
entries on to the lock, the locked PIN's uses refused and the PIN initialised; and the old phone's notifications or
network turned off while its deletion is queued, time on to a minute before its deadline, the push tried, and back on;
registering, each of the applicant's phones whose SE holds an R tried. Users finish what they started: while a
state is part way through such a flow (a PIN mistyped or locked, a deletion queued, a certificate on hold) the branch
that continues it is drawn more often, and while a PIN is mistyped or locked time moves in days, not years (`_midway`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from functools import lru_cache

from hypothesis import strategies as st

from mjpki.spec import actions as A
from mjpki.spec.clock import DAY, from_datetime, to_datetime
from mjpki.spec.domain import CASCADING_REASONS, AuthMethod, CertStatus, HoldCause, Kind, PinStatus, Profile
from mjpki.spec.machine import next_instants
from mjpki.spec.rules import max_tries
from mjpki.spec.state import Slot, State
from mjpki.spec.world import World

__all__ = [
    "SIGNING_PINS",
    "AUTH_PINS",
    "HOLDER",
    "action_strategy",
    "edge_instants",
    "deep_flow_step",
    "flow_actions",
    "life_actions",
    "pin_flow_actions",
    "relying_party_actions",
    "progress_actions",
    "probe_actions",
]

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
            if state.now < app.push_due:
                # A push that does not wait for its due time (ISS-7: before it, or outside the window it was put off to):
                # the flows step to the due time at once, so this is the one chance to try it.
                out += [A.DeliverIssuancePush(person=p)] * 3
        # Registering from another phone of the applicant's must fail the H(R)=S check (ISS-6).
        others = [d for d, ps in state.phones.items() if ps.holder == p and d != app.phone and ps.app_token is not None]
        out += [A.Register(person=p, phone=d) for d in others] * 2
    for cc in state.card_certs.values():
        if cc.status is CertStatus.SUSPENDED:
            out.append(A.UseCard(person=cc.person, kind=cc.kind, sp=sp))
    return out


def flow_actions(world: World, state: State) -> list[A.Action]:
    """The next step of a flow that spans phones: a model change (and back), PIN initialisation on a phone without the
    person's certificates, a superseding application and registration from the phone it superseded, a phone changing
    hands while a deletion is queued for it."""
    out: list[A.Action] = []
    for p in state.persons:
        live = state.live_phone_certs(p)
        if not live or p in state.applications:
            continue
        held_on = {c.se_id for c in live}
        for d, ps in state.phones.items():
            if ps.holder != p or world.phone(d).se_id in held_on:
                continue
            if ps.app_token is None:
                out.append(A.InstallApp(phone=d))
            elif not ps.applet_ready:
                out.append(A.PrepareApplet(phone=d))
            else:
                # A model change to this phone (MCH-1, LNK-3); back to a phone with a deletion pending, the slot changes hands.
                kinds = BOTH if len(live) > 1 else frozenset({live[0].kind})
                change = A.Apply(person=p, phone=d, kinds=kinds, signing_pin=SIGNING_PINS[1], auth_pin=AUTH_PINS[1], consent=True)
                out += [change, change, replace(change, consent=False)]
                if (d, p) in state.deletions:  # back to the old phone before its deletion arrives: offered more often
                    out += [change] * 4
                # PIN initialisation where the SE is not the card's (PIN-4, LNK-6).
                kind = live[0].kind
                out.append(A.InitialisePin(person=p, phone=d, kind=kind, new_pin=(SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS)[1]))
        # A second hold over the first, to be lifted in either order (SUS-1, SUS-2, SUS-3).
        holds = {h for c in live for h in c.holds}
        if holds == {HoldCause.PHONE_LOST}:
            out += [A.ReportCardLost(person=p)] * 2
        elif holds == {HoldCause.CARD_LOST}:
            out += [A.ReportPhoneLost(person=p)] * 2
    for p, app in state.applications.items():
        # The flows above go through a registration: its next step, offered here too (push due, push, register).
        ps = state.phones[app.phone]
        if ps.online and ps.push_enabled:
            if state.now < app.push_due:
                out.append(A.AdvanceTime(minutes=app.push_due - state.now))
            else:
                out.append(A.Register(person=p, phone=app.phone) if app.notified else A.DeliverIssuancePush(person=p))
        # A superseding application from another of the person's phones leaves the first phone's R stale (ISS-2, ISS-6).
        for d, ps in state.phones.items():
            if ps.holder == p and d != app.phone and ps.applet_ready:
                out.append(A.Apply(person=p, phone=d, kinds=BOTH, signing_pin=SIGNING_PINS[0], auth_pin=AUTH_PINS[0], consent=True))
                if app.notified:
                    out += [A.Register(person=p, phone=d)] * 2  # with this phone's R, which the application no longer commits to
    for d, person in state.deletions:
        app = state.applications.get(person)
        if app is not None and app.phone == d:
            continue  # going back to the old phone: the flow above registers there first, then the push arrives
        # The phone a deletion is queued for changes hands, or its app its token, before the push arrives (DEL-1, DEL-3, MCH-3).
        others = [q for q in state.persons if q != person]
        if others:
            out.append(A.TransferPhone(phone=d, to=others[0]))
        out += [A.InstallApp(phone=d), A.FactoryReset(phone=d), A.DeliverDeletionPush(phone=d)]
    return out


def pin_flow_actions(world: World, state: State) -> list[A.Action]:
    """The next step of a PIN's life after registration: wrong entries on to the lock (by key use or by revocation from
    the phone), everything refused once locked, the screen lock enrolled, the PIN changed behind it and the screen lock
    standing in afterwards."""
    out: list[A.Action] = []
    sp = world.service_providers[0].id
    for d, ps in state.phones.items():
        for kind, slot in ps.se.slots.items():
            pins = SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS
            wrong = "ZZZ999" if kind is Kind.SIGNING else "9999"
            if slot.pin_status is PinStatus.SET and slot.pin is not None:
                # Wrong entries, on to the lock (PIN-3), by key use or by revocation from the phone (REV-1); more of them
                # once one is in. A right one in between resets the count.
                use = A.Sign(phone=d, sp=sp, pin=wrong) if kind is Kind.SIGNING else A.Authenticate(phone=d, sp=sp, pin=wrong)
                more = 3 if slot.tries_left < max_tries(world, kind) else 1
                out += [use, A.RevokeFromPhone(phone=d, kind=kind, pin=wrong)] * more
                if kind is Kind.AUTH and not ps.os_auth_enrolled:
                    out.append(A.EnrollOsAuth(phone=d, pin=slot.pin))
            elif slot.pin_status is PinStatus.LOCKED and slot.pin is not None:
                # Everything that needs the PIN must now be refused, the right PIN included (PIN-3, REV-1, PIN-5).
                out.append(A.RevokeFromPhone(phone=d, kind=kind, pin=slot.pin))
                out.append(A.ChangePin(phone=d, kind=kind, old_pin=slot.pin, new_pin=pins[1]))
            if kind is Kind.AUTH and ps.os_auth_enrolled and slot.pin_status is PinStatus.SET and slot.pin is not None:
                # A PIN change behind an enrolled screen lock, then the screen lock standing in for the PIN (PIN-5, PIN-6).
                other = pins[1] if slot.pin == pins[0] else pins[0]
                out.append(A.ChangePin(phone=d, kind=kind, old_pin=slot.pin, new_pin=other))
                out += [A.Authenticate(phone=d, sp=sp, method=m) for m in (AuthMethod.BIOMETRIC, AuthMethod.OS_CREDENTIAL)]
    return out


def life_actions(world: World, state: State) -> list[A.Action]:
    """The next steps of what a user goes through after registering, as one walk per PIN in use: the screen lock enrolled,
    the PIN changed behind it and the screen lock used at once; wrong entries on to the lock, then revocation from the
    phone and the other PIN uses with the right PIN, then PIN initialisation (a walk once started is gone on with before
    another of its kind starts); the old phone's notifications (or network) turned off while its deletion is queued after
    a model change, time on to a minute before its deadline, the push tried, and the setting turned back on; registering,
    each of the applicant's phones whose SE holds an R tried; a lost phone or card, the other reported lost too, and both
    found in either order. Where none of these but the registrations applies, the deep flow's next step too (so a run
    drawing this branch still gets to a registration)."""
    out: list[A.Action] = []
    sp = world.service_providers[0].id
    for (d, _p), deletion in state.deletions.items():
        # Push settings around a model change: the deletion must wait for them (MCH-3).
        ps = state.phones[d]
        if deletion.push_token is None or deletion.push_token != ps.app_token or any(a.phone == d for a in state.applications.values()):
            continue  # unreachable anyway, or the user is back on this phone registering: its push is needed on
        if ps.push_enabled and ps.online:
            out += [A.SetPushEnabled(phone=d, enabled=False), A.SetPushEnabled(phone=d, enabled=False), A.SetOnline(phone=d, online=False)]
        else:
            out += [A.DeliverDeletionPush(phone=d)] * 2
            out.append(A.SetPushEnabled(phone=d, enabled=True) if not ps.push_enabled else A.SetOnline(phone=d, online=True))
            # The phone left unreachable for a while: time on to a minute before the deletion's deadline, the latest instant
            # it must still be deliverable (MCH-2, MCH-3), then the setting back on. A deadline configured shorter than the
            # sources' shows only in such a step. The deadline itself and past it are the edge branch's: offered here they
            # would end most deletions before going back to the old phone (the slot changing hands) gets to them.
            if deletion.deadline - 1 > state.now:
                out.append(A.AdvanceTime(minutes=deletion.deadline - 1 - state.now))
    for p in state.persons:
        # A lost phone (or card), then the other reported lost too, then found in either order (SUS-1, SUS-2, SUS-3).
        holds = {h for c in state.live_phone_certs(p) for h in c.holds}
        if holds == {HoldCause.PHONE_LOST}:
            out += [A.ReportCardLost(person=p), A.PhoneFound(person=p)]
        elif holds == {HoldCause.CARD_LOST}:
            out += [A.ReportPhoneLost(person=p), A.CardFound(person=p)]
        elif holds:
            out += [A.PhoneFound(person=p), A.CardFound(person=p)]
    fresh: dict[Kind, list[A.Action]] = {k: [] for k in Kind}
    started: dict[Kind, list[A.Action]] = {k: [] for k in Kind}
    for d, ps in state.phones.items():
        for kind, slot in ps.se.slots.items():
            # One walk per kind of PIN at a time: once a PIN has a wrong entry counted, is locked or waits to be set, the user
            # goes on with it (on to the lock, the refusals, the initialisation) before starting on another PIN of its kind.
            if not _in_use(state, slot):
                continue  # a revoked or expired certificate's slot (the old phone after a model change): its user has moved on
            walk = (fresh if slot.pin_status is PinStatus.SET and slot.tries_left == max_tries(world, kind) else started)[kind]
            pins = SIGNING_PINS if kind is Kind.SIGNING else AUTH_PINS
            wrong = "ZZZ999" if kind is Kind.SIGNING else "9999"
            if slot.pin_status is PinStatus.SET and slot.pin is not None:
                use = A.Sign(phone=d, sp=sp, pin=wrong) if kind is Kind.SIGNING else A.Authenticate(phone=d, sp=sp, pin=wrong)
                if kind is Kind.AUTH and not ps.os_auth_enrolled:
                    walk.append(A.EnrollOsAuth(phone=d, pin=slot.pin))  # the screen lock first (PIN-5, PIN-6)
                elif kind is Kind.AUTH and slot.pin == pins[0]:
                    walk.append(A.ChangePin(phone=d, kind=kind, old_pin=slot.pin, new_pin=pins[1]))  # behind the screen lock
                elif kind is Kind.AUTH and slot.tries_left == max_tries(world, kind):
                    # The key through the screen lock after the change (PIN-6), then the first wrong entry.
                    walk += [A.Authenticate(phone=d, sp=sp, method=m) for m in (AuthMethod.BIOMETRIC, AuthMethod.OS_CREDENTIAL)]
                    walk += [A.UnlockScreen(phone=d), use, A.ChangePin(phone=d, kind=kind, old_pin=slot.pin, new_pin=pins[0])]
                else:
                    walk += [use, use, A.RevokeFromPhone(phone=d, kind=kind, pin=wrong)]  # on to the lock (PIN-3, REV-1)
            elif slot.pin_status is PinStatus.LOCKED and slot.pin is not None:
                # Locked: every use with the right PIN is refused (PIN-3, REV-1, PIN-5); then the user initialises it (PIN-4).
                right = A.Sign(phone=d, sp=sp, pin=slot.pin) if kind is Kind.SIGNING else A.Authenticate(phone=d, sp=sp, pin=slot.pin)
                walk += [A.RevokeFromPhone(phone=d, kind=kind, pin=slot.pin)] * 2 + [right]
                walk.append(A.ChangePin(phone=d, kind=kind, old_pin=slot.pin, new_pin=pins[1]))
                if not ps.online:  # initialisation goes through the JPKI system: the network back on first
                    walk.append(A.SetOnline(phone=d, online=True))
                elif ps.holder is not None:  # what the user came for: offered twice
                    walk += [A.InitialisePin(person=ps.holder, phone=d, kind=kind, new_pin=pins[0])] * 2
            elif slot.pin_status is PinStatus.TEMP_BLOCKED:
                walk.append(A.SetPin(phone=d, kind=kind))
    for kind in Kind:
        out += started[kind] or fresh[kind]
    if not out and (step := deep_flow_step(world, state)) is not None:
        out.append(step)
    for p, app in state.applications.items():
        # Registering, the user tries each of their phones whose SE holds an R: one left stale by a superseding application
        # must fail the H(R)=S check (ISS-2, ISS-6). Beside the deep flow's step, not instead of it: going back to the old
        # phone leaves the new one's R stale, and that flow must still be gone on with.
        if app.notified:
            out += [A.Register(person=p, phone=d) for d in _stale_r_phones(state, p, app.phone)] * 2
    return out


def _stale_r_phones(state: State, person: str, applied_on: str) -> list[str]:
    """The person's phones other than the one applied from whose SE holds an R (from an application since superseded)."""
    return [d for d, ps in state.phones.items() if ps.holder == person and d != applied_on and ps.se.nonce is not None]


def _in_use(state: State, slot: Slot) -> bool:
    """The slot holds a certificate that is neither revoked nor expired: a key its user still has a use for."""
    cert = state.phone_certs.get(slot.cert_serial) if slot.cert_serial is not None else None
    return cert is not None and cert.live(state.now)


def _registration_step(state: State, person: str) -> A.Action | None:
    """The next step of the person's pending application: reachability, the push's due time, the push, registering."""
    app = state.applications.get(person)
    if app is None:
        return None
    ps = state.phones[app.phone]
    if ps.app_token != app.push_token:
        return None  # the app it was made from is gone: a new application is the way on
    if not ps.online:
        return A.SetOnline(phone=app.phone, online=True)
    if not ps.push_enabled:
        return A.SetPushEnabled(phone=app.phone, enabled=True)
    if state.now < app.push_due:
        return A.AdvanceTime(minutes=app.push_due - state.now)
    return A.Register(person=person, phone=app.phone) if app.notified else A.DeliverIssuancePush(person=person)


def _onto(world: World, state: State, person: str, phone: str, pin: int) -> A.Action | None:
    """The next step towards an application of the person on this phone (install, applet check, apply), None if it cannot."""
    ps, spec = state.phones[phone], world.phone(phone)
    if ps.holder != person or not (spec.android >= 9 and spec.gp_se and spec.nfc):  # ACT-3
        return None
    if ps.app_token is None:
        return A.InstallApp(phone=phone)
    if not ps.online:  # turned off by another branch while its deletion waited: back on, or every step is refused
        return A.SetOnline(phone=phone, online=True)
    if not ps.applet_ready:
        return A.PrepareApplet(phone=phone)
    live = state.live_phone_certs(person)
    kinds = frozenset(c.kind for c in live) or BOTH
    return A.Apply(person=person, phone=phone, kinds=kinds, signing_pin=SIGNING_PINS[pin], auth_pin=AUTH_PINS[pin], consent=True)


def deep_flow_step(world: World, state: State) -> A.Action | None:
    """The next step of the deepest flow this state can continue, deterministically (None if none).

    In order: a registration on a phone whose old deletion is still queued; going back to such a phone; the deletion
    arriving after its slots changed hands; any pending registration; a model change to another of the person's phones;
    a first registration. A run that keeps drawing this branch walks registration, model change, registration, move
    back, registration, late deletion: the flows that random steps almost never complete (issue 15).
    """
    pending_back = [p for p in state.applications if (state.applications[p].phone, p) in state.deletions]
    for p in pending_back:
        if (a := _registration_step(state, p)) is not None:
            return a
    for d, p in state.deletions:
        live = state.live_phone_certs(p)
        app = state.applications.get(p)
        # Back to the old phone at once (superseding the new phone's application) or after registering on the new one.
        back = (app is None or app.phone != d) and all(c.se_id != world.phone(d).se_id for c in live)
        if back and (a := _onto(world, state, p, d, 0)) is not None:
            return a
    for (d, _p), deletion in state.deletions.items():
        held = {sl.cert_serial for sl in state.phones[d].se.slots.values()} - {None}
        if held and not held & deletion.serials:
            ps = state.phones[d]
            if not ps.online:  # turned off by another branch (the push settings around a model change): back on first
                return A.SetOnline(phone=d, online=True)
            return A.DeliverDeletionPush(phone=d) if ps.push_enabled else A.SetPushEnabled(phone=d, enabled=True)
    for p in state.applications:
        if (a := _registration_step(state, p)) is not None:
            return a
    for p in state.persons:
        live = state.live_phone_certs(p)
        if p in state.applications:
            continue
        for d in state.phones:
            if live and all(c.se_id != world.phone(d).se_id for c in live) and (a := _onto(world, state, p, d, 1)) is not None:
                return a  # a model change
        if not live:
            for d in state.phones:
                if (a := _onto(world, state, p, d, 0)) is not None:
                    return a
    return None


def relying_party_actions(world: World, state: State) -> list[A.Action]:
    """Key use at every kind of relying party (ACL-2, ACL-3, SP-1, SP-2), from an app that is not the official one (ACL-1),
    with the card, and every issued certificate (and one never issued) put to a card-only and a phone-only verifier."""
    out: list[A.Action] = []
    for d, ps in state.phones.items():
        for kind, slot in ps.se.slots.items():
            if slot.pin_status is not PinStatus.SET or slot.pin is None:
                continue
            # Every kind of relying party (ACL-2, ACL-3, SP-1, SP-2), and an app that is not the official one (ACL-1).
            for sp in world.service_providers:
                if kind is Kind.SIGNING:
                    out.append(A.Sign(phone=d, sp=sp.id, pin=slot.pin))
                else:
                    out.append(A.Authenticate(phone=d, sp=sp.id, pin=slot.pin))
            if kind is Kind.SIGNING:
                out.append(A.Sign(phone=d, sp=world.service_providers[0].id, pin=slot.pin, official_app=False))
            else:
                out.append(A.Authenticate(phone=d, sp=world.service_providers[0].id, pin=slot.pin, official_app=False))
    for p in state.persons:
        for kind in Kind:
            if state.card_cert(p, kind) is not None:
                out += [A.UseCard(person=p, kind=kind, sp=sp.id) for sp in world.service_providers]
            # The relying party's verifier asked directly (SP-1, CA-3, CA-4): every certificate the person was issued,
            # of both profiles, at a verifier of each setting; and one the CA never issued, at a verifier of its profile.
            for profile in Profile:
                issued = len(state.issued(p, kind, profile))
                out += [
                    A.VerifyCertificate(person=p, kind=kind, profile=profile, index=i, accept=accept)
                    for i in range(issued)
                    for accept in Profile
                ]
                out.append(A.VerifyCertificate(person=p, kind=kind, profile=profile, index=issued, accept=profile))
    return out


def _next_birthday(birth: date, now: int) -> int:
    """The first of the person's birthdays (at midnight) after now."""
    year = to_datetime(now).year
    for y in (year, year + 1):
        try:
            day = birth.replace(year=y)
        except ValueError:  # 29 February in a common year: taken as 1 March
            day = date(y, 3, 1)
        t = from_datetime(to_datetime(0).replace(year=day.year, month=day.month, day=day.day))
        if t > now:
            return t
    raise AssertionError("a birthday comes within two years")


def _anniversary(now: int) -> int:
    """The same minute a year later (29 February: 365 days later)."""
    at = to_datetime(now)
    try:
        return from_datetime(at.replace(year=at.year + 1))
    except ValueError:
        return now + 365 * DAY


def edge_instants(world: World, state: State) -> tuple[int, ...]:
    """Instants worth stepping to: the spec's next instants and a minute either side, the holders' next birthdays
    (and a minute and a day either side) and the first anniversary of now: where a deadline configured wrong shows."""
    now = state.now
    marks: set[int] = {_anniversary(now)}
    for t in next_instants(world, state, limit=6):
        marks.update((t - 1, t, t + 1))
    for person in world.persons:
        b = _next_birthday(person.birth, now)
        marks.update((b - DAY, b - 1, b, b + 1, b + DAY))
    return tuple(sorted(t for t in marks if t > now))


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
                # In a fixed order (a set of kind sets iterates in hash order, which PYTHONHASHSEED changes: the same
                # draws would make different runs on another machine, and a shared database would not replay).
                singles = [frozenset({k}) for k in sorted(missing, key=lambda k: k.value)] if len(missing) > 1 else []
                for kinds in [missing, *singles] if missing else []:
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
                # Now and then mistyped (PIN-3): a PIN with a wrong entry counted is a walk the life branch goes on with.
                if kind is Kind.SIGNING:
                    out.append(A.Sign(phone=d, sp=world.service_providers[0].id, pin="ZZZ999"))
                else:
                    out.append(A.Authenticate(phone=d, sp=world.service_providers[0].id, pin="9999"))
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


def _near_progress(world: World, state: State) -> list[A.Action]:
    near = [A.AdvanceTime(minutes=t - state.now) for t in next_instants(world, state, limit=4) if t - state.now <= 3 * DAY]
    return progress_actions(world, state) + near


def _deep(world: World, state: State) -> list[A.Action]:
    step = deep_flow_step(world, state)
    return [] if step is None else [step]


def _edges(world: World, state: State) -> list[A.Action]:
    return [A.AdvanceTime(minutes=t - state.now) for t in edge_instants(world, state)]


def cascade_actions(world: World, state: State) -> list[A.Action]:
    """The cascade (REV-2): while one is under way, time to a minute before its deadline and to the deadline (a cascade
    delay configured longer shows only then); otherwise its trigger, the card certificate that someone's live phone
    certificates follow renewed, revoked, or ended by a change of personal data."""
    due = _cascade_deadlines(world, state)
    if due:
        return [A.AdvanceTime(minutes=m) for t in due for m in (t - 1 - state.now, t - state.now) if m > 0]
    out: list[A.Action] = []
    for p in state.persons:
        live = state.live_phone_certs(p)
        if any(HoldCause.CARD_LOST in c.holds for c in live):
            continue  # a card reported lost is found or replaced, and the phone certificates resumed, first (SUS-3)
        followed = {s for c in live for s in c.follows}
        for kind in sorted({state.card_certs[s].kind for s in followed if s in state.card_certs}, key=lambda k: k.value):
            out += [A.IssueCardCertificate(person=p, kind=kind), A.RevokeCardCertificate(person=p, kind=kind)]
        if followed:
            out.append(A.ChangePersonalData(person=p))
    return out


def _cascade_deadlines(world: World, state: State) -> list[int]:
    """The deadlines of the cascades under way for live phone certificates, soonest first (spec.machine.deadlines also
    names those of expired ones, where an answer can still change; no user waits for them)."""
    delay = world.variants.cascade_delay_minutes
    if delay <= 0:
        return []  # the cascade is immediate: nothing to wait for
    out: set[int] = set()
    for c in state.phone_certs.values():
        if not c.live(state.now):
            continue
        for s in c.follows:
            card = state.card_certs.get(s)
            if card is None or card.revoked_at is None or card.reason not in CASCADING_REASONS:
                continue
            if card.revoked_at + delay > state.now:
                out.add(card.revoked_at + delay)
    return sorted(out)


def _flows(world: World, state: State) -> list[A.Action]:
    return flow_actions(world, state) + pin_flow_actions(world, state)


def _far(world: World, state: State) -> list[A.Action]:
    return [a for a in _edges(world, state) if a.minutes > 3 * DAY]


def _near_edges(world: World, state: State) -> list[A.Action]:
    return [a for a in _edges(world, state) if a.minutes <= 3 * DAY]


def _midway(world: World, state: State) -> int:
    """How far a user is into a flow they would go on with: 2 while a PIN in use has a wrong entry counted or is locked;
    1 while a PIN waits to be set, a certificate is on hold (a phone or card reported lost), a notified application's
    applicant has another phone whose SE holds an R, or a model change's deletion is queued for a phone that still has
    the app it is addressed to; 0 otherwise."""
    waiting = False
    for ps in state.phones.values():
        for kind, slot in ps.se.slots.items():
            if (slot.pin_status is PinStatus.SET and slot.tries_left == max_tries(world, kind)) or not _in_use(state, slot):
                continue
            if slot.pin_status is PinStatus.TEMP_BLOCKED:
                waiting = True
            else:
                return 2
    if waiting or any(c.status is CertStatus.SUSPENDED for c in state.phone_certs.values()):
        return 1
    if any(app.notified and _stale_r_phones(state, p, app.phone) for p, app in state.applications.items()):
        return 1  # registering with another phone of the applicant's at hand
    return int(any(dl.push_token is not None and dl.push_token == state.phones[d].app_token for (d, _p), dl in state.deletions.items()))


_BRANCHES: tuple[tuple[int, Callable[[World, State], list[A.Action]] | None], ...] = (
    (15, _near_progress),
    (6, _deep),
    (5, probe_actions),
    (9, _flows),
    (5, life_actions),
    (2, relying_party_actions),
    (3, cascade_actions),
    (3, _edges),
    (4, None),  # random arguments
    (1, _far),
)
"""Weights and builders of the branches (55 in all): almost two in five draws make progress (one in nine the deepest
flow's next step), one in eleven probes for a refusal, one in six continues a flow across phones or a PIN's life after
registration, one in eleven takes the next step of a user's walk after registering (screen lock, PIN change, lock,
initialisation; the old phone's push setting around a model change), one in twenty-seven uses a key at some relying
party, one in eighteen starts or times a cascade (a card certificate that phone certificates follow renewed, revoked or
ended; with one in fifty, one simulated ci search in twenty drew no cascade at all and so missed a cascade configured
late: bench/search_reach.py), one in eighteen steps to an edge instant (a deadline or a minute either side of it, a
birthday), one in fourteen has random arguments, one in fifty-five jumps to a distant instant; shrinking leans towards
index 0, towards progress."""
_TABLE = tuple(build for weight, build in _BRANCHES for _ in range(weight))

_MIDWAY_BRANCHES: tuple[tuple[int, Callable[[World, State], list[A.Action]] | None], ...] = (
    (12, _near_progress),
    (3, cascade_actions),
    (12, _deep),
    (4, probe_actions),
    (9, _flows),
    (20, life_actions),
    (2, relying_party_actions),
    (3, _edges),
    (4, None),
    (1, _far),
)
"""The branches while a user is part way through a flow (_midway): users finish what they started. The flow's next step
(the deep flow's, a user's walk after registering) is drawn about half the time, over twice as often as otherwise; time
steps and random arguments keep their share of the draws (without them, a card certificate renewed or revoked while
phone certificates follow it, the cascade's trigger, became rare; cascades are started here as often as above)."""
_PIN_WALK_BRANCHES: tuple[tuple[int, Callable[[World, State], list[A.Action]] | None], ...] = (
    (8, _near_progress),
    (6, _deep),
    (3, probe_actions),
    (5, _flows),
    (30, life_actions),
    (2, relying_party_actions),
    (2, _near_edges),
    (2, None),
)
"""The branches while a PIN in use has a wrong entry counted or is locked: a user who mistyped tries again (and again,
on to the lock), and one locked out initialises the PIN, more often than they change phones: the walk's next step is
drawn one time in two, and time steps go no further than three days (a jump of years would expire the card certificate
the initialisation needs, which was most of why it failed)."""
_TABLES = (
    _TABLE,
    tuple(build for weight, build in _MIDWAY_BRANCHES for _ in range(weight)),
    tuple(build for weight, build in _PIN_WALK_BRANCHES for _ in range(weight)),
)
"""The branch tables by _midway's answer."""
_WAITING_CASCADE = (cascade_actions,) * 3
"""Added to whichever table applies while a cascade waits for its deadline: its time steps drawn about one time in
twenty (a cascade delay configured longer shows only between the two deadlines, and other time steps jump past both)."""


def action_strategy(world: World, state: State) -> st.SearchStrategy[A.Action]:
    """A strategy for one next action, given the state the spec is in."""
    random = _random_actions(world).map(lambda a: _resolve_holder(state, a))

    table = _TABLES[_midway(world, state)]
    due = _cascade_deadlines(world, state)
    if due:
        table = table + _WAITING_CASCADE

    def branch(i: int) -> st.SearchStrategy[A.Action]:
        # Only the branch drawn is built: listing every branch's actions at every step would cost most of a run's time.
        build = table[i]
        options = build(world, state) if build is not None else []
        return st.sampled_from(options) if options else random

    drawn = st.integers(0, len(table) - 1).flatmap(branch)
    stop = _stop_instant(state, due)
    if stop is None:
        return drawn
    wait = stop - state.now

    def stop_there(action: A.Action) -> st.SearchStrategy[A.Action]:
        if isinstance(action, A.AdvanceTime) and action.minutes > wait:
            return st.sampled_from((A.AdvanceTime(minutes=wait), A.AdvanceTime(minutes=wait), action))
        return st.just(action)

    return drawn.flatmap(stop_there)


def _stop_instant(state: State, cascades: list[int]) -> int | None:
    """The soonest instant a time step should stop at rather than pass (two times in three): a waiting cascade's deadline
    (REV-2); a day, and a minute, before the deadline of a deletion whose push can still arrive (MCH-2, MCH-3). Past
    them, what shows a deadline configured wrong is gone: a cascade set later than the sources say has caught up, a
    deletion window set a day short has nothing left to fail. And a failed deletion ends the flow in which a model change
    goes back to the old phone and the slot changes hands before the push arrives (DEL-1); stopping a day before the
    deadline leaves that flow the day it needs for the push due time and the registration. `cascades`: the waiting
    cascades' deadlines (_cascade_deadlines), which the caller has already."""
    stops = list(cascades)
    for (d, _p), dl in state.deletions.items():
        if dl.push_token is not None and dl.push_token == state.phones[d].app_token:
            stops += [t for t in (dl.deadline - DAY, dl.deadline - 1) if t > state.now]
    return min(stops, default=None)
