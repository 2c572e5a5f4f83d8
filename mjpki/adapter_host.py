"""Run a Python adapter in a process of its own, speaking `mjpki-adapter/1`: what `mjpki run --adapter` starts.

    python -m mjpki.adapter_host MODULE:FACTORY               # JSON lines on stdin/stdout (the shim transport)
    python -m mjpki.adapter_host MODULE:FACTORY --http PORT   # the same messages over HTTP on 127.0.0.1:PORT

A factory that cannot be loaded, or whose module's preflight() says it cannot run here (mjpki.adapterspec), is one line on
stderr and exit 2, before the first message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mjpki.escape import terminal

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Load the factory and serve it on stdin/stdout, or over HTTP with --http."""
    parser = argparse.ArgumentParser(prog="python -m mjpki.adapter_host", description=__doc__.splitlines()[0])
    parser.add_argument("adapter", metavar="MODULE:FACTORY", help="the adapter factory, e.g. mjpki.adapters.reference:factory")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve over HTTP on this port (0: a free one) instead of stdin/stdout")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind with --http (default: %(default)s)")
    args = parser.parse_args(argv)
    from mjpki.adapterspec import AdapterSpecError, load_factory, preflight

    try:
        factory = load_factory(args.adapter)
        problem = preflight(args.adapter)
    except AdapterSpecError as exc:
        problem = str(exc)
    if problem:
        print(f"mjpki.adapter_host: {terminal(problem)}", file=sys.stderr)
        return 2
    if args.http is not None:
        from mjpki.wire.serve import serve_http

        try:
            return serve_http(factory, name=args.adapter, host=args.host, port=args.http)
        except OSError as exc:
            print(f"mjpki.adapter_host: cannot listen on {args.host}:{args.http}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    from mjpki.wire.host import serve_stdio

    return serve_stdio(factory, name=args.adapter)


if __name__ == "__main__":
    raise SystemExit(main())
