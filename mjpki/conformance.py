"""The conformance run: every check on one system under test, a verdict per requirement, artefacts per failure.

A check is either a named scenario replayed in lockstep with the spec, or a Hypothesis
lockstep search in one world (default variants, or the other settings of every variant).
`run_conformance` runs them all; `mjpki run` and the pytest plugin are two front ends to
the same functions, so their verdicts cannot differ.

    result = run_conformance(load_factory("mjpki.adapters.reference:factory"), profile="quick", out_dir=Path("out"))
    print(render_summary(result))
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mjpki.adapters.system import AdapterFactory
from mjpki.edge_checks import CHECK_ID as EDGE_CHECK_ID
from mjpki.edge_checks import run_edge_tour, tour_world
from mjpki.known_failures import KnownFailures
from mjpki.lockstep import Divergence, Lockstep, SearchStopped, lockstep_machine, write_failure
from mjpki.minimise import minimise
from mjpki.parallel import SystemRecipe
from mjpki.scenarios import SCENARIOS, Scenario, base_world, boundary_world
from mjpki.spec.assumptions import ASSUMPTIONS
from mjpki.spec.requirements import REQUIREMENTS, conformance_ids
from mjpki.spec.rules import RULES
from mjpki.spec.trace import Trace
from mjpki.spec.world import World

__all__ = [
    "PROFILES",
    "RunProfile",
    "Check",
    "CheckResult",
    "ShrinkReport",
    "ConformanceResult",
    "all_checks",
    "run_check",
    "run_conformance",
    "unused_known",
    "verdicts",
    "judged_on",
    "result_json",
    "coverage_json",
    "RESULT_FORMAT",
    "HYPOTHESIS_SHRINK_SHARE",
]

RESULT_FORMAT = "mjpki-result/1"

HYPOTHESIS_SHRINK_SHARE = 0.25
"""The part of a profile's shrink budget Hypothesis's own shrinking may use; trace reduction (mjpki.minimise) has the rest.

Hypothesis shrinks the draws, and a draw that indexes a list the state decides cannot be deleted, so its shrinking stalls
at 1 to 21 times the shortest run; the trace reducer deletes steps by the persons and phones they name and reaches the
explorer's shortest run of every seeded bug in under a second (issue 15, "Shrinking"). On the reference a replay costs
about a second (new keys, a new database): there Hypothesis took a 40-step run nowhere in 5 s, where the reducer took a
39-step run to 9 steps in 22 s with 16 of its 17 replays kept. So Hypothesis goes first with a quarter (its pass also
simplifies the values drawn), the reducer has whatever time is left.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunProfile:
    """How hard the stateful search tries: Hypothesis examples per world and steps per example."""

    name: str
    examples: int
    steps: int
    shrink: bool
    """Shrink a failing run to a short one (slower, much more readable traces)."""
    doc: str
    shrink_seconds: float = 30.0
    """How long shrinking may take once a failure is found: the shortest run by then is the one reported."""


PROFILES: dict[str, RunProfile] = {
    p.name: p
    for p in (
        RunProfile(name="quick", examples=30, steps=40, shrink=True, shrink_seconds=10, doc="seconds: a smoke test while developing"),
        RunProfile(
            name="ci", examples=150, steps=50, shrink=True, shrink_seconds=30, doc="a minute or two on the reference: for every commit"
        ),
        RunProfile(
            name="thorough", examples=2000, steps=100, shrink=True, shrink_seconds=180, doc="half an hour and more: before a release"
        ),
    )
}

STATEFUL_WORLDS: dict[str, Callable[[], World]] = {
    "default": base_world,
    "variants": lambda: base_world(
        factory_reset_wipes_se=True,
        remote_deletion_removes_applet=True,
        cascade_delay_minutes=0,
        signing_pin_tries=3,
        auth_pin_tries=5,
        phone_linkage="per_kind",
        card_found_fresh_expiry=True,
    ),
    "linkage-either": lambda: boundary_world(phone_linkage="either"),
}
"""The worlds of the stateful checks: the variant defaults, every variant in another setting, and the third setting of
phone_linkage (ASM-PHONE-LINKAGE: signing only as launched, per kind in "variants", either card certificate here). The
last has a phone at every eligibility and biometrics boundary (mjpki.scenarios.boundary_world); the first two keep
base_world's five phones, which the PC/SC setup serves an SE each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One conformance check: a scenario or a stateful search in one world."""

    id: str
    kind: str
    """"scenario", "edges" (the runs generated from the explored graph: mjpki.edge_checks) or "stateful"."""
    title: str
    world: World
    scenario: Scenario | None = None


