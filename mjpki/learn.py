"""Learn what a black-box applet really does: active automata learning (AALpy's KV) of its status-word behaviour.

A mapper turns each symbol of a small abstract alphabet (`ALPHABET`: select, open a secure channel, verify, sign, the
TSM commands, a tampered and a plain TSM command, reset) into fixed model commands (`mjpki.spec.apdu.commands`), sends them
through `AppletHost`, and answers with their status words only. Every query starts from the same personalised SE
(`personalise`: applet installed with its access rule, both key pairs, certificates and PINs), restored from its
snapshot. The model's machine over the same alphabet is computed exactly, by breadth-first search over
`mjpki.spec.apdu.model.step` from the model state that the personalisation reached in lockstep, then minimised. A product
search of the two machines gives the shortest distinguishing sequences; each maps to a replayable command trace and
names the model's rule and requirements at the first command whose status word differs. docs/learn.md explains more.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import random
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final, Protocol

from aalpy.base import SUL, Oracle
from aalpy.learning_algs import run_KV
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mjpki.adapters.applet import AppletAdapter, ReferenceApplet
from mjpki.applet_host import AppletHost
from mjpki.impl import se_apdu as A
from mjpki.impl.scp03 import StaticKeys
from mjpki.key_pool import pooled_key_generation
from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Observed, Reset, Send, Tamper, Wrapped
from mjpki.spec.apdu.model import StepResult, step
from mjpki.spec.apdu.state import CardConfig, CardState, initial_state
from mjpki.spec.domain import Kind, PinStatus, Profile

__all__ = [
    "SE_ID",
    "ISD_KEYS",
    "Symbol",
    "ALPHABET",
    "SYMBOLS",
    "model_symbol",
    "Applet",
    "Start",
    "PersonalisationError",
    "personalise",
    "Machine",
    "minimise",
    "describe_state",
    "model_machine",
    "machine_from_aalpy",
    "ModelSul",
    "AppletSul",
    "reference_opener",
    "SpecGuidedOracle",
    "NondeterministicApplet",
    "Learned",
    "learn",
    "Difference",
    "Comparison",
    "compare",
    "to_dot",
    "LearnRun",
    "learn_applet",
    "write_outputs",
    "Replayed",
    "replay",
    "load_applet",
    "main",
]

SE_ID: Final = "SE-LEARN-01"
ISD_KEYS: Final = StaticKeys(
    enc=bytes.fromhex("404142434445464748494A4B4C4D4E4F"),
    mac=bytes.fromhex("505152535455565758595A5B5C5D5E5F"),
    dek=bytes.fromhex("606162636465666768696A6B6C6D6E6F"),
)
"""The project's test key set (as in tests/test_se.py); the APSD shares it (GpSe's default)."""

_APP_HASH: Final = hashlib.sha256(b"mjpki learn: signing certificate of the official app").digest()
_PINS: Final = {Kind.AUTH: b"1234", Kind.SIGNING: b"ABCD1234"}
_TEMP_PINS: Final = {Kind.AUTH: b"5678", Kind.SIGNING: b"TEMP5678"}
_WRONG_PIN: Final = b"9999"
_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(b"mjpki learn").digest()
_RESET_OUTPUT: Final = "-"
"""A reset has no status word: its output is this placeholder, on both sides."""


# --- the abstract alphabet -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Symbol:
    """One abstract input: a fixed list of model commands; its output is their status words joined by '/'."""

    name: str
    commands: tuple[Command, ...]
    meaning: str


def _select_pin() -> Send:
    return Send(A.select_ef(A.EF_PIN[Kind.AUTH]))


ALPHABET: Final[tuple[Symbol, ...]] = (
    Symbol("reset", (Reset(),), "card reset (power cycle)"),
    Symbol("select-isd", (Send(A.select_aid(A.ISD_AID)),), "SELECT the ISD by AID"),
    Symbol("select-jpki", (Send(A.select_aid(A.JPKI_AID)),), "SELECT the JPKI applet by AID"),
    Symbol("open-33", (InitUpdate(0x30), ExtAuth(0x33)), "INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected domain, level 33"),
    Symbol(
        "open-01",
        (InitUpdate(0x30), ExtAuth(0x01)),
        "INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected domain, level 01 (C-MAC only)",
    ),
    Symbol("verify-right", (_select_pin(), Send(A.verify(_PINS[Kind.AUTH]))), "SELECT the auth PIN EF, VERIFY the right PIN"),
    Symbol("verify-wrong", (_select_pin(), Send(A.verify(_WRONG_PIN))), "SELECT the auth PIN EF, VERIFY a wrong PIN"),
    Symbol("verify-empty", (_select_pin(), Send(A.verify(None))), "SELECT the auth PIN EF, VERIFY without data (tries left)"),
    Symbol(
        "sign",
        (Send(A.select_ef(A.EF_KEY[Kind.AUTH])), Send(A.compute_signature(_DIGEST_INFO))),
        "SELECT the auth key EF, COMPUTE DIGITAL SIGNATURE over a SHA-256 DigestInfo",
    ),
    Symbol("generate-r", (Wrapped(A.generate_r()),), "GENERATE R, wrapped"),
    Symbol(
        "generate-key-pair",
        (Wrapped(A.generate_key_pair([Kind.AUTH])), Wrapped(A.get_output(A.MAX_BLOCK))),
        "GENERATE KEY PAIR (auth) and GET OUTPUT of the rest, wrapped: the whole 335-byte output",
    ),
    Symbol("set-temp-pin", (Wrapped(A.set_temporary_pin(Kind.AUTH, _TEMP_PINS[Kind.AUTH])),), "SET TEMPORARY PIN (auth, P2 00), wrapped"),
    Symbol(
        "unblock-pin",
        (Wrapped(A.unblock_and_set_pin(Kind.AUTH, _TEMP_PINS[Kind.AUTH], _PINS[Kind.AUTH])),),
        "UNBLOCK AND SET PIN (auth) with the right temporary PIN, back to the personalised PIN, wrapped",
    ),
    Symbol("delete-keys", (Wrapped(A.delete_keys([Kind.AUTH])),), "DELETE KEYS AND CERTIFICATES (auth), wrapped"),
    Symbol("slot-status", (Wrapped(A.get_slot_status()),), "GET SLOT STATUS, wrapped (probes the session's level)"),
    Symbol("tampered", (Wrapped(A.get_slot_status(), Tamper.MAC),), "GET SLOT STATUS wrapped with one C-MAC bit flipped"),
    Symbol("plain-tsm", (Send(A.get_slot_status()),), "GET SLOT STATUS sent plain (CLA 80), outside any session"),
)
"""17 symbols; concrete values are fixed per symbol (PINs, temporary PIN, the data signed)."""

SYMBOLS: Final = {s.name: s for s in ALPHABET}


def _output(observed: Observed) -> str:
    """A command's abstract output: its status word; a '!' marks an answer the host's own checks reject."""
    text = observed.sw_hex or _RESET_OUTPUT
    return text + "!" if observed.host_error is not None else text


def _predicted(result: StepResult) -> str:
    return result.expected.sw.hex().upper() or _RESET_OUTPUT


def model_symbol(state: CardState, symbol: Symbol) -> tuple[str, CardState, tuple[StepResult, ...]]:
    """The model's output for one symbol (predicting only: card-chosen values stay unbound), its next state and steps."""
    results: list[StepResult] = []
    for command in symbol.commands:
        result = step(state, command)
        results.append(result)
        state = result.state
    return "/".join(_predicted(r) for r in results), state, tuple(results)


