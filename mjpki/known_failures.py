"""The known-failures file: what an implementer already knows fails, reported apart from new failures.

A TOML file of ``ID = "reason"`` lines; an ID is a requirement ID (``"SUS-3"``) or a check ID
(``"scenario:lost-card"``, ``"stateful:default"``)::

    # known-failures.toml for ExampleCorp JPKI 1.4
    "SUS-3" = "found card resumes the signing certificate; fixed in 1.5 (ticket 812)"
    "scenario:pin-lock" = "our SE reports 6983 for a temporary PIN; vendor bug 77"

A failure is known when its check is listed, or when the requirement IDs its diverging step
names include a listed one. Known failures do not fail the run; listed IDs that did not fail
are reported so that the file does not go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mjpki.safe_load import LoadError, load_toml
from mjpki.spec.requirements import REQUIREMENTS

__all__ = ["KnownFailures", "KnownFailuresError", "load_known_failures"]


class KnownFailuresError(ValueError):
    """A known-failures file that cannot be read or names IDs that do not exist."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownFailures:
    """Requirement or check ID → why it is known to fail."""

    entries: dict[str, str]
    source: str = ""

    def match(self, check_id: str, reqs: tuple[str, ...]) -> tuple[str, str] | None:
        """The listed (ID, reason) that covers a failure of check_id naming reqs, or None."""
        if check_id in self.entries:
            return check_id, self.entries[check_id]
        for rid in reqs:
            if rid in self.entries:
                return rid, self.entries[rid]
        return None


def load_known_failures(path: str | Path, *, check_ids: set[str] | frozenset[str] = frozenset()) -> KnownFailures:
    """Read and validate a known-failures file (check_ids: the check IDs that exist, for validation)."""
    p = Path(path)
    try:  # at most 1 MiB, UTF-8, a regular file; tomllib's own failures (deep nesting, huge integers) as one line
        data = load_toml(p, what="known-failures file")
    except LoadError as exc:
        raise KnownFailuresError(str(exc)) from None
    entries: dict[str, str] = {}
    problems: list[str] = []
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key!r}: give the reason as a non-empty string")
            continue
        if key not in REQUIREMENTS and key not in check_ids:
            problems.append(f"{key!r} is neither a requirement ID (mjpki requirements) nor a check ID (mjpki run --list)")
            continue
        entries[key] = value.strip()
    if problems:
        raise KnownFailuresError(f"known-failures file {p}: " + "; ".join(problems))
    return KnownFailures(entries=entries, source=str(p))
