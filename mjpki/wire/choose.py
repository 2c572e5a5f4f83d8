"""Which system a run drives, from the options `mjpki run` and the pytest plugin share: --adapter, --shim, --url, --in-process.

A Python factory (`--adapter`) runs in a child process by default, behind `python -m mjpki.adapter_host`; `--in-process`
keeps it in the suite's process (same verdicts; no memory limit, and a hang leaves a thread behind). `--shim` runs any
program speaking mjpki-adapter/1 on stdin/stdout, `--url` talks to one over HTTP.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from mjpki.adapters.system import AdapterError, AdapterFactory
from mjpki.wire.client import WireFactory

__all__ = ["WIRE_GRACE", "ChosenSystem", "choose_system"]

WIRE_GRACE = 5.0
"""Seconds the suite's own step timeout adds to a wire adapter's deadline, which kills a hung child and fails the step."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChosenSystem:
    """The factory a run uses, its name, the suite-side timeout to pass to the lockstep, and the wire factory to shut down."""

    factory: AdapterFactory
    name: str
    timeout: float
    wire: WireFactory | None

    def start(self) -> str | None:
        """Start the adapter (its hello) before the run; why it does not start, or None. In process: nothing to do."""
        if self.wire is None:
            return None
        try:
            self.wire.hello()
        except AdapterError as exc:
            self.wire.shutdown()
            return f"the adapter does not start: {exc}"
        return None

    def shutdown(self) -> None:
        """End the adapter's child process (a shim or Python host), if any."""
        if self.wire is not None:
            self.wire.shutdown()


def choose_system(
    *, adapter: str | None, shim: str | None, url: str | None, in_process: bool, step_timeout: float, memory_mb: int, prefix: str = "--"
) -> ChosenSystem:
    """The system the options name; a ValueError with one line for options that do not go together or do not parse."""
    from mjpki.adapterspec import DEFAULT_ADAPTER, load_factory, preflight

    given = [f"{prefix}{o}" for o, v in (("adapter", adapter), ("shim", shim), ("url", url)) if v]
    if len(given) > 1:
        raise ValueError(f"give one of {prefix}adapter, {prefix}shim and {prefix}url, not {' and '.join(given)}")
    if in_process and (shim or url):
        raise ValueError(f"{prefix}in-process goes with {prefix}adapter (a Python factory), not with {prefix}shim or {prefix}url")
    t = step_timeout
    if t <= 0:
        raise ValueError(f"{prefix}step-timeout {t:g}: give a positive number of seconds")
    start = max(5 * t, 20.0)  # starting a child and building a system (keys, databases) take longer than a step
    wired = t + WIRE_GRACE
    if url:
        from mjpki.wire.http import http_factory

        wire = http_factory(url, timeout=t, start_timeout=start)
        return ChosenSystem(factory=wire, name=url, timeout=wired, wire=wire)
    from mjpki.wire.shim import python_host_command, python_host_env, shim_factory

    if shim:
        try:
            argv = shlex.split(shim)
        except ValueError as exc:
            raise ValueError(f"{prefix}shim {shim!r}: {exc}") from None
        if not argv:
            raise ValueError(f"{prefix}shim: give the command that starts the adapter, e.g. 'java -jar adapter.jar'")
        wire = shim_factory(argv, name=shim, timeout=t, start_timeout=start, memory_mb=memory_mb)
        return ChosenSystem(factory=wire, name=shim, timeout=wired, wire=wire)
    spec = adapter or DEFAULT_ADAPTER
    if in_process:
        made = load_factory(spec)
        problem = preflight(spec)  # in the child, mjpki.adapter_host asks it before its hello (see ChosenSystem.start)
        if problem:
            raise ValueError(problem)
        return ChosenSystem(factory=made, name=spec, timeout=t, wire=None)
    # Not imported here: the child imports it (a module that hangs or exits while imported must not take the suite along);
    # a MODULE:FACTORY that does not load ends the child's hello, which `start` reports as one line.
    wire = shim_factory(python_host_command(spec), name=spec, timeout=t, start_timeout=start, memory_mb=memory_mb, env=python_host_env())
    return ChosenSystem(factory=wire, name=spec, timeout=wired, wire=wire)
