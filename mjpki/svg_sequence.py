"""Sequence diagrams of traces as inline SVG: lifelines, arrows, the diverging step marked; no Mermaid, no JavaScript.

The messages are those of `mjpki.mermaid` (the same `FLOWS` per action, the same participants), so
the HTML report's diagram and the Markdown report's diagram say the same thing. Every piece of text
that comes from a trace goes through `safe`: control characters shown as escapes, then HTML-escaped.
"""

from __future__ import annotations

import html
import string
import textwrap
import unicodedata
from dataclasses import dataclass

from mjpki.mermaid import FLOWS, NOT_SENT, PARTICIPANTS, divergence_of
from mjpki.spec.actions import Action
from mjpki.spec.trace import Trace, TraceStep

__all__ = ["printable", "safe", "Message", "messages", "sequence_svg"]

# Bidirectional overrides and isolates can make escaped text read differently from what it is.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

COL = 150
"""Pixels between two lifelines."""
ROW = 26
"""Pixels per message row."""
GUTTER = 44
"""Left margin, where the step numbers go."""
RIGHT = 220
"""Right margin: room for the text of messages from the rightmost lifelines."""
CHAR = 6.6
"""Average width of one character at the diagram's font size, to cut texts that would leave the picture."""
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12"'
DIVERGENCE_FILL = "#ffe0e0"
DIVERGENCE_STROKE = "#cf222e"
SPEC_ONLY = "#8c959f"


def printable(text: object) -> str:
    """Text with control, surrogate and bidi-override characters written as escapes (\\x1b, \\u202e); newlines and tabs kept."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        if ch in "\n\t" or (cat not in ("Cc", "Cs") and ch not in _BIDI):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


def safe(text: object) -> str:
    """Text for HTML or SVG, in an element or a quoted attribute: printable, then html.escape'd (quotes too)."""
    return html.escape(printable(text), quote=True)


@dataclass(frozen=True, slots=True)
class Message:
    """One arrow of the diagram: from, to, text; a return arrow is dashed; a note spans every lifeline."""

    sender: str
    receiver: str
    text: str
    step: int
    kind: str = "request"
    """"request", "then" (what follows when the step goes through), "return" (the outcome) or "note"."""
    diverging: bool = False
    spec_only: bool = False


def _fill(template: str, action: Action) -> str:
    args = action.to_json()["args"]
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values = {k: (", ".join(map(str, args[k])) if isinstance(args.get(k), list) else args.get(k, "?")) for k in fields}
    return template.format(**values)


def _outcome(s: TraceStep, *, diverging: bool) -> str:
    if s.actual is None:
        return str(s.expected) + ("" if s.note is None else " (spec only)" if s.note == NOT_SENT else f" ({s.note})")
    # Serials are the system's own: equal codes show the system's outcome alone unless this is where they part.
    both = s.actual.code != s.expected.code or (diverging and s.actual != s.expected)
    text = f"spec {s.expected} / system {s.actual}" if both else str(s.actual)
    return text + (", invariant broken" if s.violations else "")


def messages(trace: Trace) -> list[Message]:
    """The trace's arrows in order, as the Mermaid diagram draws them, with the divergence note after its step."""
    div = divergence_of(trace)
    out: list[Message] = []
    if div is not None and div[0] < 0:
        out.append(Message("", "", _note(div), -1, "note", diverging=True))
    for i, s in enumerate(trace.steps):
        flow = FLOWS[s.action.name]
        diverging = div is not None and div[0] == i
        spec_only = s.note == NOT_SENT
        a, b, text = flow.request
        out.append(Message(a, b, f"[{i}] {s.action.name}, {_fill(text, s.action)}", i, "request", diverging, spec_only))
        if s.expected.ok or (s.actual is not None and s.actual.ok):
            out += [Message(x, y, _fill(t, s.action), i, "then", diverging, spec_only) for x, y, t in flow.then]
        out.append(Message(b, a, _outcome(s, diverging=diverging), i, "return", diverging, spec_only))
        if diverging and div is not None:
            out.append(Message("", "", _note(div), i, "note", diverging=True))
    return out


def _note(div: tuple[int, str, tuple[str, ...]]) -> str:
    index, what, reqs = div
    where = "before the first step" if index < 0 else f"step {index} diverges"
    ids = f"[{', '.join(reqs)}]"
    return f"{where}: {what}" + ("" if ids in what else f" {ids}")


def _cut(text: str, width: float) -> str:
    flat = " ".join(printable(text).split())
    room = max(8, int(width / CHAR))
    return flat if len(flat) <= room else flat[: room - 1] + "…"