# --- the personalised start ------------------------------------------------------------------------------------------


class Applet(Protocol):
    """What learning needs of an applet class: GpSe's constructor, snapshot and the transport of ReferenceApplet."""

    def __call__(self, se_id: str, isd_keys: StaticKeys) -> Any: ...

    def from_snapshot(self, snapshot: Any) -> Any: ...


class PersonalisationError(Exception):
    """The applet answered the personalisation otherwise than the model demands (the message names the step)."""

    def __init__(self, message: str, trace: Sequence[Command]) -> None:
        super().__init__(message)
        self.trace = tuple(trace)


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """A personalised applet: its memory (snapshot), the model state it corresponds to, the commands that made it."""

    snapshot: dict[str, Any]
    state: CardState
    trace: tuple[Command, ...]
    keys: StaticKeys = ISD_KEYS


@cache
def _ca() -> Any:
    """The reference CAs (two RSA-2048 keys), made once per process."""
    from mjpki.impl.ca import JpkiCa

    return JpkiCa.generate()


_SERIALS = itertools.count(0x1EA0_0000)


def _certificate(kind: Kind, spki: bytes) -> bytes:
    from mjpki.impl.ca import PersonalData

    public_key = serialization.load_der_public_key(spki)
    assert isinstance(public_key, rsa.RSAPublicKey)
    now = datetime.now(UTC).replace(microsecond=0)
    personal = PersonalData(name="学習 太郎", address="東京都千代田区永田町1-7-1", birth_date=date(1990, 1, 1), sex="男")
    cert = _ca().issue(
        kind=kind,
        profile=Profile.PHONE,
        serial=next(_SERIALS),
        public_key=public_key,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=365),
        personal=personal if kind is Kind.SIGNING else None,
    )
    return cert.public_bytes(serialization.Encoding.DER)


