"""A loopback HTTP server for what a JPKI system publishes: its CRL distribution points and its OCSP responder (CA-4).

    with PublishServer(system) as server:        # system: anything with artefacts() and ocsp(request)
        server.points                            # PublicationPoints to build the system's CA with
        # GET  {base}/crl/<kind>/<profile>.crl  -> the CRL whose issuingDistributionPoint names this URL (DER)
        # GET  {base}/crl/<kind>/ca.crl         -> the CRL over the CA certificate of that kind
        # POST {base}/ocsp/<kind>/<profile>     -> OCSP (RFC 6960 A.1: body and answer DER)
        # GET  {base}/ocsp/<kind>/<profile>/<base64 of the DER request, URL-encoded>

The server knows nothing of the system's records: it serves the CRLs the system hands over, by the URL each names in
its issuingDistributionPoint, and passes OCSP requests on (nonces are the responder's to echo). It binds 127.0.0.1 unless
told otherwise. `ConfinedSystem` keeps a system on one thread of its own (SQLite connections are per thread), so the
suite and the server can both call it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import threading
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar

from cryptography import x509

from mjpki.adapters.artefacts import Artefacts
from mjpki.impl.ca import PublicationPoints
from mjpki.spec.actions import Action
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome

__all__ = ["Publisher", "PublishServer", "ConfinedSystem", "MAX_REQUEST_BYTES"]

MAX_REQUEST_BYTES = 64 * 1024
"""The largest OCSP request the server reads (a request for one certificate is a few hundred bytes)."""

T = TypeVar("T")


class Publisher(Protocol):
    """What the server needs of a system: its artefacts and its OCSP responder."""

    def artefacts(self) -> Artefacts:
        """The CA certificates, issued certificates and current CRLs, as DER."""
        ...

    def ocsp(self, request: bytes) -> bytes:
        """The DER OCSP response to a DER OCSP request."""
        ...


class ConfinedSystem:
    """A system built and called on one thread of its own, whichever thread calls it."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mjpki-confined")
        self._system = self._run(make)

    def _run(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()

    @property
    def system(self) -> Any:
        """The system itself (call it only through this wrapper's methods from other threads)."""
        return self._system

    def step(self, action: Action) -> Outcome:
        """The system's step, on its thread."""
        return self._run(lambda: self._system.step(action))

    def observation(self) -> Observation:
        """The system's observation, on its thread."""
        return self._run(self._system.observation)

    def artefacts(self) -> Artefacts:
        """The system's artefacts, on its thread."""
        return self._run(self._system.artefacts)

    def ocsp(self, request: bytes) -> bytes:
        """The system's OCSP answer, on its thread."""
        return self._run(lambda: self._system.ocsp(request))

    def se_apdu(self, phone: str, apdu: bytes) -> bytes:
        """The system's SE answer to one APDU, on its thread."""
        return self._run(lambda: self._system.se_apdu(phone, apdu))

    def close(self) -> None:
        """Close the system and stop its thread."""
        try:
            self._run(self._system.close)
        finally:
            self._pool.shutdown(wait=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the suite's output is its verdicts, not an access log."""

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, status: HTTPStatus, why: str) -> None:
        self._send(status, (why + "\n").encode(), "text/plain; charset=utf-8")

    def _ocsp(self, request: bytes) -> None:
        try:
            answer = self.server.publisher.ocsp(request)
        except Exception as exc:  # the system's failure is the client's 500, never the server's crash
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, f"the OCSP responder failed: {type(exc).__name__}")
            return
        self._send(HTTPStatus.OK, answer, "application/ocsp-response")

    def do_GET(self) -> None:
        """A CRL by its distribution point, or an OCSP request in the URL (RFC 6960 A.1)."""
        path = urllib.parse.urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if parts[0] == "crl" and len(parts) == 3:
            url = self.server.base_url + path
            try:
                crls = self.server.publisher.artefacts().crls
            except Exception as exc:
                self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, f"the system could not hand over its CRLs: {type(exc).__name__}")
                return
            for der in crls:
                if _idp_url(der) == url:
                    self._send(HTTPStatus.OK, der, "application/pkix-crl")
                    return
            self._fail(HTTPStatus.NOT_FOUND, "no CRL is published at this distribution point")
            return
        if parts[0] == "ocsp" and len(parts) >= 4:
            encoded = urllib.parse.unquote("/".join(parts[3:]))
            try:
                request = base64.b64decode(encoded, validate=True)
            except ValueError:
                self._fail(HTTPStatus.BAD_REQUEST, "the OCSP request in the URL is not base64")
                return
            self._ocsp(request)
            return
        self._fail(HTTPStatus.NOT_FOUND, "nothing is published here: try /crl/<kind>/<profile>.crl or /ocsp/<kind>/<profile>")

    def do_POST(self) -> None:
        """An OCSP request in the body (RFC 6960 A.1)."""
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        if parts[0] != "ocsp" or len(parts) != 3:
            self._fail(HTTPStatus.NOT_FOUND, "POST OCSP requests to /ocsp/<kind>/<profile>")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._fail(HTTPStatus.LENGTH_REQUIRED, "an OCSP POST needs a Content-Length")
            return
        if not 0 < length <= MAX_REQUEST_BYTES:
            self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"an OCSP request must be 1 to {MAX_REQUEST_BYTES} bytes")
            return
        self._ocsp(self.rfile.read(length))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    publisher: Publisher
    base_url: str


def _idp_url(der: bytes) -> str | None:
    """The URL a CRL's issuingDistributionPoint names, if any."""
    try:
        idp = x509.load_der_x509_crl(der).extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    return next((n.value for n in idp.full_name or () if isinstance(n, x509.UniformResourceIdentifier)), None)


class PublishServer:
    """The HTTP endpoints of one system's publication, on 127.0.0.1 (port 0: any free port) until closed."""

    def __init__(self, publisher: Publisher | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.publisher = publisher  # type: ignore[assignment]
        bound_host, bound_port = self._server.server_address[:2]
        self._server.base_url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="mjpki-publish", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """http://host:port of the server."""
        return self._server.base_url

    @property
    def points(self) -> PublicationPoints:
        """The URLs the system's certificates must name for this server to serve them."""
        return PublicationPoints.served(self.base_url)

    def serve(self, publisher: Publisher) -> None:
        """Serve this system (the server can start before the system exists: its URLs go into the CA)."""
        self._server.publisher = publisher

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PublishServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
