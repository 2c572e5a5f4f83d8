"""`mjpki prove`: unbounded proofs of every invariant with Z3, and shortest violating runs as traces.

Proof (parametric: any number of persons, phones and certificates). The candidate inductive
invariant J is every state invariant plus the lemmas of `properties/z3_invariants.py`. For
each conjunct C and each instance of the relation, Z3 checks J(pre) and a step give C(post)
(1-induction, quantified over unbounded integer-indexed arrays), and that every initial state
satisfies C. A conjunct that fails is dropped and whatever relied on it (read from unsat
cores) is checked again, until what is left is inductive (Houdini). What is left is proved
for every reachable state; transition invariants are then checked on J(pre) and one step.

Violation (bounded). An invariant that did not survive is searched for by bounded model
checking on a small concrete world, from the initial state and from the explorer's onboarded
state; a violation comes back as a `mjpki-trace/1` trace (source "z3") that replays on the
spec (or on the seeded bug's stepper) and breaks the invariant at its last step.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import z3

from mjpki.properties import z3_encoding
from mjpki.properties.explorer import Scope, onboarding_prefix, scope_world
from mjpki.properties.invariants import STATE_INVARIANTS, TRANSITION_INVARIANTS, check_transition
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.properties.z3_bridge import PIN_TABLE, Numbering, _z3_value, decode_action, project, world_fns
from mjpki.properties.z3_encoding import (
    CODE_INDEX,
    CODES,
    FIELDS,
    INSTANCES,
    Dom,
    Encoder,
    Params,
    Piecewise,
    ZState,
    merge,
    push_due_term,
)
from mjpki.properties.z3_invariants import LEMMAS, Z_STATE, Z_TRANSITION, init_formula
from mjpki.spec import actions as A
from mjpki.spec.assumptions import Variants
from mjpki.spec.clock import DAY, fifth_birthday_expiry
from mjpki.spec.domain import Kind
from mjpki.spec.machine import step
from mjpki.spec.observe import observe
from mjpki.spec.outcome import Outcome
from mjpki.spec.reasons import Reason
from mjpki.spec.rules import pin_well_formed
from mjpki.spec.state import State, initial_state
from mjpki.spec.trace import Trace, TraceStep, step_reqs
from mjpki.spec.world import World

__all__ = [
    "Row",
    "ProofReport",
    "houdini",
    "bmc",
    "prove",
    "render",
    "add_arguments",
    "run",
    "parse_variants",
    "variant_delta",
    "KNOWN_SPEC_VIOLATIONS",
    "KNOWN_SHAPES",
    "RLIMIT",
    "BMC_RLIMIT",
]

Stepper = Callable[[World, State, A.Action], tuple[State, Outcome]]

# --- induction (one query per conjunct and instance) --------------------------------------------------------


class _Engine:
    """One process's parametric encoding for one variant setting and bug: terms built once, queries on demand."""

    def __init__(self, variants: Variants, bug: str | None) -> None:
        self.enc = Encoder(Dom(), variants, bug=bug)
        self.pre = ZState.symbolic("pre")
        self.a = Params.symbolic("a")
        self.hyp = {n: z.formula(self.enc, self.pre) for n, z in (*Z_STATE.items(), *LEMMAS.items())}
        self.lits = {n: z3.Bool(f"H:{n}") for n in self.hyp}
        self._effects: dict[str, tuple[z3.ArithRef, ZState]] = {}

    def effect(self, inst_name: str) -> tuple[z3.ArithRef, ZState]:
        if inst_name not in self._effects:
            inst = next(i for i in INSTANCES if i.name == inst_name)
            # The same names for an instance's bound variables and choices whatever was built before it in this process,
            # so that a query is the same formula in every run and every worker (the solver's time depends on names).
            z3_encoding._counter = itertools.count()
            self._effects[inst_name] = self.enc.effect(inst, self.pre, self.a)
        return self._effects[inst_name]

    def query(
        self, target: str, inst_name: str, hyps: frozenset[str], rlimit: int, timeout_ms: int = 0
    ) -> tuple[str, frozenset[str], float]:
        """Does J(pre) and one step of the instance give target? ("unsat" = yes), with the hypotheses used.

        rlimit bounds the solver's work in Z3 resource units (deterministic: the same answer on a loaded machine);
        timeout_ms, if not 0, is a wall-clock cap on top (not deterministic, off unless asked for)."""
        started = time.perf_counter()
        if inst_name == "<init>":
            s0 = ZState.symbolic("init")
            goal = (Z_STATE | LEMMAS)[target].formula(self.enc, s0)
            solver = _solver(rlimit, timeout_ms)
            solver.add(init_formula(self.enc, s0), z3.Not(goal))
            r = solver.check()
            return str(r), frozenset(), time.perf_counter() - started
        inst = next(i for i in INSTANCES if i.name == inst_name)
        code, post = self.effect(inst_name)
        if target in Z_TRANSITION:
            goal = Z_TRANSITION[target].formula(self.enc, inst, self.pre, self.a, code, post)
        else:
            goal = (Z_STATE | LEMMAS)[target].formula(self.enc, post)
            if target in hyps and goal.eq(self.hyp[target]):
                return "unsat", frozenset({target}), time.perf_counter() - started  # the step leaves it alone
        # Nearly every query is answered within a few thousand resource units with every hypothesis. A few get lost
        # among the quantified hypotheses they do not need (minutes, depending on term names and order) while the
        # conjunct itself and the bookkeeping lemmas prove them at once. So: every hypothesis briefly, then those few,
        # then every hypothesis with the whole budget. Fewer hypotheses can only make "unsat" harder to reach: an "unsat"
        # is a proof either way, and its core names the hypotheses it used.
        few = hyps & ({target} | _FEW_HYPOTHESES)
        if target not in Z_TRANSITION and few != hyps and rlimit >= 4 * _BRIEF_RLIMIT:
            for using in (hyps, few):
                r, core = self._check(inst, goal, using, _BRIEF_RLIMIT, timeout_ms)
                if r == "unsat":
                    return r, core, time.perf_counter() - started
        r, core = self._check(inst, goal, hyps, rlimit, timeout_ms)
        return r, core, time.perf_counter() - started

    def _check(
        self, inst: z3_encoding.Instance, goal: z3.BoolRef, hyps: frozenset[str], rlimit: int, timeout_ms: int
    ) -> tuple[str, frozenset[str]]:
        solver = _solver(rlimit, timeout_ms)
        for h in sorted(hyps):  # a fixed order: a set's order changes with the string hash seed, and the solver's time with it
            solver.add(z3.Implies(self.lits[h], self.hyp[h]))
        solver.add(self.enc.param_ok(inst, self.pre, self.a), z3.Not(goal))
        r = solver.check(*[self.lits[h] for h in sorted(hyps)])
        core: frozenset[str] = frozenset()
        if r == z3.unsat:
            core = frozenset(str(x)[2:] for x in solver.unsat_core())
        return str(r), core