def personalise(applet: Applet, *, se_id: str = SE_ID, keys: StaticKeys = ISD_KEYS) -> Start:
    """Personalise a new `applet(se_id, keys)` in lockstep with the model; PersonalisationError where they part.

    The SEI-TSM installs the applet and its access rule, the SP-TSM makes R, both key pairs, writes both certificates and
    CA certificates, sets temporary PINs and the real PINs, then the card is reset. Every answer is judged by the model
    with the observation, so the model state at the end has the card's public keys and certificates bound.
    """
    se = applet(se_id, keys)
    host = AppletHost(ReferenceApplet(se), isd_keys=keys)
    state = initial_state(CardConfig(se_id=se_id, caller=None, reader_access=True))
    trace: list[Command] = []

    def run(command: Command) -> Observed:
        nonlocal state
        trace.append(command)
        observed = host.run(command).observed
        result = step(state, command, observed)
        if result.problems:
            raise PersonalisationError(f"personalisation step {len(trace)} ({result.expected.rule}): {result.problems[0]}", trace)
        state = result.state
        return observed

    for command in (Send(A.select_aid(A.ISD_AID)), InitUpdate(0x30), ExtAuth(0x33)):
        run(command)
    run(Wrapped(A.install_for_install_and_selectable()))
    run(Wrapped(A.store_access_rules({A.JPKI_AID: [_APP_HASH]})))
    for command in (Send(A.select_aid(A.JPKI_AID)), InitUpdate(0x30), ExtAuth(0x33), Wrapped(A.generate_r())):
        run(command)
    observed = run(Wrapped(A.generate_key_pair([Kind.AUTH, Kind.SIGNING])))
    output = observed.data
    while observed.sw == A.SW_MORE_DATA:
        observed = run(Wrapped(A.get_output(len(output))))
        output += observed.data
    public_keys = A.parse_key_pair_output(output).public_keys
    for kind in (Kind.AUTH, Kind.SIGNING):
        for apdu in A.write_certificate(A.CERT_TARGET[("user", kind)], _certificate(kind, public_keys[kind])):
            run(Wrapped(apdu))
        ca_der = _ca().ca(kind).certificate.public_bytes(serialization.Encoding.DER)
        for apdu in A.write_certificate(A.CERT_TARGET[("ca", kind)], ca_der):
            run(Wrapped(apdu))
        run(Wrapped(A.set_temporary_pin(kind, _TEMP_PINS[kind])))
        run(Wrapped(A.unblock_and_set_pin(kind, _TEMP_PINS[kind], _PINS[kind])))
    run(Reset())
    return Start(snapshot=se.snapshot(), state=state, trace=tuple(trace), keys=keys)


# --- Mealy machines ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Machine:
    """A deterministic Mealy machine over named inputs: states 0..n-1 in breadth-first order, 0 the initial one."""

    inputs: tuple[str, ...]
    table: tuple[tuple[tuple[str, int], ...], ...]
    """table[state][input index] = (output, next state)."""
    access: tuple[tuple[str, ...], ...]
    """A shortest input word reaching each state."""
    labels: tuple[str, ...] = ()
    """What each state stands for (the model's view of the card), where known; only for the drawing."""

    @property
    def size(self) -> int:
        """The number of states."""
        return len(self.table)

    def index(self, name: str) -> int:
        """The position of an input; KeyError names the known ones."""
        try:
            return self.inputs.index(name)
        except ValueError:
            raise KeyError(f"no input {name!r}; known: {', '.join(self.inputs)}") from None

    def run(self, word: Sequence[str], state: int = 0) -> list[str]:
        """The outputs of a word from a state (the initial one by default)."""
        outputs: list[str] = []
        for name in word:
            output, state = self.table[state][self.index(name)]
            outputs.append(output)
        return outputs


def _explore(
    inputs: Sequence[str],
    initial: Hashable,
    succ: Callable[[Hashable, str], tuple[str, Hashable]],
    describe: Callable[[Hashable], str] | None = None,
) -> Machine:
    """The machine of everything reachable from `initial` under `succ`, breadth first (not minimised)."""
    ids: dict[Hashable, int] = {initial: 0}
    keys: list[Hashable] = [initial]
    access: list[tuple[str, ...]] = [()]
    rows: list[tuple[tuple[str, int], ...]] = []
    i = 0
    while i < len(keys):
        row: list[tuple[str, int]] = []
        for name in inputs:
            output, nxt = succ(keys[i], name)
            if nxt not in ids:
                ids[nxt] = len(keys)
                keys.append(nxt)
                access.append((*access[i], name))
            row.append((output, ids[nxt]))
        rows.append(tuple(row))
        i += 1
    labels = tuple(describe(k) for k in keys) if describe is not None else ()
    return Machine(tuple(inputs), tuple(rows), tuple(access), labels)


def minimise(machine: Machine) -> Machine:
    """The minimal machine with the same behaviour (Moore's partition refinement), renumbered breadth first.

    A merged state keeps the label of its member with the shortest access word.
    """
    outputs = [tuple(out for out, _ in row) for row in machine.table]
    block = _blocks(outputs)
    while True:
        refined = _blocks([(block[s], tuple(block[t] for _, t in row)) for s, row in enumerate(machine.table)])
        if max(refined, default=0) == max(block, default=0):
            break
        block = refined
    representative: dict[int, int] = {}
    for s in range(machine.size):
        representative.setdefault(block[s], s)

    def succ(b: Hashable, name: str) -> tuple[str, Hashable]:
        assert isinstance(b, int)
        output, target = machine.table[representative[b]][machine.index(name)]
        return output, block[target]

    def describe(b: Hashable) -> str:
        assert isinstance(b, int)
        return machine.labels[representative[b]]

    return _explore(machine.inputs, block[0], succ, describe if machine.labels else None)


def _blocks(signatures: Sequence[Hashable]) -> list[int]:
    numbers: dict[Hashable, int] = {}
    return [numbers.setdefault(sig, len(numbers)) for sig in signatures]


def describe_state(state: CardState) -> str:
    """A short description of a model state as far as the alphabet can tell: selection, session, auth slot, R."""
    applet = state.applet
    if applet is None:
        return "no applet"
    session = applet.apsd if state.applet_selected else state.isd
    where = "JPKI" if state.applet_selected else "ISD"
    level = f" {session.level:02X}" if session.level is not None else ""
    slot = applet.slots[Kind.AUTH]
    if not slot.key:
        auth = "no key"
    elif slot.pin_status is None:
        auth = "key, no PIN"
    elif slot.pin_status is PinStatus.TEMP_BLOCKED:
        auth = f"temp PIN {slot.temp_tries}"
    else:
        auth = f"PIN {slot.pin_status.value} {slot.tries}"
    if Kind.AUTH in state.verified:
        auth += " verified"
    return f"{where}{level}; {auth}" + ("; R" if applet.r_pending else "")


def model_machine(start: CardState, alphabet: Sequence[Symbol] = ALPHABET) -> Machine:
    """The model's exact machine over the alphabet from `start`: breadth-first search over model states, minimised."""
    symbols = {s.name: s for s in alphabet}

    def succ(state: Hashable, name: str) -> tuple[str, Hashable]:
        assert isinstance(state, CardState)
        output, nxt, _ = model_symbol(state, symbols[name])
        return output, nxt

    def describe(state: Hashable) -> str:
        assert isinstance(state, CardState)
        return describe_state(state)

    return minimise(_explore([s.name for s in alphabet], start, succ, describe))


def machine_from_aalpy(mealy: Any, inputs: Sequence[str]) -> Machine:
    """An AALpy MealyMachine as a Machine over `inputs` (its reachable part, breadth first)."""

    def succ(state: Hashable, name: str) -> tuple[str, Hashable]:
        return state.output_fun[name], state.transitions[name]  # type: ignore[attr-defined]

    return _explore(inputs, mealy.initial_state, succ)


# --- the systems under learning --------------------------------------------------------------------------------------


class ModelSul(SUL):  # type: ignore[misc]
    """The model as a system under learning: `mjpki.spec.apdu.model.step` predicting from the personalised start state."""

    def __init__(self, start: CardState, alphabet: Sequence[Symbol] = ALPHABET) -> None:
        super().__init__()
        self._start = start
        self._state = start
        self._symbols = {s.name: s for s in alphabet}

    def pre(self) -> None:
        """Back to the start state."""
        self._state = self._start

    def post(self) -> None:
        """Nothing to release."""

    def step(self, letter: Any) -> str:
        """The model's output for one symbol."""
        output, self._state, _ = model_symbol(self._state, self._symbols[letter])
        return output


class AppletSul(SUL):  # type: ignore[misc]
    """An applet as a system under learning: each query gets an adapter in the start state and a new host."""

    def __init__(self, open_adapter: Callable[[], AppletAdapter], keys: StaticKeys, alphabet: Sequence[Symbol] = ALPHABET) -> None:
        super().__init__()
        self._open = open_adapter
        self._keys = keys
        self._symbols = {s.name: s for s in alphabet}
        self._adapter: AppletAdapter | None = None
        self._host: AppletHost | None = None

    def pre(self) -> None:
        """A fresh adapter in the start state (e.g. the personalised SE restored from its snapshot) and a fresh host."""
        self._adapter = self._open()
        self._host = AppletHost(self._adapter, isd_keys=self._keys)

    def post(self) -> None:
        """Release the adapter."""
        if self._adapter is not None:
            self._adapter.close()
        self._adapter = self._host = None

    def step(self, letter: Any) -> str:
        """Send the symbol's commands; their status words joined by '/'."""
        assert self._host is not None, "pre() first"
        return "/".join(_output(self._host.run(command).observed) for command in self._symbols[letter].commands)


def reference_opener(applet: Applet, start: Start) -> Callable[[], AppletAdapter]:
    """Adapters over `applet.from_snapshot(start.snapshot)`: the personalised SE, restored for each query."""
    snapshot = json.loads(json.dumps(start.snapshot))  # a private copy: nothing the caller does later reaches the queries

    def open_adapter() -> AppletAdapter:
        return ReferenceApplet(applet.from_snapshot(snapshot))

    return open_adapter


# --- learning --------------------------------------------------------------------------------------------------------


