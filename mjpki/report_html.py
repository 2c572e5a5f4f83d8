"""`mjpki report RESULT.json... --html DIR`: one self-contained HTML page over conformance runs.

The page has no script and fetches nothing (a Content-Security-Policy says so to the browser too):
the verdict matrix (requirements by run, FAIL cells linking to the failure), every failure with its
step table, its sequence diagram as inline SVG and its replay command, the coverage of the spec's
actions and refusals, the assumptions and variant settings of each run (with a warning when runs are
not comparable), and the lifecycle diagrams from docs/diagrams. Every text that comes from a result,
a trace or an adapter goes through `svg_sequence.safe`.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjpki.svg_sequence import printable, safe

if TYPE_CHECKING:
    from mjpki.spec.trace import Trace

__all__ = [
    "ReportError",
    "Failure",
    "Run",
    "load_result",
    "load_runs",
    "variant_differences",
    "assumption_differences",
    "render_page",
    "write_report",
    "add_arguments",
    "main",
]

RESULT_FORMAT = "mjpki-result/1"  # as mjpki.conformance writes it; not imported, to keep `mjpki report` light
STATUSES = ("pass", "fail", "known", "error")
VERDICT_CLASS = {"pass": "pass", "FAIL": "fail", "known failure": "known", "not exercised": "none"}
STATUS_LABEL = {"pass": "pass", "fail": "FAIL", "known": "known failure", "error": "ERROR"}
STATUS_CLASS = {"pass": "pass", "fail": "fail", "known": "known", "error": "fail"}
DIAGRAMS = Path(__file__).resolve().parent / "diagrams"
"""docs/diagrams, installed with the package (mjpki/diagrams is a link to it in the repository)."""
DIAGRAM_NAMES = (("phone-certificate-lifecycle", "Phone certificate lifecycle"), ("se-lifecycle", "GP-SE lifecycle"))
_ADAPTER = re.compile(r"[\w./-]+:[\w.]+")


class ReportError(ValueError):
    """Input the report cannot use; the message is one line, for `mjpki: ...` and exit 2."""


def _one_line(text: object) -> str:
    return " ".join(printable(text).split())


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A failing check of one run, with its trace when the artefact could be read."""

    check: dict[str, Any]
    anchor: str
    trace: Trace | None = None
    trace_path: Path | None = None
    problem: str = ""
    """Why there is no trace (not recorded, not found, not readable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One result.json: where it came from, its column label, its data, its failures."""

    index: int
    path: Path
    label: str
    data: dict[str, Any]
    failures: tuple[Failure, ...] = field(default=())

    @property
    def checks(self) -> list[dict[str, Any]]:
        """The run's checks, as result.json lists them."""
        return self.data["checks"]

    @property
    def verdicts(self) -> dict[str, str]:
        """Requirement ID -> verdict."""
        return {rid: str(r.get("verdict", "")) for rid, r in self.data["requirements"].items()}


# --- reading result.json --------------------------------------------------------------------------------------------


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ReportError(_one_line(f"{path} is not a valid {RESULT_FORMAT} result: {what}"))


