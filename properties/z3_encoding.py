"""A Z3 encoding of the spec's state, transition relation and invariants.

The spec's rules are plain Python functions, so this encoding is written by hand, rule by
rule, in the same guard order; `tests/test_z3_differential.py` shows it agrees with
`mjpki.spec.machine.step` on outcome code and next state, step by step.

State is a set of Z3 arrays indexed by integers: persons, phones (a phone's index is also its
SE-ID, LNK-6), serials (card and phone certificate records share one serial space, CA-2), and
(phone, person) for remote deletions. An action is an *instance* (the action type with its
enumerated arguments: kind, authentication method) plus integer and Boolean parameters. Each
instance's effect is a function: its outcome code and its post-state are Z3 terms over the
pre-state and the parameters, so the relation is deterministic by construction.

A `Dom` says how quantifiers are read. Parametric (`Dom()`): persons, phones and serials are
unbounded integers and invariants are `ForAll` formulas, so a proof holds for any number of
persons, phones and certificates. Finite (`Dom(persons=N, phones=M, serials=S)`): every
quantifier is expanded over 1..N, 1..M, 1..S; bounded model checking and the differential
test use this. Where the parametric reading would need a quantifier nested in a post-state
term (which record's push token a merged remote deletion keeps, whether a deletion is queued
at all), it uses a fresh unconstrained choice instead: an over-approximation, sound for proofs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import z3

from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import DAY, DELETION_WINDOW, PRIMARY_AUTH_INTERVAL, PUSH_DELAY, PUSH_WINDOW_CLOSE, PUSH_WINDOW_OPEN
from mjpki.spec.domain import CASCADING_REASONS, AuthMethod, CertStatus, Kind, PhoneLinkage, PinStatus, Profile, RevocationReason
from mjpki.spec.reasons import Reason

__all__ = [
    "REC_NONE",
    "REC_CARD",
    "REC_PHONE",
    "SIG",
    "AUTH",
    "KIND_INDEX",
    "STATUS_INDEX",
    "PIN_INDEX",
    "REASON_INDEX",
    "CODES",
    "CODE_INDEX",
    "FIELDS",
    "Dom",
    "ZState",
    "Params",
    "Encoder",
    "Instance",
    "INSTANCES",
    "instance_of",
    "BUG_MUTATIONS",
]

REC_NONE, REC_CARD, REC_PHONE = 0, 1, 2
SIG, AUTH = 0, 1
KIND_INDEX = {Kind.SIGNING: SIG, Kind.AUTH: AUTH}
ACTIVE, SUSPENDED, REVOKED = 0, 1, 2
STATUS_INDEX = {CertStatus.ACTIVE: ACTIVE, CertStatus.SUSPENDED: SUSPENDED, CertStatus.REVOKED: REVOKED}
PIN_TEMP, PIN_SET, PIN_LOCKED = 0, 1, 2
PIN_INDEX = {PinStatus.TEMP_BLOCKED: PIN_TEMP, PinStatus.SET: PIN_SET, PinStatus.LOCKED: PIN_LOCKED}
REASON_INDEX: dict[RevocationReason | None, int] = {None: 0, **{r: i + 1 for i, r in enumerate(RevocationReason)}}
CASCADING = tuple(REASON_INDEX[r] for r in RevocationReason if r in CASCADING_REASONS)
CODES: tuple[str, ...] = ("ACCEPTED", *(r.name for r in Reason))
CODE_INDEX = {c: i for i, c in enumerate(CODES)}

# Field name -> (index domain, value sort). Index domains: "" a scalar, "person", "phone",
# "serial", "del" (phone, person), "delser" (phone, person, serial). 0 stands for None in
# integer fields: serials, keys, nonces and push tokens are fresh values from 1 up, persons
# and phones are numbered from 1, PIN values are interned from 1.
_SLOT_FIELDS = (("present", "B"), ("person", "I"), ("key", "I"), ("cert", "I"), ("pst", "I"), ("pin", "I"), ("tries", "I"))
FIELDS: dict[str, tuple[str, str]] = {
    "now": ("", "I"),
    "fresh": ("", "I"),
    # persons: current card certificates, pending application (ISS-2)
    "card0": ("person", "I"),
    "card1": ("person", "I"),
    "app": ("person", "B"),
    "app_phone": ("person", "I"),
    "app_k0": ("person", "B"),
    "app_k1": ("person", "B"),
    "app_commit": ("person", "I"),
    "app_card": ("person", "I"),
    "app_token": ("person", "I"),
    "app_due": ("person", "I"),
    "app_notified": ("person", "B"),
    # certificate records by serial (card and phone)
    "rec": ("serial", "I"),
    "person": ("serial", "I"),
    "kind": ("serial", "I"),
    "issued": ("serial", "I"),
    "expiry": ("serial", "I"),
    "status": ("serial", "I"),
    "hold_phone": ("serial", "B"),
    "hold_card": ("serial", "B"),
    "has_rat": ("serial", "B"),
    "rat": ("serial", "I"),
    "reason": ("serial", "I"),
    "se": ("serial", "I"),
    "card": ("serial", "I"),
    "fol_s": ("serial", "I"),
    "fol_a": ("serial", "I"),
    "key": ("serial", "I"),
    "commit": ("serial", "I"),
    "presented": ("serial", "I"),
    "ptoken": ("serial", "I"),
    "linkage": ("serial", "I"),
    # remote deletions (MCH-2)
    "del_": ("del", "B"),
    "del_token": ("del", "I"),
    "del_deadline": ("del", "I"),
    "del_ser": ("delser", "B"),
    # phones
    "holder": ("phone", "I"),
    "token": ("phone", "I"),
    "ready": ("phone", "B"),
    "online": ("phone", "B"),
    "push": ("phone", "B"),
    "os_auth": ("phone", "B"),
    "has_lpa": ("phone", "B"),
    "lpa": ("phone", "I"),
    "held0": ("phone", "I"),
    "held1": ("phone", "I"),
    "applet": ("phone", "B"),
    "nonce": ("phone", "I"),
    **{f"s{k}_{name}": ("phone", sort) for k in (SIG, AUTH) for name, sort in _SLOT_FIELDS},
}

_ARITY = {"": 0, "person": 1, "phone": 1, "serial": 1, "del": 2, "delser": 3}


def _sort(s: str) -> z3.SortRef:
    return z3.IntSort() if s == "I" else z3.BoolSort()


def field_sort(name: str) -> z3.SortRef:
    """The Z3 sort of a state field (an array sort for indexed fields)."""
    dom, s = FIELDS[name]
    if dom == "":
        return _sort(s)
    return z3.ArraySort(*([z3.IntSort()] * _ARITY[dom]), _sort(s))


def default_value(name: str) -> z3.ExprRef:
    """The value of a field where nothing is recorded (0 or False)."""
    return z3.IntVal(0) if FIELDS[name][1] == "I" else z3.BoolVal(False)


class ZState:
    """A symbolic (or concrete) state: one Z3 term per field."""

    __slots__ = ("f",)

    def __init__(self, fields: dict[str, z3.ExprRef]) -> None:
        self.f = fields

    @classmethod
    def symbolic(cls, prefix: str) -> ZState:
        """A state of fresh constants named prefix.field."""
        return cls({n: z3.Const(f"{prefix}.{n}", field_sort(n)) for n in FIELDS})

    def __getattr__(self, name: str) -> Any:
        try:
            return self.f[name]
        except KeyError:
            raise AttributeError(name) from None

    def slot(self, k: int, name: str) -> Any:
        """A slot field array of kind k."""
        return self.f[f"s{k}_{name}"]

    def held(self, k: int) -> Any:
        """The array of PINs held for setting, kind k."""
        return self.f[f"held{k}"]

    def card_of(self, k: int) -> Any:
        """The array of current card serials of kind k."""
        return self.f[f"card{k}"]

    def app_k(self, k: int) -> Any:
        """The array 'pending application asks for kind k'."""
        return self.f[f"app_k{k}"]

    def set(self, **changes: z3.ExprRef) -> ZState:
        """A copy with some fields replaced."""
        return ZState({**self.f, **changes})


_NEW_RECORD_DEFAULTS = ("hold_phone", "hold_card", "has_rat", "rat", "reason")
"""Fields a new record starts with at their defaults: not held, not revoked."""
_PHONE_ONLY = ("se", "card", "fol_s", "fol_a", "key", "commit", "presented", "ptoken")
"""Fields only phone certificate records carry (0 on card records)."""


_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class Dom:
    """How quantifiers over persons, phones and serials are read: unbounded (None) or 1..n."""

    persons: int | None = None
    phones: int | None = None
    serials: int | None = None

    @property
    def finite(self) -> bool:
        """True if every quantifier expands to a finite conjunction."""
        return self.serials is not None

    def _bound(self, what: str) -> int | None:
        return {"person": self.persons, "phone": self.phones, "serial": self.serials}[what]

    def forall(self, what: tuple[str, ...], body: Callable[..., z3.BoolRef]) -> z3.BoolRef:
        """For all indices of the given kinds (each index >= 1)."""
        if self._bound(what[0]) is None:
            # Deterministic bound names: the same formula over the same terms is the same AST,
            # so an invariant over fields a step leaves alone is recognised as unchanged.
            xs = [z3.Int(f"{w}{i}") for i, w in enumerate(what)]
            return z3.ForAll(xs, z3.Implies(z3.And(*[x >= 1 for x in xs]), body(*xs)))
        ranges = [range(1, (self._bound(w) or 0) + 1) for w in what]
        return z3.And(True, *[body(*[z3.IntVal(i) for i in combo]) for combo in itertools.product(*ranges)])

    def exists(self, what: tuple[str, ...], body: Callable[..., z3.BoolRef]) -> z3.BoolRef:
        """There are indices of the given kinds (each >= 1) with body."""
        if self._bound(what[0]) is None:
            xs = [z3.Int(f"{w}{i}") for i, w in enumerate(what)]
            return z3.Exists(xs, z3.And(*[x >= 1 for x in xs], body(*xs)))
        ranges = [range(1, (self._bound(w) or 0) + 1) for w in what]
        return z3.Or(False, *[body(*[z3.IntVal(i) for i in combo]) for combo in itertools.product(*ranges)])

    def valid(self, what: str, x: z3.ArithRef) -> z3.BoolRef:
        """x names an existing person / phone (1..n, or >= 1 when unbounded)."""
        n = self._bound(what)
        return x >= 1 if n is None else z3.And(x >= 1, x <= n)


@dataclass(frozen=True, slots=True)
class Params:
    """One step's action parameters, shared by every instance (each reads the ones it takes)."""

    tag: z3.ArithRef
    person: z3.ArithRef
    phone: z3.ArithRef
    to: z3.ArithRef
    pin_a: z3.ArithRef
    wf_a: z3.BoolRef
    pin_b: z3.ArithRef
    wf_b: z3.BoolRef
    k0: z3.BoolRef
    k1: z3.BoolRef
    consent: z3.BoolRef
    sigok: z3.BoolRef
    flag: z3.BoolRef
    sp_white: z3.BoolRef
    sp_private: z3.BoolRef
    sp_approved: z3.BoolRef
    minutes: z3.ArithRef
    due: z3.ArithRef
    """push_due(now) (ISS-7): computed by the world in exact readings, free in proofs."""
    expiry: z3.ArithRef
    """fifth_birthday_expiry(birth, now) of a new card certificate (VAL-2): likewise."""
    index: z3.ArithRef
    """Which of a person's certificates of a kind and profile a verifier is shown (ASM-CERTIFICATE-BY-ISSUE-ORDER)."""

    @classmethod
    def symbolic(cls, prefix: str) -> Params:
        """Parameters as fresh constants."""
        ints = ("tag", "person", "phone", "to", "pin_a", "pin_b", "minutes", "due", "expiry", "index")
        return cls(
            **{
                n: (z3.Int(f"{prefix}.{n}") if n in ints else z3.Bool(f"{prefix}.{n}"))
                for n in cls.__dataclass_fields__  # type: ignore[attr-defined]
            }
        )

    def names(self) -> tuple[str, ...]:
        """The parameter names."""
        return tuple(self.__dataclass_fields__)  # type: ignore[attr-defined]


