"""Between the spec and the Z3 encoding: spec states and actions as Z3 values, Z3 models as spec actions.

`project` maps a spec `State` to the encoded fields (the abstraction function the differential
test checks the encoding against); `action_params` maps a spec action to an instance and its
parameter values; `Evaluator` evaluates the encoded relation on concrete values (a Z3 model
built from them, no search) so thousands of steps can be compared fast; `decode_action` reads
a BMC model's step back into a spec action.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import z3

from mjpki.properties.z3_encoding import (
    _ARITY,
    CODES,
    FIELDS,
    INSTANCES,
    KIND_INDEX,
    PIN_INDEX,
    REASON_INDEX,
    REC_CARD,
    REC_PHONE,
    STATUS_INDEX,
    Dom,
    Encoder,
    Instance,
    Params,
    ZState,
    default_value,
    instance_of,
)
from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import fifth_birthday_expiry, push_due
from mjpki.spec.domain import AuthMethod, HoldCause, Kind, Profile, SPKind
from mjpki.spec.rules import pin_well_formed
from mjpki.spec.state import PhoneCert, State
from mjpki.spec.world import World

__all__ = ["Numbering", "project", "action_params", "Evaluator", "StepCheck", "world_fns", "decode_action", "PIN_TABLE"]

PIN_TABLE: dict[int, str] = {1: "ABC123", 2: "XYZ789", 3: "1234", 4: "5678", 5: "abc"}
"""The PIN values a bounded model check may choose: two well-formed of each kind and a malformed one."""


@dataclass(slots=True)
class Numbering:
    """Integers for a world's persons and phones (from 1, in the world's order) and for PIN strings."""

    world: World
    pins: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, s in PIN_TABLE.items():
            self.pins.setdefault(s, i)

    def person(self, pid: str | None) -> int:
        """A person's number (0 for None)."""
        if pid is None:
            return 0
        return 1 + [p.id for p in self.world.persons].index(pid)

    def phone(self, did: str) -> int:
        """A phone's number, also its SE's."""
        return 1 + [p.id for p in self.world.phones].index(did)

    def se(self, se_id: str) -> int:
        """The number of the phone with this SE-ID."""
        return self.phone(self.world.phone_by_se(se_id).id)

    def pin(self, value: str | None) -> int:
        """A PIN string's number (0 for None); equal strings, equal numbers."""
        if value is None:
            return 0
        if value not in self.pins:
            self.pins[value] = max(self.pins.values(), default=0) + 1
        return self.pins[value]

    def pin_str(self, n: int) -> str | None:
        """The PIN string with this number."""
        if n == 0:
            return None
        return next(s for s, i in self.pins.items() if i == n)


Values = dict[str, Any]
"""Field name -> int/bool (scalars) or dict index-tuple -> value (arrays, defaults left out)."""


