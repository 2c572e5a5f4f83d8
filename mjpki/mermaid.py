"""Mermaid sequence diagrams of traces, and the Markdown report written next to every failure trace.

Each action stands for a message flow between the parties of a smartphone JPKI deployment
(the user and the official app, the municipal office, the call centre, the SP-TSM and SEI-TSM,
the JPKI system, the phone's SE, the push service, a service provider's verifier). `FLOWS`
gives that flow per action type; a test fails when an action type has none. The diagram shows
the whole flow when the step went through (on the spec or on the system), only the request and
the refusal when it was refused, and the outcome on the return arrow. The diverging step sits
in a red `rect` with a note saying what diverged and the requirement IDs.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from mjpki import escape as esc
from mjpki.render import step_table
from mjpki.spec.actions import Action
from mjpki.spec.trace import Trace, TraceStep

__all__ = [
    "PARTICIPANTS",
    "ACTOR_PARTICIPANT",
    "Flow",
    "FLOWS",
    "escape",
    "divergence_of",
    "sequence_diagram",
    "markdown_report",
    "write_markdown_report",
]

PARTICIPANTS: dict[str, str] = {
    "App": "User / official app",
    "World": "World (clock, network, hand-over)",
    "Office": "Municipal office",
    "CallCentre": "Call centre",
    "Push": "Push service",
    "SPTSM": "SP-TSM",
    "SEITSM": "SEI-TSM",
    "JPKI": "JPKI system",
    "SE": "SE (JPKI applet)",
    "Verifier": "Verifier (service provider)",
}
"""Mermaid participant ids and their labels, in diagram order (left to right)."""

ACTOR_PARTICIPANT: dict[str, str] = {
    "user": "App",
    "world": "World",
    "office": "Office",
    "call_centre": "CallCentre",
    "push": "Push",
    "verifier": "Verifier",
}
"""The participant that stands for each `Action.actor`."""

DIVERGENCE_FILL = "rgb(255,220,220)"
NOT_SENT = "not sent to the system"


@dataclass(frozen=True, slots=True)
class Flow:
    """The messages an action stands for: the request first, then what follows when it goes through.

    Texts are `str.format` templates over the action's JSON arguments. The outcome returns
    from the request's receiver to its sender.
    """

    request: tuple[str, str, str]
    then: tuple[tuple[str, str, str], ...] = ()

    @property
    def participants(self) -> tuple[str, ...]:
        """Every participant the flow names."""
        return tuple(dict.fromkeys([self.request[0], self.request[1], *(p for m in self.then for p in m[:2])]))


def _f(request: tuple[str, str, str], *then: tuple[str, str, str]) -> Flow:
    return Flow(request=request, then=tuple(then))


FLOWS: dict[str, Flow] = {
    # card side
    "IssueCardCertificate": _f(("Office", "JPKI", "issue card {kind} certificate for {person}")),
    "RevokeCardCertificate": _f(("Office", "JPKI", "revoke {person}'s card {kind} certificate"), ("JPKI", "JPKI", "CRL, linkage sweep")),
    "ChangePersonalData": _f(
        ("Office", "JPKI", "{person}'s name or address changed"), ("JPKI", "JPKI", "revoke card signing certificate, CRL")
    ),
    "ReportCardLost": _f(("CallCentre", "JPKI", "{person}'s card is lost"), ("JPKI", "JPKI", "hold card and linked phone certificates")),
    "CardFound": _f(("Office", "JPKI", "{person}'s card is found"), ("JPKI", "JPKI", "auth resumes, signing revoked and re-issued")),
    # app and applet
    "InstallApp": _f(("App", "Push", "install the official app on {phone}, register push token")),
    "UninstallApp": _f(("App", "Push", "uninstall the app on {phone}, token invalid")),
    "PrepareApplet": _f(
        ("App", "SEITSM", "first start on {phone}, prepare the applet"),
        ("SEITSM", "SE", "delete any leftover applet, install JPKI applet, access rule"),
    ),
    # issuance
    "Apply": _f(
        ("App", "JPKI", "{person} applies on {phone} for {kinds} (card signature)"),
        ("App", "SE", "read SE-ID, generate R"),
        ("JPKI", "JPKI", "check card certificate, store S = H(R), schedule push"),
    ),
    "DeliverIssuancePush": _f(("JPKI", "Push", "'ready to register' for {person}"), ("Push", "App", "notification")),
    "Register": _f(
        ("App", "SPTSM", "{person} registers on {phone}"),
        ("SPTSM", "SE", "GENERATE KEY PAIR, output public keys and R"),
        ("SPTSM", "JPKI", "public keys and R, check H(R) = S, issue"),
        ("JPKI", "SPTSM", "phone certificates, linkage card to SE-ID"),
        ("SPTSM", "SE", "write certificates, set temporary PIN (blocked)"),
    ),
    "SetPin": _f(("App", "SE", "verify temporary {kind} PIN, unblock, set the held PIN")),
    # use
    "UnlockScreen": _f(("App", "App", "unlock the screen on {phone}")),
    "EnrollOsAuth": _f(("App", "SE", "VERIFY auth PIN, enrol OS auth on {phone}")),
    "Authenticate": _f(
        ("App", "Verifier", "log in at {sp} from {phone} ({method})"),
        ("App", "SE", "VERIFY auth PIN, sign the challenge"),
        ("Verifier", "JPKI", "OCSP status of the phone auth certificate"),
    ),
    "Sign": _f(
        ("App", "Verifier", "sign for {sp} from {phone} ({method})"),
        ("App", "SE", "VERIFY signing PIN, sign"),
        ("Verifier", "JPKI", "OCSP status of the phone signing certificate"),
    ),
    "UseCard": _f(
        ("App", "Verifier", "{person} uses the card {kind} certificate at {sp}"), ("Verifier", "JPKI", "OCSP status, card profile")
    ),
    "VerifyCertificate": _f(
        ("Verifier", "Verifier", "{person}'s {profile} {kind} certificate #{index}: accepted only if {accept}"),
        ("Verifier", "JPKI", "OCSP status at the {profile} responder"),
    ),
    "ChangePin": _f(("App", "SE", "CHANGE REFERENCE DATA, {kind} PIN on {phone}")),
    "InitialisePin": _f(
        ("App", "JPKI", "{person} initialises the {kind} PIN on {phone} (card signature)"),
        ("JPKI", "SPTSM", "SE-ID matches the linkage, reset"),
        ("SPTSM", "SE", "set a new temporary PIN (blocked)"),
    ),
    # revocation, suspension, deletion
    "RevokeFromPhone": _f(
        ("App", "JPKI", "stop using {phone}, revoke {kind} (PIN)"),
        ("App", "SE", "VERIFY {kind} PIN"),
        ("SPTSM", "SE", "DELETE KEYS AND CERTIFICATES"),
    ),
    "RevokeWithCard": _f(
        ("App", "JPKI", "{person} revokes all phone certificates (card signature)"), ("JPKI", "Push", "remote deletion request")
    ),
    "ReportPhoneLost": _f(("CallCentre", "JPKI", "{person}'s phone is lost"), ("JPKI", "JPKI", "hold phone certificates")),
    "PhoneFound": _f(("Office", "JPKI", "{person}'s phone is found"), ("JPKI", "JPKI", "auth resumes, signing revoked")),
    "ResumeFromApp": _f(
        ("App", "JPKI", "{person} resumes on {phone} (new card signature)"),
        ("JPKI", "JPKI", "auth re-linked and resumed, signing revoked, new application"),
    ),
    "DeliverDeletionPush": _f(
        ("JPKI", "Push", "remote deletion for {phone}"),
        ("Push", "App", "deletion request"),
        ("SPTSM", "SE", "DELETE KEYS AND CERTIFICATES"),
    ),
    # the phone's world
    "SetOnline": _f(("World", "App", "{phone} online = {online}")),
    "SetPushEnabled": _f(("World", "App", "push notifications on {phone} = {enabled}")),
    "FactoryReset": _f(("App", "App", "factory reset {phone}"), ("SEITSM", "SE", "wipe the SE (variant)")),
    "TransferPhone": _f(("World", "App", "{phone} handed to {to}")),
    "AdvanceTime": _f(("World", "JPKI", "{minutes} minutes pass"), ("JPKI", "JPKI", "due cascades, deletion windows close")),
}
"""The message flow of every action type, by action name."""

# Mermaid reads ';' as a statement end and '#' as the start of an entity, ':' splits a message
# from its arrow, '<' '>' '&' and quotes become HTML, '`' and '|' are Markdown's; entity codes keep
# the characters in the rendered text. A trace chooses much of this text: nothing in it is markup.
_ESCAPES = {
    ";": "#59;",
    "#": "#35;",
    ":": "#58;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#38;",
    '"': "#34;",
    "'": "#39;",
    "{": "#123;",
    "}": "#125;",
    "%": "#37;",
    "`": "#96;",
    "|": "#124;",
    "\\": "#92;",
}


def escape(text: str, *, limit: int = 90) -> str:
    """Text Mermaid takes verbatim in a message or note: one line, control characters escaped, entities for its syntax
    and HTML characters, cut at limit."""
    flat = esc.cut(esc.terminal(" ".join(text.split())), limit)
    return "".join(_ESCAPES.get(ch, ch) for ch in flat)


def _fill(template: str, action: Action) -> str:
    args = action.to_json()["args"]
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values = {k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in args.items() if k in fields}
    return template.format(**values)


def divergence_of(trace: Trace) -> tuple[int, str, tuple[str, ...]] | None:
    """Where the trace's system parted from the spec: (step index or -1 before the first step, what, requirement IDs)."""
    recorded = trace.meta.get("divergence")
    if isinstance(recorded, dict) and isinstance(recorded.get("index"), int):
        return recorded["index"], str(recorded.get("what", "")), tuple(recorded.get("reqs", ()))
    index = trace.first_divergence
    if index is None:
        return None
    s = trace.steps[index]
    what = []
    if s.actual is not None and s.actual.code != s.expected.code:
        what.append(f"the spec says {s.expected.code}, the system {s.actual.code}")
    what += [f"invariant: {v}" for v in s.violations]
    return index, "; ".join(what), s.reqs


def _outcome_text(s: TraceStep, *, diverging: bool) -> str:
    if s.actual is None:
        # Lockstep's note for steps it keeps from the system (environmental refusals, after a divergence).
        sent = "" if s.note is None else " (spec only)" if s.note == NOT_SENT else f" ({s.note})"
        return str(s.expected) + sent
    # Serials are the system's own, so equal codes show the system's outcome alone unless this is where they part.
    both = s.actual.code != s.expected.code or (diverging and s.actual != s.expected)
    text = f"spec {s.expected} / system {s.actual}" if both else str(s.actual)
    return text + (", invariant broken" if s.violations else "")


def _went_through(s: TraceStep) -> bool:
    return s.expected.ok or (s.actual is not None and s.actual.ok)


def _step_lines(index: int, s: TraceStep, *, diverging: bool) -> list[str]:
    flow = FLOWS[s.action.name]
    sender, receiver, text = flow.request
    lines = [f"{sender}->>{receiver}: {escape(f'[{index}] {s.action.name}, ' + _fill(text, s.action))}"]
    if _went_through(s):
        lines += [f"{a}->>{b}: {escape(_fill(t, s.action))}" for a, b, t in flow.then]
    lines.append(f"{receiver}-->>{sender}: {escape(_outcome_text(s, diverging=diverging), limit=120)}")
    return lines


