"""The PC/SC stack for tests: pcscd with vpcd readers and `mjpki serve-se`, started and stopped by PID.

`pcsc_stack()` (a context manager) reuses a stack `scripts/pcsc.sh start` left running (every reader present with a
card), or starts its own: it writes a reader configuration (mjpki.impl.serve_se.write_pcscd_config), runs
`pcscd --foreground -c DIR` and `mjpki serve-se --phones 5`, waits for the vpcd port and the cards, and on exit stops
both by PID and waits for pcscd to exit. A file lock keeps two test sessions from sharing the ports at once.

vpcd listens on every interface, so pcscd runs in a network namespace of its own with only loopback up (`unshare
--net`), and serve-se joins it (`nsenter --net`): no one on the network, and no other user, can put a card into a
reader (docs/security.md). Where namespaces cannot be made (no CAP_SYS_ADMIN) the stack runs in the host's network,
and `Stack.isolated` is False. DIR is made private (0700; refused if someone else owns it or can write to it).

Missing pieces (pyscard, pcscd, the vpcd driver, OpenSC) are reported by `missing()`; the tests skip with that reason,
except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mjpki.impl.serve_se import PHONE_READER_PREFIX, VPCD_DRIVER, VPCD_PORT, listening_ports, phone_se_id, private_dir, write_pcscd_config

__all__ = [
    "PHONES",
    "READER",
    "SPARE_PORT",
    "SPARE_READER",
    "Stack",
    "missing",
    "pcsc_stack",
    "pcscd_running",
    "in_ci",
    "require_stack",
    "expected_readers",
    "opensc_module",
    "can_isolate",
]

ROOT = Path(__file__).resolve().parent.parent
PHONES = 5
"""The phones of mjpki.scenarios.base_world(), each with its SE on a reader of its own."""
READER = "Virtual PCD 00 00"
"""The reader SE (caller: a reader), for the applet checks and OpenSC."""
SPARE_READER = "Virtual PCD 00 01"
"""Debian's second vpcd slot, which the stack leaves empty: a test serves an SE of its own there (`serve-se --port SPARE_PORT`)."""
SPARE_PORT = 35964
_LOCK = Path("/tmp/mjpki-pcsc-tests.lock")


def in_ci() -> bool:
    """CI=true: a missing PC/SC stack is a failure, not a skip."""
    return os.environ.get("CI", "").lower() == "true"


def require_stack(*, opensc: bool = False) -> None:
    """Return if the PC/SC stack is installed and pcscd runs or can be started here; else skip, or under CI=true fail."""
    why = "; ".join(missing(opensc=opensc))
    if not why and os.geteuid() != 0 and not pcscd_running():
        why = "pcscd is not running and only root can start it here: sudo bash scripts/pcsc.sh start"
    if not why:
        return
    why = f"the PC/SC stack is incomplete: {why} (as root: bash scripts/pcsc.sh install)"
    if in_ci():
        pytest.fail(why + " [CI=true: a failure, not a skip]")
    pytest.skip(why)


def expected_readers(phones: int = PHONES) -> list[str]:
    """The readers the stack must offer, each with a card."""
    out = [READER]
    for k in range(1, phones + 1):
        out += [f"{PHONE_READER_PREFIX}{phone_se_id(k)} 00 00", f"{PHONE_READER_PREFIX}{phone_se_id(k)} 00 01"]
    return out


def missing(*, opensc: bool = False) -> list[str]:
    """What the PC/SC tests need and this machine lacks (scripts/pcsc.sh install provides all of it, as root)."""
    out: list[str] = []
    try:
        import smartcard.scard  # noqa: F401
    except ImportError:
        out.append("pyscard (pip install -e '.[pcsc]'; needs swig and libpcsclite-dev)")
    if shutil.which("pcscd") is None:
        out.append("pcscd (apt-get install pcscd)")
    if not VPCD_DRIVER.exists():
        out.append("the vpcd driver (apt-get install vsmartcard-vpcd)")
    if opensc:
        for tool, package in (("opensc-tool", "opensc"), ("pkcs15-tool", "opensc"), ("pkcs11-tool", "opensc")):
            if shutil.which(tool) is None:
                out.append(f"{tool} (apt-get install {package})")
        if opensc_module() is None:
            out.append("the OpenSC PKCS#11 module (apt-get install opensc-pkcs11)")
    return out


def opensc_module() -> str | None:
    """Debian's opensc-pkcs11.so, if installed."""
    for path in ("/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so", "/usr/lib/aarch64-linux-gnu/pkcs11/opensc-pkcs11.so"):
        if Path(path).exists():
            return path
    return None


