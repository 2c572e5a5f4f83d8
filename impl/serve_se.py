"""`mjpki serve-se`: the GP-SE (impl.se.GpSe) served as a virtual smart card to pcscd through vsmartcard's vpcd driver.

vpcd (Debian package vsmartcard-vpcd) is a reader driver inside pcscd. Each of its readers listens on a TCP port (the
Debian configuration: 35963 for "Virtual PCD 00 00", 35964 for "Virtual PCD 00 01"); the virtual card CONNECTS to that
port and is "inserted" while connected. Every message either way is a 2-byte big-endian length and a payload. A 1-byte
payload from vpcd is a control message: 00 power off, 01 power on, 02 reset, 04 "send the ATR" (answered with the ATR);
anything else is a command APDU, answered with response data || SW. So every byte an application (OpenSC, pyscard)
exchanges with the SE goes through pcscd, exactly as with a card in a reader.

A served SE keeps its non-volatile memory (GpSe.snapshot(), private keys included) in a JSON file in the state
directory, written after every APDU that changed it, so it survives reconnects and restarts; power off, power on and
reset clear only the volatile state (selection, current EF, verified PINs, secure channel), as a card would. The
reference system's SQLite records of a `--demo` personalisation sit next to it (records.sqlite).

One SE can be served on several ports, each with the caller (ACL-1) the SE sees on it: `None`, a reader such as OpenSC
uses; or an Android app's signing-certificate hash, standing for that app's OMAPI channel on the phone. The system-level
suite over PC/SC (adapters.pcsc_system) uses one reader per phone: slot 00 is the official app, slot 01 another app.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from impl.scp03 import StaticKeys
from impl.se import GpSe
from impl.se_apdu import JPKI_ATR, SW_WRONG_LENGTH
from spec.domain import Kind

__all__ = [
    "VPCD_PORT",
    "PHONE_BASE_PORT",
    "PHONE_READER_PREFIX",
    "DEFAULT_KEYS",
    "CTRL_OFF",
    "CTRL_ON",
    "CTRL_RESET",
    "CTRL_ATR",
    "Channel",
    "SeStore",
    "VpcdCard",
    "SeServer",
    "DemoCard",
    "handle_message",
    "personalise_demo",
    "parse_keys",
    "phone_se_id",
    "VPCD_DRIVER",
    "reader_conf",
    "write_pcscd_config",
    "build_parser",
    "main",
]

_LOG = logging.getLogger(__name__)

VPCD_PORT: Final = 35963
"""vpcd's first port in Debian's /etc/reader.conf.d/vpcd: reader "Virtual PCD 00 00" (35964 is "Virtual PCD 00 01")."""
PHONE_BASE_PORT: Final = 35965
"""The system-level suite's phones: SE k (1-based) on PHONE_BASE_PORT + 2(k-1) (official app) and the next port (another app)."""
PHONE_READER_PREFIX: Final = "mjpki "
"""Friendly-name prefix of the phones' vpcd readers: SE-0001 is readers "mjpki SE-0001 00 00" and "mjpki SE-0001 00 01"."""
DEFAULT_KEYS: Final = StaticKeys(enc=bytes(range(0x40, 0x50)), mac=bytes(range(0x40, 0x50)), dek=bytes(range(0x40, 0x50)))
"""GlobalPlatform's well-known test keys 40..4F: the ISD keys of a fresh served SE unless --keys says otherwise. Test only."""

CTRL_OFF: Final = 0x00
CTRL_ON: Final = 0x01
CTRL_RESET: Final = 0x02
CTRL_ATR: Final = 0x04
_MAX_MESSAGE: Final = 0xFFFF


def phone_se_id(index: int) -> str:
    """The SE-ID of the suite's phone number index (1-based), as mjpki.scenarios.base_world names them."""
    return f"SE-{index:04d}"


def parse_keys(text: str) -> StaticKeys:
    """SCP03 static keys from hex: one 16/24/32-byte key used as ENC, MAC and DEK, or three of equal length joined."""
    try:
        raw = bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError as exc:
        raise ValueError(f"keys must be hex: {exc}") from exc
    if len(raw) in (16, 24, 32):
        return StaticKeys(enc=raw, mac=raw, dek=raw)
    if len(raw) in (48, 72, 96):
        n = len(raw) // 3
        return StaticKeys(enc=raw[:n], mac=raw[n : 2 * n], dek=raw[2 * n :])
    raise ValueError(f"keys must be one AES key (16/24/32 bytes) or three (ENC||MAC||DEK), got {len(raw)} bytes")


