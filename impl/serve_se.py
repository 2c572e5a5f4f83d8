"""`mjpki serve-se`: the GP-SE (mjpki.impl.se.GpSe) served as a virtual smart card to pcscd through vsmartcard's vpcd driver.

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
suite over PC/SC (mjpki.adapters.pcsc_system) uses one reader per phone: slot 00 is the official app, slot 01 another app.

`--applet MODULE:CLASS` serves another class instead of GpSe (a third party's applet in Python, or a deliberately faulty
GpSe subclass), for every SE this process serves. What serve-se needs of it is `SeFactory` (the class: GpSe's
constructor and `from_snapshot`) and `ServedSe` (its objects: `se_id`, `transmit`, `power_reset`, `snapshot`); `--demo`
needs only `se_id` and `transmit`, but a working issuance flow behind them. mjpki.cli loads the class
(mjpki.adapterspec) and `check_applet` checks it, so impl/ stays free of mjpki/.

Everything serve-se writes holds secrets (the SEs' private keys, PINs and ISD keys; the demo's records) or is loaded
by pcscd (the driver copies, reader.conf.d): folders are made 0700 and refused when they are symbolic links, someone
else's, or writable by group or others (`private_dir`); files are written 0600 through a fresh temporary file with a
random name, created with O_EXCL|O_NOFOLLOW in the same folder, then renamed over the old one (`write_private`), so a
stale temporary file or a link someone planted never receives the data and no file keeps an old mode.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import secrets
import signal
import socket
import stat
import struct
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from mjpki.impl.isd_keys import TEST_KEYS, TEST_KEYS_WARNING, Keys, KeysError, keys_from_environment, parse_keys, read_keys_file
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.se_apdu import JPKI_ATR, SW_UNKNOWN, SW_WRONG_LENGTH
from mjpki.spec.domain import Kind

__all__ = [
    "VPCD_PORT",
    "PHONE_BASE_PORT",
    "PHONE_READER_PREFIX",
    "TEST_KEYS",
    "CTRL_OFF",
    "CTRL_ON",
    "CTRL_RESET",
    "CTRL_ATR",
    "ServedSe",
    "SeFactory",
    "AppletError",
    "check_applet",
    "check_served",
    "UnsafePathError",
    "private_dir",
    "write_private",
    "read_private",
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
    "listening_ports",
    "join_pcscd_network",
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

CTRL_OFF: Final = 0x00
CTRL_ON: Final = 0x01
CTRL_RESET: Final = 0x02
CTRL_ATR: Final = 0x04
_MAX_MESSAGE: Final = 0xFFFF


def phone_se_id(index: int) -> str:
    """The SE-ID of the suite's phone number index (1-based), as mjpki.scenarios.base_world names them."""
    return f"SE-{index:04d}"


# --- what is served ----------------------------------------------------------------------------------------------


class ServedSe(Protocol):
    """What serve-se uses of a served SE object (mjpki.impl.se.GpSe is one)."""

    @property
    def se_id(self) -> str:
        """The SE-ID; it must be the one the SE was made or restored with."""
        ...

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        """One command APDU from `caller` (None: a reader; else an app's 32-byte certificate hash) → data || SW."""
        ...

    def power_reset(self) -> None:
        """Power off, power on or reset: forget the volatile state (selection, verified PINs, secure channel)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The non-volatile memory as JSON-able data, which `from_snapshot` turns back into the same SE."""
        ...


class SeFactory(Protocol):
    """What serve-se uses of the served class (mjpki.impl.se.GpSe is one): its constructor and `from_snapshot`."""

    def __call__(self, se_id: str, isd_keys: StaticKeys, /, *, auth_pin_tries: int, signing_pin_tries: int) -> ServedSe:
        """A fresh SE: no applet, these ISD (and APSD) keys, these retry limits for the applet INSTALL makes."""
        ...

    def from_snapshot(self, snapshot: Mapping[str, Any], /) -> ServedSe:
        """The SE a `snapshot()` was taken of, freshly reset; ValueError if the data is malformed."""
        ...


_SE_METHODS: Final = ("transmit", "power_reset", "snapshot")


class AppletError(TypeError):
    """The class given with --applet (or what it makes) is not enough like mjpki.impl.se.GpSe for serve-se to serve."""


