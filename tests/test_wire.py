"""Issue 14: the wire protocol mjpki-adapter/1, its two transports and a second language.

- the codec carries every Observation field both ways; the messages a session exchanges match the generated schema;
- `--adapter` in a child, `--in-process`, `--shim` and `--url` give the same verdicts; faulty systems are caught
  through the wire, the published-artefacts fault included (artefacts and ocsp cross the wire as capabilities);
- the Node.js shim in examples/node/ (standard library only) conforms through serve-system, and fails when it lies.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from mjpki.adapters.spec_adapter import SpecSystem
from mjpki.cli import main
from mjpki.conformance import all_checks, run_conformance
from mjpki.impl.ca import build_ocsp_request
from mjpki.lockstep import Lockstep
from mjpki.scenarios import SCENARIOS, base_world
from mjpki.spec.actions import AdvanceTime
from mjpki.spec.codec import CodecError, decode, encode, schema_of
from mjpki.spec.domain import Kind
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.observe import Observation
from mjpki.wire.choose import choose_system
from mjpki.wire.host import Session
from mjpki.wire.http import http_factory
from mjpki.wire.protocol import PROTOCOL
from mjpki.wire.schema import protocol_schema
from mjpki.wire.shim import python_host_command, python_host_env, shim_factory

ROOT = Path(__file__).resolve().parent.parent
NODE_SHIM = ROOT / "examples" / "node" / "shim.js"
SCENARIO_CHECKS = ("scenario:lost-phone-found", "scenario:cascade-after-delay")


# --- the codec and the schema ---------------------------------------------------------------------------------------


def _validate(schema: dict[str, Any], data: Any, root: dict[str, Any], where: str = "$") -> list[str]:
    """A JSON Schema checker for the keywords the generated schemas use (no third-party validator is installed)."""
    if "$ref" in schema:
        return _validate(root["$defs"][schema["$ref"].rsplit("/", 1)[1]], data, root, where)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            fits = [s for s in schema[key] if not _validate(s, data, root, where)]
            if (key == "oneOf" and len(fits) != 1) or not fits:
                return [f"{where}: matches {len(fits)} of {key}"]
    problems: list[str] = []
    if "const" in schema and data != schema["const"]:
        return [f"{where}: {data!r} is not {schema['const']!r}"]
    if "enum" in schema and data not in schema["enum"]:
        return [f"{where}: {data!r} not in enum"]
    kinds = schema.get("type")
    if kinds is not None:
        names = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None), "number": (int, float)}
        ok = any(
            (isinstance(data, int) and not isinstance(data, bool)) if k == "integer" else isinstance(data, names[k])
            for k in ([kinds] if isinstance(kinds, str) else kinds)
        )
        if not ok:
            return [f"{where}: {type(data).__name__} is not {kinds}"]
    if isinstance(data, dict):
        props = schema.get("properties", {})
        problems += [f"{where}: missing {r}" for r in schema.get("required", []) if r not in data]
        if schema.get("additionalProperties") is False:
            problems += [f"{where}: unexpected {k}" for k in data if k not in props]
        for k, v in data.items():
            if k in props:
                problems += _validate(props[k], v, root, f"{where}.{k}")
    if isinstance(data, list):
        prefix = schema.get("prefixItems", [])
        if ("minItems" in schema and len(data) < schema["minItems"]) or ("maxItems" in schema and len(data) > schema["maxItems"]):
            problems.append(f"{where}: {len(data)} items")
        for i, v in enumerate(data):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if sub is not None:
                problems += _validate(sub, v, root, f"{where}[{i}]")
    if isinstance(data, str) and "pattern" in schema and not re.search(schema["pattern"], data):
        problems.append(f"{where}: {data!r} does not match {schema['pattern']}")
    return problems


def test_observations_cross_the_codec_unchanged_and_bad_ones_name_the_field() -> None:
    sc = SCENARIOS["lost-card-found"]
    system = SpecSystem(sc.world)
    seen = 0
    for e in sc.steps:
        system.step(e.action)
        obs = system.observation()
        assert decode(Observation, json.loads(json.dumps(encode(Observation, obs)))) == obs
        seen += len(obs.certs)
    assert seen > 0
    data = encode(Observation, system.observation())
    data["certs"][1]["status"] = "lost"
    with pytest.raises(CodecError, match=r"observation\.certs\[1\]\.status must be one of"):
        decode(Observation, data, "observation")
    data = encode(Observation, system.observation())
    data["extra"] = 1
    with pytest.raises(CodecError, match="unexpected field 'extra'"):
        decode(Observation, data, "observation")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Probe:
    """A value with every kind of field the codec supports, as a field added to an Observation later might be."""

    blob: bytes
    ratio: float
    pair: tuple[int, str]
    table: FrozenMap[tuple[str, Kind], int | None]
    kinds: frozenset[Kind]
    note: str | None = None


def test_the_codec_and_its_schema_cover_every_field_type() -> None:
    value = _Probe(
        blob=b"\x00\xffDER", ratio=0.5, pair=(3, "x"), table=FrozenMap({("P1", Kind.AUTH): 2, ("P2", Kind.SIGNING): None}),
        kinds=frozenset(Kind),
    )  # fmt: skip
    data = json.loads(json.dumps(encode(_Probe, value)))
    assert data["blob"] == "AP9ERVI=" and data["table"][0] == [["P1", "auth"], 2] and "note" in data
    assert decode(_Probe, data) == value
    defs: dict[str, Any] = {}
    root = {"$defs": defs, **schema_of(_Probe, defs)}
    assert _validate(root, data, root) == []
    del data["note"]  # an optional field may be left out
    assert decode(_Probe, data) == value and _validate(root, data, root) == []
    data["pair"] = [3]
    with pytest.raises(CodecError, match=r"value\.pair must have 2 items"):
        decode(_Probe, data)
    assert _validate(root, data, root)


def test_every_message_of_a_session_matches_the_generated_schema() -> None:
    from mjpki.adapters.reference import factory

    schema = protocol_schema()
    session = Session(factory, name="reference")
    world = base_world()
    requests: list[dict[str, Any]] = [
        {"id": 1, "op": "hello", "protocol": PROTOCOL},
        {"id": 2, "op": "new", "world": world.to_json()},
        *({"id": 3 + i, "op": "step", "action": e.action.to_json()} for i, e in enumerate(SCENARIOS["lost-phone-found"].steps[:6])),
        {"id": 20, "op": "observation"},
        {"id": 21, "op": "artefacts"},
    ]
    replies = [session.handle(r) for r in requests]
    art = replies[-1]["artefacts"]
    cert, issuer = x509.load_der_x509_certificate(base64.b64decode(art["certs"][0])), None
    for ca in art["ca_certs"]:
        candidate = x509.load_der_x509_certificate(base64.b64decode(ca))
        if candidate.subject == cert.issuer:
            issuer = candidate
    assert issuer is not None
    der = build_ocsp_request(certificate=cert, issuer=issuer).public_bytes(serialization_der())
    requests += [{"id": 22, "op": "ocsp", "request": base64.b64encode(der).decode()}, {"id": 23, "op": "close"}]
    replies += [session.handle(r) for r in requests[-2:]]
    bad = {"id": 24, "op": "step", "action": {"action": "Fly", "args": {}}}
    replies.append(session.handle(bad))
    assert all(r["ok"] for r in replies[:-1]) and not replies[-1]["ok"]
    assert ocsp.load_der_ocsp_response(base64.b64decode(replies[-3]["response"])).response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    for message in [*requests, *replies]:
        assert _validate(schema, message, schema) == [], message
    assert _validate(schema, {"id": 1, "ok": True, "outcome": {"code": "MAYBE"}}, schema)  # the checker does reject
    assert main(["schema", "--check"]) == 0


def serialization_der() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


# --- the transports agree ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """`mjpki serve-system` on a free loopback port: its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mjpki.cli", "serve-system", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env=python_host_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/)$", line.strip())
        assert match, f"serve-system said {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _checks(*ids: str) -> tuple[Any, ...]:
    return tuple(c for c in all_checks() if c.id in ids)


def _verdicts(factory: Any, checks: tuple[Any, ...], timeout: float = 10.0) -> list[tuple[str, str, int | None, tuple[str, ...]]]:
    result = run_conformance(factory, checks=checks, timeout=timeout, system_name="x")
    return [
        (r.check.id, r.status, r.divergence.index if r.divergence else None, r.divergence.reqs if r.divergence else ())
        for r in result.results
    ]


FAULTS = ("no-cascade", "ocsp-good-while-on-hold", "pin-counter-not-reset")
"""Representative faults of tests/faulty_impls.py: the JPKI system, the OCSP responder (judged on the artefacts), the SE."""


@pytest.mark.parametrize("fault", FAULTS)
def test_faulty_systems_are_caught_through_the_wire_as_in_process(fault: str, tmp_path: Path) -> None:
    from tests.faulty_impls import FAULTY

    module = tmp_path / f"wire_{fault.replace('-', '_')}.py"
    module.write_text(f"from tests.faulty_impls import FAULTY\nfactory = FAULTY[{fault!r}].factory\n", encoding="utf-8")
    checks = _checks(f"scenario:{FAULTY[fault].caught_by}")
    chosen = choose_system(adapter=f"{module}:factory", shim=None, url=None, in_process=False, step_timeout=10, memory_mb=4096)
    try:
        wire = _verdicts(chosen.factory, checks, chosen.timeout)
    finally:
        chosen.shutdown()
    here = _verdicts(FAULTY[fault].factory, checks)
    assert wire == here
    assert wire[0][1] == "fail" and set(wire[0][3]) & set(FAULTY[fault].breaks), wire


