"""Issue 14, item 3: the harness reads each phone's SE over APDUs (capability se_apdu) instead of trusting observation().

- GET SLOT STATUS is parsed with the applet model's code (it reads back what the model encodes; anything else is an error);
- with the SEs' keys the lockstep reads the SEs, the SE requirements are judged on `apdu`; without keys, on self-report;
- a system that reports the slots the spec expects while its SE keeps a deleted key pair (tests/faulty_impls.py LYING_SE)
  passes on self-report and is caught on the SE, naming MCH-4;
- an SE that answers nonsense (a bad status word, a malformed answer, wrong keys) is a reported failure, never a crash;
- the capability crosses the JSON-lines shim and HTTP; `mjpki run --se-keys/--se-test-keys` drive it from the command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mjpki.adapters.reference import factory as reference_factory
from mjpki.cli import main
from mjpki.conformance import all_checks, judged_on, render_summary, run_conformance
from mjpki.impl.isd_keys import TEST_KEYS, KeysError
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.system import OFFICIAL_APP_HASH
from mjpki.lockstep import Lockstep
from mjpki.scenarios import SCENARIOS, Scenario
from mjpki.se_read import (
    SE_KEYS_ENV,
    SE_REQS,
    TEST_SE_KEYS,
    SeKeyedFactory,
    SeReadError,
    parse_se_keys,
    read_se,
    read_se_keys_file,
)
from mjpki.spec.apdu.abstraction import EMPTY, SeView, SlotStatusError, SlotView, parse_slot_status
from mjpki.spec.apdu.model import slot_status_bytes
from mjpki.spec.apdu.state import Applet, Slot
from mjpki.spec.domain import Kind, PinStatus
from mjpki.spec.fmap import FrozenMap
from mjpki.wire.host import Session
from mjpki.wire.http import http_factory
from mjpki.wire.protocol import PROTOCOL
from mjpki.wire.shim import python_host_command, python_host_env, shim_factory
from tests.faulty_impls import LYING_SE

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = "revoke-from-phone"
"""A short scenario that issues, uses and deletes a phone's keys: every SE fact changes at least once."""


@pytest.fixture(autouse=True)
def _test_keys_for_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference's SEs (and the faulty systems') hold GP's test keys, as `mjpki run --se-test-keys` arranges."""
    monkeypatch.setenv(SE_KEYS_ENV, "test")


def _run(make: Any, scenario: Scenario) -> Lockstep:
    run = Lockstep(make, scenario.world, timeout=30)
    try:
        for e in scenario.steps:
            run.step(e.action)
            if run.broken:
                break
        else:
            run.finish()
    finally:
        run.close()
    return run


# --- GET SLOT STATUS, parsed with the model's code ---------------------------------------------------------------------


def test_slot_status_reads_back_what_the_applet_model_encodes() -> None:
    """The parser and the model's encoder agree on every fact, empty slots left out as the lifecycle view leaves them."""
    auth = Slot(key=True, serial=0x1234567890, pin_status=PinStatus.SET, tries=2)
    signing = Slot(key=True, pin_status=PinStatus.TEMP_BLOCKED, tries=5, temp_tries=5)
    limits = FrozenMap({Kind.AUTH: 3, Kind.SIGNING: 5})
    applet = Applet(limits=limits, slots=FrozenMap({Kind.AUTH: auth, Kind.SIGNING: signing}), r_pending=True)
    view = parse_slot_status(slot_status_bytes(applet))
    assert view == SeView(
        applet=True, r_pending=True,
        slots=FrozenMap({
            Kind.AUTH: SlotView(key=True, cert_serial=0x1234567890, pin_status=PinStatus.SET, tries_left=2),
            Kind.SIGNING: SlotView(key=True, cert_serial=None, pin_status=PinStatus.TEMP_BLOCKED, tries_left=5),
        }),
    )  # fmt: skip
    empty = Applet(limits=limits, slots=FrozenMap({Kind.AUTH: Slot(), Kind.SIGNING: Slot()}))
    assert parse_slot_status(slot_status_bytes(empty)) == SeView(applet=True)
    assert parse_slot_status(slot_status_bytes(replace(empty, r_pending=True))).slots.get(Kind.AUTH, EMPTY) == EMPTY


