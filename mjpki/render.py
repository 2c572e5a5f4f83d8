"""Render traces and verdicts for people: step tables and per-requirement tables.

Every cell goes through `mjpki.escape.terminal`: a trace or an adapter chooses some of the text, and a control character
in it (an escape sequence, a newline) must neither reach the terminal nor break the table's lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mjpki.escape import cut, terminal
from mjpki.spec.trace import Trace

__all__ = ["table", "step_table", "requirement_table"]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, max_width: int = 60) -> str:
    """A plain-text table with aligned columns; control characters escaped, cells longer than max_width cut with '…'."""

    def cell(v: object) -> str:
        return cut(terminal("" if v is None else v), max_width)

    headers = [terminal(h) for h in headers]
    body = [[cell(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    out = [line.rstrip(), rule]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(out)


def step_table(trace: Trace, *, max_width: int = 70) -> str:
    """The trace as a step table: step, action, expected, actual, requirement IDs; divergences marked."""
    has_actual = any(s.actual is not None for s in trace.steps)
    headers = ["#", "action", "expected"] + (["actual"] if has_actual else []) + ["reqs"]
    # A lockstep run also parts on compared details or an adapter that raised: its recorded index is marked too.
    recorded = trace.meta.get("divergence")
    marked = recorded.get("index") if isinstance(recorded, dict) else None
    rows = []
    for i, s in enumerate(trace.steps):
        mark = ">>" if s.diverges or i == marked else ""
        row: list[object] = [f"{mark}{i}", s.action, s.expected]
        if has_actual:
            row.append(s.actual if s.actual is not None else "-")
        row.append(" ".join(s.reqs))
        rows.append(row)
        problems = list(s.violations) or ([str(recorded.get("what", ""))] if i == marked and isinstance(recorded, dict) else [])
        rows += [["", f"   ! {v}", "", *([""] if has_actual else []), ""] for v in problems]
    return table(headers, rows, max_width=max_width)


def requirement_table(verdicts: dict[str, tuple[str, list[str]]], titles: dict[str, str]) -> str:
    """Requirement ID, title, verdict (pass / FAIL / not exercised), and where it was exercised."""
    rows = [
        (rid, titles.get(rid, ""), verdict, ", ".join(where[:3]) + (" …" if len(where) > 3 else ""))
        for rid, (verdict, where) in verdicts.items()
    ]
    return table(["requirement", "title", "verdict", "exercised by"], rows, max_width=48)