def sequence_diagram(trace: Trace) -> str:
    """The trace as a Mermaid sequenceDiagram, the diverging step in a red rect with a note."""
    div = divergence_of(trace)
    used = {p for s in trace.steps for p in FLOWS[s.action.name].participants} or {"App", "JPKI"}
    lines = ["sequenceDiagram"]
    for pid, label in PARTICIPANTS.items():
        if pid in used:
            kind = "actor" if pid == "App" else "participant"
            lines.append(f"    {kind} {pid} as {escape(label)}")
    if div is not None and div[0] < 0:
        lines.append(f"    Note over {_over(used)}: {escape(_divergence_note(div), limit=200)}")
    for i, s in enumerate(trace.steps):
        diverging = div is not None and div[0] == i
        body = _step_lines(i, s, diverging=diverging)
        if div is not None and diverging:
            flow = FLOWS[s.action.name]
            lines.append(f"    rect {DIVERGENCE_FILL}")
            lines += [f"        {line}" for line in body]
            lines.append(f"        Note over {_over(set(flow.participants))}: {escape(_divergence_note(div), limit=200)}")
            lines.append("    end")
        else:
            if div is not None and i == div[0] + 1 and div[0] >= 0 and s.note == NOT_SENT:
                lines.append(
                    f"    Note over {_over(used)}: {escape(f'from step {i} on, the spec alone (the system is not sent further steps)')}"
                )
            lines += [f"    {line}" for line in body]
    return "\n".join(lines) + "\n"


