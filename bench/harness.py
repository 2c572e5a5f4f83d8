"""The lockstep harness's own cost (issue 15, part 4): the same action sequences on the spec alone, in lockstep against
the spec as an adapter, on the reference alone and in lockstep against the reference.

    .venv/bin/python bench/harness.py [--runs N] [--steps N] [--repeat N] [--json FILE]

The sequences are what the stateful search draws (mjpki.lockstep.lockstep_machine on the spec, derandomised), so the
figures are those of a conformance run's generated part. Each configuration steps the same actions; rates are actions
per CPU second of this process (adapter threads included). The figures that matter are the ratios within one run: the
machine is shared and absolute numbers wander. Targets (issue 15): lockstep against the spec-as-adapter within a factor
3 of the spec alone. The reference runs in this process (its systems' keys freshly generated, as `mjpki run` does: the
test-only key pool is not reachable from here).

Each lockstep is measured twice: with a step deadline (10 s, as `mjpki run --in-process`: each adapter call goes through
a worker thread that times it) and without one (`Lockstep(timeout=None)`: calls on this thread, which is also how wire
adapters are called, their transport keeping the deadline). The reference's lockstep judges its artefacts after every
step (mjpki.published.ArtefactJudge), as a conformance run does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mjpki.adapters.reference import factory as reference_factory
from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.conformance import STATEFUL_WORLDS
from mjpki.lockstep import Lockstep, lockstep_machine
from mjpki.spec.actions import Action
from mjpki.spec.machine import step
from mjpki.spec.state import initial_state
from mjpki.spec.world import World

Runs = list[list[Action]]


def sequences(world: World, *, runs: int, steps: int) -> Runs:
    """The action sequences of a derandomised search of `runs` runs of at most `steps` steps against the spec."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    out: Runs = []
    machine = lockstep_machine(SpecSystem, world, on_run_end=lambda run: out.append([s.action for s in run.steps]))
    how = settings(
        max_examples=runs, stateful_step_count=steps, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    run_state_machine_as_test(machine, settings=how)
    return out


def spec_alone(world: World, runs: Runs) -> int:
    """The spec's transition function, nothing else."""
    n = 0
    for actions in runs:
        state = initial_state(world)
        for a in actions:
            state, _outcome = step(world, state, a)
            n += 1
    return n


def system_alone(make: Callable[[World], object]) -> Callable[[World, Runs], int]:
    """A system's own step(), no observation, no invariants, no harness (its floor); systems built outside the timing."""

    def go(world: World, runs: Runs) -> int:
        n = 0
        for actions in runs:
            system = make(world)
            try:
                for a in actions:
                    system.step(a)  # type: ignore[attr-defined]
                    n += 1
            finally:
                system.close()  # type: ignore[attr-defined]
        return n

    return go


def lockstep(make: Callable[[World], object], *, timeout: float | None = 10.0) -> Callable[[World, Runs], int]:
    """The harness: spec and system stepped together, outcomes compared, observation and invariants after every step, the
    artefacts judged at the end of each run as well (timeout None: no deadline, adapter calls on this thread)."""

    def go(world: World, runs: Runs) -> int:
        n = 0
        for actions in runs:
            run = Lockstep(make, world, timeout=timeout)  # type: ignore[arg-type]
            try:
                for a in actions:
                    run.step(a)
                    n += 1
                run.finish()
            finally:
                run.close()
            assert run.divergence is None, f"the bench's system diverged: {run.divergence}"
        return n

    return go


def measure(fn: Callable[[World, Runs], int], world: World, runs: Runs, repeat: int) -> dict[str, float]:
    """Actions per CPU second and per wall second, the best of `repeat` passes over every run."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        n = fn(world, runs)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rate = {"actions": n, "per_cpu_s": n / cpu if cpu else 0.0, "per_wall_s": n / wall if wall else 0.0}
        if rate["per_cpu_s"] > best.get("per_cpu_s", 0.0):
            best = rate
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=20, help="generated runs (default %(default)s)")
    p.add_argument("--steps", type=int, default=40, help="steps per run at most (default %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="passes per configuration, the best counts (default %(default)s)")
    p.add_argument("--world", default="default", choices=sorted(STATEFUL_WORLDS), help="which stateful check's world")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--without-hop", action="store_true",
        help="also measure the reference's lockstep without a deadline (adapter calls on this thread; the spec's always is)",
    )  # fmt: skip
    args = p.parse_args(argv)
    world = STATEFUL_WORLDS[args.world]()
    runs = sequences(world, runs=args.runs, steps=args.steps)
    reference_factory(world).close()  # the CA and card keys are made once per process: not in the timings
    configs = {
        "spec alone": (spec_alone, args.repeat),
        "lockstep, spec as adapter": (lockstep(SpecSystem), args.repeat),
        "lockstep, spec, no deadline": (lockstep(SpecSystem, timeout=None), args.repeat),
        "reference alone": (system_alone(reference_factory), 1),
        "lockstep, reference": (lockstep(reference_factory), 1),
    }
    if args.without_hop:
        configs["lockstep, reference, no deadline"] = (lockstep(reference_factory, timeout=None), 1)
    figures = {name: measure(fn, world, runs, repeat) for name, (fn, repeat) in configs.items()}
    print(f"{sum(map(len, runs))} actions in {len(runs)} generated runs, world {args.world!r}; CPU time of this process\n")
    print(f"{'configuration':34} {'actions/CPU s':>14} {'actions/wall s':>15}")
    for name, f in figures.items():
        print(f"{name:34} {f['per_cpu_s']:14,.0f} {f['per_wall_s']:15,.0f}")
    spec, spec_lock = figures["spec alone"]["per_cpu_s"], figures["lockstep, spec as adapter"]["per_cpu_s"]
    ref, ref_lock = figures["reference alone"]["per_cpu_s"], figures["lockstep, reference"]["per_cpu_s"]
    ratios = {
        "harness factor on the spec": spec / spec_lock,
        "harness factor on the spec, no deadline": spec / figures["lockstep, spec, no deadline"]["per_cpu_s"],
        "harness factor on the reference": ref / ref_lock,
    }
    if args.without_hop:
        ratios["harness factor on the reference, no deadline"] = ref / figures["lockstep, reference, no deadline"]["per_cpu_s"]
    print()
    for name, r in ratios.items():
        print(f"{name:42} {r:6.2f}")
    for label, key in (("with a deadline", "harness factor on the spec"), ("without", "harness factor on the spec, no deadline")):
        verdict = "met" if ratios[key] <= 3 else "missed"
        print(f"target: lockstep against the spec-as-adapter within a factor 3 of the spec alone ({label}): {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "ratios": ratios}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
