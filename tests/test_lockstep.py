"""Lockstep runs of spec and system: a correct system passes, faulty ones are caught at the step that breaks a requirement."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from hypothesis import Phase, settings
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import run_state_machine_as_test

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.adapters.system import SystemAdapter
from mjpki.lockstep import Lockstep, SearchStopped, lockstep_machine
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.scenarios import SCENARIOS, base_world
from mjpki.spec import actions as A
from mjpki.spec.outcome import Outcome, accepted
from mjpki.spec.world import World

# Finding is quick; shrinking replays the lockstep run hundreds of times, so the detection
# tests only find (the trace is then the unshrunk run) and one test covers shrinking.
FIND = settings(max_examples=300, stateful_step_count=50, derandomize=True, database=None, deadline=None, phases=[Phase.generate])


def test_spec_adapter_is_a_system_adapter() -> None:
    assert isinstance(SpecSystem(base_world()), SystemAdapter)


def test_the_spec_passes_against_itself(tmp_path) -> None:  # type: ignore[no-untyped-def]
    machine = lockstep_machine(SpecSystem, base_world(), trace_dir=str(tmp_path))
    run_state_machine_as_test(machine, settings=settings(max_examples=40, stateful_step_count=40, deadline=None, database=None))
    assert list(tmp_path.iterdir()) == []


def _caught(factory, world: World, tmp_path, name: str, how: settings = FIND) -> dict:  # type: ignore[no-untyped-def]
    machine = lockstep_machine(factory, world, trace_dir=str(tmp_path), name=name, timeout=30)
    with pytest.raises(AssertionError, match="diverges from the spec"):
        run_state_machine_as_test(machine, settings=how)
    return json.loads((tmp_path / f"{name}.json").read_text())


def test_shrunk_trace_is_shorter_and_still_diverges(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The trace file holds the shrunk run: no longer than the first one found, diverging at its last sent step."""
    b = SEEDED_BUGS["card_found_resumes_signing"]
    factory = lambda w: SpecSystem(w, stepper=b.stepper)  # noqa: E731
    found = _caught(factory, base_world(), tmp_path / "found", "bug")
    # Shrinking within a budget (as mjpki.conformance does): the file keeps the shortest failing run written so far.
    first: list[float] = []
    machine = lockstep_machine(
        factory, base_world(), trace_dir=str(tmp_path / "shrunk"), name="bug", timeout=30,
        on_divergence=lambda _t, _d: first.append(time.monotonic()), stop=lambda: bool(first) and time.monotonic() - first[0] > 20,
    )  # fmt: skip
    with pytest.raises((AssertionError, SearchStopped, FlakyStrategyDefinition)):
        run_state_machine_as_test(machine, settings=settings(FIND, phases=[Phase.generate, Phase.shrink]))
    shrunk = json.loads((tmp_path / "shrunk" / "bug.json").read_text())
    assert shrunk["meta"]["divergence"]["index"] <= found["meta"]["divergence"]["index"]
    assert shrunk["meta"]["divergence"]["index"] == len(shrunk["steps"]) - 1
    assert (tmp_path / "shrunk" / "bug.txt").read_text().count(">>") >= 1


