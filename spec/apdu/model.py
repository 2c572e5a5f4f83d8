"""The applet-level model: `step(state, command, observed)` gives the answer docs/apdu-interface.md demands.

Pure and deterministic: no I/O, no randomness. Each step names the clause (`interface.RULES`) that decided the answer.
Where the card chooses a value (S, key pairs, R, signatures, random challenges, SCP03 card challenges and counters),
the expectation is a property, checked against the observation, and the value is then bound into the state: a later
signature must verify under the public key the card gave out, R must hash to the S answered before, a counter must grow.
With `observed=None` the step only predicts (status word and data shape), binding nothing: what automata learning and
the refinement test use.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Observed, Reset, Send, SwitchCaller, Tamper, Wrapped
from mjpki.spec.apdu.state import Applet, CardState, Chain, Domain, Output, Session, Slot
from mjpki.spec.apdu.tlv import TlvError, parse_tlv, tlv
from mjpki.spec.domain import Kind, PinStatus
from mjpki.spec.fmap import FrozenMap

__all__ = ["Expected", "StepResult", "step", "KEY_PAIR_ENTRY_LEN", "output_length", "sw_tries"]

KEY_PAIR_ENTRY_LEN: Final = 4 + 3 + I.SPKI_LEN
"""One kind in GENERATE KEY PAIR's output: E1 82 01 29 { 83 01 ref, SPKI }."""
_R_ENTRY_LEN: Final = 2 + 32
_SIGNING_PIN: Final = re.compile(rb"(?=.*[A-Z])(?=.*[0-9])[A-Z0-9]{6,16}")
_AUTH_PIN: Final = re.compile(rb"[0-9]{4}")
_PIN_CODE: Final = {None: 0x00, PinStatus.TEMP_BLOCKED: 0x01, PinStatus.SET: 0x02, PinStatus.LOCKED: 0x03}

SW_OK: Final = b"\x90\x00"
SW_MORE: Final = b"\x63\x10"


def sw_tries(n: int) -> bytes:
    """63Cx: a wrong PIN with x tries left (also the empty VERIFY's answer)."""
    return bytes([0x63, 0xC0 | n])


def output_length(kinds: int) -> int:
    """The length of GENERATE KEY PAIR's output for this many kinds."""
    return kinds * KEY_PAIR_ENTRY_LEN + _R_ENTRY_LEN


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """The answer the interface demands: status word, and data exactly or by the property named in `check`."""

    rule: str
    sw: bytes
    data: bytes | None = b""
    """The exact response data, or None when `check` judges it (values the card chooses)."""
    check: str = ""
    wrapped: bool = False
    """The answer comes protected by the session (the host unwraps it)."""

    def describe(self) -> str:
        """One line: SW and data as the step table shows them."""
        if self.data is None:
            return f"{self.sw.hex().upper()} [{self.check or 'card-chosen data'}]"
        what = self.data.hex().upper() if self.data else "no data"
        return f"{self.sw.hex().upper()} [{what}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """A step's outcome: the next state, the answer demanded, and what is wrong with the observed answer (empty: conforms)."""

    state: CardState
    expected: Expected
    problems: tuple[str, ...] = ()
    reqs: tuple[str, ...] = ()


@dataclass(slots=True)
class _Answer:
    rule: str
    sw: bytes
    data: bytes | None = b""
    check: str = ""
    binder: Callable[[_Work, Observed], list[str]] | None = None
    wrapped: bool = False
    reqs: tuple[str, ...] = ()
    """The requirements this very decision serves, when narrower than the clause's (precise blame)."""


class _Done(Exception):
    """Leave a command early with this answer (the card's own early return)."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.rule)
        self.answer = answer


def _sw(rule: str, sw: str, *reqs: str) -> _Done:
    return _Done(_Answer(rule, bytes.fromhex(sw), reqs=reqs))


@dataclass(slots=True)
class _Apdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    @property
    def ne(self) -> int | None:
        return None if self.le is None else (self.le or 256)


def _parse(raw: bytes) -> _Apdu | None:
    """ISO 7816-3 short APDU cases 1-4; None for anything else (6700)."""
    n = len(raw)
    if n < 4:
        return None
    head = raw[0], raw[1], raw[2], raw[3]
    if n <= 5:
        return _Apdu(*head, le=raw[4] if n == 5 else None)
    lc = raw[4]
    if lc == 0:
        return None
    if n == 5 + lc:
        return _Apdu(*head, data=bytes(raw[5:]))
    if n == 6 + lc:
        return _Apdu(*head, data=bytes(raw[5:-1]), le=raw[-1])
    return None


@dataclass(slots=True)
class _Work:
    """A mutable working copy of the state for one step; `freeze` turns it back into a CardState."""

    s: CardState
    rules: dict[bytes, tuple[bytes, ...]] = field(default_factory=dict)
    applet: Applet | None = None
    slots: dict[Kind, Slot] = field(default_factory=dict)
    isd: Session = field(default_factory=Session)
    applet_selected: bool = False
    current_ef: int | None = None
    verified: set[Kind] = field(default_factory=set)
    output: Output | None = None
    chain: Chain | None = None
    last_challenge: bytes | None = None

    @classmethod
    def of(cls, s: CardState) -> _Work:
        w = cls(s=s, rules=dict(s.rules), applet=s.applet, isd=s.isd, applet_selected=s.applet_selected)
        w.slots = dict(s.applet.slots) if s.applet is not None else {}
        w.current_ef, w.verified, w.output, w.chain = s.current_ef, set(s.verified), s.output, s.chain
        w.last_challenge = s.last_challenge
        return w

    def freeze(self) -> CardState:
        applet = None if self.applet is None else replace(self.applet, slots=FrozenMap(self.slots))
        return replace(
            self.s,
            rules=FrozenMap(self.rules),
            applet=applet,
            isd=self.isd,
            applet_selected=self.applet_selected and applet is not None,
            current_ef=self.current_ef,
            verified=frozenset(self.verified),
            output=self.output,
            chain=self.chain,
            last_challenge=self.last_challenge,
        )

    # --- security domains ---

    @property
    def domain(self) -> Domain:
        return Domain.APSD if self.applet_selected and self.applet is not None else Domain.ISD

    def session(self, domain: Domain) -> Session:
        if domain is Domain.APSD:
            assert self.applet is not None
            return self.applet.apsd
        return self.isd

    def set_session(self, domain: Domain, session: Session) -> None:
        if domain is Domain.APSD:
            assert self.applet is not None
            self.applet = replace(self.applet, apsd=session)
        else:
            self.isd = session

    def close(self, domain: Domain) -> None:
        """End the domain's session and any pending authentication (the counter stays: it is non-volatile)."""
        self.set_session(domain, replace(self.session(domain), pending=False, level=None, host_ahead=False))

    def close_all(self) -> None:
        self.close(Domain.ISD)
        if self.applet is not None:
            self.close(Domain.APSD)

    def clear_application_state(self) -> None:
        self.current_ef = None
        self.verified.clear()
        self.output = None
        self.chain = None

    def allowed(self) -> bool:
        """ACL-1: a reader iff reader access; an app iff its hash is in the JPKI AID's access rule."""
        caller = self.s.caller
        if caller is None:
            return self.s.config.reader_access
        return caller in self.rules.get(I.JPKI_AID, ())

    def limit(self, kind: Kind) -> int:
        assert self.applet is not None
        return self.applet.limits[kind]


