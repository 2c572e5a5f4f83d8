"""The applet-level conformance run over pcscd: `mjpki run --reader NAME --keys FILE` on SEs served by `mjpki serve-se`.

The run's prelude deletes the JPKI applet, so it gets an SE of its own: `serve-se --port SPARE_PORT` serves one (fresh
ISD keys, its own state) in the spare vpcd slot, SPARE_READER, which the stack of tests/pcsc_stack.py leaves empty; the
reader SE and the phone SEs of the other PC/SC tests are not touched. The reference GpSe conforms over pcscd; a faulty
class served with `serve-se --applet tests/faulty_applets.py:OneExtraTry` fails applet:lock with a trace, which replays
to the same step on the model and on the class in process.

Without the stack the tests skip saying what is missing; under CI=true they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mjpki.applet_run import EXAMPLES_ENV, KEYS_ENV
from mjpki.impl import se_apdu as A
from tests.faulty_applets import FAULTY_APPLETS_BY_ID
from tests.pcsc_stack import SPARE_PORT, SPARE_READER, pcsc_stack, require_stack

ROOT = Path(__file__).resolve().parent.parent
FAULTY = FAULTY_APPLETS_BY_ID["one-extra-try"]
"""VERIFY gives one try too many before the lock (PIN-3): the named scenario applet:lock catches it."""
FAULTY_FILE_SPEC = f"tests/faulty_applets.py:{FAULTY.cls.__name__}"
FAULTY_MODULE_SPEC = f"tests.faulty_applets:{FAULTY.cls.__name__}"


@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """pcscd with Debian's vpcd readers: reused if running, else started (tests/pcsc_stack.py); skip (CI: fail) if it cannot be."""
    require_stack()
    with pcsc_stack(tmp_path_factory.mktemp("pcsc"), phones=0):
        yield


def _keys(directory: Path) -> tuple[str, Path]:
    """Fresh ISD keys: as serve-se takes them (hex ENC||MAC||DEK) and as `mjpki run --keys` takes them (a JSON file)."""
    enc, mac, dek = (secrets.token_bytes(16) for _ in range(3))
    path = directory / "se-keys.json"
    path.write_text(json.dumps({"enc": enc.hex(), "mac": mac.hex(), "dek": dek.hex(), "key_version": 0x30}), encoding="utf-8")
    return (enc + mac + dek).hex(), path


class Served:
    """`mjpki serve-se` serving one SE in SPARE_READER, stopped (by PID) on exit; its output kept for failure messages."""

    def __init__(self, directory: Path, se_id: str, keys_hex: str, *extra: str) -> None:
        self.log = directory / "serve-se.log"
        command = [
            sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(directory / "state"), "--port", str(SPARE_PORT),
            "--se-id", se_id, "--keys", keys_hex, *extra,
        ]  # fmt: skip
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_for_card(self, timeout: float = 30.0) -> None:
        """Until pcscd sees the card in SPARE_READER and its ISD answers SELECT (pcscd polls vpcd for presence)."""
        from mjpki.adapters.pcsc import PcscApplet

        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"serve-se exited with {self.process.returncode}\n{self.output()}"
            try:
                card = PcscApplet(SPARE_READER)
                try:
                    if card.transmit(A.select_aid(A.ISD_AID))[-2:] == A.SW_OK:
                        return
                finally:
                    card.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def served(pcscd: None, tmp_path: Path) -> Iterator[list[Served]]:
    """The servers a test starts, all stopped at its end (the spare reader is free again for the next test)."""
    servers: list[Served] = []
    yield servers
    for s in servers:
        s.stop()


