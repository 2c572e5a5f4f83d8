#!/usr/bin/env bash
# The main job: the conformance run against the reference implementation (impl/), in lockstep
# with the executable spec. Every named scenario and a generated stateful search (profile quick;
# MJPKI_PROFILE=ci|thorough for more): each step's outcome compared, every invariant checked
# on the implementation's records, CRLs and SEs after every step; a verdict per requirement.
# result.json and the traces of any failure go to out/conformance/; extra arguments go to `mjpki run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
exec .venv/bin/mjpki run --adapter mjpki.adapters.reference:factory --profile "${MJPKI_PROFILE:-quick}" --out out/conformance "$@"
