"""Fuzzing the APDU processor and the vpcd framing with hostile bytes (issue 12): the short run is a test, the long one a script.

`apdus(rng, count)` makes command APDUs that are mostly almost right (a known CLA and INS, the JPKI files and AIDs,
lengths one off, Lc and Le that disagree with the data, chained and wrapped classes) and sometimes plain noise.
`fuzz_applet` sends them to an applet class, personalised through the TSM flows, in lockstep with the applet-level
model (mjpki.spec.apdu): any divergence, exception, 6F00 or over-long answer is a finding. `fuzz_framing` writes
random vpcd frames (lengths that lie, truncated frames, control bytes, noise) to serve-se's `VpcdCard` over loopback:
every whole frame must get a whole answer, and a broken stream must only end the link, which the card then re-opens.

    bench/fuzz_apdu.py --count 200000 --seed 7     the long run (tests/test_fuzz.py runs a few thousand in CI)
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.commands import Reset, Send

__all__ = ["Finding", "apdus", "fuzz_applet", "fuzz_framing"]

_CLAS: Final = (0x00, 0x00, 0x80, 0x80, 0x84, 0x04, 0x01, 0x0C, 0x81, 0x10, 0x90, 0xFF, 0xE0)
_INS: Final = (
    0xA4, 0xB0, 0x20, 0x24, 0x2A, 0x84, 0x30, 0x32, 0x34, 0x40, 0x36, 0x38, 0x3A, 0x3C, 0x3E, 0x50, 0x82,
    0xCA, 0xE2, 0xE4, 0xE6, 0xF2, 0x70, 0xC0, 0x00, 0xFF,
)  # fmt: skip
_FIDS: Final = (0x0006, 0x000A, 0x0001, 0x000B, 0x0002, 0x0017, 0x001A, 0x0018, 0x001B, 0x3F00, 0xFFFF)
_AIDS: Final = (I.ISD_AID, I.JPKI_AID, I.JPKI_ELF_AID, I.APSD_AID, b"", bytes(16), b"\xd3")
_MAX_ANSWER: Final = 256 + 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Something the fuzzer caught: which APDU (hex) and what was wrong."""

    apdu: str
    what: str


def _data(rng: random.Random) -> bytes:
    """A data field: a file id, an AID, a PIN-like string, a TLV-ish blob or noise."""
    pick = rng.randrange(6)
    if pick == 0:
        return rng.choice(_FIDS).to_bytes(2, "big")
    if pick == 1:
        return rng.choice(_AIDS)
    if pick == 2:
        return rng.choice([b"1234", b"ABC123", b"0000", b"", b"\x00" * 4, b"9" * 17])
    if pick == 3:
        tag, value = rng.choice([0x4F, 0x81, 0x82, 0xC9, 0xE1, 0x5C, 0x30]), rng.randbytes(rng.randrange(0, 40))
        length = rng.choice([len(value), len(value) + 1, max(len(value) - 1, 0), 0x81, 0xFF])
        return bytes([tag, length & 0xFF]) + value
    return rng.randbytes(rng.randrange(0, 256))


def _one(rng: random.Random) -> bytes:
    """One hostile command APDU."""
    if rng.random() < 0.08:
        return rng.randbytes(rng.randrange(0, 270))  # noise
    cla, ins = rng.choice(_CLAS), rng.choice(_INS)
    p1, p2 = rng.choice([0x00, 0x04, 0x02, 0x01, 0x80, 0x0C, rng.randrange(256)]), rng.choice([0x00, 0x0C, 0x04, 0x02, rng.randrange(256)])
    header = bytes([cla, ins, p1, p2])
    data = _data(rng)[:255]
    le = rng.choice([None, None, 0x00, 0x01, 0x10, 0xEF, 0xFF])
    shape = rng.randrange(8)
    if shape == 0:
        return header[: rng.randrange(0, 4)]  # too short
    if shape == 1:
        return header + bytes([0x00])  # Lc = 00 (extended length) or a bare Le
    if shape == 2 and data:
        return header + bytes([(len(data) + rng.choice([-1, 1, 2])) % 256]) + data  # Lc disagrees with the data
    body = header + (bytes([len(data)]) + data if data else b"")
    return body + (b"" if le is None else bytes([le]))


def apdus(rng: random.Random, count: int) -> Iterator[bytes]:
    """count hostile command APDUs from rng."""
    for _ in range(count):
        yield _one(rng)


