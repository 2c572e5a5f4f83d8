"""The suite's speed figures, measured in one run, each against its target or its floor (docs/performance.md keeps them).

    .venv/bin/python bench/figures.py [--depth D] [--prove-runs N] [--seconds S] [--skip lockstep,explorer,prove,bmc,shrink,apdu]

The coverage:edges tour's size and generation time. The explorer's states per CPU second on the 2-person, 3-phone
scope with state invariants on every edge (as before issue 15) and once per new state (now). `mjpki prove` wall time,
several runs. The deepest BMC from the initial state done within a minute of CPU (Z3 fresh per depth, Z3 incremental,
the explorer's breadth-first search). Shrunk counterexample length against the explorer's shortest, per seeded bug.
Then, run from here so that nothing is measured twice: bench/harness.py (steps per second of the spec alone, the
reference alone, the floor, and each in lockstep) and bench/applet_rates.py (APDU rates). Shrinking is shown as steps
found -> after Hypothesis's shrinking -> after trace reduction. This machine is shared: the ratios within one run are
what to compare across runs, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.properties.edge_tour import default_tour

EXPLORER_TARGET = 100_000 / 60  # states/s: 10^5 states of the 2x3 scope within a minute (issue 15, part 6)
PROVE_TARGET = 30.0  # seconds per `mjpki prove`, every run


def explorer_figures(depth: int) -> list[tuple[str, str, str]]:
    """States per second on the 2x3 scope, state invariants on every edge (before) and once per new state (now).

    CPU time counts for the comparison: other jobs on the machine change the wall time by a factor of two from one
    minute to the next; the wall time is shown as well, with the time 10^5 states would take at this run's wall rate.
    The two ways alternate, twice each, and the faster of each pair counts."""
    from mjpki.properties.explorer import Scope, explore

    scope = Scope(persons=2, phones=3, depth=depth)
    best: dict[bool, tuple[float, float, int]] = {}
    for every_edge in (True, False, True, False):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        e = explore(scope, state_invariants_on_every_edge=every_edge)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if every_edge not in best or cpu < best[every_edge][0]:
            best[every_edge] = (cpu, wall, e.states)
    rows = []
    for label, every_edge in (("before: state invariants on every edge", True), ("now: state invariants once per new state", False)):
        cpu, wall, states = best[every_edge]
        rate = states / cpu
        rows.append(
            (
                f"explorer 2x3 depth {depth}, {label}",
                f"{states:,} states in {cpu:.1f} s CPU ({wall:.1f} s wall) = {rate:,.0f}/s",
                f"target/this = {EXPLORER_TARGET / rate:.2f} (CPU); 10^5 states in {100_000 * wall / states:.0f} s wall",
            )
        )
    rows.append(("explorer speed-up in this run (CPU)", f"{best[True][0] / best[False][0]:.2f}x", "-"))
    return rows


def prove_figures(runs: int) -> list[tuple[str, str, str]]:
    """`mjpki prove` (defaults) wall time, several runs, each in a fresh worker pool."""
    from mjpki.properties.prove import prove
    from mjpki.spec.assumptions import Variants

    rows = []
    for i in range(runs):
        t0 = time.perf_counter()
        report = prove(Variants())
        secs = time.perf_counter() - t0
        bad = [r.invariant for r in report.rows if r.result != "proved"]
        rows.append(
            (
                f"mjpki prove, run {i + 1}",
                f"{secs:.1f} s" + (f" (not proved: {', '.join(bad)})" if bad else ""),
                f"this/target = {secs / PROVE_TARGET:.2f}",
            )
        )
    return rows


RLIMIT_PER_SECOND = 700_000
"""Z3 resource units in one second of one core on this machine (docs/prove.md), to bound a BMC query by the budget."""


def bmc_figures(budget: float) -> list[tuple[str, str, str]]:
    """The deepest BMC from the initial state (1x1 world, an invariant that holds, so every depth is searched in full)
    within budget seconds of CPU: Z3 with a fresh solver per depth (the former way), Z3 incremental, and the explorer's
    breadth-first search of the 1x1 scope (a BMC over its finite alphabet, not over every argument: docs/prove.md)."""
    from mjpki.properties.explorer import Scope, explore
    from mjpki.properties.prove import _bmc_world, bmc
    from mjpki.spec.assumptions import Variants

    target = "one_phone_cert_per_kind"
    world = _bmc_world(1, 1, Variants())
    rows = []
    reached: dict[str, tuple[int, float, float]] = {}
    for label, incremental in (("fresh solver per depth (the default)", False), ("incremental", True)):
        levels: list[tuple[int, float, float]] = []
        wall0 = time.perf_counter()

        def note(d: int, cpu: float, levels: list[tuple[int, float, float]] = levels, wall0: float = wall0, label: str = label) -> None:
            levels.append((d, cpu, time.perf_counter() - wall0))
            print(f"  Z3 BMC {label}: depth {d} searched after {cpu:.1f} s CPU", file=sys.stderr)

        r = bmc(
            world, [target], depth=12, incremental=incremental, cpu_budget=budget, rlimit=int(budget * RLIMIT_PER_SECOND), progress=note
        )[target]
        assert r.trace is None, "the invariant holds: BMC must find nothing"
        done = [(d, c, w) for d, c, w in levels if c <= budget and d <= r.searched]
        reached[label] = done[-1] if done else (0, 0.0, 0.0)
        d, c, w = reached[label]
        rows.append(
            (
                f"Z3 BMC from the initial state, 1x1, {label}",
                f"depth {d} in {c:.1f} s CPU ({w:.1f} s wall)",
                f"target 10 / this = {10 / max(d, 1):.1f}",
            )
        )
    rows.append(
        (
            "Z3 BMC depth within the budget, incremental vs fresh",
            f"{reached['incremental'][0]} vs {reached['fresh solver per depth (the default)'][0]}",
            "-",
        )
    )
    levels = []
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def level(d: int, states: int) -> bool:
        cpu = time.process_time() - cpu0
        levels.append((d, cpu, time.perf_counter() - wall0, states))
        return cpu <= budget

    explore(Scope(persons=1, phones=1, depth=12), on_level=level)
    d, c, w, n = [lv for lv in levels if lv[1] <= budget][-1]
    rows.append(
        (
            "explorer BFS (BMC over its alphabet), 1x1, initial",
            f"depth {d} in {c:.1f} s CPU ({w:.1f} s wall), {n:,} states",
            f"target 10 / this = {10 / max(d, 1):.1f}",
        )
    )
    return rows


def shrink_figures() -> list[tuple[str, str, str]]:
    """Per seeded bug: the stateful search's counterexample as found, shrunk by Hypothesis and reduced, against the explorer's shortest."""
    from mjpki.conformance import PROFILES, Check, run_check
    from mjpki.properties.explorer import Scope, explore, scope_world
    from mjpki.properties.seeded_bugs import SEEDED_BUGS

    rows = []
    for name, bug in SEEDED_BUGS.items():
        scope = Scope(persons=1, phones=1, depth=8, pins=False, variants=bug.variants)  # tests/test_explorer.py's bug scope
        shortest = [v for v in explore(scope, stepper=bug.stepper, stop_at_first=True).violations if v.invariant == bug.breaks]
        if not shortest:  # another invariant broke first
            shortest = [v for v in explore(scope, stepper=bug.stepper).violations if v.invariant == bug.breaks]
        world = scope_world(scope)
        check = Check(id=f"bench:{name}", kind="stateful", title=name, world=world)
        result = run_check(check, lambda w, b=bug: SpecSystem(w, stepper=b.stepper), profile=PROFILES["ci"], system_name=name)
        best = len(shortest[0].trace.steps) if shortest else None
        sh = result.shrink
        if sh is None or not best:
            rows.append((f"shrunk vs shortest: {name}", f"not found (shortest {best})", "-"))
            continue
        # As found, after Hypothesis's shrinking, after trace reduction (mjpki.minimise): the last is what is reported.
        value = f"{sh.found_steps} -> {sh.hypothesis_steps} -> {sh.shrunk_steps} vs {best} steps in {sh.shrink_seconds:.1f} s"
        ratio = f"Hypothesis/shortest = {sh.hypothesis_steps / best:.1f}, reduced/shortest = {sh.shrunk_steps / best:.2f} (target 1.2)"
        rows.append((f"shrunk vs shortest: {name}", value, ratio))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=5, help="explorer depth for the 2x3 scope (default 5; 6 takes minutes)")
    parser.add_argument("--prove-runs", type=int, default=3, help="how many times mjpki prove is timed (default 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per APDU/s figure (default 3)")
    parser.add_argument("--skip", default="", help="comma-separated: lockstep, explorer, prove, bmc, shrink, apdu")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    rows: list[tuple[str, str, str]] = []
    t0 = time.perf_counter()
    tour = default_tour()
    rows.append(
        (
            "coverage:edges tour (generated at run start)",
            f"{len(tour.runs)} runs, {tour.steps} steps in {tour.seconds:.1f} s",
            tour.summary()[:60] + "...",
        )
    )
    for name, fn in (
        ("explorer", lambda: explorer_figures(args.depth)),
        ("prove", lambda: prove_figures(args.prove_runs)),
        ("bmc", lambda: bmc_figures(60.0)),
        ("shrink", shrink_figures),
    ):
        if name not in skip:
            rows += fn()
            print(f"[{name} done, {time.perf_counter() - t0:.0f} s]", file=sys.stderr)
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':{width}}  {'measured':44} ratio")
    for what, value, ratio in rows:
        print(f"{what:{width}}  {value:44} {ratio}")
    if "lockstep" not in skip:
        print()
        import harness  # bench/harness.py: spec alone, reference alone (the floor), each in lockstep; not measured twice

        harness.main([])
    if "apdu" not in skip:
        print()
        import applet_rates  # bench/applet_rates.py: the APDU figures, not measured twice

        applet_rates.main(["--seconds", str(args.seconds)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
