"""The shim transport: an adapter in a child process, one JSON line per message on its stdin and stdout.

The child runs in a process group of its own with a memory limit; it dies with the suite (parent-death signal and an
atexit hook). Every call has a deadline. A call past its deadline, a child that exits or is killed, a line that is not a
reply to the pending request or longer than `MAX_LINE`: the group is killed and the call fails with what happened (exit
status or signal) and the tail of the child's stderr, escaped. The next system starts a fresh child.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import itertools
import os
import resource
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from mjpki.adapters.system import AdapterError
from mjpki.escape import terminal
from mjpki.wire.client import WireFactory
from mjpki.wire.protocol import MAX_LINE, ProtocolError, dumps, parse_reply

__all__ = ["DEFAULT_MEMORY_MB", "STDERR_TAIL", "ChildTransport", "shim_factory", "python_host_command", "python_host_env"]

DEFAULT_MEMORY_MB = 4096
"""The child's data-segment limit (RLIMIT_DATA), in MiB: enough for a JVM or Node.js, small enough to stop a runaway."""
STDERR_TAIL = 2000
"""How much of the end of the child's stderr a failure quotes, in bytes."""

_LIVE: weakref.WeakSet[ChildTransport] = weakref.WeakSet()
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mjpki-spawn")


@atexit.register
def _kill_all() -> None:
    for transport in list(_LIVE):
        transport.shutdown()