def load_result(path: Path) -> dict[str, Any]:
    """A result.json, checked for what the page uses; ReportError with one line for anything else."""
    from mjpki.safe_load import LoadError, parse_json, read_bytes

    if path.is_dir():
        hint = f" (did you mean {path / 'result.json'}?)" if (path / "result.json").is_file() else ""
        raise ReportError(_one_line(f"{path} is a directory, not a result.json{hint}"))
    # Read through mjpki.safe_load: a regular file of bounded size, JSON of bounded depth and count (docs/security.md).
    try:
        raw = read_bytes(path, what="result file")
    except LoadError as exc:
        message = f"no such result file: {path}" if not path.exists() and not path.is_symlink() else str(exc)
        raise ReportError(_one_line(message)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError(_one_line(f"{path} is not JSON (not UTF-8 text)")) from None
    try:
        data = parse_json(text, where=f"{path} is not JSON")
    except LoadError as exc:
        raise ReportError(_one_line(str(exc))) from None
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt != RESULT_FORMAT:
        raise ReportError(
            _one_line(f"{path} is not an mjpki result: format is {fmt!r}, expected {RESULT_FORMAT!r} (`mjpki run` writes it)")
        )
    for key in ("system", "profile", "started"):
        _expect(isinstance(data.get(key), str), path, f"{key} must be a string")
    _expect(isinstance(data.get("checks"), list), path, "checks must be a list")
    for i, c in enumerate(data["checks"]):
        _expect(isinstance(c, dict) and isinstance(c.get("id"), str), path, f"checks[{i}] must be an object with an id")
        _expect(c.get("status") in STATUSES, path, f"checks[{i}].status must be one of {', '.join(STATUSES)}")
        div = c.get("divergence", {})
        _expect(isinstance(div, dict), path, f"checks[{i}].divergence must be an object")
        _expect(isinstance(div.get("reqs", []), list), path, f"checks[{i}].divergence.reqs must be a list")
        _expect(isinstance(c.get("artefacts", []), list), path, f"checks[{i}].artefacts must be a list")
        _expect(isinstance(c.get("variants", {}), dict), path, f"checks[{i}].variants must be an object")
    reqs = data.get("requirements")
    _expect(isinstance(reqs, dict) and all(isinstance(r, dict) for r in reqs.values()), path, "requirements must map IDs to objects")
    for key in ("assumptions", "coverage"):  # added later within the format: older files lack them
        _expect(isinstance(data.get(key, {}), dict), path, f"{key} must be an object")
    coverage = data.get("coverage", {})
    declared, exercised = coverage.get("declared", {}), coverage.get("exercised", {})
    _expect(isinstance(declared, dict) and all(isinstance(v, list) for v in declared.values()), path, "coverage.declared: lists by action")
    _expect(
        isinstance(exercised, dict) and all(isinstance(v, dict) for v in exercised.values()), path, "coverage.exercised: counts by action"
    )
    return data


def _anchor(run: int, check_id: str, taken: set[str]) -> str:
    base = f"run{run}-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", check_id).strip("-") or "check")
    anchor, n = base, 1
    while anchor in taken:  # two IDs that differ only in punctuation still get their own anchor
        n += 1
        anchor = f"{base}-{n}"
    taken.add(anchor)
    return anchor


def _trace_file(result_path: Path, check: dict[str, Any]) -> tuple[Path | None, str]:
    """The check's trace artefact: next to result.json (where `mjpki run` writes it) or where result.json says it is."""
    recorded = [str(p) for p in check.get("artefacts", []) if str(p).endswith(".json")]
    if not recorded:
        return None, "result.json records no trace for this failure"
    for p in recorded:
        for candidate in (result_path.parent / Path(p).name, Path(p)):
            if candidate.is_file():
                return candidate, ""
    return None, f"trace not found: {recorded[0]} (nor next to {result_path.name})"


def _failures(index: int, path: Path, data: dict[str, Any]) -> tuple[Failure, ...]:
    from mjpki.safe_load import LoadError, load_trace
    from mjpki.spec.trace import Trace

    out = []
    taken: set[str] = set()
    for c in data["checks"]:
        if c["status"] == "pass":
            continue
        anchor = _anchor(index, c["id"], taken)
        trace_path, problem = _trace_file(path, c)
        trace = None
        if trace_path is not None:
            try:
                loaded = load_trace(trace_path)
            except LoadError as exc:
                problem = f"trace {trace_path} could not be read: {exc}"
            else:
                trace = loaded if isinstance(loaded, Trace) else None
                problem = "" if trace is not None else f"trace {trace_path} is an applet-level trace, not a system-level one"
        out.append(Failure(check=c, anchor=anchor, trace=trace, trace_path=trace_path, problem=_one_line(problem)))
    return tuple(out)


def _when(started: str) -> str:
    try:
        t = datetime.fromisoformat(started)
    except ValueError:
        return started
    return t.strftime("%Y-%m-%d %H:%M") + (f" {t.tzname()}" if t.tzname() else "")


