"""Applet-level lockstep: an applet and the APDU model (mjpki.spec.apdu) driven side by side, APDU by APDU.

A target gives a fresh applet behind an `AppletAdapter`, the SE's SCP03 keys and what the model must know (SE-ID,
caller). `AppletRun` brings the card to a known state (the prelude: the JPKI applet deleted over the ISD's secure
channel), then sends each model command through `AppletHost` and judges the answer with `mjpki.spec.apdu.model.step`. The
first difference ends the run; the run so far is the trace.

`applet_machine(target)` is the Hypothesis rule-based search over command sequences: valid flows (a whole
personalisation, secure channels at every level, both kinds) mixed with what goes wrong in the field (wrong, short,
long and malformed PINs, empty VERIFY, commands out of order or before selection, resets anywhere, tampered and
replayed wrapped commands, unknown instructions, malformed framing). Draws never index into state-dependent lists,
so a step the failure does not need can be deleted when shrinking.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from mjpki.adapters.applet import AppletAdapter, AppletAdapterError
from mjpki.applet_host import AppletHost, Exchange
from mjpki.impl.scp03 import StaticKeys
from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Observed, Reset, Send, SwitchCaller, Tamper, Wrapped
from mjpki.spec.apdu.model import Expected, step
from mjpki.spec.apdu.state import CardConfig, CardState, initial_state
from mjpki.spec.domain import Kind

__all__ = [
    "OFFICIAL_APP_HASH",
    "AppletTarget",
    "AppletStep",
    "AppletDivergence",
    "AppletRun",
    "PrereqError",
    "applet_machine",
    "search",
    "apdu",
    "select_ef",
    "isd_command",
    "tsm_commands",
    "personalisation",
    "test_certificate",
]

OFFICIAL_APP_HASH = hashlib.sha256(b"mjpki official app signing certificate").digest()
"""The app the searches store in the access rule (mjpki.impl.system.OFFICIAL_APP_HASH)."""
OTHER_APP_HASH = hashlib.sha256(b"some other app").digest()
AUTH_PIN = b"1234"
SIGNING_PIN = b"ABC123"
TEMP_PIN = b"TEMP-0123456789A"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppletTarget:
    """How to get a fresh applet to test: the adapter factory, the SE's ISD (and APSD) keys, and who the caller is."""

    name: str
    open: Callable[[], AppletAdapter]
    isd_keys: StaticKeys
    apsd_keys: StaticKeys | None = None
    caller: bytes | None = None
    reader_access: bool = True
    auth_tries: int = 3
    signing_tries: int = 5
    can_switch_caller: bool = False
    """The adapter can send as another app (set_caller): the search then tries other apps' commands (ACL-1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppletStep:
    """One command in lockstep: what was sent and seen, what the interface demands, and what differs."""

    index: int
    command: Command
    exchange: Exchange
    expected: Expected
    reqs: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The trace format's step (mjpki-apdu-trace/1)."""
        e = self.expected
        return {
            "command": self.command.to_json(),
            "sent": None if self.exchange.sent is None else self.exchange.sent.hex().upper(),
            "received": None if self.exchange.received is None else self.exchange.received.hex().upper(),
            "observed": self.exchange.observed.to_json(),
            "expected": {
                "rule": e.rule,
                "sw": e.sw.hex().upper(),
                "data": None if e.data is None else e.data.hex().upper(),
                "check": e.check,
            },
            "reqs": list(self.reqs),
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AppletDivergence:
    """Where the applet first parted from the interface."""

    index: int
    command: Command | None
    rule: str
    what: str
    reqs: tuple[str, ...]

    def __str__(self) -> str:
        where = "in the prelude" if self.command is None else f"step {self.index} {_command_text(self.command)}"
        return f"{where}: {self.what} [{self.rule}; {', '.join(self.reqs) or 'no lifecycle requirement'}]"


class PrereqError(Exception):
    """The card could not be brought to a known state (keys wrong, ISD unreachable): the run cannot start."""


@dataclass(slots=True)
class AppletRun:
    """One applet and the model, stepped together from a known state."""

    target: AppletTarget
    adapter: AppletAdapter = field(init=False)
    host: AppletHost = field(init=False)
    state: CardState = field(init=False)
    steps: list[AppletStep] = field(default_factory=list)
    divergence: AppletDivergence | None = None

    def __post_init__(self) -> None:
        self.adapter = self.target.open()
        self.host = AppletHost(self.adapter, isd_keys=self.target.isd_keys, apsd_keys=self.target.apsd_keys)
        self.state = initial_state(CardConfig(se_id="?", caller=self.target.caller, reader_access=self.target.reader_access))
        self._prelude()

    def _prelude(self) -> None:
        """Reset, open the ISD at level 33, read the SE-ID, delete any JPKI applet, reset: the model's initial state."""
        host = self.host
        host.run(Reset())
        seen = [host.run(Send(bytes.fromhex("00A4040C08") + I.ISD_AID)).observed]
        seen.append(host.run(InitUpdate(I.KEY_VERSION)).observed)
        seen.append(host.run(ExtAuth(0x33)).observed)
        if [o.sw for o in seen] != [b"\x90\x00"] * 3 or seen[1].cryptogram_keys == frozenset():
            raise PrereqError(
                f"could not open SCP03 to the ISD (status words {', '.join(o.sw.hex().upper() for o in seen)}; "
                f"card cryptogram verified under: {', '.join(sorted(seen[1].cryptogram_keys)) or 'no key set'}): "
                "are the ISD keys right?"
            )
        se_id = host.run(Wrapped(bytes.fromhex("80CADF4A00"))).observed
        tlv_ok = se_id.sw == b"\x90\x00" and len(se_id.data) >= 3 and se_id.data[:2] == b"\xdf\x4a"
        deleted = host.run(Wrapped(bytes.fromhex("80E400800C4F0A") + I.JPKI_AID + b"\x00")).observed
        if not tlv_ok or deleted.sw not in (b"\x90\x00", b"\x6a\x88"):
            raise PrereqError(f"the ISD did not give its SE-ID ({se_id.sw_hex}) or delete the applet ({deleted.sw_hex})")
        host.run(Reset())
        config = CardConfig(
            se_id=se_id.data[3:].decode("utf-8", "replace"),
            caller=self.target.caller,
            reader_access=self.target.reader_access,
            auth_tries=self.target.auth_tries,
            signing_tries=self.target.signing_tries,
        )
        self.state = initial_state(config)

    @property
    def broken(self) -> bool:
        """True once the applet has diverged: later steps are not sent."""
        return self.divergence is not None

    def send(self, command: Command) -> AppletStep | None:
        """Send one command to both; None once the run has diverged."""
        if self.divergence is not None:
            return None
        index = len(self.steps)
        try:
            exchange = self.host.run(command)
        except AppletAdapterError as exc:
            exchange = Exchange(sent=None, received=None, observed=Observed(sw=b"", host_error=f"transport failed: {exc}"))
        result = step(self.state, command, exchange.observed)
        record = AppletStep(
            index=index, command=command, exchange=exchange, expected=result.expected, reqs=result.reqs, problems=result.problems
        )
        self.steps.append(record)
        self.state = result.state
        if result.problems:
            self.divergence = AppletDivergence(
                index=index, command=command, rule=result.expected.rule, what="; ".join(result.problems), reqs=result.reqs
            )
        return record

    def send_all(self, commands: Iterable[Command | Callable[[CardState], Command]]) -> None:
        """Send commands in order; a callable is given the model's state first (to build, e.g., a certificate for the key read)."""
        for item in commands:
            if self.divergence is not None:
                return
            self.send(item(self.state) if callable(item) else item)

    def close(self) -> None:
        """Let the adapter go."""
        with contextlib.suppress(AppletAdapterError):
            self.adapter.close()

    def exercised(self) -> set[str]:
        """The interface clauses the steps reached."""
        return {s.expected.rule for s in self.steps}


def _command_text(command: Command) -> str:
    if isinstance(command, SwitchCaller):
        return "as " + ("a reader" if command.caller is None else f"app {command.caller[:4].hex().upper()}...")
    if isinstance(command, Send):
        return f"send {command.apdu.hex().upper()}"
    if isinstance(command, Wrapped):
        extra = "" if command.tamper is Tamper.NONE else f" ({command.tamper.value} tampered)"
        return f"wrapped {command.apdu.hex().upper()}{extra}"
    if isinstance(command, ExtAuth):
        crypt, mac = ("ok" if command.cryptogram_ok else "WRONG"), ("ok" if command.mac_ok else "WRONG")
        return f"EXTERNAL AUTHENTICATE level {command.level:02X} cryptogram {crypt} mac {mac}"
    if isinstance(command, InitUpdate):
        return f"INITIALIZE UPDATE kvn {command.key_version:02X}"
    return "reset"


command_text = _command_text


# --- certificates the host writes --------------------------------------------------------------------------------


@cache
def _test_ca() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _foreign_spki() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@cache
def test_certificate(spki: bytes | None, serial: int, *, ca: bool = False) -> bytes:
    """A DER certificate from the throw-away test CA for this public key (None: a key the card never gave out)."""
    public = serialization.load_der_public_key(spki or _foreign_spki())
    assert isinstance(public, rsa.RSAPublicKey)
    ca_key = _test_ca()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mjpki applet test CA" if ca else "mjpki applet test")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mjpki applet test CA")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365 * 5))
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """A short command APDU: Lc and data only with data, Le only if given."""
    out = bytes([cla, ins, p1, p2])
    if data:
        out += bytes([len(data)]) + data
    if le is not None:
        out += bytes([le])
    return out


