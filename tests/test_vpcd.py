"""`mjpki serve-se` and its vpcd protocol, against a stand-in for vpcd (a TCP listener in the test): no pcscd needed.

The real vpcd inside pcscd is exercised by tests/test_pcsc.py; here every message of the protocol is checked byte by
byte, with persistence across reconnects and restarts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mjpki.impl import se_apdu as A
from mjpki.impl.se import GpSe
from mjpki.impl.se_tsm import Tsm
from mjpki.impl.serve_se import (
    CTRL_ATR,
    CTRL_OFF,
    CTRL_ON,
    CTRL_RESET,
    TEST_KEYS,
    SeStore,
    handle_message,
    parse_keys,
    personalise_demo,
    reader_conf,
    write_pcscd_config,
)
from mjpki.impl.system import OFFICIAL_APP_HASH, ReferenceSystem, digest_info
from mjpki.scenarios import base_world
from mjpki.spec.domain import Kind, PinStatus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_se() -> GpSe:
    """An SE personalised through the reference system's issuance flow (PINs 1234 / ABC123)."""
    se = GpSe("SE-DEMO", TEST_KEYS)
    card = personalise_demo(se, keys=TEST_KEYS)
    assert set(card.certificates) == {Kind.AUTH, Kind.SIGNING}
    return se


def _apdus(se: GpSe, *hexes: str) -> list[str]:
    return [handle_message(se, None, bytes.fromhex(h)).hex().upper() for h in hexes]  # type: ignore[union-attr]


SELECT_JPKI = "00A4040C0AD392F000260100000001"


def test_control_messages(demo_se: GpSe) -> None:
    snapshot = demo_se.snapshot()
    se = GpSe.from_snapshot(snapshot)
    assert handle_message(se, None, bytes([CTRL_ATR])) == A.JPKI_ATR
    for control in (CTRL_OFF, CTRL_ON, CTRL_RESET):
        # verify the auth PIN, then the control message: the verification is gone, the PIN and its counter stay
        assert _apdus(se, SELECT_JPKI, "00A4020C020018", "002000800431323334") == ["9000"] * 3
        assert handle_message(se, None, bytes([control])) is None
        assert _apdus(se, SELECT_JPKI, "00A4020C020017")[1] == "9000"
        assert handle_message(se, None, A.compute_signature(digest_info(b"x")))[-2:] == A.SW_SECURITY_STATUS  # type: ignore[index]
    assert handle_message(se, None, b"\x07") is None  # an unknown control byte is ignored, not an APDU
    assert handle_message(se, None, b"") == A.SW_WRONG_LENGTH
    assert se.status().slots[Kind.AUTH].pin_status is PinStatus.SET and se.status().slots[Kind.AUTH].tries_left == 3


def test_store_persists_and_refuses_another_se(tmp_path: Path, demo_se: GpSe) -> None:
    path = tmp_path / "se-SE-DEMO.json"
    path.write_text(json.dumps(demo_se.snapshot()))
    store = SeStore.open(path, se_id="SE-DEMO", keys=TEST_KEYS)
    # a wrong PIN is non-volatile: written at once
    assert store.exchange(None, bytes.fromhex(SELECT_JPKI)) == A.SW_OK
    assert store.exchange(None, bytes.fromhex("00A4020C020018")) == A.SW_OK
    assert store.exchange(None, bytes.fromhex("002000800430303030")) == b"\x63\xc2"
    assert os.stat(path).st_mode & 0o777 == 0o600  # it holds the private keys
    again = SeStore.open(path, se_id="SE-DEMO", keys=TEST_KEYS)
    assert again.se.status().slots[Kind.AUTH].tries_left == 2
    with pytest.raises(ValueError, match="holds SE 'SE-DEMO'"):
        SeStore.open(path, se_id="SE-0001", keys=TEST_KEYS)
    fresh = SeStore.open(path, se_id="SE-DEMO", keys=TEST_KEYS, fresh=True)
    assert not fresh.se.applet_present