def project(world: World, state: State, num: Numbering) -> Values:
    """The encoded fields of a spec state (the abstraction function)."""
    v: Values = {n: {} for n, (dom, _s) in FIELDS.items() if dom}
    v["now"], v["fresh"] = state.now, state.fresh
    for pid, ps in state.persons.items():
        i = num.person(pid)
        v["card0"][(i,)] = ps.card_signing or 0
        v["card1"][(i,)] = ps.card_auth or 0
    for pid, app in state.applications.items():
        i = (num.person(pid),)
        v["app"][i] = True
        v["app_phone"][i] = num.phone(app.phone)
        v["app_k0"][i] = Kind.SIGNING in app.kinds
        v["app_k1"][i] = Kind.AUTH in app.kinds
        v["app_commit"][i] = app.commitment
        v["app_card"][i] = app.card_serial
        v["app_token"][i] = app.push_token or 0
        v["app_due"][i] = app.push_due
        v["app_notified"][i] = app.notified
    for c in (*state.card_certs.values(), *state.phone_certs.values()):
        s = (c.serial,)
        if s in v["rec"]:
            raise ValueError(f"serial {c.serial} is used by two records; the encoding keys records by serial (CA-2)")
        phone = isinstance(c, PhoneCert)
        v["rec"][s] = REC_PHONE if phone else REC_CARD
        v["person"][s] = num.person(c.person)
        v["kind"][s] = KIND_INDEX[c.kind]
        v["issued"][s] = c.issued_at
        v["expiry"][s] = c.expiry
        v["status"][s] = STATUS_INDEX[c.status]
        v["hold_phone"][s] = HoldCause.PHONE_LOST in c.holds
        v["hold_card"][s] = HoldCause.CARD_LOST in c.holds
        v["has_rat"][s] = c.revoked_at is not None
        v["rat"][s] = c.revoked_at or 0
        v["reason"][s] = REASON_INDEX[c.reason]
        if phone:
            assert isinstance(c, PhoneCert)
            v["se"][s] = num.se(c.se_id)
            v["card"][s] = c.card_serial
            for f in c.follows:
                v["fol_s" if state.card_certs[f].kind is Kind.SIGNING else "fol_a"][s] = f
            v["key"][s] = c.key_id
            v["commit"][s] = c.commitment
            v["presented"][s] = c.presented_r
            v["ptoken"][s] = c.push_token or 0
    for serial, se_id in state.linkage.items():
        v["linkage"][(serial,)] = num.se(se_id)
    for (did, pid), d in state.deletions.items():
        key = (num.phone(did), num.person(pid))
        v["del_"][key] = True
        v["del_token"][key] = d.push_token or 0
        v["del_deadline"][key] = d.deadline
        for s in d.serials:
            v["del_ser"][(*key, s)] = True
    for did, ps in state.phones.items():
        i = (num.phone(did),)
        v["holder"][i] = num.person(ps.holder)
        v["token"][i] = ps.app_token or 0
        v["ready"][i] = ps.applet_ready
        v["online"][i] = ps.online
        v["push"][i] = ps.push_enabled
        v["os_auth"][i] = ps.os_auth_enrolled
        v["has_lpa"][i] = ps.last_primary_auth is not None
        v["lpa"][i] = ps.last_primary_auth or 0
        for kind, pin in ps.held_pins.items():
            v[f"held{KIND_INDEX[kind]}"][i] = num.pin(pin)
        v["applet"][i] = ps.se.applet
        v["nonce"][i] = ps.se.nonce or 0
        for kind, slot in ps.se.slots.items():
            k = KIND_INDEX[kind]
            v[f"s{k}_present"][i] = True
            v[f"s{k}_person"][i] = num.person(slot.person)
            v[f"s{k}_key"][i] = slot.key_id
            v[f"s{k}_cert"][i] = slot.cert_serial
            v[f"s{k}_pst"][i] = PIN_INDEX[slot.pin_status]
            v[f"s{k}_pin"][i] = num.pin(slot.pin)
            v[f"s{k}_tries"][i] = slot.tries_left
    return v


def _z3_value(name: str, value: Any) -> z3.ExprRef:
    dom, sort = FIELDS[name]
    if not dom:
        return z3.IntVal(value) if sort == "I" else z3.BoolVal(value)
    arity = _ARITY[dom]
    if arity == 1:
        arr: z3.ExprRef = z3.K(z3.IntSort(), default_value(name))
    else:
        xs = [z3.Int(f"x{i}") for i in range(arity)]
        arr = z3.Lambda(xs, default_value(name))
    for idx, val in value.items():
        if (sort == "I" and val == 0) or (sort == "B" and not val):
            continue  # the default already
        arr = z3.Store(arr, *[z3.IntVal(i) for i in idx], z3.IntVal(val) if sort == "I" else z3.BoolVal(val))
    return arr