# --- the step ----------------------------------------------------------------------------------------------------


def step(state: CardState, command: Command, observed: Observed | None = None) -> StepResult:
    """The answer the interface demands for `command` in `state`, the next state, and (given `observed`) what differs."""
    w = _Work.of(state)
    answer = _dispatch(w, command)
    problems: list[str] = []
    if observed is not None:
        problems = _judge(w, answer, observed)
    expected = Expected(rule=answer.rule, sw=answer.sw, data=answer.data, check=answer.check, wrapped=answer.wrapped)
    reqs = answer.reqs or I.rule(answer.rule).reqs
    if problems and observable_slot_status(answer, observed):
        assert observed is not None and answer.data is not None
        reqs = _slot_status_blame(answer.data, observed.data) or reqs
    return StepResult(state=w.freeze(), expected=expected, problems=tuple(problems), reqs=reqs)


def observable_slot_status(answer: _Answer, observed: Observed | None) -> bool:
    """A GET SLOT STATUS whose status word was right but whose data differs: the slot facts say what is wrong."""
    return answer.rule == "get-slot-status" and answer.data is not None and observed is not None and observed.sw == answer.sw


_SLOT_FACT_REQS: Final = {0x84: ("ISS-5", "MCH-4"), 0xC2: ("ISS-6", "MCH-4"), 0x85: ("PIN-2", "PIN-3"), 0x86: ("PIN-3",), 0x87: ("PIN-2",)}


def _slot_status_blame(expected: bytes, observed: bytes) -> tuple[str, ...]:
    """The requirements behind the slot facts that differ (key, certificate, PIN status, tries, R pending)."""
    try:
        want, got = parse_tlv(expected), parse_tlv(observed)
    except TlvError:
        return ()
    reqs: list[str] = []
    if dict(want).get(0xC3) != dict(got).get(0xC3):
        reqs.append("ISS-2")
    slots_want = [dict(parse_tlv(v)) for t, v in want if t == 0xE1]
    try:
        slots_got = [dict(parse_tlv(v)) for t, v in got if t == 0xE1]
    except TlvError:
        return tuple(reqs)
    for a, b in zip(slots_want, slots_got, strict=False):
        for tag, tag_reqs in _SLOT_FACT_REQS.items():
            if a.get(tag) != b.get(tag):
                reqs.extend(r for r in tag_reqs if r not in reqs)
    return tuple(reqs)


def _judge(w: _Work, answer: _Answer, observed: Observed) -> list[str]:
    problems: list[str] = []
    if observed.sw != answer.sw:
        problems.append(f"status word {observed.sw_hex}, the interface demands {answer.sw.hex().upper()} ({I.rule(answer.rule).title})")
        return problems
    if observed.host_error is not None:
        problems.append(f"the host's check of the answer failed: {observed.host_error}")
    if answer.data is not None and observed.data != answer.data:
        problems.append(f"response data {_short(observed.data)}, the interface demands {_short(answer.data)}")
    elif answer.binder is not None:
        problems.extend(answer.binder(w, observed))
    return problems


def _short(data: bytes) -> str:
    text = data.hex().upper()
    return (text[:64] + f"... ({len(data)} bytes)") if len(text) > 64 else (text or "(none)")


def _dispatch(w: _Work, command: Command) -> _Answer:
    if isinstance(command, SwitchCaller):
        w.s = replace(w.s, caller=command.caller)
        return _Answer("switch-caller", b"", None)
    if isinstance(command, Reset):
        w.close_all()
        w.applet_selected = False
        w.clear_application_state()
        return _Answer("reset", b"", None)
    try:
        if isinstance(command, Send):
            return _process(w, command.apdu, tamper=None)
        if isinstance(command, InitUpdate):
            raw = bytes([0x80, 0x50, command.key_version, 0x00, 0x08]) + bytes(8) + b"\x00"
            return _process(w, raw, tamper=None)
        if isinstance(command, ExtAuth):
            raw = bytes([0x84, 0x82, command.level, 0x00, 0x10]) + bytes(16)
            return _process(w, raw, tamper=None, ext_auth=command)
        if isinstance(command, Wrapped):
            return _process(w, command.apdu, tamper=command.tamper)
    except _Done as done:
        return done.answer
    raise TypeError(f"not an applet command: {command!r}")


