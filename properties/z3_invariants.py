"""The invariants of `properties/invariants.py` as Z3 formulas over the encoded state, and the lemmas that make them inductive.

Each state invariant reads the encoded state the way its Python twin reads an Observation;
each transition invariant reads (pre, instance, parameters, outcome code, post). The lemmas
are auxiliary facts the proof needs (fresh values are fresh, the current card serials name
card records, a pending application leaves room for what it asks...); they are proved
inductive together with the invariants, never assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import z3

from mjpki.properties.invariants import STATE_INVARIANTS, TRANSITION_INVARIANTS
from mjpki.properties.z3_encoding import (
    AUTH,
    CASCADING,
    CODE_INDEX,
    PIN_LOCKED,
    PIN_SET,
    PIN_TEMP,
    REC_CARD,
    REC_NONE,
    REC_PHONE,
    REVOKED,
    SIG,
    SUSPENDED,
    Encoder,
    Instance,
    Params,
    ZState,
)
from mjpki.spec import actions as A

__all__ = ["ZInvariant", "ZTransitionInvariant", "Z_STATE", "Z_TRANSITION", "LEMMAS", "init_formula"]

StateF = Callable[[Encoder, ZState], z3.BoolRef]
StepF = Callable[[Encoder, Instance, ZState, Params, z3.ArithRef, ZState], z3.BoolRef]


@dataclass(frozen=True, slots=True)
class ZInvariant:
    """A state formula with the name of the invariant (or lemma) it encodes."""

    name: str
    formula: StateF
    by_construction: bool = False
    """True where the encoding cannot represent a violation (said so in the report)."""


@dataclass(frozen=True, slots=True)
class ZTransitionInvariant:
    """A step formula with the name of the transition invariant it encodes."""

    name: str
    formula: StepF


KINDS = (SIG, AUTH)


def _phone(st: ZState, s: z3.ArithRef) -> z3.BoolRef:
    return st.rec[s] == REC_PHONE


# --- state invariants ------------------------------------------------------------------------------------


def _one_per_kind(e: Encoder, st: ZState) -> z3.BoolRef:
    return e.dom.forall(
        ("serial", "serial"),
        lambda s, t: z3.Implies(
            z3.And(s != t, _phone(st, s), _phone(st, t), st.person[s] == st.person[t], st.kind[s] == st.kind[t], e.live(st, s)),
            z3.Not(e.live(st, t)),
        ),
    )


def _one_se(e: Encoder, st: ZState) -> z3.BoolRef:
    return e.dom.forall(
        ("serial", "serial"),
        lambda s, t: z3.Implies(
            z3.And(_phone(st, s), _phone(st, t), st.person[s] == st.person[t], e.live(st, s), e.live(st, t)), st.se[s] == st.se[t]
        ),
    )


def _card_of(st: ZState, c: z3.ArithRef, s: z3.ArithRef, k: int) -> z3.BoolRef:
    """c names a card record of kind k of phone record s's person."""
    return z3.And(st.rec[c] == REC_CARD, st.kind[c] == k, st.person[c] == st.person[s])


def _linked(e: Encoder, st: ZState) -> z3.BoolRef:
    def ok(s: z3.ArithRef) -> z3.BoolRef:
        sig, auth = e.follows_term(st.kind[s])
        cs, ca = e.followed(st, s)
        return z3.Implies(
            _phone(st, s),
            z3.And(
                _card_of(st, st.card[s], s, SIG),
                z3.If(sig, cs == st.card[s], cs == 0),
                z3.If(auth, _card_of(st, ca, s, AUTH), ca == 0),
            ),
        )

    return e.dom.forall(("serial",), ok)


def _present(st: ZState, c: z3.ArithRef) -> z3.BoolRef:
    return z3.And(c != 0, st.rec[c] != REC_NONE)


