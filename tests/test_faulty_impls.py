"""The suite catches every deliberately faulty implementation of tests/faulty_impls.py, and passes the reference.

The conformance run is the scenarios in lockstep first, then the Hypothesis lockstep search. Each fault must be caught
with a trace whose divergence names the requirement it breaks; the trace must load, replay cleanly on the spec, make a
fresh run of the faulty system diverge at the same step, and make the reference diverge nowhere. The faults marked
"search" must be missed by every scenario and caught by the search: the stateful part finds what the scenarios miss.

In the faults' searches, a divergence the reference shares at the same step is set aside: it would not be the fault's.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, reject, settings
from hypothesis.stateful import run_state_machine_as_test

from mjpki.adapters.system import AdapterFactory, SystemAdapter
from mjpki.conformance import all_checks, run_conformance
from mjpki.lockstep import Divergence, Lockstep, lockstep_machine
from mjpki.scenarios import SCENARIOS, base_world
from mjpki.spec import actions as A
from mjpki.spec.domain import Kind
from mjpki.spec.requirements import REQUIREMENTS
from mjpki.spec.state import initial_state
from mjpki.spec.trace import Trace, load_trace, replay_on_spec
from tests.faulty_impls import FAULTY, Fault, reference_factory, shared_parts

# The faults are in the lifecycle, not in key generation: SE key pairs and new card keys from the test-only pool (conftest).
pytestmark = pytest.mark.usefixtures("pooled_keys")

SEARCH = settings(
    max_examples=150,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
"""The stateful search for the faults: a fixed sequence of generated runs (derandomized), stopped at the first
divergence, not shrunk (the trace is the run found)."""

REFERENCE_SEARCH = settings(SEARCH, max_examples=30)
"""A short search on the reference (the faults' traces are also replayed on it, one by one)."""

BY_SCENARIO = sorted(n for n, f in FAULTY.items() if f.caught_by != "search")
BY_SEARCH = sorted(n for n, f in FAULTY.items() if f.caught_by == "search")


@pytest.fixture(scope="module", autouse=True)
def _parts() -> None:
    shared_parts()  # the CA and card keys, made once before any timed run


def _scenarios_in_lockstep(factory: AdapterFactory, name: str) -> tuple[str, Lockstep] | None:
    """Every scenario in lockstep with the spec, in order: the first one the system diverges in, with its run."""
    for sc in SCENARIOS.values():
        run = Lockstep(factory, sc.world, system_name=name, timeout=30)
        for e in sc.steps:
            run.step(e.action)
            if run.broken:
                return sc.id, run
        run.close()
    return None


def _replayed(factory: AdapterFactory, trace: Trace, name: str) -> Lockstep:
    """A fresh lockstep run of a trace's actions on a system.

    Systems are made one after the other, never interleaved: they share the CA, and each allocates serials above
    those the CA had issued when the system was made.
    """
    run = Lockstep(factory, trace.world, system_name=name, timeout=30)
    for s in trace.steps:
        run.step(s.action)
    return run


def _check_trace(fault: Fault, path: Path) -> None:
    """The trace names the broken requirement, replays on the spec, and diverges on the fault (not the reference) there."""
    trace = load_trace(path)
    found = trace.meta["divergence"]
    assert set(fault.breaks) & set(found["reqs"]), f"{fault.name}: the divergence {found} does not name {fault.breaks}"
    # Precise blame (mjpki.spec.blame): the difference names what it is about, not the step's whole rule.
    assert len(found["reqs"]) <= 3, f"{fault.name}: the divergence blames {found['reqs']}, more than three requirements"
    assert found["index"] == len(trace.steps) - 1, "the run stops at its divergence"
    replay = replay_on_spec(trace)
    assert replay.agrees, f"{fault.name}: the trace does not replay on the spec: {replay.divergences}"
    again = _replayed(fault.factory, trace, fault.name)
    again.close()
    assert again.divergence is not None, f"{fault.name}: a fresh run of the trace does not diverge"
    assert (again.divergence.index, again.divergence.reqs) == (found["index"], tuple(found["reqs"]))
    reference = _replayed(reference_factory, trace, "reference")
    assert reference.divergence is None, f"the reference diverges on {fault.name}'s trace too: {reference.divergence}"
    reference.close()


def test_the_faults_are_many_and_break_different_requirements() -> None:
    assert len(FAULTY) >= 10
    # Two faults may break one requirement in different ways (no cascade at all, a cascade a day late), not more.
    counts = Counter(f.breaks for f in FAULTY.values())
    assert max(counts.values()) <= 2 and len(counts) >= len(FAULTY) - 2, counts
    assert len({f.system for f in FAULTY.values()}) == len(FAULTY), "each fault is a mistake of its own"
    assert len({f.layer for f in FAULTY.values()}) >= 5, "faults in several parts of the system, not only its business rules"
    assert len(BY_SEARCH) >= 2
    for f in FAULTY.values():
        assert f.breaks and set(f.breaks) <= set(REQUIREMENTS), f.name
        assert f.caught_by in SCENARIOS or f.caught_by == "search", f.name
        assert f.doc and "\n" not in f.doc, f.name
        system = f.factory(base_world())
        try:
            assert isinstance(system, SystemAdapter) and isinstance(system, f.system)
        finally:
            system.close()


def test_reference_passes_every_scenario_in_lockstep() -> None:
    assert _scenarios_in_lockstep(reference_factory, "reference") is None


def test_reference_passes_the_search(tmp_path: Path) -> None:
    machine = lockstep_machine(reference_factory, base_world(), trace_dir=str(tmp_path), name="reference", timeout=30)
    run_state_machine_as_test(machine, settings=REFERENCE_SEARCH)
    assert list(tmp_path.iterdir()) == []


def test_card_found_after_its_signing_certificate_expired() -> None:
    """Regression (found by this file's search): the held card signing certificate expired before the card was found.

    The reference's CA used to be asked for a certificate valid until a past date and raised; the spec now says the
    expired certificate is revoked and not re-issued (ASM-CARD-FOUND), and the reference agrees.
    """
    world = base_world()
    card = initial_state(world).card_cert("P1", Kind.SIGNING)
    assert card is not None
    run = Lockstep(reference_factory, world, system_name="reference")
    for action in (A.ReportCardLost(person="P1"), A.AdvanceTime(minutes=card.expiry), A.CardFound(person="P1")):
        run.step(action)
    run.close()
    assert run.divergence is None, run.divergence
    found = run.steps[-1]
    assert found.expected.code == "ACCEPTED" and found.expected.details["reissued"] == ()
    assert found.actual is not None and found.actual.details["reissued"] == ()


@pytest.mark.parametrize("name", BY_SCENARIO)
def test_scenarios_catch(name: str, tmp_path: Path) -> None:
    fault = FAULTY[name]
    found = _scenarios_in_lockstep(fault.factory, name)
    assert found is not None, f"no scenario catches {name}"
    sid, run = found
    assert run.divergence is not None
    assert sid == fault.caught_by, f"{name} is caught first by {sid}, not {fault.caught_by} (update the register and docs/detection.md)"
    path = tmp_path / f"{name}.json"
    path.write_text(run.trace(title=f"{name} diverges from the spec in {sid}", source="scenario").dumps(), encoding="utf-8")
    run.close()
    _check_trace(fault, path)


@pytest.mark.parametrize("name", BY_SEARCH)
def test_only_the_search_catches(name: str, tmp_path: Path) -> None:
    fault = FAULTY[name]
    assert _scenarios_in_lockstep(fault.factory, name) is None, f"a scenario catches {name}: it is not a search-only fault"

    def the_faults_own(trace: Trace, d: Divergence) -> None:
        # A divergence the reference shares at the same step is not this fault's: set the example aside.
        reference = _replayed(reference_factory, trace, "reference")
        shared = reference.divergence is not None and reference.divergence.index == d.index
        reference.close()
        if shared:
            reject()

    machine = lockstep_machine(fault.factory, base_world(), trace_dir=str(tmp_path), name=name, timeout=30, on_divergence=the_faults_own)
    with pytest.raises(AssertionError, match="diverges from the spec"):
        run_state_machine_as_test(machine, settings=SEARCH)
    _check_trace(fault, tmp_path / f"{name}.json")


CONFORMANCE_FAULTS = ("no-cascade", "ocsp-good-while-on-hold")
"""Two faults also put through mjpki's conformance run (its scenario checks), as an implementer would run it."""


def test_conformance_run_fails_the_faults_and_passes_the_reference(tmp_path: Path) -> None:
    scenario_checks = tuple(c for c in all_checks() if c.kind == "scenario")
    reference = run_conformance(reference_factory, checks=scenario_checks, timeout=30, system_name="reference")
    assert reference.passed, [str(r.divergence) for r in reference.new_failures]
    assert "FAIL" not in reference.verdicts.values()
    for name in CONFORMANCE_FAULTS:
        fault = FAULTY[name]
        # The scenario that catches it and the first one (which it passes): the verdicts of both kinds, in less time.
        checks = tuple(c for c in scenario_checks if c.id in (f"scenario:{fault.caught_by}", scenario_checks[0].id))
        result = run_conformance(fault.factory, checks=checks, out_dir=tmp_path / name, timeout=30, system_name=name)
        assert not result.passed
        assert [r.status for r in result.results] == ["pass", "fail"]
        assert {result.verdicts[r] for r in fault.breaks} == {"FAIL"}, {r: result.verdicts[r] for r in fault.breaks}
        failing = [r for r, v in result.verdicts.items() if v == "FAIL"]
        assert len(failing) <= 3, f"{name}: {failing} FAIL, more than the broken requirement and two others"
        assert "pass" in result.verdicts.values()
        failed = [r for r in result.new_failures if r.check.id == f"scenario:{fault.caught_by}"]
        assert failed and failed[0].artefacts, f"{name}: {fault.caught_by} does not fail with artefacts"
        trace_file = next(p for p in failed[0].artefacts if p.suffix == ".json")
        _check_trace(fault, trace_file)
