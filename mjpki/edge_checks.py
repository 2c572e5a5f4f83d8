"""The check `coverage:edges`: the runs generated from the explored graph (mjpki.properties.edge_tour), in lockstep.

Every (rule, outcome code) pair reachable in the tour's scope is asked of the system at least once, and every kind of
deadline in the scope one minute before, at and one minute after it; the result says how many of the pairs the system
was actually put to (a divergence stops the tour) as a figure for the verdict.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mjpki.adapters.system import AdapterFactory
from mjpki.lockstep import Divergence, Lockstep
from mjpki.properties.edge_tour import TOUR_SCOPES, Tour, default_tour
from mjpki.properties.explorer import scope_world
from mjpki.spec.trace import Trace
from mjpki.spec.world import World

__all__ = ["CHECK_ID", "EdgeCheckResult", "run_edge_tour", "tour_world"]

CHECK_ID = "coverage:edges"


def tour_world() -> World:
    """The tour's world (one person, two phones), without exploring anything."""
    return scope_world(TOUR_SCOPES[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeCheckResult:
    """What the tour found on the system, and how much of the scope it asked."""

    runs: int
    steps: int
    exercised: frozenset[str]
    outcomes: dict[tuple[str, str], int]
    covered: frozenset[tuple[str, str]]
    """(action, the spec's outcome code) pairs of the scope that steps sent to the system had."""
    summary: str
    """The coverage figure, one line."""
    published_checks: int = 0
    """How often the system's own artefacts were judged in the tour's runs (mjpki.published)."""
    se_reads: int = 0
    """SEs the harness read over APDUs in the tour's runs (mjpki.se_read); 0: SE slots judged on self-report."""
    figures: dict[str, Any] = field(default_factory=dict)
    divergence: Divergence | None = None
    trace: Trace | None = None
    message: str = ""


def run_edge_tour(
    factory: AdapterFactory, *, timeout: float = 10.0, system_name: str = "system", tour: Tour | None = None
) -> EdgeCheckResult:
    """Run every tour run in lockstep on the system; stop at the first divergence."""
    tour = tour if tour is not None else default_tour()
    exercised: set[str] = set()
    outcomes: Counter[tuple[str, str]] = Counter()
    runs = steps = published = se_reads = 0
    divergence: Divergence | None = None
    trace: Trace | None = None
    message = ""
    for planned in tour.runs:
        run = Lockstep(factory, tour.world, timeout=timeout, system_name=system_name)
        try:
            for i, (action, code) in enumerate(zip(planned.actions, planned.codes, strict=True)):
                record = run.step(action)
                if record.expected.code != code:  # the tour was generated from the spec: a disagreement is a suite bug
                    message = f"{planned.purpose}, step {i}: the tour expects {code}, the spec gives {record.expected.code}"
                    break
                if run.broken:
                    break
            else:
                run.finish()  # the tour run's last state, judged on its artefacts
        finally:
            run.close()
        runs += 1
        published += run.published_checks
        se_reads += run.se_reads
        sent = [s for s in run.steps if s.note != "not sent to the system"]
        steps += len(run.steps)
        exercised.update(r for s in sent for r in s.reqs)
        outcomes.update((s.action.name, s.expected.code) for s in sent)
        if run.divergence is not None:
            divergence = run.divergence
            trace = run.trace(title=f"{CHECK_ID}: {planned.purpose}", source="explorer")
        if divergence is not None or message:
            break
    covered = frozenset(outcomes) & tour.pairs
    completed = runs - 1 if divergence is not None or message else runs  # the run that failed was not asked to its end
    figures = {
        "pairs_covered": len(covered),
        "pairs_reachable": len(tour.pairs),
        "scope": tour.scope_text(),
        "deadline_boundaries": [{"kind": b.kind, "minute": b.at, "probes": list(b.probes)} for b in tour.boundaries],
        "tour_runs": len(tour.runs),
        "tour_runs_completed": completed,
        "tour_seconds": round(tour.seconds, 3),
    }
    return EdgeCheckResult(
        runs=runs, steps=steps, exercised=frozenset(exercised), outcomes=dict(outcomes), covered=covered,
        summary=tour.summary(covered, completed), figures=figures, published_checks=published, divergence=divergence, trace=trace,
        message=message, se_reads=se_reads,
    )  # fmt: skip
