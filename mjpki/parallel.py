"""Checks on all cores: `mjpki run --jobs N` runs the checks of one conformance run in N worker processes.

The checks are independent (each builds its own systems from the factory), so each worker builds its own system under
test from the same options (`SystemRecipe`: a child process of its own for --adapter, its own shim for --shim) and runs
whole checks. The results come back in the order of the checks, whatever order they finish in, so the progress lines,
the summary and result.json are those of a serial run; only the seconds differ. Workers are spawned, not forked: the
parent may hold threads (a hung adapter call) and open readers.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mjpki.conformance import Check, CheckResult
    from mjpki.known_failures import KnownFailures
    from mjpki.se_read import SeKeys
    from mjpki.wire.choose import ChosenSystem

__all__ = ["SystemRecipe", "WorkerStartError", "default_jobs", "run_checks_parallel"]


class WorkerStartError(RuntimeError):
    """A worker could not start its system under test (the message says why, in one line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemRecipe:
    """The options that name the system under test (as `mjpki.wire.choose.choose_system` takes them), for a worker to rebuild it."""

    adapter: str | None = None
    shim: str | None = None
    url: str | None = None
    in_process: bool = False
    step_timeout: float = 10.0
    memory_mb: int = 4096
    se_keys: SeKeys | None = None
    """The SEs' keys (mjpki run --se-keys): the worker reads its systems' SEs over APDUs with them."""

    def build(self) -> ChosenSystem:
        """The system, started; WorkerStartError if it does not start."""
        from mjpki.wire.choose import choose_system

        chosen = choose_system(
            adapter=self.adapter, shim=self.shim, url=self.url, in_process=self.in_process, step_timeout=self.step_timeout,
            memory_mb=self.memory_mb,
        )  # fmt: skip
        problem = chosen.start()
        if problem:
            raise WorkerStartError(problem)
        if self.se_keys is not None:
            from mjpki.se_read import SeKeyedFactory

            chosen = replace(chosen, factory=SeKeyedFactory(chosen.factory, self.se_keys))
        return chosen


def default_jobs() -> int:
    """The cores this process may run on (what `--jobs auto` means)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_CHOSEN: list[ChosenSystem] = []
"""The worker's own system under test (one per worker process), built by _start_worker."""


def _start_worker(recipe: SystemRecipe) -> None:
    import atexit

    chosen = recipe.build()
    _CHOSEN.append(chosen)
    atexit.register(chosen.shutdown)


def _run_one(check_id: str, profile: str, out_dir: Path | None, known: KnownFailures | None, system_name: str,
             database_dir: Path | None) -> CheckResult:  # fmt: skip
    from mjpki.conformance import PROFILES, all_checks, run_check

    chosen = _CHOSEN[0]
    check = next(c for c in all_checks() if c.id == check_id)
    return run_check(
        check, chosen.factory, profile=PROFILES[profile], out_dir=out_dir, known=known, timeout=chosen.timeout,
        system_name=system_name, database_dir=database_dir,
    )  # fmt: skip


def run_checks_parallel(
    checks: Sequence[Check],
    recipe: SystemRecipe,
    *,
    jobs: int,
    profile: str,
    out_dir: Path | None,
    known: KnownFailures | None,
    system_name: str,
    database_dir: Path | None,
    done: Callable[[int, CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Every check's result, in the order of `checks`; done(i, result) is called in that order as results arrive."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    results: list[CheckResult] = []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(jobs, len(checks)) or 1, mp_context=context, initializer=_start_worker, initargs=(recipe,)
    ) as pool:
        futures = [pool.submit(_run_one, c.id, profile, out_dir, known, system_name, database_dir) for c in checks]
        try:
            for i, (check, future) in enumerate(zip(checks, futures, strict=True), 1):
                try:
                    result = future.result()
                except concurrent.futures.process.BrokenProcessPool as exc:
                    raise WorkerStartError(f"a worker process died: {exc}") from None
                result = replace(result, check=check)  # the caller's own Check object, not the worker's equal copy
                results.append(result)
                if done is not None:
                    done(i, result)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return results
