"""The HTTP transport: an adapter served at a URL, one `POST` per message (`mjpki run --url`).

Each system gets a session id of its own (random), sent with every request, so several runs can share one server.
Proxies from the environment are ignored: the suite talks to the URL it was given, nothing else. A call past its
deadline, a connection that fails, a status other than 200 or a reply that is not the pending request's fails the step;
the server, not being ours, is not killed, and the next system connects again.
"""

from __future__ import annotations

import itertools
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mjpki.adapters.system import AdapterError
from mjpki.escape import terminal
from mjpki.wire.client import WireFactory
from mjpki.wire.protocol import MAX_LINE, ProtocolError, parse_reply

__all__ = ["UrlError", "HttpTransport", "check_url", "http_factory"]


class UrlError(ValueError):
    """A --url that is not an http(s) URL with a host."""


def check_url(url: str) -> str:
    """The URL if it is http:// or https:// with a host; a UrlError with one line otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlError(f"--url {url!r}: give an http:// or https:// URL with a host, e.g. http://127.0.0.1:8765/")
    return url


class HttpTransport:
    """Requests as POSTs to one URL."""

    def __init__(self, url: str, *, name: str) -> None:
        self.url = check_url(url)
        self.name = name
        self._ids = itertools.count(1)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._failed: str | None = None

    @property
    def alive(self) -> bool:
        """False once a call failed at the transport level."""
        return self._failed is None

    def call(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """POST one request and read its reply, within timeout seconds."""
        op = message.get("op")
        ident = next(self._ids)
        body = json.dumps({"id": ident, **message}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        req = urllib.request.Request(self.url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=timeout) as response:
                raw = response.read(MAX_LINE + 1)
        except urllib.error.HTTPError as exc:
            raise self._fail(f"{op}: {self.url} answered HTTP {exc.code} {exc.reason}") from None
        except TimeoutError:
            raise self._fail(f"no answer to {op} within {timeout:g} s from {self.url} (the adapter hangs)") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise self._fail(f"no answer to {op} within {timeout:g} s from {self.url} (the adapter hangs)") from None
            raise self._fail(f"{op}: cannot reach {self.url}: {reason}") from None
        if len(raw) > MAX_LINE:
            raise self._fail(f"{op}: the reply is longer than {MAX_LINE} bytes")
        try:
            return parse_reply(raw, ident)
        except ProtocolError as exc:
            raise self._fail(f"{op}: {exc}") from None

    def _fail(self, what: str) -> AdapterError:
        self._failed = what
        return AdapterError(terminal(what))

    def shutdown(self) -> None:
        """Nothing to release: each request is a connection of its own."""
        self._failed = self._failed or "shut down"


def http_factory(url: str, *, timeout: float, start_timeout: float) -> WireFactory:
    """An AdapterFactory whose systems live behind url, one session id per system."""
    check_url(url)
    return WireFactory(
        lambda: HttpTransport(url, name=url), name=url, timeout=timeout, start_timeout=start_timeout,
        sessions=lambda: {"session": secrets.token_hex(12)},
    )  # fmt: skip