_apdu = apdu


def _lv(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def install_apdu(limits: tuple[int, int] | None) -> bytes:
    """INSTALL [for install and make selectable] of the JPKI applet, with C9 retry limits (None: the defaults)."""
    c9 = b"\xc9\x00" if limits is None else b"\xc9\x02" + bytes(limits)
    data = _lv(I.JPKI_ELF_AID) + _lv(I.JPKI_AID) + _lv(I.JPKI_AID) + _lv(b"\x00") + _lv(c9) + _lv(b"")
    return _apdu(0x80, 0xE6, 0x0C, 0x00, data, 0x00)


def access_rule_apdu(hashes_: Iterable[bytes]) -> bytes:
    """STORE DATA with the JPKI AID's access rule admitting these app hashes (none: no app)."""
    body = b"\x4f" + _lv(I.JPKI_AID) + b"".join(b"\xc1\x20" + h for h in hashes_)
    return _apdu(0x80, 0xE2, 0x90, 0x00, b"\xe2" + _length(len(body)) + body)


def _length(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n])


def write_certificate_commands(target: int, der: bytes, *, tamper: Tamper = Tamper.NONE) -> list[Command]:
    """WRITE CERTIFICATE in blocks of 239 bytes, the last with bit 80 of P2; the first block spoiled if `tamper`."""
    blocks = [der[i : i + I.MAX_BLOCK] for i in range(0, len(der), I.MAX_BLOCK)] or [b""]
    out: list[Command] = []
    for n, block in enumerate(blocks):
        p2 = n | (0x80 if n == len(blocks) - 1 else 0)
        out.append(Wrapped(_apdu(0x80, 0x36, target, p2, block), tamper if n == 0 else Tamper.NONE))
    return out


def _cert_for(kind: Kind, serial: int, *, own: bool = True, between: Command | None = None) -> Callable[[CardState], list[Command]]:
    """WRITE CERTIFICATE of a certificate for the slot's key (as read), with `between` sent after the first block if given."""

    def build(state: CardState) -> list[Command]:
        spki = None
        if own and state.applet is not None:
            spki = state.applet.slots[kind].spki
        blocks = write_certificate_commands(I.KIND_REF[kind], test_certificate(spki, serial))
        return blocks if between is None else [blocks[0], between, *blocks[1:]]

    return build


def select(aid: bytes) -> Send:
    """SELECT by AID, no response data."""
    return Send(_apdu(0x00, 0xA4, 0x04, 0x0C, aid))


def open_channel(level: int = 0x33) -> list[Command]:
    """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected application's security domain."""
    return [InitUpdate(I.KEY_VERSION), ExtAuth(level)]


def read_output_commands() -> list[Command]:
    """GET OUTPUT from 239 on, enough for the longest key-pair output (both kinds)."""
    return [Wrapped(_apdu(0x80, 0x40, off >> 8, off & 0xFF, le=0)) for off in range(I.MAX_BLOCK, 2 * 301 + 34, I.MAX_BLOCK)]


def personalisation(*, limits: tuple[int, int] | None = (3, 5), caller: bytes | None = OFFICIAL_APP_HASH, serial: int = 1001) -> list[Any]:
    """The whole personalisation as the TSMs do it (docs/apdu-interface.md's example), from any state of the card."""
    hashes_ = [OFFICIAL_APP_HASH] if caller is None else [caller]
    items: list[Any] = [Reset(), select(I.ISD_AID), *open_channel()]
    items += [Wrapped(_apdu(0x80, 0xE4, 0x00, 0x80, b"\x4f" + _lv(I.JPKI_AID), 0x00))]
    items += [Wrapped(install_apdu(limits)), Wrapped(access_rule_apdu(hashes_))]
    items += [select(I.JPKI_AID), *open_channel(), Wrapped(_apdu(0x80, 0x30, 0, 0, le=0)), Wrapped(_apdu(0x80, 0x32, 0, 0, le=0))]
    items += [Wrapped(_apdu(0x80, 0x34, 0x03, 0x00, le=0)), *read_output_commands()]
    items += [_cert_for(Kind.AUTH, serial), _cert_for(Kind.SIGNING, serial + 1)]
    items += [lambda s: write_certificate_commands(0x03, test_certificate(None, 7, ca=True))]
    items += [lambda s: write_certificate_commands(0x04, test_certificate(None, 8, ca=True))]
    items += [Wrapped(_apdu(0x80, 0x38, 0x01, 0x00, TEMP_PIN)), Wrapped(_apdu(0x80, 0x38, 0x02, 0x00, TEMP_PIN))]
    items += [Wrapped(_apdu(0x80, 0x3A, 0x01, 0x00, _unblock_data(TEMP_PIN, AUTH_PIN)))]
    items += [Wrapped(_apdu(0x80, 0x3A, 0x02, 0x00, _unblock_data(TEMP_PIN, SIGNING_PIN)))]
    return items


