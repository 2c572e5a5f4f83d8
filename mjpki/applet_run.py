"""The applet-level conformance run: one JPKI applet (a GpSe-like class, or a card in a PC/SC reader) against the APDU model.

Front end: `mjpki run --applet MODULE:CLASS` or `mjpki run --reader NAME --keys FILE`. The checks:

- named scenarios (`applet:personalise`, `applet:lock`, ...): fixed command lists, most built on the whole
  personalisation, sent in lockstep with the model (they keep what the old fixed probes of adapters/applet_checks.py
  checked, now judged clause by clause by mjpki.spec.apdu.model);
- `applet:search`: the Hypothesis rule-based search of mjpki.applet_lockstep with the profile's budget.

A failing check writes its trace (mjpki-apdu-trace/1, see spec/apdu/trace_schema.py), a step table (.txt) and a
Markdown report with a Mermaid sequence diagram to the output folder; result.json (mjpki-applet-result/1) sums up the
run with a verdict per requirement and per clause (interface rule) of docs/apdu-interface.md.

    target = applet_target_for_class(GpSe)
    result = run_applet_conformance(target, profile="quick", out_dir=Path("out/applet"))
    print(render_applet_summary(result))
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mjpki.adapters.applet import ReferenceApplet
from mjpki.applet_lockstep import (
    AUTH_PIN,
    OFFICIAL_APP_HASH,
    OTHER_APP_HASH,
    SIGNING_PIN,
    AppletDivergence,
    AppletRun,
    AppletStep,
    AppletTarget,
    PrereqError,
    access_rule_apdu,
    apdu,
    applet_machine,
    command_text,
    expand,
    open_channel,
    personalisation,
    select,
    select_ef,
)
from mjpki.impl.scp03 import StaticKeys
from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Reset, Send, Tamper, Wrapped
from mjpki.spec.apdu.model import step
from mjpki.spec.apdu.state import CardConfig, initial_state
from mjpki.spec.apdu.trace_schema import APDU_TRACE_FORMAT, ApduTrace
from mjpki.spec.domain import Kind

__all__ = [
    "APPLET_PROFILES",
    "APPLET_RESULT_FORMAT",
    "AppletCheck",
    "AppletCheckResult",
    "AppletConformance",
    "KeysError",
    "applet_checks",
    "applet_target_for_class",
    "applet_target_for_reader",
    "check_line",
    "conformance_of",
    "failure_text",
    "keys_from_json",
    "load_applet_class",
    "load_keys",
    "render_applet_summary",
    "replay_on_class",
    "replay_on_model",
    "run_applet_conformance",
    "run_check",
    "trace_json",
    "write_result",
]

APPLET_RESULT_FORMAT = "mjpki-applet-result/1"
EXAMPLES_ENV = "MJPKI_APPLET_EXAMPLES"
"""Overrides the profile's number of search examples (tests keep the run short with it)."""
KEYS_ENV = "MJPKI_SE_KEYS"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppletProfile:
    """How hard the search tries: Hypothesis examples and steps (rules) per example."""

    name: str
    examples: int
    steps: int
    doc: str


APPLET_PROFILES: dict[str, AppletProfile] = {
    p.name: p
    for p in (
        AppletProfile(name="quick", examples=60, steps=30, doc="under a minute on the reference"),
        AppletProfile(name="ci", examples=200, steps=30, doc="a few minutes: for every commit"),
        AppletProfile(name="thorough", examples=1000, steps=30, doc="before a release"),
    )
}


# --- targets ---------------------------------------------------------------------------------------------------------


class KeysError(ValueError):
    """SCP03 keys missing or not in the expected form (the message is one line)."""


def fresh_keys() -> StaticKeys:
    """A throw-away ISD key set for an applet class the harness builds itself."""
    return StaticKeys(enc=secrets.token_bytes(16), mac=secrets.token_bytes(16), dek=secrets.token_bytes(16), key_version=I.KEY_VERSION)


def keys_from_json(data: Any, where: str) -> StaticKeys:
    """StaticKeys from {"enc", "mac", "dek" (hex), "key_version" (int, default 0x30)}; KeysError saying what is wrong."""
    if not isinstance(data, dict):
        raise KeysError(f"{where}: expected a JSON object with enc, mac, dek (hex) and key_version")
    try:
        parts = {k: bytes.fromhex(data[k]) for k in ("enc", "mac", "dek")}
        version = data.get("key_version", I.KEY_VERSION)
        if isinstance(version, str):
            version = int(version, 16)
        return StaticKeys(**parts, key_version=version)
    except KeyError as exc:
        raise KeysError(f"{where}: missing key {exc.args[0]!r} (need enc, mac, dek as hex, and key_version)") from None
    except (TypeError, ValueError) as exc:
        raise KeysError(f"{where}: {exc}") from None


def load_keys(path: str | None, *, keys_option: str = "--keys", reader_option: str = "--reader") -> StaticKeys:
    """The SE's ISD keys from a JSON file, else from the environment variable MJPKI_SE_KEYS; KeysError if neither.

    The options named in the messages are the CLI's unless given (the pytest plugin's are --jpki-keys, --jpki-reader).
    """
    from mjpki.safe_load import LoadError, parse_json, read_text

    if path:
        try:  # a regular file of at most 64 KiB (mjpki.safe_load): a FIFO or a huge file is one line, not a hang
            text = read_text(path, what="keys file", limit=64 * 1024)
        except LoadError as exc:
            raise KeysError(f"{keys_option} {path}: cannot read it ({exc})") from None
        where = f"{keys_option} {path}"
    elif os.environ.get(KEYS_ENV):
        text, where = os.environ[KEYS_ENV], f"${KEYS_ENV}"
    else:
        raise KeysError(
            f"{reader_option} needs the SE's ISD SCP03 keys: {keys_option} FILE or ${KEYS_ENV} (JSON: enc, mac, dek hex, key_version)"
        )
    try:
        data = parse_json(text, where=f"{where}: not JSON")
    except LoadError as exc:
        raise KeysError(str(exc)) from None
    return keys_from_json(data, where)


def load_applet_class(spec: str) -> type:
    """The GpSe-like class named by MODULE:CLASS or path/to/file.py:CLASS; AdapterSpecError (one line) if it is not a class."""
    from mjpki.adapterspec import AdapterSpecError, load_object

    cls = load_object(spec, what="applet", form="module:Class", example="mjpki.impl.se:GpSe")
    if not isinstance(cls, type):
        raise AdapterSpecError(f"applet {spec!r}: {spec.partition(':')[2]} is a {type(cls).__name__}, not a class")
    return cls


def applet_target_for_class(cls: Callable[..., Any], *, name: str = "", se_id: str = "SE-MJPKI-0001") -> AppletTarget:
    """A target building a fresh `cls(se_id, isd_keys)` per run, reached as the official app (OFFICIAL_APP_HASH)."""
    keys = fresh_keys()
    label = name or f"{getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', repr(cls))}"
    return AppletTarget(
        name=label,
        open=lambda: ReferenceApplet(cls(se_id, keys), caller=OFFICIAL_APP_HASH),  # type: ignore[arg-type]
        isd_keys=keys,
        caller=OFFICIAL_APP_HASH,
        can_switch_caller=True,  # in process, other apps' commands can be sent too (ACL-1)
    )


def applet_target_for_reader(reader: str, keys: StaticKeys) -> AppletTarget:
    """A target in a PC/SC reader (destructive: the run deletes and reinstalls the JPKI applet), caller None."""
    from mjpki.adapters.pcsc import PcscApplet

    return AppletTarget(name=f"PC/SC {reader}", open=lambda: PcscApplet(reader), isd_keys=keys, caller=None)


# --- the named scenarios ---------------------------------------------------------------------------------------------


_apdu = apdu
_fid = select_ef


def _select_fci(aid: bytes) -> Send:
    return Send(_apdu(0x00, 0xA4, 0x04, 0x00, aid, 0x00))


def _verify(kind: Kind, pin: bytes | None) -> list[Command]:
    return [_fid(I.EF_PIN[kind]), Send(_apdu(0x00, 0x20, 0x00, 0x80, pin or b""))]


def _read(offset: int, le: int = 0) -> Send:
    return Send(_apdu(0x00, 0xB0, offset >> 8, offset & 0xFF, le=le))


_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _sign(kind: Kind, message: bytes) -> list[Command]:
    digest = _DIGEST_INFO + hashlib.sha256(message).digest()
    return [_fid(I.EF_KEY[kind]), Send(_apdu(0x80, 0x2A, 0x00, 0x80, digest, 0x00))]


def _read_ef(fid: int, size: int = 1100) -> list[Command]:
    """SELECT an EF and read it whole in 256-byte blocks (past the end the model expects 6B00 or the short tail)."""
    return [_fid(fid), _read(0, 4), *(_read(off) for off in range(0, size, 256))]