# --- the protocol ------------------------------------------------------------------------------------------------


def handle_message(se: GpSe, caller: bytes | None, payload: bytes, *, atr: bytes = JPKI_ATR) -> bytes | None:
    """vpcd's message to the card → the card's answer (None: no answer is sent). Never raises on bad input."""
    if len(payload) == 1:
        control = payload[0]
        if control in (CTRL_OFF, CTRL_ON, CTRL_RESET):
            se.power_reset()  # a card's volatile state does not survive a power cycle or a reset
            return None
        if control == CTRL_ATR:
            return atr
        _LOG.warning("vpcd sent unknown control byte %02X; ignored", control)
        return None
    if not payload:
        return SW_WRONG_LENGTH
    return se.transmit(payload, caller=caller)


def _quickack(sock: socket.socket) -> None:
    """ACK at once. Debian's vpcd writes the length and the payload separately without TCP_NODELAY, so Nagle holds the
    payload until the length is ACKed: with Linux's delayed ACK every message would wait about 40 ms. Not sticky: set per read."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _recv_exact(sock: socket.socket, n: int, stop: threading.Event) -> bytes | None:
    """n bytes from sock, or None if the peer closed the connection or we are stopping."""
    out = b""
    while len(out) < n:
        if stop.is_set():
            return None
        _quickack(sock)
        try:
            chunk = sock.recv(n - len(out))
        except TimeoutError:
            continue
        except OSError:
            return None
        if not chunk:
            return None
        out += chunk
    return out


# --- persistence ---------------------------------------------------------------------------------------------------


class SeStore:
    """One SE and the file holding its non-volatile memory; APDUs from every channel of the SE go through `exchange`."""

    def __init__(self, path: Path, se: GpSe) -> None:
        self.path = path
        self.se = se
        self._lock = threading.Lock()
        self._saved = ""
        self.save()

    @classmethod
    def open(
        cls, path: Path, *, se_id: str, keys: StaticKeys, auth_pin_tries: int = 3, signing_pin_tries: int = 5, fresh: bool = False
    ) -> SeStore:
        """The SE stored at path (a new one if there is none, or if fresh); ValueError if the file holds another SE."""
        if path.exists() and not fresh:
            se = GpSe.from_snapshot(json.loads(path.read_text(encoding="utf-8")))
            if se.se_id != se_id:
                raise ValueError(f"{path} holds SE {se.se_id!r}, not {se_id!r}: give another --state directory")
            _LOG.info("loaded %s from %s", se_id, path)
        else:
            se = GpSe(se_id, keys, auth_pin_tries=auth_pin_tries, signing_pin_tries=signing_pin_tries)
        return cls(path, se)

    def exchange(self, caller: bytes | None, payload: bytes) -> bytes | None:
        """handle_message, then persist the SE if its non-volatile memory changed."""
        with self._lock:
            answer = handle_message(self.se, caller, payload)
            if len(payload) > 1:
                self.save()
            return answer

    def save(self) -> None:
        """Write the snapshot (private keys included: the file is created 0600) if it changed; atomically."""
        text = json.dumps(self.se.snapshot(), sort_keys=True)
        if text == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)
        self._saved = text


# --- the server ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """A vpcd port an SE is served on, and the caller the SE sees there (None: a reader; else an app's certificate hash)."""

    port: int
    caller: bytes | None = None
    label: str = "reader"


class VpcdCard(threading.Thread):
    """The virtual card on one vpcd port: connect (and reconnect whenever the link drops), then answer vpcd's messages."""

    def __init__(self, store: SeStore, channel: Channel, *, host: str, stop: threading.Event, retry_seconds: float = 0.2) -> None:
        super().__init__(name=f"vpcd-{channel.port}", daemon=True)
        self.store = store
        self.channel = channel
        self.host = host
        self.stop_event = stop
        self.retry_seconds = retry_seconds
        self.connected = threading.Event()
        self.messages = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                sock = socket.create_connection((self.host, self.channel.port), timeout=1.0)
            except OSError:
                self.stop_event.wait(self.retry_seconds)  # pcscd (vpcd) not listening yet, or restarting
                continue
            _LOG.info("%s: inserted into vpcd at %s:%d", self.store.se.se_id, self.host, self.channel.port)
            self.connected.set()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(0.5)
                self._serve(sock)
            finally:
                self.connected.clear()
                sock.close()
                self.store.se.power_reset()  # removed from the reader
                _LOG.info("%s: link to port %d closed", self.store.se.se_id, self.channel.port)

    def _serve(self, sock: socket.socket) -> None:
        while not self.stop_event.is_set():
            head = _recv_exact(sock, 2, self.stop_event)
            if head is None:
                return
            (length,) = struct.unpack(">H", head)
            payload = _recv_exact(sock, length, self.stop_event)
            if payload is None:
                return
            self.messages += 1
            answer = self.store.exchange(self.channel.caller, payload)
            if answer is not None:
                if len(answer) > _MAX_MESSAGE:
                    answer = SW_WRONG_LENGTH
                try:
                    sock.sendall(struct.pack(">H", len(answer)) + answer)
                except OSError:
                    return


class SeServer:
    """Several SEs, each on its channels; `start` runs one VpcdCard thread per channel, `stop` ends them."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.stop_event = threading.Event()
        self.cards: list[VpcdCard] = []

    def add(self, store: SeStore, channels: Sequence[Channel]) -> None:
        """Serve store's SE on these channels."""
        for channel in channels:
            self.cards.append(VpcdCard(store, channel, host=self.host, stop=self.stop_event))

    def start(self) -> None:
        """Start every channel's thread."""
        for card in self.cards:
            card.start()

    def stop(self) -> None:
        """Stop every thread (each closes its link) and save every SE."""
        self.stop_event.set()
        for card in self.cards:
            card.join(timeout=3)
        for store in {id(c.store): c.store for c in self.cards}.values():
            store.save()


# --- the demo personalisation ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCard:
    """What a demo personalisation put into the SE: the phone certificates and CA certificates (DER) and the PINs."""

    se_id: str
    certificates: dict[Kind, bytes]
    ca_certificates: dict[Kind, bytes]
    signing_pin: str
    auth_pin: str


def personalise_demo(
    se: object, *, keys: StaticKeys, signing_pin: str = "ABC123", auth_pin: str = "1234", db_path: Path | None = None
) -> DemoCard:
    """Issue a demo person's phone certificates into the SE through the reference system's real issuance flow.

    `se` is any impl.system.SeLink (an in-process GpSe, or a PC/SC link); `keys` are its ISD keys. The person applies with
    the card signature, the SE makes R and the key pairs, the CA certifies them, the SP-TSM writes the certificates and
    temporary PINs over SCP03 and the app sets the PINs (ISS-2, ISS-5, ISS-6, PIN-2). Any applet already there is
    removed first (ISS-8). RuntimeError if a step is refused (e.g. a PIN not in the PIN-1 format).
    """
    from datetime import date

    from impl.system import ReferenceSystem, SeLink
    from spec import actions as A
    from spec.domain import Profile
    from spec.world import PersonSpec, PhoneSpec, ServiceProviderSpec, World

    if not isinstance(se, SeLink):
        raise TypeError(f"{type(se).__name__} is not an SE link (se_id, transmit(apdu, caller=...))")
    world = World(
        persons=(PersonSpec(id="P1", birth=date(1990, 6, 15)),),
        phones=(PhoneSpec(id="D1", se_id=se.se_id, initial_holder="P1"),),
        service_providers=(ServiceProviderSpec(id="portal"),),
    )
    if db_path is not None:
        db_path.unlink(missing_ok=True)
    system = ReferenceSystem(world, db_path=db_path, isd_keys=keys, se_links={"D1": se})
    try:
        both = frozenset(Kind)
        steps: list[A.Action] = [
            A.AdvanceTime(minutes=9 * 60),  # into the push window
            A.InstallApp(phone="D1"),
            A.PrepareApplet(phone="D1"),
            A.Apply(person="P1", phone="D1", kinds=both, signing_pin=signing_pin, auth_pin=auth_pin),
            A.AdvanceTime(minutes=5),
            A.DeliverIssuancePush(person="P1"),
            A.Register(person="P1", phone="D1"),
            A.SetPin(phone="D1", kind=Kind.AUTH),
            A.SetPin(phone="D1", kind=Kind.SIGNING),
        ]
        for action in steps:
            outcome = system.step(action)
            if not outcome.ok:
                raise RuntimeError(f"demo personalisation: {action} was refused: {outcome}")
        certs = {c.kind: c.der for c in system.records.certificates(person="P1", profile=Profile.PHONE) if c.live(system.now)}
        cas = {kind: system.ca.ca(kind).certificate.public_bytes(_der()) for kind in Kind}
        return DemoCard(se_id=se.se_id, certificates=certs, ca_certificates=cas, signing_pin=signing_pin, auth_pin=auth_pin)
    finally:
        system.close()


def _der():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


# --- reader configuration --------------------------------------------------------------------------------------------

VPCD_DRIVER: Final = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
"""Debian's vpcd driver (package vsmartcard-vpcd)."""


def reader_conf(phones: int, *, base_port: int = PHONE_BASE_PORT, driver_dir: Path | None = None) -> str:
    """A pcscd reader.conf: Debian's "Virtual PCD" (35963/35964) and one two-slot reader per phone SE.

    vpcd keeps its sockets in per-library globals indexed by slot, so two reader entries with the same driver file
    clobber each other: every entry after the first needs its own copy of the library (write_pcscd_config makes them
    in driver_dir). pcscd allows 16 readers in all, i.e. Virtual PCD plus 7 phones.
    """
    if phones and driver_dir is None:
        raise ValueError("phone readers need driver_dir, where write_pcscd_config puts the copies of the vpcd driver")
    entries: list[tuple[str, int, Path]] = [("Virtual PCD", VPCD_PORT, VPCD_DRIVER)]
    for k in range(1, phones + 1):
        assert driver_dir is not None
        entries.append((f"{PHONE_READER_PREFIX}{phone_se_id(k)}", base_port + 2 * (k - 1), driver_dir / f"libifdvpcd-mjpki-{k}.so"))
    # vpcd listens on CHANNELID (slot 00) and CHANNELID + 1 (slot 01).
    return "".join(
        f'FRIENDLYNAME "{name}"\nDEVICENAME   /dev/null:0x{port:04X}\nLIBPATH      {lib}\nCHANNELID    0x{port:04X}\n\n'
        for name, port, lib in entries
    )


def write_pcscd_config(directory: Path, phones: int, *, base_port: int = PHONE_BASE_PORT) -> Path:
    """Write DIR/reader.conf.d/vpcd (for `pcscd -c`) and DIR/drivers/ (copies of the vpcd driver); the reader.conf.d path."""
    if not 0 <= phones <= 7:
        raise ValueError(f"pcscd takes 16 readers: Virtual PCD (2) and at most 7 phones (2 each), not {phones}")
    if not VPCD_DRIVER.exists():
        raise FileNotFoundError(f"{VPCD_DRIVER} is missing: apt-get install vsmartcard-vpcd (scripts/pcsc.sh install)")
    drivers = directory / "drivers"
    drivers.mkdir(parents=True, exist_ok=True)
    data = VPCD_DRIVER.read_bytes()
    for k in range(1, phones + 1):
        copy = drivers / f"libifdvpcd-mjpki-{k}.so"
        if not copy.exists() or copy.read_bytes() != data:
            copy.write_bytes(data)  # a copy, not a link: the dynamic loader shares one instance per file
    conf = directory / "reader.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "vpcd").write_text(reader_conf(phones, base_port=base_port, driver_dir=drivers), encoding="utf-8")
    return conf


# --- the command ---------------------------------------------------------------------------------------------------


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options of `mjpki serve-se` (added to the given parser, e.g. a subparser)."""
    p = parser or argparse.ArgumentParser(prog="mjpki serve-se", description=__doc__)
    p.add_argument("--state", default="out/serve-se", help="directory for the SEs' memory (se-<SE-ID>.json) and the demo records")
    p.add_argument("--host", default="127.0.0.1", help="where vpcd (inside pcscd) listens (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=VPCD_PORT, help=f"vpcd port of the reader SE (default {VPCD_PORT}: 'Virtual PCD 00 00')")
    p.add_argument("--se-id", default="SE-DEMO", help="SE-ID of the reader SE (default SE-DEMO)")
    p.add_argument("--no-reader-se", action="store_true", help="serve only the phone SEs of --phones")
    p.add_argument(
        "--phones",
        type=int,
        default=0,
        metavar="N",
        help=f"also serve SE-0001..SE-000N for the system-level suite (ports {PHONE_BASE_PORT}+2(k-1): official app, +1: another app)",
    )
    p.add_argument("--phone-base-port", type=int, default=PHONE_BASE_PORT, help=f"first port of the phone SEs (default {PHONE_BASE_PORT})")
    p.add_argument("--keys", help="ISD (and APSD) SCP03 keys of fresh SEs, hex (default: the GP test keys 40..4F)")
    p.add_argument("--auth-pin-tries", type=int, default=3, help="auth PIN retry limit of fresh SEs (default 3)")
    p.add_argument("--signing-pin-tries", type=int, default=5, help="signing PIN retry limit of fresh SEs (default 5)")
    p.add_argument("--demo", action="store_true", help="wipe the reader SE and personalise it with a demo person's phone certificates")
    p.add_argument("--signing-pin", default="ABC123", help="signing PIN of --demo (6-16 upper-case letters and digits)")
    p.add_argument("--auth-pin", default="1234", help="auth PIN of --demo (4 digits)")
    p.add_argument(
        "--write-pcscd-config",
        metavar="DIR",
        help="write DIR/reader.conf.d (for `pcscd -c DIR/reader.conf.d`) with the readers of these options, and exit",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every link event")
    return p


def main(args: argparse.Namespace) -> int:
    """Run `mjpki serve-se` until SIGINT/SIGTERM."""
    from impl.system import OFFICIAL_APP_HASH, OTHER_APP_HASH

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="serve-se: %(message)s")
    if not 0 <= args.phones <= 7:
        print("serve-se: --phones must be 0..7 (pcscd takes 16 readers, two per phone)", flush=True)
        return 2
    if args.write_pcscd_config:
        try:
            conf = write_pcscd_config(Path(args.write_pcscd_config), args.phones, base_port=args.phone_base_port)
        except (ValueError, OSError) as exc:
            print(f"serve-se: {exc}", flush=True)
            return 1
        print(conf)
        return 0
    if args.demo and args.no_reader_se:
        print("serve-se: --demo personalises the reader SE; drop --no-reader-se", flush=True)
        return 2
    try:
        keys = DEFAULT_KEYS if args.keys is None else parse_keys(args.keys)
    except ValueError as exc:
        print(f"serve-se: --keys: {exc}", flush=True)
        return 2
    state = Path(args.state)
    state.mkdir(parents=True, exist_ok=True)
    server = SeServer(args.host)
    lines: list[str] = []
    tries = {"auth_pin_tries": args.auth_pin_tries, "signing_pin_tries": args.signing_pin_tries}
    try:
        if not args.no_reader_se:
            store = SeStore.open(state / f"se-{args.se_id}.json", se_id=args.se_id, keys=keys, fresh=args.demo, **tries)
            if args.demo:
                card = personalise_demo(
                    store.se, keys=keys, signing_pin=args.signing_pin, auth_pin=args.auth_pin, db_path=state / "records.sqlite"
                )
                store.save()
                serials = ", ".join(f"{k.value} {_serial(der)}" for k, der in sorted(card.certificates.items(), key=lambda kv: kv[0].value))
                lines.append(f"demo: {args.se_id} personalised through the issuance flow; phone certificates {serials}")
                lines.append(f"demo: signing PIN {args.signing_pin}  auth PIN {args.auth_pin}")
                lines.append(f"demo: records in {state / 'records.sqlite'}")
            server.add(store, [Channel(port=args.port, caller=None, label="reader")])
            lines.append(f"{args.se_id} on vpcd port {args.port} (caller: a reader, e.g. OpenSC)")
        for k in range(1, args.phones + 1):
            se_id = phone_se_id(k)
            port = args.phone_base_port + 2 * (k - 1)
            store = SeStore.open(state / f"se-{se_id}.json", se_id=se_id, keys=keys, **tries)
            server.add(
                store,
                [
                    Channel(port=port, caller=OFFICIAL_APP_HASH, label="official app"),
                    Channel(port=port + 1, caller=OTHER_APP_HASH, label="other app"),
                ],
            )
            lines.append(f"{se_id} on vpcd ports {port} (official app) and {port + 1} (another app)")
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"serve-se: {exc}", flush=True)
        return 1
    stopped = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.start()
    for line in lines:
        print(f"serve-se: {line}", flush=True)
    print(f"serve-se: state in {state}; connecting to vpcd at {args.host}; Ctrl-C to stop", flush=True)
    if args.demo:
        print("serve-se: try  opensc-tool -n  and  pkcs15-tool -D  (see docs/pcsc.md)", flush=True)
    while not stopped.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass
    server.stop()
    print("serve-se: stopped", flush=True)
    return 0


def _serial(der: bytes) -> str:
    from cryptography import x509

    return f"{x509.load_der_x509_certificate(der).serial_number:#x}"
