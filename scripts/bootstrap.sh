#!/usr/bin/env bash
# Create .venv and install mjpki with its dependencies from PyPI; safe to run again.
# Sourced by scripts/main.sh and scripts/test.sh, so both work on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "mjpki needs Python 3.11 or later; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
# Debian packages, installed when we are root (CI and these machines); elsewhere the tests that need them say what to
# install. Graphviz renders the explorer's lifecycle diagrams. The PC/SC stack (tests/test_pcsc.py, docs/pcsc.md):
# pcscd, vsmartcard-vpcd, OpenSC with its PKCS#11 module, and what pyscard builds with (swig, libpcsclite-dev, gcc,
# python3-dev). Chromium renders `mjpki report --html` pages headless (tests/test_report_html.py).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    need=()
    command -v dot >/dev/null 2>&1 || need+=(graphviz)
    for deb in pcscd vsmartcard-vpcd opensc opensc-pkcs11 swig libpcsclite-dev gcc python3-dev chromium; do
        dpkg -s "$deb" >/dev/null 2>&1 || need+=("$deb")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        echo "installing ${need[*]} (apt-get)" >&2
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$PY" -m venv .venv
fi
# pyscard (the pcsc extra) compiles against pcsc-lite: wanted whenever its headers are there.
extras=dev
if [ -f /usr/include/PCSC/winscard.h ]; then extras=dev,pcsc; fi
stamp=.venv/.mjpki-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$extras" ]; then
    echo "installing mjpki and its dependencies into .venv ($extras)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    echo "$extras" >"$stamp"
fi