Effect = tuple[z3.ArithRef, ZState]
"""An instance's outcome code and post-state."""


@dataclass(frozen=True, slots=True)
class Instance:
    """An action type with its enumerated arguments fixed (kind, method): one disjunct of the relation."""

    name: str
    action: type[A.Action]
    kind: int | None = None
    method: AuthMethod | None = None
    params: tuple[str, ...] = ()
    """The parameters this instance reads (the others are ignored)."""
    pin_kinds: tuple[tuple[str, int], ...] = ()
    """Which PIN parameters are PINs of which kind, for the well-formedness table of exact readings."""
    profile: int | None = None
    """The record type (REC_CARD, REC_PHONE) of the certificate a VerifyCertificate instance presents."""

    @property
    def kind_enum(self) -> Kind | None:
        """The spec Kind of this instance, if it has one."""
        return None if self.kind is None else (Kind.SIGNING if self.kind == SIG else Kind.AUTH)


class _Branches:
    """A rule's guards in order: the first that fails gives the refusal (and its post-state)."""

    def __init__(self, pre: ZState) -> None:
        self.pre = pre
        self.reached: z3.BoolRef = z3.BoolVal(True)
        self.items: list[tuple[z3.BoolRef, int, ZState]] = []

    def refuse(self, cond: z3.BoolRef, reason: Reason, post: ZState | None = None) -> None:
        self.items.append((z3.And(self.reached, cond), CODE_INDEX[reason.name], post if post is not None else self.pre))
        self.reached = z3.And(self.reached, z3.Not(cond))

    def accept(self, post: ZState) -> Effect:
        code: z3.ArithRef = z3.IntVal(CODE_INDEX["ACCEPTED"])
        for cond, c, _ in reversed(self.items):
            code = z3.If(cond, z3.IntVal(c), code)
        return code, merge([(cond, s) for cond, _, s in self.items], post)


def merge(cases: list[tuple[z3.BoolRef, ZState]], default: ZState) -> ZState:
    """Field-wise if-then-else over states; fields equal in every case are kept as they are."""
    out = {}
    for name, dv in default.f.items():
        val = dv
        for cond, st in reversed(cases):
            v = st.f[name]
            if not v.eq(val):
                val = z3.If(cond, v, val)
        out[name] = val
    return ZState(out)


def _store(arr: z3.ArrayRef, idx: z3.ExprRef, val: z3.ExprRef, when: z3.BoolRef | None = None) -> z3.ArrayRef:
    if when is None:
        return z3.Store(arr, idx, val)
    return z3.Store(arr, idx, z3.If(when, val, arr[idx]))


def _lam(arr: z3.ArrayRef, cond: Callable[[z3.ArithRef], z3.BoolRef], val: Callable[[z3.ArithRef], z3.ExprRef]) -> z3.ArrayRef:
    """The array with val(s) wherever cond(s), unchanged elsewhere (a lambda over serials)."""
    s = z3.Int(f"s!{next(_counter)}")
    return z3.Lambda([s], z3.If(cond(s), val(s), arr[s]))