def _mjpki(*args: str, cwd: Path, examples: int = 3, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), EXAMPLES_ENV: str(examples)}
    env.pop(KEYS_ENV, None)
    return subprocess.run([sys.executable, "-m", "mjpki.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_reference_applet_conforms_over_pcscd(served: list[Served], tmp_path: Path) -> None:
    keys_hex, keys_file = _keys(tmp_path)
    server = Served(tmp_path, "SE-APPLETRUN", keys_hex)
    served.append(server)
    server.wait_for_card()
    out = tmp_path / "out"
    t0 = time.monotonic()
    args = ["--keys", str(keys_file), "--profile", "quick", "--out", str(out), "--db", ""]
    done = _mjpki("run", "--reader", SPARE_READER, *args, cwd=tmp_path, examples=10)
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:] + server.output()
    assert "CONFORMS" in done.stdout and "DOES NOT CONFORM" not in done.stdout, done.stdout[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["applet"] == f"PC/SC {SPARE_READER}" and result["passed"] and result["conforms"]
    checks = {c["id"]: c for c in result["checks"]}
    assert "applet:personalise" in checks and "applet:lock" in checks and "applet:search" in checks
    assert all(c["status"] == "pass" and c["steps"] > 0 for c in checks.values()), checks
    assert checks["applet:search"]["runs"] >= 10
    assert result["clauses"]["verify"]["verdict"] == "pass" and result["requirements"]["PIN-3"]["verdict"] == "pass"
    assert not list(out.glob("applet-*.json"))
    print(f"reference over pcscd: {len(checks)} checks, {sum(c['steps'] for c in checks.values())} steps in {seconds:.1f} s")


def test_a_faulty_applet_fails_over_pcscd_with_a_trace(served: list[Served], tmp_path: Path) -> None:
    keys_hex, keys_file = _keys(tmp_path)
    server = Served(tmp_path, "SE-FAULTY", keys_hex, "--applet", FAULTY_FILE_SPEC)
    served.append(server)
    server.wait_for_card()
    out = tmp_path / "out"
    done = _mjpki(
        "run", "--reader", SPARE_READER, "--keys", str(keys_file), "--check", "applet:lock", "--check", "applet:wrong-pin",
        "--out", str(out), "--db", "", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-6000:] + done.stderr[-2000:] + server.output()
    assert "DOES NOT CONFORM" in done.stdout and "applet:lock" in done.stdout
    assert f"every SE is a faulty_applets.{FAULTY.cls.__name__}" in server.output(), server.output()
    result = json.loads((out / "result.json").read_text())
    checks = {c["id"]: c for c in result["checks"]}
    lock = checks["applet:lock"]
    assert lock["status"] == "fail" and lock["divergence"]["rule"] == "verify", lock
    assert set(FAULTY.reqs) <= set(lock["divergence"]["reqs"])
    assert checks["applet:wrong-pin"]["status"] == "pass"  # the other PIN scenario does not reach the extra try
    assert result["clauses"]["verify"]["verdict"] == "FAIL" and result["requirements"]["PIN-3"]["verdict"] == "FAIL"
    trace = out / "applet-lock.json"
    assert trace.is_file() and (out / "applet-lock.txt").is_file() and (out / "applet-lock.md").is_file()
    doc = json.loads(trace.read_text())
    index = doc["meta"]["divergence_index"]
    assert doc["format"] == "mjpki-apdu-trace/1" and doc["meta"]["applet"] == f"PC/SC {SPARE_READER}" and index == len(doc["steps"]) - 1
    assert doc["meta"]["config"]["caller"] is None  # reached as a reader
    assert "!!" in (out / "applet-lock.txt").read_text()
    # the trace taken over pcscd replays: on the model (the recorded answers) and on the class in process
    on_model = _mjpki("replay", str(trace), cwd=ROOT)
    assert on_model.returncode == 1 and f"rejects the answer at step {index}:" in on_model.stdout, on_model.stdout + on_model.stderr
    on_class = _mjpki("replay", str(trace), "--applet", FAULTY_MODULE_SPEC, cwd=ROOT)
    assert on_class.returncode == 1 and f"diverges at step {index} " in on_class.stdout, on_class.stdout + on_class.stderr


def test_the_pytest_plugin_runs_the_applet_checks_over_pcscd(served: list[Served], tmp_path: Path) -> None:
    """`pytest --jpki-reader=NAME` with the keys in $MJPKI_SE_KEYS: some checks, one test each, the verdicts at the end."""
    keys_hex, keys_file = _keys(tmp_path)
    server = Served(tmp_path, "SE-PLUGIN", keys_hex)
    served.append(server)
    server.wait_for_card()
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--jpki-reader={SPARE_READER}", f"--jpki-out={out}",
        "--jpki-db=", "-k", "personalise or lock or search",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), EXAMPLES_ENV: "3", KEYS_ENV: keys_file.read_text()}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:] + server.output()
    assert "3 passed" in done.stdout and "; CONFORMS" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["applet"] == f"PC/SC {SPARE_READER}" and result["passed"]
    assert [c["id"] for c in result["checks"]] == ["applet:personalise", "applet:lock", "applet:search"]