_FEW_HYPOTHESES = frozenset({"lemma_fresh_values", "lemma_status_bookkeeping", "lemma_current_cards"})
"""The hypotheses a query tries on their own with the target itself when every hypothesis takes long (_Engine.query)."""

RLIMIT = 20_000_000
"""Z3 resource units per induction query (`mjpki prove --rlimit`). Resource units count the solver's work, not time, so
a query gets the same answer on an idle and on a loaded machine. Measured (z3 4.x, this 2-core machine): the largest
proof of the default run takes about 175,000 units, about 0.7 million units is one second of one core; 20 million is
about half a minute of work, a hundred times what any proof needs."""
_BRIEF_RLIMIT = 500_000
"""The brief attempts of _Engine.query (every hypothesis, then the few): three times the largest proof with every hypothesis."""


def _solver(rlimit: int, timeout_ms: int = 0) -> z3.Solver:
    """A solver bounded by rlimit resource units (and by timeout_ms of wall clock, if not 0)."""
    solver = z3.Solver()
    solver.set("rlimit", rlimit)
    if timeout_ms:
        solver.set("timeout", timeout_ms)
    return solver


_ENGINES: dict[tuple[Any, ...], _Engine] = {}


def _work(job: tuple[dict[str, Any], str | None, str, str, frozenset[str], int, int]) -> tuple[str, str, str, frozenset[str], float]:
    variants, bug, target, inst, hyps, rlimit, timeout_ms = job
    key = (tuple(sorted(variants.items())), bug)
    if key not in _ENGINES:
        _ENGINES[key] = _Engine(Variants(**variants), bug)
    r, core, secs = _ENGINES[key].query(target, inst, hyps, rlimit, timeout_ms)
    return target, inst, r, core, secs


@dataclass(slots=True)
class InductionResult:
    """What Houdini left: the inductive conjuncts, why the others went, and the step checks."""

    kept: set[str]
    dropped: dict[str, str]
    """Conjunct -> the instance (or "<init>") where it failed, with the solver's answer."""
    transition: dict[str, str | None]
    """Transition invariant -> None if it holds on every step from J, else the failing instance."""
    seconds: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    cores: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    """(conjunct or transition invariant, instance) -> the conjuncts its proof used (unsat core), for variant_delta."""


def _variant_dict(v: Variants) -> dict[str, Any]:
    return {n: getattr(v, n) for n in Variants.names()}


