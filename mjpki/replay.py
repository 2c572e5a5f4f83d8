"""Replay a trace on a system under test, in lockstep with the spec, and say where they part.

A trace carries its world, so any adapter can re-run it: `replay_on_adapter` sends the trace's
actions one by one through `mjpki.lockstep.Lockstep` and returns the new run as a trace (with
the system's outcomes), the first divergence, and whether that is the divergence the trace
recorded (same step). The spec's outcomes are recomputed, not read from the trace; steps where
the spec now gives another outcome than the trace recorded are listed as `spec_changed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mjpki.adapters.system import AdapterFactory
from mjpki.lockstep import Divergence, Lockstep
from mjpki.mermaid import divergence_of
from mjpki.spec.trace import Trace

__all__ = ["ReplayResult", "recorded_divergence", "replay_on_adapter"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """What replaying a trace on a system gave."""

    trace: Trace
    """The new run: the trace's actions with the spec's outcomes and the system's."""
    divergence: Divergence | None
    """Where the system first parted from the spec, or None if it agreed at every step."""
    recorded_index: int | None
    """The step at which the replayed trace had recorded a divergence (-1: before the first step), or None."""
    spec_changed: tuple[int, ...] = ()
    """Steps where the spec now expects another outcome than the trace recorded (the spec moved on)."""

    @property
    def agrees(self) -> bool:
        """True if the system gave the spec's outcome at every step and broke no invariant."""
        return self.divergence is None

    @property
    def reproduces(self) -> bool:
        """True if the trace recorded a divergence and the system diverges again at that same step."""
        return self.divergence is not None and self.recorded_index is not None and self.divergence.index == self.recorded_index


def recorded_divergence(trace: Trace) -> int | None:
    """The step at which a trace records its system parting from the spec (-1: before the first step), if any."""
    found = divergence_of(trace)
    return None if found is None else found[0]


def replay_on_adapter(trace: Trace, factory: AdapterFactory, *, timeout: float = 10.0, system_name: str = "") -> ReplayResult:
    """Re-run a trace's actions on the system the factory builds, in lockstep with the spec."""
    run = Lockstep(factory, trace.world, timeout=timeout, system_name=system_name)
    try:
        for s in trace.steps:
            run.step(s.action)  # after a divergence Lockstep records the spec alone, so the new trace keeps every step
    finally:
        run.close()
    title = f"replay of {trace.title}" if trace.title else "replay"
    new = run.trace(title=title, source=trace.source)
    changed = tuple(i for i, (old, now) in enumerate(zip(trace.steps, new.steps, strict=True)) if old.expected != now.expected)
    return ReplayResult(trace=new, divergence=run.divergence, recorded_index=recorded_divergence(trace), spec_changed=changed)