def load_runs(paths: list[Path], labels: list[str] | None = None) -> list[Run]:
    """Read every result.json (ReportError on the first bad one) and the traces of its failures."""
    if not paths:
        raise ReportError("no result files given")
    if labels and len(labels) != len(paths):
        raise ReportError(f"{len(labels)} --label for {len(paths)} result files: give one per file, in order, or none")
    runs = []
    for i, p in enumerate(paths, 1):
        data = load_result(p)
        label = labels[i - 1] if labels else f"{data['system']} · {_when(data['started'])}"
        runs.append(Run(index=i, path=p, label=label, data=data, failures=_failures(i, p, data)))
    return runs


# --- comparability --------------------------------------------------------------------------------------------------


def _defaults() -> dict[str, Any]:
    """The variants at their defaults (as launched), as result.json writes them (enums by value)."""
    from mjpki.spec.assumptions import Variants

    v = Variants()
    return {name: (x.value if isinstance(x := getattr(v, name), Enum) else x) for name in Variants.names()}


def _settings(variants: dict[str, Any]) -> str:
    defaults = _defaults()
    other = [f"{k}={json.dumps(v)}" for k, v in sorted(variants.items()) if defaults.get(k, object()) != v]
    return ", ".join(other) or "defaults"


def variant_differences(runs: list[Run]) -> list[str]:
    """Checks that two runs ran under different variant settings, one line each (empty when comparable)."""
    out = []
    ids = list(dict.fromkeys(c["id"] for r in runs for c in r.checks))
    for cid in ids:
        seen = {r.index: (r.label, _settings(c["variants"])) for r in runs for c in r.checks if c["id"] == cid and "variants" in c}
        if len({s for _, s in seen.values()}) > 1:
            out.append(f"{cid}: " + "; ".join(f"{label}: {s}" for label, s in seen.values()))
    return out


def assumption_differences(runs: list[Run]) -> list[str]:
    """Named assumptions that some runs made differently or not at all (empty when comparable)."""
    recorded = [r for r in runs if "assumptions" in r.data]
    names = list(dict.fromkeys(n for r in recorded for n in r.data["assumptions"]))
    return [n for n in names if len({str(r.data["assumptions"].get(n)) for r in recorded}) > 1]