AUTH_SLOT = bytes.fromhex("E113830101840101C2020102850102860103870100")
GOOD = bytes.fromhex("C30100") + AUTH_SLOT + bytes.fromhex("E10F830102840100850100860100870100")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "expected C3 E1 E1"),
        (GOOD[:-1], "not BER-TLV"),
        (bytes.fromhex("C30102") + GOOD[3:], "C3 r-pending"),
        (GOOD[3:] + GOOD[:3], "expected C3 E1 E1"),
        (GOOD.replace(bytes.fromhex("830101"), bytes.fromhex("830102"), 1), "kind-ref"),
        (GOOD.replace(bytes.fromhex("850102"), bytes.fromhex("850107"), 1), "pin-status"),
        (bytes.fromhex("C30100") + AUTH_SLOT + bytes.fromhex("E10C830102840100850100860100"), "expected 83 84 [C2] 85 86 87"),
        (GOOD.replace(bytes.fromhex("C2020102"), bytes.fromhex("C200"), 1).replace(b"\xe1\x13", b"\xe1\x11", 1), "C2 serial of 0 bytes"),
    ],
)  # fmt: skip
def test_malformed_slot_status_is_an_error_that_says_what(data: bytes, says: str) -> None:
    assert parse_slot_status(GOOD).slots[Kind.AUTH] == SlotView(key=True, cert_serial=0x0102, pin_status=PinStatus.SET, tries_left=3)
    with pytest.raises(SlotStatusError, match=re.escape(says)):
        parse_slot_status(data)


def _se_with_applet(keys: StaticKeys) -> GpSe:
    from mjpki.impl.se_tsm import Tsm

    se = GpSe("SE-T", keys)
    tsm = Tsm(lambda apdu: se.transmit(apdu, caller=OFFICIAL_APP_HASH), keys)
    tsm.open_isd()
    tsm.install_applet()
    tsm.store_access_rules({bytes.fromhex("D392F000260100000001"): [OFFICIAL_APP_HASH]})
    return se


def test_read_se_reports_every_bad_answer_as_an_error_not_a_crash() -> None:
    se = _se_with_applet(TEST_KEYS)
    good = read_se(lambda apdu: se.transmit(apdu, caller=OFFICIAL_APP_HASH), TEST_KEYS)
    assert good == SeView(applet=True)
    assert read_se(lambda apdu: GpSe("SE-U", TEST_KEYS).transmit(apdu, caller=OFFICIAL_APP_HASH), TEST_KEYS) == SeView()  # 6A82
    other = StaticKeys(enc=bytes(16), mac=bytes(16), dek=bytes(16))
    with pytest.raises(SeReadError, match="are the SE keys given the ones this SE holds"):
        read_se(lambda apdu: se.transmit(apdu, caller=OFFICIAL_APP_HASH), other)
    with pytest.raises(SeReadError, match="SELECT JPKI answered 6F00"):
        read_se(lambda apdu: b"\x6f\x00", TEST_KEYS)
    with pytest.raises(SeReadError, match="no status word"):
        read_se(lambda apdu: b"\x90", TEST_KEYS)

    def tampered(apdu: bytes) -> bytes:
        response = se.transmit(apdu, caller=OFFICIAL_APP_HASH)
        return bytes([response[0] ^ 1]) + response[1:] if apdu[:2] == b"\x84\x3e" else response

    with pytest.raises(SeReadError, match=r"GET SLOT STATUS: .*R-MAC"):
        read_se(tampered, TEST_KEYS)


# --- the SE keys --------------------------------------------------------------------------------------------------------


