#!/usr/bin/env bash
# The test command: lint, schema drift, then the whole pytest suite.
# HYPOTHESIS_PROFILE picks quick | ci | thorough (default: ci under CI=true, else quick).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh

if [ -z "${HYPOTHESIS_PROFILE:-}" ]; then
    if [ "${CI:-}" = "true" ]; then export HYPOTHESIS_PROFILE=ci; else export HYPOTHESIS_PROFILE=quick; fi
fi
echo "== ruff" >&2
.venv/bin/ruff check .
echo "== trace schema drift" >&2
.venv/bin/mjpki schema --check
echo "== pytest (Hypothesis profile: $HYPOTHESIS_PROFILE)" >&2
set +e
# On every core (pytest-xdist); the PC/SC tests share one worker (tests/conftest.py). MJPKI_TEST_JOBS=1: serially.
.venv/bin/python -m pytest -n "${MJPKI_TEST_JOBS:-$(nproc)}" --dist loadgroup "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$rc"