def _unblock_data(temp: bytes, new: bytes) -> bytes:
    return b"\x81" + _lv(temp) + b"\x82" + _lv(new)


def expand(run: AppletRun, items: Iterable[Any]) -> None:
    """Send items: commands, callables of the model state giving a command or a list of them."""
    for item in items:
        if run.broken:
            return
        made = item(run.state) if callable(item) else item
        for command in made if isinstance(made, list) else [made]:
            run.send(command)


# --- the search --------------------------------------------------------------------------------------------------

_AUTH_PINS = [AUTH_PIN, b"0000", b"9999", b"123", b"12345", b"12a4", b"1234\x00"]
_SIGNING_PINS = [SIGNING_PIN, b"ZZZ999", b"abc123", b"ABCDEF", b"AB1", b"ABC1234", b"ABC123" * 3]
_TEMP_PINS = [TEMP_PIN, b"TEMP-0123456789B", b"T", b"X" * 17]
_FIDS = [0x0006, 0x000A, 0x0001, 0x000B, 0x0002, 0x0017, 0x001A, 0x0018, 0x001B, 0x1234]
_KINDS = st.sampled_from([Kind.AUTH, Kind.SIGNING])
_MODES = st.sampled_from([Tamper.NONE] * 6 + [Tamper.MAC, Tamper.REPLAY, None])
"""How a TSM command goes: wrapped (mostly), with a spoiled C-MAC, replayed, or plain (None)."""
_LEVELS = st.sampled_from([0x33, 0x33, 0x03, 0x13, 0x01, 0x11, 0x02])
_SESSION_LEVELS = st.sampled_from([0x33, 0x33, 0x33, 0x03, 0x13, 0x01, 0x11])
_WHERE = st.one_of(
    st.sampled_from([("here", 0), ("here", 0), ("applet", 0)]),
    st.tuples(st.just("session"), _SESSION_LEVELS),
)
"""Where a card or TSM command goes: to whatever is selected, or first to the applet (selected; with a session at a level)."""
_WHERE_ISD = st.one_of(st.just(("here", 0)), st.tuples(st.just("isd"), _SESSION_LEVELS))
_PROBE = st.sampled_from([False, False, True])
"""Whether a command is followed by a probe of the secure channel: did the session survive what just happened?"""
_SESSION_PROBE = Wrapped(bytes.fromhex("80F28002024F0000"))
"""GET STATUS, wrapped: 9000/6A88 in the ISD, 6D00 in the applet while a session is open; 6982 once it has ended."""


_PIN_CHOICE = st.sampled_from(["right", "right", "right", "wrong", "malformed", "temporary"])
_CARD_STEPS = st.sampled_from(
    [
        "sign",
        "read-certificate",
        "read-key",
        "change-pin",
        "verify-right",
        "verify-wrong",
        "verify-temporary",
        "status",
        "reset",
        "reselect",
        "other-kind",
        "other-certificate",
        "slot-status",
    ]
)
"""What the app (or a tester) does on the card interface, by name: stable identifiers, so shrinking can delete any."""


def select_ef(fid: int) -> Send:
    """SELECT EF by file ID (the applet's files)."""
    return Send(_apdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")))


_ef = select_ef


def _card_steps(kind: Kind, name: str) -> list[Command]:
    """The commands of one named card-interface step for this kind (the applet selected; the PIN EF chosen as needed)."""
    other = Kind.SIGNING if kind is Kind.AUTH else Kind.AUTH
    pins = {
        "right": AUTH_PIN if kind is Kind.AUTH else SIGNING_PIN,
        "wrong": b"9999" if kind is Kind.AUTH else b"ZZZ999",
        "malformed": b"12a4" if kind is Kind.AUTH else b"abc123",
        "temporary": TEMP_PIN,
    }
    sign = Send(_apdu(0x80, 0x2A, 0x00, 0x80, bytes(range(51)), 0x00))
    if name.startswith("verify-"):
        return [_ef(I.EF_PIN[kind]), Send(_apdu(0x00, 0x20, 0x00, 0x80, pins[name[7:]]))]
    return {
        "sign": [_ef(I.EF_KEY[kind]), sign],
        "read-certificate": [_ef(I.EF_CERT[kind]), Send(_apdu(0x00, 0xB0, 0, 0, le=4))],
        "read-key": [_ef(I.EF_KEY[kind]), Send(_apdu(0x00, 0xB0, 0, 0, le=0))],
        "change-pin": [_ef(I.EF_PIN[kind]), Send(_apdu(0x00, 0x24, 0x01, 0x80, pins["right"]))],
        "status": [_ef(I.EF_PIN[kind]), Send(_apdu(0x00, 0x20, 0x00, 0x80))],
        "lock": [_ef(I.EF_PIN[kind]), *[Send(_apdu(0x00, 0x20, 0x00, 0x80, pins["wrong"]))] * 6, Send(_apdu(0x00, 0x20, 0x00, 0x80))],
        "reset": [Reset(), select(I.JPKI_AID)],
        "reselect": [select(I.JPKI_AID)],
        "other-kind": [_ef(I.EF_KEY[other]), sign],
        "other-certificate": [_ef(I.EF_CERT[other]), Send(_apdu(0x00, 0xB0, 0, 0, le=4))],
        "slot-status": [*open_channel(), Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0))],
    }[name]


_ISD_COMMANDS = (
    "install",
    "install-default",
    "install-bad",
    "delete",
    "delete-apsd",
    "delete-isd",
    "rule",
    "rule-other",
    "rule-none",
    "status",
    "status-applet",
    "status-isd",
    "se-id",
)
_TSM_COMMANDS = (
    "se-id",
    "generate-r",
    "key-pair-both",
    "key-pair-auth",
    "key-pair-signing",
    "issue-keys",
    "read-output",
    "output-end",
    "slot-status",
    "certificate-auth",
    "certificate-signing",
    "certificate-foreign",
    "certificate-first-block",
    "certificate-rest",
    "temporary-pin-auth",
    "temporary-pin-signing",
    "temporary-pin-reset",
    "unblock-auth",
    "unblock-signing",
    "unblock-wrong",
    "unblock-malformed",
    "delete-auth",
    "delete-both",
    "delete-by-serial",
    "delete-other-serial",
)
_SESSION_STEPS_ISD = st.lists(st.tuples(st.sampled_from(_ISD_COMMANDS), _MODES), min_size=1, max_size=5)
_SESSION_STEPS_TSM = st.lists(st.tuples(st.sampled_from(_TSM_COMMANDS), _MODES), min_size=1, max_size=6)