def action_params(world: World, state: State, action: A.Action, num: Numbering) -> tuple[Instance, dict[str, Any]]:
    """The instance of a spec action and its parameter values (the world's calendar filled in)."""
    inst = instance_of(action)
    p: dict[str, Any] = {"tag": INSTANCES.index(inst)}
    g = action.__getattribute__
    if "person" in inst.params:
        p["person"] = num.person(g("person"))
    if "phone" in inst.params:
        p["phone"] = num.phone(g("phone"))
    if isinstance(action, A.TransferPhone):
        p["to"] = num.person(action.to)
    if isinstance(action, A.IssueCardCertificate | A.CardFound):
        p["expiry"] = fifth_birthday_expiry(world.person(action.person).birth, state.now)
    if isinstance(action, A.Apply):
        p.update(
            k0=Kind.SIGNING in action.kinds,
            k1=Kind.AUTH in action.kinds,
            pin_a=num.pin(action.signing_pin),
            wf_a=pin_well_formed(Kind.SIGNING, action.signing_pin),
            pin_b=num.pin(action.auth_pin),
            wf_b=pin_well_formed(Kind.AUTH, action.auth_pin),
            consent=action.consent,
            sigok=action.card_signature_valid,
            due=push_due(state.now),
        )
    if isinstance(action, A.ResumeFromApp):
        p.update(
            pin_a=num.pin(action.signing_pin),
            wf_a=pin_well_formed(Kind.SIGNING, action.signing_pin),
            sigok=action.card_signature_valid,
            due=push_due(state.now),
        )
    if isinstance(action, A.EnrollOsAuth | A.RevokeFromPhone):
        p["pin_a"] = num.pin(action.pin)
    if isinstance(action, A.Authenticate | A.Sign):
        sp = world.service_provider(action.sp)
        p.update(
            pin_a=num.pin(action.pin),
            flag=action.official_app,
            sp_white=sp.whitelisted,
            sp_private=sp.kind is SPKind.PRIVATE,
            sp_approved=sp.approved,
        )
    if isinstance(action, A.UseCard):
        sp = world.service_provider(action.sp)
        p.update(sp_private=sp.kind is SPKind.PRIVATE, sp_approved=sp.approved)
    if isinstance(action, A.VerifyCertificate):
        p.update(index=action.index, flag=action.accept is Profile.PHONE)
    if isinstance(action, A.ChangePin):
        p.update(pin_a=num.pin(action.old_pin), pin_b=num.pin(action.new_pin), wf_b=pin_well_formed(action.kind, action.new_pin))
    if isinstance(action, A.InitialisePin):
        p.update(pin_a=num.pin(action.new_pin), wf_a=pin_well_formed(action.kind, action.new_pin), sigok=action.card_signature_valid)
    if isinstance(action, A.RevokeWithCard):
        p["sigok"] = action.card_signature_valid
    if isinstance(action, A.SetOnline):
        p["flag"] = action.online
    if isinstance(action, A.SetPushEnabled):
        p["flag"] = action.enabled
    if isinstance(action, A.AdvanceTime):
        p["minutes"] = action.minutes
    return inst, p


def world_fns(world: World) -> dict[str, Callable[[z3.ArithRef], z3.BoolRef]]:
    """The world's fixed phone facts as Z3 functions of the phone number (ACT-3, PIN-6)."""

    def table(pred: Callable[[Any], bool]) -> Callable[[z3.ArithRef], z3.BoolRef]:
        yes = [i + 1 for i, ph in enumerate(world.phones) if pred(ph)]
        return lambda x: z3.Or(False, *[x == i for i in yes])

    return {
        "eligible": table(lambda ph: ph.android >= 9 and ph.gp_se and ph.nfc),
        "android11": table(lambda ph: ph.android >= 11),
        "bio3": table(lambda ph: ph.biometric_class3),
    }


@dataclass(frozen=True, slots=True)
class StepCheck:
    """What the encoding says about one concrete spec step, next to what the spec did."""

    instance: str
    spec_code: str
    z3_code: str
    agrees: bool
    differing: tuple[str, ...]