def _name(obj: object) -> str:
    """module.QualifiedName of a class or function, else its type's name."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else f"an object of type {type(obj).__name__}"


def check_applet(obj: object, spec: str) -> SeFactory:
    """obj, if it looks like a SeFactory (a class like GpSe); AppletError naming what is missing otherwise."""
    if not callable(obj):
        raise AppletError(f"applet {spec!r}: that is of type {type(obj).__name__}, not a class like mjpki.impl.se.GpSe (docs/pcsc.md)")
    missing = [] if callable(getattr(obj, "from_snapshot", None)) else ["from_snapshot"]
    if isinstance(obj, type):  # a factory function's objects can only be checked once made (check_served)
        missing = [m for m in _SE_METHODS if not callable(getattr(obj, m, None))] + missing
    if missing:
        raise AppletError(
            f"applet {spec!r}: {_name(obj)} has no {', '.join(missing)}: serve-se needs a class like mjpki.impl.se.GpSe (docs/pcsc.md)"
        )
    return obj  # type: ignore[return-value]


def check_served(se: object, se_id: str, made_by: str) -> ServedSe:
    """se, if it is a ServedSe with this SE-ID; AppletError naming what is wrong otherwise."""
    missing = [m for m in _SE_METHODS if not callable(getattr(se, m, None))]
    if missing:
        raise AppletError(f"{made_by} made {_name(type(se))}, which has no {', '.join(missing)}: serve-se needs an object like GpSe's")
    actual = getattr(se, "se_id", None)
    if actual != se_id:
        raise AppletError(f"{made_by} made an SE whose se_id is {actual!r}, not {se_id!r}")
    return se  # type: ignore[return-value]


# --- the protocol ------------------------------------------------------------------------------------------------


def handle_message(se: ServedSe, caller: bytes | None, payload: bytes, *, atr: bytes = JPKI_ATR) -> bytes | None:
    """vpcd's message to the card → the card's answer (None: no answer is sent). Never raises, even if the SE does."""
    if len(payload) == 1:
        control = payload[0]
        if control in (CTRL_OFF, CTRL_ON, CTRL_RESET):
            _power_reset(se)  # a card's volatile state does not survive a power cycle or a reset
            return None
        if control == CTRL_ATR:
            return atr
        _LOG.warning("vpcd sent unknown control byte %02X; ignored", control)
        return None
    if not payload:
        return SW_WRONG_LENGTH
    try:
        answer = se.transmit(payload, caller=caller)
    except Exception:  # a served (third-party or faulty) applet's defect must not take the virtual card out of the reader
        _LOG.exception("%s: transmit raised on APDU %s; answered 6F00", _se_label(se), payload.hex().upper())
        return SW_UNKNOWN
    if not isinstance(answer, bytes | bytearray) or len(answer) < 2:
        _LOG.error("%s: transmit returned %r for APDU %s, not data || SW; answered 6F00", _se_label(se), answer, payload.hex().upper())
        return SW_UNKNOWN
    return bytes(answer)


def _power_reset(se: ServedSe) -> None:
    """se.power_reset(), logging (not raising) a served applet's defect."""
    try:
        se.power_reset()
    except Exception:
        _LOG.exception("%s: power_reset raised", _se_label(se))


def _se_label(se: object) -> str:
    """The SE-ID for log lines, whatever the served object does."""
    try:
        return str(se.se_id)  # type: ignore[attr-defined]
    except Exception:
        return repr(se)


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


# --- private files -------------------------------------------------------------------------------------------------


class UnsafePathError(ValueError):
    """A folder or file serve-se would write secrets to, but someone else owns or can change."""


def _open_dir(path: Path) -> int:
    """A descriptor of the folder path itself (O_NOFOLLOW: a symbolic link is refused, not followed)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePathError(f"{path} is a symbolic link: serve-se writes private keys there; give a real folder") from None
        if exc.errno == errno.ENOTDIR:
            raise UnsafePathError(f"{path} is not a folder: remove it or give another path") from None
        raise


def _check_dir(fd: int, path: Path) -> None:
    """The open folder is ours and no one else can write to it; it is made 0700 if group or others could read it."""
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}): someone else could read or swap what is "
            "written there; remove it or give another path"
        )
    if st.st_mode & 0o022:
        raise UnsafePathError(
            f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): files could have been planted "
            "there; remove it or give another path"
        )
    if st.st_mode & 0o077:
        os.fchmod(fd, 0o700)


def private_dir(path: Path) -> Path:
    """path as a folder only we can enter: made 0700 (parents as needed) or checked and tightened; UnsafePathError if not ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = _open_dir(path)
    try:
        _check_dir(fd, path)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace path atomically with a 0600 file holding data, in a folder private_dir accepts.

    The data goes to a new file with a random name (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) in the same folder, which is
    then renamed over path: a stale temporary file, a planted link or an old file's mode never gets the data.
    """
    dfd = _open_dir(path.parent)
    try:
        _check_dir(dfd, path.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        tmp = f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(dfd)


def read_private(path: Path) -> bytes:
    """The content of a regular file of ours at path (not followed if it is a link); UnsafePathError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} is a symbolic link, not the SE's state file: remove it") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise UnsafePathError(f"{path} is not a file of yours: remove it or give another --state directory")
        return f.read()