def isd_command(name: str, caller: bytes | None) -> bytes:
    """One named card-management command of the ISD, as a plain APDU (the caller's hash for the access rule)."""
    return {
        "install": install_apdu((3, 5)),
        "install-default": install_apdu(None),
        "install-bad": install_apdu((0, 5)),
        "delete": _apdu(0x80, 0xE4, 0x00, 0x80, b"\x4f" + _lv(I.JPKI_AID), 0x00),
        "delete-apsd": _apdu(0x80, 0xE4, 0x00, 0x00, b"\x4f" + _lv(I.APSD_AID), 0x00),
        "delete-isd": _apdu(0x80, 0xE4, 0x00, 0x80, b"\x4f" + _lv(I.ISD_AID), 0x00),
        "rule": access_rule_apdu([caller or OFFICIAL_APP_HASH]),
        "rule-other": access_rule_apdu([OTHER_APP_HASH]),
        "rule-none": access_rule_apdu([]),
        "status": _apdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", 0x00),
        "status-applet": _apdu(0x80, 0xF2, 0x40, 0x02, b"\x4f" + _lv(I.JPKI_AID), 0x00),
        "status-isd": _apdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 0x00),
        "se-id": bytes.fromhex("80CADF4A00"),
    }[name]


def tsm_commands(name: str, state: CardState, serial: int) -> list[Command]:
    """One named TSM step to the applet as wrapped commands, built from what the host has seen (keys, serials, output)."""
    slots = state.applet.slots if state.applet is not None else None

    def wrap(apdu: bytes) -> list[Command]:
        return [Wrapped(apdu)]

    def cert(kind: Kind, own: bool) -> list[Command]:
        spki = slots[kind].spki if slots is not None and own else None
        return write_certificate_commands(I.KIND_REF[kind], test_certificate(spki, serial))

    def serial_of(kind: Kind) -> bytes:
        value = (slots[kind].serial if slots is not None else None) or 424242
        return b"\xc2" + _lv(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))

    unblock = {k: _unblock_data(TEMP_PIN, AUTH_PIN if k is Kind.AUTH else SIGNING_PIN) for k in Kind}
    builders = {
        "se-id": lambda: wrap(_apdu(0x80, 0x30, 0, 0, le=0)),
        "generate-r": lambda: wrap(_apdu(0x80, 0x32, 0, 0, le=0)),
        "key-pair-both": lambda: wrap(_apdu(0x80, 0x34, 0x03, 0, le=0)),
        "key-pair-auth": lambda: wrap(_apdu(0x80, 0x34, 0x01, 0, le=0)),
        "key-pair-signing": lambda: wrap(_apdu(0x80, 0x34, 0x02, 0, le=0)),
        "issue-keys": lambda: [
            Wrapped(_apdu(0x80, 0x32, 0, 0, le=0)),
            Wrapped(_apdu(0x80, 0x34, 0x03, 0, le=0)),
            *read_output_commands(),
        ],
        "read-output": lambda: read_output_commands(),
        "output-end": lambda: wrap(_apdu(0x80, 0x40, *divmod(state.output.total if state.output else 335, 256), le=0)),
        "slot-status": lambda: wrap(_apdu(0x80, 0x3E, 0, 0, le=0)),
        "certificate-auth": lambda: cert(Kind.AUTH, True),
        "certificate-signing": lambda: cert(Kind.SIGNING, True),
        "certificate-foreign": lambda: cert(Kind.AUTH, False),
        "certificate-first-block": lambda: cert(Kind.SIGNING, True)[:1],
        "certificate-rest": lambda: cert(Kind.SIGNING, True)[1:],
        "temporary-pin-auth": lambda: wrap(_apdu(0x80, 0x38, 0x01, 0x00, TEMP_PIN)),
        "temporary-pin-signing": lambda: wrap(_apdu(0x80, 0x38, 0x02, 0x00, TEMP_PIN)),
        "temporary-pin-reset": lambda: wrap(_apdu(0x80, 0x38, 0x01, 0x01, TEMP_PIN)),
        "unblock-auth": lambda: wrap(_apdu(0x80, 0x3A, 0x01, 0x00, unblock[Kind.AUTH])),
        "unblock-signing": lambda: wrap(_apdu(0x80, 0x3A, 0x02, 0x00, unblock[Kind.SIGNING])),
        "unblock-wrong": lambda: wrap(_apdu(0x80, 0x3A, 0x01, 0x00, _unblock_data(b"WRONG-TEMP-PIN!!", AUTH_PIN))),
        "unblock-malformed": lambda: wrap(_apdu(0x80, 0x3A, 0x01, 0x00, _unblock_data(TEMP_PIN, b"12a4"))),
        "delete-auth": lambda: wrap(_apdu(0x80, 0x3C, 0x01, 0x00)),
        "delete-both": lambda: wrap(_apdu(0x80, 0x3C, 0x03, 0x00)),
        "delete-by-serial": lambda: wrap(_apdu(0x80, 0x3C, 0x03, 0x00, serial_of(Kind.AUTH))),
        "delete-other-serial": lambda: wrap(_apdu(0x80, 0x3C, 0x03, 0x00, b"\xc2\x03\x12\x34\x56")),
    }
    return builders[name]()


def _spoil(commands: list[Command], mode: Tamper | None) -> list[Command]:
    """The first command sent plain (mode None) or spoiled (MAC, REPLAY) instead of wrapped intact."""
    if not commands or mode is Tamper.NONE or not isinstance(commands[0], Wrapped):
        return commands
    first = commands[0]
    return [Send(first.apdu) if mode is None else Wrapped(first.apdu, mode), *commands[1:]]


def _boundary(offset: int | str, length: int) -> int:
    """An offset, or a named one at the end of something `length` bytes long (off-by-one mistakes live there)."""
    if isinstance(offset, int):
        return offset
    return max(0, length + {"end": 0, "end-1": -1, "end+1": 1}[offset])


def _current_content(state: CardState) -> bytes:
    """What the current EF holds, as far as the model knows (empty when none or not readable)."""
    if state.applet is None or state.current_ef is None:
        return b""
    if state.current_ef == I.EF_TOKEN_INFO:
        return I.TOKEN_INFO
    for kind in I.KIND_ORDER:
        if state.current_ef == I.EF_CERT[kind]:
            return state.applet.slots[kind].cert or b""
        if state.current_ef == I.EF_CA_CERT[kind]:
            return state.applet.ca_certs.get(kind, b"")
    return b""


def _as(mode: Tamper | None, apdu: bytes) -> Command:
    return Send(apdu) if mode is None else Wrapped(apdu, mode)


