"""Every named scenario, run against the reference implementation (mjpki.impl.system.ReferenceSystem).

Each step's outcome code must be the scenario's; the details a scenario lists must match too (none of them is a
spec-internal serial: where a scenario lists serials they are empty tuples); after every step the state invariants of
mjpki.properties.invariants must hold on the system's own observation, and the transition invariants on each step.
"""

from __future__ import annotations

import pytest

from mjpki.impl.ca import JpkiCa
from mjpki.impl.system import ReferenceSystem
from mjpki.properties.invariants import check_state, check_transition
from mjpki.scenarios import SCENARIOS

PASSING = sorted(SCENARIOS)
"""The scenarios run here: all of them."""


@pytest.fixture(scope="module")
def ca() -> JpkiCa:
    return JpkiCa.generate()


def test_every_scenario_is_run() -> None:
    assert set(PASSING) == set(SCENARIOS)


@pytest.mark.parametrize("sid", PASSING)
def test_scenario_on_implementation(sid: str, ca: JpkiCa) -> None:
    sc = SCENARIOS[sid]
    system = ReferenceSystem(sc.world, ca=ca)
    try:
        pre = system.observation()
        assert [str(v) for v in check_state(sc.world, pre)] == []
        for i, exp in enumerate(sc.steps):
            outcome = system.step(exp.action)
            where = f"{sid} step {i} {exp.action}"
            assert outcome.code == exp.code, f"{where}: expected {exp.code}, got {outcome}"
            for key, value in exp.details.items():
                assert outcome.details.get(key) == value, f"{where}: detail {key} expected {value!r}, got {outcome}"
            post = system.observation()
            assert [str(v) for v in check_state(sc.world, post)] == [], where
            assert [str(v) for v in check_transition(sc.world, pre, exp.action, outcome, post)] == [], where
            pre = post
    finally:
        system.close()
