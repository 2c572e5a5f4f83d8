"""`mjpki serve-se --applet MODULE:CLASS`: another applet class served instead of mjpki.impl.se.GpSe.

A small faulty GpSe subclass (it hides the JPKI applet from readers) is served against the stand-in vpcd of
tests/test_vpcd.py and through the real pcscd with pyscard: the client sees the subclass's behaviour, --demo personalises
it, and a restart from --state keeps using it. Bad --applet values are one line on stderr and exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mjpki import cli
from mjpki.impl import se_apdu as A
from mjpki.impl.apdu import ApduError, CommandApdu
from mjpki.impl.se import GpSe
from mjpki.impl.se_tsm import Tsm
from mjpki.impl.serve_se import (
    CTRL_ATR,
    CTRL_RESET,
    TEST_KEYS,
    AppletError,
    SeStore,
    check_applet,
    handle_message,
)
from mjpki.spec.domain import Kind
from tests.test_vpcd import FakeVpcd, _serve, _stop

ROOT = Path(__file__).resolve().parent.parent
SELECT_JPKI = A.select_aid(A.JPKI_AID)
HIDDEN = "tests/test_serve_applet.py:HidesFromReaders"  # the file form of the spec ...
HIDDEN_MODULE = "tests.test_serve_applet:HidesFromReaders"  # ... and the module form


# --- the applets served ------------------------------------------------------------------------------------------


def _selects_jpki(apdu: bytes) -> bool:
    """Whether apdu is SELECT by AID of the JPKI applet."""
    try:
        cmd = CommandApdu.parse(bytes(apdu))
    except ApduError:
        return False
    return cmd.cla & 0xFC == 0x00 and cmd.ins == 0xA4 and cmd.p1 == 0x04 and cmd.data == A.JPKI_AID


class HidesFromReaders(GpSe):
    """Faulty: SELECT of the JPKI AID from a reader (caller None) answers 6A82, as if no applet were installed.

    Apps (the official app, the SP-TSM) still reach the applet, so --demo's issuance flow personalises it.
    """

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        if caller is None and _selects_jpki(apdu):
            return A.SW_NOT_FOUND
        return super().transmit(apdu, caller=caller)


class Crashes(GpSe):
    """Faulty: transmit raises on INS EE and returns no status word for INS EF."""

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        if apdu[1:2] == b"\xee":
            raise RuntimeError("applet bug")
        if apdu[1:2] == b"\xef":
            return b""
        return super().transmit(apdu, caller=caller)


class NoKeywords:
    """Not GpSe-like: every method, but a constructor without GpSe's arguments."""

    def __init__(self) -> None:
        self.se_id = "X"

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        return A.SW_OK

    def power_reset(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> NoKeywords:
        return cls()


class WrongSeId(GpSe):
    """Not GpSe-like: ignores the SE-ID it is given."""

    def __init__(self, se_id: str, isd_keys: Any, **kwargs: Any) -> None:
        super().__init__("SE-OTHER", isd_keys, **kwargs)


class UnsavableSnapshot(GpSe):
    """Not GpSe-like: its snapshot is not JSON-able."""

    def snapshot(self) -> dict[str, Any]:
        return {"when": object()}


# --- loading and checking ------------------------------------------------------------------------------------------


def _serve_se_cli(capsys: pytest.CaptureFixture[str], state: Path, spec: str) -> tuple[int, str, str]:
    rc = cli.main(["serve-se", "--state", str(state), "--applet", spec])
    out, err = capsys.readouterr()
    return rc, out, err


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return f"{path}:Applet"


def test_bad_applets_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader puts the files' folders on sys.path
    cases = {
        "GpSe": "write it as module:Class or path/to/file.py:Class",
        "tests/no_such_file.py:X": "there is no file",
        "no_such_module_mjpki:X": "cannot import 'no_such_module_mjpki'",
        "mjpki.impl.se:NoSuchApplet": "mjpki.impl.se has no attribute 'NoSuchApplet'",
        "mjpki.impl.se:MAX_SE_ID_LEN": "of type int, not a class like mjpki.impl.se.GpSe",
        "pathlib:PurePath": "pathlib.PurePath has no transmit, power_reset, snapshot, from_snapshot",
        _write(tmp_path / "applet_syntax.py", "class Applet(:\n"): "syntax error in",
        _write(tmp_path / "applet_import.py", "import no_such_dependency_mjpki\n"): "cannot import 'applet_import'",
        _write(tmp_path / "applet_raises.py", "raise RuntimeError('no licence')\n"): "raised RuntimeError: no licence",
        "tests.test_serve_applet:NoKeywords": "NoKeywords(...) raised TypeError",
        "tests.test_serve_applet:WrongSeId": "se_id is 'SE-OTHER', not 'SE-DEMO'",
        "tests.test_serve_applet:UnsavableSnapshot": "snapshot() did not return JSON-able data",
    }
    for spec, message in cases.items():
        rc, out, err = _serve_se_cli(capsys, tmp_path / "state", spec)
        assert rc == 2, (spec, out, err)
        assert err.startswith("serve-se: --applet: ") and message in err and err.count("\n") == 1, (spec, err)
        assert "Traceback" not in out + err, (spec, out, err)


def test_a_syntax_error_is_one_line_from_the_command(tmp_path: Path) -> None:
    bad = tmp_path / "broken_applet.py"
    bad.write_text("def transmit(:\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(tmp_path), "--applet", f"{bad}:Applet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and not done.stdout, done
    assert done.stderr == f"serve-se: --applet: applet '{bad}:Applet': syntax error in {bad}, line 1: invalid syntax\n"


def test_check_applet_takes_gpse_its_subclasses_and_factories(tmp_path: Path) -> None:
    assert check_applet(GpSe, "mjpki.impl.se:GpSe") is GpSe
    assert check_applet(HidesFromReaders, HIDDEN) is HidesFromReaders

    def factory(se_id: str, keys: Any, **kwargs: Any) -> GpSe:
        return HidesFromReaders(se_id, keys, **kwargs)

    with pytest.raises(AppletError, match="has no from_snapshot"):
        check_applet(factory, "m:factory")  # a factory function needs a from_snapshot of its own
    factory.from_snapshot = HidesFromReaders.from_snapshot  # type: ignore[attr-defined]
    applet = check_applet(factory, "m:factory")
    made = SeStore.open(tmp_path / "se.json", se_id="SE-F", keys=TEST_KEYS, applet=applet)
    restored = SeStore.open(tmp_path / "se.json", se_id="SE-F", keys=TEST_KEYS, applet=applet)
    assert type(made.se) is type(restored.se) is HidesFromReaders


def test_a_crashing_applet_answers_6f00_and_stays_in_the_reader(tmp_path: Path) -> None:
    store = SeStore.open(tmp_path / "se.json", se_id="SE-CRASH", keys=TEST_KEYS, applet=Crashes)
    assert isinstance(store.se, Crashes)
    assert store.exchange(None, bytes.fromhex("00EE000000")) == A.SW_UNKNOWN  # raised
    assert store.exchange(None, bytes.fromhex("00EF000000")) == A.SW_UNKNOWN  # no status word
    assert store.exchange(None, A.select_aid(A.ISD_AID))[-2:] == A.SW_OK  # type: ignore[index]
    assert handle_message(store.se, None, bytes([CTRL_RESET])) is None


# --- served over the vpcd protocol (stand-in vpcd, no pcscd) ---------------------------------------------------------


def _applet_installed(transmit: Any) -> bool:
    """Over SCP03 to the ISD (which any caller reaches): GET STATUS of the JPKI applet."""
    tsm = Tsm(transmit, TEST_KEYS)
    tsm.open_isd()
    return tsm.applet_present()


def _personalised(state_file: Path) -> bool:
    """Whether the saved SE has the applet with both key pairs and certificates (what --demo puts there)."""
    applet = json.loads(state_file.read_text())["applet"]
    return applet is not None and all(applet["slots"][k.value]["certificate"] for k in Kind)


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


def test_the_served_class_is_what_the_vpcd_client_sees_across_demo_and_restart(tmp_path: Path, vpcd: FakeVpcd) -> None:
    state = tmp_path / "state"
    server = _serve(state, vpcd.port, "--applet", HIDDEN, "--demo")
    try:
        vpcd.accept()
        assert vpcd.ask(bytes([CTRL_ATR])) == A.JPKI_ATR
        assert vpcd.ask(SELECT_JPKI) == A.SW_NOT_FOUND  # the subclass, not GpSe (which answers 9000 after --demo)
        assert _applet_installed(vpcd.ask)  # yet the demo flow installed and personalised the applet
    finally:
        out = _stop(server)
    assert "every SE is a test_serve_applet.HidesFromReaders" in out and "personalised through the issuance flow" in out, out
    assert _personalised(state / "se-SE-DEMO.json")
    for extra in (["--applet", HIDDEN_MODULE], []):  # restart from the state: with the class, then without it
        vpcd.drop()
        again = _serve(state, vpcd.port, *extra)
        try:
            vpcd.accept()
            expected = A.SW_NOT_FOUND if extra else A.SW_OK  # without --applet, the reference GpSe on the same memory
            assert vpcd.ask(SELECT_JPKI)[-2:] == expected, extra
            assert _applet_installed(vpcd.ask)
        finally:
            _stop(again)


# --- served through pcscd, seen with pyscard ---------------------------------------------------------------------------

FREE_READER = "Virtual PCD 00 01"
"""Debian's second vpcd reader (port 35964): free for another card beside SE-DEMO."""
FREE_PORT = 35964


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pcscd with Debian's vpcd readers: reused if running, else started (tests/pcsc_stack.py); skip if it cannot be."""
    from tests.pcsc_stack import pcsc_stack, require_stack

    require_stack()
    with pcsc_stack(tmp_path_factory.mktemp("pcsc"), phones=0):
        yield


def _card(server: subprocess.Popen[str], timeout: float = 20.0) -> Any:
    """The served card in FREE_READER once pcscd sees it and it answers (pcscd polls vpcd for presence)."""
    from mjpki.adapters.pcsc import PcscApplet

    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, server.communicate()[0]
        try:
            card = PcscApplet(FREE_READER)
            if card.transmit(A.select_aid(A.ISD_AID))[-2:] == A.SW_OK:
                return card
            card.close()
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_pyscard_sees_the_served_class_through_pcscd(tmp_path: Path, pcscd: None) -> None:
    from mjpki.adapters.pcsc import find_reader

    find_reader(FREE_READER)  # the reader exists
    state = tmp_path / "state"
    runs: list[tuple[list[str], bytes]] = [
        (["--applet", HIDDEN, "--demo"], A.SW_NOT_FOUND),  # personalised through the class, which hides the applet
        (["--applet", HIDDEN_MODULE], A.SW_NOT_FOUND),  # restarted from --state: still the class
        ([], A.SW_OK),  # the reference GpSe on the same memory
    ]
    for extra, expected in runs:
        server = _serve(state, FREE_PORT, "--se-id", "SE-APPLET", *extra)
        try:
            card = _card(server)
            try:
                assert card.atr == A.JPKI_ATR
                assert card.transmit(SELECT_JPKI)[-2:] == expected, extra
                assert _applet_installed(card.transmit), extra
            finally:
                card.close()
        finally:
            _stop(server)
    assert _personalised(state / "se-SE-APPLET.json")
