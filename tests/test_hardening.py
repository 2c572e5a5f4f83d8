"""Issue 12: hostile files and neighbours. Each test here failed before its fix.

- The SE's memory and the PC/SC stack's files: private folders (0700, refused when a link, someone else's or writable by
  group or others), 0600 files written through a fresh random temporary file, never through a stale one or a link.
- vpcd listens on every interface: the stack runs pcscd in a network namespace of its own, so nothing it starts can be
  reached from beyond loopback, and a served SE started later joins that namespace.
- Hostile traces and known-failures files: one line and exit 2, never a traceback, a hang or minutes of work; terminal
  output with control characters escaped; Markdown reports with nothing a trace says read as HTML or Markdown.
- `--out`, `--db`, `--markdown` checked before the run spends its time.
- `replay --emit-pytest`: a hostile trace title is data in the generated file, never code or a broken file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mjpki import escape
from mjpki.cli import main
from mjpki.impl.serve_se import TEST_KEYS, SeStore, UnsafePathError, private_dir, write_pcscd_config
from mjpki.known_failures import KnownFailuresError, load_known_failures
from mjpki.mermaid import escape as mermaid_escape
from mjpki.mermaid import markdown_report
from mjpki.runner import run_scenario
from mjpki.scenarios import SCENARIOS
from mjpki.spec.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="making a folder someone else owns needs root (chown)")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --- 1. private folders and files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["group-writable", "symlink", "not-a-folder", pytest.param("foreign", marks=ROOT_ONLY)])
def test_private_dir_refuses_a_folder_someone_else_controls(tmp_path: Path, how: str) -> None:
    target = tmp_path / "state"
    if how == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        target.symlink_to(tmp_path / "elsewhere")
    elif how == "not-a-folder":
        target.write_text("x")
    else:
        target.mkdir()
        os.chmod(target, 0o775 if how == "group-writable" else 0o700)
        if how == "foreign":
            os.chown(target, NOBODY, NOBODY)
    expected = {"group-writable": "writable by group or others", "symlink": "symbolic link", "not-a-folder": "not a folder"}
    with pytest.raises(UnsafePathError, match=expected.get(how, "belongs to uid 65534")):
        private_dir(target)


def test_private_dir_makes_and_tightens_our_own_folder(tmp_path: Path) -> None:
    assert _mode(private_dir(tmp_path / "new")) == 0o700
    (tmp_path / "old").mkdir(mode=0o755)
    os.chmod(tmp_path / "old", 0o755)
    assert _mode(private_dir(tmp_path / "old")) == 0o700


def test_a_stale_temporary_file_or_a_link_never_receives_the_se(tmp_path: Path) -> None:
    """The old writer reused se-<ID>.tmp (O_TRUNC, keeping its mode and following its hard link) and renamed it over."""
    state = private_dir(tmp_path / "state")
    victim = tmp_path / "readable-by-all"
    victim.write_bytes(b"")
    os.chmod(victim, 0o644)
    os.link(victim, state / "se-SE-X.tmp")  # a stale temporary file that is a hard link to a file others can read
    (state / "se-SE-X.json").write_text("{}")
    os.chmod(state / "se-SE-X.json", 0o644)  # an old state file, world-readable
    store = SeStore.open(state / "se-SE-X.json", se_id="SE-X", keys=TEST_KEYS, fresh=True)
    store.save()
    assert victim.read_bytes() == b"", "the SE's memory went through the planted link"
    assert _mode(state / "se-SE-X.json") == 0o600
    assert json.loads((state / "se-SE-X.json").read_text())["se_id"] == "SE-X"
    assert sorted(p.name for p in state.iterdir()) == ["se-SE-X.json", "se-SE-X.tmp"], "no temporary file is left behind"


def test_the_state_file_is_not_followed_when_it_is_a_link(tmp_path: Path) -> None:
    state = private_dir(tmp_path / "state")
    elsewhere = tmp_path / "other.json"
    elsewhere.write_text("{}")
    (state / "se-SE-X.json").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        SeStore.open(state / "se-SE-X.json", se_id="SE-X", keys=TEST_KEYS)


def test_the_pcscd_configuration_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "libifdvpcd.so"
    fake.write_bytes(b"\x7fELF stand-in")
    monkeypatch.setattr("mjpki.impl.serve_se.VPCD_DRIVER", fake)
    old_umask = os.umask(0o022)
    try:
        write_pcscd_config(tmp_path / "pcsc", 2)
    finally:
        os.umask(old_umask)
    _assert_private_tree(tmp_path / "pcsc")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "drivers").mkdir()
    os.chmod(tmp_path / "shared" / "drivers", 0o777)  # someone could swap the drivers pcscd loads
    with pytest.raises(UnsafePathError, match="drivers is writable by group or others"):
        write_pcscd_config(tmp_path / "shared", 1)


def _assert_private_tree(top: Path) -> None:
    """Every folder under top (top too) is 0700, every file 0600."""
    wrong = [(str(p), oct(_mode(p))) for p in [top, *top.rglob("*")] if _mode(p) != (0o700 if p.is_dir() else 0o600)]
    assert not wrong, wrong


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_file_serve_se_writes_is_private(tmp_path: Path) -> None:
    """--demo: the SEs' memory and the SQLite records (CA-issued certificates, the person) all 0600, the folder 0700."""
    state = tmp_path / "state"
    command = [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(state), "--demo", "--phones", "1", "--port", str(_free_port())]
    umask = os.umask(0o022)  # the usual umask, which the child inherits: serve-se must not rely on it
    try:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        os.umask(umask)
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        assert process.poll() is None, "".join(lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert {p.name for p in state.iterdir()} >= {"se-SE-DEMO.json", "se-SE-0001.json", "records.sqlite"}
    _assert_private_tree(state)


def _pcsc_sh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # no /usr/sbin on PATH: had the script gone on, it would have stopped at "no pcscd" (exit 1), not started one
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(["bash", "scripts/pcsc.sh", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how", ["group-writable", "symlink", pytest.param("foreign", marks=ROOT_ONLY)])
def test_pcsc_sh_refuses_a_folder_someone_else_controls(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "mjpki-pcsc"
    if how == "symlink":
        (tmp_path / "theirs").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "theirs")
    else:
        folder.mkdir()
        os.chmod(folder, 0o777 if how == "group-writable" else 0o755)
        if how == "foreign":
            os.chown(folder, NOBODY, NOBODY)
    (folder / "se-stale.tmp").write_text("")  # what a neighbour would have planted
    done = _pcsc_sh("start", env={"MJPKI_PCSC_DIR": str(folder)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(folder) in done.stderr and "MJPKI_PCSC_DIR" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (folder / "state").exists() and not (folder / "reader.conf.d").exists()
    # `stop` kills the PIDs in pid files: none is read from such a folder
    (folder / "pcscd.pid").write_text("4194303\n")
    done = _pcsc_sh("stop", env={"MJPKI_PCSC_DIR": str(folder)})
    assert done.returncode == 2 and "pid files" in done.stderr, done.stdout + done.stderr


# --- 3. vpcd is not reachable beyond loopback ----------------------------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of pid's open sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _interfaces(pid: int) -> set[str]:
    """The network interfaces of pid's network namespace."""
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {line.split(":", 1)[0].strip() for line in lines}


def _hex_address(text: str) -> str:
    """An address of /proc/net/tcp{,6} (native-order 32-bit words in hex) as text."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    return str(ipaddress.ip_address(words))


def exposed_listeners(pid: int) -> list[str]:
    """Listening TCP sockets of process pid that another machine could reach: not on loopback, in a namespace with more than lo."""
    inodes = _socket_inodes(pid)
    out = []
    confined = _interfaces(pid) <= {"lo"}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:
                continue
            address, port = f[1].rsplit(":", 1)
            host = _hex_address(address)
            if not ipaddress.ip_address(host).is_loopback and not confined:
                out.append(f"{host}:{int(port, 16)}")
    return out


def test_nothing_the_stack_starts_listens_beyond_loopback(tmp_path: Path) -> None:
    """pcscd (vpcd listens on INADDR_ANY) in a namespace with only lo; no card attaches from outside; a served SE joins."""
    from tests.pcsc_stack import SPARE_PORT, SPARE_READER, pcsc_stack, pcscd_running, require_stack

    require_stack()

    with pcsc_stack(tmp_path / "stack", phones=1) as stack:
        pids = pcscd_running() if stack.reused else [p.pid for p in (stack.pcscd, stack.serve_se) if p is not None]
        exposed = {pid: exposed_listeners(pid) for pid in pids}
        assert not any(exposed.values()), f"reachable from the network: {exposed}"
        with pytest.raises(ConnectionRefusedError):  # the free slot: a card from here (or the network) cannot be inserted
            socket.create_connection(("127.0.0.1", SPARE_PORT), timeout=5).close()
        _served_se_joins_the_stack(tmp_path, SPARE_PORT, SPARE_READER)


def _served_se_joins_the_stack(tmp_path: Path, port: int, reader: str) -> None:
    """`serve-se --port SPARE_PORT` started later, in the host's network, joins pcscd's namespace and its card shows up."""
    from mjpki.adapters.pcsc import PcscApplet
    from mjpki.impl import se_apdu as A

    command = [sys.executable, "-m", "mjpki.cli", "serve-se", "--state", str(tmp_path / "spare"), "--port", str(port), "--se-id", "SE-X"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None
            try:
                card = PcscApplet(reader)
                try:
                    assert card.transmit(A.select_aid(A.ISD_AID))[-2:] == A.SW_OK
                    break
                finally:
                    card.close()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


# --- 6./7. hostile traces -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trace_doc() -> dict[str, Any]:
    return run_scenario(SCENARIOS["lost-card-found"]).trace.to_json()


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _changed(doc: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> str:
    copy = json.loads(json.dumps(doc))
    change(copy)
    return json.dumps(copy)


def _big_world(d: dict[str, Any]) -> None:
    d["world"]["persons"] = [{"id": f"P{i}", "birth": "1990-06-15", "has_card": True} for i in range(100_000)]


def _unknown_person(d: dict[str, Any]) -> None:
    step = next(s for s in d["steps"] if "person" in s["args"])
    step["args"]["person"] = "P99"


HOSTILE: dict[str, Callable[[dict[str, Any], Path], str | bytes]] = {
    "not UTF-8": lambda d, p: b'{"format": "mjpki-trace/1", "title": "\xff\xfe"}',
    "not JSON": lambda d, p: "{not json",
    "a JSON string": lambda d, p: '"abc"',
    "steps [1, 2]": lambda d, p: _changed(d, lambda x: x.update(steps=[1, 2])),
    'meta "abc"': lambda d, p: _changed(d, lambda x: x.update(meta="abc")),
    "meta 5": lambda d, p: _changed(d, lambda x: x.update(meta=5)),
    "meta.divergence with reqs 5": lambda d, p: _changed(d, lambda x: x.update(meta={"divergence": {"index": 1, "reqs": 5}})),
    "100,000-deep JSON": lambda d, p: "[" * 100_000 + "]" * 100_000,
    "5000-digit integer": lambda d, p: json.dumps(d).replace('"minutes": 540', '"minutes": ' + "9" * 5000, 1),
    "NaN": lambda d, p: json.dumps(d).replace('"minutes": 540', '"minutes": NaN', 1),
    "100,000 persons": lambda d, p: _changed(d, _big_world),
    "20,000 steps": lambda d, p: _changed(d, lambda x: x.update(steps=x["steps"] * 700)),
    "a person the world lacks": lambda d, p: _changed(d, _unknown_person),
    "an unknown action": lambda d, p: _changed(d, lambda x: x["steps"][0].update(action="Teleport")),
    "an applet trace, malformed": lambda d, p: json.dumps({"format": "mjpki-apdu-trace/1", "meta": 5, "steps": [1]}),
    "an applet trace, deep": lambda d, p: '{"format": "mjpki-apdu-trace/1", "meta": ' + "[" * 5000 + "]" * 5000 + "}",
}


@pytest.mark.parametrize("command", ["show", "replay"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_trace_is_one_line_and_exit_2(
    tmp_path: Path, trace_doc: dict[str, Any], capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    path = _write(tmp_path / "t.json", HOSTILE[case](trace_doc, tmp_path))
    started = time.monotonic()
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mjpki: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert time.monotonic() - started < 10, "a hostile trace must be refused quickly"


@pytest.mark.parametrize("command", ["show", "replay"])
def test_a_directory_or_a_fifo_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    os.mkfifo(tmp_path / "fifo.json")
    for path, what in ((tmp_path, "a directory"), (tmp_path / "fifo.json", "not a regular file")):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert what in err and err.count("\n") == 1, err


def test_a_hostile_trace_in_a_subprocess_prints_no_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    done = subprocess.run([sys.executable, "-m", "mjpki.cli", "show", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "nested deeper" in done.stderr, done.stderr


_NASTY = "evil \x1b]0;owned\x07\x1b[2J\x1b[31mred\u202edesab\r\x00"


def test_show_and_replay_escape_terminal_control_characters(
    tmp_path: Path, trace_doc: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def nasty(d: dict[str, Any]) -> None:
        d["title"] = _NASTY
        d["steps"][0]["note"] = _NASTY
        d["steps"][0]["expected"]["details"]["cascaded"] = [_NASTY]
        d["world"]["persons"][0]["id"] = "P1\x1b[8m"
        for s in d["steps"]:
            for key in ("person", "to"):
                if s["args"].get(key) == "P1":
                    s["args"][key] = "P1\x1b[8m"
        for phone in d["world"]["phones"]:
            if phone.get("initial_holder") == "P1":
                phone["initial_holder"] = "P1\x1b[8m"

    path = _write(tmp_path / "t.json", _changed(trace_doc, nasty))
    for command in (["show", str(path)], ["replay", str(path)]):
        main(command)
        out = capsys.readouterr()
        printed = out.out + out.err
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", printed), repr(printed[:300])
        assert "\\x1b]0;owned\\x07" in printed


def test_markdown_reports_escape_what_a_trace_says(tmp_path: Path, trace_doc: dict[str, Any]) -> None:
    script = "<script>alert(1)</script> `code` | [x](javascript:alert(2)) \" ' & </pre>"

    def hostile(d: dict[str, Any]) -> None:
        d["title"] = script
        d["system"] = "adapters.x:factory` <img src=x onerror=alert(3)>"
        d["meta"] = {"divergence": {"index": 2, "what": script + "\n```\n<script>alert(4)</script>", "reqs": ["<b>SUS-3</b>"]}}
        d["steps"][1]["note"] = "``````` " + script

    path = _write(tmp_path / "t.json", _changed(trace_doc, hostile))
    out = tmp_path / "report.md"
    assert main(["replay", str(path), "--markdown", str(out)]) == 0
    report = out.read_text()
    prose, blocks = _split_fences(report)
    assert not re.search(r"<(?!/?code>)", prose), prose  # no HTML but the <code> elements mjpki writes
    assert "[x](" not in prose and "`" not in prose
    mermaid = [b for info, b in blocks if info == "mermaid"]
    assert mermaid and not re.search(r"[<>`\"'&|]", mermaid[0].replace("-->>", "").replace("->>", "")), mermaid[0]
    assert [info for info, _ in blocks] == ["", "mermaid"], "a backtick run in the trace ended a fence early"


def _split_fences(markdown: str) -> tuple[str, list[tuple[str, str]]]:
    """The text outside fenced code blocks, and the blocks (info string, body), as CommonMark reads backtick fences."""
    prose, blocks, lines = [], [], markdown.split("\n")
    i = 0
    while i < len(lines):
        opening = re.match(r"^(`{3,})(\w*)$", lines[i])
        if not opening:
            prose.append(lines[i])
            i += 1
            continue
        fence, body = opening.group(1), []
        i += 1
        while i < len(lines) and not re.match(rf"^`{{{len(fence)},}}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append((opening.group(2), "\n".join(body)))
        i += 1
    return "\n".join(prose), blocks


def test_mermaid_labels_take_no_html_or_markdown() -> None:
    escaped = mermaid_escape("a \"b\" 'c' & d | e \\ f \x1b[31m")
    assert not re.search(r"[\"'&|\\\x1b]", re.sub(r"#\d+;", "", escaped)), escaped


def test_the_escape_helpers() -> None:
    assert escape.terminal("a\x1b[31mb\nc\u202ed\ud800") == "a\\x1b[31mb\\x0ac\\u202ed\\ud800"
    assert escape.terminal("a\nb\tc\rd", lines=True) == "a\nb\tc\\x0dd"
    assert escape.markdown("<b>`x`|[y]</b>") == "&lt;b&gt;&#96;x&#96;&#124;&#91;y&#93;&lt;/b&gt;"
    assert escape.code("a`b") == "<code>a&#96;b</code>"
    assert escape.fence("x ```` y", "mermaid") == "`````mermaid\nx ```` y\n`````"


def test_markdown_report_of_a_trace_built_in_process_is_escaped_too() -> None:
    trace = Trace.from_json({**run_scenario(SCENARIOS["issue-both-kinds"]).trace.to_json(), "title": "<i>t</i>"})
    assert "<i>" not in markdown_report(trace)


# --- known-failures files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'"SUS-3" = "\xff"', "not UTF-8"),
        (b"a = " + b"[" * 900 + b"]" * 900, "nested too deeply"),
        (b"a = " + b"[" * 100_000 + b"]" * 100_000, "too many arrays"),
        (b'"SUS-3" = ' + b"9" * 5000, "not usable TOML"),
        (b"[[[", "not valid TOML"),
    ],
)
def test_a_bad_known_failures_file_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = _write(tmp_path / "known.toml", content)
    with pytest.raises(KnownFailuresError, match=message) as info:
        load_known_failures(path)
    assert "\n" not in str(info.value)


def test_a_known_failures_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--known-failures", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and err.count("\n") == 1, err


# --- output options are checked before the run ------------------------------------------------------------------------


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any run that starts fails the test: the options must be refused first."""

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run started before its output options were checked")

    monkeypatch.setattr("mjpki.conformance.run_conformance", started)
    monkeypatch.setattr("mjpki.applet_run.run_applet_conformance", started)
    monkeypatch.setattr("mjpki.spec.trace.replay_on_spec", started)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--out", "{file}"],
        ["run", "--out", "{file}/sub"],
        ["run", "--out", "{tmp}/out", "--db", "{file}"],
        ["run", "--applet", "mjpki.impl.se:GpSe", "--out", "{tmp}/out", "--db", "{file}"],
        ["run", "--applet", "mjpki.impl.se:GpSe", "--out", "{file}"],
    ],
    ids=["out-is-a-file", "out-under-a-file", "db-is-a-file", "applet-db-is-a-file", "applet-out-is-a-file"],
)
def test_out_and_db_are_checked_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None, args: list[str]) -> None:
    regular = _write(tmp_path / "a-file", "x")
    argv = [a.format(file=regular, tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mjpki: ") and err.count("\n") == 1 and ("--out" in err or "--db" in err), err


def test_replay_outputs_are_checked_before_the_replay(
    tmp_path: Path, trace_doc: dict[str, Any], capsys: pytest.CaptureFixture[str], no_run: None
) -> None:
    path = _write(tmp_path / "t.json", json.dumps(trace_doc))
    assert main(["replay", str(path), "--markdown", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["replay", str(path), "--markdown", str(tmp_path / "no" / "dir.md")]) == 2
    assert "cannot write" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_stray_umask() -> Iterator[None]:
    """serve-se's main sets the umask for its process; nothing here may leave it changed for the tests after."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


# --- the generated pytest file (`replay --emit-pytest`) ------------------------------------------------------------


HOSTILE_TITLES = (
    '"""\nimport os; os.system("echo pwned")\n"""',  # ends the docstring, then code
    'x\\"""; raise SystemExit  #',  # a backslash before the quotes
    "\x00 NUL \r CR \x1b[2J \u202e bidi \ud800 surrogate \u2028 LS",  # uncompilable, unencodable or misleading source
    "\\N{oops} \\x \\u12",  # escape sequences that do not compile in a normal string
    'ends in a quote"',
)


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_emit_pytest_embeds_a_hostile_title_as_data(tmp_path: Path, trace_doc: dict[str, Any], title: str) -> None:
    """The trace's title and step texts can neither break the generated file nor add code to it (issue 12)."""
    import ast

    from mjpki.standalone import standalone_test

    doc = json.loads(json.dumps(trace_doc))
    doc["title"] = title
    path = _write(tmp_path / "t.json", json.dumps(doc))
    source = standalone_test(path, adapter="mjpki.adapters.reference:factory")
    source.encode("utf-8")  # writable as a file
    module = ast.parse(source)  # compiles
    kinds = [type(node).__name__ for node in module.body]
    header = ["Expr", "ImportFrom", "Import", "Import", "ImportFrom", "ImportFrom", "ImportFrom", "ImportFrom"]
    constants = ["Assign", "Assign", "Expr", "Assign", "Assign", "Assign"]  # ADAPTER, IN_PROCESS + doc, TIMEOUT, MEMORY_MB, TRACE_JSON
    assert kinds == [*header, *constants, "FunctionDef"]
    docstring = ast.get_docstring(module, clean=False) or ""
    assert all(escape.terminal(line) in docstring for line in title.split("\n"))  # shown, escaped
    assert not re.search(r"[\x00\x0d\x1b\u202e\u2028\ud800]", docstring)
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=module.body[8:14], type_ignores=[]), "generated", "exec"), namespace)  # the constants only
    assert json.loads(namespace["TRACE_JSON"])["title"] == title  # the trace itself is embedded exactly