class Evaluator:
    """Evaluates the encoded relation on concrete pre-states and actions (one Z3 model per step, no search)."""

    def __init__(self, world: World, dom: Dom, variants: Variants | None = None, *, bug: str | None = None) -> None:
        self.world = world
        self.dom = dom
        self.num = Numbering(world)
        self.enc = Encoder(dom, variants or world.variants, bug=bug, world_fns=world_fns(world))
        self.pre = ZState.symbolic("pre")
        self.exp = ZState.symbolic("exp")
        self.params = Params.symbolic("a")
        self._cache: dict[str, tuple[z3.ExprRef, z3.ExprRef, dict[str, z3.ExprRef]]] = {}

    def _terms(self, inst: Instance) -> tuple[z3.ExprRef, z3.ExprRef, dict[str, z3.ExprRef]]:
        if inst.name not in self._cache:
            code, post = self.enc.effect(inst, self.pre, self.params)
            per_field = {n: _agree(self.dom, n, post.f[n], self.exp.f[n]) for n in FIELDS}
            self._cache[inst.name] = (code, z3.And(*per_field.values()), per_field)
        return self._cache[inst.name]

    def check(self, state: State, action: A.Action, post: State, spec_code: str) -> StepCheck:
        """Does the relation give this step's outcome code and post-state (projected)?"""
        inst, pvals = action_params(self.world, state, action, self.num)
        code, agree, per_field = self._terms(inst)
        m = z3.Model()
        for name, val in project(self.world, state, self.num).items():
            m.update_value(self.pre.f[name], _z3_value(name, val))
        for name, val in project(self.world, post, self.num).items():
            m.update_value(self.exp.f[name], _z3_value(name, val))
        for name in self.params.names():
            val = pvals.get(name, 0 if isinstance(getattr(self.params, name), z3.ArithRef) else False)
            m.update_value(
                getattr(self.params, name), z3.IntVal(val) if isinstance(val, int) and not isinstance(val, bool) else z3.BoolVal(val)
            )
        z3_code = CODES[m.eval(code, model_completion=True).as_long()]
        ok = z3.is_true(m.eval(agree, model_completion=True))
        differing: tuple[str, ...] = ()
        if not ok:
            differing = tuple(n for n, t in per_field.items() if not z3.is_true(m.eval(t, model_completion=True)))
        return StepCheck(instance=inst.name, spec_code=spec_code, z3_code=z3_code, agrees=ok and z3_code == spec_code, differing=differing)


def _agree(dom: Dom, name: str, a: z3.ExprRef, b: z3.ExprRef) -> z3.BoolRef:
    """a and b agree at every index of the finite domain (or are equal scalars)."""
    kind = FIELDS[name][0]
    if not kind:
        return a == b
    ranges = {
        "person": [range(1, (dom.persons or 0) + 1)],
        "phone": [range(1, (dom.phones or 0) + 1)],
        "serial": [range(0, (dom.serials or 0) + 1)],
        "del": [range(1, (dom.phones or 0) + 1), range(1, (dom.persons or 0) + 1)],
        "delser": [range(1, (dom.phones or 0) + 1), range(1, (dom.persons or 0) + 1), range(0, (dom.serials or 0) + 1)],
    }[kind]
    return z3.And(True, *[a[tuple(z3.IntVal(i) for i in idx)] == b[tuple(z3.IntVal(i) for i in idx)] for idx in itertools.product(*ranges)])