def applet_machine(
    target: AppletTarget,
    *,
    on_divergence: Callable[[AppletRun], None] | None = None,
    on_teardown: Callable[[AppletRun], None] | None = None,
) -> type[RuleBasedStateMachine]:
    """A Hypothesis state machine driving `target` and the model in lockstep; a divergence fails the example."""

    class AppletLockstep(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.run = AppletRun(target)

        def _go(self, items: Iterable[Any], where: tuple[str, int] = ("here", 0), probe: bool = False) -> None:
            place, level = where
            prefix: list[Command] = {
                "here": [],
                "applet": [select(I.JPKI_AID)],
                "session": [select(I.JPKI_AID), *open_channel(level)],
                "isd": [select(I.ISD_AID), *open_channel(level)],
            }[place]
            expand(self.run, [*prefix, *items, *([_SESSION_PROBE] if probe else [])])
            if self.run.divergence is not None:
                if on_divergence is not None:
                    on_divergence(self.run)
                raise AssertionError(str(self.run.divergence))

        def teardown(self) -> None:
            # No hypothesis.target() score (runs giving answers no earlier run got) and no target phase: measured on the
            # shipped faulty applets, random searches of 100 examples missed twice as often with them (docs/detection.md).
            if on_teardown is not None:
                on_teardown(self.run)
            self.run.close()

        @initialize(start=st.sampled_from(["personalised", "personalised", "personalised", "installed", "fresh"]))
        def start(self, start: str) -> None:
            # Most examples start from a personalised applet, so that the flows after issuance are reached within a few steps.
            if start == "personalised":
                self._go(personalisation(caller=target.caller or OFFICIAL_APP_HASH))
            elif start == "installed":
                hashes_ = [target.caller or OFFICIAL_APP_HASH]
                self._go([select(I.ISD_AID), *open_channel(), Wrapped(install_apdu((3, 5))), Wrapped(access_rule_apdu(hashes_))])

        @rule(level=st.sampled_from([0x33, 0x33, 0x03, 0x13, 0x01]), app=st.sampled_from(["jpki", "jpki", "isd"]))
        def enter(self, level: int, app: str) -> None:
            self._go([select(I.JPKI_AID if app == "jpki" else I.ISD_AID), *open_channel(level)])

        @rule(
            store=st.sampled_from(["caller", "caller", "caller", "caller", "other", "none", "caller-then-other"]),
            limits=st.sampled_from([(3, 5), None, (2, 4)]),
        )
        def reinstall(self, store: str, limits: tuple[int, int] | None) -> None:
            # The SEI-TSM's leftover removal and installation (ISS-8, ACL-1): GET STATUS, DELETE, GET STATUS, INSTALL,
            # the access rule (or another app's, or none), then the app selects the applet.
            status = Wrapped(_apdu(0x80, 0xF2, 0x40, 0x02, b"\x4f" + _lv(I.JPKI_AID), 0x00))
            delete = Wrapped(_apdu(0x80, 0xE4, 0x00, 0x80, b"\x4f" + _lv(I.JPKI_AID), 0x00))
            rules = {
                "caller": [[target.caller or OFFICIAL_APP_HASH]],
                "other": [[OTHER_APP_HASH]],
                "none": [],
                "caller-then-other": [[target.caller or OFFICIAL_APP_HASH], [OTHER_APP_HASH]],
            }[store]
            items: list[Command] = [select(I.ISD_AID), *open_channel(), status, delete, status, Wrapped(install_apdu(limits))]
            items += [Wrapped(access_rule_apdu(h)) for h in rules]
            self._go([*items, status, select(I.JPKI_AID)])

        @rule(
            kind=_KINDS,
            pin=_PIN_CHOICE,
            then=st.lists(_CARD_STEPS, min_size=1, max_size=5),
            ready=st.sampled_from([False, True]),
        )
        def use_card(self, kind: Kind, pin: str, then: list[str], ready: bool = False) -> None:
            # The app's (or OpenSC's) own flow: select the applet, ask the PIN status, VERIFY, then what it unlocks, with
            # resets, reselections, wrong PINs and the other kind in between. Half the time on a card issued afresh
            # (`ready`), as a test lab re-personalises between tests: the TSM flows leave slots empty or PINs blocked.
            items: list[Any] = personalisation(caller=target.caller or OFFICIAL_APP_HASH) if ready else []
            items += [select(I.JPKI_AID), *_card_steps(kind, "status"), *_card_steps(kind, f"verify-{pin}")]
            for step_ in then:
                items += _card_steps(kind, step_)
            self._go(items)

        @rule(
            kinds=st.sampled_from([3, 3, 1, 2]),
            breaks=st.lists(st.sampled_from(["none", "none", "reset", "reselect", "again", "interleave"]), min_size=6, max_size=6),
            level=_SESSION_LEVELS,
            serial=st.integers(1, 2**40),
            check=st.lists(_CARD_STEPS, max_size=3),
            reissue=st.booleans(),
        )
        def issuance(self, kinds: int, breaks: list[str], level: int, serial: int, check: list[str], reissue: bool) -> None:
            # The SP-TSM's issuance over one session, interrupted anywhere: a reset or reselection (the app is
            # asynchronous; R and the keys must survive, the session not), or a step sent twice. Then the card is used.
            session = [select(I.JPKI_AID), *open_channel(level)]
            steps: list[list[Any]] = [
                [Wrapped(_apdu(0x80, 0x32, 0, 0, le=0))],
                [Wrapped(_apdu(0x80, 0x34, kinds, 0x00, le=0)), *read_output_commands()],
                [
                    # "interleave": another command between a certificate's blocks (the chain must be dropped: 6A86)
                    _cert_for(k, serial + n, between=Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0)) if breaks[2] == "interleave" else None)
                    for n, k in enumerate(I.KIND_ORDER)
                    if kinds & I.KIND_REF[k]
                ],
                [Wrapped(_apdu(0x80, 0x38, I.KIND_REF[k], 0x00, TEMP_PIN)) for k in I.KIND_ORDER if kinds & I.KIND_REF[k]],
                [
                    Wrapped(_apdu(0x80, 0x3A, I.KIND_REF[k], 0x00, _unblock_data(TEMP_PIN, AUTH_PIN if k is Kind.AUTH else SIGNING_PIN)))
                    for k in I.KIND_ORDER
                    if kinds & I.KIND_REF[k]
                ],
                [Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0))],
            ]
            items: list[Any] = list(session)
            for step_, interruption in zip(steps, breaks, strict=True):
                items += step_
                if interruption == "reset":
                    items += [Reset(), *session]
                elif interruption == "reselect":
                    items += session
                elif interruption == "again":
                    items += step_
            if reissue:
                # A new key pair on the same SE (ISS-4's re-issuance): the old certificate and PIN must go with the old key.
                items += [*session, Wrapped(_apdu(0x80, 0x32, 0, 0, le=0)), Wrapped(_apdu(0x80, 0x34, kinds, 0x00, le=0))]
                items += [*read_output_commands(), Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0))]
            kind = Kind.AUTH if kinds & 1 else Kind.SIGNING
            for step_ in check:
                items += _card_steps(kind, step_)
            self._go(items)

        @rule(
            kind=_KINDS,
            before=st.lists(_CARD_STEPS, max_size=2),
            after=st.lists(_CARD_STEPS, min_size=1, max_size=3),
            unblock=st.sampled_from(["right", "wrong", "malformed", "none", "spend"]),
            while_verified=st.booleans(),
        )
        def pin_initialisation(self, kind: Kind, before: list[str], after: list[str], unblock: str, while_verified: bool = False) -> None:
            # PIN-4's reset: the SP-TSM sets a new temporary PIN on a used slot (mode 01), the user then tries the card,
            # and the PIN is set again from the temporary one (or the temporary PIN is tried wrong until it is spent).
            # Half the time the reset comes while the app holds the PIN verified and the app then tries the key at once:
            # whatever the reset clears must be cleared in the session that is open, not only at the next selection.
            new = AUTH_PIN if kind is Kind.AUTH else SIGNING_PIN
            items: list[Any] = [select(I.JPKI_AID)]
            for step_ in [*before, "verify-right"] if while_verified else before:
                items += _card_steps(kind, step_)
            items += [*open_channel(), Wrapped(_apdu(0x80, 0x38, I.KIND_REF[kind], 0x01, TEMP_PIN))]
            for step_ in ["sign", *after] if while_verified else after:
                items += _card_steps(kind, step_)
            wrong = Wrapped(_apdu(0x80, 0x3A, I.KIND_REF[kind], 0x00, _unblock_data(b"WRONG-TEMP-PIN!!", new)))
            right = Wrapped(_apdu(0x80, 0x3A, I.KIND_REF[kind], 0x00, _unblock_data(TEMP_PIN, new)))
            items += [select(I.JPKI_AID), *open_channel()]
            malformed = Wrapped(
                _apdu(0x80, 0x3A, I.KIND_REF[kind], 0x00, _unblock_data(TEMP_PIN, b"12a4" if kind is Kind.AUTH else b"abc123"))
            )
            items += {
                "right": [right],
                "wrong": [wrong, right],
                "malformed": [malformed, right],  # a new PIN the user mistyped (PIN-1), then the right one
                "none": [],
                "spend": [wrong] * 6 + [right],
            }[unblock]
            items += [Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0)), *_card_steps(kind, "status")]
            self._go(items)

        @precondition(lambda self: target.can_switch_caller)
        @rule(who=st.sampled_from(["other", "other", "reader"]), then=st.lists(_CARD_STEPS, min_size=1, max_size=3), tsm=st.booleans())
        def as_other_app(self, who: str, then: list[str], tsm: bool) -> None:
            # ACL-1: another app (or a reader) sends commands while the official app has the applet selected, then the
            # official app goes on. The access rule is checked on every command, not only at SELECT.
            other = OTHER_APP_HASH if who == "other" else None
            items: list[Command] = [SwitchCaller(other)]
            for step_ in then:
                items += _card_steps(Kind.AUTH, step_)
            if tsm:
                items.append(Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0)))
            self._go([*items, SwitchCaller(target.caller)])

        @rule(level=_SESSION_LEVELS, steps=_SESSION_STEPS_ISD, then=st.sampled_from(["nothing", "select-applet", "probe"]))
        def isd_session(self, level: int, steps: list[tuple[str, Tamper | None]], then: str) -> None:
            # The SEI-TSM's card management: several commands in one session to the ISD, some sent plain or spoiled.
            items: list[Command] = [select(I.ISD_AID), *open_channel(level)]
            items += [_as(mode, isd_command(name, target.caller)) for name, mode in steps]
            items += {"nothing": [], "select-applet": [select(I.JPKI_AID)], "probe": [_SESSION_PROBE]}[then]
            self._go(items)

        @rule(
            level=_SESSION_LEVELS,
            steps=_SESSION_STEPS_TSM,
            serial=st.integers(1, 2**40),
            check=st.lists(_CARD_STEPS, max_size=3),
        )
        def tsm_session(self, level: int, steps: list[tuple[str, Tamper | None]], serial: int, check: list[str], retry: int = -1) -> None:
            # The SP-TSM's commands to the applet in one session, some sent plain or spoiled, one perhaps sent twice (a
            # retry after a lost answer); then the card is used.
            items: list[Any] = [select(I.JPKI_AID), *open_channel(level)]
            for n, (name, mode) in enumerate(steps):
                for _ in range(2 if n == retry else 1):
                    items.append(lambda state, name=name, mode=mode: _spoil(tsm_commands(name, state, serial), mode))
            items.append(Wrapped(_apdu(0x80, 0x3E, 0, 0, le=0)))
            for step_ in check:
                items += _card_steps(Kind.AUTH, step_)
            self._go(items)

        # The flows a card meets most (the app's use, the TSMs' sessions) are drawn three times as often as single
        # commands: Hypothesis picks among rules uniformly, so each gets two more rules of its own.
        @rule(kind=_KINDS, pin=_PIN_CHOICE, then=st.lists(_CARD_STEPS, min_size=1, max_size=6), ready=st.booleans())
        def use_card_again(self, kind: Kind, pin: str, then: list[str], ready: bool) -> None:
            self.use_card(kind, pin, then, ready)

        @rule(kind=_KINDS, pin=_PIN_CHOICE, then=st.lists(_CARD_STEPS, min_size=2, max_size=8), ready=st.booleans())
        def use_card_longer(self, kind: Kind, pin: str, then: list[str], ready: bool) -> None:
            self.use_card(kind, pin, then, ready)

        @rule(
            level=_SESSION_LEVELS,
            steps=_SESSION_STEPS_TSM,
            serial=st.integers(1, 2**40),
            check=st.lists(_CARD_STEPS, max_size=3),
            retry=st.integers(-1, 5),
        )
        def tsm_session_again(self, level: int, steps: list[tuple[str, Tamper | None]], serial: int, check: list[str], retry: int) -> None:
            self.tsm_session(level, steps, serial, check, retry)

        @rule(level=_SESSION_LEVELS, steps=_SESSION_STEPS_ISD, then=st.sampled_from(["nothing", "select-applet", "probe"]))
        def isd_session_again(self, level: int, steps: list[tuple[str, Tamper | None]], then: str) -> None:
            self.isd_session(level, steps, then)

        @rule(kind=_KINDS, then=st.lists(_CARD_STEPS, max_size=3))
        def lock_pin(self, kind: Kind, then: list[str]) -> None:
            # PIN-3: wrong PINs until the PIN locks, then what a locked PIN still allows. Rare on purpose: a locked PIN
            # stays locked until PIN initialisation, and most flows need a usable one.
            items: list[Command] = [select(I.JPKI_AID), *_card_steps(kind, "lock")]
            for step_ in then:
                items += _card_steps(kind, step_)
            self._go(items)

        @rule()
        def reset(self) -> None:
            self._go([Reset()])

        @rule(
            limits=st.sampled_from([(3, 5), None, (2, 4), (1, 1)]),
            admit=st.sampled_from([True, True, True, True, False]),
            serial=st.integers(1, 2**40),
        )
        def personalise(self, limits: tuple[int, int] | None, admit: bool, serial: int) -> None:
            caller = target.caller if admit else OTHER_APP_HASH
            self._go(personalisation(limits=limits, caller=caller or OFFICIAL_APP_HASH, serial=serial))

        @rule(app=st.sampled_from(["isd", "jpki", "empty", "unknown", "elf"]), p2=st.sampled_from([0x0C, 0x0C, 0x00, 0x04, 0x02]))
        def select_application(self, app: str, p2: int) -> None:
            aid = {"isd": I.ISD_AID, "jpki": I.JPKI_AID, "empty": b"", "unknown": bytes.fromhex("A000000003000000"), "elf": I.JPKI_ELF_AID}[
                app
            ]
            le = 0x00 if p2 != 0x0C else None
            self._go([Send(_apdu(0x00, 0xA4, 0x04, p2, aid, le) if aid else bytes([0x00, 0xA4, 0x04, p2]))])

        @rule(level=_LEVELS, cryptogram_ok=st.booleans() | st.just(True), mac_ok=st.booleans() | st.just(True))
        def open_secure_channel(self, level: int, cryptogram_ok: bool, mac_ok: bool) -> None:
            self._go([InitUpdate(I.KEY_VERSION), ExtAuth(level, cryptogram_ok=cryptogram_ok, mac_ok=mac_ok)])

        @rule(kvn=st.sampled_from([0x30, 0x00, 0x31]))
        def initialize_update(self, kvn: int) -> None:
            self._go([InitUpdate(kvn)])

        @rule(level=_LEVELS)
        def external_authenticate(self, level: int) -> None:
            self._go([ExtAuth(level)])

        @rule(fid=st.sampled_from(_FIDS), wrapped=st.booleans(), go=_WHERE)
        def select_file(self, fid: int, wrapped: bool, go: tuple[str, int]) -> None:
            apdu = _apdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big"))
            self._go([Wrapped(apdu) if wrapped else Send(apdu)], go)

        @rule(
            offset=st.sampled_from([0, 4, 250, 0x8000, "end", "end-1", "end+1"]),
            le=st.sampled_from([0, 4, 255, None]),
            wrapped=st.booleans(),
            go=_WHERE,
        )
        def read_binary(self, offset: int | str, le: int | None, wrapped: bool, go: tuple[str, int]) -> None:
            def build(state: CardState) -> Command:
                n = _boundary(offset, len(_current_content(state)))
                apdu = _apdu(0x00, 0xB0, n >> 8 & 0x7F, n & 0xFF, le=le)
                return Wrapped(apdu) if wrapped else Send(apdu)

            self._go([build], go)

        @rule(
            kind=_KINDS,
            index=st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5, 6, 7]),
            select_first=st.booleans() | st.just(True),
            wrapped=st.booleans(),
            go=_WHERE,
        )
        def verify(self, kind: Kind, index: int, select_first: bool, wrapped: bool, go: tuple[str, int]) -> None:
            pins = _AUTH_PINS if kind is Kind.AUTH else _SIGNING_PINS
            pin = pins[index] if index < len(pins) else b""
            items: list[Command] = [Send(_apdu(0x00, 0xA4, 0x02, 0x0C, I.EF_PIN[kind].to_bytes(2, "big")))] if select_first else []
            apdu = _apdu(0x00, 0x20, 0x00, 0x80, pin)
            items.append(Wrapped(apdu) if wrapped else Send(apdu))
            self._go(items, go)

        @rule(kind=_KINDS, p1=st.sampled_from([0x00, 0x01, 0x02]), old=st.sampled_from([0, 0, 1, 3]), new=st.integers(0, 6), go=_WHERE)
        def change_pin(self, kind: Kind, p1: int, old: int, new: int, go: tuple[str, int]) -> None:
            pins = _AUTH_PINS if kind is Kind.AUTH else _SIGNING_PINS
            data = pins[new] if p1 else pins[old] + pins[new]
            items = [Send(_apdu(0x00, 0xA4, 0x02, 0x0C, I.EF_PIN[kind].to_bytes(2, "big"))), Send(_apdu(0x00, 0x24, p1, 0x80, data))]
            self._go(items, go)

        @rule(
            kind=_KINDS,
            length=st.sampled_from([51, 36, 1, 245, 246]),
            wrapped=st.booleans(),
            select_first=st.booleans() | st.just(True),
            go=_WHERE,
        )
        def sign(self, kind: Kind, length: int, wrapped: bool, select_first: bool, go: tuple[str, int]) -> None:
            if wrapped:
                length = min(length, 200)  # a wrapped command carries at most 239 data bytes once padded and MACed
            data = bytes(range(length % 256)) * (length // 256) + bytes(range(length % 256))
            apdu = _apdu(0x80, 0x2A, 0x00, 0x80, data[:length], 0x00)
            items: list[Command] = [Send(_apdu(0x00, 0xA4, 0x02, 0x0C, I.EF_KEY[kind].to_bytes(2, "big")))] if select_first else []
            items.append(Wrapped(apdu) if wrapped else Send(apdu))
            self._go(items, go)

        @rule(le=st.sampled_from([8, 0, 1, None]), p1p2=st.sampled_from([0, 0, 0x0100]), wrapped=st.booleans(), go=_WHERE)
        def get_challenge(self, le: int | None, p1p2: int, wrapped: bool, go: tuple[str, int]) -> None:
            apdu = _apdu(0x00, 0x84, p1p2 >> 8, p1p2 & 0xFF, le=le)
            self._go([Wrapped(apdu) if wrapped else Send(apdu)], go)

        @rule(mode=_MODES, what=st.sampled_from(["se-id", "r", "status"]), bad_p1=st.booleans(), go=_WHERE, probe=_PROBE)
        def tsm_simple(self, mode: Tamper | None, what: str, bad_p1: bool, go: tuple[str, int], probe: bool) -> None:
            ins = {"se-id": 0x30, "r": 0x32, "status": 0x3E}[what]
            self._go([_as(mode, _apdu(0x80, ins, 0x01 if bad_p1 else 0x00, 0x00, le=0))], go, probe)

        @rule(
            mode=_MODES,
            kinds=st.sampled_from([3, 3, 1, 2, 0, 4]),
            read=st.sampled_from(["all", "all", "none", "all-then-end", "first-again"]),
            go=_WHERE,
            probe=_PROBE,
            fresh_r=st.booleans(),
        )
        def generate_key_pair(self, mode: Tamper | None, kinds: int, read: str, go: tuple[str, int], probe: bool, fresh_r: bool) -> None:
            # Hosts read the output to its end; some read on until the card says there is no more (6B00), or read a chunk twice.
            items: list[Any] = [Wrapped(_apdu(0x80, 0x32, 0, 0, le=0))] if fresh_r else []
            items.append(_as(mode, _apdu(0x80, 0x34, kinds, 0x00, le=0)))
            if read != "none":
                items += read_output_commands()
            if read == "all-then-end":
                items.append(lambda state: Wrapped(_apdu(0x80, 0x40, *divmod(state.output.total if state.output else 335, 256), le=0)))
            elif read == "first-again":
                items.append(Wrapped(_apdu(0x80, 0x40, 0x00, 0x00, le=0)))
            self._go(items, go, probe)

        @rule(
            offset=st.sampled_from([0, 239, 478, 0x1000, "end", "end-1", "end+1"]),
            mode=_MODES,
            go=_WHERE,
            probe=_PROBE,
        )
        def get_output(self, offset: int | str, mode: Tamper | None, go: tuple[str, int], probe: bool) -> None:
            # Named boundaries ("end": the pending output's length) are resolved against what the host has seen.
            def build(state: CardState) -> Command:
                n = _boundary(offset, state.output.total if state.output is not None else 335)
                return _as(mode, _apdu(0x80, 0x40, n >> 8 & 0xFF, n & 0xFF, le=0))

            self._go([build], go, probe)

        @rule(
            kind=_KINDS,
            which=st.sampled_from(["own", "own", "foreign", "ca", "garbage", "target-5"]),
            serial=st.integers(1, 2**40),
            mode=_MODES,
            go=_WHERE,
            probe=_PROBE,
        )
        def write_certificate(self, kind: Kind, which: str, serial: int, mode: Tamper | None, go: tuple[str, int], probe: bool) -> None:
            def build(state: CardState) -> list[Command]:
                target_ = I.KIND_REF[kind]
                if which == "garbage":
                    return [_as(mode, _apdu(0x80, 0x36, target_, 0x80, b"\x30\x82\x00\x02\x05\x00"))]
                if which == "target-5":
                    return [_as(mode, _apdu(0x80, 0x36, 0x05, 0x80, b"\x30\x00"))]
                spki = state.applet.slots[kind].spki if state.applet is not None and which == "own" else None
                if which == "ca":
                    target_ += 2
                cmds = write_certificate_commands(target_, test_certificate(spki, serial, ca=which == "ca"))
                return [_as(mode, c.apdu) if i == 0 and isinstance(c, Wrapped) else c for i, c in enumerate(cmds)]

            self._go([build], go, probe)

        @rule(kind=_KINDS, p2=st.sampled_from([0x00, 0x01, 0x02]), pin=st.sampled_from(_TEMP_PINS), mode=_MODES, go=_WHERE, probe=_PROBE)
        def set_temporary_pin(self, kind: Kind, p2: int, pin: bytes, mode: Tamper | None, go: tuple[str, int], probe: bool) -> None:
            self._go([_as(mode, _apdu(0x80, 0x38, I.KIND_REF[kind], p2, pin))], go, probe)

        @rule(
            kind=_KINDS,
            temp=st.sampled_from(_TEMP_PINS[:2]),
            new=st.integers(0, 6),
            malformed=st.booleans(),
            mode=_MODES,
            go=_WHERE,
            probe=_PROBE,
        )
        def unblock_and_set_pin(
            self, kind: Kind, temp: bytes, new: int, malformed: bool, mode: Tamper | None, go: tuple[str, int], probe: bool
        ) -> None:
            pin = (_AUTH_PINS if kind is Kind.AUTH else _SIGNING_PINS)[new]
            data = b"\x82" + _lv(pin) + b"\x81" + _lv(temp) if malformed else _unblock_data(temp, pin)
            self._go([_as(mode, _apdu(0x80, 0x3A, I.KIND_REF[kind], 0x00, data))], go, probe)

        @rule(
            kinds=st.sampled_from([3, 1, 2, 0]),
            serial=st.sampled_from(["none", "auth", "signing", "other", "malformed"]),
            mode=_MODES,
            go=_WHERE,
            probe=_PROBE,
        )
        def delete_keys(self, kinds: int, serial: str, mode: Tamper | None, go: tuple[str, int], probe: bool) -> None:
            def build(state: CardState) -> Command:
                data = b""
                if serial in ("auth", "signing"):
                    kind = Kind.AUTH if serial == "auth" else Kind.SIGNING
                    s = state.applet.slots[kind].serial if state.applet is not None else None
                    value = s or 424242
                    data = b"\xc2" + _lv(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))
                elif serial == "other":
                    data = b"\xc2\x03\x12\x34\x56"
                elif serial == "malformed":
                    data = b"\xc2\x05\x01"
                return _as(mode, _apdu(0x80, 0x3C, kinds, 0x00, data))

            self._go([build], go, probe)

        @rule(what=st.sampled_from(_ISD_COMMANDS), mode=_MODES, go=_WHERE_ISD, probe=_PROBE)
        def card_management(self, what: str, mode: Tamper | None, go: tuple[str, int], probe: bool) -> None:
            self._go([_as(mode, isd_command(what, target.caller))], go, probe)

        @rule(
            cla=st.sampled_from([0x00, 0x80, 0x84, 0x04, 0xA0, 0x01, 0xFF, 0x0C]),
            ins=st.integers(0, 255).filter(lambda i: i not in (0x50, 0x82)),
            p1=st.sampled_from([0, 1, 0x80]),
            data=st.binary(max_size=12),
            le=st.sampled_from([None, 0]),
            framing=st.sampled_from(["ok", "ok", "short", "lc-too-long", "extended"]),
        )
        def raw(self, cla: int, ins: int, p1: int, data: bytes, le: int | None, framing: str) -> None:
            apdu = _apdu(cla, ins, p1, 0x00, data, le)
            if framing == "short":
                apdu = apdu[:3]
            elif framing == "lc-too-long":
                apdu = bytes([cla, ins, p1, 0, len(data) + 2]) + data
            elif framing == "extended":
                apdu = bytes([cla, ins, p1, 0, 0, 0, 1, 0xAA])
            self._go([Send(apdu)])

    AppletLockstep.__name__ = AppletLockstep.__qualname__ = "AppletLockstep"
    return AppletLockstep


def search(target: AppletTarget, *, examples: int, steps: int = 30, derandomize: bool = True, shrink: bool = False) -> AppletRun | None:
    """Run the search on `target` with this budget; the run that diverged (shrunk if `shrink`), or None if none did."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    found: list[AppletRun] = []
    phases = [Phase.generate] + ([Phase.shrink] if shrink else [])
    budget = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=phases,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    try:
        run_state_machine_as_test(applet_machine(target, on_divergence=found.append), settings=budget)
    except AssertionError:
        if not found:
            raise
        return found[-1]
    return None