def test_se_keys_file_per_se_id_owner_only(tmp_path: Path) -> None:
    one, two = "00" * 16, "11" * 16 + "22" * 16 + "33" * 16
    keys = parse_se_keys(f"# lab SEs\nSE-D1 {one}\nSE-D2 {two}  # three keys\n* {'44' * 16}\n", source="f")
    d2 = keys.for_se("SE-D2")
    assert keys.for_se("SE-D1") == StaticKeys(enc=bytes(16), mac=bytes(16), dek=bytes(16))
    assert d2 is not None and (d2.enc, d2.mac, d2.dek) == (b"\x11" * 16, b"\x22" * 16, b"\x33" * 16)
    assert keys.for_se("SE-X") == StaticKeys(enc=b"\x44" * 16, mac=b"\x44" * 16, dek=b"\x44" * 16) and not keys.test
    wrong = (("SE-D1", "SE-ID HEX"), (f"SE-D1 {one}\nSE-D1 {one}", "given twice"), ("SE-D1 0102", "got 2 bytes"), ("", "names no SE"))
    for bad, says in wrong:
        with pytest.raises(KeysError, match=says):
            parse_se_keys(bad, source="f")
    path = tmp_path / "se-keys"
    path.write_text(f"SE-D1 {one}\n")
    path.chmod(0o644)
    with pytest.raises(KeysError, match="readable by others"):
        read_se_keys_file(path)
    path.chmod(0o600)
    assert read_se_keys_file(path).for_se("SE-D1") is not None and read_se_keys_file(path).for_se("SE-D2") is None
    assert TEST_SE_KEYS.test and TEST_SE_KEYS.for_se("anything") == TEST_KEYS


# --- in lockstep ----------------------------------------------------------------------------------------------------


def test_without_keys_the_se_is_self_report_and_with_them_it_is_read() -> None:
    """ISS-5, PIN-3, REV-1: the same run, judged on self-report and on the SEs read over APDUs."""
    checks = tuple(c for c in all_checks() if c.id == f"scenario:{SCENARIO}")
    trusted = run_conformance(reference_factory, checks=checks, system_name="ref")
    read = run_conformance(SeKeyedFactory(reference_factory, TEST_SE_KEYS), checks=checks, system_name="ref")
    assert trusted.passed and read.passed
    assert trusted.results[0].se_reads == 0 and read.results[0].se_reads > 0
    exercised = SE_REQS & read.results[0].exercised
    assert {"ISS-5", "PIN-3", "REV-1"} <= exercised
    assert {judged_on(r, trusted.results) for r in exercised} == {"self-report"}
    assert {judged_on(r, read.results) for r in exercised} == {"apdu"}
    assert "SE slots judged on self-report: no SE keys given" in render_summary(trusted)
    assert "SE slots read over APDUs" in render_summary(read) and "REV-1" in render_summary(read).splitlines()[-2]


@pytest.mark.parametrize("name", sorted(LYING_SE))
def test_a_system_lying_about_its_se_passes_on_self_report_and_is_caught_on_the_se(name: str) -> None:
    """MCH-4: the SP-TSM reports a remote deletion done that never reached the SE."""
    fault = LYING_SE[name]
    scenario = SCENARIOS[fault.caught_by]
    trusted = _run(fault.factory, scenario)
    assert trusted.divergence is None and trusted.se_reads == 0, f"{name} is caught on self-report alone: {trusted.divergence}"
    read = _run(SeKeyedFactory(fault.factory, TEST_SE_KEYS), scenario)
    assert read.divergence is not None, f"{name} passes {scenario.id} although its SE keeps the keys"
    assert read.divergence.what.startswith("SE slots read over APDUs:"), read.divergence.what
    assert set(fault.breaks) <= set(read.divergence.reqs), (fault.breaks, read.divergence)
    assert _run(SeKeyedFactory(reference_factory, TEST_SE_KEYS), scenario).divergence is None