def decode_action(world: World, num: Numbering, model: z3.ModelRef, a: Params) -> A.Action:
    """The spec action a BMC model chose for one step."""

    def iv(x: z3.ExprRef) -> int:
        return model.eval(x, model_completion=True).as_long()  # type: ignore[no-any-return]

    def bv(x: z3.ExprRef) -> bool:
        return z3.is_true(model.eval(x, model_completion=True))

    inst = INSTANCES[iv(a.tag)]
    person = world.persons[iv(a.person) - 1].id if "person" in inst.params else None
    phone = world.phones[iv(a.phone) - 1].id if "phone" in inst.params else None
    kind = inst.kind_enum
    sp = world.service_providers[0].id
    cls = inst.action
    pin_a = num.pin_str(iv(a.pin_a)) if "pin_a" in inst.params else None
    pin_b = num.pin_str(iv(a.pin_b)) if "pin_b" in inst.params else None
    if cls is A.IssueCardCertificate or cls is A.RevokeCardCertificate or cls is A.UseCard:
        return cls(person=person, kind=kind, **({"sp": sp} if cls is A.UseCard else {}))  # type: ignore[call-arg]
    if cls is A.VerifyCertificate:
        profile = Profile.CARD if inst.profile == REC_CARD else Profile.PHONE
        accept = Profile.PHONE if bv(a.flag) else Profile.CARD
        return A.VerifyCertificate(person=person, kind=kind, profile=profile, index=iv(a.index), accept=accept)  # type: ignore[arg-type]
    if cls in (A.ChangePersonalData, A.ReportCardLost, A.CardFound, A.DeliverIssuancePush, A.ReportPhoneLost, A.PhoneFound):
        return cls(person=person)  # type: ignore[call-arg]
    if cls in (A.InstallApp, A.UninstallApp, A.PrepareApplet, A.UnlockScreen, A.DeliverDeletionPush, A.FactoryReset):
        return cls(phone=phone)  # type: ignore[call-arg]
    if cls is A.Apply:
        kinds = frozenset(k for k, on in ((Kind.SIGNING, bv(a.k0)), (Kind.AUTH, bv(a.k1))) if on)
        return A.Apply(
            person=person,  # type: ignore[arg-type]
            phone=phone,  # type: ignore[arg-type]
            kinds=kinds,
            signing_pin=pin_a,
            auth_pin=pin_b,
            consent=bv(a.consent),
            card_signature_valid=bv(a.sigok),
        )
    if cls is A.Register:
        return A.Register(person=person, phone=phone)  # type: ignore[arg-type]
    if cls is A.SetPin:
        return A.SetPin(phone=phone, kind=kind)  # type: ignore[arg-type]
    if cls is A.EnrollOsAuth:
        return A.EnrollOsAuth(phone=phone, pin=pin_a or "")  # type: ignore[arg-type]
    if cls is A.Authenticate:
        return A.Authenticate(phone=phone, sp=sp, method=inst.method or AuthMethod.PIN, pin=pin_a, official_app=bv(a.flag))  # type: ignore[arg-type]
    if cls is A.Sign:
        return A.Sign(phone=phone, sp=sp, method=inst.method or AuthMethod.PIN, pin=pin_a, official_app=bv(a.flag))  # type: ignore[arg-type]
    if cls is A.ChangePin:
        return A.ChangePin(phone=phone, kind=kind, old_pin=pin_a or "", new_pin=pin_b or "")  # type: ignore[arg-type]
    if cls is A.InitialisePin:
        return A.InitialisePin(person=person, phone=phone, kind=kind, new_pin=pin_a or "", card_signature_valid=bv(a.sigok))  # type: ignore[arg-type]
    if cls is A.RevokeFromPhone:
        return A.RevokeFromPhone(phone=phone, kind=kind, pin=pin_a or "")  # type: ignore[arg-type]
    if cls is A.RevokeWithCard:
        return A.RevokeWithCard(person=person, card_signature_valid=bv(a.sigok))  # type: ignore[arg-type]
    if cls is A.ResumeFromApp:
        return A.ResumeFromApp(person=person, phone=phone, signing_pin=pin_a, card_signature_valid=bv(a.sigok))  # type: ignore[arg-type]
    if cls is A.SetOnline:
        return A.SetOnline(phone=phone, online=bv(a.flag))  # type: ignore[arg-type]
    if cls is A.SetPushEnabled:
        return A.SetPushEnabled(phone=phone, enabled=bv(a.flag))  # type: ignore[arg-type]
    if cls is A.TransferPhone:
        return A.TransferPhone(phone=phone, to=world.persons[iv(a.to) - 1].id)  # type: ignore[arg-type]
    if cls is A.AdvanceTime:
        return A.AdvanceTime(minutes=iv(a.minutes))
    raise AssertionError(f"no decoding for {inst.name}")