# --- persistence ---------------------------------------------------------------------------------------------------


class SeStore:
    """One SE and the file holding its non-volatile memory; APDUs from every channel of the SE go through `exchange`."""

    def __init__(self, path: Path, se: ServedSe) -> None:
        self.path = path
        self.se = se
        self._lock = threading.Lock()
        self._saved = ""
        self.save()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        se_id: str,
        keys: StaticKeys,
        auth_pin_tries: int = 3,
        signing_pin_tries: int = 5,
        fresh: bool = False,
        applet: SeFactory = GpSe,
    ) -> SeStore:
        """The SE stored at path (a new one if there is none, or if fresh), made by `applet`.

        ValueError if the file holds another SE or is malformed; AppletError if `applet` fails to make a servable SE.
        """
        restoring = path.exists() and not fresh
        made_by = _name(applet) + (".from_snapshot" if restoring else "")
        if restoring:
            se = _make(applet, "from_snapshot", json.loads(read_private(path).decode("utf-8")))
            stored = getattr(se, "se_id", None)
            if isinstance(stored, str) and stored != se_id:
                raise ValueError(f"{path} holds SE {stored!r}, not {se_id!r}: give another --state directory")
            _LOG.info("loaded %s from %s", se_id, path)
        else:
            se = _make(applet, None, se_id, keys, auth_pin_tries=auth_pin_tries, signing_pin_tries=signing_pin_tries)
        served = check_served(se, se_id, made_by)
        try:
            return cls(path, served)
        except (TypeError, ValueError) as exc:  # json.dumps refused what snapshot() returned
            raise AppletError(f"{_name(applet)}: snapshot() did not return JSON-able data ({exc})") from exc

    def exchange(self, caller: bytes | None, payload: bytes) -> bytes | None:
        """handle_message, then persist the SE if its non-volatile memory changed."""
        with self._lock:
            answer = handle_message(self.se, caller, payload)
            if len(payload) > 1:
                try:
                    self.save()
                except Exception:  # keep serving: a faulty applet's snapshot() must not end the session
                    _LOG.exception("%s: the state was not saved to %s", _se_label(self.se), self.path)
            return answer

    def power_reset(self) -> None:
        """The card left the reader (or was reset): the SE forgets its volatile state."""
        with self._lock:
            _power_reset(self.se)

    def save(self) -> None:
        """Write the snapshot (private keys included) if it changed: atomically, as a new 0600 file (write_private)."""
        text = json.dumps(self.se.snapshot(), sort_keys=True)
        if text == self._saved:
            return
        private_dir(self.path.parent)
        write_private(self.path, text.encode("utf-8"))
        self._saved = text