def _expiry(e: Encoder, st: ZState) -> z3.BoolRef:
    def ok(s: z3.ArithRef) -> z3.BoolRef:
        cs, ca = e.followed(st, s)
        ps, pa = _present(st, cs), _present(st, ca)
        x = st.expiry[s]
        not_later = z3.And(z3.Implies(ps, x <= st.expiry[cs]), z3.Implies(pa, x <= st.expiry[ca]))
        exact = z3.And(not_later, z3.Or(z3.And(ps, x == st.expiry[cs]), z3.And(pa, x == st.expiry[ca])))
        if e.v.card_found_fresh_expiry:  # re-linked after a found card: never later (ASM-CARD-FOUND)
            relinked = z3.Or(*[z3.And(_present(st, c), st.kind[c] == SIG, st.issued[c] >= st.issued[s]) for c in (cs, ca)])
            exact = z3.Or(exact, z3.And(not_later, relinked))
        return z3.Implies(z3.And(_phone(st, s), z3.Or(ps, pa)), exact)

    return e.dom.forall(("serial",), ok)


def _unique(e: Encoder, st: ZState) -> z3.BoolRef:
    # Records are keyed by serial, so two records cannot share one; what keeps it so is that
    # the next fresh value is above every serial in use (a new record never lands on an old one).
    return e.dom.forall(("serial",), lambda s: z3.Implies(st.rec[s] != REC_NONE, s < st.fresh))


def _cascade(e: Encoder, st: ZState) -> z3.BoolRef:
    def fired(c: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            _present(st, c),
            st.status[c] == REVOKED,
            z3.Or(*[st.reason[c] == r for r in CASCADING]),
            st.has_rat[c],
            st.now >= st.rat[c] + e.delay,
        )

    def ok(s: z3.ArithRef) -> z3.BoolRef:
        cs, ca = e.followed(st, s)
        return z3.Implies(z3.And(_phone(st, s), z3.Or(fired(cs), fired(ca))), st.status[s] == REVOKED)

    return e.dom.forall(("serial",), ok)


def _card_hold(e: Encoder, st: ZState) -> z3.BoolRef:
    def ok(s: z3.ArithRef) -> z3.BoolRef:
        cs, ca = e.followed(st, s)
        held = z3.Or(*[z3.And(_present(st, c), st.status[c] == SUSPENDED) for c in (cs, ca)])
        return z3.Implies(z3.And(_phone(st, s), held), z3.Not(e.in_force(st, s)))

    return e.dom.forall(("serial",), ok)


def _pin_counter(e: Encoder, st: ZState) -> z3.BoolRef:
    def ok(ph: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            *[
                z3.Implies(
                    st.slot(k, "present")[ph],
                    z3.And(
                        st.slot(k, "tries")[ph] >= 0,
                        st.slot(k, "tries")[ph] <= e.max_tries(k),
                        (st.slot(k, "pst")[ph] == PIN_LOCKED) == (st.slot(k, "tries")[ph] == 0),
                    ),
                )
                for k in KINDS
            ]
        )

    return e.dom.forall(("phone",), ok)


def _old_before_new(e: Encoder, st: ZState) -> z3.BoolRef:
    def ok(s: z3.ArithRef, t: z3.ArithRef) -> z3.BoolRef:
        older = z3.Or(st.issued[s] < st.issued[t], z3.And(st.issued[s] == st.issued[t], s < t))
        gone = z3.Or(z3.And(st.has_rat[s], st.rat[s] <= st.issued[t]), st.expiry[s] <= st.issued[t])
        return z3.Implies(z3.And(s != t, _phone(st, s), _phone(st, t), st.person[s] == st.person[t], st.kind[s] == st.kind[t], older), gone)

    return e.dom.forall(("serial", "serial"), ok)


def _key_in_se(e: Encoder, st: ZState) -> z3.BoolRef:
    def slot_ok(ph: z3.ArithRef) -> z3.BoolRef:
        out = []
        for k in KINDS:
            c = st.slot(k, "cert")[ph]
            out.append(
                z3.Implies(
                    st.slot(k, "present")[ph],
                    z3.And(st.rec[c] == REC_PHONE, st.key[c] == st.slot(k, "key")[ph], st.se[c] == ph, st.kind[c] == k),
                )
            )
        out.append(z3.Implies(z3.And(st.s0_present[ph], st.s1_present[ph]), st.s0_key[ph] != st.s1_key[ph]))
        return z3.And(*out)

    def distinct(ph: z3.ArithRef, q: z3.ArithRef) -> z3.BoolRef:
        return z3.Implies(
            ph != q,
            z3.And(
                *[
                    z3.Implies(z3.And(st.slot(k, "present")[ph], st.slot(j, "present")[q]), st.slot(k, "key")[ph] != st.slot(j, "key")[q])
                    for k in KINDS
                    for j in KINDS
                ]
            ),
        )

    return z3.And(e.dom.forall(("phone",), slot_ok), e.dom.forall(("phone", "phone"), distinct))


