"""docs/adapters.md cannot rot: its example adapter runs in lockstep with the spec, and what it states matches the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mjpki.adapters.system import SystemAdapter
from mjpki.adapterspec import load_factory
from mjpki.cli import build_parser
from mjpki.lockstep import COMPARED_DETAILS, Lockstep
from mjpki.scenarios import SCENARIOS
from mjpki.spec.actions import ACTION_TYPES
from mjpki.spec.observe import CertView, Observation, SlotView
from mjpki.spec.reasons import Reason

DOC = Path(__file__).resolve().parent.parent / "docs" / "adapters.md"
MARKER = "<!-- example: mymodule.py -->"


def example_code() -> str:
    """The Python block that follows the example marker in docs/adapters.md."""
    text = DOC.read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"{DOC} must mark its example with {MARKER!r} exactly once"
    found = re.search(r"```python\n(.*?)\n```", text.split(MARKER, 1)[1], re.DOTALL)
    assert found, f"no ```python block after {MARKER!r}"
    return found.group(1) + "\n"


@pytest.fixture(scope="module")
def example(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The example written to a module file and loaded as `--adapter` would load it."""
    path = tmp_path_factory.mktemp("docs") / "mymodule_from_docs.py"
    path.write_text(example_code(), encoding="utf-8")
    return load_factory(f"{path}:factory")


@pytest.mark.parametrize("sid", ["issue-both-kinds", "lost-card-found", "pin-lock-and-initialise", "model-change-old-online"])
def test_example_adapter_agrees_with_the_spec(example, sid: str) -> None:  # type: ignore[no-untyped-def]
    sc = SCENARIOS[sid]
    run = Lockstep(example, sc.world, timeout=60, system_name="docs example")
    try:
        assert isinstance(run.system, SystemAdapter)
        for e in sc.steps:
            run.step(e.action)
    finally:
        run.close()
    assert run.divergence is None, f"the docs' example parts from the spec: {run.divergence}"
    sent = [s for s in run.steps if s.actual is not None]
    assert len(sent) >= len(sc.steps) - 2, "the steps went to the example system, not only to the spec"


def test_example_maps_every_action_type() -> None:
    """A new action type must get its case in the example (the `case _` fallback would fail at run time)."""
    code = example_code()
    missing = [name for name in ACTION_TYPES if not re.search(rf"case A\.{name}\(", code) and f"| A.{name}()" not in code]
    assert not missing, f"docs/adapters.md's example adapter has no case for {missing}"


def test_example_refusal_is_an_outcome_and_reaches_the_suite(example) -> None:  # type: ignore[no-untyped-def]
    from mjpki.spec import actions as A
    from mjpki.spec.machine import step
    from mjpki.spec.state import initial_state

    world = SCENARIOS["issue-both-kinds"].world
    action = A.Register(person="P1", phone="D1")
    _, expected = step(world, initial_state(world), action)
    assert expected.reason is not None
    system = example(world)
    try:
        out = system.step(action)
        assert out.code == expected.code, "the vendor's refusal comes back as the spec's reason code"
        assert isinstance(system.observation(), Observation)
    finally:
        system.close()


def test_doc_states_what_the_code_does() -> None:
    text = DOC.read_text(encoding="utf-8")
    environmental = {r.name for r in Reason if r.environmental}
    found = re.search(r"Three reason codes are \*\*environmental\*\*: (.*?)\.", text, re.DOTALL)
    assert found, "docs/adapters.md no longer lists the environmental reason codes"
    stated = {c.strip(" `\n") for c in found.group(1).replace("\n", " ").split(",")}
    assert stated == environmental, f"environmental reasons in the docs {stated} vs spec/reasons.py {environmental}"
    for key in COMPARED_DETAILS:
        assert f"`{key}`" in text, f"compared detail {key} is not documented"
    for cls in (Observation, CertView, SlotView):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text, f"{cls.__name__}.{f.name} is not documented"
    for link in re.findall(r"\]\((\.\./[^)]+|[a-z-]+\.md)\)", text):
        assert (DOC.parent / link).resolve().exists(), f"broken link {link}"


def test_documented_commands_exist() -> None:
    parser = build_parser()
    parser.parse_args(["run", "--adapter", "mymodule:factory", "--profile", "ci", "--out", "d", "--known-failures", "k.toml"])
    parser.parse_args(["replay", "t.json", "--adapter", "mymodule:factory", "--emit-pytest", "t.py", "--markdown", "t.md"])
    from mjpki import pytest_plugin

    options: list[str] = []

    class Group:
        def addoption(self, *names: str, **_: object) -> None:
            options.extend(names)

    class Parser:
        def getgroup(self, *_: object, **__: object) -> Group:
            return Group()

        def addoption(self, *names: str, **_: object) -> None:
            options.extend(names)

    pytest_plugin.pytest_addoption(Parser())  # type: ignore[arg-type]
    text = DOC.read_text(encoding="utf-8")
    for opt in ("--jpki-adapter", "--jpki-profile", "--jpki-out", "--jpki-known-failures"):
        assert opt in options, f"the pytest plugin has no {opt}"
        assert opt in text