def all_checks() -> tuple[Check, ...]:
    """Every check, scenarios first (they are short and name what they test), then the stateful searches."""
    out = [Check(id=f"scenario:{sc.id}", kind="scenario", title=sc.title, world=sc.world, scenario=sc) for sc in SCENARIOS.values()]
    # The transition tour after the scenarios: deterministic, a few seconds, and it asks every outcome of its scope.
    title = "runs generated from the explored graph: every (rule, outcome) pair and deadline boundary of a small scope"
    out.append(Check(id=EDGE_CHECK_ID, kind="edges", title=title, world=tour_world()))
    out += [
        Check(id=f"stateful:{name}", kind="stateful", title=f"generated lockstep runs, {name} variant settings", world=make())
        for name, make in STATEFUL_WORLDS.items()
    ]
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShrinkReport:
    """A failing search's first failure and its shrinking: steps as found, after Hypothesis, after trace reduction, and the time."""

    found_after: float
    """Seconds from the check's start to the first failing run."""
    found_steps: int
    hypothesis_steps: int
    """Steps after Hypothesis's own shrinking (within HYPOTHESIS_SHRINK_SHARE of the budget)."""
    shrunk_steps: int
    """Steps of the run reported: after trace reduction (mjpki.minimise)."""
    shrink_seconds: float
    """Both together, from the first failure to the run reported."""
    budget: float
    stopped: bool
    """Shrinking was cut off by the budget (the trace is the shortest found by then, not a minimum)."""
    reduce_seconds: float = 0.0
    reduce_replays: int = 0
    """Candidate runs the trace reducer replayed on the system (those the spec let through)."""
    reduce_stopped: bool = False
    """Trace reduction was cut off by the budget (stopped is then true as well)."""

    def __str__(self) -> str:
        how = "done"
        if self.reduce_stopped:
            how = f"budget of {self.budget:g} s spent"
        elif self.stopped:
            how = f"Hypothesis's part of the {self.budget:g} s budget spent, trace reduction done"
        return (
            f"first failure after {self.found_after:.1f} s ({self.found_steps} steps); "
            f"shrunk to {self.shrunk_steps} steps in {self.shrink_seconds:.1f} s ({how}): "
            f"{self.hypothesis_steps} after Hypothesis's shrinking, {self.shrunk_steps} after trace reduction "
            f"({self.reduce_replays} replays in {self.reduce_seconds:.1f} s)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """What one check found on the system."""

    check: Check
    status: str
    """"pass", "fail" (a new failure), "known" (a failure the known-failures file lists) or "error" (the suite itself broke)."""
    exercised: frozenset[str]
    """Requirement IDs the steps sent to the system touched."""
    runs: int
    steps: int
    seconds: float
    divergence: Divergence | None = None
    trace: Trace | None = None
    artefacts: tuple[Path, ...] = ()
    known_reason: str = ""
    message: str = ""
    outcomes: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(action, the spec's outcome code) -> steps sent to the system with it: the spec's actions and refusals exercised."""
    shrink: ShrinkReport | None = None
    """For a failing search: the run as found, and how far shrinking got within the profile's budget."""
    note: str = ""
    """A figure the check reports besides its verdict (coverage:edges: the pairs and deadline boundaries it asked)."""
    figures: Mapping[str, Any] = field(default_factory=dict)
    """The same as data, for result.json."""
    artefact_judgements: int = 0
    """How often the system's own artefacts (CRLs, OCSP, certificates) were judged (mjpki.published); 0: self-report only."""
    se_reads: int = 0
    """How many SEs the harness read over APDUs (mjpki.se_read); 0: the SE slots were judged on self-report."""

    @property
    def failed(self) -> bool:
        """True for a failure, known or new."""
        return self.status in ("fail", "known")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformanceResult:
    """Every check's result, the per-requirement verdicts, and the known failures that did not occur."""

    system: str
    profile: str
    started: str
    seconds: float
    results: tuple[CheckResult, ...]
    verdicts: dict[str, str]
    unused_known: tuple[str, ...] = ()

    @property
    def new_failures(self) -> tuple[CheckResult, ...]:
        """Failures not in the known-failures file, and errors of the suite."""
        return tuple(r for r in self.results if r.status in ("fail", "error"))

    @property
    def passed(self) -> bool:
        """True if nothing failed that the known-failures file does not list."""
        return not self.new_failures


Progress = Callable[[str], None]


def _artefacts(trace: Trace, out_dir: Path | None, name: str, divergence: Divergence) -> tuple[Path, ...]:
    """The failing run's trace, step table and report, written to out_dir (nothing without one)."""
    return () if out_dir is None else write_failure(trace, divergence, out_dir, name)


def _exercised(run: Lockstep) -> set[str]:
    return {r for s in run.steps if s.note != "not sent to the system" for r in s.reqs}


def _outcomes(run: Lockstep) -> Counter[tuple[str, str]]:
    # The spec's code, not the system's: coverage says which of the spec's outcomes the system was put to.
    return Counter((s.action.name, s.expected.code) for s in run.steps if s.note != "not sent to the system")


def _scenario_check(check: Check, factory: AdapterFactory, *, timeout: float, system_name: str) -> tuple[Lockstep, str]:
    """Replay the scenario on the spec and the system; the spec must give what the scenario expects."""
    assert check.scenario is not None
    run = Lockstep(factory, check.world, timeout=timeout, system_name=system_name)
    problem = ""
    try:
        for i, e in enumerate(check.scenario.steps):
            record = run.step(e.action)
            if record.expected.code != e.code:  # the suite's own scenario disagrees with the spec: a suite bug
                problem = f"step {i}: the scenario expects {e.code}, the spec gives {record.expected.code}"
                break
            if run.broken:
                break
        else:
            run.finish()  # the scenario's last state, judged on its artefacts
    finally:
        run.close()
    return run, problem


def run_check(
    check: Check,
    factory: AdapterFactory,
    *,
    profile: RunProfile,
    out_dir: Path | None = None,
    known: KnownFailures | None = None,
    timeout: float = 10.0,
    system_name: str = "system",
    database_dir: Path | None = None,
    progress: Progress | None = None,
) -> CheckResult:
    """Run one check on the system and judge it (known failures included)."""
    start = time.monotonic()
    exercised: set[str] = set()
    outcomes: Counter[tuple[str, str]] = Counter()
    runs = steps = 0
    divergence: Divergence | None = None
    trace: Trace | None = None
    shrink: ShrinkReport | None = None
    message = note = ""
    figures: dict[str, Any] = {}
    judged = [0]  # artefact judgements, summed over the check's runs
    se_read = [0]  # SEs read over APDUs, summed over the check's runs
    if check.kind == "edges":
        tour = run_edge_tour(factory, timeout=timeout, system_name=system_name)
        exercised, outcomes, runs, steps = set(tour.exercised), Counter(tour.outcomes), tour.runs, tour.steps
        divergence, trace, message, note, figures = tour.divergence, tour.trace, tour.message, tour.summary, tour.figures
        judged[0] = tour.published_checks
        se_read[0] = tour.se_reads
    elif check.kind == "scenario":
        run, message = _scenario_check(check, factory, timeout=timeout, system_name=system_name)
        exercised = _exercised(run)
        outcomes = _outcomes(run)
        runs, steps = 1, len(run.steps)
        judged[0] = run.published_checks
        se_read[0] = run.se_reads
        divergence = run.divergence
        if divergence is not None:
            trace = run.trace(title=f"{check.id}: {check.title}", source="scenario")
    else:
        found: list[tuple[Trace, Divergence]] = []
        last_report = [time.monotonic()]
        first_at: list[float] = []

        def diverged(trace: Trace, d: Divergence) -> None:
            # Report the first failure at once, with the run as found (issue 15, part 3); shrinking comes after, bounded.
            found.append((trace, d))
            if len(found) == 1:
                first_at.append(time.monotonic())
                if out_dir is not None:
                    _artefacts(trace, out_dir, check.id.replace(":", "-"), d)
                if progress is not None:
                    progress(
                        f"  {check.id}: FAILS after {first_at[0] - start:.1f} s ({len(trace.steps)} steps): {d}\n"
                        f"  {check.id}: shrinking, at most {profile.shrink_seconds:g} s"
                    )
            elif progress is not None and len(trace.steps) < min(len(t.steps) for t, _d in found[:-1]):
                progress(f"  {check.id}: shrunk to {len(trace.steps)} steps, {time.monotonic() - first_at[0]:.1f} s")

        spent: list[bool] = []

        def budget_spent() -> bool:
            # Hypothesis's share of the budget; the trace reducer below has the rest.
            if first_at and time.monotonic() - first_at[0] > profile.shrink_seconds * HYPOTHESIS_SHRINK_SHARE:
                spent.append(True)
            return bool(spent)

        def ended(run: Lockstep) -> None:
            nonlocal runs, steps
            runs += 1
            steps += len(run.steps)
            judged[0] += run.published_checks
            se_read[0] += run.se_reads
            exercised.update(_exercised(run))
            outcomes.update(_outcomes(run))
            if progress is not None and time.monotonic() - last_report[0] > 10:
                last_report[0] = time.monotonic()
                progress(f"  {check.id}: {runs} runs, {steps} steps, {time.monotonic() - start:.0f} s")

        machine = lockstep_machine(
            factory, check.world, timeout=timeout, name=system_name, on_divergence=diverged, on_run_end=ended, stop=budget_spent
        )
        message, stopped = _search(machine, profile, database_dir, check.id)
        # Hypothesis may wrap the stop in an error of its own (a run that ended early looks like flaky data to it).
        stopped = stopped or bool(spent)
        if found:
            # Hypothesis replays the shrunk example last; cut off by the budget, the shortest failing run found so far.
            trace, divergence = found[-1] if not stopped else min(reversed(found), key=lambda td: len(td[0].steps))
            hypothesis_steps = len(trace.steps)
            reduced = None
            if profile.shrink:
                left = profile.shrink_seconds - (time.monotonic() - first_at[0])
                if progress is not None and left > 0:
                    progress(f"  {check.id}: reducing the trace ({hypothesis_steps} steps), at most {left:.1f} s")
                reduced = minimise(
                    trace, divergence, factory, seconds=left, timeout=timeout, system_name=system_name,
                    progress=None if progress is None else lambda line: progress(f"  {check.id}: {line}"),
                )  # fmt: skip
                trace, divergence = reduced.trace, reduced.divergence
            shrink = ShrinkReport(
                found_after=first_at[0] - start, found_steps=len(found[0][0].steps), hypothesis_steps=hypothesis_steps,
                shrunk_steps=len(trace.steps), shrink_seconds=time.monotonic() - first_at[0], budget=profile.shrink_seconds,
                stopped=stopped or (reduced is not None and reduced.stopped),
                reduce_seconds=0.0 if reduced is None else reduced.seconds, reduce_replays=0 if reduced is None else reduced.replays,
                reduce_stopped=reduced is not None and reduced.stopped,
            )  # fmt: skip
            trace = Trace(
                world=trace.world, steps=trace.steps, title=f"{check.id}: {system_name} diverges", source="hypothesis",
                system=trace.system, meta=trace.meta,
            )
            message = ""
    artefacts: tuple[Path, ...] = ()
    if divergence is not None and trace is not None:
        artefacts = _artefacts(trace, out_dir, check.id.replace(":", "-"), divergence)
    status, reason = "pass", ""
    if message:
        status = "error"
    elif divergence is not None:
        hit = known.match(check.id, divergence.reqs) if known is not None else None
        status, reason = ("known", f"{hit[0]}: {hit[1]}") if hit else ("fail", "")
    return CheckResult(
        check=check, status=status, exercised=frozenset(exercised), runs=runs, steps=steps, seconds=time.monotonic() - start,
        divergence=divergence, trace=trace, artefacts=artefacts, known_reason=reason, message=message, outcomes=dict(outcomes),
        shrink=shrink, note=note, figures=figures, artefact_judgements=judged[0], se_reads=se_read[0],
    )  # fmt: skip


def _search(machine: type, profile: RunProfile, database_dir: Path | None, key: str) -> tuple[str, bool]:
    """Run the Hypothesis search; the divergence arrives through the machine's callback.

    Returns a suite error, if any, and whether the machine stopped the search (its shrink budget spent).
    """
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.database import DirectoryBasedExampleDatabase
    from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition
    from hypothesis.stateful import run_state_machine_as_test

    # No Phase.target: hill-climbing on the runs that reached new (action, outcome) pairs spent half the examples near a
    # few runs, and the searches missed the edge faults three to five times as often (bench/search_reach.py).
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if profile.shrink else [])
    database = None
    if database_dir is not None:
        # One directory per check: a failure found once is replayed first next time.
        database = DirectoryBasedExampleDatabase(str(database_dir / key.replace(":", "-")))
    how = settings(
        max_examples=profile.examples,
        stateful_step_count=profile.steps,
        deadline=None,
        database=database,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    try:
        run_state_machine_as_test(machine, settings=how)
    except SearchStopped:
        return "", True  # the divergences were recorded by the callback; the shortest one is reported
    except AssertionError:
        return "", False  # the divergence was recorded by the callback
    except (FlakyFailure, FlakyStrategyDefinition) as exc:
        # A system whose answers change between identical runs; the first divergence is still reported.
        return f"the system is not deterministic under replay ({type(exc).__name__})", False
    return "", False


def unused_known(results: tuple[CheckResult, ...] | list[CheckResult], known: KnownFailures | None) -> tuple[str, ...]:
    """The known-failure IDs that no failure of this run matched (the file may be stale)."""
    used = {r.known_reason.split(":", 1)[0] for r in results if r.status == "known"}
    return tuple(k for k in (known.entries if known else ()) if k not in used)


def verdicts(results: tuple[CheckResult, ...] | list[CheckResult]) -> dict[str, str]:
    """Per conformance requirement: pass, fail, known failure or not exercised."""
    out: dict[str, str] = {}
    for rid in conformance_ids():
        touched = [r for r in results if rid in r.exercised or (r.divergence is not None and rid in r.divergence.reqs)]
        if not touched:
            out[rid] = "not exercised"
            continue
        broken = [r for r in touched if r.divergence is not None and rid in r.divergence.reqs]
        if any(r.status == "fail" for r in broken):
            out[rid] = "FAIL"
        elif broken:
            out[rid] = "known failure"
        else:
            out[rid] = "pass"
    return out


def run_conformance(
    factory: AdapterFactory,
    *,
    profile: str = "quick",
    out_dir: Path | None = None,
    known_failures: KnownFailures | None = None,
    checks: tuple[Check, ...] | None = None,
    timeout: float = 10.0,
    system_name: str = "",
    database_dir: Path | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
    recipe: SystemRecipe | None = None,
) -> ConformanceResult:
    """Run every check (or the given ones) on the system; write failure artefacts and result.json to out_dir.

    jobs > 1: the checks run in that many worker processes (mjpki.parallel), each building its own system from recipe (the
    options that name it); results, progress lines and result.json come in the checks' order, as in a serial run.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    name = system_name or getattr(factory, "__qualname__", repr(factory))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    results: list[CheckResult] = []
    chosen = checks if checks is not None else all_checks()
    if jobs > 1 and len(chosen) > 1:
        if recipe is None:
            raise ValueError("jobs > 1 needs the recipe of the system (each worker process builds its own)")
        from mjpki.parallel import run_checks_parallel

        def done(i: int, r: CheckResult) -> None:
            if progress is not None:
                progress(f"[{i}/{len(chosen)}] {check_line(r)}")

        results = run_checks_parallel(
            chosen, recipe, jobs=jobs, profile=profile, out_dir=out_dir, known=known_failures, system_name=name,
            database_dir=database_dir, done=done,
        )  # fmt: skip
    for i, check in enumerate(() if results else chosen, 1):
        r = run_check(
            check, factory, profile=prof, out_dir=out_dir, known=known_failures, timeout=timeout, system_name=name,
            database_dir=database_dir, progress=progress,
        )  # fmt: skip
        results.append(r)
        if progress is not None:
            progress(f"[{i}/{len(chosen)}] {check_line(r)}")
    result = ConformanceResult(
        system=name, profile=profile, started=started, seconds=time.monotonic() - t0, results=tuple(results),
        verdicts=verdicts(results), unused_known=unused_known(results, known_failures),
    )  # fmt: skip
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "result.json").write_text(json.dumps(result_json(result), indent=2) + "\n", encoding="utf-8")
    return result


def check_line(r: CheckResult) -> str:
    """One line per check: status, ID, size, time; the divergence for a failure."""
    label = {"pass": "pass", "fail": "FAIL", "known": "known", "error": "ERROR"}[r.status]
    line = f"{label:5}  {r.check.id:44} {r.runs:4} runs {r.steps:6} steps {r.seconds:6.1f} s"
    if r.divergence is not None:
        line += f"\n       {r.divergence}"
    if r.shrink is not None:
        line += f"\n       {r.shrink}"
    if r.note:
        line += f"\n       {r.note}"
    if r.known_reason:
        line += f"\n       known failure: {r.known_reason}"
    if r.message:
        line += f"\n       suite error: {r.message}"
    return line


def judged_on(rid: str, results: tuple[CheckResult, ...] | list[CheckResult]) -> str:
    """"artefacts" if a check that exercised the requirement judged the system's own CRLs/OCSP/certificates for it, "apdu" if
    one read the SE slots it is judged on over APDUs (mjpki.se_read), else "self-report"."""
    from mjpki.published import ARTEFACT_REQS
    from mjpki.se_read import SE_REQS

    on_artefacts = rid in ARTEFACT_REQS and any(r.artefact_judgements and rid in r.exercised for r in results)
    if on_artefacts:
        return "artefacts"
    on_apdu = rid in SE_REQS and any(r.se_reads and rid in r.exercised for r in results)
    return "apdu" if on_apdu else "self-report"


def result_json(result: ConformanceResult) -> dict[str, Any]:
    """The run as JSON data (format mjpki-result/1), for dashboards and CI."""

    def check(r: CheckResult) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": r.check.id, "kind": r.check.kind, "title": r.check.title, "status": r.status, "runs": r.runs, "steps": r.steps,
            "seconds": round(r.seconds, 3), "exercised": sorted(r.exercised),
            "variants": r.check.world.to_json()["variants"], "artefact_judgements": r.artefact_judgements, "se_reads": r.se_reads,
        }  # fmt: skip
        if r.divergence is not None:
            d = r.divergence
            action = None if d.action is None else str(d.action)
            data["divergence"] = {"index": d.index, "action": action, "what": d.what, "reqs": list(d.reqs)}
        if r.shrink is not None:
            sh = r.shrink
            data["shrink"] = {
                "found_after": round(sh.found_after, 3), "found_steps": sh.found_steps, "hypothesis_steps": sh.hypothesis_steps,
                "shrunk_steps": sh.shrunk_steps, "seconds": round(sh.shrink_seconds, 3), "budget": sh.budget, "stopped": sh.stopped,
                "reduce_seconds": round(sh.reduce_seconds, 3), "reduce_replays": sh.reduce_replays, "reduce_stopped": sh.reduce_stopped,
            }  # fmt: skip
        if r.note:
            data["coverage"] = {"summary": r.note, **r.figures}
        if r.artefacts:
            data["artefacts"] = [str(p) for p in r.artefacts]
        if r.known_reason:
            data["known_reason"] = r.known_reason
        if r.message:
            data["error"] = r.message
        return data

    counts: dict[str, int] = {}
    for v in result.verdicts.values():
        counts[v] = counts.get(v, 0) + 1
    return {
        "format": RESULT_FORMAT,
        "system": result.system,
        "profile": result.profile,
        "started": result.started,
        "seconds": round(result.seconds, 3),
        "passed": result.passed,
        "summary": {
            "checks": len(result.results),
            **{s: sum(1 for r in result.results if r.status == s) for s in ("pass", "fail", "known", "error")},
            "requirements": counts,
        },
        "checks": [check(r) for r in result.results],
        "requirements": {
            rid: {
                "title": REQUIREMENTS[rid].title, "verdict": v, "checks": [r.check.id for r in result.results if rid in r.exercised],
                "judged_on": judged_on(rid, result.results),
            }
            for rid, v in result.verdicts.items()
        },
        "unused_known_failures": list(result.unused_known),
        # Added within mjpki-result/1 (readers of older files find them missing): what the spec assumed, and coverage.
        "assumptions": {a.name: a.text for a in ASSUMPTIONS.values()},
        "coverage": coverage_json(result.results),
    }


def coverage_json(results: tuple[CheckResult, ...] | list[CheckResult]) -> dict[str, Any]:
    """The spec's declared outcomes per action and how many steps sent to the system had each (result.json `coverage`)."""
    seen: Counter[tuple[str, str]] = Counter()
    for r in results:
        seen.update(r.outcomes)
    # Environmental refusals are left out: they are never sent to a system (as in mjpki.properties.coverage).
    declared = {cls.__name__: ["ACCEPTED", *(x.name for x in rule.reasons if not x.environmental)] for cls, rule in RULES.items()}
    exercised: dict[str, dict[str, int]] = {}
    for (action, code), n in sorted(seen.items()):
        exercised.setdefault(action, {})[code] = n
    return {"declared": declared, "exercised": exercised}


def render_summary(result: ConformanceResult, *, titles: Mapping[str, str] | None = None) -> str:
    """The per-requirement verdict table and a one-line total, as printed by `mjpki run` and the pytest plugin."""
    from mjpki.render import table

    names = titles or {r.id: r.title for r in REQUIREMENTS.values()}
    rows = []
    for rid, verdict in result.verdicts.items():
        where = [r.check.id for r in result.results if rid in r.exercised]
        rows.append((rid, names.get(rid, ""), verdict, ", ".join(where[:2]) + (f" +{len(where) - 2}" if len(where) > 2 else "")))
    lines = [table(["requirement", "title", "verdict", "exercised by"], rows, max_width=46), ""]
    new = result.new_failures
    known = [r for r in result.results if r.status == "known"]
    if known:
        lines.append("Known failures (listed in the known-failures file, not counted against the run):")
        lines += [f"  {r.check.id}: {r.known_reason}" for r in known]
    if result.unused_known:
        lines.append("Known failures that did not occur (fixed? remove them from the file): " + ", ".join(result.unused_known))
    if new:
        lines.append("New failures:")
        for r in new:
            lines.append(f"  {r.check.id}: {r.divergence if r.divergence is not None else r.message}")
            lines += [f"      {p}" for p in r.artefacts]
    lines += [f"{r.check.id}: {r.note}" for r in result.results if r.note]
    on_artefacts = [rid for rid in result.verdicts if judged_on(rid, result.results) == "artefacts"]
    on_apdu = [rid for rid in result.verdicts if judged_on(rid, result.results) == "apdu"]
    rest = "; the rest on self-report" + (" or the SE reads below." if on_apdu else ".")
    lines.append(
        "Judged on the system's own artefacts (CRLs, OCSP, certificates as DER): " + ", ".join(on_artefacts) + rest
        if on_artefacts
        else "Judged on self-report only: the system hands over no artefacts (see docs/adapters.md, artefacts())."
    )
    lines.append(
        "SE slots read over APDUs (GET SLOT STATUS under SCP03, mjpki.se_read) for: " + ", ".join(on_apdu) + "."
        if on_apdu
        else "SE slots judged on self-report: no SE keys given (mjpki run --se-keys FILE) or the system offers no se_apdu "
        "(see docs/adapters.md)."
    )
    tally = {v: sum(1 for x in result.verdicts.values() if x == v) for v in ("pass", "FAIL", "known failure", "not exercised")}
    passed = sum(1 for r in result.results if r.status == "pass")
    lines.append(
        f"{result.system}, profile {result.profile}: {passed} of {len(result.results)} checks "
        f"passed in {result.seconds:.0f} s; requirements: "
        + ", ".join(f"{n} {v}" for v, n in tally.items() if n)
        + _verdict_words(passed=result.passed, unexercised=tally["not exercised"])
    )
    return "\n".join(lines)


def _verdict_words(*, passed: bool, unexercised: int) -> str:
    """The summary's last words. The run exits 0 only when they include CONFORMS, so a subset says how far it goes."""
    if not passed:
        return "; DOES NOT CONFORM"
    if unexercised:
        return f"; CONFORMS on the checks run ({unexercised} requirements not exercised: not a verdict on the whole spec)"
    return "; CONFORMS"
