"""Lifecycle diagrams derived from the explored state graph (never drawn by hand).

A phone certificate's lifecycle and an SE's lifecycle are projections of the explored
graph: every explored edge is replayed on its concrete source state, and the change it makes
to each certificate (or each phone's SE) becomes an edge between abstract states, labelled
with the actions that cause it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from mjpki.properties.explorer import Exploration
from mjpki.spec.domain import CertStatus, Kind, PinStatus
from mjpki.spec.machine import step
from mjpki.spec.state import State

__all__ = ["cert_status", "se_status", "lifecycle_graphs", "to_dot", "render"]


def cert_status(state: State, serial: int) -> str:
    """The abstract lifecycle state of a phone certificate: its status and what its SE holds."""
    c = state.phone_certs.get(serial)
    if c is None:
        return "not issued"
    slot = next((s for ps in state.phones.values() for s in ps.se.slots.values() if s.cert_serial == serial), None)
    if c.status is CertStatus.REVOKED:
        return "revoked, keys left in SE" if slot else "revoked, deleted"
    if c.expired(state.now):
        return "expired"
    if c.status is CertStatus.SUSPENDED:
        return "suspended"
    if slot is None:
        return "active, keys gone"
    return {PinStatus.TEMP_BLOCKED: "issued, temporary PIN", PinStatus.SET: "in force", PinStatus.LOCKED: "in force, PIN locked"}[
        slot.pin_status
    ]


def se_status(state: State, phone: str) -> str:
    """The abstract state of a phone's SE: applet or not, and each kind's PIN state."""
    se = state.phones[phone].se
    if not se.applet:
        return "no applet"
    if not se.slots:
        return "applet, empty"
    names = {PinStatus.TEMP_BLOCKED: "temp PIN", PinStatus.SET: "PIN set", PinStatus.LOCKED: "PIN locked"}
    return ", ".join(f"{k.value}: {names[se.slots[k].pin_status]}" for k in (Kind.SIGNING, Kind.AUTH) if k in se.slots)


def lifecycle_graphs(*explorations: Exploration) -> tuple[nx.DiGraph, nx.DiGraph]:
    """(phone certificate lifecycle, SE lifecycle) over all the explorations' edges; edges carry the set of actions."""
    cert_g: nx.DiGraph = nx.DiGraph()
    se_g: nx.DiGraph = nx.DiGraph()

    def add(g: nx.DiGraph, a: str, b: str, action: str) -> None:
        if a == b:
            return
        if g.has_edge(a, b):
            g.edges[a, b]["actions"].add(action)
        else:
            g.add_edge(a, b, actions={action})

    for exp in explorations:
        for u, _v, data in exp.graph.edges(data=True):
            pre: State = exp.graph.nodes[u]["state"]
            # Replay the edge on its concrete source: the stored target may be a symmetric image.
            post, _outcome = step(exp.world, pre, data["action"])
            name = data["action"].name
            for serial in post.phone_certs:
                add(cert_g, cert_status(pre, serial), cert_status(post, serial), name)
            for phone in post.phones:
                add(se_g, se_status(pre, phone), se_status(post, phone), name)
    return cert_g, se_g


def to_dot(g: nx.DiGraph, *, title: str, start: str) -> str:
    """Graphviz DOT text for a lifecycle graph (deterministic order)."""

    def q(s: str) -> str:
        return '"' + s.replace('"', '\\"') + '"'

    lines = [
        f"digraph {q(title)} {{",
        '  rankdir=LR; node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=9];',
        f"  labelloc=t; label={q(title)};",
    ]
    for n in sorted(g.nodes):
        style = ', style="rounded,bold"' if n == start else ""
        lines.append(f"  {q(n)} [label={q(n)}{style}];")
    for a, b in sorted(g.edges):
        acts = sorted(g.edges[a, b]["actions"])
        label = "\\n".join(acts[:6]) + (f"\\n(+{len(acts) - 6} more)" if len(acts) > 6 else "")
        lines.append(f'  {q(a)} -> {q(b)} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_text: str, out: Path) -> Path:
    """Render DOT to SVG or PNG (by the file's suffix) with Graphviz's `dot`; a clear error if it is missing."""
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError("Graphviz's `dot` is not installed: apt-get install graphviz (scripts/bootstrap.sh does this as root)")
    fmt = out.suffix.lstrip(".") or "svg"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, f"-T{fmt}", "-o", str(out)], input=dot_text, text=True, check=True)
    return out