class Encoder:
    """Builds the relation's terms for one domain reading, variant setting and (optionally) a seeded bug."""

    def __init__(self, dom: Dom, variants: Variants, *, bug: str | None = None, world_fns: dict[str, Any] | None = None) -> None:
        if bug is not None and bug not in BUG_MUTATIONS:
            raise ValueError(f"unknown seeded bug {bug!r}; known: {sorted(BUG_MUTATIONS)}")
        self.dom = dom
        self.v = variants
        self.bug = bug
        self.delay = variants.cascade_delay_minutes
        fns = world_fns or {}
        # The world's fixed facts about phones (ACT-3, PIN-6): uninterpreted unless given.
        self.eligible: Callable[[z3.ArithRef], z3.BoolRef] = fns.get("eligible") or z3.Function("eligible", z3.IntSort(), z3.BoolSort())
        self.android11: Callable[[z3.ArithRef], z3.BoolRef] = fns.get("android11") or z3.Function("android11", z3.IntSort(), z3.BoolSort())
        self.bio3: Callable[[z3.ArithRef], z3.BoolRef] = fns.get("bio3") or z3.Function("bio3", z3.IntSort(), z3.BoolSort())
        self.choices: list[z3.ExprRef] = []
        self._nth: dict[tuple[int, ...], tuple[z3.ArithRef, tuple[z3.ExprRef, ...]]] = {}
        """nth_issued's unbounded choices by the terms they are over (kept alive with them, so that their ids stay theirs)."""

    def max_tries(self, k: int) -> int:
        """PIN-3 retry limit of kind k."""
        return self.v.signing_pin_tries if k == SIG else self.v.auth_pin_tries

    def follows(self, k: int) -> tuple[bool, bool]:
        """Whether a phone certificate of kind k follows the card signing and the card auth certificate (ASM-PHONE-LINKAGE)."""
        kinds = self.v.phone_linkage.follows(Kind.SIGNING if k == SIG else Kind.AUTH)
        return Kind.SIGNING in kinds, Kind.AUTH in kinds

    def follows_term(self, kind: z3.ArithRef) -> tuple[z3.BoolRef, z3.BoolRef]:
        """The same for a phone certificate whose kind is a term."""
        if self.v.phone_linkage is PhoneLinkage.PER_KIND:
            return kind == SIG, kind == AUTH
        sig, auth = self.follows(SIG)
        return z3.BoolVal(sig), z3.BoolVal(auth)

    @staticmethod
    def followed(st: ZState, s: z3.ExprRef) -> tuple[z3.ArithRef, z3.ArithRef]:
        """The card signing and card auth certificates phone record s follows (0: none of that kind)."""
        return st.fol_s[s], st.fol_a[s]

    # --- shared predicates -----------------------------------------------------------------------

    @staticmethod
    def live(st: ZState, s: z3.ExprRef) -> z3.BoolRef:
        """Not revoked and not expired."""
        return z3.And(st.status[s] != REVOKED, st.now < st.expiry[s])

    @staticmethod
    def in_force(st: ZState, s: z3.ExprRef) -> z3.BoolRef:
        """Active and not expired."""
        return z3.And(st.status[s] == ACTIVE, st.now < st.expiry[s])

    def live_phone_of(self, st: ZState, p: z3.ExprRef, s: z3.ExprRef) -> z3.BoolRef:
        """s is a live phone certificate of person p."""
        return z3.And(st.rec[s] == REC_PHONE, st.person[s] == p, self.live(st, s))

    # --- state updates ----------------------------------------------------------------------------

    def revoke_where(self, st: ZState, cond: Callable[[z3.ArithRef], z3.BoolRef], reason: int, at: Any = None) -> ZState:
        """Revoke every record with cond that is not revoked yet (REV-4: a revoked one stays as it is)."""

        def hit(s: z3.ArithRef) -> z3.BoolRef:
            return z3.And(cond(s), st.status[s] != REVOKED)

        when = (lambda s: st.now) if at is None else at
        return st.set(
            status=_lam(st.status, hit, lambda s: z3.IntVal(REVOKED)),
            has_rat=_lam(st.has_rat, hit, lambda s: z3.BoolVal(True)),
            rat=_lam(st.rat, hit, when),
            reason=_lam(st.reason, hit, lambda s: z3.IntVal(reason)),
        )

    def revoke_one(self, st: ZState, serial: z3.ExprRef, reason: int, when: z3.BoolRef | None = None) -> ZState:
        """Revoke one record (if `when`, and if not revoked already)."""
        hit = st.status[serial] != REVOKED
        if when is not None:
            hit = z3.And(when, hit)
        return st.set(
            status=_store(st.status, serial, z3.IntVal(REVOKED), hit),
            has_rat=_store(st.has_rat, serial, z3.BoolVal(True), hit),
            rat=_store(st.rat, serial, st.now, hit),
            reason=_store(st.reason, serial, z3.IntVal(reason), hit),
        )

    def hold_where(self, st: ZState, cond: Callable[[z3.ArithRef], z3.BoolRef], cause: str) -> ZState:
        """Suspend with a hold cause (SUS-1, SUS-2)."""
        arr = st.f[cause]
        return st.set(
            **{"status": _lam(st.status, cond, lambda s: z3.IntVal(SUSPENDED)), cause: _lam(arr, cond, lambda s: z3.BoolVal(True))}
        )

    def release_where(self, st: ZState, cond: Callable[[z3.ArithRef], z3.BoolRef], cause: str) -> ZState:
        """Lift one hold cause; resume only if no cause is left (SUS-3)."""
        other = "hold_card" if cause == "hold_phone" else "hold_phone"
        return st.set(
            **{
                cause: _lam(st.f[cause], cond, lambda s: z3.BoolVal(False)),
                "status": _lam(st.status, cond, lambda s: z3.If(st.f[other][s], z3.IntVal(SUSPENDED), z3.IntVal(ACTIVE))),
            }
        )

    def issue_card(self, st: ZState, p: z3.ExprRef, k: int, expiry: z3.ExprRef) -> ZState:
        """A new current card certificate of kind k at the next fresh serial (VAL-2, CA-2)."""
        n = st.fresh
        return st.set(
            fresh=n + 1,
            rec=z3.Store(st.rec, n, REC_CARD),
            person=z3.Store(st.person, n, p),
            kind=z3.Store(st.kind, n, k),
            issued=z3.Store(st.issued, n, st.now),
            expiry=z3.Store(st.expiry, n, expiry),
            status=z3.Store(st.status, n, ACTIVE),
            **{f: z3.Store(st.f[f], n, default_value(f)) for f in _NEW_RECORD_DEFAULTS},
            **{f: z3.Store(st.f[f], n, default_value(f)) for f in _PHONE_ONLY},
            **{f"card{k}": z3.Store(st.card_of(k), p, n)},
        )

    def sweep(self, st: ZState, until: z3.ArithRef) -> ZState:
        """The linkage sweep (REV-2, ASM-CASCADE-AT-DEADLINE): revoke at the earliest deadline of a followed card certificate."""
        d = self.delay

        def fires(c: z3.ArithRef) -> z3.BoolRef:
            return z3.And(c != 0, st.status[c] == REVOKED, z3.Or(*[st.reason[c] == r for r in CASCADING]), st.rat[c] + d <= until)

        def due(s: z3.ArithRef) -> z3.BoolRef:
            cs, ca = self.followed(st, s)
            return z3.And(st.rec[s] == REC_PHONE, st.status[s] != REVOKED, z3.Or(fires(cs), fires(ca)))

        def at(s: z3.ArithRef) -> z3.ArithRef:
            cs, ca = self.followed(st, s)
            ts, ta = st.rat[cs] + d, st.rat[ca] + d
            t = z3.If(z3.And(fires(cs), z3.Or(z3.Not(fires(ca)), ts <= ta)), ts, ta)
            return z3.If(t >= st.now, t, st.now)

        return self.revoke_where(st, due, REASON_INDEX[RevocationReason.CASCADE], at)

    def clear_slot(self, st: ZState, ph: z3.ExprRef, k: int, when: z3.BoolRef | None = None) -> ZState:
        """Remove the slot of kind k from the phone's applet."""
        return st.set(**{f"s{k}_{n}": _store(st.slot(k, n), ph, default_value(f"s{k}_{n}"), when) for n, _ in _SLOT_FIELDS})

    def reset_se(self, st: ZState, ph: z3.ExprRef, applet: bool, when: z3.BoolRef | None = None) -> ZState:
        """A fresh SE: applet present or not, no nonce, no slots."""
        st = st.set(applet=_store(st.applet, ph, z3.BoolVal(applet), when), nonce=_store(st.nonce, ph, z3.IntVal(0), when))
        for k in (SIG, AUTH):
            st = self.clear_slot(st, ph, k, when)
        return st

    def last_token(self, st: ZState, cond: Callable[[z3.ArithRef], z3.BoolRef], default: z3.ExprRef) -> z3.ExprRef:
        """The push token of the highest-serial record with cond (the spec's loop keeps the last one)."""
        if not self.dom.finite:
            c = z3.Int(f"choice!{next(_counter)}")  # over-approximation: any token
            self.choices.append(c)
            return c
        val = default
        for i in range(1, (self.dom.serials or 0) + 1):
            s = z3.IntVal(i)
            val = z3.If(cond(s), st.ptoken[s], val)
        return val

    def any_serial(self, st: ZState, cond: Callable[[z3.ArithRef], z3.BoolRef]) -> z3.BoolRef:
        """There is a serial with cond (a fresh choice when unbounded: an over-approximation)."""
        if not self.dom.finite:
            c = z3.Bool(f"choice!{next(_counter)}")
            self.choices.append(c)
            return c
        return self.dom.exists(("serial",), cond)

    def request_deletion(self, st: ZState, pre: ZState, certs: Callable[[z3.ArithRef], z3.BoolRef]) -> ZState:
        """Queue remote deletions of the records with certs(s) (read on pre) to their old phones (MCH-2)."""
        ph, p = z3.Int(f"q!{next(_counter)}"), z3.Int(f"p!{next(_counter)}")
        s = z3.Int(f"s!{next(_counter)}")

        def mine(q: z3.ArithRef, pp: z3.ArithRef, x: z3.ArithRef) -> z3.BoolRef:
            return z3.And(certs(x), pre.se[x] == q, pre.person[x] == pp)

        if self.dom.finite:
            phones = range(1, (self.dom.phones or 0) + 1)
            persons = range(1, (self.dom.persons or 0) + 1)
            new_del, new_tok, new_dl = st.del_, st.del_token, st.del_deadline
            for qi, pi in itertools.product(phones, persons):
                q, pp = z3.IntVal(qi), z3.IntVal(pi)
                any_ = self.dom.exists(("serial",), lambda x, q=q, pp=pp: mine(q, pp, x))  # type: ignore[misc]
                tok = self.last_token(pre, lambda x, q=q, pp=pp: mine(q, pp, x), z3.IntVal(0))  # type: ignore[misc]
                new_del = z3.Store(new_del, q, pp, z3.Or(new_del[q, pp], any_))
                new_tok = z3.Store(new_tok, q, pp, z3.If(any_, tok, new_tok[q, pp]))
                new_dl = z3.Store(new_dl, q, pp, z3.If(any_, st.now + DELETION_WINDOW, new_dl[q, pp]))
        else:
            any_c = z3.Function(f"anydel!{next(_counter)}", z3.IntSort(), z3.IntSort(), z3.BoolSort())
            tok_c = z3.Function(f"tokdel!{next(_counter)}", z3.IntSort(), z3.IntSort(), z3.IntSort())
            self.choices += [any_c, tok_c]  # type: ignore[list-item]
            new_del = z3.Lambda([ph, p], z3.Or(st.del_[ph, p], any_c(ph, p)))
            new_tok = z3.Lambda([ph, p], z3.If(any_c(ph, p), tok_c(ph, p), st.del_token[ph, p]))
            new_dl = z3.Lambda([ph, p], z3.If(any_c(ph, p), st.now + DELETION_WINDOW, st.del_deadline[ph, p]))
        new_ser = z3.Lambda([ph, p, s], z3.Or(st.del_ser[ph, p, s], mine(ph, p, s)))
        return st.set(del_=new_del, del_token=new_tok, del_deadline=new_dl, del_ser=new_ser)

    def start_application(self, st: ZState, p: z3.ExprRef, ph: z3.ExprRef, k0: Any, k1: Any, pins: dict[int, Any], due: Any) -> ZState:
        """The SE makes R, the JPKI system holds S = H(R) with the application (ISS-2, ISS-7)."""
        r = st.fresh
        held = {k: _store(st.held(k), ph, pins[k], when) for k, when in ((SIG, k0), (AUTH, k1)) if k in pins}
        return st.set(
            fresh=r + 1,
            app=z3.Store(st.app, p, True),
            app_phone=z3.Store(st.app_phone, p, ph),
            app_k0=z3.Store(st.app_k0, p, k0),
            app_k1=z3.Store(st.app_k1, p, k1),
            app_commit=z3.Store(st.app_commit, p, r),
            app_card=z3.Store(st.app_card, p, st.card0[p]),
            app_token=z3.Store(st.app_token, p, st.token[ph]),
            app_due=z3.Store(st.app_due, p, due),
            app_notified=z3.Store(st.app_notified, p, False),
            nonce=z3.Store(st.nonce, ph, r),
            **{f"held{k}": v for k, v in held.items()},
        )

    def card_signature_guard(self, b: _Branches, st: ZState, p: z3.ExprRef, sigok: z3.BoolRef) -> None:
        """The card signing certificate must be in force and the signature valid (ISS-1, PIN-4)."""
        c = st.card0[p]
        b.refuse(z3.Or(c == 0, z3.Not(self.in_force(st, c))), Reason.CARD_SIGNING_CERT_NOT_VALID)
        b.refuse(z3.Not(sigok), Reason.CARD_SIGNATURE_INVALID)

    def card_auth_guard(self, b: _Branches, st: ZState, p: z3.ExprRef, k0: Any, k1: Any) -> None:
        """Where a phone certificate of a kind asked for is to follow the card auth certificate, it must be in force."""
        needs = [asked for k, asked in ((SIG, k0), (AUTH, k1)) if self.follows(k)[1]]
        if not needs:
            return  # as launched, no phone certificate follows the card auth certificate
        c = st.card1[p]
        b.refuse(z3.And(z3.Or(*needs), z3.Or(c == 0, z3.Not(self.in_force(st, c)))), Reason.CARD_AUTH_CERT_NOT_VALID)

    def phone_guards(self, b: _Branches, st: ZState, ph: z3.ExprRef, online: bool = True) -> None:
        """App installed, and online where the step needs the network."""
        b.refuse(st.token[ph] == 0, Reason.APP_NOT_INSTALLED)
        if online:
            b.refuse(z3.Not(st.online[ph]), Reason.DEVICE_OFFLINE)

    def check_pin(self, b: _Branches, st: ZState, ph: z3.ExprRef, k: int, pin: z3.ExprRef) -> ZState:
        """PIN verification in the applet (PIN-3): refusals added to b; returns the state after a correct entry."""
        pst, tries = st.slot(k, "pst"), st.slot(k, "tries")
        b.refuse(z3.Not(st.slot(k, "present")[ph]), Reason.NO_CERTIFICATE)
        b.refuse(pst[ph] == PIN_TEMP, Reason.PIN_NOT_SET)
        b.refuse(pst[ph] == PIN_LOCKED, Reason.PIN_LOCKED)
        left = tries[ph] - 1
        wrong = st.set(
            **{
                f"s{k}_tries": z3.Store(tries, ph, left),
                f"s{k}_pst": z3.Store(pst, ph, z3.If(left == 0, z3.IntVal(PIN_LOCKED), z3.IntVal(PIN_SET))),
            }
        )
        b.refuse(pin != st.slot(k, "pin")[ph], Reason.WRONG_PIN, wrong)
        return st.set(**{f"s{k}_tries": z3.Store(tries, ph, self.max_tries(k))})

    def nth_issued(self, st: ZState, p: z3.ExprRef, k: int, rec: int, index: z3.ArithRef) -> z3.ArithRef:
        """The serial of person p's index-th record of kind k and type rec in serial order, 0 if there is none
        (ASM-CERTIFICATE-BY-ISSUE-ORDER); unbounded, any record of that person, kind and type or 0 (an over-approximation)."""

        def match(s: z3.ArithRef) -> z3.BoolRef:
            return z3.And(st.rec[s] == rec, st.person[s] == p, st.kind[s] == k)

        if not self.dom.finite:
            # One choice per pre-state and parameters: the rule and a step invariant over the same step must mean the
            # same certificate, or the invariant could not be proved about the one the rule judged.
            over = (st.rec, st.person, st.kind, p, index)
            key = (*(t.get_id() for t in over), k, rec)
            if key not in self._nth:
                c = z3.Int(f"choice!{next(_counter)}")
                self.choices.append(c)
                self._nth[key] = (c, over)
            c = self._nth[key][0]
            return z3.If(z3.And(c >= 1, match(c)), c, z3.IntVal(0))  # type: ignore[return-value]
        val: z3.ArithRef = z3.IntVal(0)
        seen: z3.ArithRef = z3.IntVal(0)  # how many matching records have smaller serials
        for i in range(1, (self.dom.serials or 0) + 1):
            s = z3.IntVal(i)
            val = z3.If(z3.And(match(s), seen == index), s, val)  # type: ignore[assignment]
            seen = seen + z3.If(match(s), 1, 0)  # type: ignore[assignment]
        return val

    def verifier(self, b: _Branches, st: ZState, c: z3.ExprRef) -> None:
        """The verifier's check at the certificate's own profile (ASM-VERIFIER-ORDER), refusals keep st."""
        b.refuse(st.now >= st.expiry[c], Reason.CERT_EXPIRED, st)
        b.refuse(st.status[c] == REVOKED, Reason.CERT_REVOKED, st)
        b.refuse(st.status[c] == SUSPENDED, Reason.CERT_SUSPENDED, st)

    # --- the relation --------------------------------------------------------------------------------

    def effect(self, inst: Instance, st: ZState, a: Params) -> Effect:
        """The outcome code and post-state of one instance, seeded bug included."""
        code, post = _RULES[inst.action](self, inst, st, a)
        if self.bug is not None:
            post = BUG_MUTATIONS[self.bug](self, inst, st, a, code, post)
        return code, post

    def param_ok(self, inst: Instance, st: ZState, a: Params) -> z3.BoolRef:
        """The parameters name existing persons and phones (malformed actions are not steps)."""
        conds = []
        if "person" in inst.params:
            conds.append(self.dom.valid("person", a.person))
        if "to" in inst.params:
            conds.append(self.dom.valid("person", a.to))
        if "phone" in inst.params:
            conds.append(self.dom.valid("phone", a.phone))
        for n in ("pin_a", "pin_b"):
            if n in inst.params:
                conds.append(getattr(a, n) >= 0)
        return z3.And(True, *conds)


