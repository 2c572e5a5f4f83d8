"""docs/apdu-interface.md and the applet-level model (spec/apdu/interface.py) must not drift apart.

Checked: the "Status words" table against STATUS_WORDS and every SW a rule declares; the TSM command table's CLA INS and
requirement column against RULES; every command heading against a rule with that header and back; every requirement
ID a rule cites against the catalogue (mjpki.spec.requirements).
"""

from __future__ import annotations

import re
from pathlib import Path

from mjpki.spec.apdu.interface import RULES, STATUS_WORDS
from mjpki.spec.requirements import REQUIREMENTS

DOC = Path(__file__).resolve().parent.parent / "docs" / "apdu-interface.md"
ID = re.compile(r"\b(?:ACT|LNK|VAL|CA|ISS|PIN|REV|SUS|MCH|DEL|ACL|SP|OPS|HIST)-\d+\b")
HEADING = re.compile(r"^### (?P<name>.+?) — `(?P<cmd>[^`]+)`\s*$", re.M)
HEX_HEADER = re.compile(r"^[0-9A-F]{2} [0-9A-F]{2}\b")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The body of the `## title` section, up to the next `## `."""
    text = _text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _table_rows(section: str) -> list[list[str]]:
    """The data rows of the first markdown table in a section, cells stripped."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[2:]]


def _doc_status_words() -> set[str]:
    return {row[0].strip("`") for row in _table_rows(_section("Status words"))}


def _tsm_rows() -> list[tuple[str, str, tuple[str, ...]]]:
    """(command name, CLA INS, requirement IDs) per row of the TSM command table."""
    rows = _table_rows(_section("The JPKI applet: TSM commands"))
    return [(row[0], " ".join(row[1].strip("`").split()[:2]), tuple(ID.findall(row[-1]))) for row in rows]


def _headings() -> list[tuple[str, str]]:
    """(command name, CLA INS) of every `### NAME — `CLA INS ...`` heading."""
    return [(m["name"], " ".join(m["cmd"].split()[:2])) for m in HEADING.finditer(_text()) if HEX_HEADER.match(m["cmd"])]


def test_status_word_table_equals_the_models() -> None:
    doc = _doc_status_words()
    model = {sw.sw for sw in STATUS_WORDS}
    assert doc == model, (
        f"docs/apdu-interface.md 'Status words' table and spec/apdu/interface.py STATUS_WORDS differ: "
        f"add to STATUS_WORDS (or drop from the doc) {sorted(doc - model)}; "
        f"add to the doc's table (or drop from STATUS_WORDS) {sorted(model - doc)}"
    )


def test_every_declared_status_word_is_in_the_table() -> None:
    doc = _doc_status_words()
    missing = {f"{r.id}: {sw}" for r in RULES.values() for sw in r.sws if sw not in doc}
    assert not missing, f"RULES declare status words the doc's 'Status words' table lacks (add a row, or fix the rule): {sorted(missing)}"


def test_tsm_table_matches_the_rules() -> None:
    by_header = {r.header: r for r in RULES.values() if r.where == "applet" and r.header}
    rows = _tsm_rows()
    assert rows, "the TSM command table was not found in docs/apdu-interface.md"
    problems = []
    for name, header, reqs in rows:
        rule = by_header.get(header)
        if rule is None:
            problems.append(f"TSM table row {name!r} ({header}): no applet rule in RULES has header {header!r}")
        elif set(reqs) != set(rule.reqs):
            problems.append(
                f"TSM table row {name!r} ({header}) cites {', '.join(reqs) or 'no requirement'} but RULES[{rule.id!r}].reqs is "
                f"{' '.join(rule.reqs) or '(none)'}: make the doc's requirement column read {', '.join(rule.reqs) or '—'}, "
                f"or the rule's reqs read {' '.join(reqs)!r}"
            )
    assert not problems, "\n".join(problems)


def test_every_command_heading_has_a_rule() -> None:
    problems = []
    for name, header in _headings():
        rules = [r for r in RULES.values() if r.header == header]
        if not rules:
            problems.append(f"heading '### {name} — `{header} ...`' has no rule with header {header!r} in spec/apdu/interface.py RULES")
        elif not any(name.startswith(r.title) for r in rules):
            titles = ", ".join(f"{r.id}: {r.title!r}" for r in rules)
            problems.append(
                f"heading '### {name}' ({header}) names none of the rules with that header ({titles}): "
                "align the heading or the rule's title"
            )
    assert not problems, "\n".join(problems)


def test_every_rule_with_a_header_is_documented() -> None:
    """A command rule has a `### ` heading, or a row in the TSM table; the SCP03 commands (where "SD") are specified in the
    "Security levels" section's prose, where their header must appear in code."""
    headed = {header for _name, header in _headings()}
    tabled = {header for _name, header, _reqs in _tsm_rows()}
    prose = _section("Security levels")
    problems = []
    for r in RULES.values():
        if not r.header:
            continue
        if r.where == "SD":
            if f"`{r.header}" not in prose:
                problems.append(
                    f"RULES[{r.id!r}] ({r.header}, {r.title}) is not shown as `{r.header} ...` in the 'Security levels' section"
                )
        elif r.header not in headed | tabled:
            problems.append(
                f"RULES[{r.id!r}] ({r.header}, {r.title}) has no '### {r.title} — `{r.header} ...`' heading nor a TSM table row"
            )
    assert not problems, "\n".join(problems)


def test_every_rule_requirement_exists() -> None:
    unknown = sorted(f"{r.id}: {req}" for r in RULES.values() for req in r.reqs if req not in REQUIREMENTS)
    assert not unknown, f"RULES cite requirement IDs not in mjpki.spec.requirements (typo?): {unknown}"
    malformed = sorted(f"{r.id}: {req}" for r in RULES.values() for req in r.reqs if not ID.fullmatch(req))
    assert not malformed, f"RULES cite malformed requirement IDs: {malformed}"
