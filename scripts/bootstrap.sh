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
# Debian packages: Graphviz renders the explorer's lifecycle diagrams. Installed when we are root
# (CI and these machines); elsewhere the diagram test says what to install.
if ! command -v dot >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing graphviz (apt-get)" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$PY" -m venv .venv
fi
stamp=.venv/.mjpki-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing mjpki and its dependencies into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi
