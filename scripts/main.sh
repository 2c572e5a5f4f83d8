#!/usr/bin/env bash
# The main job: a conformance run of the named lifecycle scenarios, every invariant checked.
# Until the reference implementation lands, the system under test is the executable spec itself.
# Traces go to out/traces/; extra arguments go to `mjpki scenarios`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/mjpki scenarios --traces out/traces "$@"