class SpecGuidedOracle(Oracle):  # type: ignore[misc]
    """Equivalence queries guided by the model's machine, then a bounded conformance test of the hypothesis.

    First every shortest word on which the hypothesis and the model's machine differ is tried on the applet: where the
    applet sides with the model, the hypothesis is wrong (a counterexample); so the differences left at the end are the
    applet's own. Then an HSI-method test suite of the model's machine (complete for applets no larger than the model),
    then random walks from every hypothesis state.
    """

    def __init__(
        self, alphabet: list[str], sul: SUL, model: Machine, *, walks_per_state: int = 10, walk_len: int = 8, seed: int = 1
    ) -> None:
        super().__init__(alphabet, sul)
        self._model = model
        self._suite = _hsi_suite(model)
        self._walks_per_state = walks_per_state
        self._walk_len = walk_len
        self._random = random.Random(seed)

    def find_cex(self, hypothesis: Any) -> tuple[str, ...] | None:
        """A word on which the applet and the hypothesis differ, or None."""
        hyp = machine_from_aalpy(hypothesis, self.alphabet)
        for word in (d.word for d in _product(hyp, self._model)[0]):
            if (cex := self._check(hyp, word)) is not None:
                return cex
        for word in self._suite:
            if (cex := self._check(hyp, word)) is not None:
                return cex
        for state in range(hyp.size):
            for _ in range(self._walks_per_state):
                word = hyp.access[state] + tuple(self._random.choice(self.alphabet) for _ in range(self._walk_len))
                if (cex := self._check(hyp, word)) is not None:
                    return cex
        return None

    def _check(self, hyp: Machine, word: tuple[str, ...]) -> tuple[str, ...] | None:
        self.num_queries += 1
        self.num_steps += len(word)
        applet = self.sul.query(word)
        expected = hyp.run(word)
        for i, (a, b) in enumerate(zip(applet, expected, strict=True)):
            if a != b:
                return word[: i + 1]
        return None


def _separating_word(machine: Machine, p: int, q: int) -> tuple[str, ...] | None:
    """A shortest word on which states p and q answer differently (None: equivalent)."""
    seen = {(p, q)}
    queue: deque[tuple[int, int, tuple[str, ...]]] = deque([(p, q, ())])
    while queue:
        a, b, word = queue.popleft()
        for i, name in enumerate(machine.inputs):
            (oa, na), (ob, nb) = machine.table[a][i], machine.table[b][i]
            if oa != ob:
                return (*word, name)
            if (na, nb) not in seen:
                seen.add((na, nb))
                queue.append((na, nb, (*word, name)))
    return None


