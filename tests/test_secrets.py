"""Issue 12, findings 2, 4 and 8: no default SCP03 test keys, the CA keys encrypted at rest, records that answer.

- serve-se and mjpki.adapters.pcsc_system take the SEs' keys from a private file, an option or $MJPKI_PCSC_KEYS, and use
  GlobalPlatform's published test keys only when told so in words (--test-keys, --demo, MJPKI_PCSC_KEYS=test).
- $MJPKI_CA_PASSPHRASE encrypts the CA private keys in the records; a wrong or missing one is one clear error.
- A ReferenceSystem reopened without its card keys says so when built, not with a bare InvalidSignature at UseCard;
  processes creating the same new records file at once all get the same records and the same CA.
- kill -9 in the middle of writes leaves records and a served SE's memory usable, and no SCP03 challenge repeats.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mjpki.adapters.pcsc_system import settings_from_env
from mjpki.adapters.system import AdapterError
from mjpki.cli import main
from mjpki.impl.ca import JpkiCa
from mjpki.impl.isd_keys import KEYS_ENV, TEST_KEYS, KeysError, read_keys_file
from mjpki.impl.records import CA_PASSPHRASE_ENV, Records, RecordsError
from mjpki.impl.scp03 import InitializeUpdateResponse, initialize_update_command
from mjpki.impl.serve_se import SeStore
from mjpki.impl.system import ReferenceSystem
from mjpki.scenarios import base_world
from mjpki.spec import actions as A
from mjpki.spec.domain import Kind

ROOT = Path(__file__).resolve().parent.parent
TEST_HEX = bytes(range(0x40, 0x50)).hex()


@pytest.fixture(autouse=True)
def _no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """conftest says MJPKI_PCSC_KEYS=test for the suite's own stacks; these tests start without it. serve-se sets the umask."""
    monkeypatch.delenv(KEYS_ENV, raising=False)
    monkeypatch.delenv(CA_PASSPHRASE_ENV, raising=False)
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


def _private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _serve_se(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    """`mjpki serve-se --write-pcscd-config DIR ARGS`: the keys are decided, then only the reader configuration is written."""
    code = main(["serve-se", "--state", str(tmp_path / "state"), *args, "--write-pcscd-config", str(tmp_path / "pcsc")])
    return code, capsys.readouterr().err


# --- finding 2: no default test keys -------------------------------------------------------------------------------


def test_serve_se_without_keys_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _serve_se(capsys, tmp_path, "--phones", "1")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("serve-se: no SCP03 keys: ") and "--keys-file FILE" in err and "$MJPKI_PCSC_KEYS" in err and "--test-keys" in err
    assert not (tmp_path / "pcsc").exists()  # refused before anything was written


@pytest.mark.parametrize("how", ["option", "environment", "file"])
def test_the_published_test_keys_are_refused_unless_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    args = {"option": ["--keys", TEST_HEX], "environment": [], "file": ["--keys-file", str(_private(tmp_path / "k", TEST_HEX))]}[how]
    if how == "environment":
        monkeypatch.setenv(KEYS_ENV, TEST_HEX)
    code, err = _serve_se(capsys, tmp_path, *args)
    assert code == 2 and "published test keys 40..4F, which protect nothing" in err and err.count("\n") == 1, err
    code, err = _serve_se(capsys, tmp_path, *args, "--test-keys")
    assert code == 0 and "WARNING: the SEs' ISD keys are GlobalPlatform's published test keys" in err, err


@pytest.mark.parametrize("args", [["--test-keys"], ["--demo"]])
def test_test_mode_says_so_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, err = _serve_se(capsys, tmp_path, *args)
    assert code == 0 and err.startswith("serve-se: WARNING: ") and "anyone who can reach pcscd can open them" in err, err


def test_test_word_in_the_environment_is_test_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEYS_ENV, "test")
    code, err = _serve_se(capsys, tmp_path)
    assert code == 0 and "WARNING" in err


def test_keys_from_a_private_file_or_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = secrets.token_bytes(48)
    path = _private(tmp_path / "keys.hex", keys.hex() + "\n")
    assert read_keys_file(path).mac == keys[16:32]
    code, err = _serve_se(capsys, tmp_path, "--keys-file", str(path))
    assert code == 0 and err == "", err
    monkeypatch.setenv(KEYS_ENV, keys.hex())
    code, err = _serve_se(capsys, tmp_path)
    assert code == 0 and err == "", err


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("00" * 48, 0o644, "is readable by others (mode 0644): chmod 600 it"),
        ("zz", 0o600, "keys must be hex"),
        ("00" * 20, 0o600, "keys must be one AES key (16/24/32 bytes) or three"),
        ("00" * 5000, 0o600, "is larger than 4096 bytes"),
    ],
)
def test_a_bad_keys_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, mode: int, message: str) -> None:
    path = _private(tmp_path / "keys.hex", content, mode)
    code, err = _serve_se(capsys, tmp_path, "--keys-file", str(path))
    assert code == 2 and message in err and err.count("\n") == 1, err
    with pytest.raises(KeysError, match="keys file"):
        read_keys_file(path)


