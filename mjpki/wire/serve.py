"""`mjpki-adapter/1` over HTTP: a Python adapter served at a URL (`mjpki serve-system`, `python -m mjpki.adapter_host --http`).

Each request is the body of a `POST /` (Content-Type application/json) and its reply the response body, status 200
whether the reply says ok or not (a transport-level failure is any other status). Every request but hello names a
`session`, a string the client chooses: each session has its own system, so concurrent runs do not mix. Requests are
served one at a time, on one thread, so an adapter need not be thread-safe.
"""

from __future__ import annotations

import json
import socket
import sys
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from mjpki.adapters.system import AdapterFactory
from mjpki.wire.host import Session
from mjpki.wire.protocol import MAX_LINE

__all__ = ["MAX_SESSIONS", "SystemServer", "make_server", "serve_http"]

MAX_SESSIONS = 64
"""Sessions kept at once; beyond that the least recently used one's system is closed (a run that vanished without close)."""


class SystemServer(HTTPServer):
    """An HTTP server holding one `Session` per session id."""

    def __init__(self, address: tuple[str, int], factory: AdapterFactory, *, name: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # an IPv6 address such as ::1
        super().__init__(address, _Handler)
        self.factory = factory
        self.adapter_name = name
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def handle_message(self, message: Any) -> dict[str, Any]:
        """The reply to one request, routed to its session."""
        if not isinstance(message, dict):
            return {"id": None, "ok": False, "error": "bad request: a request is a JSON object {id, op, session, ...}"}
        op, sid = message.get("op"), message.get("session")
        if op == "hello":
            return Session(self.factory, name=self.adapter_name).handle(message)
        if not isinstance(sid, str) or not sid or len(sid) > 200:
            return {"id": message.get("id"), "ok": False, "error": "bad request: every request but hello names a session (a string)"}
        session = self.sessions.get(sid)
        if session is None:
            if op != "new":
                return {"id": message.get("id"), "ok": False, "error": f"bad request: {op} before new in session {sid!r}"}
            session = self.sessions[sid] = Session(self.factory, name=self.adapter_name)
            while len(self.sessions) > MAX_SESSIONS:
                _, old = self.sessions.popitem(last=False)
                old.handle({"id": None, "op": "close"})
        self.sessions.move_to_end(sid)
        reply = session.handle(message)
        if op == "close":
            self.sessions.pop(sid, None)
        return reply


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
        for session in server.sessions.values():
            session.handle({"id": None, "op": "close"})
        server.server_close()
        sys.stdout.flush()
    return 0