def _over(ids: set[str]) -> str:
    """The participants a note spans: the leftmost and the rightmost of ids (one if they are the same)."""
    order = [p for p in PARTICIPANTS if p in ids]
    return order[0] if len(order) == 1 else f"{order[0]},{order[-1]}"


def _divergence_note(div: tuple[int, str, tuple[str, ...]]) -> str:
    index, what, reqs = div
    where = "before the first step" if index < 0 else f"step {index} diverges"
    ids = f"[{', '.join(reqs)}]"
    return f"{where}, {what}" + ("" if ids in what else f" {ids}")


def markdown_report(trace: Trace, *, name: str = "") -> str:
    """A Markdown page for a trace: title, divergence summary, the step table, the sequence diagram."""
    # Everything a trace (or its file name) chooses is escaped: HTML entities outside code, a fence nothing in it can end.
    title = trace.title or name or "trace"
    div = divergence_of(trace)
    out = [f"# {esc.markdown(title, limit=200)}", ""]
    facts = [f"source: {esc.markdown(trace.source)}", f"{len(trace.steps)} steps"]
    if trace.system:
        facts.insert(0, f"system under test: {esc.code(trace.system)}")
    out += ["; ".join(facts) + ".", ""]
    if div is None:
        out += ["The system and the spec agree at every step.", ""]
    else:
        index, what, reqs = div
        where = "Before the first step" if index < 0 else f"At step {index}"
        if 0 <= index < len(trace.steps):
            where += f" ({esc.code(trace.steps[index].action)})"
        named = esc.markdown(", ".join(reqs)) or "none named"
        out += [f"**Diverges.** {where}: {esc.markdown(what, limit=2000)}", "", f"Requirements: {named}.", ""]
    if name:
        out += [f"Replay: {esc.code(f'mjpki replay {name}.json --adapter MODULE:FACTORY')}.", ""]
    out += ["## Steps", "", esc.fence(step_table(trace, max_width=110)), "", "## Sequence", ""]
    out += [esc.fence(sequence_diagram(trace).rstrip("\n"), "mermaid"), ""]
    return "\n".join(out)


def write_markdown_report(trace: Trace, trace_path: Path) -> Path:
    """Write the report as `<name>.md` next to the trace file `<name>.json`; the path written."""
    out = trace_path.with_suffix(".md")
    out.write_text(markdown_report(trace, name=trace_path.stem), encoding="utf-8")
    return out