def test_a_served_se_made_with_test_keys_is_not_served_without_test_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    SeStore.open(state / "se-SE-DEMO.json", se_id="SE-DEMO", keys=TEST_KEYS)
    keys = _private(tmp_path / "keys.hex", secrets.token_bytes(16).hex())
    code = main(["serve-se", "--state", str(state), "--keys-file", str(keys), "--port", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "se-SE-DEMO.json holds an SE made with GlobalPlatform's published test keys: serve it with --test-keys" in err, err


def test_pcsc_system_needs_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    world = base_world()
    with pytest.raises(AdapterError, match=r"\$MJPKI_PCSC_KEYS must hold the SEs' ISD SCP03 keys .* or `test`"):
        settings_from_env(world)
    monkeypatch.setenv(KEYS_ENV, "test")
    assert settings_from_env(world)[1] == TEST_KEYS
    monkeypatch.setenv(KEYS_ENV, "not hex")
    with pytest.raises(AdapterError, match=r"\$MJPKI_PCSC_KEYS: keys must be hex"):
        settings_from_env(world)


# --- finding 4: the CA keys at rest --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_ca() -> JpkiCa:
    return JpkiCa.generate()


def test_the_ca_keys_are_encrypted_with_the_passphrase(tmp_path: Path, small_ca: JpkiCa, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "records.sqlite"
    monkeypatch.setenv(CA_PASSPHRASE_ENV, "correct horse")
    with Records.open(path) as records:
        records.save_ca(ca=small_ca)
    content = path.read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in content and b"BEGIN PRIVATE KEY" not in content
    with Records.open(path) as records:
        loaded = records.load_ca()
    assert loaded is not None and loaded.ca(Kind.AUTH).certificate == small_ca.ca(Kind.AUTH).certificate
    monkeypatch.setenv(CA_PASSPHRASE_ENV, "wrong horse")
    with Records.open(path) as records, pytest.raises(RecordsError, match=r"wrong passphrase \(\$MJPKI_CA_PASSPHRASE"):
        records.load_ca()
    monkeypatch.delenv(CA_PASSPHRASE_ENV)
    with Records.open(path) as records, pytest.raises(RecordsError, match=r"are encrypted: set \$MJPKI_CA_PASSPHRASE"):
        records.load_ca()


def test_keys_saved_in_clear_are_encrypted_once_a_passphrase_is_set(
    tmp_path: Path, small_ca: JpkiCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "records.sqlite"
    with Records.open(path) as records:
        records.save_ca(ca=small_ca)
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()
    monkeypatch.setenv(CA_PASSPHRASE_ENV, "now secret")
    with Records.open(path) as records:
        assert records.load_ca() is not None
    content = path.read_bytes()  # secure_delete: the clear key is not left behind in a free page either
    assert b"BEGIN PRIVATE KEY" not in content and b"BEGIN ENCRYPTED PRIVATE KEY" in content


# --- finding 8: records that answer ----------------------------------------------------------------------------------


def test_reopened_without_card_keys_says_so_when_built(tmp_path: Path, small_ca: JpkiCa) -> None:
    world = base_world()
    path = tmp_path / "records.sqlite"
    first = ReferenceSystem(world, db_path=path, ca=small_ca)
    keys = {p: c.key for p, c in first.cards.items()}
    first.close()
    with pytest.raises(ValueError, match=r"holds card certificates of P1, P2 for card keys this system was not given.*pass card_keys"):
        ReferenceSystem(world, db_path=path)
    again = ReferenceSystem(world, db_path=path, card_keys=keys)
    try:
        assert again.step(A.UseCard(person="P1", kind=Kind.AUTH, sp=world.service_providers[0].id)).ok
    finally:
        again.close()


def _open_records(path: str, barrier: Any, answers: Any) -> None:
    try:
        barrier.wait()
        Records.open(path).close()
        answers.put("ok")
    except BaseException as exc:  # the test reports what each process met
        answers.put(f"{type(exc).__name__}: {exc}")


def _build_system(path: str, barrier: Any, answers: Any, card_keys: dict[str, rsa.RSAPrivateKey]) -> None:
    try:
        barrier.wait()
        system = ReferenceSystem(base_world(), db_path=path, card_keys=card_keys)
        answers.put(system.ca.ca(Kind.AUTH).certificate.fingerprint(system.ca.ca(Kind.AUTH).certificate.signature_hash_algorithm).hex())  # type: ignore[arg-type]
        system.close()
    except BaseException as exc:
        answers.put(f"{type(exc).__name__}: {exc}")


def _race(target: Any, path: Path, n: int, *extra: Any) -> list[str]:
    """n processes released together, each running target(path, barrier, answers, *extra); what each put in answers."""
    context = multiprocessing.get_context("fork")
    barrier, answers = context.Barrier(n), context.Queue()
    processes = [context.Process(target=target, args=(str(path), barrier, answers, *extra)) for _ in range(n)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    return [answers.get(timeout=5) for _ in processes]


def test_processes_creating_the_same_records_file_all_succeed(tmp_path: Path) -> None:
    """Before the fix one of them met a half-made schema: "corrupt or not SQLite" or "another application"."""
    for attempt in range(6):
        answers = _race(_open_records, tmp_path / f"r{attempt}.sqlite", 4)
        assert answers == ["ok"] * 4, answers


def test_systems_creating_the_same_records_file_share_one_ca(tmp_path: Path) -> None:
    """Before the fix one of them generated a CA of its own and met "the records hold a different auth CA"."""
    keys = {p.id: rsa.generate_private_key(public_exponent=65537, key_size=2048) for p in base_world().persons if p.has_card}
    answers = _race(_build_system, tmp_path / "r.sqlite", 3, keys)
    assert len(set(answers)) == 1 and len(answers[0]) == 64, answers


# --- kill -9 ---------------------------------------------------------------------------------------------------------

_WRITER = """
import sys
from datetime import date
from mjpki.impl.records import Records
records = Records.open(sys.argv[1])
for i in range(100000):
    with records.transaction():
        records.add_person(person=f"P{i}", birth_date=date(1990, 1, 1))
    print(i, flush=True)
"""


def test_records_survive_kill_9_in_the_middle_of_writes(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert writer.stdout is not None
    committed = -1
    for line in writer.stdout:  # kill it once it has committed some transactions, mid-way through the next ones
        committed = int(line)
        if committed >= 40:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    with Records.open(path) as records:  # SQLite's quick_check and mjpki's schema checks pass
        persons = {p.id for p in records.persons()}
    assert {f"P{i}" for i in range(committed + 1)} <= persons  # every transaction it reported is there


def _vpcd_listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)
    return server


def _ask(conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(struct.pack(">H", len(payload)) + payload)
    head = b""
    while len(head) < 2:
        chunk = conn.recv(2 - len(head))
        assert chunk, "serve-se closed the link"
        head += chunk
    (n,) = struct.unpack(">H", head)
    body = b""
    while len(body) < n:
        chunk = conn.recv(n - len(body))
        assert chunk, "serve-se closed the link"
        body += chunk
    return body


def _counter(conn: socket.socket) -> int:
    answer = _ask(conn, initialize_update_command(key_version=0, host_challenge=secrets.token_bytes(8)))
    assert answer[-2:] == b"\x90\x00", answer.hex()
    counter = InitializeUpdateResponse.from_bytes(answer[:-2]).sequence_counter
    assert counter is not None
    return counter


def test_a_served_se_survives_kill_9_and_never_repeats_a_challenge(tmp_path: Path) -> None:
    """Every INITIALIZE UPDATE advances the ISD's sequence counter in the state file; after kill -9 it goes on from there."""
    state = tmp_path / "state"
    server = _vpcd_listener()
    command = [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(state), "--test-keys", "--port", str(server.getsockname()[1])]
    try:
        served = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn, _ = server.accept()
        conn.settimeout(10)
        seen = [_counter(conn) for _ in range(40)]
        in_flight = initialize_update_command(key_version=0, host_challenge=bytes(8))
        conn.sendall(struct.pack(">H", len(in_flight)) + in_flight)  # killed while it may be answering this one
        served.send_signal(signal.SIGKILL)
        served.wait(10)
        conn.close()
        assert seen == list(range(seen[0], seen[0] + 40))
        again = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            conn, _ = server.accept()
            conn.settimeout(10)
            assert _counter(conn) > seen[-1]  # the memory file is whole, and no challenge is used twice
            conn.close()
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(15)
    finally:
        server.close()
    assert all(p.stat().st_mode & 0o077 == 0 for p in state.iterdir()), [oct(p.stat().st_mode) for p in state.iterdir()]
