"""The trace format: schema generated from the models without drift, strict loading, replay that finds divergence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mjpki.runner import run_scenario
from mjpki.scenarios import SCENARIOS
from mjpki.spec.actions import ACTION_TYPES, action_from_json
from mjpki.spec.outcome import refused
from mjpki.spec.reasons import Reason
from mjpki.spec.schema import SCHEMA_PATH, schema_text, trace_schema
from mjpki.spec.trace import TRACE_FORMAT, Trace, TraceError, load_trace, record, replay_on_spec

TRACE = run_scenario(SCENARIOS["lost-card-found"]).trace


def test_schema_file_matches_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run `mjpki schema --write`"


def test_schema_covers_every_action_and_reason() -> None:
    schema = trace_schema()
    assert {k.removeprefix("step_") for k in schema["$defs"] if k.startswith("step_")} == set(ACTION_TYPES)
    codes = set(schema["$defs"]["outcome"]["properties"]["code"]["enum"])
    assert codes == {"ACCEPTED", *(r.name for r in Reason)}


def test_trace_documents_fit_the_schema_shape() -> None:
    """Each step's args use exactly the properties the schema lists for that action, required ones included."""
    schema = trace_schema()
    data = TRACE.to_json()
    assert set(data) <= set(schema["properties"]) and set(schema["required"]) <= set(data)
    for s in data["steps"]:
        args_schema = schema["$defs"][f"step_{s['action']}"]["properties"]["args"]
        assert set(s["args"]) <= set(args_schema["properties"])
        assert set(args_schema["required"]) <= set(s["args"])


def test_trace_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.json"
    path.write_text(TRACE.dumps(), encoding="utf-8")
    loaded = load_trace(path)
    assert loaded.to_json() == TRACE.to_json()
    assert json.loads(path.read_text())["format"] == TRACE_FORMAT


def test_replay_finds_the_first_tampered_step() -> None:
    steps = list(TRACE.steps)
    i = 12
    steps[i] = replace(steps[i], expected=refused(Reason.PIN_LOCKED))
    result = replay_on_spec(replace(TRACE, steps=tuple(steps)))
    assert not result.agrees
    assert result.divergences[0].index == i
    assert result.divergences[0].recorded.code == "PIN_LOCKED"


def test_record_matches_replay() -> None:
    actions = [s.action for s in TRACE.steps]
    again = record(TRACE.world, actions, title="again")
    assert [s.expected for s in again.steps] == [s.expected for s in TRACE.steps]
    assert all(s.reqs for s in again.steps)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other/9"), "format"),
        (lambda d: d.pop("world"), "world"),
        (lambda d: d["steps"][0].update(action="Teleport"), "step 0: unknown action 'Teleport'"),
        (lambda d: d["steps"][1]["args"].update(phone=None, colour="red"), "step 1"),
        (lambda d: d["steps"][2]["expected"].update(code="MAYBE"), "step 2"),
        (lambda d: d.update(steps={}), "steps must be a list"),
    ],
)
def test_malformed_traces_are_refused_with_a_reason(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = TRACE.to_json()
    mutate(data)
    with pytest.raises(TraceError, match=message):
        Trace.from_json(data)


def test_not_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TraceError, match="not JSON"):
        load_trace(path)


def test_action_args_are_type_checked() -> None:
    with pytest.raises(ValueError, match="minutes must be an integer"):
        action_from_json({"action": "AdvanceTime", "args": {"minutes": "5"}})
    with pytest.raises(ValueError, match="online must be true or false"):
        action_from_json({"action": "SetOnline", "args": {"phone": "D1", "online": "yes"}})
    with pytest.raises(ValueError, match=r"SetPin.kind must be one of \['signing', 'auth'\], got 'both'"):
        action_from_json({"action": "SetPin", "args": {"phone": "D1", "kind": "both"}})
