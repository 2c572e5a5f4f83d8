#!/usr/bin/env bash
# The PC/SC stack for mjpki: pcscd with vsmartcard's vpcd readers, and `mjpki serve-se` as the virtual cards.
#
#   bash scripts/pcsc.sh install          as root: the Debian packages, then pyscard into .venv (the pcsc extra)
#   bash scripts/pcsc.sh start [--demo]   write the reader config, start pcscd and serve-se (5 phone SEs + SE-DEMO)
#   bash scripts/pcsc.sh stop             stop both, by PID, and wait for pcscd to exit
#   bash scripts/pcsc.sh status           what is running, and the readers pcscd offers
#
# Readers (what adapters.pcsc_system's defaults expect): "Virtual PCD 00 00" = SE-DEMO (a reader, for OpenSC and the
# applet checks); "mjpki SE-000k 00 00" / "... 00 01" = phone Dk's SE as the official app / another app sees it.
# Files: $MJPKI_PCSC_DIR (default /tmp/mjpki-pcsc): reader.conf.d/, drivers/, state/ (the SEs' memory), *.pid, *.log.
# pcscd reads reader configuration only at start-up, so a pcscd started by someone else is left alone and reported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR="${MJPKI_PCSC_DIR:-/tmp/mjpki-pcsc}"
PHONES="${MJPKI_PCSC_PHONES_SERVED:-5}"
DEBS=(pcscd vsmartcard-vpcd opensc opensc-pkcs11 swig libpcsclite-dev gcc python3-dev)

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_exit() {  # wait_exit PID SECONDS
    local pid=$1 n=$(($2 * 10))
    while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    ! kill -0 "$pid" 2>/dev/null
}

port_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }  # not by connecting: that inserts a card

cmd_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "pcsc.sh install: run as root (apt-get install ${DEBS[*]})" >&2
        exit 1
    fi
    local need=()
    for deb in "${DEBS[@]}"; do dpkg -s "$deb" >/dev/null 2>&1 || need+=("$deb"); done
    if [ "${#need[@]}" -gt 0 ]; then
        echo "installing ${need[*]} (apt-get)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    source scripts/bootstrap.sh  # installs .[dev,pcsc] now that libpcsclite-dev is there
    .venv/bin/python -c 'import smartcard.scard' || { echo "pyscard did not install" >&2; exit 1; }
}

cmd_start() {
    local demo=()
    [ "${1:-}" = "--demo" ] && demo=(--demo)
    [ -x .venv/bin/mjpki ] || source scripts/bootstrap.sh
    command -v pcscd >/dev/null || { echo "pcsc.sh: no pcscd; run: bash scripts/pcsc.sh install" >&2; exit 1; }
    mkdir -p "$DIR"
    if pid_alive "$DIR/pcscd.pid"; then
        echo "pcsc.sh: pcscd already started by this script (pid $(cat "$DIR/pcscd.pid")); stop first" >&2
        exit 1
    fi
    if pgrep -x pcscd >/dev/null; then
        echo "pcsc.sh: a pcscd not started by this script is running (pid $(pgrep -x pcscd | tr '\n' ' '))." >&2
        echo "  It reads its reader configuration only at start-up; stop it, then run this again." >&2
        exit 1
    fi
    conf=$(.venv/bin/mjpki serve-se --phones "$PHONES" --write-pcscd-config "$DIR")
    pcscd --foreground -c "$conf" >"$DIR/pcscd.log" 2>&1 &
    echo $! >"$DIR/pcscd.pid"
    for _ in $(seq 150); do port_listening 35963 && break; sleep 0.1; done
    port_listening 35963 || { echo "pcsc.sh: vpcd is not listening on 35963; see $DIR/pcscd.log" >&2; cmd_stop; exit 1; }
    .venv/bin/mjpki serve-se --state "$DIR/state" --phones "$PHONES" "${demo[@]}" >"$DIR/serve-se.log" 2>&1 &
    echo $! >"$DIR/serve-se.pid"
    for _ in $(seq 300); do grep -q "Ctrl-C to stop" "$DIR/serve-se.log" 2>/dev/null && break; pid_alive "$DIR/serve-se.pid" || break; sleep 0.1; done
    if ! pid_alive "$DIR/serve-se.pid"; then
        cat "$DIR/serve-se.log" >&2
        cmd_stop
        exit 1
    fi
    sleep 1  # pcscd polls vpcd for the cards' presence
    cat "$DIR/serve-se.log"
    echo "pcscd pid $(cat "$DIR/pcscd.pid"), serve-se pid $(cat "$DIR/serve-se.pid"); stop with: bash scripts/pcsc.sh stop"
}

cmd_stop() {
    if pid_alive "$DIR/serve-se.pid"; then
        kill "$(cat "$DIR/serve-se.pid")"
        wait_exit "$(cat "$DIR/serve-se.pid")" 10 || kill -9 "$(cat "$DIR/serve-se.pid")"
    fi
    rm -f "$DIR/serve-se.pid"
    if pid_alive "$DIR/pcscd.pid"; then
        kill "$(cat "$DIR/pcscd.pid")"
        # the next pcscd must not start while this one still holds /run/pcscd
        wait_exit "$(cat "$DIR/pcscd.pid")" 10 || { kill -9 "$(cat "$DIR/pcscd.pid")"; wait_exit "$(cat "$DIR/pcscd.pid")" 5; }
    fi
    rm -f "$DIR/pcscd.pid"
    echo "stopped"
}

cmd_status() {
    pid_alive "$DIR/pcscd.pid" && echo "pcscd: pid $(cat "$DIR/pcscd.pid")" || echo "pcscd: not started by this script"
    pid_alive "$DIR/serve-se.pid" && echo "serve-se: pid $(cat "$DIR/serve-se.pid")" || echo "serve-se: not running"
    if [ -x .venv/bin/python ]; then
        .venv/bin/python -c 'from adapters.pcsc import list_readers; print("\n".join(list_readers()))' 2>&1 || true
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: bash scripts/pcsc.sh install | start [--demo] | stop | status" >&2; exit 2 ;;
esac
