"""The applet-level checks as pytest tests: collected by the mjpki plugin when --jpki-applet or --jpki-reader is given.

One test per check of `mjpki.applet_run.applet_checks()` (the named scenarios, then the search); the target and the
options come from the plugin, the running and judging from `mjpki.applet_run.run_check`.
"""

from __future__ import annotations

import pytest

from mjpki.applet_run import APPLET_PROFILES, applet_checks, check_line, failure_text, run_check
from mjpki.pytest_plugin import applet_session

CHECKS = {c.id: c for c in applet_checks()}


@pytest.mark.parametrize("check_id", list(CHECKS))
def test_applet(check_id: str, request: pytest.FixtureRequest) -> None:
    """Run one check on the applet in lockstep with the APDU model; fail with the step table of the divergence."""
    config = request.config
    try:
        s = applet_session(config)
    except KeyError:
        pytest.skip("the applet-level checks run only with --jpki-applet=MODULE:CLASS or --jpki-reader=NAME")
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)

    result = run_check(
        CHECKS[check_id], s.target, profile=APPLET_PROFILES[s.profile], out_dir=s.out_dir, database_dir=s.database_dir, progress=progress
    )
    s.results.append(result)
    # Straight onto the node, as mjpki/suite.py does (record_property warns under the xunit2 JUnit family).
    record_property = request.node.user_properties.append
    record_property(("requirements", " ".join(sorted(result.reqs))))
    record_property(("clauses", " ".join(sorted(result.rules))))
    record_property(("runs", result.runs))
    record_property(("steps", result.steps))
    if result.divergence is not None:
        record_property(("diverging_clause", result.divergence.rule))
        record_property(("diverging_requirements", " ".join(result.divergence.reqs)))
    for path in result.artefacts:
        record_property(("artefact", str(path)))
    if result.status != "pass":
        pytest.fail(failure_text(result) if result.trace_steps else check_line(result), pytrace=False)
