"""Mermaid sequence diagrams of traces: every action mapped, every line well-formed, the divergence marked exactly when there is one."""

from __future__ import annotations

import dataclasses
import re
import string
from dataclasses import replace

import pytest

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.lockstep import Lockstep
from mjpki.mermaid import ACTOR_PARTICIPANT, FLOWS, PARTICIPANTS, escape, markdown_report, sequence_diagram, write_markdown_report
from mjpki.properties.seeded_bugs import SEEDED_BUGS
from mjpki.runner import run_scenario
from mjpki.scenarios import SCENARIOS
from mjpki.spec.actions import ACTION_TYPES
from mjpki.spec.outcome import accepted
from mjpki.spec.trace import Trace

_ID = r"[A-Za-z][A-Za-z0-9]*"
_TEXT = r"(?:[^;#:<>{}%`\n]|#(?:\d+|lt|gt);)*"  # Mermaid's syntax characters only as entity codes
_LINE = {
    "header": re.compile(r"sequenceDiagram"),
    "participant": re.compile(rf"(?:participant|actor) (?P<a>{_ID}) as \S{_TEXT}"),
    "message": re.compile(rf"(?P<a>{_ID})(?:->>|-->>)(?P<b>{_ID}): \S{_TEXT}"),
    "note": re.compile(rf"Note over (?P<a>{_ID})(?:,(?P<b>{_ID}))?: \S{_TEXT}"),
    "rect": re.compile(r"rect rgb\((?:\d{1,3}),(?:\d{1,3}),(?:\d{1,3})\)"),
    "end": re.compile(r"end"),
}


def parse(diagram: str) -> list[tuple[str, re.Match[str]]]:
    """Check a diagram against the subset of Mermaid's sequenceDiagram grammar mjpki writes; its lines by kind."""
    lines = diagram.rstrip("\n").split("\n")
    assert lines[0] == "sequenceDiagram", lines[0]
    declared: list[str] = []
    depth = 0
    parsed = []
    for n, raw in enumerate(lines):
        line = raw.strip()
        kind, match = next(((k, m) for k, rx in _LINE.items() if (m := rx.fullmatch(line))), (None, None))
        assert kind is not None and match is not None, f"line {n + 1} is not Mermaid mjpki writes: {raw!r}"
        assert kind != "header" or n == 0, f"line {n + 1}: a second header"
        if kind == "participant":
            assert not any(k in ("message", "note") for k, _ in parsed), f"line {n + 1}: participant declared after use"
            declared.append(match["a"])
        elif kind in ("message", "note"):
            for who in (match["a"], match.groupdict().get("b")):
                assert who is None or who in declared, f"line {n + 1}: {who} is not a declared participant"
        elif kind == "rect":
            depth += 1
            assert depth == 1, f"line {n + 1}: nested rect"
        elif kind == "end":
            depth -= 1
            assert depth == 0, f"line {n + 1}: end without rect"
        parsed.append((kind, match))
    assert depth == 0, "a rect is not closed"
    assert len(declared) == len(set(declared)), "a participant is declared twice"
    return parsed


def _faulty_trace(bug: str = "card_found_resumes_signing", scenario: str = "lost-card-found") -> Trace:
    b = SEEDED_BUGS[bug]
    run = Lockstep(lambda w: SpecSystem(w, stepper=b.stepper), SCENARIOS[scenario].world, system_name=f"seeded:{bug}")
    for e in SCENARIOS[scenario].steps:
        run.step(e.action)
    run.close()
    assert run.divergence is not None
    return run.trace(title=f"{scenario} on seeded bug {bug}")


# --- the flow table ----------------------------------------------------------------------------


def test_every_action_type_has_a_flow() -> None:
    """A new action type without a message flow fails here."""
    assert set(FLOWS) == set(ACTION_TYPES), f"missing: {set(ACTION_TYPES) - set(FLOWS)}; unknown: {set(FLOWS) - set(ACTION_TYPES)}"


@pytest.mark.parametrize("name", sorted(ACTION_TYPES))
def test_flow_starts_with_its_actor_and_names_only_its_arguments(name: str) -> None:
    cls, flow = ACTION_TYPES[name], FLOWS[name]
    assert ACTOR_PARTICIPANT[cls.actor] in flow.participants, f"{name} is started by {cls.actor}; its flow leaves them out"
    assert set(flow.participants) <= set(PARTICIPANTS)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for _, _, text in (flow.request, *flow.then):
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert used <= fields, f"{name}: {text!r} names {used - fields}, not arguments of the action"


# --- well-formed diagrams --------------------------------------------------------------------------


@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_scenario_diagrams_parse_and_have_no_divergence_block(sid: str) -> None:
    trace = run_scenario(SCENARIOS[sid]).trace
    lines = parse(sequence_diagram(trace))
    assert not any(k == "rect" for k, _ in lines)
    requests = [m for k, m in lines if k == "message" and "->>" in m.group(0) and "-->>" not in m.group(0)]
    replies = [m for k, m in lines if k == "message" and "-->>" in m.group(0)]
    assert len(replies) == len(trace.steps), "one return arrow, with the outcome, per step"
    assert len(requests) >= len(trace.steps)
    for i, s in enumerate(trace.steps):
        assert any(f"[{i}] {s.action.name}" in m.group(0) for m in requests), f"step {i} has no request"
        assert escape(s.expected.code) in replies[i].group(0)