def test_parse_keys() -> None:
    assert parse_keys("404142434445464748494A4B4C4D4E4F") == TEST_KEYS
    three = parse_keys("11" * 16 + "22" * 16 + "33" * 16)
    assert (three.enc, three.mac, three.dek) == (b"\x11" * 16, b"\x22" * 16, b"\x33" * 16)
    for bad in ("zz", "40" * 15):
        with pytest.raises(ValueError):
            parse_keys(bad)


def test_reader_conf_gives_every_phone_its_own_driver_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "libifdvpcd.so"
    fake.write_bytes(b"\x7fELF stand-in")
    monkeypatch.setattr("mjpki.impl.serve_se.VPCD_DRIVER", fake)
    conf = write_pcscd_config(tmp_path / "pcsc", 2)
    text = (conf / "vpcd").read_text()
    assert text.count("FRIENDLYNAME") == 3 and 'FRIENDLYNAME "mjpki SE-0002"' in text
    assert "CHANNELID    0x8C7B" in text and "CHANNELID    0x8C7D" in text and "CHANNELID    0x8C7F" in text
    copies = sorted((tmp_path / "pcsc" / "drivers").iterdir())
    assert [c.name for c in copies] == ["libifdvpcd-mjpki-1.so", "libifdvpcd-mjpki-2.so"]
    assert all(c.read_bytes() == fake.read_bytes() and not c.is_symlink() for c in copies)
    with pytest.raises(ValueError, match="16 readers"):
        write_pcscd_config(tmp_path / "pcsc", 8)
    with pytest.raises(ValueError, match="driver_dir"):
        reader_conf(1)


def test_se_links_plug_in_and_are_checked() -> None:
    world = base_world()
    with pytest.raises(ValueError, match="isd_keys"):
        ReferenceSystem(world, se_links={"D1": GpSe("SE-0001", TEST_KEYS)})
    with pytest.raises(ValueError, match="phones the world does not have"):
        ReferenceSystem(world, isd_keys=TEST_KEYS, se_links={"D9": GpSe("SE-0009", TEST_KEYS)})
    mine = GpSe("SE-0001", TEST_KEYS)
    system = ReferenceSystem(world, isd_keys=TEST_KEYS, se_links={"D1": mine})
    try:
        assert system.ses["D1"] is mine and system.ses["D2"] is not mine
        assert system._slots("D1") == {} and not system._applet_present("D1")
    finally:
        system.close()


# --- the serve-se process against a stand-in vpcd --------------------------------------------------------------------