def _process(w: _Work, raw: bytes, *, tamper: Tamper | None, ext_auth: ExtAuth | None = None) -> _Answer:
    """The runtime: framing, class, channel, SELECT by AID, then the selected application's security domain."""
    cmd = _parse(raw)
    if cmd is None:
        raise _sw("frame", "6700")
    wrapped_input = tamper is not None
    if wrapped_input:
        # The mapper sends the plain command protected: CLA 00 -> 04, 80 -> 84; Le, if any, becomes 00.
        cmd = _Apdu(cmd.cla | 0x04, cmd.ins, cmd.p1, cmd.p2, cmd.data, None if cmd.le is None else 0x00)
    base = cmd.cla & 0xFC
    if base not in (0x00, 0x04, 0x80, 0x84):
        raise _sw("frame", "6E00")
    if cmd.cla & 0x03:
        raise _sw("frame", "6881")
    if base == 0x00 and cmd.ins == 0x70:
        raise _sw("frame", "6881")
    if base == 0x00 and cmd.ins == 0xA4 and cmd.p1 == 0x04:
        return _select_aid(w, cmd)
    if w.applet_selected and w.applet is not None:
        if not w.allowed():
            session = w.session(Domain.APSD)
            if tamper is Tamper.NONE and session.level is not None:
                w.set_session(Domain.APSD, replace(session, host_ahead=True))
            raise _sw("acl", "6982", "ACL-1")
    else:
        w.applet_selected = False
    return _security_domain(w, cmd, tamper=tamper, ext_auth=ext_auth)


def _select_aid(w: _Work, cmd: _Apdu) -> _Answer:
    aid = cmd.data
    if not aid or aid == I.ISD_AID:
        to_applet = False
    elif aid == I.JPKI_AID and w.applet is not None:
        to_applet = True
    else:
        raise _sw("select-aid", "6A82")  # the current selection stays
    if cmd.p2 not in (0x00, 0x04, 0x0C):
        raise _sw("select-aid", "6A86")
    if to_applet and not w.allowed():
        raise _sw("select-aid", "6982", "ACL-1")
    w.close_all()
    w.applet_selected = to_applet
    w.clear_application_state()
    acl = ("ACL-1",) if to_applet else ()
    if cmd.p2 == 0x0C:
        return _Answer("select-aid", SW_OK, reqs=acl)
    if to_applet:
        return _Answer("select-aid", SW_OK, tlv(0x6F, tlv(0x84, I.JPKI_AID)), reqs=acl)
    return _Answer("select-aid", SW_OK, tlv(0x6F, tlv(0x84, I.ISD_AID) + tlv(0xA5, tlv(0x9F65, b"\xff"))))


# --- SCP03 layer -----------------------------------------------------------------------------------------------


def _security_domain(w: _Work, cmd: _Apdu, *, tamper: Tamper | None, ext_auth: ExtAuth | None) -> _Answer:
    domain = w.domain
    base = cmd.cla & 0xFC
    if base in (0x80, 0x84) and cmd.ins == 0x50:
        w.output, w.chain = None, None
        return _initialize_update(w, domain, cmd)
    if base in (0x80, 0x84) and cmd.ins == 0x82:
        w.output, w.chain = None, None
        return _external_authenticate(w, domain, cmd, ext_auth)
    if base in (0x04, 0x84):
        session = w.session(domain)
        if session.level is None:
            raise _sw("secure-messaging", "6982")
        if tamper is None or tamper is not Tamper.NONE or session.host_ahead:
            # Bytes not wrapped by the host's session (a raw CLA 84 command), a broken C-MAC or a replay: the
            # C-MAC cannot verify, and the card ends the session.
            w.close(domain)
            raise _sw("secure-messaging", "6982")
        plain = _Apdu(cmd.cla & ~0x04 & 0xFF, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.le)
        answer = _run(w, domain, plain, session.level)
        if answer.sw == SW_OK or answer.sw[0] in (0x62, 0x63):
            answer.wrapped = True
        return answer
    return _run(w, domain, cmd, None)


def _run(w: _Work, domain: Domain, cmd: _Apdu, level: int | None) -> _Answer:
    try:
        return _applet_dispatch(w, cmd, level) if domain is Domain.APSD else _isd_dispatch(w, cmd, level)
    except _Done as done:
        return done.answer


def _initialize_update(w: _Work, domain: Domain, cmd: _Apdu) -> _Answer:
    w.close(domain)
    rule = "initialize-update"
    if cmd.cla & ~0x03 & 0xFF != 0x80:
        raise _sw(rule, "6E00")
    if cmd.p1 not in (0x00, I.KEY_VERSION):
        raise _sw(rule, "6A88")
    if cmd.p2 != 0x00:
        raise _sw(rule, "6A86")
    if len(cmd.data) != 8:
        raise _sw(rule, "6700")
    if w.session(domain).failures >= I.AUTHENTICATION_LIMIT:
        raise _sw(rule, "6983")  # the key set is blocked for good (ASM-SCP03-LOCKOUT): no challenge, the counter stays
    w.set_session(domain, replace(w.session(domain), pending=True))

    def bind(w: _Work, obs: Observed) -> list[str]:
        data = obs.data
        problems: list[str] = []
        if len(data) != 32:
            return [f"INITIALIZE UPDATE answered {len(data)} data bytes; S8 mode with a pseudo-random challenge gives 32"]
        if data[10] != I.KEY_VERSION or data[11] != 0x03 or data[12] != 0x70:
            problems.append(f"key information {data[10:13].hex().upper()}: the interface demands key version 30, SCP 03, i = 70")
        if domain.value not in obs.cryptogram_keys:
            problems.append(f"the card cryptogram does not verify under the {domain.value.upper()} keys (ISS-9)")
        counter = int.from_bytes(data[29:32], "big")
        old = w.session(domain).counter
        if old is not None and counter <= old:
            problems.append(f"the sequence counter went from {old} to {counter}: it must grow with every INITIALIZE UPDATE")
        w.set_session(domain, replace(w.session(domain), counter=counter))
        return problems

    return _Answer(rule, SW_OK, None, f"card cryptogram verifies under the {domain.value.upper()} keys; counter grows", bind)