def _make(applet: SeFactory, method: str | None, *args: Any, **kwargs: Any) -> object:
    """applet(...) or applet.method(...): ValueError passes (bad input, e.g. a malformed file); anything else is an AppletError."""
    make = applet if method is None else getattr(applet, method)
    what = _name(applet) + ("" if method is None else f".{method}")
    try:
        return make(*args, **kwargs)
    except ValueError:
        raise
    except Exception as exc:  # e.g. a constructor that does not take GpSe's arguments
        raise AppletError(f"{what}(...) raised {type(exc).__name__}: {exc} (as serve-se calls mjpki.impl.se.GpSe's; docs/pcsc.md)") from exc


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
            _LOG.info("%s: inserted into vpcd at %s:%d", _se_label(self.store.se), self.host, self.channel.port)
            self.connected.set()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(0.5)
                self._serve(sock)
            finally:
                self.connected.clear()
                sock.close()
                self.store.power_reset()  # removed from the reader
                _LOG.info("%s: link to port %d closed", _se_label(self.store.se), self.channel.port)

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

    `se` is any mjpki.impl.system.SeLink (an in-process GpSe, or a PC/SC link); `keys` are its ISD keys. The person applies with
    the card signature, the SE makes R and the key pairs, the CA certifies them, the SP-TSM writes the certificates and
    temporary PINs over SCP03 and the app sets the PINs (ISS-2, ISS-5, ISS-6, PIN-2). Any applet already there is
    removed first (ISS-8). RuntimeError if a step is refused (e.g. a PIN not in the PIN-1 format).
    """
    from datetime import date

    from mjpki.impl.system import ReferenceSystem, SeLink
    from mjpki.spec import actions as A
    from mjpki.spec.domain import Profile
    from mjpki.spec.world import PersonSpec, PhoneSpec, ServiceProviderSpec, World

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
    # vpcd listens on CHANNELID (slot 00) and CHANNELID + 1 (slot 01), on every interface: scripts/pcsc.sh and
    # tests/pcsc_stack.py run pcscd in a network namespace of its own (docs/security.md).
    return "".join(
        f'FRIENDLYNAME "{name}"\nDEVICENAME   /dev/null:0x{port:04X}\nLIBPATH      {lib}\nCHANNELID    0x{port:04X}\n\n'
        for name, port, lib in entries
    )


def write_pcscd_config(directory: Path, phones: int, *, base_port: int = PHONE_BASE_PORT) -> Path:
    """Write DIR/reader.conf.d/vpcd (for `pcscd -c`) and DIR/drivers/ (copies of the vpcd driver); the reader.conf.d path.

    pcscd loads what is there: DIR and both folders must be private (private_dir), every file is written afresh, 0600.
    """
    if not 0 <= phones <= 7:
        raise ValueError(f"pcscd takes 16 readers: Virtual PCD (2) and at most 7 phones (2 each), not {phones}")
    if not VPCD_DRIVER.exists():
        raise FileNotFoundError(f"{VPCD_DRIVER} is missing: apt-get install vsmartcard-vpcd (scripts/pcsc.sh install)")
    drivers = private_dir(private_dir(directory) / "drivers")
    data = VPCD_DRIVER.read_bytes()
    for k in range(1, phones + 1):
        write_private(drivers / f"libifdvpcd-mjpki-{k}.so", data)  # a copy, not a link: the loader shares one instance per file
    conf = private_dir(directory / "reader.conf.d")
    write_private(conf / "vpcd", reader_conf(phones, base_port=base_port, driver_dir=drivers).encode("utf-8"))
    return conf


# --- pcscd's network namespace ---------------------------------------------------------------------------------------

_CLONE_NEWNET: Final = 0x40000000


def _pcscd_pids() -> list[int]:
    """PIDs of running pcscd processes owned by root or by us (any other one could be a user's stand-in)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() == "pcscd" and proc.stat().st_uid in (0, os.geteuid()):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def listening_ports(pid: int | str = "self") -> set[int]:
    """TCP ports with a listening socket in the network namespace of process pid (from /proc/PID/net/tcp and tcp6)."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        ports |= {int(f[1].rsplit(":", 1)[1], 16) for f in (line.split() for line in lines) if len(f) > 3 and f[3] == "0A"}
    return ports


def join_pcscd_network(ports: Sequence[int]) -> str | None:
    """Join the running pcscd's network namespace when vpcd listens on these ports there and not here; what was done.

    scripts/pcsc.sh and tests/pcsc_stack.py run pcscd in a network namespace of its own (only loopback), because vpcd
    listens on every interface (docs/security.md); vpcd's ports are reachable only from inside it. Joining needs root
    (CAP_SYS_ADMIN), as starting pcscd that way did. Call it before any thread starts: threads inherit the namespace.
    """
    pids = _pcscd_pids()
    if len(pids) != 1 or listening_ports() & set(ports) or not listening_ports(pids[0]) & set(ports):
        return None  # vpcd (or a stand-in) listens here, or nowhere yet: connect here, as always
    theirs, ours = Path(f"/proc/{pids[0]}/ns/net"), Path("/proc/self/ns/net")
    try:
        if theirs.stat().st_ino == ours.stat().st_ino:
            return None
        fd = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return f"vpcd listens in pcscd's own network namespace (pid {pids[0]}), which we cannot join ({exc.strerror}): run as root"
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            return f"cannot join pcscd's network namespace ({os.strerror(ctypes.get_errno())}): run as root"
    finally:
        os.close(fd)
    return f"joined pcscd's network namespace (pid {pids[0]}, loopback only), where vpcd listens"


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
    p.add_argument(
        "--keys",
        metavar="HEX",
        help="ISD (and APSD) SCP03 keys of fresh SEs, hex ENC||MAC||DEK or one key (visible to other users in ps: prefer --keys-file)",
    )
    p.add_argument("--keys-file", metavar="FILE", help="the keys as --keys, from a file only its owner can read (or set $MJPKI_PCSC_KEYS)")
    p.add_argument(
        "--test-keys",
        action="store_true",
        help="serve GlobalPlatform's published test keys 40..4F: anyone reaching pcscd can open the SEs (test stacks; --demo implies it)",
    )
    p.add_argument("--auth-pin-tries", type=int, default=3, help="auth PIN retry limit of fresh SEs (default 3)")
    p.add_argument("--signing-pin-tries", type=int, default=5, help="signing PIN retry limit of fresh SEs (default 5)")
    p.add_argument(
        "--applet",
        metavar="MODULE:CLASS",
        help="serve this class instead of mjpki.impl.se.GpSe, for every SE: package.module:Class or path/to/file.py:Class, with GpSe's "
        "constructor and interface (docs/pcsc.md); give it on every start: --state keeps only the SEs' memory, not the class",
    )
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


def main(args: argparse.Namespace, *, applet: SeFactory | None = None) -> int:
    """Run `mjpki serve-se` until SIGINT/SIGTERM; `applet` is the class --applet named (mjpki.cli loads and checks it)."""
    from mjpki.impl.system import OFFICIAL_APP_HASH, OTHER_APP_HASH

    if args.applet and applet is None:
        raise ValueError(f"--applet {args.applet}: load it with mjpki.cli (`mjpki serve-se`) and pass it as main(args, applet=...)")
    factory: SeFactory = GpSe if applet is None else applet

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="serve-se: %(message)s")
    os.umask(0o077)  # everything written holds secrets or is loaded by pcscd: the SQLite records of --demo too
    if not 0 <= args.phones <= 7:
        print("serve-se: --phones must be 0..7 (pcscd takes 16 readers, two per phone)", flush=True)
        return 2
    # The keys are checked first, so `pcsc.sh start` (which writes the pcscd configuration first) stops before pcscd starts.
    try:
        resolved = _resolve_keys(args)
    except KeysError as exc:
        print(f"serve-se: {exc}", file=sys.stderr, flush=True)
        return 2
    keys = resolved.keys
    if args.write_pcscd_config:
        _warn_test_keys(resolved)
        return _write_config(args)
    if args.demo and args.no_reader_se:
        print("serve-se: --demo personalises the reader SE; drop --no-reader-se", flush=True)
        return 2
    state = Path(args.state)
    server = SeServer(args.host)
    lines: list[str] = []
    tries = {"auth_pin_tries": args.auth_pin_tries, "signing_pin_tries": args.signing_pin_tries}
    try:
        private_dir(state)
        if not args.no_reader_se:
            store = SeStore.open(state / f"se-{args.se_id}.json", se_id=args.se_id, keys=keys, fresh=args.demo, applet=factory, **tries)
            _refuse_restored_test_keys(store, allowed=resolved.test)
            if args.demo:
                card = _personalise(store, args, keys=keys, db_path=state / "records.sqlite")
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
            store = SeStore.open(state / f"se-{se_id}.json", se_id=se_id, keys=keys, applet=factory, **tries)
            _refuse_restored_test_keys(store, allowed=resolved.test)
            server.add(
                store,
                [
                    Channel(port=port, caller=OFFICIAL_APP_HASH, label="official app"),
                    Channel(port=port + 1, caller=OTHER_APP_HASH, label="other app"),
                ],
            )
            lines.append(f"{se_id} on vpcd ports {port} (official app) and {port + 1} (another app)")
    except AppletError as exc:
        print(f"serve-se: --applet: {exc}", file=sys.stderr, flush=True)
        return 2
    except UnsafePathError as exc:
        print(f"serve-se: --state: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeysError as exc:
        print(f"serve-se: {exc}", file=sys.stderr, flush=True)
        return 2
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"serve-se: {exc}", flush=True)
        return 1
    if applet is not None:
        lines.append(f"every SE is a {_name(applet)} (--applet {args.applet}), not the reference mjpki.impl.se.GpSe")
    stopped = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.host in ("127.0.0.1", "localhost"):  # before the threads start: they inherit the namespace
        joined = join_pcscd_network([c.channel.port for c in server.cards])
        lines += [joined] if joined else []
    server.start()
    _warn_test_keys(resolved)  # once serving: a refusal above stays one line
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


_HOW_TO_GIVE_KEYS: Final = (
    "give the SEs' SCP03 keys with --keys-file FILE (hex ENC||MAC||DEK, mode 0600) or $MJPKI_PCSC_KEYS, "
    "or serve test SEs with GlobalPlatform's public test keys: --test-keys (--demo implies it, as does MJPKI_PCSC_KEYS=test)"
)


def _resolve_keys(args: argparse.Namespace) -> Keys:
    """The fresh SEs' keys from --keys, --keys-file or $MJPKI_PCSC_KEYS; the test keys only when told (issue 12, finding 2)."""
    told = bool(args.test_keys or args.demo)
    given = [name for name, value in (("--keys", args.keys), ("--keys-file", args.keys_file)) if value]
    if len(given) > 1:
        raise KeysError("give the keys once: --keys or --keys-file, not both")
    if args.keys:
        try:
            found: Keys | None = Keys(keys=parse_keys(args.keys), source="--keys")
        except ValueError as exc:
            raise KeysError(f"--keys: {exc}") from None
    elif args.keys_file:
        found = Keys(keys=read_keys_file(args.keys_file), source=f"--keys-file {args.keys_file}")
    else:
        found = keys_from_environment()
        told = told or (found is not None and found.declared_test)
    if found is None:
        if told:
            return Keys(keys=TEST_KEYS, source="--test-keys" if args.test_keys else "--demo")
        raise KeysError(f"no SCP03 keys: {_HOW_TO_GIVE_KEYS}")
    if found.test and not told:
        raise KeysError(f"{found.source} holds GlobalPlatform's published test keys 40..4F, which protect nothing: {_HOW_TO_GIVE_KEYS}")
    return found


def _warn_test_keys(resolved: Keys) -> None:
    """The loud line of test mode, on stderr (and so in pcsc.sh's log)."""
    if resolved.test:
        print(f"serve-se: {TEST_KEYS_WARNING}", file=sys.stderr, flush=True)


def _refuse_restored_test_keys(store: SeStore, *, allowed: bool) -> None:
    """KeysError if an SE restored from --state was made with the test keys and the caller did not ask for test SEs."""
    if allowed:
        return
    snapshot = store.se.snapshot()  # GpSe's layout; another applet class's snapshot may not say, and is then served as it is
    isd = snapshot.get("isd") if isinstance(snapshot, dict) else None
    keys = isd.get("keys") if isinstance(isd, dict) else None
    if isinstance(keys, dict) and TEST_KEYS.enc.hex() in (keys.get("enc"), keys.get("mac"), keys.get("dek")):
        raise KeysError(
                f"{store.path} holds an SE made with GlobalPlatform's published test keys: serve it with --test-keys, "
                "or start from a new --state with keys of your own"
            )


def _write_config(args: argparse.Namespace) -> int:
    """--write-pcscd-config DIR: the readers of these options; the reader.conf.d path printed."""
    try:
        conf = write_pcscd_config(Path(args.write_pcscd_config), args.phones, base_port=args.phone_base_port)
    except UnsafePathError as exc:
        print(f"serve-se: --write-pcscd-config: {exc}", file=sys.stderr, flush=True)
        return 2
    except (ValueError, OSError) as exc:
        print(f"serve-se: {exc}", flush=True)
        return 1
    print(conf)
    return 0


def _personalise(store: SeStore, args: argparse.Namespace, *, keys: StaticKeys, db_path: Path) -> DemoCard:
    """--demo on the reader SE; RuntimeError, with one line, whatever a served applet makes the flow raise."""
    try:
        return personalise_demo(store.se, keys=keys, signing_pin=args.signing_pin, auth_pin=args.auth_pin, db_path=db_path)
    except RuntimeError:
        raise
    except Exception as exc:  # a faulty applet can break the flow anywhere; -v logs the traceback
        _LOG.info("--demo failed", exc_info=True)
        raise RuntimeError(f"--demo: personalising {store.se.se_id} failed: {type(exc).__name__}: {exc}") from exc


def _serial(der: bytes) -> str:
    from cryptography import x509

    return f"{x509.load_der_x509_certificate(der).serial_number:#x}"