@pytest.mark.parametrize("bug", list(SEEDED_BUGS))
def test_seeded_bug_systems_are_caught(bug: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Systems whose state goes wrong: caught by an invariant on their observation, at the diverging step."""
    b = SEEDED_BUGS[bug]
    world = base_world(**{n: getattr(b.variants, n) for n in ("cascade_delay_minutes",)})
    data = _caught(lambda w: SpecSystem(w, stepper=b.stepper), world, tmp_path, bug)
    div = data["meta"]["divergence"]
    assert set(b.reqs) & set(div["reqs"]), f"{bug}: divergence {div} does not name {b.reqs}"
    assert b.breaks in div["what"]
    assert data["steps"][div["index"]]["violations"]


class Lying:
    """A system that reports ACCEPTED where the spec refuses with one reason (and changes nothing)."""

    def __init__(self, world: World, *, lie_about: str) -> None:
        self.inner = SpecSystem(world)
        self.lie_about = lie_about

    def step(self, action: A.Action) -> Outcome:
        before = self.inner.state
        outcome = self.inner.step(action)
        if outcome.code == self.lie_about:
            self.inner.state = before
            return accepted()
        return outcome

    def observation(self):  # type: ignore[no-untyped-def]
        return self.inner.observation()

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("lie", "req"),
    [
        ("COMMITMENT_MISMATCH", "ISS-6"),
        ("SE_ID_MISMATCH", "PIN-4"),
        ("CERT_REVOKED", "REV-5"),
        ("WRONG_PIN", "PIN-3"),
        ("CONSENT_REQUIRED", "ISS-4"),
    ],
)
def test_wrong_acceptances_are_caught(lie: str, req: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A system that wrongly accepts is caught as surely as one that wrongly refuses."""
    # Some lies sit on rare paths (PIN initialisation on a foreign SE): a search stops at its first find, so a larger
    # budget costs nothing when the lie is common and keeps a rare one from depending on one derandomized sequence.
    data = _caught(lambda w: Lying(w, lie_about=lie), base_world(), tmp_path, f"lies-{lie}", settings(FIND, max_examples=1500))
    div = data["meta"]["divergence"]
    step = data["steps"][div["index"]]
    assert step["expected"]["code"] == lie and step["actual"]["code"] == "ACCEPTED"
    assert req in div["reqs"]


def test_wrong_details_are_caught() -> None:
    """The tries left after a wrong PIN are compared, not only the code."""

    class OffByOne(SpecSystem):
        def step(self, action: A.Action) -> Outcome:
            out = super().step(action)
            if "tries_left" in out.details:
                return replace(out, details=out.details.set("tries_left", out.details["tries_left"] + 1))
            return out

    run = Lockstep(OffByOne, base_world())
    for e in SCENARIOS["pin-lock-and-initialise"].steps:
        run.step(e.action)
        if run.broken:
            break
    assert run.divergence is not None and "tries_left" in run.divergence.what and "PIN-3" in run.divergence.reqs


class Misbehaving(SpecSystem):
    def __init__(self, world: World, *, how: str, at: int = 2) -> None:
        super().__init__(world)
        self.how, self.at, self.count = how, at, 0

    def step(self, action: A.Action) -> Outcome:
        self.count += 1
        if self.count == self.at:
            if self.how == "raise":
                raise RuntimeError("database is locked")
            if self.how == "hang":
                time.sleep(2)
            if self.how == "garbage":
                return "OK"  # type: ignore[return-value]
        return super().step(action)

    def observation(self):  # type: ignore[no-untyped-def]
        if self.count >= self.at:
            self.observed_after = getattr(self, "observed_after", 0) + 1
            if self.how == "bad-observation":
                return {"certs": []}
            if self.how == "observation-hangs":
                time.sleep(2)
            if self.how == "observation-raises":
                raise OSError("reader removed")
        return super().observation()


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("raise", "raised RuntimeError: database is locked"),
        ("hang", "no answer within 0.3 s"),
        ("garbage", "returned str, not an Outcome"),
        ("bad-observation", "observation() returned dict"),
        # The observation is queued with the step on the worker thread: its own deadline and failures still hold.
        ("observation-hangs", "observation(): no answer within 0.3 s"),
        ("observation-raises", "observation(): the adapter raised OSError: reader removed"),
    ],
)
def test_misbehaving_adapters_are_failures_not_crashes(how: str, message: str) -> None:
    run = Lockstep(lambda w: Misbehaving(w, how=how), base_world(), timeout=0.3)
    for e in SCENARIOS["issue-both-kinds"].steps[:5]:
        run.step(e.action)
    assert run.divergence is not None and message in run.divergence.what
    assert run.divergence.index == 1
    trace = run.trace()
    assert trace.first_divergence is not None or trace.steps[1].note
    run.close()


@pytest.mark.parametrize("how", ["raise", "garbage"])
def test_no_observation_is_asked_after_a_step_that_gave_no_outcome(how: str) -> None:
    """The observation queued with a step is made only when the step gave an outcome: after a failure nothing more is sent."""
    systems: list[Misbehaving] = []

    def make(w: World) -> Misbehaving:
        systems.append(Misbehaving(w, how=how))
        return systems[-1]

    run = Lockstep(make, base_world(), timeout=5)
    for e in SCENARIOS["issue-both-kinds"].steps[:3]:
        run.step(e.action)
    run.close()
    assert run.divergence is not None and run.divergence.index == 1
    assert getattr(systems[0], "observed_after", 0) == 0


def test_factory_failure_is_reported() -> None:
    def factory(world: World) -> SystemAdapter:
        raise OSError("reader not found")

    run = Lockstep(factory, base_world())
    assert run.divergence is not None and "factory failed" in run.divergence.what and run.divergence.index == -1
    run.step(A.InstallApp(phone="D1"))  # further steps are recorded, not sent
    assert run.steps[0].note == "not sent to the system"


def test_a_diverged_system_is_still_closed() -> None:
    """A system that parted from the spec may hold readers or files: the harness closes it all the same."""
    closed: list[bool] = []

    class Diverging(SpecSystem):
        def step(self, action: A.Action) -> Outcome:
            return accepted() if isinstance(action, A.Sign) else super().step(action)

        def close(self) -> None:
            closed.append(True)

    run = Lockstep(Diverging, base_world())
    run.step(A.Sign(phone="D1", pin="1234", sp="portal"))
    assert run.broken
    run.close()
    assert closed == [True]


def test_a_factory_that_hangs_is_a_failure_with_its_own_time_limit() -> None:
    def slow(world: World) -> SpecSystem:
        time.sleep(2)
        return SpecSystem(world)

    run = Lockstep(slow, base_world(), timeout=5, factory_timeout=0.3)
    assert run.divergence is not None and run.divergence.index == -1
    assert "factory failed: no answer within 0.3 s" in run.divergence.what
    run.close()
    assert Lockstep(slow, base_world(), timeout=0.3, factory_timeout=5).divergence is None  # the step timeout does not apply