def _commitment(e: Encoder, st: ZState) -> z3.BoolRef:
    return e.dom.forall(("serial",), lambda s: z3.Implies(_phone(st, s), st.commit[s] == st.presented[s]))


def _published(e: Encoder, st: ZState) -> z3.BoolRef:
    # The observation derives the CRL/OCSP entries from the records (CA-4): a certificate is
    # listed on its own profile's list with its own status. Nothing in the state can differ.
    return z3.BoolVal(True)


def _linkage(e: Encoder, st: ZState) -> z3.BoolRef:
    return e.dom.forall(("serial",), lambda s: z3.Implies(z3.And(_phone(st, s), e.live(st, s)), st.linkage[st.card[s]] == st.se[s]))


Z_STATE: dict[str, ZInvariant] = {
    z.name: z
    for z in (
        ZInvariant("one_phone_cert_per_kind", _one_per_kind),
        ZInvariant("phone_certs_on_one_se", _one_se),
        ZInvariant("phone_cert_linked_to_card_signing", _linked),
        ZInvariant("phone_expiry_is_card_expiry", _expiry),
        ZInvariant("serials_unique", _unique),
        ZInvariant("cascade_within_delay", _cascade),
        ZInvariant("card_hold_holds_phone", _card_hold),
        ZInvariant("pin_counter_consistent", _pin_counter),
        ZInvariant("old_revoked_before_new_issued", _old_before_new),
        ZInvariant("key_only_in_its_se", _key_in_se),
        ZInvariant("certified_against_own_commitment", _commitment),
        ZInvariant("status_published_on_own_profile", _published, by_construction=True),
        ZInvariant("linkage_names_se_of_live_certs", _linkage),
    )
}

# --- transition invariants ----------------------------------------------------------------------------------


def _accepted(code: z3.ArithRef) -> z3.BoolRef:
    return code == CODE_INDEX["ACCEPTED"]