class FakeVpcd:
    """vpcd's side of the protocol: listen, accept the virtual card, send messages, read answers."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind(("127.0.0.1", port))
        except OSError:
            self.server.close()
            raise
        self.server.listen(1)
        self.server.settimeout(30)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(10)

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(struct.pack(">H", len(payload)))  # length and payload apart, as Debian's vpcd writes them
        self.conn.sendall(payload)

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        assert self.conn is not None
        (n,) = struct.unpack(">H", self._exact(2))
        return self._exact(n)

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            assert self.conn is not None
            chunk = self.conn.recv(n - len(out))
            assert chunk, "serve-se closed the link"
            out += chunk
        return out

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.server.close()


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


def _serve(state: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(state), "--port", str(port), *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=15)
    assert process.returncode == 0, out
    return out


def test_serve_se_demo_over_the_vpcd_protocol_persists(tmp_path: Path, vpcd: FakeVpcd) -> None:
    state = tmp_path / "state"
    server = _serve(state, vpcd.port, "--demo", "--signing-pin", "XYZ789", "--auth-pin", "4321")
    try:
        vpcd.accept()
        assert vpcd.ask(bytes([CTRL_ATR])) == A.JPKI_ATR
        vpcd.send(bytes([CTRL_ON]))
        assert vpcd.ask(bytes.fromhex(SELECT_JPKI)) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("00A4020C020018")) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("0020008000")) == b"\x63\xc3"  # OpenSC's PIN status query
        assert vpcd.ask(A.verify(b"4321")) == A.SW_OK  # the PIN given on the command line
        assert vpcd.ask(bytes.fromhex("00A4020C02000A")) == A.SW_OK
        head = vpcd.ask(A.read_binary(0, 4))
        assert head[:2] == b"\x30\x82" and head[-2:] == A.SW_OK
        assert vpcd.ask(bytes.fromhex("00A4020C020018")) == A.SW_OK
        assert vpcd.ask(A.verify(b"0000")) == b"\x63\xc2"  # a wrong try: non-volatile
        vpcd.send(bytes([CTRL_RESET]))
        assert vpcd.ask(A.read_binary(0, 4)) == A.SW_INS_NOT_SUPPORTED  # the ISD is selected again
        # the link drops (pcscd restarting): serve-se reconnects, the SE is as it was
        vpcd.drop()
        vpcd.accept()
        assert vpcd.ask(bytes.fromhex(SELECT_JPKI)) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("00A4020C020018")) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("0020008000")) == b"\x63\xc2"
    finally:
        out = _stop(server)
    assert "signing PIN XYZ789" in out and "auth PIN 4321" in out, out
    assert (state / "records.sqlite").exists() and (state / "se-SE-DEMO.json").exists()
    # a restart without --demo serves the same SE from its file
    vpcd.drop()
    again = _serve(state, vpcd.port)
    try:
        vpcd.accept()
        assert vpcd.ask(bytes.fromhex(SELECT_JPKI)) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("00A4020C020018")) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("0020008000")) == b"\x63\xc2"
        assert vpcd.ask(A.verify(b"4321")) == A.SW_OK
        assert vpcd.ask(bytes.fromhex("0020008000")) == b"\x63\xc3"
    finally:
        _stop(again)


def _consecutive_pair() -> tuple[FakeVpcd, FakeVpcd]:
    """Two stand-ins on ports p and p+1 (a phone's two channels are consecutive ports)."""
    for _ in range(50):
        first = FakeVpcd()
        try:
            second = FakeVpcd(port=first.port + 1)
        except OSError:
            first.close()
            continue
        return first, second
    raise RuntimeError("no two consecutive free ports")


def test_serve_se_phone_channels_carry_the_callers(tmp_path: Path) -> None:
    """Suite mode: slot 00 of a phone's reader is the official app, slot 01 another app (ACL-1 across PC/SC)."""
    official, other = _consecutive_pair()
    server = _serve(tmp_path / "state", 1, "--no-reader-se", "--phones", "1", "--phone-base-port", str(official.port))
    try:
        official.accept()
        other.accept()
        tsm = Tsm(official.ask, TEST_KEYS)
        tsm.open_isd()
        assert tsm.read_se_id_isd() == "SE-0001"
        tsm.install_applet()
        tsm.store_access_rules({A.JPKI_AID: [OFFICIAL_APP_HASH]})
        assert official.ask(bytes.fromhex(SELECT_JPKI)) == A.SW_OK
        assert other.ask(bytes.fromhex(SELECT_JPKI)) == A.SW_SECURITY_STATUS  # ACL-1: not the official app
        other_tsm = Tsm(other.ask, TEST_KEYS)
        other_tsm.open_isd()  # the ISD admits any caller: the same SE answers on both channels
        assert other_tsm.read_se_id_isd() == "SE-0001"
    finally:
        _stop(server)
        official.close()
        other.close()


def test_serve_se_rejects_bad_options(tmp_path: Path) -> None:
    for args, message in ((["--keys", "zz"], "--keys"), (["--phones", "9"], "0..7"), (["--demo", "--no-reader-se"], "drop --no-reader-se")):
        done = subprocess.run(
            [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(tmp_path), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0 and message in done.stdout + done.stderr, done.stdout + done.stderr
