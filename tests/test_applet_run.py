"""The applet-level conformance run (mjpki run --applet/--reader), its trace format and replay (mjpki.applet_run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mjpki.applet_run import APPLET_RESULT_FORMAT, EXAMPLES_ENV, KEYS_ENV, printable
from mjpki.cli import main
from mjpki.spec.apdu.trace_schema import (
    APDU_SCHEMA_PATH,
    APDU_TRACE_FORMAT,
    ApduTraceError,
    apdu_schema_text,
    apdu_trace_from_json,
    load_apdu_trace,
)

FAULTY = "tests.faulty_applets:OneExtraTry"


@pytest.fixture(autouse=True)
def small_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXAMPLES_ENV, "4")  # the search's budget: a smoke run, the scenarios carry the verdicts here


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faulty")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(EXAMPLES_ENV, "2")
        # The named checks only: the search on a faulty applet would spend its time shrinking (tests/test_applet_search.py
        # covers the search's finds).
        checks = ["--check", "applet:personalise", "--check", "applet:wrong-pin", "--check", "applet:lock"]
        assert main(["run", "--applet", FAULTY, "--out", str(out), "--db", "", "-q", *checks]) == 1
    return out


def test_reference_conforms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--applet", "mjpki.impl.se:GpSe", "--out", str(tmp_path), "--db", "", "-q"]) == 0
    out = capsys.readouterr().out
    assert "CONFORMS" in out and "DOES NOT CONFORM" not in out
    assert "clause" in out and "requirement" in out
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["format"] == APPLET_RESULT_FORMAT and result["passed"] and result["conforms"]
    ids = [c["id"] for c in result["checks"]]
    assert ids[0] == "applet:personalise" and "applet:search" in ids and "applet:lock" in ids
    assert all(c["status"] == "pass" for c in result["checks"])
    assert result["clauses"]["verify"]["verdict"] == "pass"
    assert result["requirements"]["PIN-3"]["verdict"] == "pass"
    assert not list(tmp_path.glob("applet-*.json"))


def test_faulty_applet_fails_with_artefacts(faulty_run: Path) -> None:
    result = json.loads((faulty_run / "result.json").read_text())
    assert not result["passed"] and not result["conforms"]
    lock = next(c for c in result["checks"] if c["id"] == "applet:lock")
    assert lock["status"] == "fail"
    assert lock["divergence"]["rule"] == "verify" and "PIN-3" in lock["divergence"]["reqs"]
    assert result["clauses"]["verify"]["verdict"] == "FAIL"
    assert result["requirements"]["PIN-3"]["verdict"] == "FAIL"
    for suffix in ("json", "txt", "md"):
        assert (faulty_run / f"applet-lock.{suffix}").is_file()
    md = (faulty_run / "applet-lock.md").read_text()
    assert "```mermaid" in md and "sequenceDiagram" in md and "rect rgb(255,220,220)" in md
    assert "!!" in (faulty_run / "applet-lock.txt").read_text()


def test_trace_loads_and_replays(faulty_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = faulty_run / "applet-lock.json"
    trace = load_apdu_trace(path)
    assert trace.meta["check"] == "applet:lock" and trace.meta["applet"] == FAULTY
    recorded = trace.divergence_index
    assert recorded == len(trace.steps) - 1
    capsys.readouterr()

    assert main(["replay", str(path)]) == 1
    assert f"rejects the answer at step {recorded}:" in capsys.readouterr().out

    assert main(["replay", str(path), "--applet", FAULTY]) == 1
    out = capsys.readouterr().out
    assert f"diverges at step {recorded} " in out and "same step as recorded" in out

    assert main(["replay", str(path), "--applet", "mjpki.impl.se:GpSe"]) == 0
    assert "no divergence" in capsys.readouterr().out


def test_trace_loader_errors(faulty_run: Path, tmp_path: Path) -> None:
    doc = json.loads((faulty_run / "applet-lock.json").read_text())
    with pytest.raises(ApduTraceError, match="format"):
        apdu_trace_from_json({**doc, "format": "mjpki-trace/1"})
    bad = json.loads(json.dumps(doc))
    bad["steps"][1]["command"] = {"op": "send", "apdu": "XYZ"}
    with pytest.raises(ApduTraceError, match=r"\$\.steps\[1\]\.command\.apdu"):
        apdu_trace_from_json(bad)
    bad = json.loads(json.dumps(doc))
    del bad["steps"][2]["observed"]
    with pytest.raises(ApduTraceError, match=r"\$\.steps\[2\]: missing 'observed'"):
        apdu_trace_from_json(bad)
    bad = json.loads(json.dumps(doc))
    bad["steps"][3]["command"] = {"op": "fly"}
    with pytest.raises(ApduTraceError, match="none of the allowed forms"):
        apdu_trace_from_json(bad)
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(ApduTraceError, match="not JSON"):
        load_apdu_trace(tmp_path / "t.json")


def test_schema_drift_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert APDU_SCHEMA_PATH.read_text(encoding="utf-8") == apdu_schema_text()
    assert main(["schema", "--check"]) == 0
    assert "apdu-trace.schema.json is current" in capsys.readouterr().out
    schema = json.loads(apdu_schema_text())
    ops = {d["properties"]["op"]["const"] for n, d in schema["$defs"].items() if n.startswith("command_")}
    assert ops == {"send", "initialize-update", "external-authenticate", "wrapped", "reset", "switch-caller"}
    assert schema["properties"]["format"]["const"] == APDU_TRACE_FORMAT


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--applet", "nope"],
        ["run", "--applet", "no.such.module:Cls"],
        ["run", "--applet", "mjpki.impl.se:MAX_SE_ID_LEN"],
        ["run", "--applet", "mjpki.impl.se:GpSe", "--check", "applet:nope"],
        ["run", "--applet", "mjpki.impl.se:GpSe", "--reader", "x"],
        ["replay", "TRACE", "--applet", "nope"],
    ],
)
def test_usage_errors_are_one_line(argv: list[str], faulty_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(faulty_run / "applet-lock.json") if a == "TRACE" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mjpki: ") and err.count("\n") == 1


def test_reader_without_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(KEYS_ENV, raising=False)
    assert main(["run", "--reader", "Virtual PCD", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--keys" in err and KEYS_ENV in err
    monkeypatch.setenv(KEYS_ENV, '{"enc": "00"}')
    assert main(["run", "--reader", "Virtual PCD", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and KEYS_ENV in err
    (tmp_path / "k.json").write_text("[]")
    assert main(["run", "--reader", "Virtual PCD", "--keys", str(tmp_path / "k.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_printable_escapes_control_characters() -> None:
    assert printable("a\x1b[31mb\nc\x7f") == "a\\x1b[31mb\\x0ac\\x7f"
