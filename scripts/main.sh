#!/usr/bin/env bash
# The main job: a conformance run of the named lifecycle scenarios against the reference
# implementation (impl/), in lockstep with the executable spec: every step's outcome compared,
# every invariant checked on the implementation's records, CRLs and SEs after every step.
# Traces (with the implementation's outcomes) go to out/traces/; extra arguments go to `mjpki scenarios`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/mjpki scenarios --system reference --traces out/traces "$@"
