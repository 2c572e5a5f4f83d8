#!/usr/bin/env bash
# The PC/SC stack for mjpki: pcscd with vsmartcard's vpcd readers, and `mjpki serve-se` as the virtual cards.
#
#   bash scripts/pcsc.sh install          as root: the Debian packages, then pyscard into .venv (the pcsc extra)
#   bash scripts/pcsc.sh start [--demo] [--test-keys | --keys-file FILE] [--applet MODULE:CLASS]
#                                         write the reader config, start pcscd and serve-se (5 phone SEs + SE-DEMO);
#                                         --applet serves that class instead of mjpki.impl.se.GpSe (docs/pcsc.md)
#                                         the SEs' SCP03 keys: --keys-file (hex, mode 0600) or $MJPKI_PCSC_KEYS; the
#                                         published GP test keys only with --test-keys, --demo or MJPKI_PCSC_KEYS=test
#   bash scripts/pcsc.sh stop             stop both, by PID, and wait for pcscd to exit
#   bash scripts/pcsc.sh status           what is running, and the readers pcscd offers
#
# Readers (what mjpki.adapters.pcsc_system's defaults expect): "Virtual PCD 00 00" = SE-DEMO (a reader, for OpenSC and the
# applet checks); "mjpki SE-000k 00 00" / "... 00 01" = phone Dk's SE as the official app / another app sees it.
# Files: $MJPKI_PCSC_DIR (default /tmp/mjpki-pcsc): reader.conf.d/, drivers/, state/ (the SEs' memory), *.pid, *.log.
# That folder holds private keys and PINs and what pcscd loads: it is made 0700, and one that is a symbolic link,
# someone else's, or writable by group or others is refused (exit 2). pcscd and serve-se run in a network namespace of
# their own (unshare --net, loopback only): vpcd listens on every interface, and from the network or another user's
# process a card could take a free reader and receive the PINs sent to it (docs/security.md).
# MJPKI_PCSC_SHARED_NETWORK=1 runs them in the host's network instead, where vpcd's ports are open to the network.
# pcscd reads reader configuration only at start-up, so a pcscd started by someone else is left alone and reported.
set -euo pipefail
CALLER_DIR="$PWD"  # where relative --applet paths and modules are meant from
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

port_listening() {  # port_listening PID PORT: in PID's network namespace (not by connecting: that inserts a card)
    nsenter_net "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .
}

SHARED_NETWORK="${MJPKI_PCSC_SHARED_NETWORK:-}"

isolated() { [ "$SHARED_NETWORK" != 1 ]; }

nsenter_net() {  # nsenter_net PID CMD...: CMD in the network namespace of PID (pcscd), or here with a shared network
    local pid=$1; shift
    if isolated; then nsenter --net="/proc/$pid/ns/net" -- "$@"; else "$@"; fi
}

exec_in_net() {  # exec_in_net PID CMD...: like nsenter_net, but exec (in a background subshell, $! is then CMD's PID)
    local pid=$1; shift
    if isolated; then exec nsenter --net="/proc/$pid/ns/net" -- "$@"; else exec "$@"; fi
}

in_new_netns() {  # in_new_netns CMD...: exec CMD in a new network namespace with only loopback up
    if isolated; then
        exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
    else
        exec "$@"
    fi
}

check_isolation() {  # can this machine give pcscd a network namespace of its own?
    isolated || { echo "pcsc.sh: MJPKI_PCSC_SHARED_NETWORK=1: vpcd's ports (35963...) are open to the network" >&2; return 0; }
    for tool in unshare nsenter ip; do
        command -v "$tool" >/dev/null || { echo "pcsc.sh: no $tool (util-linux, iproute2): pcscd cannot get a network namespace of its own" >&2; exit 1; }
    done
    unshare --net -- true 2>/dev/null || {
        echo "pcsc.sh: cannot make a network namespace here (unshare --net needs root or CAP_SYS_ADMIN); run as root, or" >&2
        echo "  set MJPKI_PCSC_SHARED_NETWORK=1 to accept vpcd listening on every interface (docs/security.md)" >&2
        exit 1
    }
}