def houdini(
    variants: Variants, *, bug: str | None = None, rlimit: int = RLIMIT, timeout: float | None = None, jobs: int = 2
) -> InductionResult:
    """The largest inductive subset of invariants and lemmas, and the transition invariants checked against it.

    Each query is bounded by rlimit Z3 resource units (deterministic); timeout, if given, adds a wall-clock cap in seconds."""
    vd = _variant_dict(variants)
    tms = int(timeout * 1000) if timeout else 0
    kept = set(Z_STATE) | set(LEMMAS)
    dropped: dict[str, str] = {}
    seconds: dict[str, float] = {n: 0.0 for n in (*Z_STATE, *LEMMAS, *Z_TRANSITION)}
    cores: dict[tuple[str, str], frozenset[str]] = {}
    queries = 0
    names = [i.name for i in INSTANCES]
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) if jobs > 1 else None

    def run_jobs(jobs_: list[tuple[str, str, frozenset[str]]], limit: int = rlimit) -> list[tuple[str, str, str, frozenset[str], float]]:
        nonlocal queries
        queries += len(jobs_)
        payload = [(vd, bug, t, i, h, limit, tms) for t, i, h in jobs_]
        if pool is None:
            return [_work(p) for p in payload]
        return list(pool.map(_work, payload, chunksize=4))

    try:
        todo = [(t, "<init>", frozenset()) for t in sorted(kept)] + [(t, i, frozenset(kept)) for t in sorted(kept) for i in names]
        while todo:
            fails: dict[str, str] = {}
            for target, inst, r, core, secs in run_jobs(todo):
                seconds[target] += secs
                if r == "unsat":
                    cores[(target, inst)] = core
                elif target not in fails:
                    fails[target] = f"{inst} ({r})"
            if not fails:
                break
            for t, why in fails.items():
                kept.discard(t)
                dropped[t] = why
            gone = set(fails)
            # Re-check what leaned on a dropped conjunct; the rest stays proved.
            todo = [(t, i, frozenset(kept)) for (t, i), core in list(cores.items()) if t in kept and core & gone]
            for t, i, _h in todo:
                del cores[(t, i)]
        # An "unknown" is no counterexample: with false conjuncts gone the solver may now manage, or it may just need
        # more work. Re-admit a dropped conjunct if it is preserved given the survivors and itself, with four times the
        # resource budget.
        again = True
        while again and dropped:
            again = False
            for d in list(dropped):
                res = run_jobs([(d, "<init>", frozenset())] + [(d, i, frozenset(kept | {d})) for i in names], 4 * rlimit)
                for _t, _i, _r, _c, secs in res:
                    seconds[d] += secs
                bad = next((f"{i} ({r})" for _t, i, r, _c, _s in res if r != "unsat"), None)
                if bad is None:
                    kept.add(d)
                    del dropped[d]
                    cores.update({(d, i): c for _t, i, _r, c, _s in res})
                    again = True
                else:
                    dropped[d] = bad
        trans: dict[str, str | None] = {}
        tjobs = [(t, i, frozenset(kept)) for t in Z_TRANSITION for i in names]
        for target, inst, r, core, secs in run_jobs(tjobs):
            seconds[target] += secs
            cores[(target, inst)] = core
            if r != "unsat" and trans.get(target) is None:
                trans[target] = f"{inst} ({r})"
            trans.setdefault(target, None)
    finally:
        if pool is not None:
            pool.shutdown()
    return InductionResult(kept=kept, dropped=dropped, transition=trans, seconds=seconds, queries=queries, cores=cores)


def variant_delta(
    base: InductionResult,
    variants: Variants,
    *,
    rlimit: int = RLIMIT,
    timeout: float | None = None,
    base_variants: Variants | None = None,
    jobs: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """Re-prove for another variant setting only where it matters, against the base's inductive invariant.

    A query (conjunct or transition invariant, instance) is asked again when the instance's effect differs (compared
    as terms), when the target's formula differs (a variant read by an invariant, e.g. phone_linkage), or when the base
    proof of it used a conjunct whose formula differs (its unsat core); every other query is the same as in the base,
    with the same answer. Returns the changed instances and the failures (conjunct or transition invariant -> instance).
    """
    a_eng, b_eng = _Engine(base_variants or Variants(), None), _Engine(variants, None)
    changed = []
    for inst in INSTANCES:
        # Same fresh names for bound variables in both builds, so equal effects are equal terms.
        z3_encoding._counter = itertools.count()
        ca, pa = a_eng.effect(inst.name)
        z3_encoding._counter = itertools.count()
        cb, pb = b_eng.effect(inst.name)
        # Both engines name their constants alike, so equal effects are equal terms.
        if not ca.eq(cb) or any(not pa.f[n].eq(pb.f[n]) for n in FIELDS):
            changed.append(inst.name)
    # Formulas are built with the same deterministic bound names, so an invariant the variant does not read is equal.
    formula_changed = {n for n in base.kept if not a_eng.hyp[n].eq(b_eng.hyp[n])}
    for t, z in Z_TRANSITION.items():
        for inst in INSTANCES:
            ca, pa = a_eng.effect(inst.name)
            cb, pb = b_eng.effect(inst.name)
            if not z.formula(a_eng.enc, inst, a_eng.pre, a_eng.a, ca, pa).eq(z.formula(b_eng.enc, inst, b_eng.pre, b_eng.a, cb, pb)):
                formula_changed.add(t)
    hyps = frozenset(base.kept)
    todo: list[tuple[str, str]] = [(t, "<init>") for t in sorted(formula_changed & hyps)]
    for target in (*sorted(base.kept), *Z_TRANSITION):
        for inst in INSTANCES:
            core = base.cores.get((target, inst.name))
            if inst.name in changed or target in formula_changed or core is None or core & formula_changed:
                todo.append((target, inst.name))
    vd = _variant_dict(variants)
    tms = int(timeout * 1000) if timeout else 0
    failures: dict[str, str] = {}

    def ask(items: list[tuple[str, str]], limit: int) -> list[tuple[str, str, str, frozenset[str], float]]:
        if jobs <= 1:
            return [(t, i, *b_eng.query(t, i, hyps, limit, tms)) for t, i in items]
        payload = [(vd, None, t, i, hyps, limit, tms) for t, i in items]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_work, payload, chunksize=4))

    results = ask(todo, rlimit)
    retry = [(t, i) for t, i, r, _c, _s in results if r == "unknown"]  # ran out of budget: once more with four times it
    answers = {(t, i): r for t, i, r, _c, _s in results}
    if retry:
        answers.update({(t, i): r for t, i, r, _c, _s in ask(retry, 4 * rlimit)})
    for (target, inst), r in answers.items():
        if r != "unsat" and target not in failures:
            failures[target] = f"{inst} ({r})"
    return changed, failures