def test_reference_conforms_the_same_in_process_in_a_child_and_over_http(served: str) -> None:
    from mjpki.adapters.reference import factory

    checks = _checks(*SCENARIO_CHECKS)
    child = shim_factory(python_host_command("mjpki.adapters.reference:factory"), name="ref", timeout=10, start_timeout=60)
    url = http_factory(served, timeout=10, start_timeout=60)
    try:
        results = [_verdicts(factory, checks), _verdicts(child, checks, 15), _verdicts(url, checks, 15)]
    finally:
        child.shutdown()
    assert results[0] == results[1] == results[2]
    assert {r[1] for r in results[0]} == {"pass"}


def test_capabilities_decide_which_optional_methods_a_wire_adapter_has(tmp_path: Path, served: str) -> None:
    spec = shim_factory(python_host_command("mjpki.adapters.spec_adapter:SpecSystem"), name="spec", timeout=10, start_timeout=60)
    url = http_factory(served, timeout=10, start_timeout=60)
    try:
        bare = spec(base_world())
        assert not hasattr(bare, "artefacts") and not hasattr(bare, "ocsp")
        assert spec.hello().capabilities == frozenset()
        first, second = url(base_world()), url(base_world())  # two sessions on one server do not mix
        assert url.hello().capabilities == {"artefacts", "ocsp", "se_apdu"}
        first.step(AdvanceTime(minutes=90))
        assert first.observation().now == 90 and second.observation().now == 0
        art = first.artefacts()
        assert art.certs and all(x509.load_der_x509_certificate(c) for c in art.ca_certs)
        first.close()
        second.close()
    finally:
        spec.shutdown()


