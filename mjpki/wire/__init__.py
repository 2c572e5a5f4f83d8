"""The adapter wire protocol `mjpki-adapter/1`: a system under test in a process of its own, driven by JSON messages.

`protocol` defines the messages and their codecs, `schema` their JSON Schema, `host` the system side (a Python
adapter behind stdin/stdout or HTTP), `shim` and `http` the suite side (a `SystemAdapter` that talks to a child process
or to a URL). docs/adapters.md describes the protocol for implementers in any language.
"""

__all__: list[str] = []
