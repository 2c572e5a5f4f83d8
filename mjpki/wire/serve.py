"""`mjpki-adapter/1` over HTTP: a Python adapter served at a URL (`mjpki serve-system`, `python -m mjpki.adapter_host --http`).

Each request is the body of a `POST /` (Content-Type application/json) and its reply the response body, status 200
whether the reply says ok or not (a transport-level failure is any other status). Every request but hello names a
`session`, a string the client chooses: each session has its own system, so concurrent runs do not mix. Sessions are
served at the same time (a thread per request, at most MAX_CONCURRENT at once), so one run's slow system build or hung
step does not hold up another's. Each session's requests are served one at a time on a thread of the session's own,
the one that built its system, so a system need not be thread-safe nor usable from other threads (SQLite connections are
not); systems of different sessions run side by side.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mjpki.adapters.system import AdapterFactory
from mjpki.wire.host import Session
from mjpki.wire.protocol import MAX_LINE

__all__ = ["MAX_CONCURRENT", "MAX_SESSIONS", "SystemServer", "make_server", "serve_http"]

MAX_SESSIONS = 64
"""Sessions kept at once; beyond that the least recently used one's system is closed (a run that vanished without close)."""
MAX_CONCURRENT = 16
"""Requests handled at once; a further connection waits in the listen queue until one is answered."""
_CLOSE_WAIT = 5.0
"""Seconds the server, when it stops, waits for a session's request in progress before it closes the others."""


class _Entry:
    """A session and its own thread, which serves its requests one at a time, in order, until the session ends."""

    __slots__ = ("_ended", "_inbox", "_lock", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self._inbox: queue.SimpleQueue[tuple[Any, Future[dict[str, Any]]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ended = False
        # A daemon thread: a system that hangs in a request does not keep the server's process alive when it stops.
        threading.Thread(target=self._serve, name="mjpki-serve-session", daemon=True).start()

    def _serve(self) -> None:
        while (item := self._inbox.get()) is not None:
            message, future = item
            try:
                future.set_result(self.session.handle(message))  # handle() answers every failure of the adapter's
            except BaseException as exc:  # so that the request's thread is answered whatever happens
                future.set_exception(exc)

    def submit(self, message: Any) -> Future[dict[str, Any]]:
        """Queue a request for the session's thread; its reply when answered (at once, an error, if the session ended)."""
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            if not self._ended:
                self._inbox.put((message, future))
                return future
        ident = message.get("id") if isinstance(message, dict) else None
        future.set_result({"id": ident, "ok": False, "error": "bad request: this session was closed (send new to start another)"})
        return future

    def end(self) -> Future[dict[str, Any]]:
        """Close the session's system after its queued requests and end its thread; the close's reply (done at once if ended)."""
        closed = self.submit({"id": None, "op": "close"})
        with self._lock:
            if not self._ended:
                self._ended = True
                self._inbox.put(None)
        return closed

    def close(self, *, wait: float | None = None) -> bool:
        """end(), waiting up to wait seconds (None: as long as it takes) for the close; False if it was not done by then."""
        closed = self.end()
        try:
            closed.result(timeout=wait)
        except TimeoutError:
            return False
        return True


class SystemServer(ThreadingHTTPServer):
    """An HTTP server holding one `Session` per session id, serving different sessions at the same time."""

    daemon_threads = True  # a request stuck in a hung system does not keep the server's process alive when it stops

    def __init__(self, address: tuple[str, int], factory: AdapterFactory, *, name: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # an IPv6 address such as ::1
        super().__init__(address, _Handler)
        self.factory = factory
        self.adapter_name = name
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._entries_lock = threading.Lock()
        """Guards _entries only (held for dictionary updates, never while a system works)."""
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    @property
    def sessions(self) -> dict[str, Session]:
        """The open sessions by id, least recently used first (a copy)."""
        with self._entries_lock:
            return {sid: e.session for sid, e in self._entries.items()}

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread for the request once fewer than MAX_CONCURRENT are in progress (the accept loop waits till then)."""
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one request on its thread, then free its place."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_message(self, message: Any) -> dict[str, Any]:
        """The reply to one request, routed to its session."""
        if not isinstance(message, dict):
            return {"id": None, "ok": False, "error": "bad request: a request is a JSON object {id, op, session, ...}"}
        op, sid = message.get("op"), message.get("session")
        if op == "hello":
            return Session(self.factory, name=self.adapter_name).handle(message)
        if not isinstance(sid, str) or not sid or len(sid) > 200:
            return {"id": message.get("id"), "ok": False, "error": "bad request: every request but hello names a session (a string)"}
        evicted: list[_Entry] = []
        with self._entries_lock:
            entry = self._entries.get(sid)
            if entry is None:
                if op != "new":
                    return {"id": message.get("id"), "ok": False, "error": f"bad request: {op} before new in session {sid!r}"}
                entry = self._entries[sid] = _Entry(Session(self.factory, name=self.adapter_name))
                while len(self._entries) > MAX_SESSIONS:
                    evicted.append(self._entries.popitem(last=False)[1])
            self._entries.move_to_end(sid)
        for old in evicted:
            old.end()  # queued on its own thread: a session whose system hangs does not hold this request up
        reply = entry.submit(message).result()
        if op == "close":
            with self._entries_lock:
                if self._entries.get(sid) is entry:
                    del self._entries[sid]
            entry.end()  # its thread ends (the system is closed already: a second close releases nothing)
        return reply

    def close_sessions(self) -> None:
        """Close every session's system (waiting a little for a request in progress; a hung one is left to the process's end)."""
        with self._entries_lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.close(wait=_CLOSE_WAIT)


class _Handler(BaseHTTPRequestHandler):
    server: SystemServer
    server_version = "mjpki-serve-system"

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, {"error": "a request needs a Content-Length"})
            return
        if length < 0 or length > MAX_LINE:
            self._send(413, {"error": f"a request is at most {MAX_LINE} bytes"})
            return
        body = self.rfile.read(length)
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self._send(200, {"id": None, "ok": False, "error": f"bad request: not JSON ({exc})"})
            return
        self._send(200, self.server.handle_message(message))

    def do_GET(self) -> None:
        self._send(405, {"error": "POST one mjpki-adapter/1 request as JSON"})

    def _send(self, status: int, reply: dict[str, Any]) -> None:
        body = json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown the output of a run."""


def make_server(factory: AdapterFactory, *, name: str, host: str = "127.0.0.1", port: int = 0) -> SystemServer:
    """A server bound to host:port (port 0: a free one; `server.server_address` says which)."""
    return SystemServer((host, port), factory, name=name)


def serve_http(factory: AdapterFactory, *, name: str, host: str = "127.0.0.1", port: int = 0) -> int:
    """Serve until interrupted; the first line on stdout is the URL (with the port a port 0 picked)."""
    server = make_server(factory, name=name, host=host, port=port)
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    print(f"serving mjpki-adapter/1 for {name} on http://{shown}:{bound_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close_sessions()
        server.server_close()
        sys.stdout.flush()
    return 0
