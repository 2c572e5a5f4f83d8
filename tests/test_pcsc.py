"""Over the real PC/SC stack: pcscd + vsmartcard vpcd + `mjpki serve-se`, driven with pyscard and OpenSC.

Every APDU here goes through pcscd. The stack is started (and stopped, by PID) by tests/pcsc_stack.py unless
scripts/pcsc.sh left one running. Without pyscard, pcscd, vpcd or OpenSC the tests skip saying what is missing;
under CI=true they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from mjpki.adapters.applet import AppletAdapter, AppletAdapterError
from mjpki.adapters.applet_checks import render, run_checks
from mjpki.adapters.pcsc_system import PcscSeLink, factory
from mjpki.impl.se_apdu import JPKI_ATR, compute_signature
from mjpki.impl.serve_se import TEST_KEYS, DemoCard, personalise_demo
from mjpki.impl.system import OFFICIAL_APP_HASH, digest_info
from mjpki.lockstep import Lockstep, lockstep_machine
from mjpki.scenarios import SCENARIOS, base_world
from mjpki.spec.domain import Kind
from tests.pcsc_stack import READER, Stack, expected_readers, in_ci, missing, opensc_module, pcsc_stack, pcscd_running


def _require(*, opensc: bool = False) -> None:
    lacking = missing(opensc=opensc)
    if not lacking:
        return
    why = "the PC/SC stack is incomplete: " + "; ".join(lacking) + " (as root: bash scripts/pcsc.sh install)"
    if in_ci():
        pytest.fail(why + " [CI=true: a failure, not a skip]")
    pytest.skip(why)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require()
    if os.geteuid() != 0 and not pcscd_running():
        why = "pcscd is not running and only root can start it here: sudo bash scripts/pcsc.sh start"
        if in_ci():
            pytest.fail(why + " [CI=true: a failure, not a skip]")
        pytest.skip(why)
    with pcsc_stack(tmp_path_factory.mktemp("pcsc")) as running:
        yield running


def _reader(name: str = READER) -> AppletAdapter:
    from mjpki.adapters.pcsc import PcscApplet

    return PcscApplet(name)


# --- the applet-level adapter over pcscd --------------------------------------------------------------------------


def test_every_reader_has_the_served_se_with_the_jpki_atr(stack: Stack) -> None:
    from mjpki.adapters.pcsc import PcscApplet, list_readers

    names = list_readers()
    assert set(expected_readers()) <= set(names), stack.log()
    card = PcscApplet("mjpki SE-0003 00 00")
    try:
        assert card.atr == JPKI_ATR  # OpenSC matches the jpki driver on it
        # the ISD answers through pcscd; an unknown AID gets 6A82
        assert card.transmit(bytes.fromhex("00A4040C08A000000151000000")) == b"\x90\x00"
        assert card.transmit(bytes.fromhex("00A4040C06D27600012401"))[-2:] == b"\x6a\x82"
    finally:
        card.close()


def test_reader_not_found_lists_the_readers(stack: Stack) -> None:
    from mjpki.adapters.pcsc import PcscApplet, find_reader

    with pytest.raises(AppletAdapterError, match=re.escape(READER)):
        PcscApplet("no such reader")
    with pytest.raises(AppletAdapterError, match="several readers"):
        find_reader("mjpki SE-0001")  # two slots match: the caller must name one
    assert find_reader("SE-0002 00 01") == "mjpki SE-0002 00 01"  # a unique substring is enough


def test_applet_checks_pass_over_pcsc(stack: Stack) -> None:
    card = _reader()
    try:
        results = run_checks(card, TEST_KEYS)
    finally:
        card.close()
    assert all(r.passed for r in results), render(results) + "\n" + stack.log()


def test_power_cycle_by_pyscard_disconnect_clears_the_pin(stack: Stack) -> None:
    """pyscard's default disconnect powers the card off (vpcd control 00); the SE must drop its verified PIN, keep the rest."""
    from mjpki.adapters.pcsc import PcscApplet

    card = personalised_reader()
    try:
        for apdu, sw in (("00A4040C0AD392F000260100000001", "9000"), ("00A4020C020018", "9000"), ("002000800431323334", "9000")):
            assert card.transmit(bytes.fromhex(apdu)).hex().upper() == sw
    finally:
        card.close()
    cold = PcscApplet(READER, unpower_on_close=True)
    cold.close()  # power off
    again = PcscApplet(READER)
    try:
        for apdu in ("00A4040C0AD392F000260100000001", "00A4020C020017"):
            assert again.transmit(bytes.fromhex(apdu)) == b"\x90\x00"
        assert again.transmit(compute_signature(digest_info(b"after power off")))[-2:] == b"\x69\x82"  # PIN no longer verified
        assert again.transmit(bytes.fromhex("00A4020C020018")) == b"\x90\x00"
        assert again.transmit(bytes.fromhex("0020008000"))[-2:] == b"\x63\xc3"  # the PIN is still set, with its tries
    finally:
        again.close()


