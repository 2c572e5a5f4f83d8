#!/usr/bin/env bash
# The main job: the conformance run against the reference implementation (impl/), in lockstep
# with the executable spec. Every named scenario and a generated stateful search (profile quick;
# MJPKI_PROFILE=ci|thorough for more): each step's outcome compared, every invariant checked
# on the implementation's records, CRLs and SEs after every step; a verdict per requirement.
# result.json and the traces of any failure go to out/conformance/; extra arguments go to `mjpki run`.
# MJPKI_JOBS=auto (or N) runs the checks in worker processes, same verdicts and result.json: about a third less wall time
# on an idle 2-core machine, none on a shared, loaded one, where it only costs more CPU; so one process by default.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/mjpki run --adapter mjpki.adapters.reference:factory --profile "${MJPKI_PROFILE:-quick}" --jobs "${MJPKI_JOBS:-1}" \
    --out out/conformance "$@"