def test_diverging_step_is_in_a_red_rect_with_what_and_requirements() -> None:
    trace = _faulty_trace()
    diagram = sequence_diagram(trace)
    lines = parse(diagram)
    assert [k for k, _ in lines].count("rect") == 1
    start = next(i for i, (k, _) in enumerate(lines) if k == "rect")
    end = next(i for i, (k, _) in enumerate(lines) if k == "end")
    block = [m.group(0) for _, m in lines[start + 1 : end]]
    index = trace.meta["divergence"]["index"]
    assert "rgb(255,220,220)" in lines[start][1].group(0)
    assert any(f"[{index}] {trace.steps[index].action.name}" in b for b in block)
    note = next(b for b in block if b.startswith("Note over"))
    assert f"step {index} diverges" in note and "SUS-3" in note and "suspended_signing_never_resumes" in note
    reply = next(b for b in block if "-->>" in b)
    assert reply.endswith(", invariant broken") and "spec " not in reply, "same outcome: shown once, with the broken invariant"


def test_wrong_code_shows_spec_and_system_outcomes() -> None:
    """A system that accepts where the spec refuses: both outcomes on the return arrow, inside the red block."""
    trace = run_scenario(SCENARIOS["lost-card-found"]).trace
    i = next(i for i, s in enumerate(trace.steps) if s.expected.code == "CERT_SUSPENDED")
    steps = [replace(s, actual=s.expected) for s in trace.steps[:i]] + [replace(trace.steps[i], actual=accepted())]
    diagram = sequence_diagram(replace(trace, steps=tuple(steps)))
    lines = parse(diagram)
    inside = [m.group(0) for k, m in lines[[k for k, _ in lines].index("rect") :]]
    assert any(escape(f"spec {trace.steps[i].expected} / system ACCEPTED") in line for line in inside)
    assert any(f"step {i} diverges" in line and "CERT_SUSPENDED" in line for line in inside)


def test_divergence_block_present_exactly_when_the_trace_diverges() -> None:
    trace = _faulty_trace()
    index = trace.meta["divergence"]["index"]
    agreeing = replace(trace, steps=trace.steps[:index], meta={})
    assert agreeing.first_divergence is None
    assert "rect" not in sequence_diagram(agreeing)
    # a violation alone (no system outcome, as in explorer traces) diverges too
    spec_only = replace(agreeing, steps=(*agreeing.steps, replace(trace.steps[index], actual=None)))
    assert [k for k, _ in parse(sequence_diagram(spec_only))].count("rect") == 1


def test_divergence_before_the_first_step_is_a_note_at_the_top() -> None:
    trace = replace(_faulty_trace(), steps=(), meta={"divergence": {"index": -1, "what": "the adapter factory failed: boom", "reqs": []}})
    lines = parse(sequence_diagram(trace))
    assert lines[-1][0] == "note" and "before the first step" in lines[-1][1].group(0) and "boom" in lines[-1][1].group(0)
    assert not any(k == "rect" for k, _ in lines)


def test_text_mermaid_cannot_take_is_escaped() -> None:
    nasty = "a; b: c # d <br> {e} %% f `g`\nh"
    escaped = escape(nasty)
    assert not set(";:<>{}%`\n") & set(re.sub(r"#(?:\d+|lt|gt);", "", escaped))
    assert "#59;" in escaped and "#58;" in escaped and "#35;" in escaped
    trace = _faulty_trace()
    forged = replace(trace, meta={"divergence": {**trace.meta["divergence"], "what": nasty}})
    parse(sequence_diagram(forged))


def test_long_text_is_cut() -> None:
    assert len(escape("x" * 500, limit=40)) == 40


# --- the Markdown report ---------------------------------------------------------------------------


def test_markdown_report_has_title_summary_table_and_diagram(tmp_path) -> None:  # type: ignore[no-untyped-def]
    trace = _faulty_trace()
    path = tmp_path / "bug.json"
    path.write_text(trace.dumps())
    md = write_markdown_report(trace, path)
    assert md == tmp_path / "bug.md"
    text = md.read_text()
    assert text.startswith(f"# {trace.title}\n")
    assert "**Diverges.** At step 13" in text and "SUS-3" in text
    assert "mjpki replay bug.json --adapter" in text
    table = text.split("## Steps", 1)[1].split("```")[1]
    assert ">>13" in table
    diagram = text.split("```mermaid\n", 1)[1].split("```", 1)[0]
    parse(diagram)
    assert "rect rgb(255,220,220)" in diagram


def test_markdown_report_of_an_agreeing_trace() -> None:
    text = markdown_report(run_scenario(SCENARIOS["issue-both-kinds"]).trace)
    assert "agree at every step" in text and "Diverges" not in text and "rect" not in text


def test_details_divergence_shows_both_outcomes_and_is_marked_in_the_table() -> None:
    """Same code, wrong tries_left: both outcomes on the arrow; the step table marks the step although the codes agree."""
    from mjpki.render import step_table
    from mjpki.spec.actions import Action
    from mjpki.spec.outcome import Outcome

    class OffByOne(SpecSystem):
        def step(self, action: Action) -> Outcome:
            out = super().step(action)
            if "tries_left" in out.details:
                return replace(out, details=out.details.set("tries_left", out.details["tries_left"] + 1))
            return out

    sc = SCENARIOS["pin-lock-and-initialise"]
    run = Lockstep(OffByOne, sc.world)
    for e in sc.steps:
        run.step(e.action)
    run.close()
    trace = run.trace(title="off by one")
    assert run.divergence is not None and trace.first_divergence is None, "codes agree: only the lockstep run knows"
    i = run.divergence.index
    step = trace.steps[i]
    diagram = sequence_diagram(trace)
    parse(diagram)
    assert escape(f"spec {step.expected} / system {step.actual}", limit=120) in diagram
    assert f">>{i} " in step_table(trace) and "tries_left" in step_table(trace).split(f">>{i} ", 1)[1].split("\n")[1]