def fuzz_applet(cls: Callable[..., Any], *, count: int, seed: int, every: int = 400) -> list[Finding]:
    """count fuzzed APDUs to a personalised `cls(se_id, isd_keys)` in lockstep with the model (re-personalised every `every`)."""
    from mjpki.applet_lockstep import AppletRun, expand, personalisation
    from mjpki.applet_run import applet_target_for_class

    rng = random.Random(seed)
    findings: list[Finding] = []
    sent = 0
    target = applet_target_for_class(cls, name=getattr(cls, "__name__", "applet"), se_id="SE-FUZZ")
    while sent < count:
        run = AppletRun(target)
        try:
            expand(run, personalisation())
            if run.divergence is not None:
                return [Finding(apdu="(personalisation)", what=run.divergence.what)]
            for raw in apdus(rng, min(every, count - sent)):
                sent += 1
                reset = rng.random() < 0.01  # now and then a card reset among the commands
                command = Reset() if reset else Send(raw)
                try:
                    step = run.send(command)
                except Exception as exc:  # the harness or the model broke on these bytes: a finding, not a crash of the fuzzer
                    findings.append(Finding(apdu=raw.hex().upper(), what=f"raised {type(exc).__name__}: {exc}"))
                    break
                if step is None:
                    break
                observed = step.exchange.observed
                problem = run.divergence.what if run.divergence is not None else "" if reset else _bad_answer(observed.sw, observed.data)
                if problem:
                    findings.append(Finding(apdu="(reset)" if reset else raw.hex().upper(), what=problem))
                    break
        finally:
            run.close()
        if findings:
            return findings
    return findings


def _bad_answer(sw: bytes, data: bytes) -> str:
    """What is wrong with an answer whatever the command was: a 6F00, a missing status word, more than a short response."""
    if sw == b"\x6f\x00":
        return "6F00: the SE broke on these bytes"
    if len(sw) != 2:
        return f"no status word ({sw.hex()})"
    if len(data) + 2 > _MAX_ANSWER:
        return f"{len(data)} data bytes: more than a short response holds"
    return ""


# --- vpcd framing --------------------------------------------------------------------------------------------------------


def _frames(rng: random.Random) -> tuple[bytes, int, bool]:
    """(bytes to write, whole APDU frames in them that must be answered, whether the stream then breaks)."""
    pick = rng.randrange(10)
    if pick == 0:  # a length that promises more than comes, then the link drops
        payload = rng.randbytes(rng.randrange(0, 40))
        return struct.pack(">H", len(payload) + rng.randrange(1, 600)) + payload, 0, True
    if pick == 1:  # half a length
        return rng.randbytes(1), 0, True
    if pick == 2:  # control bytes: known (no answer but the ATR) and unknown (ignored)
        control = rng.choice([0x00, 0x01, 0x02, 0x04, 0x03, 0x7F, 0xFF])
        return struct.pack(">H", 1) + bytes([control]), int(control == 0x04), False
    if pick == 3:  # an empty frame: 6700
        return struct.pack(">H", 0), 1, False
    if pick == 4:  # a long frame (up to vpcd's 16-bit limit)
        payload = rng.randbytes(rng.choice([300, 1024, 4096, 65535]))
        return struct.pack(">H", len(payload)) + payload, 1, False
    batch = [_one(rng) for _ in range(rng.randrange(1, 5))]
    batch = [b + b"\x00" if len(b) == 1 else b for b in batch]  # a 1-byte payload is a control message, not an APDU
    return b"".join(struct.pack(">H", len(b)) + b for b in batch), len(batch), False


def _read_frame(conn: socket.socket) -> bytes:
    head = _exact(conn, 2)
    return _exact(conn, struct.unpack(">H", head)[0])


def _exact(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise ConnectionError("serve-se closed the link")
        out += chunk
    return out


def fuzz_framing(*, count: int, seed: int) -> list[Finding]:
    """count random vpcd messages to serve-se's VpcdCard over loopback; findings where an answer is missing or malformed."""
    from mjpki.impl.isd_keys import TEST_KEYS
    from mjpki.impl.serve_se import Channel, SeStore, VpcdCard

    rng = random.Random(seed)
    findings: list[Finding] = []
    stop = threading.Event()
    log = logging.getLogger("mjpki.impl.serve_se")
    level = log.level
    log.setLevel(logging.ERROR)  # unknown control bytes are logged as warnings: thousands of them here
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    with tempfile.TemporaryDirectory(prefix="mjpki-fuzz-") as folder:
        store = SeStore.open(Path(folder) / "se.json", se_id="SE-FUZZ", keys=TEST_KEYS)
        card = VpcdCard(store, Channel(port=listener.getsockname()[1]), host="127.0.0.1", stop=stop, retry_seconds=0.01)
        card.start()
        conn: socket.socket | None = None
        try:
            sent = 0
            while sent < count and not findings:
                if conn is None:
                    conn, _ = listener.accept()
                    conn.settimeout(10)
                stream, answers, breaks = _frames(rng)
                sent += 1
                try:
                    conn.sendall(stream)
                    if breaks:
                        conn.close()  # serve-se must give up this link and connect again
                        conn = None
                        continue
                    for _ in range(answers):
                        answer = _read_frame(conn)
                        if len(answer) < 2 or len(answer) > _MAX_ANSWER:
                            findings.append(Finding(apdu=stream[:64].hex().upper(), what=f"answer of {len(answer)} bytes"))
                except (OSError, ConnectionError) as exc:
                    findings.append(Finding(apdu=stream[:64].hex().upper(), what=f"link failed: {exc}"))
            if not findings and not card.is_alive():
                findings.append(Finding(apdu="", what="the VpcdCard thread died"))
        finally:
            stop.set()
            if conn is not None:
                conn.close()
            listener.close()
            card.join(5)
            log.setLevel(level)
    return findings