def personalised_reader() -> AppletAdapter:
    """The reader SE with a demo personalisation (certificates issued by the reference CA over PC/SC)."""
    _demo_card()
    return _reader()


def _demo_card() -> DemoCard:
    link = PcscSeLink("SE-DEMO", {OFFICIAL_APP_HASH: _reader()})
    try:
        link.check_and_wipe(TEST_KEYS)
        return personalise_demo(link, keys=TEST_KEYS, signing_pin="ABC123", auth_pin="1234")
    finally:
        link.close()


# --- the system-level suite over pcscd -----------------------------------------------------------------------------


def test_scenarios_in_lockstep_over_pcsc(stack: Stack) -> None:
    """Every named scenario, in lockstep with the spec, with every phone's SE behind pcscd."""
    failures = []
    ran = 0
    for sid, sc in SCENARIOS.items():
        if sc.world.phones != base_world().phones:
            continue  # the served SEs are those of the base world
        ran += 1
        run = Lockstep(factory, sc.world, timeout=60, system_name="pcsc")
        try:
            for exp in sc.steps:
                run.step(exp.action)
            if run.divergence is not None:
                failures.append(f"{sid}: {run.divergence}")
        finally:
            run.close()
    assert not failures, "\n".join(failures) + "\n" + stack.log()
    assert ran >= len(SCENARIOS) // 2, f"only {ran} of {len(SCENARIOS)} scenarios are in the base world"


def test_lockstep_state_machine_over_pcsc(stack: Stack, tmp_path: Path) -> None:
    """The Hypothesis lockstep suite (what `pytest --jpki-adapter=mjpki.adapters.pcsc_system:factory` runs), few examples."""
    machine = lockstep_machine(factory, base_world(), trace_dir=str(tmp_path), timeout=60, name="pcsc_system")
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=8, stateful_step_count=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)),
    )
    assert list(tmp_path.iterdir()) == [], "a divergence over PC/SC: see the trace written here"


def test_the_pytest_plugin_runs_the_suite_over_pcsc(stack: Stack, tmp_path: Path) -> None:
    """`pytest --jpki-adapter=mjpki.adapters.pcsc_system:factory`, as a user runs it: a scenario and the variants' search."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--jpki-adapter=mjpki.adapters.pcsc_system:factory",
        f"--jpki-out={out}", "--jpki-db=", "--jpki-step-timeout=60", "-k", "lost-card-found or stateful:variants",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:] + stack.log()
    assert "2 passed" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["passed"] and {c["id"] for c in result["checks"]} == {"scenario:lost-card-found", "stateful:variants"}
    assert all(c["steps"] > 0 for c in result["checks"])


# --- OpenSC ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opensc(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the OpenSC tools: only the jpki driver, and only the reader SE (the phone SEs are the suite's)."""
    _require(opensc=True)
    return _opensc_env(tmp_path_factory.mktemp("opensc") / "opensc.conf")


def _opensc_env(conf: Path, *, debug_log: Path | None = None) -> dict[str, str]:
    """Write an OpenSC configuration (jpki only, phone SEs ignored; with debug_log, every APDU logged there) and point at it."""
    debug = "" if debug_log is None else f'  debug = 3;\n  debug_file = "{debug_log}";\n'
    conf.write_text(f'app default {{\n  card_drivers = jpki;\n  ignored_readers = "mjpki SE";\n{debug}}}\n', encoding="utf-8")
    return {**os.environ, "OPENSC_CONF": str(conf)}


