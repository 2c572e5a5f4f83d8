"""Detection power at the applet level: which shipped faulty applets the stateful search catches, at a given budget.

    .venv/bin/python bench/applet_detection.py [--examples N] [--random] [--only ID ...]

For each faulty applet of tests/faulty_applets.py: the search (mjpki.applet_lockstep.search, derandomized unless
--random) with N examples, no shrinking; prints caught/missed, the seconds it took, the clause and requirements the
divergence names next to the ones the fault breaks, and a summary line. docs/detection.md keeps the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mjpki.adapters.applet import ReferenceApplet
from mjpki.applet_lockstep import OFFICIAL_APP_HASH, AppletTarget, search
from mjpki.impl.scp03 import StaticKeys
from mjpki.key_pool import pooled_key_generation
from tests.faulty_applets import FAULTY_APPLETS

KEYS = StaticKeys(enc=bytes(range(16)), mac=bytes(range(16, 32)), dek=bytes(range(32, 48)))


def main(argv: list[str] | None = None) -> int:
    """Run the table; exit 0 (it measures, it does not judge)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="examples per search (default 200, the test's budget)")
    parser.add_argument("--random", action="store_true", help="a random search instead of the derandomized one the tests use")
    parser.add_argument("--only", nargs="*", default=(), metavar="ID", help="only these faulty applets")
    args = parser.parse_args(argv)
    caught = total = 0
    with pooled_key_generation() as pool:
        for fault in FAULTY_APPLETS:
            if args.only and fault.id not in args.only:
                continue

            def fresh(cls: type = fault.cls) -> ReferenceApplet:
                pool.restart()
                return ReferenceApplet(cls("SE-T1", KEYS), caller=OFFICIAL_APP_HASH)

            target = AppletTarget(name=fault.id, open=fresh, isd_keys=KEYS, caller=OFFICIAL_APP_HASH, can_switch_caller=True)
            t0 = time.monotonic()
            run = search(target, examples=args.examples, derandomize=not args.random)
            seconds = time.monotonic() - t0
            total += 1
            if run is None or run.divergence is None:
                print(f"missed  {fault.id:40} {seconds:6.1f} s   breaks {','.join(fault.reqs)}", flush=True)
                continue
            caught += 1
            d = run.divergence
            print(f"caught  {fault.id:40} {seconds:6.1f} s   {d.rule} [{','.join(d.reqs)}]   breaks {','.join(fault.reqs)}", flush=True)
    print(f"{caught} of {total} faulty applets caught by the search alone ({args.examples} examples each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