_GET_SE_ID_ISD = Wrapped(bytes.fromhex("80CADF4A00"))
_GET_STATUS = _apdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 0x00)
_UNKNOWN_AIDS = (bytes.fromhex("A000000063504B43532D3135"), bytes.fromhex("D27600012401"), bytes.fromhex("A0000000030000"))


def _scenario_items() -> dict[str, tuple[str, Callable[[], list[Any]]]]:
    personalised = personalisation
    return {
        "personalise": ("install and personalise over SCP03 (R, key pairs, certificates, PINs)", personalised),
        "isd": ("after reset the ISD answers SELECT with its FCI", lambda: [Reset(), _select_fci(I.ISD_AID)]),
        "unknown-aid": ("SELECT of an unknown AID answers 6A82", lambda: [Reset(), *(select(a) for a in _UNKNOWN_AIDS)]),
        "unknown-ins": (
            "an unknown INS answers 6D00",
            lambda: [select(I.ISD_AID), *(Send(bytes.fromhex(a)) for a in ("0010000000", "00FE0000", "80FE000000"))],
        ),
        "malformed": (
            "malformed APDUs get ISO status words (6700, 6E00, 6881)",
            lambda: [
                select(I.ISD_AID),
                *(Send(bytes.fromhex(a)) for a in ("00A404", "00A4040C05A0000001", "00A4040C02A000000151", "FFA4040C00", "0070000001")),
                Send(bytes.fromhex("01A4040C08") + I.ISD_AID),
            ],
        ),
        "scp03-mutual": (
            "SCP03 mutual authentication; a wrong host cryptogram or C-MAC opens nothing",
            lambda: [
                select(I.ISD_AID),
                *open_channel(),
                _GET_SE_ID_ISD,
                InitUpdate(I.KEY_VERSION),
                ExtAuth(0x33, cryptogram_ok=False),
                _GET_SE_ID_ISD,
                InitUpdate(I.KEY_VERSION),
                ExtAuth(0x33, mac_ok=False),
                _GET_SE_ID_ISD,
                InitUpdate(0x31),
            ],
        ),
        "scp03-tampered": (
            "a tampered or replayed C-MAC is refused and ends the session; plain card management is refused",
            lambda: [
                select(I.ISD_AID),
                *open_channel(),
                Wrapped(_GET_STATUS, Tamper.MAC),
                Wrapped(_GET_STATUS),
                Send(access_rule_apdu([OFFICIAL_APP_HASH])),
                *open_channel(),
                Wrapped(_GET_STATUS),
                Wrapped(_GET_STATUS, Tamper.REPLAY),
                *open_channel(0x01),
                Wrapped(_GET_STATUS),
            ],
        ),
        "select-jpki": (
            "SELECT JPKI with FCI; unknown INS and EF; TSM commands refused plain",
            lambda: [
                *personalised(),
                Reset(),
                _select_fci(I.JPKI_AID),
                select(I.JPKI_AID),
                Send(bytes.fromhex("0010000000")),
                Send(bytes.fromhex("00CA000000")),
                _fid(0x3F01),
                Send(bytes.fromhex("8032000000")),
                Send(bytes.fromhex("803E000000")),
            ],
        ),
        "read-certificates": (
            "READ BINARY of the certificates; the signing certificate only after its PIN; key EFs unreadable",
            lambda: [
                *personalised(),
                Reset(),
                select(I.JPKI_AID),
                _fid(I.EF_TOKEN_INFO),
                _read(0, 0x20),
                *_read_ef(I.EF_CERT[Kind.AUTH]),
                *_read_ef(I.EF_CA_CERT[Kind.AUTH]),
                *_read_ef(I.EF_CA_CERT[Kind.SIGNING]),
                _fid(I.EF_CERT[Kind.SIGNING]),
                _read(0, 4),
                _fid(I.EF_KEY[Kind.AUTH]),
                _read(0, 4),
                _fid(I.EF_PIN[Kind.AUTH]),
                _read(0, 4),
                *_verify(Kind.SIGNING, SIGNING_PIN),
                *_read_ef(I.EF_CERT[Kind.SIGNING]),
                _fid(I.EF_CERT[Kind.AUTH]),
                _read(0x7000, 4),
            ],
        ),
        "verify-empty": (
            "empty VERIFY answers 63Cx with the tries left",
            lambda: [*personalised(), select(I.JPKI_AID), *_verify(Kind.AUTH, None), *_verify(Kind.SIGNING, None)],
        ),
        "sign-after-verify": (
            "COMPUTE DIGITAL SIGNATURE only after VERIFY; the signature verifies",
            lambda: [
                *personalised(),
                Reset(),
                select(I.JPKI_AID),
                *_sign(Kind.AUTH, b"before"),
                *_verify(Kind.AUTH, AUTH_PIN),
                *_sign(Kind.AUTH, b"mjpki applet check auth"),
                *_sign(Kind.SIGNING, b"before"),
                *_verify(Kind.SIGNING, SIGNING_PIN),
                *_sign(Kind.SIGNING, b"mjpki applet check signing"),
                Send(_apdu(0x00, 0x84, 0x00, 0x00, le=8)),
            ],
        ),
        "reset-clears": (
            "a reset clears selection, current EF and verified PINs",
            lambda: [
                *personalised(),
                select(I.JPKI_AID),
                *_verify(Kind.AUTH, AUTH_PIN),
                Reset(),
                _read(0, 4),
                select(I.JPKI_AID),
                _read(0, 4),
                *_sign(Kind.AUTH, b"after reset"),
            ],
        ),
        "wrong-pin": (
            "a wrong PIN spends a try, the right one resets the counter; CHANGE REFERENCE DATA",
            lambda: [
                *personalised(),
                select(I.JPKI_AID),
                *_verify(Kind.SIGNING, b"WRONG1"),
                *_verify(Kind.SIGNING, None),
                *_verify(Kind.SIGNING, SIGNING_PIN),
                *_verify(Kind.SIGNING, None),
                Send(_apdu(0x00, 0x24, 0x00, 0x80, SIGNING_PIN + b"XYZ789")),
                Send(_apdu(0x00, 0x24, 0x01, 0x80, SIGNING_PIN)),
                *_verify(Kind.SIGNING, SIGNING_PIN),
            ],
        ),
        "lock": (
            "the last wrong try locks the PIN; locked: 6983, empty VERIFY 63C0, no signature, a reset does not help",
            lambda: [
                *personalised(),
                select(I.JPKI_AID),
                *[c for _ in range(3) for c in _verify(Kind.AUTH, b"0000")],
                *_verify(Kind.AUTH, AUTH_PIN),
                *_verify(Kind.AUTH, None),
                *_sign(Kind.AUTH, b"locked"),
                Reset(),
                select(I.JPKI_AID),
                *_verify(Kind.AUTH, AUTH_PIN),
            ],
        ),
        "tsm-housekeeping": (
            "GET SLOT STATUS, DELETE KEYS AND CERTIFICATES, a removed access rule, DELETE of the applet",
            lambda: [
                *personalised(),
                select(I.JPKI_AID),
                *open_channel(),
                Wrapped(_apdu(0x80, 0x3E, 0x00, 0x00, le=0)),
                Wrapped(_apdu(0x80, 0x3C, 0x02, 0x00)),
                Wrapped(_apdu(0x80, 0x3E, 0x00, 0x00, le=0)),
                select(I.ISD_AID),
                _fid(0x0001),
                *open_channel(),
                Wrapped(_apdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", 0x00)),
                Wrapped(access_rule_apdu([OTHER_APP_HASH])),
                select(I.JPKI_AID),
                select(I.ISD_AID),
                *open_channel(),
                Wrapped(_apdu(0x80, 0xE4, 0x00, 0x80, b"\x4f" + bytes([len(I.JPKI_AID)]) + I.JPKI_AID, 0x00)),
                select(I.JPKI_AID),
            ],
        ),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class AppletCheck:
    """One check: a named scenario (its command list) or the search."""

    id: str
    kind: str
    """"scenario" or "search"."""
    title: str
    items: Callable[[], list[Any]] | None = None


def applet_checks() -> tuple[AppletCheck, ...]:
    """Every check: the scenarios (personalise first), then the search."""
    out = [AppletCheck(id=f"applet:{sid}", kind="scenario", title=title, items=make) for sid, (title, make) in _scenario_items().items()]
    out.append(AppletCheck(id="applet:search", kind="search", title="generated command sequences in lockstep with the model"))
    return tuple(out)


# --- running ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class AppletCheckResult:
    """What one check found."""

    check: AppletCheck
    status: str
    """"pass", "fail" or "error" (the run could not start: keys, transport; or the suite broke)."""
    runs: int = 0
    steps: int = 0
    seconds: float = 0.0
    rules: set[str] = field(default_factory=set)
    """Interface clauses the steps reached."""
    reqs: set[str] = field(default_factory=set)
    divergence: AppletDivergence | None = None
    trace_steps: list[AppletStep] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    artefacts: list[Path] = field(default_factory=list)
    message: str = ""


@dataclass(slots=True, kw_only=True)
class AppletConformance:
    """The whole run: results, verdicts per requirement and per clause."""

    applet: str
    profile: str
    started: str
    seconds: float
    results: list[AppletCheckResult]
    requirement_verdicts: dict[str, str]
    clause_verdicts: dict[str, str]

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return all(r.status == "pass" for r in self.results)

    @property
    def conforms(self) -> bool:
        """Every check passed (clauses not exercised are listed, not counted against the applet)."""
        return self.passed and bool(self.results)


def _config_json(run: AppletRun) -> dict[str, Any]:
    c = run.state.config
    return {
        "se_id": c.se_id,
        "caller": None if c.caller is None else c.caller.hex().upper(),
        "reader_access": c.reader_access,
        "auth_tries": c.auth_tries,
        "signing_tries": c.signing_tries,
    }


def _rule_reqs(rule_id: str) -> tuple[str, ...]:
    r = I.RULES.get(rule_id)
    return r.reqs if r is not None else ()


def _absorb(result: AppletCheckResult, run: AppletRun) -> None:
    result.runs += 1
    result.steps += len(run.steps)
    for s in run.steps:
        if s.problems:
            continue
        result.rules.add(s.expected.rule)
        result.reqs.update(s.reqs, _rule_reqs(s.expected.rule))


def _keep_failure(result: AppletCheckResult, run: AppletRun) -> None:
    result.divergence = run.divergence
    result.trace_steps = list(run.steps)
    result.config = _config_json(run)


def _run_scenario(check: AppletCheck, target: AppletTarget, result: AppletCheckResult) -> None:
    assert check.items is not None
    run = AppletRun(target)
    try:
        expand(run, check.items())
    finally:
        run.close()
    _absorb(result, run)
    if run.divergence is not None:
        _keep_failure(result, run)


def _run_search(target: AppletTarget, profile: AppletProfile, result: AppletCheckResult, database_dir: Path | None, progress: Any) -> None:
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.database import DirectoryBasedExampleDatabase
    from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition
    from hypothesis.stateful import run_state_machine_as_test

    found: list[AppletRun] = []
    start = time.monotonic()
    last = [start]

    def ended(run: AppletRun) -> None:
        _absorb(result, run)
        if progress is not None and time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            progress(f"  applet:search: {result.runs} runs, {result.steps} steps, {time.monotonic() - start:.0f} s")

    def diverged(run: AppletRun) -> None:
        found.append(run)
        result.divergence = run.divergence
        result.trace_steps = list(run.steps)
        result.config = _config_json(run)

    machine = applet_machine(target, on_divergence=diverged, on_teardown=ended)
    examples = profile.examples
    if os.environ.get(EXAMPLES_ENV, "").isdigit():
        examples = int(os.environ[EXAMPLES_ENV])
    database = None
    if database_dir is not None:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", target.name).strip("-")[:80] or "applet"
        database = DirectoryBasedExampleDatabase(str(database_dir / f"search-{slug}"))
    how = settings(
        max_examples=examples,
        stateful_step_count=profile.steps,
        deadline=None,
        database=database,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no target phase: see mjpki.applet_lockstep
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    try:
        run_state_machine_as_test(machine, settings=how)
    except AssertionError:
        pass  # the divergence arrived through the callback; the last one is the shrunk example
    except (FlakyFailure, FlakyStrategyDefinition) as exc:
        if not found:
            result.message = f"the applet is not deterministic under replay ({type(exc).__name__})"


def run_check(
    check: AppletCheck,
    target: AppletTarget,
    *,
    profile: AppletProfile,
    out_dir: Path | None = None,
    database_dir: Path | None = None,
    progress: Any = None,
) -> AppletCheckResult:
    """Run one check on the target; write the failure's artefacts to out_dir."""
    result = AppletCheckResult(check=check, status="pass")
    t0 = time.monotonic()
    try:
        if check.kind == "scenario":
            _run_scenario(check, target, result)
        else:
            _run_search(target, profile, result, database_dir, progress)
    except PrereqError as exc:
        result.message = f"the card could not be brought to a known state: {exc}"
    except Exception as exc:  # the adapter or the applet class raised: an error of the run, not a verdict
        result.message = f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - t0
    if result.divergence is not None:
        result.status = "fail"
        if out_dir is not None:
            result.artefacts = write_failure(result, target.name, out_dir)
    elif result.message:
        result.status = "error"
    return result


def _verdicts(results: list[AppletCheckResult]) -> tuple[dict[str, str], dict[str, str]]:
    all_reqs = sorted({r for rule in I.RULES.values() for r in rule.reqs})
    reached = {r for res in results for r in res.reqs}
    failed_reqs: set[str] = set()
    failed_rules: set[str] = set()
    for res in results:
        if res.divergence is not None:
            failed_reqs.update(res.divergence.reqs, _rule_reqs(res.divergence.rule))
            failed_rules.add(res.divergence.rule)
    rules_reached = {r for res in results for r in res.rules}
    reqs = {
        rid: "FAIL" if rid in failed_reqs else "pass" if rid in reached else "not exercised"
        for rid in all_reqs + sorted((reached | failed_reqs) - set(all_reqs))
    }
    clauses = {
        rid: "FAIL" if rid in failed_rules else "pass" if rid in rules_reached else "not exercised"
        for rid in [*I.RULES, *sorted((rules_reached | failed_rules) - set(I.RULES))]
    }
    return reqs, clauses


def conformance_of(applet: str, profile: str, results: list[AppletCheckResult], *, started: str, seconds: float) -> AppletConformance:
    """The run made of these check results (run one by one, e.g. by the pytest plugin): verdicts per requirement and clause."""
    reqs, clauses = _verdicts(results)
    return AppletConformance(
        applet=applet, profile=profile, started=started, seconds=seconds, results=results, requirement_verdicts=reqs,
        clause_verdicts=clauses,
    )  # fmt: skip


def write_result(result: AppletConformance, out_dir: Path) -> Path:
    """out_dir/result.json (mjpki-applet-result/1); its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "result.json"
    path.write_text(json.dumps(result_json(result), indent=2) + "\n", encoding="utf-8")
    return path


def run_applet_conformance(
    target: AppletTarget,
    *,
    profile: str = "quick",
    out_dir: Path | None = None,
    checks: tuple[AppletCheck, ...] | None = None,
    database_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> AppletConformance:
    """Every check (or the given ones) on the target; result.json and failure artefacts in out_dir."""
    prof = APPLET_PROFILES[profile]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    chosen = checks if checks is not None else applet_checks()
    results: list[AppletCheckResult] = []
    for i, check in enumerate(chosen, 1):
        r = run_check(check, target, profile=prof, out_dir=out_dir, database_dir=database_dir, progress=progress)
        results.append(r)
        if progress is not None:
            progress(f"[{i}/{len(chosen)}] {check_line(r)}")
    result = conformance_of(target.name, profile, results, started=started, seconds=time.monotonic() - t0)
    if out_dir is not None:
        write_result(result, out_dir)
    return result


# --- output ----------------------------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """Text safe to print on a terminal: control, bidi and surrogate characters escaped (an applet chooses some of it)."""
    from mjpki.escape import terminal

    return terminal(text)


def check_line(r: AppletCheckResult) -> str:
    """One line per check: status, id, size, time; the divergence or error below it."""
    label = {"pass": "pass", "fail": "FAIL", "error": "ERROR"}[r.status]
    line = f"{label:5}  {r.check.id:28} {r.runs:4} runs {r.steps:6} steps {r.seconds:6.1f} s"
    if r.divergence is not None:
        line += f"\n       {printable(str(r.divergence))}"
    if r.message and r.divergence is None:
        line += f"\n       error: {printable(r.message)}"
    return line


def failure_text(r: AppletCheckResult) -> str:
    """What a failed or broken check says: its line (the divergence or the error), then the step table of its trace."""
    text = check_line(r)
    if r.trace_steps:
        text += "\n\n" + step_table_text([s.to_json() for s in r.trace_steps], max_width=90)
    return text


def trace_json(
    steps: list[AppletStep], *, applet: str, check: str, divergence: AppletDivergence | None, config: dict[str, Any]
) -> dict[str, Any]:
    """An mjpki-apdu-trace/1 document."""
    return {
        "format": APDU_TRACE_FORMAT,
        "meta": {
            "applet": applet,
            "check": check,
            "divergence": None if divergence is None else str(divergence),
            "divergence_index": None if divergence is None else divergence.index,
            "config": config,
        },
        "steps": [s.to_json() for s in steps],
    }


def _rows(steps: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for i, s in enumerate(steps):
        from mjpki.spec.apdu.commands import command_from_json

        cmd = command_text(command_from_json(s["command"]))
        seen = s["observed"]["sw"] or "-"
        if s["observed"].get("host_error"):
            seen += f" ({s['observed']['host_error']})"
        mark = "!!" if s.get("problems") else ""
        rows.append(
            tuple(
                printable(x)
                for x in (
                    f"{mark}{i}",
                    cmd,
                    _cut(s.get("sent") or "-", 40),
                    f"{seen} / {s['expected']['sw']}",
                    s["expected"]["rule"],
                    "; ".join(s.get("problems", ())),
                )
            )
        )
    return rows


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_table_text(steps: list[dict[str, Any]], *, max_width: int = 60) -> str:
    """The steps as a table: index (!! where the applet diverged), command, bytes sent, SW seen / demanded, rule, problems."""
    from mjpki.render import table

    return table(["step", "command", "sent", "SW seen / demanded", "rule", "problems"], _rows(steps), max_width=max_width)


def sequence_diagram(steps: list[dict[str, Any]]) -> str:
    """A Mermaid sequence diagram Host -> Card; the diverging step in a red rect with a note."""
    from mjpki.mermaid import DIVERGENCE_FILL, escape
    from mjpki.spec.apdu.commands import command_from_json

    lines = ["sequenceDiagram", "    participant Host", "    participant Card"]
    for i, s in enumerate(steps):
        cmd = command_from_json(s["command"])
        seen = s["observed"]["sw"] or "no answer"
        body = [f"Host->>Card: {escape(printable(f'{i}. {command_text(cmd)}'), limit=80)}"]
        if isinstance(cmd, Reset):
            body = [f"Note over Host,Card: {i}. reset"]
        else:
            answer = f"{seen} ({s['expected']['rule']})"
            body.append(f"Card-->>Host: {escape(printable(answer))}")
        if s.get("problems"):
            lines.append(f"    rect {DIVERGENCE_FILL}")
            lines += [f"        {b}" for b in body]
            note = f"step {i} diverges: demanded {s['expected']['sw']}: {'; '.join(s['problems'])} [{', '.join(s.get('reqs', ()))}]"
            lines.append(f"        Note over Host,Card: {escape(printable(note), limit=200)}")
            lines.append("    end")
        else:
            lines += [f"    {b}" for b in body]
    return "\n".join(lines) + "\n"


def markdown_report(doc: dict[str, Any], *, name: str) -> str:
    """A Markdown page for an applet trace: divergence, step table, sequence diagram."""
    from mjpki import escape as esc

    meta = doc["meta"]
    out = [f"# {esc.markdown(meta['check'])}: {esc.markdown(meta['applet'])}", ""]
    if meta.get("divergence"):
        out += [f"**Diverges.** {esc.markdown(meta['divergence'], limit=2000)}", ""]
    else:
        out += ["The applet and the model agree at every step.", ""]
    out += [
        f"{len(doc['steps'])} steps. Replay: {esc.code(f'mjpki replay {name}.json')} (on the model) or "
        f"{esc.code(f'mjpki replay {name}.json --applet MODULE:CLASS')} (on an applet class).",
        "",
        "## Steps",
        "",
        esc.fence(step_table_text(doc["steps"], max_width=90)),
        "",
        "## Sequence",
        "",
        esc.fence(sequence_diagram(doc["steps"]).rstrip("\n"), "mermaid"),
        "",
    ]
    return "\n".join(out)


def write_failure(result: AppletCheckResult, applet: str, out_dir: Path) -> list[Path]:
    """The failing run's trace (.json), step table (.txt) and report (.md) in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.check.id.replace(":", "-")
    doc = trace_json(result.trace_steps, applet=applet, check=result.check.id, divergence=result.divergence, config=result.config)
    paths = [out_dir / f"{name}.json", out_dir / f"{name}.txt", out_dir / f"{name}.md"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    head = f"{result.check.id} on {applet}: {result.divergence}\n\n"
    paths[1].write_text(printable(head.rstrip("\n")) + "\n\n" + step_table_text(doc["steps"], max_width=90) + "\n", encoding="utf-8")
    paths[2].write_text(markdown_report(doc, name=name), encoding="utf-8")
    return paths


def result_json(result: AppletConformance) -> dict[str, Any]:
    """The run as JSON (format mjpki-applet-result/1)."""

    def check(r: AppletCheckResult) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": r.check.id, "kind": r.check.kind, "title": r.check.title, "status": r.status, "runs": r.runs,
            "steps": r.steps, "seconds": round(r.seconds, 3), "rules": sorted(r.rules), "reqs": sorted(r.reqs),
        }  # fmt: skip
        if r.divergence is not None:
            d = r.divergence
            data["divergence"] = {
                "index": d.index,
                "command": None if d.command is None else d.command.to_json(),
                "rule": d.rule,
                "what": d.what,
                "reqs": list(d.reqs),
            }
        if r.artefacts:
            data["artefacts"] = [str(p) for p in r.artefacts]
        if r.message:
            data["error"] = r.message
        return data

    return {
        "format": APPLET_RESULT_FORMAT,
        "applet": result.applet,
        "profile": result.profile,
        "started": result.started,
        "seconds": round(result.seconds, 3),
        "passed": result.passed,
        "conforms": result.conforms,
        "summary": {
            "checks": len(result.results),
            **{s: sum(1 for r in result.results if r.status == s) for s in ("pass", "fail", "error")},
        },
        "checks": [check(r) for r in result.results],
        "requirements": {
            rid: {"verdict": v, "checks": [r.check.id for r in result.results if rid in r.reqs]}
            for rid, v in result.requirement_verdicts.items()
        },
        "clauses": {
            rid: {
                "title": I.RULES[rid].title if rid in I.RULES else "",
                "reqs": list(_rule_reqs(rid)),
                "verdict": v,
                "checks": [r.check.id for r in result.results if rid in r.rules],
            }
            for rid, v in result.clause_verdicts.items()
        },
    }


def render_applet_summary(result: AppletConformance) -> str:
    """The per-requirement and per-clause verdict tables and the summary line."""
    from mjpki.render import table
    from mjpki.spec.requirements import REQUIREMENTS

    def where(ids: list[str]) -> str:
        return ", ".join(ids[:2]) + (f" +{len(ids) - 2}" if len(ids) > 2 else "")

    req_rows = [
        (rid, REQUIREMENTS[rid].title if rid in REQUIREMENTS else "", v, where([r.check.id for r in result.results if rid in r.reqs]))
        for rid, v in result.requirement_verdicts.items()
    ]
    clause_rows = [
        (rid, I.RULES[rid].title if rid in I.RULES else "", v, where([r.check.id for r in result.results if rid in r.rules]))
        for rid, v in result.clause_verdicts.items()
    ]
    lines = [
        table(["requirement", "title", "verdict", "exercised by"], req_rows, max_width=46),
        "",
        table(["clause", "title", "verdict", "exercised by"], clause_rows, max_width=46),
        "",
    ]
    bad = [r for r in result.results if r.status != "pass"]
    if bad:
        lines.append("Failures:")
        for r in bad:
            lines.append(f"  {r.check.id}: {printable(str(r.divergence) if r.divergence is not None else r.message)}")
            lines += [f"      {p}" for p in r.artefacts]
    unexercised = [c for c, v in result.clause_verdicts.items() if v == "not exercised"]
    passed = sum(1 for r in result.results if r.status == "pass")
    tally = {v: sum(1 for x in result.clause_verdicts.values() if x == v) for v in ("pass", "FAIL", "not exercised")}
    lines.append(
        f"{printable(result.applet)}, profile {result.profile}: {passed} of {len(result.results)} checks passed in "
        f"{result.seconds:.0f} s; clauses: "
        + ", ".join(f"{n} {v}" for v, n in tally.items() if n)
        + ("; CONFORMS" if result.conforms else "; DOES NOT CONFORM")
        + (f" (not exercised: {', '.join(unexercised)})" if unexercised and result.conforms else "")
    )
    return "\n".join(lines)


# --- replay ----------------------------------------------------------------------------------------------------------


def _config_from(meta: dict[str, Any]) -> CardConfig:
    c = meta.get("config") or {}
    caller = c.get("caller")
    return CardConfig(
        se_id=c.get("se_id", "?"),
        caller=None if caller is None else bytes.fromhex(caller),
        reader_access=c.get("reader_access", True),
        auth_tries=c.get("auth_tries", 3),
        signing_tries=c.get("signing_tries", 5),
    )


def replay_on_model(trace: ApduTrace) -> tuple[int | None, str]:
    """Feed the recorded observations to the model; (index of the first step it rejects, what) or (None, "")."""
    state = initial_state(_config_from(trace.meta))
    for i, s in enumerate(trace.steps):
        result = step(state, s.command, s.observed)
        if result.problems:
            return i, f"{command_text(s.command)}: {'; '.join(result.problems)} [{result.expected.rule}; {', '.join(result.reqs)}]"
        state = result.state
    return None, ""


def replay_on_class(trace: ApduTrace, cls: Callable[..., Any], *, name: str = "") -> AppletRun:
    """Send the trace's commands to a fresh `cls(se_id, keys)` in lockstep with the model; the run (its divergence, if any)."""
    config = _config_from(trace.meta)
    target = applet_target_for_class(cls, name=name, se_id=config.se_id)
    run = AppletRun(target)
    try:
        for s in trace.steps:
            if run.send(s.command) is None or run.broken:
                break
    finally:
        run.close()
    return run