def test_serve_system_answers_bad_requests_with_errors_not_crashes(served: str) -> None:
    import urllib.error
    import urllib.request

    def post(body: bytes) -> dict[str, Any]:
        req = urllib.request.Request(served, data=body, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as response:
            return json.loads(response.read())

    assert post(b"{not json")["ok"] is False
    assert "names a session" in post(b'{"id": 1, "op": "step"}')["error"]
    assert "before new" in post(b'{"id": 2, "op": "observation", "session": "s"}')["error"]
    reply = post(json.dumps({"id": 3, "op": "new", "session": "s", "world": {"persons": "x"}}).encode())
    assert reply["ok"] is False and reply["id"] == 3
    with pytest.raises(urllib.error.HTTPError, match="405"):
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(served, timeout=10)
    assert post(json.dumps({"id": 4, "op": "hello", "protocol": PROTOCOL}).encode())["ok"] is True  # still serving


def test_mjpki_run_url_conforms_and_a_bad_url_is_one_line(served: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", "--url", served, "--check", SCENARIO_CHECKS[0], "--out", str(out), "--db", "", "-q"]) == 0
    assert json.loads((out / "result.json").read_text())["passed"] is True
    assert main(["run", "--url", "ftp://example.org/", "--out", str(out)]) == 2
    assert "give an http:// or https:// URL" in capsys.readouterr().err
    assert main(["run", "--url", "http://127.0.0.1:9/", "--out", str(out), "--step-timeout", "1"]) == 2
    assert "the adapter does not start" in capsys.readouterr().err


# --- a second language -------------------------------------------------------------------------------------------------


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH: the second-language example needs Node.js (CI and these machines have it)"
    return node


def test_node_shim_conforms_and_a_lying_one_fails(served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = f"{_node()} {NODE_SHIM} {served}"
    args = ["run", "--shim", shim, "--check", SCENARIO_CHECKS[0], "--check", SCENARIO_CHECKS[1], "--db", "", "-q"]
    assert main([*args, "--out", str(tmp_path / "honest")]) == 0
    assert json.loads((tmp_path / "honest" / "result.json").read_text())["passed"] is True
    monkeypatch.setenv("MJPKI_EXAMPLE_LIE", "Apply")
    assert main([*args, "--out", str(tmp_path / "liar")]) == 1
    result = json.loads((tmp_path / "liar" / "result.json").read_text())
    what = [c["divergence"]["what"] for c in result["checks"] if "divergence" in c]
    assert what and all("the spec says ACCEPTED, the system APP_NOT_INSTALLED" in w for w in what), what


def test_node_shim_uses_only_the_standard_library() -> None:
    required = set(re.findall(r"require\(\"([^\"]+)\"\)", NODE_SHIM.read_text(encoding="utf-8")))
    assert required and all(name.startswith("node:") for name in required), required
    probe = textwrap.dedent(
        """
        const mods = require("node:module").builtinModules;
        for (const m of process.argv.slice(1)) if (!mods.includes(m.replace(/^node:/, ""))) { console.log(m); process.exit(1); }
        """
    )
    done = subprocess.run([_node(), "-e", probe, *sorted(required)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lockstep_stops_sending_after_a_wire_failure_and_restarts_for_the_next_system(tmp_path: Path) -> None:
    script = tmp_path / "once.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            from mjpki.adapters.spec_adapter import SpecSystem
            MARK = os.environ["MARK"]

            class Once(SpecSystem):
                def step(self, action):
                    if not os.path.exists(MARK):
                        open(MARK, "w").close()
                        os._exit(9)
                    return super().step(action)
            """
        ),
        encoding="utf-8",
    )
    env = {**python_host_env(), "MARK": str(tmp_path / "crashed")}
    from mjpki.wire.client import WireFactory
    from mjpki.wire.shim import ChildTransport

    factory = WireFactory(
        lambda: ChildTransport(python_host_command(f"{script}:Once"), name="once", env=env), name="once", timeout=10,
        start_timeout=60, sessions=dict,
    )  # fmt: skip
    try:
        sc = SCENARIOS["lost-phone-found"]
        first = Lockstep(factory, sc.world, timeout=15)
        first.step(sc.steps[0].action)
        first.close()
        assert first.divergence is not None and "it exited with status 9" in first.divergence.what
        second = Lockstep(factory, sc.world, timeout=15)
        for e in sc.steps:
            second.step(e.action)
        second.close()
        assert second.divergence is None
    finally:
        factory.shutdown()


# --- docs/adapters.md ---------------------------------------------------------------------------------------------------

DOC = ROOT / "docs" / "adapters.md"


def test_the_documented_session_is_what_a_system_exchanges() -> None:
    """The example session in docs/adapters.md matches the schema, and a system answers its requests as it shows."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- protocol example -->\n```json\n(.*?)\n```", text, re.DOTALL)
    assert block, "docs/adapters.md lost its protocol example"
    messages = [json.loads(line) for line in block.group(1).splitlines()]
    schema = protocol_schema()
    for m in messages:
        assert _validate(schema, m, schema) == [], m
    session = Session(SpecSystem, name="spec")
    requests = [m for m in messages if "op" in m]
    documented = {m["id"]: m for m in messages if "ok" in m}
    for req in requests:
        shown, got = documented[req["id"]], session.handle(req)
        if req["op"] == "observation":
            assert decode(Observation, shown["observation"]) == decode(Observation, got["observation"])
        elif req["op"] in ("new", "step", "close") and shown["ok"]:
            assert {k: v for k, v in got.items() if k != "capabilities"} == shown, req
    assert {m["op"] for m in requests} >= {"hello", "new", "step", "observation", "close"}


def test_the_doc_covers_both_transports_every_op_and_the_options() -> None:
    from mjpki.cli import build_parser
    from mjpki.wire.protocol import CAPABILITIES, OPS

    text = DOC.read_text(encoding="utf-8")
    for op in OPS + CAPABILITIES:
        assert f"`{op}`" in text, f"op {op} is not documented"
    for phrase in ("--shim", "--url", "--in-process", "--adapter-memory", "--step-timeout", "serve-system", "--jpki-shim", "--jpki-url"):
        assert phrase in text, phrase
    parser = build_parser()
    parser.parse_args(["run", "--shim", "node examples/node/shim.js http://127.0.0.1:8765/"])
    parser.parse_args(["run", "--url", "http://127.0.0.1:8765/"])
    parser.parse_args(["run", "--adapter", "m:f", "--in-process", "--adapter-memory", "0"])
    parser.parse_args(["serve-system", "--adapter", "m:f", "--port", "0", "--host", "127.0.0.1"])


def test_the_python_host_serves_http_too(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mjpki.adapter_host", "mjpki.adapters.spec_adapter:SpecSystem", "--http", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env=python_host_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), url
        factory = http_factory(url, timeout=10, start_timeout=30)
        assert _verdicts(factory, _checks(SCENARIO_CHECKS[0])) == _verdicts(SpecSystem, _checks(SCENARIO_CHECKS[0]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    taken = subprocess.run(
        [sys.executable, "-m", "mjpki.adapter_host", "nosuchmodule:factory"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert taken.returncode == 2 and taken.stderr.count("\n") == 1 and "cannot import 'nosuchmodule'" in taken.stderr


def test_serve_system_serves_two_runs_at_once_each_with_its_own_system() -> None:
    # Two clients run a scenario against one server at the same time. Each system's build waits, at a barrier, for the
    # other's build to start: a server that answered one request at a time would never get both there (the barrier breaks
    # and `new` fails). Each session keeps its own system, so both runs agree with the spec at every step.
    import threading

    from mjpki.adapters.reference import factory as reference
    from mjpki.wire.serve import make_server

    both_building = threading.Barrier(2, timeout=60)
    built: list[int] = []

    def factory(world: Any) -> Any:
        both_building.wait()
        system = reference(world)
        built.append(id(system))
        return system

    server = make_server(factory, name="barrier", port=0)
    assert server.server_address[0] == "127.0.0.1"  # the loopback default
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    scenario = SCENARIOS[SCENARIO_CHECKS[0].partition(":")[2]]
    found: dict[int, Any] = {}

    def run(client: int) -> None:
        wire = http_factory(url, timeout=60, start_timeout=60)
        lockstep = Lockstep(wire, scenario.world, timeout=70, system_name=f"client {client}")
        for e in scenario.steps:
            lockstep.step(e.action)
        lockstep.close()
        found[client] = (lockstep.divergence, len(lockstep.steps))

    try:
        clients = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=240)
        assert not any(c.is_alive() for c in clients)
    finally:
        server.shutdown()
        server.close_sessions()
        server.server_close()
    assert found == {n: (None, len(scenario.steps)) for n in (1, 2)}, found
    assert len(set(built)) == 2 and not server.sessions  # a system per session, each closed by its client
    for thread in [t for t in threading.enumerate() if t.name == "mjpki-serve-session"]:
        thread.join(timeout=30)  # a closed session's thread ends: none is left behind per session
        assert not thread.is_alive()
