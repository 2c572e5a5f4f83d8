"""Text from traces, adapters and applets made safe to show: on a terminal, in Markdown, in Mermaid.

A trace file, an adapter's outcome or an applet's answer chooses some of the text mjpki prints and writes. On a terminal
a control character (ESC starts a sequence that can retitle the window, rewrite the screen or, on some terminals, echo
text back as input), a bidi override or a lone surrogate is shown as an escape (`\\x1b`, `\\u202e`) instead: `terminal`.
In Markdown, text outside code is written with HTML entities for what Markdown or HTML would read as markup
(`markdown`, `code`), and a fenced block gets a fence longer than any run of backticks in it (`fence`). Mermaid labels
are `mjpki.mermaid.escape`, which starts from `terminal` too.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["terminal", "markdown", "code", "fence", "cut"]

_UNSAFE: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f"  # C0 and C1 controls, DEL (ESC, CSI, OSC, BEL, CR, backspace, newline ...)
    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides and isolates
    r"\u2028\u2029"  # line and paragraph separators
    r"\ud800-\udfff]"  # lone surrogates (json.loads makes them from "\\ud800"; printing one raises)
)
_UNSAFE_KEEP_LINES: Final = re.compile(_UNSAFE.pattern.replace(r"\x00-\x1f", r"\x00-\x08\x0b-\x1f"))

_MARKDOWN: Final = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "`": "&#96;",
    "|": "&#124;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
}


def _code(match: re.Match[str]) -> str:
    """One unsafe character as a visible escape."""
    n = ord(match.group())
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def terminal(text: object, *, lines: bool = False) -> str:
    """str(text) with every control, bidi and surrogate character as \\xNN or \\uNNNN; `lines` keeps newlines and tabs."""
    return (_UNSAFE_KEEP_LINES if lines else _UNSAFE).sub(_code, str(text))


def cut(text: str, limit: int) -> str:
    """text, cut to limit characters with '…' when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(text: object, *, limit: int = 500) -> str:
    """Text for one line of Markdown outside code: terminal-escaped, cut at limit, markup characters as HTML entities."""
    flat = cut(terminal(" ".join(str(text).split())), limit)
    return "".join(_MARKDOWN.get(ch, ch) for ch in flat)


def code(text: object, *, limit: int = 500) -> str:
    """Text as inline code in Markdown: an HTML <code> element with escaped content (a backtick cannot end it)."""
    return f"<code>{markdown(text, limit=limit)}</code>"


def fence(body: str, info: str = "") -> str:
    """body as a fenced code block whose fence is longer than any run of backticks in it (so nothing in it ends the block)."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{terminal(body, lines=True)}\n{ticks}"