KNOWN_SPEC_VIOLATIONS: dict[str, str] = {}
"""Invariants the spec as it stands breaks: none. Z3 found VAL-1 and SUS-2 broken by ResumeFromApp re-linking a
held phone certificate to a card signing certificate renewed during the card hold; the spec was fixed
(ASM-CARD-FOUND resumes only certificates whose card certificate was re-issued on the card's finding)."""

KNOWN_SHAPES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "phone_expiry_is_card_expiry": (
        "onboarded",
        ("AdvanceTime", "ReportCardLost", "IssueCardCertificate[signing]", "ResumeFromApp"),
        400,
    ),
    "card_hold_holds_phone": (
        "onboarded",
        ("AdvanceTime", "ReportCardLost", "IssueCardCertificate[signing]", "ResumeFromApp", "AdvanceTime", "ReportCardLost"),
        6 * 366,
    ),
}
"""Action shapes (start, instances, time horizon in days) of violations found in earlier versions of the spec, for a
guided BMC: too deep for the unguided search within minutes, found at once along the shape. Kept as regression
checks (tests/test_z3_prove.py) and used for any of these invariants that is not proved."""


# --- bounded model checking on a concrete world ---------------------------------------------------------------


def _expiry_table(birth: date, horizon: int) -> Piecewise:
    """fifth_birthday_expiry(birth, t) for t in [0, horizon], as pieces (it changes only at midnights)."""
    pieces: list[tuple[int, int]] = []
    for day in range(horizon // DAY + 2):
        v = fifth_birthday_expiry(birth, day * DAY)
        if not pieces or pieces[-1][1] != v:
            pieces.append((day * DAY, v))
    return Piecewise(tuple(pieces))


@dataclass(frozen=True, slots=True)
class BMCResult:
    """A shortest violation found by BMC (or none up to the depth)."""

    invariant: str
    depth: int
    """Steps after the start (the prefix not counted)."""
    trace: Trace | None
    seconds: float
    start: str
    guided: bool = False
    """Found along a given action shape (`bmc(shape=...)`), not by the unguided search."""
    searched: int = 0
    """Every run of up to this many steps after the start was searched and none breaks the invariant (unsat), short of
    depth when a query ran out of resource units or the CPU budget."""


def _transition_term(enc: Encoder, world: World, x: ZState, a: Params, code: z3.ArithRef, horizon: int) -> tuple[z3.BoolRef, ZState]:
    """One step of the whole relation on a concrete world: the constraints on the choice and the next state."""
    effects = [enc.effect(inst, x, a) for inst in INSTANCES]
    cases = [(a.tag == j, post) for j, (_c, post) in enumerate(effects)]
    merged = merge(cases[:-1], cases[-1][1])
    code_t: z3.ArithRef = effects[-1][0]
    for j in range(len(effects) - 2, -1, -1):
        code_t = z3.If(a.tag == j, effects[j][0], code_t)
    env = [CODE_INDEX[r.name] for r in Reason if r.environmental]
    births = [p.birth for p in world.persons]
    num = Numbering(world)
    expiry: z3.ArithRef = _expiry_table(births[-1], horizon).term(x.now)
    for i in range(len(births) - 2, -1, -1):
        expiry = z3.If(a.person == i + 1, _expiry_table(births[i], horizon).term(x.now), expiry)
    sp = world.service_providers[0]
    wf = {kind: [n for n, s in PIN_TABLE.items() if pin_well_formed(Kind.SIGNING if kind == 0 else Kind.AUTH, s)] for kind in (0, 1)}
    per_inst = []
    for j, inst in enumerate(INSTANCES):
        conds = [enc.param_ok(inst, x, a)]
        for pname, kind in inst.pin_kinds:
            pin = getattr(a, pname)
            wname = "wf_a" if pname == "pin_a" else "wf_b"
            conds.append(z3.And(pin >= 1, pin <= len(PIN_TABLE)))
            if wname in inst.params:
                conds.append(getattr(a, wname) == z3.Or(*[pin == n for n in wf[kind]]))
        per_inst.append(z3.Implies(a.tag == j, z3.And(*conds)))
    _ = num
    cons = z3.And(
        a.tag >= 0,
        a.tag < len(INSTANCES),
        *per_inst,
        # The calendar only where an instance reads it: integer division is costly for the solver.
        z3.Implies(z3.Or(*[a.tag == j for j, i in enumerate(INSTANCES) if "due" in i.params]), a.due == push_due_term(x.now)),
        z3.Implies(z3.Or(*[a.tag == j for j, i in enumerate(INSTANCES) if "expiry" in i.params]), a.expiry == expiry),
        a.sp_white == sp.whitelisted,
        a.sp_private == (sp.kind.value == "private"),
        a.sp_approved == sp.approved,
        a.minutes >= 1,
        x.now + a.minutes <= horizon,
        code == code_t,
        *[z3.Not(code == c) for c in env],
    )
    return cons, merged


def _index_ranges(dom: Dom) -> dict[str, list[range]]:
    """Every index of each index domain of a finite Dom, 0 included (the arrays' unused default index)."""
    n_p, n_d, n_s = dom.persons or 0, dom.phones or 0, dom.serials or 0
    return {
        "person": [range(n_p + 1)],
        "phone": [range(n_d + 1)],
        "serial": [range(n_s + 1)],
        "del": [range(n_d + 1), range(n_p + 1)],
        "delser": [range(n_d + 1), range(n_p + 1), range(n_s + 1)],
    }


def _scalar_state(dom: Dom, prefix: str, merged: ZState) -> tuple[ZState, list[z3.BoolRef]]:
    """The next state as store chains over one scalar per index of the finite domain, equal to merged there.

    Every select is then at a concrete index of a lambda, which simplifies away: the unrolling
    is quantifier- and lambda-free, which is what makes BMC fast."""
    ranges = _index_ranges(dom)
    fields: dict[str, z3.ExprRef] = {}
    eqs: list[z3.BoolRef] = []
    for name, (kind, sort) in FIELDS.items():
        mk = z3.Int if sort == "I" else z3.Bool
        if not kind:
            v = mk(f"{prefix}.{name}")
            eqs.append(v == z3.simplify(merged.f[name]))
            fields[name] = v
            continue
        arr = _z3_value(name, {})
        for idx in itertools.product(*ranges[kind]):
            v = mk(f"{prefix}.{name}{list(idx)}")
            zi = [z3.IntVal(i) for i in idx]
            eqs.append(v == z3.simplify(z3.Select(merged.f[name], *zi)))
            arr = z3.Store(arr, *zi, v)
        fields[name] = arr
    return ZState(fields), eqs


def _concrete(world: World, state: State, num: Numbering) -> ZState:
    return ZState({n: _z3_value(n, v) for n, v in project(world, state, num).items()})


BMC_RLIMIT = 100_000_000
"""Z3 resource units per BMC query (`bmc(rlimit=...)`): about two and a half minutes of one core on this machine, so a
search answers the same on an idle and on a loaded machine; a query that runs out says so (BMCResult.searched)."""

_SERIALS_PER_STEP = 4
"""The most fresh values one step takes (Register: a key and a serial per kind), so the serials a run of i steps can
use are the start's and 4 i more."""


def _moved(dom: Dom, x: ZState, y: ZState) -> z3.BoolRef:
    """The encoded state changed from x to y (some field, at some index of the finite domain)."""
    ranges = _index_ranges(dom)
    diffs: list[z3.BoolRef] = []
    for name, (kind, _sort) in FIELDS.items():
        if not kind:
            diffs.append(x.f[name] != y.f[name])
            continue
        for idx in itertools.product(*ranges[kind]):
            zi = [z3.IntVal(i) for i in idx]
            d = z3.simplify(z3.Select(x.f[name], *zi) != z3.Select(y.f[name], *zi))
            if not z3.is_false(d):
                diffs.append(d)
    return z3.Or(False, *diffs)


def bmc(
    world: World,
    targets: list[str],
    *,
    depth: int,
    start: str = "initial",
    bug: str | None = None,
    timeout: float | None = None,
    rlimit: int = BMC_RLIMIT,
    horizon_days: int = 400,
    shape: tuple[str, ...] | None = None,
    incremental: bool = False,
    cpu_budget: float | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, BMCResult]:
    """Shortest runs from the start that break each target invariant, up to `depth` steps, as traces.

    Each depth adds one step's transition to the unrolling and asks, per target, whether the last state (or step) breaks
    it. By default a fresh solver per question over the whole unrolling, with the unrolling's equations solved away
    first (from a concrete start most of the first steps fold to constants). incremental=True: one solver for the whole
    search, each depth's step asserted once and the violation asked under an assumption literal, so what the solver
    learned at depth i serves depth i + 1, and a run's interior steps must change the encoded state (see docs/prove.md:
    every shortest violation has no step that changes nothing, so none is lost); twice as fast to refute depth 4 from
    the initial state, but far slower to find a run from a start deep in a lifecycle (no equations solved away). In both,
    step i's relation is built over the serials a run of i steps can use, not over the last depth's, so the early steps
    stay small.
    Each query is bounded by rlimit resource units (deterministic) and, if given, by timeout seconds of wall clock;
    cpu_budget (seconds of this process's CPU) stops deepening once spent (depth 1 is always asked); progress(depth, cpu
    seconds) after each depth.
    With `shape`, step i must be an instance named shape[i] (Z3 still chooses every argument, time steps included): a
    guided search, for runs too deep for the unguided one."""
    if shape is not None:
        depth = len(shape)
    started, cpu0 = time.perf_counter(), time.process_time()
    stepper: Stepper = SEEDED_BUGS[bug].stepper if bug else step
    prefix = onboarding_prefix(world) if start in ("onboarded", "applied") else []
    if start == "applied":  # the onboarding run up to the point where the issuance push is due
        prefix = [a for a in prefix if not isinstance(a, A.DeliverIssuancePush | A.Register | A.SetPin)]
    state = initial_state(world)
    for act in prefix:
        state, _o = stepper(world, state, act)
    num = Numbering(world)
    fresh0 = state.fresh
    horizon = state.now + horizon_days * DAY
    fns = world_fns(world)
    states = [_concrete(world, state, num)]
    params: list[Params] = []
    codes: list[z3.ArithRef] = []
    unrolling: list[z3.BoolRef] = []
    moves: list[z3.BoolRef] = []
    """Assumption literals, one per step: the step changes the encoded state (asked of every step but the last)."""
    found: dict[str, BMCResult] = {}
    searched: dict[str, int] = {}
    remaining = [t for t in targets]
    # Depth 0: the start state itself (the prefix is a run of the stepper).
    pre_obs = observe(world, state)
    from mjpki.properties.invariants import check_state

    broken0 = {v.invariant for v in check_state(world, pre_obs)}
    for t in list(remaining):
        if t in broken0:
            found[t] = BMCResult(t, 0, _make_trace(world, prefix, [], stepper, t, start, bug), time.perf_counter() - started, start)
            remaining.remove(t)
    inc_solver: z3.Solver | None = None
    if incremental:
        # The plain incremental solver: a tactic solver would apply its tactic only on a first, non-incremental check.
        inc_solver = z3.Solver()
        inc_solver.set("rlimit", rlimit)
        if timeout:
            inc_solver.set("timeout", int(timeout * 1000))
    for i in range(1, depth + 1):
        if not remaining or (i > 1 and cpu_budget is not None and time.process_time() - cpu0 > cpu_budget):
            break
        dom = Dom(persons=len(world.persons), phones=len(world.phones), serials=fresh0 + _SERIALS_PER_STEP * i)
        enc = Encoder(dom, world.variants, bug=bug, world_fns=fns)
        x = states[-1]
        a, code = Params.symbolic(f"a{i}"), z3.Int(f"code{i}")
        cons, merged = _transition_term(enc, world, x, a, code, horizon)
        y, eqs = _scalar_state(dom, f"s{i}", merged)
        step_cons = [cons, *eqs, y.fresh <= (dom.serials or 0) + 1]
        if shape is not None:
            step_cons.append(a.tag == [inst.name for inst in INSTANCES].index(shape[i - 1]))
        states.append(y)
        params.append(a)
        codes.append(code)
        mv = z3.Bool(f"moves{i}")
        if inc_solver is not None:
            # Simplified first: a start state's empty arrays are lambdas, which the tactic of the fresh way reduces
            # away; left in, the incremental solver counts them as quantifiers and says "unknown" where a run exists.
            inc_solver.add(*[z3.simplify(c) for c in step_cons])
            inc_solver.add(z3.Implies(mv, _moved(dom, x, y)))
        else:
            unrolling.extend(step_cons)
        for t in list(remaining):
            if t in Z_STATE:
                bad = z3.Not(Z_STATE[t].formula(enc, y))
            else:
                bad = z3.Or(
                    *[z3.And(a.tag == j, z3.Not(Z_TRANSITION[t].formula(enc, inst, x, a, code, y))) for j, inst in enumerate(INSTANCES)]
                )
            if inc_solver is not None:
                solver: z3.Solver = inc_solver
                lit = z3.Bool(f"bad{i}:{t}")
                solver.add(z3.Implies(lit, z3.simplify(bad)))
                r = solver.check(lit, *(moves if shape is None else []))
            else:
                # A fresh solver per question, no push/pop: a tactic solver applies its tactic only
                # when not used incrementally, and solving the unrolling's equations away first
                # (solve-eqs) is what makes this way fast.
                solver = z3.Then("simplify", "propagate-values", "solve-eqs", "smt").solver()
                solver.set("rlimit", rlimit)
                if timeout:
                    solver.set("timeout", int(timeout * 1000))
                solver.add(*unrolling, bad)
                r = solver.check()
            if r == z3.sat:
                m = solver.model()
                actions = [decode_action(world, num, m, p) for p in params]
                z3_codes = [CODES[m.eval(c, model_completion=True).as_long()] for c in codes]
                trace = _make_trace(world, prefix, actions, stepper, t, start, bug, z3_codes)
                secs = time.perf_counter() - started
                found[t] = BMCResult(t, i, trace, secs, start, guided=shape is not None, searched=searched.get(t, 0))
                remaining.remove(t)
            elif r == z3.unsat and searched.get(t, 0) == i - 1:
                searched[t] = i
        if inc_solver is not None:
            moves.append(mv)
        if progress is not None:
            progress(i, time.process_time() - cpu0)
    for t in remaining:
        found[t] = BMCResult(t, depth, None, time.perf_counter() - started, start, searched=searched.get(t, 0))
    return found


class EncodingDisagrees(AssertionError):
    """A BMC run's outcome codes differ from the stepper's on the same actions: a bug in the encoding."""


def _make_trace(
    world: World,
    prefix: list[A.Action],
    actions: list[A.Action],
    stepper: Stepper,
    invariant: str,
    start: str,
    bug: str | None,
    z3_codes: list[str] | None = None,
) -> Trace:
    """Run prefix + actions on the stepper, record the outcomes, check the Z3 codes and the violation."""
    state = initial_state(world)
    steps: list[TraceStep] = []
    broke = False
    for n, act in enumerate([*prefix, *actions]):
        post, outcome = stepper(world, state, act)
        j = n - len(prefix)
        if z3_codes is not None and j >= 0 and outcome.code != z3_codes[j]:
            raise EncodingDisagrees(f"step {n} {act}: the stepper says {outcome.code}, the Z3 model {z3_codes[j]}")
        found = {v.invariant for v in check_transition(world, observe(world, state), act, outcome, observe(world, post))}
        broke = invariant in found
        steps.append(TraceStep(action=act, expected=outcome, reqs=step_reqs(act, outcome), violations=tuple(sorted(found))))
        state = post
    if not broke:
        raise EncodingDisagrees(f"the Z3 run does not break {invariant} on the {'bug ' + bug if bug else 'spec'}'s stepper")
    title = f"{invariant}: shortest violation found by Z3 BMC from the {start} state" + (f" (seeded bug {bug})" if bug else "")
    meta = {"invariant": invariant, "start": start, "prefix_steps": len(prefix)}
    if bug:
        meta["seeded_bug"] = bug
    return Trace(world=world, steps=tuple(steps), title=title, source="z3", meta=meta)


# --- the whole proof and its report ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One invariant's line in the report."""

    invariant: str
    reqs: tuple[str, ...]
    method: str
    result: str
    """proved / violated / unknown."""
    scope: str
    """parametric (any number of persons, phones, certificates) or the bounded instance."""
    seconds: float
    trace: Trace | None = None
    note: str = ""


@dataclass(slots=True)
class ProofReport:
    """Every invariant's row, the lemmas' fate, and timing."""

    variants: Variants
    rows: list[Row]
    lemmas: dict[str, str]
    seconds: float
    queries: int
    bug: str | None = None

    @property
    def violated(self) -> list[Row]:
        """Rows with a violation (a trace)."""
        return [r for r in self.rows if r.result == "violated"]


def _bmc_world(persons: int, phones: int, variants: Variants) -> World:
    return scope_world(Scope(persons=persons, phones=phones, variants=variants))


def prove(
    variants: Variants,
    *,
    bug: str | None = None,
    depth: int = 3,
    rlimit: int = RLIMIT,
    timeout: float | None = None,
    jobs: int = 2,
    persons: int = 1,
    phones: int = 1,
    bmc_timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProofReport:
    """Houdini-style 1-induction for every invariant; BMC (initial and onboarded starts) for whatever is not proved."""
    started = time.perf_counter()
    say = progress or (lambda _m: None)
    say(f"induction: {len(INSTANCES)} relation instances x {len(Z_STATE) + len(LEMMAS)} conjuncts, parametric")
    ind = houdini(variants, bug=bug, rlimit=rlimit, timeout=timeout, jobs=jobs)
    unproved = [n for n in Z_STATE if n not in ind.kept] + [n for n, why in ind.transition.items() if why is not None]
    bmc_found: dict[str, BMCResult] = {}
    if unproved and bug is None:
        world = _bmc_world(persons, phones, variants)
        for t in unproved:
            if t in KNOWN_SHAPES:
                start, shape, days = KNOWN_SHAPES[t]
                say(f"BMC from the {start} state along the shape {', '.join(shape)}: {t}")
                bmc_found.update(bmc(world, [t], depth=len(shape), start=start, shape=shape, horizon_days=days, timeout=bmc_timeout))
    if unproved:
        world = _bmc_world(persons, phones, variants)
        for start in ("initial", "onboarded"):
            todo = [t for t in unproved if t not in KNOWN_SHAPES and (t not in bmc_found or bmc_found[t].trace is None)]
            if not todo:
                break
            say(f"BMC from the {start} state to depth {depth} on {persons}x{phones}: {', '.join(todo)}")
            for t, r in bmc(world, todo, depth=depth, start=start, bug=bug, timeout=bmc_timeout).items():
                if r.trace is not None or t not in bmc_found:
                    bmc_found[t] = r
    rows = []
    scope_note = f"BMC {persons}x{phones}, depth {depth}"
    for name, inv in (*STATE_INVARIANTS.items(), *TRANSITION_INVARIANTS.items()):
        secs = ind.seconds.get(name, 0.0)
        proved = name in ind.kept if name in Z_STATE else ind.transition.get(name) is None
        if proved:
            how = "by construction" if name in Z_STATE and Z_STATE[name].by_construction else "1-induction + lemmas"
            rows.append(Row(name, inv.reqs, how, "proved", "parametric", secs))
            continue
        why = ind.dropped.get(name) or ind.transition.get(name) or ""
        r = bmc_found.get(name)
        if r is not None and r.trace is not None:
            rows.append(
                Row(
                    name,
                    inv.reqs,
                    f"BMC from {r.start}" + (" (shape)" if r.guided else ""),
                    "violated",
                    f"{persons}x{phones}, {r.depth} steps after the start",
                    secs + r.seconds,
                    trace=r.trace,
                    note=f"not inductive at {why}",
                )
            )
        else:
            rows.append(
                Row(
                    name,
                    inv.reqs,
                    "1-induction; BMC",
                    "unknown",
                    scope_note,
                    secs + (r.seconds if r else 0.0),
                    note=f"not inductive at {why}",
                )
            )
    lemmas = {n: ("proved" if n in ind.kept else f"dropped: {ind.dropped.get(n)}") for n in LEMMAS}
    return ProofReport(variants=variants, rows=rows, lemmas=lemmas, seconds=time.perf_counter() - started, queries=ind.queries, bug=bug)


def render(report: ProofReport) -> str:
    """The report as a text table."""
    lines = []
    vs = ", ".join(f"{n}={v}" for n, v in report.variants.to_json().items())
    lines.append(f"variants: {vs}" + (f"; seeded bug: {report.bug}" if report.bug else ""))
    w = max(len(r.invariant) for r in report.rows)
    lines.append(f"{'invariant':<{w}}  {'requirements':<24} {'method':<28} {'result':<9} {'scope':<34} {'time':>7}")
    for r in report.rows:
        lines.append(f"{r.invariant:<{w}}  {', '.join(r.reqs):<24} {r.method:<28} {r.result:<9} {r.scope:<34} {r.seconds:6.1f}s")
    lines.append("lemmas (auxiliary, proved inductive with the invariants): " + ", ".join(f"{n} {s}" for n, s in report.lemmas.items()))
    for r in report.rows:
        if r.note and r.result != "proved":
            lines.append(f"  {r.invariant}: {r.note}")
    lines.append(
        "parametric: proved for any number of persons, phones and certificates (unbounded integer-indexed arrays); "
        "a violation is a run of a concrete world"
    )
    lines.append(f"{report.queries} solver queries; total {report.seconds:.1f} s")
    return "\n".join(lines)


def parse_variants(items: list[str], base: Variants | None = None) -> Variants:
    """--variant NAME=VALUE options as Variants (over base, the defaults unless given)."""
    return Variants.parse(items, base)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `mjpki prove`."""
    parser.add_argument("--depth", type=int, default=3, help="BMC depth (steps after the start) for invariants induction does not prove")
    parser.add_argument(
        "--rlimit", type=int, default=RLIMIT, help="Z3 resource units per induction query (deterministic; default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="also cap each induction query at this many seconds of wall clock (off by default)"
    )
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME=VALUE", help="a variant setting, e.g. factory_reset_wipes_se=true"
    )
    parser.add_argument("--jobs", type=int, default=2, help="solver processes")
    parser.add_argument("--persons", type=int, default=1, help="persons in the BMC world")
    parser.add_argument("--phones", type=int, default=1, help="phones in the BMC world")
    parser.add_argument("--bug", choices=sorted(SEEDED_BUGS), help="prove a seeded-bug version of the spec instead")
    parser.add_argument("--traces", metavar="DIR", help="write each violation's trace here")
    parser.add_argument("--json", metavar="FILE", help="write the table as JSON")


def run(args: argparse.Namespace) -> int:
    """`mjpki prove`: print the table; exit 1 if an invariant is violated, 3 if one is unknown, else 0."""
    import sys

    try:
        variants = parse_variants(args.variant, SEEDED_BUGS[args.bug].variants if args.bug else Variants())
    except (ValueError, TypeError) as exc:
        print(f"mjpki: {exc}", file=sys.stderr)
        return 2
    report = prove(
        variants,
        bug=args.bug,
        depth=args.depth,
        rlimit=args.rlimit,
        timeout=args.timeout,
        jobs=args.jobs,
        persons=args.persons,
        phones=args.phones,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(render(report))
    if args.traces:
        out = Path(args.traces)
        out.mkdir(parents=True, exist_ok=True)
        for r in report.violated:
            assert r.trace is not None
            path = out / f"z3-{report.bug + '-' if report.bug else ''}{r.invariant}.json"
            path.write_text(r.trace.dumps(), encoding="utf-8")
            print(f"trace: {path}  (mjpki replay {path})")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "invariant": r.invariant,
                        "reqs": list(r.reqs),
                        "method": r.method,
                        "result": r.result,
                        "scope": r.scope,
                        "seconds": r.seconds,
                    }
                    for r in report.rows
                ],
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    if report.violated:
        return 1
    return 3 if any(r.result == "unknown" for r in report.rows) else 0