# --- the page -------------------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif;color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1400px;margin:0 auto;padding:16px 24px 48px;background:#fff}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:16px;margin:24px 0 6px}h4{font-size:14px;margin:14px 0 4px}
nav a{margin-right:14px}a{color:#0969da}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #d0d7de;padding:3px 8px;vertical-align:top;text-align:left}
th{background:#eaeef2}thead th{position:sticky;top:0}
td.v{text-align:center;white-space:nowrap;font-weight:600}
.pass{background:#dafbe1;color:#116329}.fail{background:#cf222e;color:#fff}.fail a{color:#fff}
.known{background:#fff8c5;color:#7d4e00}.known a{color:#7d4e00}.none{background:#f6f8fa;color:#6e7781;font-weight:400}
.other{background:#ddf4ff}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600}
.warn{border:2px solid #bf8700;background:#fff8c5;padding:8px 12px;margin:12px 0;border-radius:6px}
.warn strong{color:#7d4e00}.note{color:#57606a}
tr.div td{background:#ffe0e0;font-weight:600}tr.div td.mark{color:#cf222e}tr.why td{background:#fff0f0;color:#a40e26}
tr.spec-only td{color:#8c959f}
code,pre,.steps td{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:8px;overflow-x:auto;white-space:pre-wrap}
.scroll{overflow-x:auto;border:1px solid #d0d7de;margin:6px 0 12px}.scroll svg{display:block}
.failure{border-left:4px solid #cf222e;padding-left:14px;margin:18px 0}.failure.known-failure{border-left-color:#bf8700}
th.run{min-width:120px;max-width:260px;overflow-wrap:anywhere;font-size:12px}td.t{min-width:220px}
.wide{overflow-x:auto}table.runs td{white-space:nowrap}
table.runs th,table.runs td.c{white-space:normal;max-width:340px;overflow-wrap:anywhere}
figure{margin:10px 0}figure svg.lifecycle{width:100%;height:auto}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _cell(run: Run, rid: str) -> str:
    verdict = run.verdicts.get(rid)
    if verdict is None:
        return '<td class="v none" title="not in this run\'s catalogue">—</td>'
    cls = VERDICT_CLASS.get(verdict, "other")
    text = safe(verdict)
    status = {"fail": "fail", "known": "known"}.get(cls)
    if status is not None:
        hits = [f for f in run.failures if f.check["status"] == status and rid in f.check.get("divergence", {}).get("reqs", [])]
        if hits:
            names = ", ".join(f.check["id"] for f in hits)
            text = f'<a href="#{hits[0].anchor}" title="{safe(names)}">{text}</a>' + (f" +{len(hits) - 1}" if len(hits) > 1 else "")
    return f'<td class="v {cls}">{text}</td>'


def _run_heads(runs: list[Run]) -> str:
    return "".join(
        f'<th class="run" title="{safe(r.data["system"])} · {safe(r.data["started"])} · {safe(r.path)}">{safe(r.label)}</th>' for r in runs
    )


def _matrix(runs: list[Run]) -> str:
    from mjpki.spec.requirements import conformance_ids

    present = {rid for r in runs for rid in r.data["requirements"]}
    order = [rid for rid in conformance_ids() if rid in present] + sorted(present - set(conformance_ids()))
    titles: dict[str, str] = {}
    for r in runs:
        for rid, entry in r.data["requirements"].items():
            titles.setdefault(rid, str(entry.get("title", "")))
    tally = []
    for r in runs:
        counts = {v: sum(1 for x in r.verdicts.values() if x == v) for v in VERDICT_CLASS}
        tally.append("<br>".join(f'<span class="badge {VERDICT_CLASS[v]}">{n} {safe(v)}</span>' for v, n in counts.items() if n))
    rows = [
        f'<tr><th>{safe(rid)}</th><td class="t">{safe(titles.get(rid, ""))}</td>{"".join(_cell(r, rid) for r in runs)}</tr>'
        for rid in order
    ]
    return (
        '<div class="wide"><table class="matrix"><thead><tr><th>requirement</th><th>title</th>'
        + _run_heads(runs)
        + '</tr></thead><tbody><tr><th></th><td class="note">totals</td>'
        + "".join(f'<td class="v">{t}</td>' for t in tally)
        + "</tr>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _checks_matrix(runs: list[Run]) -> str:
    ids = list(dict.fromkeys(c["id"] for r in runs for c in r.checks))
    rows = []
    for cid in ids:
        cells = []
        for r in runs:
            c = next((c for c in r.checks if c["id"] == cid), None)
            if c is None:
                cells.append('<td class="v none">not run</td>')
                continue
            label = safe(STATUS_LABEL[c["status"]])
            f = next((f for f in r.failures if f.check is c), None)
            if f is not None:
                label = f'<a href="#{f.anchor}">{label}</a>'
            cells.append(f'<td class="v {STATUS_CLASS[c["status"]]}">{label}</td>')
        title = next((str(c.get("title", "")) for r in runs for c in r.checks if c["id"] == cid), "")
        rows.append(f"<tr><th>{safe(cid)}</th><td>{safe(title)}</td>{''.join(cells)}</tr>")
    return "<table><thead><tr><th>check</th><th>title</th>" + _run_heads(runs) + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"


def _step_table(trace: Trace) -> str:
    recorded = trace.meta.get("divergence")
    marked = recorded.get("index") if isinstance(recorded, dict) else None
    rows = []
    for i, s in enumerate(trace.steps):
        diverging = s.diverges or i == marked
        cls = "div" if diverging else "spec-only" if s.actual is None else ""
        actual = "—" if s.actual is None else s.actual
        note = f" ({s.note})" if s.note else ""
        rows.append(
            f'<tr class="{cls}"><td class="mark">{">>" if diverging else ""}{i}</td><td>{safe(s.action)}</td>'
            f"<td>{safe(s.expected)}</td><td>{safe(actual)}{safe(note)}</td><td>{safe(' '.join(s.reqs))}</td></tr>"
        )
        why = list(s.violations) or ([str(recorded.get("what", ""))] if i == marked and isinstance(recorded, dict) else [])
        rows += [f'<tr class="why"><td></td><td colspan="4">! {safe(w)}</td></tr>' for w in why]
    return (
        '<div class="scroll"><table class="steps"><thead><tr><th>#</th><th>action</th><th>spec expects</th>'
        "<th>system gave</th><th>requirements</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


def _replay_command(run: Run, f: Failure) -> str:
    adapter = run.data["system"] if _ADAPTER.fullmatch(run.data["system"]) else "MODULE:FACTORY"
    trace = str(f.trace_path) if f.trace_path is not None else f"{f.check['id'].replace(':', '-')}.json"
    return f"mjpki replay {shlex.quote(trace)} --adapter {shlex.quote(adapter)}"


def _failure(run: Run, f: Failure, titles: dict[str, str]) -> str:
    from mjpki.svg_sequence import sequence_svg

    c = f.check
    status = c["status"]
    div = c.get("divergence", {})
    reqs = [str(r) for r in div.get("reqs", [])]
    out = [
        f'<section class="failure{" known-failure" if status == "known" else ""}" id="{f.anchor}">',
        f'<h3><span class="badge {STATUS_CLASS[status]}">{safe(STATUS_LABEL[status])}</span> {safe(c["id"])}'
        f' <span class="note">— {safe(run.label)}</span></h3>',
        f"<p>{safe(c.get('title', ''))}</p>",
    ]
    if div:
        where = "before the first step" if div.get("index", -1) == -1 else f"at step {safe(div.get('index'))} ({safe(div.get('action'))})"
        out.append(f"<p><strong>Diverges {where}:</strong> {safe(div.get('what', ''))}</p>")
    if reqs:
        out.append("<p>Requirements: " + ", ".join(f"<strong>{safe(r)}</strong> {safe(titles.get(r, ''))}" for r in reqs) + "</p>")
    if c.get("known_reason"):
        out.append(f"<p>Known failure: {safe(c['known_reason'])}</p>")
    if c.get("error"):
        out.append(f"<p>Suite error: {safe(c['error'])}</p>")
    out.append(f"<h4>Replay</h4><pre>{safe(_replay_command(run, f))}</pre>")
    if f.trace is None:
        out.append(f'<p class="warn">{safe(f.problem)}</p>')
    else:
        out.append(f"<h4>Steps ({len(f.trace.steps)})</h4>" + _step_table(f.trace))
        out.append(f'<h4>Sequence</h4><div class="scroll">{sequence_svg(f.trace, title=str(c["id"]))}</div>')
    artefacts = c.get("artefacts", [])
    if artefacts:
        out.append('<p class="note">Artefacts: ' + ", ".join(f"<code>{safe(a)}</code>" for a in artefacts) + "</p>")
    out.append("</section>")
    return "\n".join(out)


def _coverage(runs: list[Run]) -> str:
    recorded = [r for r in runs if r.data.get("coverage")]
    out = []
    for r in runs:
        if r not in recorded:
            out.append(f'<p>{safe(r.label)}: <span class="note">coverage not recorded (a result.json from an older mjpki)</span></p>')
    if not recorded:
        return "\n".join(out)
    declared: dict[str, list[str]] = {}
    for r in recorded:
        for action, codes in r.data["coverage"].get("declared", {}).items():
            declared.setdefault(str(action), [])
            declared[str(action)] += [str(c) for c in codes if str(c) not in declared[str(action)]]

    def count(r: Run, action: str, code: str) -> int:
        n = r.data["coverage"].get("exercised", {}).get(action, {}).get(code, 0)
        return n if isinstance(n, int) else 0

    summary = []
    for r in recorded:
        total = sum(len(v) for v in declared.values())
        hit = sum(1 for a, codes in declared.items() for c in codes if count(r, a, c))
        acts = sum(1 for a, codes in declared.items() if any(count(r, a, c) for c in codes))
        never = [a for a, codes in declared.items() if not any(count(r, a, c) for c in codes)]
        summary.append(
            f"<tr><th>{safe(r.label)}</th><td>{hit} of {total}</td><td>{acts} of {len(declared)}</td>"
            f"<td>{safe(', '.join(never)) or '—'}</td></tr>"
        )
    out.append(
        "<table><thead><tr><th>run</th><th>outcomes exercised</th><th>actions exercised</th><th>actions never exercised</th>"
        "</tr></thead><tbody>" + "".join(summary) + "</tbody></table>"
    )
    rows = []
    for action, codes in declared.items():
        for j, code in enumerate(codes):
            cells = "".join(
                f'<td class="v {"pass" if count(r, action, code) else "none"}">{count(r, action, code) or "never"}</td>' for r in recorded
            )
            head = f'<th rowspan="{len(codes)}">{safe(action)}</th>' if j == 0 else ""
            rows.append(f"<tr>{head}<td>{safe(code)}</td>{cells}</tr>")
    out.append(
        "<details><summary>Every declared outcome, by run (steps sent to the system whose spec outcome it was)</summary>"
        "<table><thead><tr><th>action</th><th>outcome</th>" + _run_heads(recorded) + "</tr></thead><tbody>"
        + "".join(rows) + "</tbody></table></details>"
    )  # fmt: skip
    return "\n".join(out)


def _per_run_variants(run: Run) -> dict[str, str]:
    """Variant name -> the run's setting: one value, or the values with the checks that used each."""
    by_name: dict[str, dict[str, list[str]]] = {}
    for c in run.checks:
        for k, v in c.get("variants", {}).items():
            by_name.setdefault(str(k), {}).setdefault(json.dumps(v), []).append(c["id"])
    out = {}
    for name, values in by_name.items():
        ranked = sorted(values.items(), key=lambda kv: -len(kv[1]))
        if len(ranked) == 1:
            out[name] = ranked[0][0]
            continue
        parts = [f"{ranked[0][0]} ({len(ranked[0][1])} checks)"]
        parts += [f"{v} in {', '.join(ids[:3])}" + (f" +{len(ids) - 3}" if len(ids) > 3 else "") for v, ids in ranked[1:]]
        out[name] = "; ".join(parts)
    return out


def _variants(runs: list[Run]) -> str:
    settings = [_per_run_variants(r) for r in runs]
    names = list(dict.fromkeys(n for s in settings for n in s))
    out = []
    if names:
        rows = [
            f"<tr><th>{safe(n)}</th>" + "".join(f"<td>{safe(s.get(n, 'not recorded'))}</td>" for s in settings) + "</tr>" for n in names
        ]
        out.append("<table><thead><tr><th>variant</th>" + _run_heads(runs) + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    missing = [r for r, s in zip(runs, settings, strict=True) if not s]
    out += [f'<p class="note">{safe(r.label)}: variant settings not recorded (a result.json from an older mjpki).</p>' for r in missing]
    differ = variant_differences(runs)
    if differ:
        out.append(
            '<p>Checks run under different settings in different runs (<strong>not comparable</strong>):</p><ul class="warn">'
            + "".join(f"<li>{safe(d)}</li>" for d in differ)
            + "</ul>"
        )
    elif len(runs) > 1 and not missing:
        out.append('<p class="note">Every check that more than one run ran had the same variant settings in each.</p>')
    return "\n".join(out)


def _assumptions(runs: list[Run]) -> str:
    recorded = [r for r in runs if "assumptions" in r.data]
    missing = [r for r in runs if r not in recorded]
    out = [f'<p class="note">{safe(r.label)}: assumptions not recorded (a result.json from an older mjpki).</p>' for r in missing]
    if not recorded:
        return "\n".join(out)
    names = list(dict.fromkeys(n for r in recorded for n in r.data["assumptions"]))
    differ = set(assumption_differences(runs))
    rows = []
    for n in names:
        first = next(str(r.data["assumptions"][n]) for r in recorded if n in r.data["assumptions"])
        cells = "".join(
            '<td class="v none">absent</td>'
            if n not in r.data["assumptions"]
            else '<td class="v pass">made</td>'
            if str(r.data["assumptions"][n]) == first
            else '<td class="v known">other text</td>'
            for r in recorded
        )
        rows.append(f'<tr class="{"div" if n in differ else ""}"><th>{safe(n)}</th><td>{safe(first)}</td>{cells}</tr>')
    same = "the same in every run" if not differ else f"{len(differ)} differ between runs"
    out.append(
        f"<details{' open' if differ else ''}><summary>{len(names)} named assumptions, {same} (the spec's choices where the "
        "sources are silent; <code>mjpki assumptions</code>)</summary>"
        "<table><thead><tr><th>assumption</th><th>text</th>" + _run_heads(recorded) + "</tr></thead><tbody>" + "".join(rows)
        + "</tbody></table></details>"
    )  # fmt: skip
    return "\n".join(out)


def _lifecycle_svg(name: str) -> tuple[str, str]:
    """(inline <svg>, problem) for docs/diagrams/<name>.svg, rendered from the .dot with Graphviz when the SVG is missing."""
    svg_path, dot_path = DIAGRAMS / f"{name}.svg", DIAGRAMS / f"{name}.dot"
    if svg_path.is_file():
        text = svg_path.read_text(encoding="utf-8")
    elif dot_path.is_file() and shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg", str(dot_path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return "", f"dot failed on {dot_path}"
        text = done.stdout
    else:
        return "", f"{svg_path} is missing (`mjpki diagrams` makes it; Graphviz renders it)"
    start = text.find("<svg")
    if start < 0 or re.search(r"<script|<foreignObject|\son\w+\s*=", text, re.IGNORECASE):
        return "", f"{svg_path} is not a plain Graphviz SVG; left out"
    body = re.sub(r"<!--.*?-->", "", text[start:], flags=re.DOTALL)
    # Two diagrams on one page: keep their ids apart; size them by the page, not by points.
    body = re.sub(r'\bid="', f'id="{name}-', body)
    box = re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) [\d.]+"', body)
    natural = float(box.group(1)) * 4 / 3 if box else 1600.0  # Graphviz sizes in points
    # Fit the page, but never so small that the labels cannot be read (then the figure scrolls).
    size = f'class="lifecycle" style="min-width:{0.6 * natural:.0f}px" role="img" aria-label="{name}"'
    body = re.sub(r'<svg\s+width="[^"]*"\s+height="[^"]*"', f"<svg {size}", body, count=1)
    return body, ""


def _diagrams() -> str:
    out = []
    for name, title in DIAGRAM_NAMES:
        svg, problem = _lifecycle_svg(name)
        if svg:
            out.append(f'<h3>{safe(title)}</h3><figure class="scroll">{svg}</figure>')
        else:
            out.append(f'<p class="note">{safe(title)}: {safe(problem)}</p>')
    return "\n".join(out)


def _run_table(runs: list[Run]) -> str:
    rows = []
    for r in runs:
        d = r.data
        s = d.get("summary", {}) if isinstance(d.get("summary"), dict) else {}
        checks = ", ".join(f"{s[k]} {STATUS_LABEL[k]}" for k in STATUSES if isinstance(s.get(k), int) and s[k])
        not_ex = sum(1 for v in r.verdicts.values() if v == "not exercised")
        passed = d.get("passed") is True
        verdict = ("CONFORMS" if not not_ex else "passed; not every requirement exercised") if passed else "DOES NOT CONFORM"
        cls = "pass" if passed and not not_ex else "known" if passed else "fail"
        rows.append(
            f'<tr><th>{safe(r.label)}</th><td class="c"><code>{safe(d["system"])}</code></td><td>{safe(d["profile"])}</td>'
            f'<td title="{safe(d["started"])}">{safe(_when(d["started"]))}</td><td>{safe(d.get("seconds", ""))} s</td>'
            f"<td>{safe(checks)}</td>"
            f'<td class="v {cls}">{verdict}</td><td class="c"><code>{safe(r.path)}</code></td></tr>'
        )
    return (
        '<div class="wide"><table class="runs"><thead><tr><th>run</th><th>adapter</th><th>profile</th><th>started</th><th>took</th>'
        "<th>checks</th><th>verdict</th><th>result file</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


def render_page(runs: list[Run], *, generated: str = "") -> str:
    """The whole page as one HTML document (no script, nothing fetched)."""
    titles = {rid: str(e.get("title", "")) for r in runs for rid, e in r.data["requirements"].items()}
    warnings = []
    variant_diff = variant_differences(runs)
    if variant_diff:
        warnings.append(
            "<strong>Not comparable:</strong> these runs ran checks under different variant settings, so their verdicts "
            "answer different questions:<ul>" + "".join(f"<li>{safe(d)}</li>" for d in variant_diff) + "</ul>"
        )
    assumption_diff = assumption_differences(runs)
    if assumption_diff:
        warnings.append(
            "<strong>Not comparable:</strong> these runs made different assumptions (another spec version?): "
            + safe(", ".join(assumption_diff))
        )
    check_sets = {frozenset(c["id"] for c in r.checks) for r in runs}
    if len(check_sets) > 1:
        warnings.append("<strong>Partial comparison:</strong> the runs ran different checks; see the check matrix.")
    broken = [f for r in runs for f in r.failures if f.trace is None]
    if broken:
        warnings.append(f"<strong>Missing traces:</strong> {len(broken)} failures have no readable trace; their sections say why.")
    failures = "\n".join(_failure(r, f, titles) for r in runs for f in r.failures) or "<p>No check failed in any run.</p>"
    body = [
        "<h1>JPKI conformance report</h1>",
        f'<p class="note">{len(runs)} run{"s" if len(runs) != 1 else ""}'
        + (f"; generated {safe(generated)}" if generated else "")
        + " by <code>mjpki report</code>. Self-contained: no script, nothing fetched.</p>",
        '<nav><a href="#runs">runs</a><a href="#matrix">verdict matrix</a><a href="#checks">checks</a><a href="#failures">failures</a>'
        '<a href="#coverage">coverage</a><a href="#settings">assumptions and variants</a><a href="#lifecycle">lifecycle diagrams</a></nav>',
        *(f'<div class="warn">{w}</div>' for w in warnings),
        '<h2 id="runs">Runs</h2>',
        _run_table(runs),
        '<h2 id="matrix">Verdict per requirement</h2>',
        '<p class="note">Legend: <span class="badge pass">pass</span> <span class="badge fail">FAIL</span> '
        '<span class="badge known">known failure</span> <span class="badge none">not exercised</span>. '
        "A FAIL or known failure links to the check that found it.</p>",
        _matrix(runs),
        '<h2 id="checks">Checks</h2>',
        _checks_matrix(runs),
        '<h2 id="failures">Failures</h2>',
        failures,
        '<h2 id="coverage">Coverage of the spec\'s actions and refusals</h2>',
        _coverage(runs),
        '<h2 id="settings">Assumptions and variant settings</h2>',
        "<h3>Variant settings</h3>",
        _variants(runs),
        "<h3>Named assumptions</h3>",
        _assumptions(runs),
        '<h2 id="lifecycle">Lifecycle diagrams</h2>',
        '<p class="note">Derived from the explored state graph of the spec (<code>mjpki diagrams</code>).</p>',
        _diagrams(),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>JPKI conformance report: {safe(runs[0].label)}{f' and {len(runs) - 1} more' if len(runs) > 1 else ''}</title>"
        f"<style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )


def write_report(paths: list[Path], out_dir: Path, *, labels: list[str] | None = None) -> Path:
    """Read the results, write out_dir/index.html; the path written. ReportError for bad input."""
    runs = load_runs(paths, labels)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(_one_line(f"--html {out_dir}: exists and is not a directory"))
    page = render_page(runs, generated=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    out = out_dir / "index.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ReportError(_one_line(f"cannot write {out}: {exc.strerror or exc}")) from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `mjpki report`."""
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="result.json files of `mjpki run` (one column each)")
    parser.add_argument("--html", required=True, metavar="DIR", help="write DIR/index.html, one self-contained page")
    parser.add_argument(
        "--label", action="append", metavar="TEXT", help="column label for each result, in order (default: adapter and time)"
    )


def main(args: argparse.Namespace) -> int:
    """`mjpki report`: 0 when the page is written, 2 for bad input (one line on stderr)."""
    try:
        out = write_report([Path(p) for p in args.results], Path(args.html), labels=args.label)
    except ReportError as exc:
        print(f"mjpki: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {out}")
    return 0
