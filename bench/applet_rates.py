"""Applet-level rates, measured in one run: raw APDU round trips against the applet's lockstep with the model.

    .venv/bin/python bench/applet_rates.py [--seconds S] [--pcsc READER --keys FILE]

Prints APDUs per second (process CPU time and wall time) for: the reference GpSe's own `transmit` (the floor), the
same APDUs through an AppletAdapter, and the lockstep (host + model judging every answer); with --pcsc, the same over
pcscd. The figures that matter are the ratios within one run: this machine is shared, absolute numbers wander.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mjpki.adapters.applet import AppletAdapter, ReferenceApplet
from mjpki.applet_lockstep import OFFICIAL_APP_HASH, AppletRun, AppletTarget, expand, personalisation
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.spec.apdu.commands import Send

# The app's status queries and a certificate read: answers the applet computes without RSA, so the rate is the harness's.
_LOOP = [
    bytes.fromhex("00A4040C0AD392F000260100000001"),
    bytes.fromhex("00A4020C020018"),
    bytes.fromhex("00200080"),
    bytes.fromhex("00A4020C02000A"),
    bytes.fromhex("00B0000004"),
]


def _rate(fn: Callable[[], int], seconds: float) -> tuple[float, float]:
    """APDUs per CPU second and per wall second of fn (which returns how many APDUs it sent), run for about `seconds`."""
    n, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        n += fn()
    return n / max(time.process_time() - cpu0, 1e-9), n / max(time.perf_counter() - wall0, 1e-9)


def _personalised(adapter_open: Callable[[], AppletAdapter], keys: StaticKeys, caller: bytes | None) -> AppletRun:
    run = AppletRun(AppletTarget(name="bench", open=adapter_open, isd_keys=keys, caller=caller))
    expand(run, personalisation(caller=caller or OFFICIAL_APP_HASH))
    if run.divergence is not None:
        raise SystemExit(f"the applet diverged during personalisation: {run.divergence}")
    return run


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each figure is measured (default 3)")
    parser.add_argument("--pcsc", metavar="READER", help="also measure over pcscd through this reader (needs --keys)")
    parser.add_argument("--keys", type=Path, help='the SE\'s ISD keys as JSON {"enc","mac","dek" (hex),"key_version"}')
    args = parser.parse_args(argv)
    keys = StaticKeys(enc=secrets.token_bytes(16), mac=secrets.token_bytes(16), dek=secrets.token_bytes(16))
    se = GpSe("SE-BENCH", keys)
    run = _personalised(lambda: ReferenceApplet(se, caller=OFFICIAL_APP_HASH), keys, OFFICIAL_APP_HASH)

    def raw() -> int:
        for apdu in _LOOP:
            se.transmit(apdu, caller=OFFICIAL_APP_HASH)
        return len(_LOOP)

    def adapter() -> int:
        for apdu in _LOOP:
            run.adapter.transmit(apdu)
        return len(_LOOP)

    def lockstep() -> int:
        for apdu in _LOOP:
            run.send(Send(apdu))
        if run.divergence is not None:
            raise SystemExit(f"the reference diverged from the model: {run.divergence}")
        return len(_LOOP)

    rows = [("GpSe.transmit (floor)", *_rate(raw, args.seconds))]
    rows.append(("through the AppletAdapter", *_rate(adapter, args.seconds)))
    rows.append(("lockstep: host + model", *_rate(lockstep, args.seconds)))
    if args.pcsc:
        if args.keys is None:
            parser.error("--pcsc needs --keys (the SE's ISD keys)")
        from mjpki.adapters.pcsc import PcscApplet

        data = json.loads(args.keys.read_text())
        pkeys = StaticKeys(
            enc=bytes.fromhex(data["enc"]),
            mac=bytes.fromhex(data["mac"]),
            dek=bytes.fromhex(data["dek"]),
            key_version=data.get("key_version", 0x30),
        )
        prun = _personalised(lambda: PcscApplet(args.pcsc), pkeys, None)

        def pcsc_raw() -> int:
            for apdu in _LOOP:
                prun.adapter.transmit(apdu)
            return len(_LOOP)

        def pcsc_lockstep() -> int:
            for apdu in _LOOP:
                prun.send(Send(apdu))
            return len(_LOOP)

        rows.append(("over pcscd: raw round trip", *_rate(pcsc_raw, args.seconds)))
        rows.append(("over pcscd: lockstep", *_rate(pcsc_lockstep, args.seconds)))
    floor = rows[0][1]
    print(f"{'what':32} {'APDU/s (CPU)':>14} {'APDU/s (wall)':>14} {'floor/this (CPU)':>17}")
    for name, cpu, wall in rows:
        print(f"{name:32} {cpu:14.0f} {wall:14.0f} {floor / cpu:17.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
