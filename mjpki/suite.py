"""The conformance suite as pytest tests: collected by the mjpki plugin when --jpki-adapter is given.

One test per check of `mjpki.conformance.all_checks()`; the adapter and options come from the plugin.
"""

from __future__ import annotations

import pytest

from mjpki.conformance import PROFILES, all_checks, check_line, run_check
from mjpki.escape import terminal
from mjpki.pytest_plugin import conformance_session

CHECKS = {c.id: c for c in all_checks()}


@pytest.mark.parametrize("check_id", list(CHECKS))
def test_conformance(check_id: str, request: pytest.FixtureRequest) -> None:
    """Run one check on the adapter in lockstep with the spec; fail with the trace of the divergence."""
    config = request.config
    try:
        s = conformance_session(config)
    except KeyError:
        pytest.skip("the conformance suite runs only with --jpki-adapter=module:factory")
    check = CHECKS[check_id]
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(terminal(line, lines=True))  # a divergence in it carries the adapter's text

    result = run_check(
        check,
        s.factory,
        profile=PROFILES[s.profile],
        out_dir=s.out_dir,
        known=s.known,
        timeout=s.timeout,
        system_name=s.adapter,
        database_dir=s.database_dir,
        progress=progress,
    )
    s.results.append(result)
    # Straight onto the node, not through record_property: pytest's default JUnit family (xunit2)
    # warns on the fixture but still writes a test case's user properties.
    record_property = request.node.user_properties.append
    record_property(("requirements", " ".join(sorted(result.exercised))))
    record_property(("steps", result.steps))
    if result.divergence is not None:
        record_property(("diverging_requirements", " ".join(result.divergence.reqs)))
    for path in result.artefacts:
        record_property(("artefact", str(path)))
    if result.status == "known":
        pytest.xfail(f"known failure ({result.known_reason}): {result.divergence}")
    if result.status in ("fail", "error"):
        from mjpki.render import step_table

        text = check_line(result)
        if result.trace is not None:
            text += "\n\n" + step_table(result.trace)
        pytest.fail(text, pytrace=False)
