"""A failing search reports its first failure at once, then shrinks within the profile's budget (issue 15, part 3)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.conformance import PROFILES, all_checks, check_line, result_json, run_check, run_conformance
from mjpki.properties.explorer import Scope, explore
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.replay import replay_on_adapter
from mjpki.spec.trace import load_trace, replay_on_spec

BUG = SEEDED_BUGS["pin_counter_broken"]  # PIN-3: the search finds it within the quick profile's runs
SEARCH = next(c for c in all_checks() if c.id == "stateful:default")


def _faulty(world):  # type: ignore[no-untyped-def]
    return SpecSystem(world, stepper=BUG.stepper)


def test_the_first_failure_is_reported_and_written_before_shrinking_and_a_spent_budget_stops_it(tmp_path: Path) -> None:
    lines: list[str] = []
    written_at_first_report: list[bool] = []

    def progress(line: str) -> None:
        if "FAILS after" in line:
            # The failing run as found is on disk when it is first reported, before any shrinking.
            written_at_first_report.append((tmp_path / "stateful-default.json").exists())
        lines.append(line)

    profile = replace(PROFILES["quick"], shrink_seconds=0.0)  # no time at all to shrink
    r = run_check(SEARCH, _faulty, profile=profile, out_dir=tmp_path, system_name="pin-counter-broken", progress=progress)
    assert r.status == "fail" and r.divergence is not None and set(BUG.reqs) & set(r.divergence.reqs)
    assert written_at_first_report == [True]
    first = next(i for i, line in enumerate(lines) if "FAILS after" in line)
    assert "shrinking, at most 0 s" in lines[first]
    assert not any("shrunk to" in line for line in lines[:first])
    assert r.shrink is not None and r.shrink.stopped and r.shrink.budget == 0.0
    # Stopped at once: the run reported is the run found.
    assert r.trace is not None and r.shrink.shrunk_steps == r.shrink.found_steps == len(r.trace.steps)
    assert r.shrink.hypothesis_steps == r.shrink.found_steps and r.shrink.reduce_replays == 0  # no time to reduce it either
    assert "budget of 0 s spent" in check_line(r)
    trace = load_trace(next(p for p in r.artefacts if p.suffix == ".json"))
    assert replay_on_spec(trace).agrees and trace.first_divergence == len(trace.steps) - 1


def test_shrinking_gives_the_explorers_shortest_run_and_result_json_says_so(tmp_path: Path) -> None:
    """Hypothesis's shrinking, then trace reduction (mjpki.minimise): the run reported is as short as the explorer's shortest."""
    result = run_conformance(_faulty, profile="quick", out_dir=tmp_path, checks=(SEARCH,), system_name="pin-counter-broken")
    (r,) = result.results
    assert r.shrink is not None and r.trace is not None and r.divergence is not None
    assert r.shrink.shrunk_steps == len(r.trace.steps) <= r.shrink.hypothesis_steps <= r.shrink.found_steps
    scope = Scope(persons=1, phones=1, depth=8, pins=False, variants=BUG.variants)
    shortest = next(v for v in explore(scope, stepper=BUG.stepper, stop_at_first=True).violations if v.invariant == BUG.breaks)
    assert len(r.trace.steps) == len(shortest.trace.steps) and BUG.breaks in r.divergence.invariants
    # The artefact written last is the reduced run, and it replays to the same failure.
    again = replay_on_adapter(load_trace(next(p for p in r.artefacts if p.suffix == ".json")), _faulty)
    assert again.reproduces and again.divergence is not None and again.divergence.invariants == r.divergence.invariants
    data = result_json(result)["checks"][0]["shrink"]
    assert (data["found_steps"], data["hypothesis_steps"], data["shrunk_steps"]) == (
        r.shrink.found_steps, r.shrink.hypothesis_steps, r.shrink.shrunk_steps,
    )  # fmt: skip
    assert data["budget"] == PROFILES["quick"].shrink_seconds and data["stopped"] is r.shrink.stopped