# --- the rules, in the spec's guard order --------------------------------------------------------------

RuleEnc = Callable[[Encoder, Instance, ZState, Params], Effect]
_RULES: dict[type[A.Action], RuleEnc] = {}


def _rule(action: type[A.Action]) -> Callable[[RuleEnc], RuleEnc]:
    def wrap(fn: RuleEnc) -> RuleEnc:
        _RULES[action] = fn
        return fn

    return wrap


@_rule(A.IssueCardCertificate)
def _issue_card(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k = inst.kind
    assert k is not None
    b = _Branches(st)
    old = st.card_of(k)[a.person]
    s1 = e.revoke_one(st, old, REASON_INDEX[RevocationReason.SUPERSEDED], when=old != 0)
    s2 = e.issue_card(s1, a.person, k, a.expiry)
    return b.accept(e.sweep(s2, s2.now))


def _revoke_card(e: Encoder, st: ZState, p: z3.ExprRef, k: int, reason: RevocationReason) -> Effect:
    b = _Branches(st)
    c = st.card_of(k)[p]
    b.refuse(z3.Or(c == 0, st.status[c] == REVOKED), Reason.NOTHING_TO_REVOKE)
    s1 = e.revoke_one(st, c, REASON_INDEX[reason])
    return b.accept(e.sweep(s1, s1.now))


@_rule(A.RevokeCardCertificate)
def _revoke_card_rule(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    assert inst.kind is not None
    return _revoke_card(e, st, a.person, inst.kind, RevocationReason.USER_REQUEST)


@_rule(A.ChangePersonalData)
def _change_data(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    return _revoke_card(e, st, a.person, SIG, RevocationReason.DATA_CHANGE)


@_rule(A.ReportCardLost)
def _card_lost(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p = a.person
    cs = [(st.card_of(k)[p], z3.And(st.card_of(k)[p] != 0, e.live(st, st.card_of(k)[p]))) for k in (SIG, AUTH)]
    b.refuse(z3.Not(z3.Or(*[ok for _, ok in cs])), Reason.NO_CERTIFICATE)

    def is_card(s: z3.ArithRef) -> z3.BoolRef:
        return z3.Or(*[z3.And(ok, s == c) for c, ok in cs])

    def linked(s: z3.ArithRef) -> z3.BoolRef:
        cs, ca = e.followed(st, s)
        return z3.And(e.live_phone_of(st, p, s), z3.Or(is_card(cs), is_card(ca)))

    return b.accept(e.hold_where(st, lambda s: z3.Or(is_card(s), linked(s)), "hold_card"))


@_rule(A.CardFound)
def _card_found(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p = a.person
    held = {k: z3.And(st.card_of(k)[p] != 0, st.hold_card[st.card_of(k)[p]], st.status[st.card_of(k)[p]] == SUSPENDED) for k in (SIG, AUTH)}
    b.refuse(z3.Not(z3.Or(held[SIG], held[AUTH])), Reason.NOTHING_SUSPENDED)
    c0, c1 = st.card0[p], st.card1[p]
    s1 = e.revoke_one(st, c0, REASON_INDEX[RevocationReason.SUPERSEDED_AFTER_HOLD], when=held[SIG])
    # ASM-CARD-FOUND: re-issued with its expiry (card_found_fresh_expiry: a fresh one), unless that passed on hold.
    s2 = e.issue_card(s1, p, SIG, a.expiry if e.v.card_found_fresh_expiry else st.expiry[c0])
    s3 = merge([(z3.And(held[SIG], st.expiry[c0] > st.now), s2), (held[SIG], s1)], st)
    s4 = e.release_where(s3, lambda s: z3.And(held[AUTH], s == c1), "hold_card")
    return b.accept(s4)


@_rule(A.InstallApp)
def _install(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    ph = a.phone
    return b.accept(
        st.set(
            fresh=st.fresh + 1,
            token=z3.Store(st.token, ph, st.fresh),
            ready=z3.Store(st.ready, ph, False),
            os_auth=z3.Store(st.os_auth, ph, False),
            held0=z3.Store(st.held0, ph, 0),
            held1=z3.Store(st.held1, ph, 0),
        )
    )


@_rule(A.UninstallApp)
def _uninstall(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    ph = a.phone
    b.refuse(st.token[ph] == 0, Reason.APP_NOT_INSTALLED)
    return b.accept(
        st.set(
            token=z3.Store(st.token, ph, 0),
            ready=z3.Store(st.ready, ph, False),
            os_auth=z3.Store(st.os_auth, ph, False),
            held0=z3.Store(st.held0, ph, 0),
            held1=z3.Store(st.held1, ph, 0),
        )
    )


@_rule(A.PrepareApplet)
def _prepare(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    ph = a.phone
    e.phone_guards(b, st, ph)
    b.refuse(z3.Not(e.eligible(ph)), Reason.DEVICE_NOT_ELIGIBLE)
    s1 = e.reset_se(st.set(ready=z3.Store(st.ready, ph, True)), ph, applet=True)
    return b.accept(s1)


@_rule(A.Apply)
def _apply(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p, ph = a.person, a.phone
    b.refuse(st.holder[ph] != p, Reason.NOT_PHONE_HOLDER)
    e.phone_guards(b, st, ph)
    b.refuse(z3.Not(e.eligible(ph)), Reason.DEVICE_NOT_ELIGIBLE)
    b.refuse(z3.Not(st.ready[ph]), Reason.APPLET_NOT_READY)
    b.refuse(z3.Not(z3.Or(a.k0, a.k1)), Reason.NO_KIND_SELECTED)
    b.refuse(z3.Or(z3.And(a.k1, z3.Not(a.wf_b)), z3.And(a.k0, z3.Not(a.wf_a))), Reason.PIN_FORMAT_INVALID)
    e.card_signature_guard(b, st, p, a.sigok)
    e.card_auth_guard(b, st, p, a.k0, a.k1)

    def other(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(e.live_phone_of(st, p, s), st.se[s] != ph)

    def same(s: z3.ArithRef) -> z3.BoolRef:
        kinds = z3.Or(z3.And(st.kind[s] == SIG, a.k0), z3.And(st.kind[s] == AUTH, a.k1))
        return z3.And(e.live_phone_of(st, p, s), st.se[s] == ph, kinds)

    b.refuse(z3.And(z3.Not(a.consent), e.dom.exists(("serial",), lambda s: z3.Or(other(s), same(s)))), Reason.CONSENT_REQUIRED)
    s1 = e.revoke_where(st, other, REASON_INDEX[RevocationReason.DEVICE_STOPPED])
    s2 = e.revoke_where(s1, same, REASON_INDEX[RevocationReason.SUPERSEDED])
    s3 = e.request_deletion(s2, st, other)
    s4 = e.start_application(s3, p, ph, a.k0, a.k1, {SIG: a.pin_a, AUTH: a.pin_b}, a.due)
    return b.accept(s4)


@_rule(A.DeliverIssuancePush)
def _issuance_push(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p = a.person
    ph = st.app_phone[p]
    b.refuse(z3.Not(st.app[p]), Reason.NO_APPLICATION)
    b.refuse(st.now < st.app_due[p], Reason.PUSH_NOT_DUE)
    b.refuse(st.token[ph] != st.app_token[p], Reason.PUSH_TOKEN_INVALID)
    b.refuse(z3.Not(st.push[ph]), Reason.PUSH_DISABLED)
    b.refuse(z3.Not(st.online[ph]), Reason.DEVICE_OFFLINE)
    return b.accept(st.set(app_notified=z3.Store(st.app_notified, p, True)))


def _new_phone_cert(e: Encoder, st: ZState, pre: ZState, p: Any, ph: Any, k: int, key: Any, serial: Any, c: Any, when: Any) -> ZState:
    """Write one phone certificate record and its slot (ISS-5, ISS-6, LNK-2, VAL-1, PIN-2)."""
    sig, auth = e.follows(k)  # ASM-PHONE-LINKAGE; it expires with the earliest it follows (VAL-1)
    ca = pre.card1[p]
    es, ea = pre.expiry[c], pre.expiry[ca]
    expiry = es if not auth else ea if not sig else z3.If(es <= ea, es, ea)
    vals: dict[str, Any] = {
        "rec": REC_PHONE,
        "person": p,
        "kind": k,
        "issued": pre.now,
        "expiry": expiry,
        "status": ACTIVE,
        "se": ph,
        "card": c,
        "fol_s": c if sig else 0,
        "fol_a": ca if auth else 0,
        "key": key,
        "commit": pre.app_commit[p],
        "presented": pre.nonce[ph],
        "ptoken": pre.token[ph],
    }
    vals.update({f: default_value(f) for f in _NEW_RECORD_DEFAULTS})
    changes = {n: _store(st.f[n], serial, z3.IntVal(v) if isinstance(v, int) else v, when) for n, v in vals.items()}
    slot = {"present": z3.BoolVal(True), "person": p, "key": key, "cert": serial, "pst": z3.IntVal(PIN_TEMP), "pin": z3.IntVal(0)}
    slot["tries"] = z3.IntVal(e.max_tries(k))
    changes.update({f"s{k}_{n}": _store(st.slot(k, n), ph, v, when) for n, v in slot.items()})
    return st.set(**changes)


@_rule(A.Register)
def _register(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p, ph = a.person, a.phone
    b.refuse(st.holder[ph] != p, Reason.NOT_PHONE_HOLDER)
    e.phone_guards(b, st, ph)
    b.refuse(z3.Not(st.app[p]), Reason.NO_APPLICATION)
    b.refuse(z3.Not(st.app_notified[p]), Reason.NOT_NOTIFIED)
    c = st.card0[p]
    b.refuse(z3.Or(c == 0, c != st.app_card[p], z3.Not(e.in_force(st, c))), Reason.CARD_SIGNING_CERT_NOT_VALID)
    e.card_auth_guard(b, st, p, st.app_k0[p], st.app_k1[p])
    b.refuse(z3.Not(st.applet[ph]), Reason.APPLET_NOT_READY)
    b.refuse(z3.Or(st.nonce[ph] == 0, st.nonce[ph] != st.app_commit[p]), Reason.COMMITMENT_MISMATCH)
    k0, k1 = st.app_k0[p], st.app_k1[p]
    f = st.fresh
    # Kinds in the spec's order ("auth" sorts before "signing"): a key, then a serial, each.
    sig_base = z3.If(k1, f + 2, f)
    s1 = _new_phone_cert(e, st, st, p, ph, AUTH, f, f + 1, c, k1)
    s2 = _new_phone_cert(e, s1, st, p, ph, SIG, sig_base, sig_base + 1, c, k0)
    used = z3.If(k0, z3.IntVal(2), z3.IntVal(0)) + z3.If(k1, z3.IntVal(2), z3.IntVal(0))
    s3 = s2.set(
        fresh=f + used,
        nonce=z3.Store(s2.nonce, ph, 0),
        linkage=z3.Store(s2.linkage, c, ph),
        **{n: z3.Store(s2.f[n], p, default_value(n)) for n in FIELDS if FIELDS[n][0] == "person" and n.startswith("app")},
    )
    return b.accept(s3)


@_rule(A.SetPin)
def _set_pin(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k = inst.kind
    assert k is not None
    b = _Branches(st)
    ph = a.phone
    e.phone_guards(b, st, ph)
    b.refuse(z3.Not(st.slot(k, "present")[ph]), Reason.NO_CERTIFICATE)
    held = st.held(k)[ph]
    b.refuse(z3.Or(st.slot(k, "pst")[ph] != PIN_TEMP, held == 0), Reason.NO_PIN_PENDING)
    return b.accept(
        st.set(
            **{
                f"s{k}_pin": z3.Store(st.slot(k, "pin"), ph, held),
                f"s{k}_pst": z3.Store(st.slot(k, "pst"), ph, PIN_SET),
                f"s{k}_tries": z3.Store(st.slot(k, "tries"), ph, e.max_tries(k)),
                f"held{k}": z3.Store(st.held(k), ph, 0),
            }
        )
    )


@_rule(A.UnlockScreen)
def _unlock(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    return b.accept(st.set(lpa=z3.Store(st.lpa, a.phone, st.now), has_lpa=z3.Store(st.has_lpa, a.phone, True)))


@_rule(A.EnrollOsAuth)
def _enroll(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    ph = a.phone
    e.phone_guards(b, st, ph, online=False)
    b.refuse(z3.Not(st.slot(AUTH, "present")[ph]), Reason.NO_CERTIFICATE)
    b.refuse(z3.And(z3.Not(e.android11(ph)), z3.Not(e.bio3(ph))), Reason.OS_AUTH_NOT_ALLOWED)
    s1 = e.check_pin(b, st, ph, AUTH, a.pin_a)
    return b.accept(s1.set(os_auth=z3.Store(s1.os_auth, ph, True)))


def _use_key(e: Encoder, b: _Branches, inst: Instance, st: ZState, a: Params, k: int) -> Effect:
    ph = a.phone
    method = inst.method
    b.refuse(z3.Not(st.slot(k, "present")[ph]), Reason.NO_CERTIFICATE)
    if method is AuthMethod.PIN:
        s1 = e.check_pin(b, st, ph, k, a.pin_a)
    else:
        pst = st.slot(k, "pst")[ph]
        b.refuse(pst == PIN_TEMP, Reason.PIN_NOT_SET)
        b.refuse(pst == PIN_LOCKED, Reason.PIN_LOCKED)
        if k == SIG:
            b.refuse(z3.BoolVal(True), Reason.OS_AUTH_NOT_ALLOWED)
        elif method is AuthMethod.OS_CREDENTIAL:
            b.refuse(z3.Not(e.android11(ph)), Reason.OS_AUTH_NOT_ALLOWED)
        if method is AuthMethod.BIOMETRIC:
            b.refuse(z3.Not(e.bio3(ph)), Reason.BIOMETRIC_NOT_CLASS3)
        b.refuse(z3.Not(st.os_auth[ph]), Reason.OS_AUTH_NOT_ENROLLED)
        s1 = st
        if method is AuthMethod.OS_CREDENTIAL:
            s1 = st.set(lpa=z3.Store(st.lpa, ph, st.now), has_lpa=z3.Store(st.has_lpa, ph, True))
        else:
            b.refuse(z3.Or(z3.Not(st.has_lpa[ph]), st.now - st.lpa[ph] > PRIMARY_AUTH_INTERVAL), Reason.PRIMARY_AUTH_REQUIRED)
        s1 = s1.set(**{f"s{k}_tries": z3.Store(s1.slot(k, "tries"), ph, e.max_tries(k))})
    e.verifier(b, s1, st.slot(k, "cert")[ph])
    return b.accept(s1)


@_rule(A.Authenticate)
def _authenticate(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    e.phone_guards(b, st, a.phone)
    b.refuse(z3.Not(a.flag), Reason.ACCESS_DENIED)
    b.refuse(z3.Not(a.sp_white), Reason.SP_NOT_WHITELISTED)
    return _use_key(e, b, inst, st, a, AUTH)


@_rule(A.Sign)
def _sign(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    e.phone_guards(b, st, a.phone)
    b.refuse(z3.Not(a.flag), Reason.ACCESS_DENIED)
    b.refuse(z3.Not(a.sp_white), Reason.SP_NOT_WHITELISTED)
    b.refuse(z3.And(a.sp_private, z3.Not(a.sp_approved)), Reason.SP_NOT_APPROVED)
    return _use_key(e, b, inst, st, a, SIG)


@_rule(A.UseCard)
def _use_card(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k = inst.kind
    assert k is not None
    b = _Branches(st)
    if k == SIG:
        b.refuse(z3.And(a.sp_private, z3.Not(a.sp_approved)), Reason.SP_NOT_APPROVED)
    c = st.card_of(k)[a.person]
    b.refuse(c == 0, Reason.NO_CERTIFICATE)
    e.verifier(b, st, c)
    return b.accept(st)


@_rule(A.VerifyCertificate)
def _verify_certificate(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k, rec = inst.kind, inst.profile
    assert k is not None and rec is not None
    b = _Branches(st)
    # flag: the verifier accepts phone certificates (else card ones); the profile is read first (ASM-RELYING-PARTY-ORDER).
    b.refuse(a.flag if rec == REC_CARD else z3.Not(a.flag), Reason.WRONG_PROFILE)
    c = e.nth_issued(st, a.person, k, rec, a.index)
    b.refuse(c == 0, Reason.UNKNOWN_CERTIFICATE)
    e.verifier(b, st, c)
    return b.accept(st)


@_rule(A.ChangePin)
def _change_pin(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k = inst.kind
    assert k is not None
    b = _Branches(st)
    ph = a.phone
    e.phone_guards(b, st, ph, online=False)
    b.refuse(z3.Not(st.slot(k, "present")[ph]), Reason.NO_CERTIFICATE)
    b.refuse(z3.Not(a.wf_b), Reason.PIN_FORMAT_INVALID)
    s1 = e.check_pin(b, st, ph, k, a.pin_a)
    return b.accept(s1.set(**{f"s{k}_pin": z3.Store(s1.slot(k, "pin"), ph, a.pin_b)}))


@_rule(A.InitialisePin)
def _initialise_pin(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k = inst.kind
    assert k is not None
    b = _Branches(st)
    p, ph = a.person, a.phone
    b.refuse(st.holder[ph] != p, Reason.NOT_PHONE_HOLDER)
    e.phone_guards(b, st, ph)
    b.refuse(z3.Not(a.wf_a), Reason.PIN_FORMAT_INVALID)
    e.card_signature_guard(b, st, p, a.sigok)

    def live_k(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(e.live_phone_of(st, p, s), st.kind[s] == k)

    b.refuse(z3.Not(e.dom.exists(("serial",), live_k)), Reason.PHONE_CERT_NOT_FOUND)
    b.refuse(st.linkage[st.card0[p]] != ph, Reason.SE_ID_MISMATCH)
    b.refuse(z3.Or(z3.Not(st.slot(k, "present")[ph]), z3.Not(live_k(st.slot(k, "cert")[ph]))), Reason.PHONE_CERT_NOT_FOUND)
    return b.accept(
        st.set(
            **{
                f"s{k}_pst": z3.Store(st.slot(k, "pst"), ph, PIN_TEMP),
                f"s{k}_pin": z3.Store(st.slot(k, "pin"), ph, 0),
                f"s{k}_tries": z3.Store(st.slot(k, "tries"), ph, e.max_tries(k)),
                f"held{k}": z3.Store(st.held(k), ph, a.pin_a),
            }
        )
    )


@_rule(A.RevokeFromPhone)
def _revoke_from_phone(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    k = inst.kind
    assert k is not None
    b = _Branches(st)
    ph = a.phone
    e.phone_guards(b, st, ph)
    s1 = e.check_pin(b, st, ph, k, a.pin_a)
    c = st.slot(k, "cert")[ph]
    s2 = e.revoke_one(s1, c, REASON_INDEX[RevocationReason.DEVICE_STOPPED], when=e.live(st, c))
    s3 = s2
    for j in (SIG, AUTH):  # DEL-1: only slots holding that certificate
        s3 = e.clear_slot(s3, ph, j, when=z3.And(st.slot(j, "present")[ph], st.slot(j, "cert")[ph] == c))
    return b.accept(s3)


@_rule(A.RevokeWithCard)
def _revoke_with_card(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p = a.person
    e.card_signature_guard(b, st, p, a.sigok)
    b.refuse(z3.Not(e.dom.exists(("serial",), lambda s: e.live_phone_of(st, p, s))), Reason.NOTHING_TO_REVOKE)
    s1 = e.revoke_where(st, lambda s: e.live_phone_of(st, p, s), REASON_INDEX[RevocationReason.DEVICE_STOPPED])
    return b.accept(e.request_deletion(s1, st, lambda s: e.live_phone_of(st, p, s)))


@_rule(A.ReportPhoneLost)
def _phone_lost(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p = a.person
    b.refuse(z3.Not(e.dom.exists(("serial",), lambda s: e.live_phone_of(st, p, s))), Reason.PHONE_CERT_NOT_FOUND)
    return b.accept(e.hold_where(st, lambda s: e.live_phone_of(st, p, s), "hold_phone"))


@_rule(A.PhoneFound)
def _phone_found(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p = a.person

    def held(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(e.live_phone_of(st, p, s), st.hold_phone[s])

    b.refuse(z3.Not(e.dom.exists(("serial",), held)), Reason.NOTHING_SUSPENDED)
    s1 = e.release_where(st, lambda s: z3.And(held(s), st.kind[s] == AUTH), "hold_phone")
    s2 = e.revoke_where(s1, lambda s: z3.And(held(s), st.kind[s] == SIG), REASON_INDEX[RevocationReason.SUSPENDED_SIGNING])
    return b.accept(s2)


@_rule(A.ResumeFromApp)
def _resume(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    p, ph = a.person, a.phone
    b.refuse(st.holder[ph] != p, Reason.NOT_PHONE_HOLDER)
    e.phone_guards(b, st, ph)
    e.card_signature_guard(b, st, p, a.sigok)

    c = st.card0[p]

    def continues(s: z3.ArithRef) -> z3.BoolRef:
        # ASM-CARD-FOUND: a followed card signing certificate was re-issued on the card's finding (same expiry, or with
        # card_found_fresh_expiry no earlier); a followed card auth certificate is in force.
        cs, ca = e.followed(st, s)
        later = st.expiry[c] >= st.expiry[cs] if e.v.card_found_fresh_expiry else st.expiry[c] == st.expiry[cs]
        reissued = z3.And(st.reason[cs] == REASON_INDEX[RevocationReason.SUPERSEDED_AFTER_HOLD], later)
        return z3.And(z3.Or(cs == 0, reissued), z3.Or(ca == 0, e.in_force(st, ca)))

    def held(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(e.live_phone_of(st, p, s), st.hold_card[s], continues(s))

    def signing(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(held(s), st.kind[s] == SIG)

    b.refuse(z3.Not(e.dom.exists(("serial",), held)), Reason.NOTHING_SUSPENDED)
    b.refuse(e.dom.exists(("serial",), lambda s: z3.And(held(s), st.se[s] != ph)), Reason.SE_ID_MISMATCH)
    any_sig = e.dom.exists(("serial",), signing)
    b.refuse(z3.And(any_sig, z3.Not(a.wf_a)), Reason.PIN_FORMAT_INVALID)
    b.refuse(z3.And(any_sig, z3.Not(st.applet[ph])), Reason.APPLET_NOT_READY)

    def auth(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(held(s), st.kind[s] == AUTH)

    s1 = e.release_where(st, auth, "hold_card")
    # ASM-CARD-FOUND: re-linked to the new card signing certificate, keeping its own expiry.
    s1 = s1.set(card=_lam(s1.card, auth, lambda s: c), fol_s=_lam(s1.fol_s, lambda s: z3.And(auth(s), st.fol_s[s] != 0), lambda s: c))
    s2 = e.revoke_where(s1, signing, REASON_INDEX[RevocationReason.SUSPENDED_SIGNING])
    s3 = s2.set(linkage=z3.Store(s2.linkage, c, ph))
    s4 = e.start_application(s3, p, ph, z3.BoolVal(True), z3.BoolVal(False), {SIG: a.pin_a}, a.due)
    return b.accept(merge([(any_sig, s4)], s3))


@_rule(A.DeliverDeletionPush)
def _deletion_push(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    ph = a.phone

    def reachable(p: z3.ArithRef) -> z3.BoolRef:
        return z3.And(st.del_[ph, p], st.del_token[ph, p] != 0, st.del_token[ph, p] == st.token[ph])

    b.refuse(z3.Not(e.dom.exists(("person",), lambda p: st.del_[ph, p])), Reason.NO_PENDING_DELETION)
    b.refuse(z3.Not(e.dom.exists(("person",), reachable)), Reason.PUSH_TOKEN_INVALID)
    b.refuse(z3.Not(st.push[ph]), Reason.PUSH_DISABLED)
    b.refuse(z3.Not(st.online[ph]), Reason.DEVICE_OFFLINE)
    s1 = st
    for k in (SIG, AUTH):
        cert = st.slot(k, "cert")[ph]
        gone = z3.And(
            st.slot(k, "present")[ph], e.dom.exists(("person",), lambda p, cert=cert: z3.And(reachable(p), st.del_ser[ph, p, cert]))
        )  # type: ignore[misc]
        s1 = e.clear_slot(s1, ph, k, when=gone)
    q, p, s = z3.Int(f"q!{next(_counter)}"), z3.Int(f"p!{next(_counter)}"), z3.Int(f"s!{next(_counter)}")
    drop = z3.And(q == ph, reachable(p))
    s2 = s1.set(
        del_=z3.Lambda([q, p], z3.If(drop, False, s1.del_[q, p])),
        del_token=z3.Lambda([q, p], z3.If(drop, 0, s1.del_token[q, p])),
        del_deadline=z3.Lambda([q, p], z3.If(drop, 0, s1.del_deadline[q, p])),
        del_ser=z3.Lambda([q, p, s], z3.If(drop, False, s1.del_ser[q, p, s])),
    )
    if e.v.remote_deletion_removes_applet:  # MCH-4 variant, via the SEI-TSM
        empty = z3.And(z3.Not(s2.s0_present[ph]), z3.Not(s2.s1_present[ph]))
        s2 = e.reset_se(s2.set(ready=_store(s2.ready, ph, z3.BoolVal(False), empty)), ph, applet=False, when=empty)
    return b.accept(s2)


@_rule(A.SetOnline)
def _set_online(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    b.refuse(st.online[a.phone] == a.flag, Reason.ALREADY_IN_THAT_STATE)
    return b.accept(st.set(online=z3.Store(st.online, a.phone, a.flag)))


@_rule(A.SetPushEnabled)
def _set_push(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    b.refuse(st.push[a.phone] == a.flag, Reason.ALREADY_IN_THAT_STATE)
    return b.accept(st.set(push=z3.Store(st.push, a.phone, a.flag)))


@_rule(A.FactoryReset)
def _factory_reset(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    ph = a.phone
    s1 = st.set(
        token=z3.Store(st.token, ph, 0),
        ready=z3.Store(st.ready, ph, False),
        os_auth=z3.Store(st.os_auth, ph, False),
        has_lpa=z3.Store(st.has_lpa, ph, False),
        lpa=z3.Store(st.lpa, ph, 0),
        held0=z3.Store(st.held0, ph, 0),
        held1=z3.Store(st.held1, ph, 0),
        push=z3.Store(st.push, ph, True),
    )
    if e.v.factory_reset_wipes_se:  # DEL-2 variant
        s1 = e.reset_se(s1, ph, applet=False)
    return b.accept(s1)


@_rule(A.TransferPhone)
def _transfer(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    b.refuse(st.holder[a.phone] == a.to, Reason.ALREADY_IN_THAT_STATE)
    return b.accept(st.set(holder=z3.Store(st.holder, a.phone, a.to)))


@_rule(A.AdvanceTime)
def _advance(e: Encoder, inst: Instance, st: ZState, a: Params) -> Effect:
    b = _Branches(st)
    b.refuse(a.minutes < 1, Reason.INVALID_TIME_STEP)
    target = st.now + a.minutes
    s1 = e.sweep(st, target)
    q, p, s = z3.Int(f"q!{next(_counter)}"), z3.Int(f"p!{next(_counter)}"), z3.Int(f"s!{next(_counter)}")
    gone = z3.And(s1.del_[q, p], s1.del_deadline[q, p] <= target)  # MCH-2/MCH-3: the deletion failed
    s2 = s1.set(
        now=target,
        del_=z3.Lambda([q, p], z3.If(gone, False, s1.del_[q, p])),
        del_token=z3.Lambda([q, p], z3.If(gone, 0, s1.del_token[q, p])),
        del_deadline=z3.Lambda([q, p], z3.If(gone, 0, s1.del_deadline[q, p])),
        del_ser=z3.Lambda([q, p, s], z3.If(gone, False, s1.del_ser[q, p, s])),
    )
    return b.accept(s2)


# --- instances -------------------------------------------------------------------------------------------

_P, _D = ("person",), ("phone",)


def _instances() -> tuple[Instance, ...]:
    out: list[Instance] = []
    kinds = ((SIG, "signing"), (AUTH, "auth"))
    for k, kn in kinds:
        out.append(Instance(f"IssueCardCertificate[{kn}]", A.IssueCardCertificate, k, params=(*_P, "expiry")))
        out.append(Instance(f"RevokeCardCertificate[{kn}]", A.RevokeCardCertificate, k, params=_P))
    out += [
        Instance("ChangePersonalData", A.ChangePersonalData, params=_P),
        Instance("ReportCardLost", A.ReportCardLost, params=_P),
        Instance("CardFound", A.CardFound, params=(*_P, "expiry")),
        Instance("InstallApp", A.InstallApp, params=_D),
        Instance("UninstallApp", A.UninstallApp, params=_D),
        Instance("PrepareApplet", A.PrepareApplet, params=_D),
        Instance(
            "Apply",
            A.Apply,
            params=("person", "phone", "k0", "k1", "pin_a", "wf_a", "pin_b", "wf_b", "consent", "sigok", "due"),
            pin_kinds=(("pin_a", SIG), ("pin_b", AUTH)),
        ),
        Instance("DeliverIssuancePush", A.DeliverIssuancePush, params=_P),
        Instance("Register", A.Register, params=("person", "phone")),
        Instance("UnlockScreen", A.UnlockScreen, params=_D),
        Instance("EnrollOsAuth", A.EnrollOsAuth, params=("phone", "pin_a"), pin_kinds=(("pin_a", AUTH),)),
    ]
    for k, kn in kinds:
        out.append(Instance(f"SetPin[{kn}]", A.SetPin, k, params=_D))
    for m in AuthMethod:
        out.append(
            Instance(
                f"Authenticate[{m.value}]",
                A.Authenticate,
                AUTH,
                m,
                params=("phone", "pin_a", "flag", "sp_white"),
                pin_kinds=(("pin_a", AUTH),),
            )
        )
        out.append(
            Instance(
                f"Sign[{m.value}]",
                A.Sign,
                SIG,
                m,
                params=("phone", "pin_a", "flag", "sp_white", "sp_private", "sp_approved"),
                pin_kinds=(("pin_a", SIG),),
            )
        )
    for k, kn in kinds:
        out.append(Instance(f"UseCard[{kn}]", A.UseCard, k, params=("person", "sp_private", "sp_approved")))
        for rec, pn in ((REC_CARD, "card"), (REC_PHONE, "phone")):
            out.append(Instance(f"VerifyCertificate[{kn},{pn}]", A.VerifyCertificate, k, params=("person", "index", "flag"), profile=rec))
        out.append(
            Instance(f"ChangePin[{kn}]", A.ChangePin, k, params=("phone", "pin_a", "pin_b", "wf_b"), pin_kinds=(("pin_a", k), ("pin_b", k)))
        )
        out.append(
            Instance(
                f"InitialisePin[{kn}]", A.InitialisePin, k, params=("person", "phone", "pin_a", "wf_a", "sigok"), pin_kinds=(("pin_a", k),)
            )
        )
        out.append(Instance(f"RevokeFromPhone[{kn}]", A.RevokeFromPhone, k, params=("phone", "pin_a"), pin_kinds=(("pin_a", k),)))
    out += [
        Instance("RevokeWithCard", A.RevokeWithCard, params=("person", "sigok")),
        Instance("ReportPhoneLost", A.ReportPhoneLost, params=_P),
        Instance("PhoneFound", A.PhoneFound, params=_P),
        Instance(
            "ResumeFromApp", A.ResumeFromApp, params=("person", "phone", "pin_a", "wf_a", "sigok", "due"), pin_kinds=(("pin_a", SIG),)
        ),
        Instance("DeliverDeletionPush", A.DeliverDeletionPush, params=_D),
        Instance("SetOnline", A.SetOnline, params=("phone", "flag")),
        Instance("SetPushEnabled", A.SetPushEnabled, params=("phone", "flag")),
        Instance("FactoryReset", A.FactoryReset, params=_D),
        Instance("TransferPhone", A.TransferPhone, params=("phone", "to")),
        Instance("AdvanceTime", A.AdvanceTime, params=("minutes",)),
    ]
    return tuple(out)


INSTANCES: tuple[Instance, ...] = _instances()
"""Every disjunct of the transition relation; their action types cover every spec action."""


def instance_of(action: A.Action) -> Instance:
    """The instance a concrete spec action belongs to."""
    kind = getattr(action, "kind", None)
    method = getattr(action, "method", None)
    profile = getattr(action, "profile", None)
    rec = None if profile is None else (REC_CARD if profile is Profile.CARD else REC_PHONE)
    for inst in INSTANCES:
        same_kind = inst.kind is None or inst.kind_enum is kind or inst.action in (A.Authenticate, A.Sign)
        same_profile = inst.profile is None or inst.profile == rec
        if inst.action is type(action) and same_kind and same_profile and (inst.method is None or inst.method is method):
            return inst
    raise ValueError(f"no instance for {action}")


# --- seeded bugs as encoding mutations (mirroring properties/seeded_bugs.py) -------------------------------

Mutation = Callable[[Encoder, Instance, ZState, Params, z3.ArithRef, ZState], ZState]


def _accepted(inst: Instance, action: type[A.Action], code: z3.ArithRef) -> z3.BoolRef | None:
    if inst.action is not action:
        return None
    return code == CODE_INDEX["ACCEPTED"]


def _m_card_found_resumes_signing(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> ZState:
    ok = _accepted(inst, A.CardFound, code)
    if ok is None:
        return post

    def hit(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(ok, pre.rec[s] == REC_CARD, pre.kind[s] == SIG, pre.status[s] == SUSPENDED)

    # The faulty stepper writes back the pre-state record, resumed and without holds.
    return post.set(
        status=_lam(post.status, hit, lambda s: z3.IntVal(ACTIVE)),
        hold_phone=_lam(post.hold_phone, hit, lambda s: z3.BoolVal(False)),
        hold_card=_lam(post.hold_card, hit, lambda s: z3.BoolVal(False)),
        has_rat=_lam(post.has_rat, hit, lambda s: pre.has_rat[s]),
        rat=_lam(post.rat, hit, lambda s: pre.rat[s]),
        reason=_lam(post.reason, hit, lambda s: pre.reason[s]),
    )


def _m_renewal_unrevokes(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> ZState:
    ok = _accepted(inst, A.IssueCardCertificate, code)
    if ok is None:
        return post

    def hit(s: z3.ArithRef) -> z3.BoolRef:
        dc = REASON_INDEX[RevocationReason.DATA_CHANGE]
        return z3.And(ok, post.rec[s] == REC_CARD, post.person[s] == a.person, post.kind[s] == inst.kind, post.reason[s] == dc)

    return post.set(
        status=_lam(post.status, hit, lambda s: z3.IntVal(ACTIVE)),
        has_rat=_lam(post.has_rat, hit, lambda s: z3.BoolVal(False)),
        rat=_lam(post.rat, hit, lambda s: z3.IntVal(0)),
        reason=_lam(post.reason, hit, lambda s: z3.IntVal(0)),
    )


def _m_phone_expiry_a_day_late(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> ZState:
    ok = _accepted(inst, A.Register, code)
    if ok is None:
        return post
    return post.set(
        expiry=_lam(post.expiry, lambda s: z3.And(ok, pre.rec[s] != REC_PHONE, post.rec[s] == REC_PHONE), lambda s: post.expiry[s] + DAY)
    )


def _m_card_hold_skips_phone(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> ZState:
    ok = _accepted(inst, A.ReportCardLost, code)
    if ok is None:
        return post

    def hit(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(ok, post.rec[s] == REC_PHONE, post.hold_card[s])

    return post.set(
        hold_card=_lam(post.hold_card, hit, lambda s: z3.BoolVal(False)),
        status=_lam(post.status, hit, lambda s: z3.If(post.hold_phone[s], z3.IntVal(SUSPENDED), z3.IntVal(ACTIVE))),
    )


def _m_no_cascade(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> ZState:
    cascade = REASON_INDEX[RevocationReason.CASCADE]

    def hit(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(pre.rec[s] == REC_PHONE, post.reason[s] == cascade, pre.reason[s] != cascade)

    return post.set(
        status=_lam(post.status, hit, lambda s: z3.IntVal(ACTIVE)),
        has_rat=_lam(post.has_rat, hit, lambda s: z3.BoolVal(False)),
        rat=_lam(post.rat, hit, lambda s: z3.IntVal(0)),
        reason=_lam(post.reason, hit, lambda s: z3.IntVal(0)),
    )


def _m_pin_counter_broken(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> ZState:
    ok = _accepted(inst, A.Register, code)
    if ok is None:
        return post
    ph = a.phone
    changes = {}
    for k in (SIG, AUTH):
        temp = z3.And(ok, post.slot(k, "present")[ph], post.slot(k, "pst")[ph] == PIN_TEMP)
        changes[f"s{k}_pst"] = _store(post.slot(k, "pst"), ph, z3.IntVal(PIN_SET), temp)
        changes[f"s{k}_tries"] = _store(post.slot(k, "tries"), ph, z3.IntVal(0), temp)
    return post.set(**changes)


BUG_MUTATIONS: dict[str, Mutation] = {
    "card_found_resumes_signing": _m_card_found_resumes_signing,
    "renewal_unrevokes": _m_renewal_unrevokes,
    "phone_expiry_a_day_late": _m_phone_expiry_a_day_late,
    "card_hold_skips_phone": _m_card_hold_skips_phone,
    "no_cascade": _m_no_cascade,
    "pin_counter_broken": _m_pin_counter_broken,
}
"""The seeded bugs of `properties/seeded_bugs.py`, as mutations of the encoded post-state."""


# --- exact readings of the world's calendar (used by BMC) ---------------------------------------------------


def push_due_term(t: z3.ArithRef) -> z3.ArithRef:
    """mjpki.spec.clock.push_due as integer arithmetic (ASM-PUSH-TIMING)."""
    m = t % DAY
    start = t - m
    return z3.If(
        z3.And(m >= PUSH_WINDOW_OPEN, m < PUSH_WINDOW_CLOSE),
        t + PUSH_DELAY,
        z3.If(m < PUSH_WINDOW_OPEN, start + PUSH_WINDOW_OPEN, start + DAY + PUSH_WINDOW_OPEN),
    )


@dataclass(frozen=True, slots=True)
class Piecewise:
    """A step function of time as (from, value) pieces, from a table computed by the spec's own clock."""

    pieces: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    def term(self, t: z3.ArithRef) -> z3.ArithRef:
        """The value at time t (t within the table's horizon)."""
        val: z3.ArithRef = z3.IntVal(self.pieces[0][1])
        for start, v in self.pieces[1:]:
            val = z3.If(t >= start, z3.IntVal(v), val)
        return val
