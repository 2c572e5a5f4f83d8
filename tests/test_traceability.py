"""Traceability: every requirement ID is cited by a spec rule and by a property or test; none is misspelt."""

from __future__ import annotations

import re
from pathlib import Path

from mjpki.cli import requirements_markdown
from mjpki.properties.invariants import STATE_INVARIANTS, TRANSITION_INVARIANTS
from mjpki.scenarios import SCENARIOS
from mjpki.spec.assumptions import ASSUMPTIONS
from mjpki.spec.reasons import Reason
from mjpki.spec.requirements import REQUIREMENTS, conformance_ids, requirement
from mjpki.spec.rules import RULES

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"\b(?:ACT|LNK|VAL|CA|ISS|PIN|REV|SUS|MCH|DEL|ACL|SP|OPS|HIST)-\d+\b")


def _spec_citations() -> set[str]:
    cited = {r for spec in RULES.values() for r in spec.reqs}
    cited |= {r for reason in Reason for r in reason.reqs}
    return cited


def _property_or_test_citations() -> set[str]:
    cited = {r for inv in STATE_INVARIANTS.values() for r in inv.reqs}
    cited |= {r for inv in TRANSITION_INVARIANTS.values() for r in inv.reqs}
    cited |= {r for sc in SCENARIOS.values() for r in sc.reqs}
    for path in (ROOT / "tests").glob("*.py"):
        if path.name != Path(__file__).name:
            cited |= set(ID.findall(path.read_text(encoding="utf-8")))
    return cited


def test_catalogue_has_all_55_conformance_ids() -> None:
    ids = conformance_ids()
    assert len(ids) == 55
    assert len(set(ids)) == 55
    assert "HIST-1" in REQUIREMENTS and "HIST-1" not in ids


def test_every_id_is_cited_by_a_spec_rule() -> None:
    missing = [rid for rid in conformance_ids() if rid not in _spec_citations()]
    assert not missing, f"requirement IDs no spec rule or reason code cites: {missing}"


def test_every_id_is_cited_by_a_property_or_test() -> None:
    missing = [rid for rid in conformance_ids() if rid not in _property_or_test_citations()]
    assert not missing, f"requirement IDs no invariant, scenario or test cites: {missing}"


def test_every_cited_id_exists() -> None:
    cited = _spec_citations() | _property_or_test_citations()
    cited |= {r for a in ASSUMPTIONS.values() for r in a.reqs}
    for path in [*(ROOT / "spec").glob("*.py"), *(ROOT / "properties").glob("*.py"), *(ROOT / "mjpki").glob("*.py")]:
        cited |= set(ID.findall(path.read_text(encoding="utf-8")))
    unknown = sorted(r for r in cited if r not in REQUIREMENTS)
    assert not unknown, f"cited but not in the catalogue (typo?): {unknown}"


def test_unknown_id_error_names_the_range() -> None:
    try:
        requirement("LNK-9")
    except KeyError as exc:
        assert "LNK-1" in str(exc) and "LNK-6" in str(exc)
    else:
        raise AssertionError("LNK-9 should not exist")


def test_requirements_doc_is_current() -> None:
    doc = ROOT / "docs" / "requirements.md"
    assert doc.read_text(encoding="utf-8") == requirements_markdown(), (
        "docs/requirements.md is stale: run `mjpki requirements --markdown > docs/requirements.md`"
    )
