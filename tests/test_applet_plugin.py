"""`pytest --jpki-applet=MODULE:CLASS` / `--jpki-reader=NAME`: the applet-level checks as pytest tests (mjpki/applet_suite.py).

Run in a subprocess as a user runs it: the reference conforms, a faulty class fails with the step table, JUnit properties
and artefacts, and bad options are usage errors (exit 4). The plugin over pcscd is in tests/test_applet_pcsc.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mjpki.applet_run import APPLET_RESULT_FORMAT, EXAMPLES_ENV, KEYS_ENV, applet_checks
from tests.faulty_applets import FAULTY_APPLETS_BY_ID

ROOT = Path(__file__).resolve().parent.parent
FAULTY = FAULTY_APPLETS_BY_ID["one-extra-try"]
FAULTY_SPEC = f"tests.faulty_applets:{FAULTY.cls.__name__}"


def _pytest(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != KEYS_ENV}  # the caller's keys must not reach the run
    full.update({"PYTHONPATH": str(ROOT), EXAMPLES_ENV: "4", **(env or {})})
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    return subprocess.run(command, cwd=cwd, env=full, capture_output=True, text=True, timeout=600)


def _cases(junit: Path) -> dict[str, tuple[ET.Element, dict[str, list[str]]]]:
    """JUnit test cases by name, each with its properties (name -> values)."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props: dict[str, list[str]] = {}
        for p in case.iter("property"):
            props.setdefault(p.get("name", ""), []).append(p.get("value", ""))
        out[case.get("name", "")] = (case, props)
    return out


def test_the_reference_passes_every_check(tmp_path: Path) -> None:
    out = tmp_path / "out"
    junit = f"--junitxml={tmp_path / 'junit.xml'}"
    done = _pytest("--jpki-applet=mjpki.impl.se:GpSe", f"--jpki-out={out}", "--jpki-db=", junit, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    n = len(applet_checks())
    assert f"{n} passed" in done.stdout
    assert "verdict per requirement and per clause" in done.stdout and "; CONFORMS" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["format"] == APPLET_RESULT_FORMAT and result["passed"] and result["conforms"]
    assert [c["id"] for c in result["checks"]] == [c.id for c in applet_checks()]
    cases = _cases(tmp_path / "junit.xml")
    assert set(cases) == {f"test_applet[{c.id}]" for c in applet_checks()}
    _, props = cases["test_applet[applet:lock]"]
    assert "PIN-3" in props["requirements"][0].split() and "verify" in props["clauses"][0].split()
    assert int(props["steps"][0]) > 0 and "artefact" not in props
    _, search = cases["test_applet[applet:search]"]
    assert int(search["runs"][0]) >= 4


def test_a_faulty_applet_fails_with_the_trace_and_junit_properties(tmp_path: Path) -> None:
    out = tmp_path / "out"
    junit = tmp_path / "junit.xml"
    args = [f"--jpki-applet={FAULTY_SPEC}", f"--jpki-out={out}", "--jpki-db=", f"--junitxml={junit}", "-k", "lock or wrong-pin"]
    done = _pytest(*args, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "test_applet[applet:lock]" in done.stdout and "!!39" in done.stdout  # the step table, diverging step marked
    assert "status word 9000, the interface demands 6983" in done.stdout and "DOES NOT CONFORM" in done.stdout
    case, props = _cases(junit)["test_applet[applet:lock]"]
    assert case.find("failure") is not None
    assert props["diverging_clause"] == ["verify"] and set(FAULTY.reqs) <= set(props["diverging_requirements"][0].split())
    assert sorted(Path(p).name for p in props["artefact"]) == ["applet-lock.json", "applet-lock.md", "applet-lock.txt"]
    assert all(Path(p).is_file() for p in props["artefact"])
    result = json.loads((out / "result.json").read_text())
    assert [c["id"] for c in result["checks"]] == ["applet:wrong-pin", "applet:lock"] and not result["passed"]
    assert result["clauses"]["verify"]["verdict"] == "FAIL" and result["requirements"]["PIN-3"]["verdict"] == "FAIL"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jpki-applet=nosuchmodule_mjpki:X"], "cannot import 'nosuchmodule_mjpki'"),
        (["--jpki-applet=mjpki.impl.se:MAX_SE_ID_LEN"], "not a class"),
        (["--jpki-reader=Virtual PCD 00 01"], "--jpki-reader needs the SE's ISD SCP03 keys: --jpki-keys FILE or $MJPKI_SE_KEYS"),
        (["--jpki-reader=Virtual PCD 00 01", "--jpki-keys=no-such-keys.json"], "--jpki-keys no-such-keys.json: cannot read it"),
        (["--jpki-applet=mjpki.impl.se:GpSe", "--jpki-reader=Virtual PCD 00 01"], "not both"),
        (["--jpki-applet=mjpki.impl.se:GpSe", "--jpki-adapter=mjpki.adapters.reference:factory"], "give one"),
        (["--jpki-keys=k.json"], "--jpki-keys goes with --jpki-reader"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    done = _pytest(*args, cwd=tmp_path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_bad_keys_in_the_environment_are_a_usage_error(tmp_path: Path) -> None:
    done = _pytest("--jpki-reader=Virtual PCD 00 01", cwd=tmp_path, env={KEYS_ENV: '{"enc": "00"}'})
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"${KEYS_ENV}" in done.stderr, done.stderr