def _readers_with_cards() -> dict[str, bool] | None:
    """Reader name -> card present, or None if pcscd cannot be reached."""
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return None
    try:
        hresult, names = scard.SCardListReaders(context, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return {}
        states = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        hresult, states = scard.SCardGetStatusChange(context, 0, states)
        if hresult != scard.SCARD_S_SUCCESS:
            return {name: False for name in names}
        return {name: bool(state & scard.SCARD_STATE_PRESENT) for name, state, _atr in states}
    finally:
        scard.SCardReleaseContext(context)


def pcscd_running() -> list[int]:
    """PIDs of running pcscd processes (anyone's)."""
    return _pcscd_running()


def _pcscd_running() -> list[int]:
    found = subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def can_isolate() -> bool:
    """Whether pcscd can get a network namespace of its own here (unshare, nsenter, ip, and the privilege to unshare)."""
    if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip")):
        return False
    return subprocess.run(["unshare", "--net", "--", "true"], capture_output=True).returncode == 0


def _isolated(command: list[str]) -> list[str]:
    """command, run in a new network namespace with loopback up (exec all the way: the PID stays command's)."""
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]


def _in_network_of(pid: int, command: list[str]) -> list[str]:
    """command, run in the network namespace of process pid."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *command]


@dataclass(slots=True)
class Stack:
    """A running stack: the reader names, and the processes this test session started (None when reused)."""

    directory: Path
    pcscd: subprocess.Popen[bytes] | None = None
    serve_se: subprocess.Popen[bytes] | None = None
    isolated: bool = False
    """True when this session started pcscd in a network namespace of its own."""

    @property
    def reused(self) -> bool:
        """True when scripts/pcsc.sh (or someone) had started it."""
        return self.pcscd is None

    def log(self) -> str:
        """The tails of pcscd's and serve-se's logs, for failure messages."""
        out = []
        for name in ("pcscd.log", "serve-se.log"):
            path = self.directory / name
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(out)


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process (one we started, by PID) and wait for it to exit; SIGKILL if it does not."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@contextlib.contextmanager
def pcsc_stack(directory: Path, *, phones: int = PHONES) -> Iterator[Stack]:
    """Reuse a running stack with every reader and card, or start one in directory; stop what was started."""
    # O_NOFOLLOW and no truncation: a link planted at the fixed name in /tmp must not make us write somewhere else
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session's stack would share pcscd's socket and the vpcd ports
        wanted = expected_readers(phones)
        if _pcscd_running():
            seen = _readers_with_cards() or {}
            absent = [r for r in wanted if not seen.get(r)]
            if absent:
                raise RuntimeError(
                    f"a pcscd (pid {_pcscd_running()}) is running without these readers or their cards: {absent}. pcscd reads its "
                    "reader configuration only at start-up: stop it, or start the stack with `bash scripts/pcsc.sh start`."
                )
            yield Stack(directory=directory)
            return
        stack = Stack(directory=private_dir(directory), isolated=can_isolate())
        conf = write_pcscd_config(directory, phones)
        try:
            pcscd = ["pcscd", "--foreground", "-c", str(conf)]
            with open(directory / "pcscd.log", "wb") as log:
                stack.pcscd = subprocess.Popen(_isolated(pcscd) if stack.isolated else pcscd, stdout=log, stderr=subprocess.STDOUT)
            pid = stack.pcscd.pid

            def listening() -> bool:  # not by connecting: a connection to a vpcd port is a card being inserted
                return VPCD_PORT in listening_ports(pid) or stack.pcscd.poll() is not None  # type: ignore[union-attr]

            _wait(listening, 15, "pcscd's vpcd port")
            if stack.pcscd.poll() is not None:
                raise RuntimeError(f"pcscd exited with {stack.pcscd.returncode}\n{stack.log()}")
            command = [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(directory / "state"), "--phones", str(phones)]
            command = _in_network_of(pid, command) if stack.isolated else command
            with open(directory / "serve-se.log", "wb") as log:
                stack.serve_se = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

            def ready() -> bool:
                seen = _readers_with_cards() or {}
                return all(seen.get(r) for r in wanted) or stack.serve_se.poll() is not None  # type: ignore[union-attr]

            _wait(ready, 30, f"cards in {wanted}")
            if stack.serve_se.poll() is not None:
                raise RuntimeError(f"serve-se exited with {stack.serve_se.returncode}\n{stack.log()}")
            yield stack
        finally:
            _stop(stack.serve_se)
            _stop(stack.pcscd)  # and wait for it: a new pcscd must not start while this one holds the socket
