"""How often a whole stateful search reaches the runs that expose the edge faults: the search's miss rate, on the spec alone.

    .venv/bin/python bench/search_reach.py [--searches N] [--profile ci] [--worlds default,linkage-either] [--target]
        [--strategies FILE]

A conformance run's stateful check is one Hypothesis search (mjpki.conformance._search: the profile's examples and
steps, Hypothesis's own random seed) of runs drawn from mjpki.strategies.action_strategy. Until a system diverges, its
runs are the spec's own (the draws depend on the spec's state alone), so a search against a faulty system finds the
fault exactly when the same search on the spec draws a run that exposes it. This script simulates N such searches per
world with a machine that draws like mjpki.lockstep's (one rule, the same strategy, the same phases), steps the spec
alone, and marks the steps that would expose each edge fault of tests/faulty_impls.py: the predicates of
tests/fault_exposure.py, which tests/test_fault_exposure.py checks against the faulty systems step for step. It prints,
per fault and world, the share of searches that never draw such a step (the search alone misses the fault), the median
run of the first exposing step, and a whole conformance run's miss rate (every world's search misses). Far cheaper
than bench/system_detection.py (no reference system, no RSA), so it can run the hundreds of searches a miss rate of a
few per cent needs; system_detection.py remains the measurement against the faulty systems themselves. --target
measures the searches as they were until this script showed what it cost: Hypothesis's target phase, each run scored by
the (action, outcome) pairs no earlier run of the search had produced.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flow_reach import _strategies
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis import target as hypothesis_target
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from mjpki.conformance import PROFILES, STATEFUL_WORLDS
from mjpki.spec.machine import step
from mjpki.spec.state import initial_state
from mjpki.spec.world import World
from tests.fault_exposure import EXPOSES

Strategies = Callable[..., st.SearchStrategy]


def simulate(world: World, action_strategy: Strategies, *, examples: int, steps: int, target: bool) -> dict[str, int | None]:
    """One search: per fault, the index of the first run that exposes it (None: never)."""
    first: dict[str, int | None] = dict.fromkeys(EXPOSES)
    seen: set[tuple[str, str]] = set()
    runs = [0]

    class SpecSearch(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.state = initial_state(world)
            self.pairs: set[tuple[str, str]] = set()

        @rule(data=st.data())
        def act(self, data: st.DataObject) -> None:
            action = data.draw(action_strategy(world, self.state), label="action")
            after, outcome = step(world, self.state, action)
            for name, hit in EXPOSES.items():
                if first[name] is None and hit(world, self.state, action, outcome, after):
                    first[name] = runs[0]
            self.pairs.add((type(action).__name__, outcome.code))
            self.state = after

        def teardown(self) -> None:
            if target:  # the score mjpki.lockstep's machine gave a run before: its pairs no earlier run produced
                hypothesis_target(float(len(self.pairs - seen)), label="new (action, outcome) pairs")
                seen.update(self.pairs)
            runs[0] += 1

    phases = [Phase.explicit, Phase.generate] + ([Phase.target] if target else [])
    run_state_machine_as_test(
        SpecSearch,
        settings=settings(
            max_examples=examples, stateful_step_count=steps, deadline=None, database=None, phases=phases,
            suppress_health_check=list(HealthCheck),
        ),
    )  # fmt: skip
    return first


def main(argv: list[str] | None = None) -> int:
    """Print the miss rates; exit 0 (it measures, it does not judge)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=100, help="searches per world (default 100)")
    parser.add_argument("--profile", default="ci", choices=sorted(PROFILES), help="examples and steps of a search (default ci)")
    parser.add_argument("--worlds", default=",".join(STATEFUL_WORLDS), help="stateful worlds, comma-separated (default all)")
    parser.add_argument("--strategies", default=None, metavar="FILE", help="a strategies module file to measure instead")
    parser.add_argument("--target", action="store_true", help="with Hypothesis's target phase and the score the search had before")
    args = parser.parse_args(argv)
    worlds = [w for w in args.worlds.split(",") if w]
    unknown = [w for w in worlds if w not in STATEFUL_WORLDS]
    if unknown:
        parser.error(f"no stateful world {', '.join(unknown)}; there are {', '.join(STATEFUL_WORLDS)}")
    prof = PROFILES[args.profile]
    t0 = time.monotonic()
    action_strategy = _strategies(args.strategies)  # loaded once: a strategies file is executed as a module
    found: dict[str, list[dict[str, int | None]]] = {}
    for name in worlds:
        world = STATEFUL_WORLDS[name]()
        found[name] = [
            simulate(world, action_strategy, examples=prof.examples, steps=prof.steps, target=args.target) for _ in range(args.searches)
        ]
    print(f"{args.searches} searches per world, profile {args.profile}, target phase {'on' if args.target else 'off'}")
    for fault in EXPOSES:
        cells = []
        for name in worlds:
            firsts = [f[fault] for f in found[name]]
            hits = [i for i in firsts if i is not None]
            median = f"{statistics.median(hits):.0f}" if hits else "-"
            cells.append(f"{name} miss {100 * (len(firsts) - len(hits)) / len(firsts):5.1f} % (run {median:>3})")
        every = sum(1 for i in range(args.searches) if all(found[n][i][fault] is None for n in worlds))
        print(f"{fault:38} {'  '.join(cells)}  run misses {100 * every / args.searches:5.1f} %")
    print(f"{time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