def _maximal(words: Iterable[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The words that are no proper prefix of another: a prefix's outputs are seen along the longer word."""
    unique = set(words)
    prefixes = {w[:i] for w in unique for i in range(len(w))}
    return unique - prefixes


def _hsi_suite(machine: Machine) -> list[tuple[str, ...]]:
    """An HSI-method test suite: every transition, then the target state's harmonised identifiers; shortest first.

    One shortest separating word per pair of states, shared by both states' identifiers, so the suite finds any
    applet that differs from `machine` and has no more states than it (and often more).
    """
    separating: dict[tuple[int, int], tuple[str, ...]] = {}
    for p, q in itertools.combinations(range(machine.size), 2):
        word = _separating_word(machine, p, q)
        if word is not None:
            separating[p, q] = separating[q, p] = word
    identifiers = [_maximal(w for (p, _), w in separating.items() if p == t) or {()} for t in range(machine.size)]
    words = _maximal(
        (*machine.access[s], name, *w)
        for s in range(machine.size)
        for i, name in enumerate(machine.inputs)
        for w in identifiers[machine.table[s][i][1]]
    )
    return sorted(words, key=lambda w: (len(w), w))


class NondeterministicApplet(Exception):
    """The applet answered the same input word with different status words (no Mealy machine describes it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Learned:
    """A learned machine and what learning it cost (queries and symbols actually sent to the applet, not cache hits)."""

    machine: Machine
    seconds: float
    queries: int
    steps: int
    rounds: int


def learn(sul: SUL, model: Machine, *, walks_per_state: int = 10, walk_len: int = 8, seed: int = 1) -> Learned:
    """KV on the applet with the spec-guided oracle; the learned machine, minimised and numbered breadth first."""
    inputs = list(model.inputs)
    oracle = SpecGuidedOracle(inputs, sul, model, walks_per_state=walks_per_state, walk_len=walk_len, seed=seed)
    queries, steps = sul.num_queries, sul.num_steps
    started = time.monotonic()
    try:
        # KV rather than L#: with this alphabet L#'s own bookkeeping (adaptive distinguishing sequences) costs 3x the time
        mealy, info = run_KV(inputs, sul, oracle, automaton_type="mealy", return_data=True, print_level=0)
    except SystemExit as exc:  # AALpy's cache reports an answer that changed for the same word this way
        raise NondeterministicApplet("; ".join(str(exc.code).splitlines())) from None
    return Learned(
        machine=minimise(machine_from_aalpy(mealy, inputs)),
        seconds=time.monotonic() - started,
        queries=sul.num_queries - queries,
        steps=sul.num_steps - steps,
        rounds=int(info.get("learning_rounds", 0)),
    )


# --- comparing -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Split:
    word: tuple[str, ...]
    left_state: int
    right_state: int
    left: str
    right: str


def _product(left: Machine, right: Machine) -> tuple[list[_Split], dict[int, int]]:
    """Every reachable (left, right) state pair and input whose outputs differ, with a shortest word to it (BFS).

    Also, for each left state reached, the first right state it was reached together with.
    """
    seen = {(0, 0)}
    partner = {0: 0}
    queue: deque[tuple[int, int, tuple[str, ...]]] = deque([(0, 0, ())])
    splits: list[_Split] = []
    while queue:
        p, q, word = queue.popleft()
        for name in left.inputs:
            (op, np_), (oq, nq) = left.table[p][left.index(name)], right.table[q][right.index(name)]
            if op != oq:
                splits.append(_Split(word=(*word, name), left_state=p, right_state=q, left=op, right=oq))
            elif (np_, nq) not in seen:  # past a difference the runs have parted: only agreeing transitions lead on
                seen.add((np_, nq))
                partner.setdefault(np_, nq)
                queue.append((np_, nq, (*word, name)))
    return splits, partner


@dataclass(frozen=True, slots=True, kw_only=True)
class Difference:
    """A shortest input word on which the applet and the model differ, as symbols and as the concrete command trace."""

    word: tuple[str, ...]
    applet: str
    """The applet's output of the last symbol (learned)."""
    model: str
    """The model's output of the last symbol."""
    trace: tuple[Command, ...]
    at: int
    """The index in `trace` of the first command whose status word differs."""
    rule: str
    """The model's rule that decided that command's answer."""
    reqs: tuple[str, ...]
    learned_state: int
    model_state: int

    def describe(self) -> str:
        """One line: the word, both outputs, the rule and requirements."""
        reqs = ", ".join(self.reqs) or "no requirement"
        return f"{' '.join(self.word)} -> applet {self.applet}, model {self.model} [{self.rule}: {reqs}]"

    def to_json(self) -> dict[str, Any]:
        """The replayable trace: commands from the personalised start (start-snapshot.json), and where they differ."""
        return {
            "word": list(self.word),
            "applet_output": self.applet,
            "model_output": self.model,
            "differs_at": self.at,
            "rule": self.rule,
            "reqs": list(self.reqs),
            "start": "a personalised SE: mjpki.learn.personalise(applet class), then these commands (mjpki.learn.replay)",
            "commands": [c.to_json() for c in self.trace],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """The learned machine against the model's: their differences (none: equal) and the transitions that differ."""

    learned: Machine
    model: Machine
    differences: tuple[Difference, ...]
    learned_marks: frozenset[tuple[int, str]] = field(default_factory=frozenset)
    """Transitions (state, input) of the learned machine where a difference shows."""
    learned_paths: frozenset[tuple[int, str]] = field(default_factory=frozenset)
    """Transitions on the way there (along the reported shortest words)."""
    model_marks: frozenset[tuple[int, str]] = field(default_factory=frozenset)
    model_paths: frozenset[tuple[int, str]] = field(default_factory=frozenset)

    @property
    def equal(self) -> bool:
        """Whether the two machines have the same behaviour."""
        return not self.differences


def compare(learned: Machine, model: Machine, start: CardState, alphabet: Sequence[Symbol] = ALPHABET) -> Comparison:
    """The distinguishing words of the two machines, one (the shortest) per kind of difference, mapped to commands."""
    splits, partner = _product(learned, model)
    symbols = {s.name: s for s in alphabet}
    kept: dict[tuple[str, str, str], Difference] = {}
    for split in splits:
        key = (split.word[-1], split.left, split.right)
        if key not in kept:  # BFS order: the first one is a shortest
            kept[key] = _difference(split, start, symbols)
    if model.labels:
        # a learned state is drawn with what the model state it first runs along with stands for
        labels = tuple(f"~{partner[p]}: {model.labels[partner[p]]}" if p in partner else "" for p in range(learned.size))
        learned = replace(learned, labels=labels)
    differences = tuple(sorted(kept.values(), key=lambda d: (len(d.word), d.word)))
    words = [d.word for d in differences]
    return Comparison(
        learned=learned,
        model=model,
        differences=differences,
        learned_marks=frozenset((s.left_state, s.word[-1]) for s in splits),
        learned_paths=_path_transitions(learned, words),
        model_marks=frozenset((s.right_state, s.word[-1]) for s in splits),
        model_paths=_path_transitions(model, words),
    )


def _path_transitions(machine: Machine, words: Iterable[tuple[str, ...]]) -> frozenset[tuple[int, str]]:
    """The transitions each word takes before its last input."""
    taken: set[tuple[int, str]] = set()
    for word in words:
        state = 0
        for name in word[:-1]:
            taken.add((state, name))
            state = machine.table[state][machine.index(name)][1]
    return frozenset(taken)


def _difference(split: _Split, start: CardState, symbols: dict[str, Symbol]) -> Difference:
    """Replay the word on the model: its commands, and the rule at the first command whose status word differs."""
    state = start
    trace: list[Command] = []
    results: tuple[StepResult, ...] = ()
    for name in split.word:
        trace.extend(symbols[name].commands)
        _, state, results = model_symbol(state, symbols[name])
    applet_sws = split.left.split("/")
    offset = next((i for i, r in enumerate(results) if i >= len(applet_sws) or applet_sws[i] != _predicted(r)), len(results) - 1)
    at = len(trace) - len(results) + offset
    return Difference(
        word=split.word,
        applet=split.left,
        model=split.right,
        trace=tuple(trace),
        at=at,
        rule=results[offset].expected.rule,
        reqs=results[offset].reqs,
        learned_state=split.left_state,
        model_state=split.right_state,
    )


# --- rendering -------------------------------------------------------------------------------------------------------


def to_dot(
    machine: Machine, *, title: str, marks: frozenset[tuple[int, str]] = frozenset(), paths: frozenset[tuple[int, str]] = frozenset()
) -> str:
    """Graphviz dot: edges grouped per (source, target) as 'inputs / output' lines.

    Marked transitions (where a difference shows) and their states are red, transitions on the shortest way there red and
    dashed. Plain self-loops are not drawn (there are hundreds); each state's tooltip lists them.
    """
    red_states = {s for s, _ in marks}
    lines = [
        "digraph machine {",
        f'  label="{_esc(title)}"; labelloc=t; rankdir=LR; fontname="Helvetica";',
        '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=8];',
        "  __start [shape=point]; __start -> s0;",
    ]
    for s, row in enumerate(machine.table):
        loops = _grouped((name, output) for name, (output, target) in zip(machine.inputs, row, strict=True) if target == s)
        tooltip = f"access: {' '.join(machine.access[s]) or '(start)'}\nloops: " + "\n".join(loops)
        text = _esc(f"{s}\n{machine.labels[s]}" if machine.labels and machine.labels[s] else str(s))
        colour = ", color=red, fontcolor=red, penwidth=2" if s in red_states else ""
        lines.append(f'  s{s} [label="{text}", tooltip="{_esc(tooltip)}"{colour}];')
    for s, row in enumerate(machine.table):
        edges: dict[tuple[int, int], list[tuple[str, str]]] = {}
        for name, (output, target) in zip(machine.inputs, row, strict=True):
            how = 2 if (s, name) in marks else 1 if (s, name) in paths else 0
            if target != s or how:
                edges.setdefault((target, how), []).append((name, output))
        for (target, how), pairs in sorted(edges.items()):
            style = _EDGE_STYLES[how]
            lines.append(f'  s{s} -> s{target} [label="{_esc(chr(10).join(_grouped(pairs)))}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


_EDGE_STYLES: Final = ("", ", color=red, fontcolor=red, style=dashed", ", color=red, fontcolor=red, penwidth=2.5")


def _grouped(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """'input, input / output' lines, one per output, in first-seen order."""
    by_output: dict[str, list[str]] = {}
    for name, output in pairs:
        by_output.setdefault(output, []).append(name)
    return [f"{', '.join(names)} / {output}" for output, names in by_output.items()]


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _svg(dot_path: Path) -> Path | None:
    """dot -Tsvg next to the .dot file; None if Graphviz is not installed (the .dot is still there)."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    svg = dot_path.with_suffix(".svg")
    subprocess.run([exe, "-Tsvg", "-o", str(svg), str(dot_path)], check=True, capture_output=True, timeout=120)
    return svg


# --- one run ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LearnRun:
    """Everything one `mjpki learn` produced: the start, the learned machine, the comparison, the timings."""

    start: Start
    learned: Learned
    comparison: Comparison
    model_seconds: float
    personalise_seconds: float


def learn_applet(applet: Applet, *, alphabet: Sequence[Symbol] = ALPHABET, seed: int = 1, pooled_keys: bool = True) -> LearnRun:
    """Personalise `applet`, learn it from that start, compute the model's machine from the same start, compare."""
    t0 = time.monotonic()
    start = personalise(applet)
    t1 = time.monotonic()
    model = model_machine(start.state, alphabet)
    t2 = time.monotonic()
    sul = AppletSul(reference_opener(applet, start), start.keys, alphabet)
    with pooled_key_generation() if pooled_keys else contextlib.nullcontext():
        learned = learn(sul, model, seed=seed)
    comparison = compare(learned.machine, model, start.state, alphabet)
    return LearnRun(start=start, learned=learned, comparison=comparison, model_seconds=t2 - t1, personalise_seconds=t1 - t0)


def write_outputs(run: LearnRun, out: Path, *, name: str) -> list[Path]:
    """Write learned.dot/.svg, model.dot/.svg, start-snapshot.json, and diff-N.json per difference into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    c = run.comparison
    verdict = "EQUAL" if c.equal else f"{len(c.differences)} difference(s) in red"
    for stem, machine, marks, paths, title in (
        ("learned", c.learned, c.learned_marks, c.learned_paths, f"{name}: learned, {c.learned.size} states ({verdict})"),
        ("model", c.model, c.model_marks, c.model_paths, f"mjpki.spec.apdu.model: {c.model.size} states ({verdict})"),
    ):
        dot = out / f"{stem}.dot"
        dot.write_text(to_dot(machine, title=title, marks=marks, paths=paths), encoding="utf-8")
        written.append(dot)
        svg = _svg(dot)
        if svg is not None:
            written.append(svg)
    snapshot = out / "start-snapshot.json"
    # the personalised SE's memory: a trace replays from GpSe-like cls.from_snapshot(this); test keys only
    snapshot.write_text(json.dumps(run.start.snapshot, indent=1) + "\n", encoding="utf-8")
    written.append(snapshot)
    for old in out.glob("diff-*.json"):
        old.unlink()  # a difference file from an earlier run would be mistaken for one of this run
    for i, difference in enumerate(c.differences, start=1):
        path = out / f"diff-{i}.json"
        path.write_text(json.dumps({"applet": name, **difference.to_json()}, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written


# --- replaying a trace ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Replayed:
    """One replayed command: what the applet answered and the model's judgement of it (problems empty: conforms)."""

    command: Command
    observed: Observed
    result: StepResult


def replay(applet: Applet, commands: Sequence[Command], *, start: Start | None = None) -> list[Replayed]:
    """Commands on a personalised applet in lockstep with the model (observations judged and bound), step by step.

    From `start`, or from a new personalisation: a trace's commands do not depend on values the card chose, so a
    difference found on one personalised SE shows on any other.
    """
    start = start or personalise(applet)
    host = AppletHost(ReferenceApplet(applet.from_snapshot(start.snapshot)), isd_keys=start.keys)
    state = start.state
    replayed: list[Replayed] = []
    for command in commands:
        observed = host.run(command).observed
        result = step(state, command, observed)
        replayed.append(Replayed(command=command, observed=observed, result=result))
        state = result.state
    return replayed


# --- the command line ------------------------------------------------------------------------------------------------

_SHOWN: Final = 10
"""Distinguishing sequences printed; all of them are written to --out."""


def load_applet(spec: str) -> Applet:
    """The class named by MODULE:CLASS, if it is GpSe-like; AdapterSpecError (one line) otherwise."""
    from mjpki.adapterspec import AdapterSpecError, load_object

    obj = load_object(spec, what="applet", form="module:Class", example="mjpki.impl.se:GpSe")
    missing = [m for m in ("from_snapshot", "snapshot", "transmit", "power_reset") if not callable(getattr(obj, m, None))]
    if not isinstance(obj, type) or missing:
        what = f"has no {', '.join(missing)}" if missing else f"is a {type(obj).__name__}, not a class"
        raise AdapterSpecError(f"applet {spec!r} {what}: learn needs a class like mjpki.impl.se.GpSe")
    return obj  # type: ignore[return-value]


def main(args: Any) -> int:
    """`mjpki learn`: 0 when the learned machine equals the model's, 1 when they differ, 2 on usage errors."""
    import sys

    from mjpki.adapterspec import AdapterSpecError

    try:
        applet = load_applet(args.applet)
    except AdapterSpecError as exc:
        print(f"learn: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(f"learn: {args.applet}, {len(ALPHABET)} symbols, every query from a personalised SE", flush=True)
    try:
        run = learn_applet(applet, seed=args.seed)
    except PersonalisationError as exc:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "personalisation.json"
        path.write_text(
            json.dumps({"applet": args.applet, "commands": [c.to_json() for c in exc.trace]}, indent=1) + "\n", encoding="utf-8"
        )
        print(f"DIFFERENT before learning: {exc}\n  trace: {path}")
        return 1
    except NondeterministicApplet as exc:
        print(f"DIFFERENT: the applet is not deterministic in its status words: {exc}")
        return 1
    c, lr = run.comparison, run.learned
    print(f"  personalised in lockstep with the model: {len(run.start.trace)} commands, {run.personalise_seconds:.1f} s")
    print(f"  model:   {c.model.size} states (breadth-first search over mjpki.spec.apdu.model, minimised; {run.model_seconds:.1f} s)")
    cost = f"{lr.queries} queries, {lr.steps} symbols, {lr.rounds} rounds, {lr.seconds:.1f} s"
    print(f"  learned: {c.learned.size} states (AALpy KV with the spec-guided oracle: {cost})")
    written = write_outputs(run, out, name=args.applet)
    if c.equal:
        print("EQUAL: the applet's learned machine is the model's")
    else:
        print(f"DIFFERENT: {len(c.differences)} distinguishing sequence(s), shortest first")
        for i, d in enumerate(c.differences[:_SHOWN], start=1):
            reqs = ", ".join(d.reqs) or "no requirement"
            print(f"  {i}. {' '.join(d.word)}")
            where = f"command {d.at + 1} of {len(d.trace)}, rule {d.rule} ({reqs})"
            print(f"     applet {d.applet}, model {d.model}; {where} -> {out / f'diff-{i}.json'}")
        if len(c.differences) > _SHOWN:
            print(f"  ... and {len(c.differences) - _SHOWN} more in {out}/diff-*.json")
    print(f"written: {', '.join(p.name for p in written)} in {out}/")
    return 0 if c.equal else 1