class _Garbling:
    """The reference, with an SE that answers GET SLOT STATUS (or everything) with bytes of its own."""

    def __init__(self, world: Any, answer: Any) -> None:
        self._system = reference_factory(world)
        self._answer = answer

    def step(self, action: Any) -> Any:
        return self._system.step(action)

    def observation(self) -> Any:
        return self._system.observation()

    def se_apdu(self, phone: str, apdu: bytes) -> Any:
        return self._answer(self._system, phone, apdu)

    def close(self) -> None:
        self._system.close()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (lambda s, p, a: b"\x6f\x00", "SELECT JPKI answered 6F00"),
        (lambda s, p, a: b"", "has no status word"),
        (lambda s, p, a: "9000", "se_apdu() returned str, not bytes"),
        (lambda s, p, a: 1 / 0, "se_apdu(): the adapter raised ZeroDivisionError"),
        (lambda s, p, a: s.se_apdu(p, a)[:-3] + b"\x90\x00" if a[:2] == b"\x84\x3e" else s.se_apdu(p, a), "GET SLOT STATUS"),
    ],
)  # fmt: skip
def test_an_se_that_answers_nonsense_is_a_reported_failure(answer: Any, says: str) -> None:
    scenario = SCENARIOS[SCENARIO]
    run = _run(SeKeyedFactory(lambda world: _Garbling(world, answer), TEST_SE_KEYS), scenario)
    assert run.divergence is not None  # at the first read: before the first step, or once an applet is installed
    assert run.divergence.what.startswith("reading the SEs over APDUs: D") and says in run.divergence.what, run.divergence.what


def test_wrong_keys_are_a_reported_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SE_KEYS_ENV)  # the reference's SEs get random keys; the harness tries GP's test keys
    run = _run(SeKeyedFactory(reference_factory, TEST_SE_KEYS), SCENARIOS[SCENARIO])
    assert run.divergence is not None and "are the SE keys given the ones this SE holds" in run.divergence.what


# --- over the wire and from the command line ------------------------------------------------------------------------


def test_the_session_passes_apdus_and_refuses_bad_ones() -> None:
    session = Session(reference_factory, name="reference")
    assert "se_apdu" in session.handle({"id": 1, "op": "hello", "protocol": PROTOCOL})["capabilities"]
    assert "se_apdu" in session.handle({"id": 2, "op": "new", "world": SCENARIOS[SCENARIO].world.to_json()})["capabilities"]
    select = "AKQEDArTkvAAJgEAAAAB"  # 00 A4 04 0C 0A <JPKI AID>: no applet yet
    assert session.handle({"id": 3, "op": "se_apdu", "phone": "D1", "apdu": select}) == {"id": 3, "ok": True, "response": "aoI="}
    assert "not valid base64" in session.handle({"id": 4, "op": "se_apdu", "phone": "D1", "apdu": "%%"})["error"]
    assert "phone id" in session.handle({"id": 5, "op": "se_apdu", "apdu": select})["error"]
    assert "no phone 'Z9'" in session.handle({"id": 6, "op": "se_apdu", "phone": "Z9", "apdu": select})["error"]
    session.handle({"id": 7, "op": "close"})


@pytest.fixture(scope="module")
def served_with_test_keys() -> Iterator[str]:
    """`mjpki serve-system` (the reference, CRLs and OCSP served) whose SEs hold GP's test keys."""
    env = {**python_host_env(), SE_KEYS_ENV: "test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mjpki.cli", "serve-system", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)$", proc.stdout.readline().strip())
        assert match, proc.stderr.read() if proc.stderr else ""
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_se_is_read_over_the_shim_and_over_http(served_with_test_keys: str) -> None:
    checks = tuple(c for c in all_checks() if c.id == f"scenario:{SCENARIO}")
    command = python_host_command("mjpki.adapters.reference:factory")
    child = shim_factory(command, name="ref", timeout=10, start_timeout=60, env=python_host_env())
    url = http_factory(served_with_test_keys, timeout=10, start_timeout=60)
    try:
        assert "se_apdu" in child.hello().capabilities and "se_apdu" in url.hello().capabilities
        results = [run_conformance(SeKeyedFactory(f, TEST_SE_KEYS), checks=checks, timeout=15, system_name="x") for f in (child, url)]
    finally:
        child.shutdown()
    for result in results:
        assert result.passed and result.results[0].se_reads > 0, render_summary(result)
        assert judged_on("REV-1", result.results) == "apdu"