unsafe_dir() {  # unsafe_dir DIR: why DIR must not hold the stack's files (nothing if it may, or does not exist yet)
    local d=$1 owner mode
    [ -L "$d" ] && { echo "$d is a symbolic link"; return; }
    [ -e "$d" ] || return 0
    [ -d "$d" ] || { echo "$d is not a folder"; return; }
    owner=$(stat -c %u -- "$d"); mode=$(stat -c %a -- "$d")
    [ "$owner" = "$(id -u)" ] || { echo "$d belongs to uid $owner, not to you (uid $(id -u))"; return; }
    (( 8#$mode & 8#022 )) && { echo "$d is writable by group or others (mode $mode)"; return; }
    return 0
}

private_dir() {  # private_dir DIR: DIR made 0700, or refused (exit 2) if it is a link, someone else's or group/other-writable
    local why
    why=$(unsafe_dir "$1")
    if [ -z "$why" ]; then (umask 077 && mkdir -p -m 700 -- "$1"); why=$(unsafe_dir "$1"); fi
    if [ -n "$why" ]; then
        echo "pcsc.sh: $why: it would hold the SEs' private keys and PINs and what pcscd loads; remove it, or set" >&2
        echo "  MJPKI_PCSC_DIR to a new folder of your own" >&2
        exit 2
    fi
    chmod 700 -- "$1"
}

checked_dir() {  # checked_dir DIR: refuse (exit 2) a DIR whose pid files someone else could have written
    local why
    why=$(unsafe_dir "$1")
    [ -z "$why" ] || { echo "pcsc.sh: $why: not reading pid files from it; remove it, or set MJPKI_PCSC_DIR" >&2; exit 2; }
}

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

applet_arg() {  # applet_arg MODULE:CLASS: the spec as seen from the repository, where serve-se runs
    case "${1%%:*}" in
        /*.py) echo "$1" ;;
        *.py) echo "$CALLER_DIR/$1" ;;  # a file path: make it absolute
        *) echo "$1" ;;                  # a module: importable from here, or from CALLER_DIR (PYTHONPATH, cmd_start)
    esac
}

cmd_start() {
    local opts=() applet=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --demo) opts+=(--demo) ;;
            --test-keys) opts+=(--test-keys) ;;
            --keys-file) [ $# -ge 2 ] || { echo "pcsc.sh start: --keys-file needs FILE" >&2; exit 2; }
                opts+=(--keys-file "$(cd "$CALLER_DIR" && realpath -- "$2")"); shift ;;
            --applet) [ $# -ge 2 ] || { echo "pcsc.sh start: --applet needs MODULE:CLASS" >&2; exit 2; }
                applet="$2"; shift ;;
            --applet=*) applet="${1#--applet=}" ;;
            *) echo "pcsc.sh start: unknown option $1 (usage: start [--demo] [--test-keys | --keys-file FILE] [--applet MODULE:CLASS])" >&2
               exit 2 ;;
        esac
        shift
    done
    if [ -n "$applet" ]; then
        opts+=(--applet "$(applet_arg "$applet")")
        # a module in the caller's directory is importable too (PYTHONPATH; serve-se runs in the repository)
        case "${applet%%:*}" in *.py) ;; *) export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$CALLER_DIR" ;; esac
    fi
    private_dir "$DIR"  # first: nothing is written, and no pid file read, in a folder someone else controls
    [ -x .venv/bin/mjpki ] || source scripts/bootstrap.sh
    umask 077  # from here on: logs hold the demo PINs, pid files decide what `stop` kills
    command -v pcscd >/dev/null || { echo "pcsc.sh: no pcscd; run: bash scripts/pcsc.sh install" >&2; exit 1; }
    check_isolation
    if pid_alive "$DIR/pcscd.pid"; then
        echo "pcsc.sh: pcscd already started by this script (pid $(cat "$DIR/pcscd.pid")); stop first" >&2
        exit 1
    fi
    if pgrep -x pcscd >/dev/null; then
        echo "pcsc.sh: a pcscd not started by this script is running (pid $(pgrep -x pcscd | tr '\n' ' '))." >&2
        echo "  It reads its reader configuration only at start-up; stop it, then run this again." >&2
        exit 1
    fi
    # with the serve-se options: a bad --applet stops here, before pcscd starts
    conf=$(.venv/bin/mjpki serve-se --phones "$PHONES" "${opts[@]}" --write-pcscd-config "$DIR")
    (umask 022 && in_new_netns pcscd --foreground -c "$conf") >"$DIR/pcscd.log" 2>&1 &  # 022: pcscd's socket is for all
    local pcscd_pid=$!
    echo "$pcscd_pid" >"$DIR/pcscd.pid"
    for _ in $(seq 150); do port_listening "$pcscd_pid" 35963 && break; sleep 0.1; done
    port_listening "$pcscd_pid" 35963 || { echo "pcsc.sh: vpcd is not listening on 35963; see $DIR/pcscd.log" >&2; cmd_stop; exit 1; }
    # serve-se joins pcscd's network namespace: the only place where vpcd's ports can be reached
    (exec_in_net "$pcscd_pid" .venv/bin/mjpki serve-se --state "$DIR/state" --phones "$PHONES" "${opts[@]}") >"$DIR/serve-se.log" 2>&1 &
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
    checked_dir "$DIR"
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
    checked_dir "$DIR"
    pid_alive "$DIR/pcscd.pid" && echo "pcscd: pid $(cat "$DIR/pcscd.pid")" || echo "pcscd: not started by this script"
    pid_alive "$DIR/serve-se.pid" && echo "serve-se: pid $(cat "$DIR/serve-se.pid")" || echo "serve-se: not running"
    if [ -x .venv/bin/python ]; then
        .venv/bin/python -c 'from mjpki.adapters.pcsc import list_readers; print("\n".join(list_readers()))' 2>&1 || true
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: bash scripts/pcsc.sh install | start [--demo] [--test-keys | --keys-file FILE] [--applet MODULE:CLASS] | stop | status" >&2
       exit 2 ;;
esac