def _libc_prctl() -> Any:
    """libc's prctl, loaded here in the parent: the child, between fork and exec, must not import or load anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _limits(memory_mb: int) -> Any:
    limit = memory_mb * 1024 * 1024

    def apply() -> None:  # runs in the child between fork and exec: no imports, no allocation worth the name
        if limit > 0:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the child dies with the suite, even on SIGKILL

    return apply


class ChildTransport:
    """One child process speaking mjpki-adapter/1 on stdin/stdout."""

    def __init__(self, argv: Sequence[str], *, name: str, memory_mb: int = DEFAULT_MEMORY_MB, env: dict[str, str] | None = None) -> None:
        self.name = name
        self._ids = itertools.count(1)
        self._buffer = bytearray()
        self._stderr = bytearray()
        self._failed: str | None = None
        try:
            # Spawned from one long-lived thread: the parent-death signal fires when the spawning *thread* ends, and the
            # lockstep calls factories from worker threads that end with each run.
            self._proc = _SPAWNER.submit(
                subprocess.Popen, list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True, preexec_fn=_limits(memory_mb), env=env, close_fds=True,
            ).result()  # fmt: skip
        except OSError as exc:
            raise AdapterError(f"cannot start the adapter {terminal(shlex.join(argv))}: {exc.strerror or exc}") from None
        assert self._proc.stdin is not None and self._proc.stdout is not None and self._proc.stderr is not None
        os.set_blocking(self._proc.stdin.fileno(), False)
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._readable = selectors.DefaultSelector()
        """Waits for the child's stdout; one for the transport's life, not one per call (three system calls each)."""
        self._readable.register(self._proc.stdout, selectors.EVENT_READ)
        self._drain = threading.Thread(target=self._read_stderr, name="mjpki-shim-stderr", daemon=True)
        self._drain.start()
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        """The child's process id (also its process group's)."""
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """False once a call failed or the child ended."""
        return self._failed is None and self._proc.poll() is None

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            self._stderr += chunk
            if len(self._stderr) > 4 * STDERR_TAIL:
                del self._stderr[: -STDERR_TAIL]

    def call(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send one request and wait at most timeout seconds for its reply line."""
        op = message.get("op")
        if self._failed is not None:
            raise AdapterError(f"{op}: the adapter process has already ended ({self._failed})")
        if self._proc.poll() is not None:  # it ended after its last reply
            raise self._fail(f"the adapter process ended before {op}")
        ident = next(self._ids)
        deadline = time.monotonic() + timeout
        self._write(dumps({"id": ident, **message}), op, deadline, timeout)
        line = self._read_line(op, deadline, timeout)
        try:
            return parse_reply(line, ident)
        except ProtocolError as exc:
            raise self._fail(f"{op}: {exc}") from None

    def _write(self, data: bytes, op: object, deadline: float, timeout: float) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        view = memoryview(data)
        try:  # a pipe with room takes the request at once, with no selector to wait on
            view = view[os.write(stdin.fileno(), view) :]
        except BlockingIOError:
            pass
        except OSError:
            raise self._fail_ended(op) from None
        if not view:
            return
        with selectors.DefaultSelector() as sel:
            sel.register(stdin, selectors.EVENT_WRITE)
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"{op}: the adapter did not read its request within {timeout:g} s")
                if not sel.select(min(left, 0.5)):
                    if self._proc.poll() is not None:
                        raise self._fail_ended(op)
                    continue
                try:
                    n = os.write(stdin.fileno(), view)
                except BlockingIOError:
                    continue
                except OSError:
                    raise self._fail_ended(op) from None
                view = view[n:]

    def _read_line(self, op: object, deadline: float, timeout: float) -> bytes:
        stdout = self._proc.stdout
        assert stdout is not None
        sel = self._readable
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if line.strip():
                    return line
                continue
            if len(self._buffer) > MAX_LINE:
                raise self._fail(f"{op}: the adapter wrote more than {MAX_LINE} bytes without ending the line")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"no answer to {op} within {timeout:g} s (the adapter hangs)")
            if not sel.select(min(left, 0.5)):
                continue
            try:
                chunk = os.read(stdout.fileno(), 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise self._fail_ended(op)
            self._buffer += chunk

    def _fail_ended(self, op: object) -> AdapterError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=2)  # EOF on stdout comes a moment before the exit status
        return self._fail(f"the adapter process ended during {op}")

    def _fail(self, what: str) -> AdapterError:
        """Kill the child's group; the AdapterError to raise: what happened, its exit, the tail of its stderr."""
        self._kill()
        status = self._status()
        self._failed = f"{what}; {status}"
        tail = bytes(self._stderr[-STDERR_TAIL:]).decode("utf-8", "replace").strip()
        text = f"{what}; {status}"
        if tail:
            text += f"; its stderr ends: {tail}"
        return AdapterError(terminal(text))

    def _status(self) -> str:
        code = self._proc.poll()
        if code is None:
            return "it is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"it was killed by {name}"
        return f"it exited with status {code}"

    def _kill(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)  # whatever the child left in its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        self._drain.join(timeout=1)

    def shutdown(self) -> None:
        """Close its stdin (a well-behaved adapter exits), give it a moment, then kill its group; idempotent."""
        _LIVE.discard(self)
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
        self._kill()
        with contextlib.suppress(OSError, ValueError, KeyError):
            self._readable.close()
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        if self._failed is None:
            self._failed = "shut down"


def python_host_command(adapter: str) -> list[str]:
    """The command that runs a Python factory behind the protocol: this interpreter, `-m mjpki.adapter_host`."""
    return [sys.executable, "-m", "mjpki.adapter_host", adapter]


def python_host_env() -> dict[str, str]:
    """The environment of a Python host: this one, with this process's module path, so MODULE names what it names here."""
    path = [p if p else os.getcwd() for p in sys.path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


def shim_factory(
    argv: Sequence[str],
    *,
    name: str,
    timeout: float,
    start_timeout: float,
    memory_mb: int = DEFAULT_MEMORY_MB,
    env: dict[str, str] | None = None,
) -> WireFactory:
    """An AdapterFactory whose systems live in a child running argv (one child at a time, restarted after a failure)."""
    return WireFactory(
        lambda: ChildTransport(argv, name=name, memory_mb=memory_mb, env=env), name=name, timeout=timeout, start_timeout=start_timeout,
        sessions=dict,
    )  # fmt: skip
