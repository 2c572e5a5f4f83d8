"""Detection power at the system level: which check of a conformance run catches each shipped faulty system.

    .venv/bin/python bench/system_detection.py [--profile ci] [--scenarios on|off|both] [--shrink] [--jobs N] [--only NAME ...]
        [--lying]

For each faulty system of tests/faulty_impls.py, in-process: with scenarios on, every scenario check (the verdicts of
the run are the union of what every failing check blames); with scenarios off, the stateful checks of the profile in
order (mjpki.conformance.STATEFUL_WORLDS), stopping at the first that catches the fault. Prints, per fault and mode,
the check that caught it first, the seconds to the first failure, the requirements the verdict FAILs next to the ones
the fault breaks, and a summary line. The searches are random (Hypothesis's own seed), not shrunk unless --shrink.
docs/detection.md keeps the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mjpki.conformance import PROFILES, CheckResult, all_checks, run_check, verdicts
from mjpki.se_read import SE_KEYS_ENV, TEST_SE_KEYS, SeKeyedFactory
from tests.faulty_impls import FAULTY, LYING, LYING_SE, Fault, shared_parts


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One fault in one mode: the check that caught it first (or none) and what the verdict FAILs."""

    fault: str
    mode: str
    caught_by: str
    seconds: float
    """Seconds to the first failure: the scenarios before it and the search up to its first failing run."""
    fails: tuple[str, ...]
    breaks: tuple[str, ...]

    @property
    def precise(self) -> bool:
        """The broken requirement is among the FAILs, and at most three FAIL."""
        return bool(set(self.breaks) & set(self.fails)) and len(self.fails) <= 3

    def line(self) -> str:
        """The row as printed."""
        caught = self.caught_by or "MISSED"
        blame = "ok" if self.precise else "IMPRECISE" if self.caught_by else "-"
        fails = ",".join(self.fails) or "-"
        return f"{self.mode:4} {self.fault:38} {caught:46} {self.seconds:7.1f} s  FAIL {fails:24} breaks {','.join(self.breaks)}  {blame}"


def _systems(*, lying: bool) -> dict[str, tuple[Fault, Callable[..., object]]]:
    """The faulty systems to measure and the factory to drive each with: tests/faulty_impls.py's FAULTY and, with
    `lying`, the systems whose self-report is right while their artefacts (LYING) or their SEs (LYING_SE, read over APDUs
    with GlobalPlatform's test keys, as `mjpki run --se-test-keys` does) are wrong."""
    out: dict[str, tuple[Fault, Callable[..., object]]] = {n: (f, f.factory) for n, f in FAULTY.items()}
    if lying:
        out.update({n: (f, f.factory) for n, f in LYING.items()})
        out.update({n: (f, SeKeyedFactory(f.factory, TEST_SE_KEYS)) for n, f in LYING_SE.items()})
    return out


def _measure(name: str, mode: str, profile: str, shrink: bool, lying: bool = False) -> Row:
    if lying:
        os.environ[SE_KEYS_ENV] = "test"  # the faulty systems' SEs are made with the test keys the harness reads them with
    fault, factory = _systems(lying=lying)[name]
    shared_parts()
    prof = replace(PROFILES[profile], shrink=shrink)
    kind = "scenario" if mode == "on" else "stateful"
    results: list[CheckResult] = []
    first, elapsed = "", 0.0
    for check in (c for c in all_checks() if c.kind == kind):
        t0 = time.monotonic()
        r = run_check(check, factory, profile=prof, timeout=30, system_name=name)  # type: ignore[arg-type]
        results.append(r)
        if r.failed and not first:
            first = check.id
            elapsed += r.shrink.found_after if r.shrink is not None else time.monotonic() - t0
        elif not first:
            elapsed += time.monotonic() - t0
        if first and kind == "stateful":
            break  # a search is long: the first world that catches it is the answer
    fails = tuple(rid for rid, v in verdicts(results).items() if v == "FAIL")
    return Row(fault=name, mode=mode, caught_by=first, seconds=elapsed, fails=fails, breaks=fault.breaks)


def main(argv: list[str] | None = None) -> int:
    """Run the table; exit 0 (it measures, it does not judge)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", choices=sorted(PROFILES), help="run profile of the searches (default ci)")
    parser.add_argument("--scenarios", default="both", choices=("on", "off", "both"), help="with the named scenarios, without, or both")
    parser.add_argument("--shrink", action="store_true", help="shrink within the profile's budget (default: stop at the first failure)")
    parser.add_argument("--jobs", type=int, default=1, help="faults measured in parallel processes (default 1)")
    parser.add_argument("--only", nargs="*", default=(), metavar="NAME", help="only these faulty systems")
    parser.add_argument(
        "--lying", action="store_true", help="also the systems that lie about their artefacts or SEs (LYING, LYING_SE)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    systems = _systems(lying=args.lying)
    unknown = [n for n in args.only if n not in systems]
    if unknown:
        parser.error(f"no faulty system {', '.join(unknown)}; there are {', '.join(systems)}")
    modes = ("on", "off") if args.scenarios == "both" else (args.scenarios,)
    jobs = [(n, m) for m in modes for n in systems if not args.only or n in args.only]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_measure, n, m, args.profile, args.shrink, args.lying) for n, m in jobs]
        rows = []
        for f in futures:
            rows.append(f.result())
            print(rows[-1].line(), flush=True)
    for m in modes:
        mine = [r for r in rows if r.mode == m]
        caught = sum(1 for r in mine if r.caught_by)
        precise = sum(1 for r in mine if r.precise)
        print(f"scenarios {m}: {caught} of {len(mine)} caught, {precise} with the broken requirement among at most three FAILs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