def _text(x: float, y: float, text: str, width: float, *, fill: str = "#1f2328", anchor: str = "start", bold: bool = False) -> str:
    """A one-line label cut to width, the whole text in a <title> tooltip; a white halo keeps it readable over lifelines."""
    weight = ' font-weight="bold"' if bold else ""
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" {FONT}{weight} fill="{fill}" text-anchor="{anchor}" '
        f'stroke="#ffffff" stroke-width="3" paint-order="stroke"><title>{safe(text)}</title>{safe(_cut(text, width))}</text>'
    )


def _arrowhead(x: float, y: float, direction: int, colour: str) -> str:
    # Drawn as a polygon, not a <marker>: several diagrams on one page would share marker ids.
    return f'<polygon points="{x:.0f},{y:.0f} {x - 9 * direction:.0f},{y - 4:.0f} {x - 9 * direction:.0f},{y + 4:.0f}" fill="{colour}"/>'


def sequence_svg(trace: Trace, *, title: str = "") -> str:
    """The trace as an <svg> element: one lifeline per participant used, one row per message, the divergence in red."""
    msgs = messages(trace)
    used = {p for s in trace.steps for p in FLOWS[s.action.name].participants} or {"App", "JPKI"}
    order = [p for p in PARTICIPANTS if p in used]
    x = {p: GUTTER + COL * i + COL / 2 for i, p in enumerate(order)}
    width = GUTTER + COL * len(order) + RIGHT
    heads = {p: textwrap.wrap(PARTICIPANTS[p], 19)[:2] for p in order}
    head_h = 14 + 15 * max(len(v) for v in heads.values())
    top = 10 + head_h + 14
    rows = [2 if m.kind == "note" or m.sender == m.receiver else 1 for m in msgs]
    height = top + ROW * sum(rows) + 20
    body: list[str] = []
    # Red bands behind each diverging step's rows, drawn first so that lifelines and arrows sit on top.
    y = top
    for m, r in zip(msgs, rows, strict=True):
        if m.diverging:
            body.append(f'<rect x="2" y="{y:.0f}" width="{width - 4}" height="{ROW * r}" fill="{DIVERGENCE_FILL}"/>')
        y += ROW * r
    for p in order:
        body.append(f'<line x1="{x[p]:.0f}" y1="{10 + head_h}" x2="{x[p]:.0f}" y2="{height - 8}" stroke="#8c959f" stroke-dasharray="4 4"/>')
        body.append(
            f'<rect x="{x[p] - COL / 2 + 8:.0f}" y="10" width="{COL - 16}" height="{head_h}" rx="5" fill="#eaeef2" stroke="#57606a"/>'
        )
        for j, line in enumerate(heads[p]):
            body.append(_text(x[p], 10 + 19 + 15 * j, line, COL - 20, anchor="middle", bold=True))
    y = top
    last_step = None
    for m, r in zip(msgs, rows, strict=True):
        colour = SPEC_ONLY if m.spec_only else DIVERGENCE_STROKE if m.diverging and m.kind == "return" else "#1f2328"
        if m.step != last_step and m.kind == "request":
            body.append(_text(6, y + ROW - 8, f"#{m.step}", GUTTER - 8, fill="#57606a"))
            last_step = m.step
        if m.kind == "note":
            body.append(
                f'<rect x="{GUTTER}" y="{y + 4:.0f}" width="{width - GUTTER - 8}" height="{ROW * r - 8}" rx="4" '
                f'fill="#fff8c5" stroke="{DIVERGENCE_STROKE}" stroke-width="1.5"/>'
            )
            body.append(_text(GUTTER + 10, y + ROW * r / 2 + 4, m.text, width - GUTTER - 30, fill=DIVERGENCE_STROKE, bold=True))
        elif m.sender == m.receiver:
            px = x[m.sender]
            body.append(
                f'<path d="M{px:.0f},{y + 10:.0f} h28 v{ROW:.0f} h-24" fill="none" stroke="{colour}" stroke-width="1.3"/>'
                + _arrowhead(px + 2, y + 10 + ROW, -1, colour)
            )
            body.append(_text(px + 34, y + 10 + ROW / 2 + 4, m.text, width - px - 40, fill=colour))
        else:
            a, b = x[m.sender], x[m.receiver]
            direction = 1 if b > a else -1
            dash = ' stroke-dasharray="6 4"' if m.kind == "return" else ""
            body.append(
                f'<line x1="{a:.0f}" y1="{y + ROW - 6:.0f}" x2="{b - 2 * direction:.0f}" y2="{y + ROW - 6:.0f}" '
                f'stroke="{colour}" stroke-width="1.3"{dash}/>' + _arrowhead(b - direction, y + ROW - 6, direction, colour)
            )
            left = min(a, b)
            body.append(_text(left + 6, y + ROW - 10, m.text, width - left - 12, fill=colour, bold=m.diverging and m.kind == "return"))
        y += ROW * r
    label = safe(title or trace.title or "sequence diagram")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{label}"><title>{label}</title>'
        f'<rect width="100%" height="100%" fill="#ffffff"/>' + "".join(body) + "</svg>"
    )