def _revoked_final(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    return e.dom.forall(
        ("serial",),
        lambda s: z3.Implies(
            pre.rec[s] != REC_NONE,
            z3.And(post.rec[s] == pre.rec[s], z3.Implies(pre.status[s] == REVOKED, post.status[s] == REVOKED)),
        ),
    )


def _never_resumes(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    return e.dom.forall(
        ("serial",),
        lambda s: z3.Implies(z3.And(pre.rec[s] != REC_NONE, pre.kind[s] == SIG, pre.status[s] == SUSPENDED), post.status[s] != 0),
    )


def _key_use_kind(inst: Instance) -> int | None:
    if inst.action is A.Sign:
        return SIG
    if inst.action is A.Authenticate:
        return AUTH
    return None


def _locked(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    k = _key_use_kind(inst)
    if k is None:
        return z3.BoolVal(True)
    return z3.Implies(_accepted(code), z3.And(pre.slot(k, "present")[a.phone], pre.slot(k, "pst")[a.phone] == PIN_SET))


def _verifier(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    k = _key_use_kind(inst)
    if k is not None:
        c = pre.slot(k, "cert")[a.phone]
        known = z3.And(pre.slot(k, "present")[a.phone], pre.rec[c] != REC_NONE)
    elif inst.action is A.UseCard:
        assert inst.kind is not None
        c = pre.card_of(inst.kind)[a.person]
        known = z3.And(c != 0, pre.rec[c] != REC_NONE)
    elif inst.action is A.VerifyCertificate:
        assert inst.kind is not None and inst.profile is not None
        c = e.nth_issued(pre, a.person, inst.kind, inst.profile, a.index)
        known = z3.And(c != 0, pre.rec[c] != REC_NONE)
    else:
        return z3.BoolVal(True)
    return z3.Implies(_accepted(code), z3.And(known, e.in_force(pre, c)))


def _pin_init(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    if inst.action is not A.InitialisePin:
        return z3.BoolVal(True)
    c = pre.card0[a.person]
    return z3.Implies(_accepted(code), z3.And(c != 0, pre.linkage[c] == a.phone))


def _deletion_scope(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    has_phone = "phone" in inst.params
    whole = inst.action in (A.PrepareApplet, A.FactoryReset)

    def ok(ph: z3.ArithRef) -> z3.BoolRef:
        out = []
        for k in KINDS:
            was, c = pre.slot(k, "present")[ph], pre.slot(k, "cert")[ph]
            kept = z3.And(post.slot(k, "present")[ph], post.slot(k, "cert")[ph] == c)
            target = z3.BoolVal(False) if not has_phone else ph == a.phone
            removed_ok = z3.BoolVal(True) if whole else z3.Not(z3.And(post.rec[c] != REC_NONE, e.live(post, c)))
            out.append(z3.Implies(was, z3.Or(kept, z3.And(target, z3.Or(post.slot(k, "present")[ph], removed_ok)))))
        return z3.And(*out)

    return e.dom.forall(("phone",), ok)


def _time(e: Encoder, inst: Instance, pre: ZState, a: Params, code: z3.ArithRef, post: ZState) -> z3.BoolRef:
    moved_ok = z3.BoolVal(True) if inst.action is A.AdvanceTime else post.now == pre.now
    return z3.And(post.now >= pre.now, moved_ok)


Z_TRANSITION: dict[str, ZTransitionInvariant] = {
    z.name: z
    for z in (
        ZTransitionInvariant("revoked_stays_revoked", _revoked_final),
        ZTransitionInvariant("suspended_signing_never_resumes", _never_resumes),
        ZTransitionInvariant("locked_pin_admits_no_key_use", _locked),
        ZTransitionInvariant("verifier_accepts_only_in_force", _verifier),
        ZTransitionInvariant("pin_initialisation_only_on_linked_se", _pin_init),
        ZTransitionInvariant("deletion_touches_only_its_target", _deletion_scope),
        ZTransitionInvariant("time_never_goes_back", _time),
    )
}

assert set(Z_STATE) == set(STATE_INVARIANTS) and set(Z_TRANSITION) == set(TRANSITION_INVARIANTS), "every invariant needs its Z3 twin"

# --- lemmas: the strengthening that makes the invariants inductive -------------------------------------------


def _l_fresh(e: Encoder, st: ZState) -> z3.BoolRef:
    """Fresh values are above every serial, key, nonce and token in use; nothing is recorded at 0 or below."""

    def ser(s: z3.ArithRef) -> z3.BoolRef:
        return z3.Implies(
            _phone(st, s),
            z3.And(
                st.key[s] >= 1,
                st.key[s] < st.fresh,
                st.card[s] >= 1,
                st.card[s] < st.fresh,
                *[z3.And(f[s] >= 0, f[s] < st.fresh) for f in (st.fol_s, st.fol_a)],
            ),
        )

    def ph_ok(ph: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            st.nonce[ph] >= 0,
            st.nonce[ph] < st.fresh,
            st.token[ph] >= 0,
            st.token[ph] < st.fresh,
            *[
                z3.Implies(
                    st.slot(k, "present")[ph],
                    z3.And(
                        st.slot(k, "key")[ph] < st.fresh,
                        st.slot(k, "key")[ph] >= 1,
                        st.slot(k, "cert")[ph] >= 1,
                        st.slot(k, "cert")[ph] < st.fresh,
                    ),
                )
                for k in KINDS
            ],
        )

    def pe(p: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            *[z3.And(st.card_of(k)[p] >= 0, st.card_of(k)[p] < st.fresh) for k in KINDS],
            z3.Implies(st.app[p], z3.And(st.app_commit[p] >= 1, st.app_commit[p] < st.fresh)),
        )

    none_low = st.rec[0] == REC_NONE
    return z3.And(st.fresh >= 1, none_low, e.dom.forall(("serial",), ser), e.dom.forall(("phone",), ph_ok), e.dom.forall(("person",), pe))


def _l_current_cards(e: Encoder, st: ZState) -> z3.BoolRef:
    """A person's current card serials name card records of that person and kind."""

    def ok(p: z3.ArithRef) -> z3.BoolRef:
        out = []
        for k in KINDS:
            c = st.card_of(k)[p]
            out.append(z3.Implies(c != 0, z3.And(st.rec[c] == REC_CARD, st.person[c] == p, st.kind[c] == k)))
        return z3.And(*out)

    return e.dom.forall(("person",), ok)


def _l_status(e: Encoder, st: ZState) -> z3.BoolRef:
    """Statuses are in range; revoked exactly when a revocation time and reason are recorded, never in the future;
    suspended (when not revoked) exactly when a hold cause is recorded; card records never carry a phone hold;
    records are issued no later than now."""

    def ok(s: z3.ArithRef) -> z3.BoolRef:
        return z3.Implies(
            st.rec[s] != REC_NONE,
            z3.And(
                z3.Or(st.rec[s] == REC_CARD, st.rec[s] == REC_PHONE),
                st.status[s] >= 0,
                st.status[s] <= REVOKED,
                st.has_rat[s] == (st.status[s] == REVOKED),
                (st.reason[s] != 0) == (st.status[s] == REVOKED),
                z3.Implies(st.has_rat[s], st.rat[s] <= st.now),
                z3.Implies(st.status[s] != REVOKED, (st.status[s] == SUSPENDED) == z3.Or(st.hold_phone[s], st.hold_card[s])),
                z3.Implies(st.rec[s] == REC_CARD, z3.Not(st.hold_phone[s])),
                st.issued[s] <= st.now,
                st.kind[s] >= 0,
                st.kind[s] <= AUTH,
            ),
        )

    return e.dom.forall(("serial",), ok)


def _l_card_hold_marks_phone(e: Encoder, st: ZState) -> z3.BoolRef:
    """A live phone certificate that follows a suspended card certificate carries the card hold (SUS-2).

    Only live ones: a phone certificate re-linked by ResumeFromApp may expire before its card
    (card_found_fresh_expiry), and an expired one is not held when the card is reported lost."""

    def ok(s: z3.ArithRef) -> z3.BoolRef:
        cs, ca = e.followed(st, s)
        held = z3.Or(*[z3.And(c != 0, st.status[c] == SUSPENDED) for c in (cs, ca)])
        return z3.Implies(z3.And(_phone(st, s), held, e.live(st, s)), st.hold_card[s])

    return e.dom.forall(("serial",), ok)


def _l_followed_revoked_later(e: Encoder, st: ZState) -> z3.BoolRef:
    """A card certificate a phone certificate follows was revoked (if at all) no earlier than the phone certificate was issued."""

    def ok(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            *[z3.Implies(z3.And(_phone(st, s), c != 0, st.status[c] == REVOKED), st.rat[c] >= st.issued[s]) for c in e.followed(st, s)]
        )

    return e.dom.forall(("serial",), ok)


def _l_older_card_signing_revoked(e: Encoder, st: ZState) -> z3.BoolRef:
    """Every card signing certificate of a person but the current one is revoked, no later than the current one was issued."""

    def ok(p: z3.ArithRef, t: z3.ArithRef) -> z3.BoolRef:
        c = st.card0[p]
        older = z3.And(st.rec[t] == REC_CARD, st.kind[t] == SIG, st.person[t] == p, t != c)
        return z3.Implies(older, z3.And(c != 0, st.status[t] == REVOKED, st.rat[t] <= st.issued[c]))

    return e.dom.forall(("person", "serial"), ok)


def _l_application(e: Encoder, st: ZState) -> z3.BoolRef:
    """A pending application: its nonce sits only in its own phone's SE, its person's live phone
    certificates are all in that SE, and none is of a kind it asks for (ISS-4, LNK-3, LNK-4)."""

    def ok(p: z3.ArithRef, s: z3.ArithRef) -> z3.BoolRef:
        live = e.live_phone_of(st, p, s)
        asked = z3.Or(z3.And(st.kind[s] == SIG, st.app_k0[p]), z3.And(st.kind[s] == AUTH, st.app_k1[p]))
        return z3.Implies(z3.And(st.app[p], live), z3.And(st.se[s] == st.app_phone[p], z3.Not(asked)))

    def nonce(p: z3.ArithRef, ph: z3.ArithRef) -> z3.BoolRef:
        return z3.Implies(z3.And(st.app[p], st.nonce[ph] == st.app_commit[p]), ph == st.app_phone[p])

    def distinct(ph: z3.ArithRef, q: z3.ArithRef) -> z3.BoolRef:
        return z3.Implies(z3.And(ph != q, st.nonce[ph] != 0), st.nonce[ph] != st.nonce[q])

    return z3.And(
        e.dom.forall(("person", "serial"), ok), e.dom.forall(("person", "phone"), nonce), e.dom.forall(("phone", "phone"), distinct)
    )


def _l_pin_status(e: Encoder, st: ZState) -> z3.BoolRef:
    """Slot PIN statuses are in range."""
    return e.dom.forall(
        ("phone",),
        lambda ph: z3.And(
            *[
                z3.Implies(st.slot(k, "present")[ph], z3.And(st.slot(k, "pst")[ph] >= PIN_TEMP, st.slot(k, "pst")[ph] <= PIN_LOCKED))
                for k in KINDS
            ]
        ),
    )


def _l_deletions(e: Encoder, st: ZState) -> z3.BoolRef:
    """A remote deletion names only revoked phone certificates (DEL-1)."""
    return e.dom.forall(
        ("phone", "person", "serial"),
        lambda ph, p, s: z3.Implies(st.del_ser[ph, p, s], z3.And(st.rec[s] == REC_PHONE, st.status[s] == REVOKED)),
    )


LEMMAS: dict[str, ZInvariant] = {
    z.name: z
    for z in (
        ZInvariant("lemma_fresh_values", _l_fresh),
        ZInvariant("lemma_current_cards", _l_current_cards),
        ZInvariant("lemma_status_bookkeeping", _l_status),
        ZInvariant("lemma_card_hold_marks_phone", _l_card_hold_marks_phone),
        ZInvariant("lemma_followed_revoked_after_issue", _l_followed_revoked_later),
        ZInvariant("lemma_older_card_signing_revoked", _l_older_card_signing_revoked),
        ZInvariant("lemma_application", _l_application),
        ZInvariant("lemma_pin_status_range", _l_pin_status),
        ZInvariant("lemma_deletions_revoked", _l_deletions),
    )
}


def init_formula(e: Encoder, st: ZState) -> z3.BoolRef:
    """Every initial state (mjpki.spec.state.initial_state of any world): time 0, card certificates only,
    nothing on any phone, no applications, deletions or linkage."""

    def ser(s: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            z3.Or(st.rec[s] == REC_NONE, st.rec[s] == REC_CARD),
            z3.Implies(
                st.rec[s] == REC_CARD,
                z3.And(
                    st.status[s] == 0,
                    z3.Not(st.hold_phone[s]),
                    z3.Not(st.hold_card[s]),
                    z3.Not(st.has_rat[s]),
                    st.reason[s] == 0,
                    st.issued[s] == 0,
                    z3.Or(*[z3.And(st.kind[s] == k, st.card_of(k)[st.person[s]] == s) for k in KINDS]),
                ),
            ),
            z3.Implies(st.rec[s] != REC_NONE, z3.And(s < st.fresh, st.kind[s] >= 0, st.kind[s] <= AUTH)),
        )

    def ph(x: z3.ArithRef) -> z3.BoolRef:
        return z3.And(
            st.token[x] == 0,
            st.nonce[x] == 0,
            z3.Not(st.applet[x]),
            z3.Not(st.ready[x]),
            *[z3.Not(st.slot(k, "present")[x]) for k in KINDS],
        )

    def pe(p: z3.ArithRef) -> z3.BoolRef:
        cards = [
            z3.Implies(
                st.card_of(k)[p] != 0,
                z3.And(st.rec[st.card_of(k)[p]] == REC_CARD, st.person[st.card_of(k)[p]] == p, st.kind[st.card_of(k)[p]] == k),
            )
            for k in KINDS
        ]
        return z3.And(z3.Not(st.app[p]), *cards, *[z3.And(st.card_of(k)[p] >= 0, st.card_of(k)[p] < st.fresh) for k in KINDS])

    def dl(x: z3.ArithRef, p: z3.ArithRef, s: z3.ArithRef) -> z3.BoolRef:
        return z3.Not(st.del_ser[x, p, s])

    return z3.And(
        st.now == 0,
        st.fresh >= 1,
        st.rec[0] == REC_NONE,
        e.dom.forall(("serial",), ser),
        e.dom.forall(("phone",), ph),
        e.dom.forall(("person",), pe),
        e.dom.forall(("phone", "person", "serial"), dl),
    )