def test_the_lying_system_is_caught_over_the_shim(tmp_path: Path) -> None:
    fault = LYING_SE["deletion-acknowledged-not-done"]
    module = tmp_path / "lying_se.py"
    module.write_text(f"from tests.faulty_impls import LYING_SE\nfactory = LYING_SE[{fault.name!r}].factory\n", encoding="utf-8")
    child = shim_factory(python_host_command(f"{module}:factory"), name="lying", timeout=10, start_timeout=60, env=python_host_env())
    try:
        run = _run(SeKeyedFactory(child, TEST_SE_KEYS), SCENARIOS[fault.caught_by])
    finally:
        child.shutdown()
    assert run.divergence is not None and "MCH-4" in run.divergence.reqs, run.divergence


def test_mjpki_run_with_se_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(SE_KEYS_ENV)  # mjpki run sets it for the reference it starts
    out = tmp_path / "out"
    common = ["--check", f"scenario:{SCENARIO}", "--out", str(out), "--db", "", "-q", "--in-process"]
    assert main(["run", "--se-test-keys", *common]) == 0
    assert os.environ[SE_KEYS_ENV] == "test"
    result = json.loads((out / "result.json").read_text())
    assert result["requirements"]["REV-1"]["judged_on"] == "apdu" and result["checks"][0]["se_reads"] > 0
    assert "SE slots read over APDUs" in capsys.readouterr().out
    keys = tmp_path / "keys"
    keys.write_text(f"* {TEST_KEYS.enc.hex()}\n")
    keys.chmod(0o644)
    assert main(["run", "--se-keys", str(keys), *common]) == 2
    assert "readable by others" in capsys.readouterr().err
    keys.chmod(0o600)
    assert main(["run", "--se-keys", str(keys), *common]) == 0
    assert main(["run", "--se-keys", str(keys), "--se-test-keys", *common]) == 2
    assert "not both" in capsys.readouterr().err


def test_the_pytest_plugin_reads_the_se_with_keys(tmp_path: Path) -> None:
    """--jpki-se-test-keys: the plugin's checks read the reference's SEs over APDUs, as `mjpki run --se-test-keys` does."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != SE_KEYS_ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--jpki-adapter=mjpki.adapters.reference:factory",
        f"--jpki-out={out}", "--jpki-db=", "--jpki-se-test-keys", "-k", SCENARIO,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["requirements"]["REV-1"]["judged_on"] == "apdu"
    both = subprocess.run([*command, "--jpki-se-keys=/nonexistent"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert both.returncode == 4 and "not both" in both.stderr, both.stdout + both.stderr


def test_mjpki_replay_reads_the_se_with_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`mjpki replay TRACE --se-test-keys`: the lying system's replay parts from the spec on its SE; on self-report it agrees."""
    from mjpki.adapters.spec_adapter import SpecSystem

    monkeypatch.delenv(SE_KEYS_ENV)  # mjpki replay sets it for the Python adapter it starts
    fault = LYING_SE["deletion-acknowledged-not-done"]
    (tmp_path / "lying_se_replay.py").write_text(
        f"from tests.faulty_impls import LYING_SE\nfactory = LYING_SE[{fault.name!r}].factory\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec_run = _run(SpecSystem, SCENARIOS[fault.caught_by])
    trace = tmp_path / "trace.json"
    trace.write_text(spec_run.trace(title=fault.caught_by, source="scenario").dumps(), encoding="utf-8")
    adapter = ["--adapter", "lying_se_replay:factory", "--in-process"]
    assert main(["replay", str(trace), *adapter]) == 0, capsys.readouterr()
    capsys.readouterr()
    assert main(["replay", str(trace), *adapter, "--se-test-keys"]) == 1
    said = capsys.readouterr()
    assert "SE slots: read over APDUs" in said.out, said
    assert "SE slots read over APDUs:" in said.out and "MCH-4" in said.out, said
    assert os.environ[SE_KEYS_ENV] == "test"
