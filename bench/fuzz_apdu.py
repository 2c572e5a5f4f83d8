"""The long fuzz run: hostile APDUs to an applet in lockstep with the model, and hostile vpcd frames to serve-se (issue 12).

    .venv/bin/python bench/fuzz_apdu.py --count 200000 --seed 7
    .venv/bin/python bench/fuzz_apdu.py --count 50000 --applet tests/faulty_applets.py:OneExtraTry --no-framing

tests/test_fuzz.py runs a few thousand of each in CI. Exit 0 when nothing was found, 1 with the findings (the APDU in hex
and what went wrong; rerun with the same --seed to reproduce), 2 for bad options.
"""

from __future__ import annotations

import argparse
import sys
import time

from mjpki.adapterspec import AdapterSpecError
from mjpki.apdu_fuzz import fuzz_applet, fuzz_framing
from mjpki.applet_run import load_applet_class
from mjpki.escape import terminal


def main(argv: list[str] | None = None) -> int:
    """Run both fuzzers; print what they found."""
    parser = argparse.ArgumentParser(prog="bench/fuzz_apdu.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="APDUs (and as many vpcd messages) to send (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed sends the same bytes (default 1)")
    parser.add_argument("--applet", default="mjpki.impl.se:GpSe", metavar="MODULE:CLASS", help="the applet class (default: GpSe)")
    parser.add_argument("--no-framing", action="store_true", help="fuzz only the APDU processor, not serve-se's vpcd framing")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        cls = load_applet_class(args.applet)
    except AdapterSpecError as exc:  # the loader's one-line message
        print(f"fuzz_apdu: --applet {args.applet}: {exc}", file=sys.stderr)
        return 2
    found = 0
    started = time.monotonic()
    runs = [("APDU processor", lambda: fuzz_applet(cls, count=args.count, seed=args.seed))]
    if not args.no_framing:
        runs.append(("vpcd framing", lambda: fuzz_framing(count=args.count, seed=args.seed)))
    for name, run in runs:
        findings = run()
        found += len(findings)
        for f in findings:
            print(f"{name}: {terminal(f.apdu)}: {terminal(f.what)}")
        print(f"{name}: {len(findings)} findings ({time.monotonic() - started:.0f} s so far)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