def _external_authenticate(w: _Work, domain: Domain, cmd: _Apdu, ext_auth: ExtAuth | None) -> _Answer:
    rule = "external-authenticate"
    session = w.session(domain)
    w.set_session(domain, replace(session, pending=False, level=None, host_ahead=False))  # one attempt per INITIALIZE UPDATE
    if not session.pending:
        raise _sw(rule, "6985")
    if cmd.cla != 0x84:
        raise _sw(rule, "6E00")
    if len(cmd.data) != 16 or cmd.le is not None:
        raise _sw(rule, "6700")
    if cmd.p1 not in I.SECURITY_LEVELS or cmd.p2 != 0x00:
        raise _sw(rule, "6A86")
    # A wrong cryptogram or C-MAC is a failed authentication, counted until the next success (ASM-SCP03-LOCKOUT).
    failed = replace(w.session(domain), failures=session.failures + 1)
    if ext_auth is None or not ext_auth.cryptogram_ok:
        w.set_session(domain, failed)
        raise _sw(rule, "6300")  # the cryptogram is checked before the C-MAC
    if not ext_auth.mac_ok:
        w.set_session(domain, failed)
        raise _sw(rule, "6982")
    w.set_session(domain, replace(w.session(domain), level=cmd.p1, failures=0))
    return _Answer(rule, SW_OK)


def _require_secure(w: _Work, domain: Domain, level: int | None) -> None:
    """Card management and TSM commands: wrapped at level >= 03; a plain one also ends the session."""
    if level is None:
        w.close(domain)
        raise _sw("security-level", "6982")
    if level & I.TSM_LEVEL != I.TSM_LEVEL:
        raise _sw("security-level", "6982")


# --- the ISD ---------------------------------------------------------------------------------------------------


def _isd_dispatch(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    if w.chain is not None and not (cmd.ins == 0xE2 and cmd.cla & 0x80):
        w.chain = None
    gp = cmd.cla & 0x80
    if not gp and cmd.ins == 0xA4:
        raise _sw("isd-select-file", "6A86")
    if cmd.ins == 0xCA:
        return _isd_get_data(w, cmd, level)
    handler = {0xE6: _isd_install, 0xE4: _isd_delete, 0xE2: _isd_store_data, 0xF2: _isd_get_status}.get(cmd.ins)
    if gp and handler is not None:
        _require_secure(w, Domain.ISD, level)
        return handler(w, cmd)
    raise _sw("unknown-ins", "6D00")


def _isd_get_data(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    if (cmd.p1 << 8 | cmd.p2) != 0xDF4A:
        raise _sw("isd-get-data", "6A88")
    _require_secure(w, Domain.ISD, level)
    if cmd.data:
        raise _sw("isd-get-data", "6700")
    return _Answer("isd-get-data", SW_OK, tlv(0xDF4A, w.s.config.se_id.encode()))


def _split_lv(data: bytes, count: int) -> list[bytes] | None:
    out: list[bytes] = []
    i = 0
    for _ in range(count):
        if i >= len(data) or i + 1 + data[i] > len(data):
            return None
        out.append(data[i + 1 : i + 1 + data[i]])
        i += 1 + data[i]
    return out if i == len(data) else None


def _isd_install(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "isd-install"
    if cmd.p1 != 0x0C or cmd.p2 != 0x00:
        raise _sw(rule, "6A86")
    fields = _split_lv(cmd.data, 6)
    if fields is None:
        raise _sw(rule, "6A80")
    elf, module, app, privileges, params, _token = fields
    try:
        c9 = [v for t, v in parse_tlv(params) if t == 0xC9]
    except TlvError:
        raise _sw(rule, "6A80") from None
    if len(privileges) not in (1, 3) or len(c9) != 1:
        raise _sw(rule, "6A80")
    if c9[0] and (len(c9[0]) != 2 or not all(1 <= n <= 15 for n in c9[0])):
        raise _sw(rule, "6A80")
    if elf != I.JPKI_ELF_AID or module != I.JPKI_AID:
        raise _sw(rule, "6A88")
    if app != I.JPKI_AID:
        raise _sw(rule, "6A80")
    if w.applet is not None:
        raise _sw(rule, "6985")
    config = w.s.config
    limits = {Kind.AUTH: c9[0][0], Kind.SIGNING: c9[0][1]} if c9[0] else {k: config.default_limit(k) for k in Kind}
    w.applet = Applet(limits=FrozenMap(limits), slots=FrozenMap((k, Slot()) for k in Kind))
    w.slots = {k: Slot() for k in Kind}
    return _Answer(rule, SW_OK, b"\x00")


def _isd_delete(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "isd-delete"
    if cmd.p1 != 0x00 or cmd.p2 not in (0x00, 0x80):
        raise _sw(rule, "6A86")
    try:
        objects = parse_tlv(cmd.data)
    except TlvError:
        raise _sw(rule, "6A80") from None
    if len(objects) != 1 or objects[0][0] != 0x4F or not 5 <= len(objects[0][1]) <= 16:
        raise _sw(rule, "6A80")
    aid = objects[0][1]
    if aid in (I.JPKI_AID, I.APSD_AID):
        if w.applet is None:
            raise _sw(rule, "6A88")
        if aid == I.APSD_AID and cmd.p2 != 0x80:
            raise _sw(rule, "6985")
        # MCH-4: the applet goes with all its keys, certificates, PINs and R, its APSD and its access rule.
        w.applet, w.slots = None, {}
        w.rules.pop(I.JPKI_AID, None)
        w.clear_application_state()
        return _Answer(rule, SW_OK, b"\x00")
    if aid in (I.ISD_AID, I.JPKI_ELF_AID):
        raise _sw(rule, "6985")
    raise _sw(rule, "6A88")


def _chained(w: _Work, rule: str, cmd: _Apdu, *, limit: int) -> bytes | None:
    """Collect the blocks of a chained command; the whole data once the last block came, None while more is to come."""
    if cmd.ins == 0xE2:
        block, last, p1 = cmd.p2, bool(cmd.p1 & 0x80), cmd.p1 & 0x7F
    else:
        block, last, p1 = cmd.p2 & 0x7F, bool(cmd.p2 & 0x80), cmd.p1
    if not cmd.data:
        w.chain = None
        raise _sw(rule, "6700")
    chain = w.chain
    if block == 0:
        chain = Chain(ins=cmd.ins, p1=p1, next_block=0, data=b"")
    elif chain is None or chain.ins != cmd.ins or chain.next_block != block or (cmd.ins != 0xE2 and chain.p1 != cmd.p1):
        w.chain = None
        raise _sw(rule, "6A86")
    chain = replace(chain, data=chain.data + cmd.data, next_block=chain.next_block + 1)
    if len(chain.data) > limit:
        w.chain = None
        raise _sw(rule, "6A84")
    if not last:
        w.chain = chain
        return None
    w.chain = None
    return chain.data


def _access_rules(data: bytes) -> dict[bytes, tuple[bytes, ...]] | None:
    rules: dict[bytes, tuple[bytes, ...]] = {}
    try:
        top = parse_tlv(data)
        for tag, body in top:
            if tag != 0xE2:
                return None
            inner = parse_tlv(body)
            aids = [v for t, v in inner if t == 0x4F]
            hashes = [v for t, v in inner if t == 0xC1]
            if len(aids) != 1 or not 5 <= len(aids[0]) <= 16 or len(aids) + len(hashes) != len(inner):
                return None
            if any(len(h) != 32 for h in hashes) or len(hashes) > 64:
                return None
            rules[aids[0]] = tuple(dict.fromkeys(hashes))
    except TlvError:
        return None
    return rules or None


def _isd_store_data(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "isd-store-data"
    if cmd.p1 & 0x7F != 0x10:
        raise _sw(rule, "6A86")
    data = _chained(w, rule, cmd, limit=4096)
    if data is None:
        return _Answer(rule, SW_OK)
    rules = _access_rules(data)
    if rules is None:
        raise _sw(rule, "6A80")
    for aid, hashes in rules.items():
        if hashes:
            w.rules[aid] = hashes
        else:
            w.rules.pop(aid, None)  # a rule with no app hash admits no app
    return _Answer(rule, SW_OK)


def _isd_get_status(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "isd-get-status"
    if cmd.p1 not in (0x80, 0x40) or cmd.p2 != 0x02:
        raise _sw(rule, "6A86")
    try:
        objects = parse_tlv(cmd.data)
    except TlvError:
        raise _sw(rule, "6A80") from None
    if len(objects) != 1 or objects[0][0] != 0x4F or len(objects[0][1]) > 16:
        raise _sw(rule, "6A80")
    wanted = objects[0][1]
    if cmd.p1 == 0x80:
        entries = [(I.ISD_AID, 0x0F, bytes.fromhex("9EFE80"))]
    elif w.applet is None:
        entries = []
    else:
        entries = [(I.APSD_AID, 0x0F, bytes.fromhex("800000")), (I.JPKI_AID, 0x07, bytes.fromhex("000000"))]
    found = [e for e in entries if not wanted or e[0] == wanted]
    if not found:
        raise _sw(rule, "6A88")
    body = b"".join(tlv(0xE3, tlv(0x4F, aid) + tlv(0x9F70, bytes([lc])) + tlv(0xC5, priv)) for aid, lc, priv in found)
    return _Answer(rule, SW_OK, body)


# --- the JPKI applet -------------------------------------------------------------------------------------------


def _applet_dispatch(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    if cmd.ins != 0x40:
        w.output = None  # an output is readable only until the next command other than GET OUTPUT
    if w.chain is not None and cmd.ins != 0x36:
        w.chain = None
    if not cmd.cla & 0x80:
        handler = {0xA4: _select_ef, 0xB0: _read_binary, 0x20: _verify, 0x24: _change_pin, 0x84: _get_challenge}.get(cmd.ins)
        if handler is None:
            raise _sw("unknown-ins", "6D00")
        return handler(w, cmd, level)
    if cmd.ins == 0x2A:
        return _sign(w, cmd, level)
    tsm = {
        0x30: _get_se_id,
        0x32: _generate_r,
        0x34: _generate_key_pair,
        0x36: _write_certificate,
        0x38: _set_temporary_pin,
        0x3A: _unblock_and_set_pin,
        0x3C: _delete_keys,
        0x3E: _get_slot_status,
        0x40: _get_output,
    }.get(cmd.ins)
    if tsm is None:
        raise _sw("unknown-ins", "6D00")
    _require_secure(w, Domain.APSD, level)
    return tsm(w, cmd)


def _ef_exists(w: _Work, fid: int) -> bool:
    assert w.applet is not None
    if fid == I.EF_TOKEN_INFO or fid in I.EF_PIN.values():
        return True  # the PIN EFs always answer, so OpenSC can ask both PINs' status
    for kind in Kind:
        slot = w.slots[kind]
        if (fid == I.EF_CERT[kind] and slot.cert is not None) or (fid == I.EF_KEY[kind] and slot.key):
            return True
        if fid == I.EF_CA_CERT[kind] and kind in w.applet.ca_certs:
            return True
    return False


def _forget_missing_current_ef(w: _Work) -> None:
    if w.current_ef is not None and not _ef_exists(w, w.current_ef):
        w.current_ef = None


def _current_kind(w: _Work, rule: str, files: dict[Kind, int]) -> Kind:
    for kind, fid in files.items():
        if w.current_ef == fid:
            return kind
    raise _sw(rule, "6986")


def _select_ef(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    rule = "select-ef"
    if cmd.p1 != 0x02 or cmd.p2 != 0x0C:
        raise _sw(rule, "6A86")
    if len(cmd.data) != 2:
        raise _sw(rule, "6700")
    fid = int.from_bytes(cmd.data, "big")
    if not _ef_exists(w, fid):
        # A key or certificate EF exists exactly while its slot holds one: issued (ISS-5, ISS-6), deleted (MCH-4).
        if fid in I.EF_KEY.values():
            raise _sw(rule, "6A82", "ISS-5", "MCH-4")
        if fid in I.EF_CERT.values():
            raise _sw(rule, "6A82", "ISS-6", "MCH-4")
        raise _sw(rule, "6A82")
    w.current_ef = fid
    return _Answer(rule, SW_OK)


def _read_binary(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    rule = "read-binary"
    assert w.applet is not None
    if cmd.data or cmd.ne is None:
        raise _sw(rule, "6700")
    if cmd.p1 & 0x80:
        raise _sw(rule, "6A86")
    fid = w.current_ef
    if fid is None:
        raise _sw(rule, "6986")
    if fid in I.EF_KEY.values() or fid in I.EF_PIN.values():
        raise _sw(rule, "6981")
    content: bytes | None = I.TOKEN_INFO if fid == I.EF_TOKEN_INFO else None
    for kind in Kind:
        if fid == I.EF_CERT[kind]:
            content = w.slots[kind].cert
            if kind is Kind.SIGNING and Kind.SIGNING not in w.verified:
                raise _sw(rule, "6982", "PIN-3")  # the signing certificate carries the basic four personal data items
        elif fid == I.EF_CA_CERT[kind]:
            content = w.applet.ca_certs.get(kind)
    if content is None:
        raise _sw(rule, "6A82")
    offset = cmd.p1 << 8 | cmd.p2
    if offset >= len(content):
        raise _sw(rule, "6B00")
    limit = 256 if level is None else I.MAX_BLOCK
    return _Answer(rule, SW_OK, content[offset : offset + min(cmd.ne, limit)])


def _check_usable(rule: str, slot: Slot) -> None:
    if slot.pin_status is None:
        raise _sw(rule, "6984", "PIN-2")  # no PIN yet: it comes only through the temporary PIN
    if slot.pin_status is PinStatus.TEMP_BLOCKED:
        raise _sw(rule, "6983", "PIN-2")
    if slot.pin_status is not PinStatus.SET:
        raise _sw(rule, "6983", "PIN-3")


def _check_pin(w: _Work, kind: Kind, candidate: bytes) -> bytes:
    """PIN-3: the right PIN resets the counter and verifies; a wrong one spends a try, and the last try locks."""
    slot = w.slots[kind]
    if candidate == slot.pin:
        w.slots[kind] = replace(slot, tries=w.limit(kind))
        w.verified.add(kind)
        return SW_OK
    w.verified.discard(kind)
    tries = max(slot.tries - 1, 0)
    w.slots[kind] = replace(slot, tries=tries, pin_status=PinStatus.LOCKED if tries == 0 else slot.pin_status)
    return sw_tries(tries)


def _verify(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    rule = "verify"
    if cmd.p1 != 0x00 or cmd.p2 != 0x80:
        raise _sw(rule, "6A86")
    kind = _current_kind(w, rule, I.EF_PIN)
    slot = w.slots[kind]
    if not cmd.data:
        return _Answer(rule, sw_tries(slot.tries if slot.pin_status is PinStatus.SET else 0))
    _check_usable(rule, slot)
    return _Answer(rule, _check_pin(w, kind, cmd.data))


def pin_well_formed(kind: Kind, pin: bytes) -> bool:
    """PIN-1: signing 6-16 upper-case ASCII letters and digits with at least one of each, auth 4 ASCII digits."""
    return (_SIGNING_PIN if kind is Kind.SIGNING else _AUTH_PIN).fullmatch(pin) is not None


def _change_pin(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    rule = "change-pin"
    if cmd.p1 not in (0x00, 0x01) or cmd.p2 != 0x80:
        raise _sw(rule, "6A86")
    kind = _current_kind(w, rule, I.EF_PIN)
    if not cmd.data:
        raise _sw(rule, "6700")
    slot = w.slots[kind]
    _check_usable(rule, slot)
    assert slot.pin is not None
    if cmd.p1 == 0x01:
        if kind not in w.verified:
            raise _sw(rule, "6982", "PIN-5", "PIN-3")
        new = cmd.data
    else:
        old, new = cmd.data[: len(slot.pin)], cmd.data[len(slot.pin) :]
        sw = _check_pin(w, kind, old)
        if sw != SW_OK:
            return _Answer(rule, sw)
    if not pin_well_formed(kind, new):
        raise _sw(rule, "6A80")
    w.slots[kind] = replace(w.slots[kind], pin=new)  # PIN-5
    return _Answer(rule, SW_OK)


def _sign(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    rule = "sign"
    if level is not None:
        raise _sw(rule, "6985")  # a 256-byte signature does not fit a wrapped response
    if cmd.p1 != 0x00 or cmd.p2 != 0x80:
        raise _sw(rule, "6A86")
    kind = _current_kind(w, rule, I.EF_KEY)
    slot = w.slots[kind]
    if not slot.key:
        raise _sw(rule, "6A88")
    if kind not in w.verified:
        raise _sw(rule, "6982", "PIN-3")  # the key is used only after its own PIN was verified since the last reset/SELECT
    if not 1 <= len(cmd.data) <= I.MAX_SIGN_INPUT:
        raise _sw(rule, "6700")
    message = cmd.data

    def check(w: _Work, obs: Observed) -> list[str]:
        data = obs.data
        if len(data) != 256:
            return [f"a signature of {len(data)} bytes; RSA-2048 gives 256"]
        if slot.spki is None:
            return []
        key = serialization.load_der_public_key(slot.spki)
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            recovered = key.recover_data_from_signature(data, padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError):
            return [f"the signature does not verify under the {kind.value} public key the card gave out (CA-5)"]
        if recovered != message:
            return [f"the signature verifies, but over {recovered.hex().upper()[:32]}..., not the data sent (CA-5)"]
        return []

    return _Answer(rule, SW_OK, None, f"RSASSA-PKCS1-v1_5 over the data, verifying under the {kind.value} key", check)


def _get_challenge(w: _Work, cmd: _Apdu, level: int | None) -> _Answer:
    rule = "get-challenge"
    if cmd.p1 != 0x00 or cmd.p2 != 0x00:
        raise _sw(rule, "6A86")
    if cmd.data or cmd.ne is None:
        raise _sw(rule, "6700")
    n = min(cmd.ne, 256 if level is None else I.MAX_BLOCK)

    def check(w: _Work, obs: Observed) -> list[str]:
        data = obs.data
        problems = [] if len(data) == n else [f"GET CHALLENGE answered {len(data)} bytes; Le asks for {n}"]
        if len(data) >= 8 and data == w.last_challenge:
            problems.append("GET CHALLENGE answered the same bytes twice: challenges must be fresh")
        w.last_challenge = data
        return problems

    return _Answer(rule, SW_OK, None, f"{n} fresh random bytes", check)


# --- TSM commands ---------------------------------------------------------------------------------------------


def _expect(rule: str, cmd: _Apdu, *, p1: tuple[int, ...] = (0x00,), p2: tuple[int, ...] = (0x00,), data: bool | None = False) -> None:
    if cmd.p1 not in p1 or cmd.p2 not in p2:
        raise _sw(rule, "6A86")
    if data is not None and bool(cmd.data) != data:
        raise _sw(rule, "6700")


def _get_se_id(w: _Work, cmd: _Apdu) -> _Answer:
    _expect("get-se-id", cmd)
    return _Answer("get-se-id", SW_OK, w.s.config.se_id.encode())


def _generate_r(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "generate-r"
    _expect(rule, cmd)
    assert w.applet is not None
    previous = w.applet.commitment
    w.applet = replace(w.applet, r_pending=True, commitment=None)

    def bind(w: _Work, obs: Observed) -> list[str]:
        data = obs.data
        assert w.applet is not None
        if len(data) != 32:
            return [f"GENERATE R answered {len(data)} bytes; S = SHA-256(R) is 32 (ISS-2)"]
        w.applet = replace(w.applet, commitment=data)
        return ["GENERATE R answered the same S as before: R must be fresh (ISS-2)"] if data == previous else []

    return _Answer(rule, SW_OK, None, "S = SHA-256(R), 32 bytes, fresh", bind)


def _generate_key_pair(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "generate-key-pair"
    _expect(rule, cmd, p1=(0x01, 0x02, 0x03))
    assert w.applet is not None
    if not w.applet.r_pending:
        raise _sw(rule, "6985")  # GENERATE R first: the public keys go out only together with R
    kinds = tuple(k for k in I.KIND_ORDER if cmd.p1 & I.KIND_REF[k])
    for kind in kinds:
        w.slots[kind] = Slot(key=True)  # a new key: the old key, certificate and PIN of this kind are gone
        w.verified.discard(kind)
    commitment = w.applet.commitment
    w.applet = replace(w.applet, r_pending=False)
    _forget_missing_current_ef(w)
    w.output = Output(total=output_length(len(kinds)), kinds=kinds, commitment=commitment)
    return _chunk(w, rule, 0)


def _chunk(w: _Work, rule: str, offset: int) -> _Answer:
    """The output from `offset`: at most 239 bytes, 6310 while more remains."""
    output = w.output
    assert output is not None
    end = min(offset + I.MAX_BLOCK, output.total)
    sw = SW_MORE if end < output.total else SW_OK

    def bind(w: _Work, obs: Observed) -> list[str]:
        data = obs.data
        if len(data) != end - offset:
            return [f"an output chunk of {len(data)} bytes from offset {offset}; the interface demands {end - offset}"]
        out = w.output
        if out is None:
            return []
        seen = dict(out.seen)
        for i, b in enumerate(data, start=offset):
            if seen.get(i, b) != b:
                return [f"output byte {i} changed between two reads ({seen[i]:02X}, then {b:02X})"]
            seen[i] = b
        w.output = replace(out, seen=FrozenMap(seen))
        if len(seen) == out.total and len(out.seen) < out.total:
            return _complete_output(w, bytes(seen[i] for i in range(out.total)))
        return []

    return _Answer(rule, sw, None, f"bytes {offset}..{end - 1} of the {output.total}-byte key-pair output", bind)


def _complete_output(w: _Work, data: bytes) -> list[str]:
    """The whole GENERATE KEY PAIR output: each kind's public key, then R, which must hash to S (ISS-2, ISS-5)."""
    out = w.output
    assert out is not None
    try:
        top = parse_tlv(data)
    except TlvError as exc:
        return [f"the key-pair output is not BER-TLV: {exc}"]
    expected_tags = [0xE1] * len(out.kinds) + [0xC0]
    if [t for t, _ in top] != expected_tags:
        return [f"the key-pair output holds tags {[hex(t) for t, _ in top]}; the interface demands {[hex(t) for t in expected_tags]}"]
    problems: list[str] = []
    for kind, (_, body) in zip(out.kinds, top, strict=False):
        if body[:3] != bytes([0x83, 0x01, I.KIND_REF[kind]]):
            problems.append(f"the {kind.value} entry does not start with 83 01 {I.KIND_REF[kind]:02X}")
            continue
        spki = body[3:]
        try:
            key = serialization.load_der_public_key(spki)
        except ValueError:
            problems.append(f"the {kind.value} public key is not a DER SubjectPublicKeyInfo")
            continue
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048 or key.public_numbers().e != 65537:
            problems.append(f"the {kind.value} key is not RSA-2048 with exponent 65537 (ISS-5)")
            continue
        if w.slots[kind].key and w.slots[kind].spki is None:
            w.slots[kind] = replace(w.slots[kind], spki=spki)
    r = top[-1][1]
    if out.commitment is not None and hashlib.sha256(r).digest() != out.commitment:
        problems.append("SHA-256(R) differs from the S that GENERATE R answered (ISS-2)")
    return problems


def _get_output(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "get-output"
    if cmd.data:
        raise _sw(rule, "6700")
    if w.output is None:
        raise _sw(rule, "6985")
    offset = cmd.p1 << 8 | cmd.p2
    if offset >= w.output.total:
        raise _sw(rule, "6B00")
    return _chunk(w, rule, offset)


def _certificate(data: bytes) -> x509.Certificate | None:
    if len(data) < 4 or data[0] != 0x30 or data[1] != 0x82 or int.from_bytes(data[2:4], "big") + 4 != len(data):
        return None
    try:
        cert = x509.load_der_x509_certificate(data)
        cert.public_key()
    except Exception:  # any parse failure means: not a certificate this applet installs
        return None
    return cert


def _write_certificate(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "write-certificate"
    assert w.applet is not None
    if cmd.p1 not in (0x01, 0x02, 0x03, 0x04):
        raise _sw(rule, "6A86")
    data = _chained(w, rule, cmd, limit=I.MAX_CERT_LEN)
    if data is None:
        return _Answer(rule, SW_OK)
    cert = _certificate(data)
    if cert is None:
        raise _sw(rule, "6A80")
    kind = Kind.AUTH if cmd.p1 in (0x01, 0x03) else Kind.SIGNING
    if cmd.p1 in (0x03, 0x04):
        w.applet = replace(w.applet, ca_certs=w.applet.ca_certs.set(kind, data))
        return _Answer(rule, SW_OK)
    slot = w.slots[kind]
    if not slot.key:
        raise _sw(rule, "6A88")
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    # The host can only have certified the key if it read it from GENERATE KEY PAIR's output: an unread key never matches.
    if slot.spki is None or spki != slot.spki:
        raise _sw(rule, "6A80")  # a certificate for another key is never installed
    w.slots[kind] = replace(slot, cert=data, serial=cert.serial_number)
    return _Answer(rule, SW_OK)


def _set_temporary_pin(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "set-temporary-pin"
    _expect(rule, cmd, p1=(0x01, 0x02), p2=(0x00, 0x01), data=True)
    if len(cmd.data) > I.MAX_PIN_LEN:
        raise _sw(rule, "6700")
    kind = Kind.AUTH if cmd.p1 == 0x01 else Kind.SIGNING
    slot = w.slots[kind]
    if not slot.key:
        raise _sw(rule, "6A88")
    if cmd.p2 == 0x00 and slot.pin_status in (PinStatus.SET, PinStatus.LOCKED):
        raise _sw(rule, "6985")  # a PIN is in use: resetting it is PIN initialisation (P2 01)
    limit = w.limit(kind)
    w.slots[kind] = replace(slot, pin=None, pin_status=PinStatus.TEMP_BLOCKED, tries=limit, temp_pin=cmd.data, temp_tries=limit)
    w.verified.discard(kind)
    return _Answer(rule, SW_OK)


def _unblock_and_set_pin(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "unblock-and-set-pin"
    _expect(rule, cmd, p1=(0x01, 0x02), data=True)
    try:
        objects = parse_tlv(cmd.data)
    except TlvError:
        raise _sw(rule, "6A80") from None
    if [t for t, _ in objects] != [0x81, 0x82]:
        raise _sw(rule, "6A80")
    temp, new = objects[0][1], objects[1][1]
    kind = Kind.AUTH if cmd.p1 == 0x01 else Kind.SIGNING
    slot = w.slots[kind]
    if slot.pin_status is not PinStatus.TEMP_BLOCKED or slot.temp_pin is None:
        raise _sw(rule, "6985")
    if slot.temp_tries == 0:
        raise _sw(rule, "6983")  # the temporary PIN is spent: PIN initialisation sets a new one
    if not pin_well_formed(kind, new):
        raise _sw(rule, "6A80")
    if temp != slot.temp_pin:
        w.slots[kind] = replace(slot, temp_tries=slot.temp_tries - 1)
        return _Answer(rule, sw_tries(slot.temp_tries - 1))
    limit = w.limit(kind)
    w.slots[kind] = replace(slot, pin=new, pin_status=PinStatus.SET, tries=limit, temp_pin=None, temp_tries=0)
    return _Answer(rule, SW_OK)


def _delete_keys(w: _Work, cmd: _Apdu) -> _Answer:
    rule = "delete-keys"
    _expect(rule, cmd, p1=(0x01, 0x02, 0x03), data=None)
    kinds = [k for k in Kind if cmd.p1 & I.KIND_REF[k]]
    if cmd.data:
        try:
            objects = parse_tlv(cmd.data)
        except TlvError:
            raise _sw(rule, "6A80") from None
        if len(objects) != 1 or objects[0][0] != 0xC2 or not 1 <= len(objects[0][1]) <= 20:
            raise _sw(rule, "6A80")
        serial = int.from_bytes(objects[0][1], "big")
        kinds = [k for k in kinds if w.slots[k].serial == serial]
        if not kinds:
            raise _sw(rule, "6A88")  # DEL-1: another certificate is there; nothing is deleted
    for kind in kinds:
        w.slots[kind] = Slot()
        w.verified.discard(kind)
    _forget_missing_current_ef(w)
    return _Answer(rule, SW_OK)


def slot_status_bytes(applet: Applet) -> bytes:
    """GET SLOT STATUS's data for this applet: C3 (R pending), then one E1 per kind, auth first."""
    out = tlv(0xC3, bytes([int(applet.r_pending)]))
    for kind in I.KIND_ORDER:
        s = applet.slots[kind]
        body = tlv(0x83, bytes([I.KIND_REF[kind]])) + tlv(0x84, bytes([int(s.key)]))
        if s.serial is not None:
            body += tlv(0xC2, s.serial.to_bytes(max(1, (s.serial.bit_length() + 7) // 8), "big"))
        body += tlv(0x85, bytes([_PIN_CODE[s.pin_status]])) + tlv(0x86, bytes([s.tries])) + tlv(0x87, bytes([s.temp_tries]))
        out += tlv(0xE1, body)
    return out


def _get_slot_status(w: _Work, cmd: _Apdu) -> _Answer:
    _expect("get-slot-status", cmd)
    assert w.applet is not None
    return _Answer("get-slot-status", SW_OK, slot_status_bytes(replace(w.applet, slots=FrozenMap(w.slots))))