def _tool(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert done.returncode == 0, f"{' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _pem_to_der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


def _tries_left(env: dict[str, str]) -> dict[str, int]:
    out = _tool(env, "pkcs15-tool", "--reader", READER, "-D").stdout
    blocks = re.findall(r"PIN \[(.+?)\].*?Tries left\s*:\s*(\d+)", out, flags=re.S)
    return {name: int(n) for name, n in blocks}


def test_opensc_reads_signs_and_verifies(opensc: dict[str, str], tmp_path: Path) -> None:
    card = _demo_card()
    env = opensc
    assert _tool(env, "opensc-tool", "--reader", READER, "-n").stdout.strip() == "jpki"
    dump = _tool(env, "pkcs15-tool", "--reader", READER, "-D").stdout
    for name in (
        "User Authentication PIN",
        "Digital Signature PIN",
        "User Authentication Key",
        "Digital Signature Key",
        "User Authentication Certificate",
        "Digital Signature Certificate",
        "User Authentication Certificate CA",
        "Digital Signature Certificate CA",
    ):
        assert f"[{name}]" in dump, dump
    assert len(re.findall(r"^X\.509 Certificate \[", dump, flags=re.M)) == 4, dump
    assert _tries_left(env) == {"User Authentication PIN": 3, "Digital Signature PIN": 5}
    # the certificates OpenSC reads are the bytes the CA issued (the signing one needs the signing PIN)
    read = {
        "01": _tool(env, "pkcs15-tool", "--reader", READER, "--read-certificate", "01").stdout,
        "02": _tool(
            env, "pkcs15-tool", "--reader", READER, "--read-certificate", "02", "--verify-pin", "--auth-id", "02", "--pin", card.signing_pin
        ).stdout,
        "03": _tool(env, "pkcs15-tool", "--reader", READER, "--read-certificate", "03").stdout,
        "04": _tool(env, "pkcs15-tool", "--reader", READER, "--read-certificate", "04").stdout,
    }
    assert _pem_to_der(read["01"]) == card.certificates[Kind.AUTH]
    assert _pem_to_der(read["02"]) == card.certificates[Kind.SIGNING]
    assert _pem_to_der(read["03"]) == card.ca_certificates[Kind.AUTH]
    assert _pem_to_der(read["04"]) == card.ca_certificates[Kind.SIGNING]
    # PKCS#11: log in and sign with SHA256-RSA-PKCS with both keys; openssl verifies with the issued certificates
    module = opensc_module()
    assert module is not None
    message = tmp_path / "message.txt"
    message.write_bytes(b"mjpki over pcscd and OpenSC\n")
    for slot, key_id, pin, kind in (("0", "01", card.auth_pin, Kind.AUTH), ("1", "02", card.signing_pin, Kind.SIGNING)):
        signature = tmp_path / f"sig-{key_id}.bin"
        _tool(
            env, "pkcs11-tool", "--module", module, "--slot-index", slot, "--login", "--pin", pin,
            "--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", key_id, "-i", str(message), "-o", str(signature),
        )  # fmt: skip
        cert = tmp_path / f"cert-{key_id}.pem"
        cert.write_bytes(x509.load_der_x509_certificate(card.certificates[kind]).public_bytes(serialization.Encoding.PEM))
        pub = tmp_path / f"pub-{key_id}.pem"
        pub.write_text(_tool(env, "openssl", "x509", "-in", str(cert), "-pubkey", "-noout").stdout)
        verified = _tool(env, "openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(signature), str(message))
        assert "Verified OK" in verified.stdout
        message_bad = tmp_path / "other.txt"
        message_bad.write_bytes(b"something else\n")
        bad = _tool(env, "openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(signature), str(message_bad), ok=False)
        assert bad.returncode != 0


def test_opensc_wrong_pins_show_tries_left_and_lock(opensc: dict[str, str]) -> None:
    card = _demo_card()
    env = opensc
    module = opensc_module()
    assert module is not None
    wrong = _tool(env, "pkcs15-tool", "--reader", READER, "--verify-pin", "--auth-id", "01", "--pin", "0000", ok=False)
    assert wrong.returncode != 0 and "incorrect" in (wrong.stdout + wrong.stderr).lower()
    assert _tries_left(env) == {"User Authentication PIN": 2, "Digital Signature PIN": 5}
    listing = _tool(env, "pkcs11-tool", "--module", module, "-L").stdout
    assert "user PIN count low" in listing, listing
    for _ in range(2):
        _tool(env, "pkcs15-tool", "--reader", READER, "--verify-pin", "--auth-id", "01", "--pin", "0000", ok=False)
    assert _tries_left(env)["User Authentication PIN"] == 0
    # locked (PIN-3): the right PIN no longer opens the key; OpenSC reports the lock; the signing PIN is untouched
    blocked = _tool(env, "pkcs15-tool", "--reader", READER, "--verify-pin", "--auth-id", "01", "--pin", card.auth_pin, ok=False)
    assert "blocked" in (blocked.stdout + blocked.stderr).lower()
    login = _tool(
        env, "pkcs11-tool", "--module", module, "--slot-index", "0", "--login", "--pin", card.auth_pin, "--sign",
        "--mechanism", "SHA256-RSA-PKCS", "--id", "01", "-i", "/dev/null", "-o", "/dev/null", ok=False,
    )  # fmt: skip
    assert login.returncode != 0 and "CKR_PIN_LOCKED" in login.stdout + login.stderr
    assert "user PIN locked" in _tool(env, "pkcs11-tool", "--module", module, "-L").stdout
    assert _tries_left(env)["Digital Signature PIN"] == 5


_GET_CHALLENGE_LOGGED = re.compile(r"Outgoing APDU \(5 bytes\):\n00 84 00 00 ([0-9A-F]{2}) .*?Incoming APDU \((\d+) bytes\)", re.S)


@pytest.mark.parametrize(
    ("label", "key", "kind"),
    [
        ("JPKI (User Authentication PIN)", "User Authentication Key", Kind.AUTH),
        ("JPKI (Digital Signature PIN)", "Digital Signature Key", Kind.SIGNING),
    ],
    ids=["auth-pin", "signing-pin"],
)
def test_pkcs11_tool_test_login_reports_no_errors(opensc: dict[str, str], tmp_path: Path, label: str, key: str, kind: Kind) -> None:
    """`pkcs11-tool --test --login` on each token, with its PIN: random (GET CHALLENGE), digests, signatures, verify; no errors."""
    card = _demo_card()
    module = opensc_module()
    assert module is not None
    pin = card.auth_pin if kind is Kind.AUTH else card.signing_pin  # OpenSC's jpki: one token per PIN
    log = tmp_path / "opensc-debug.log"
    env = _opensc_env(tmp_path / "opensc.conf", debug_log=log)
    done = _tool(env, "pkcs11-tool", "--module", module, "--token-label", label, "--login", "--pin", pin, "--test")
    out = done.stdout
    # pkcs11-tool exits 0 even when tests fail ("1 errors"): the verdict is in the output
    assert out.rstrip().endswith("No errors"), out + done.stderr
    bad = [line for line in (out + done.stderr).splitlines() if re.search(r"err|fail|invalid|CKR_", line, re.I) and line != "No errors"]
    assert not bad, out + done.stderr
    random_part = out.split("Digests:")[0]
    assert "C_GenerateRandom():" in random_part and "seems to be OK" in random_part and "RNG not available" not in random_part, out
    for expected in (
        "all 4 digest functions seem to work",
        f"testing key 0 ({key})",
        "all 4 signature functions seem to work",
        "    SHA256-RSA-PKCS: OK",
        f"testing key 0 ({key}) -- can't be used to decrypt, skipping",  # sign-only keys (OpenSC pkcs15-jpki.c)
    ):
        assert expected in out, (expected, out)
    assert out.count("    RSA-PKCS: OK") == 2 and out.count("    SHA1-RSA-PKCS: OK") == 2, out  # signed, then verified
    # C_GenerateRandom(10) and (100) came from the applet: 00 84 00 00 Le, each answered with Le bytes + SW (an error is SW alone)
    exchanges = [(int(le, 16), int(n)) for le, n in _GET_CHALLENGE_LOGGED.findall(log.read_text(errors="replace"))]
    assert {0x0A, 0x64} <= {le for le, _n in exchanges}, exchanges
    assert all(n == le + 2 for le, n in exchanges), exchanges
