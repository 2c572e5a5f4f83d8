"""Lockstep runs: every step goes to the spec and to a system under test; outcomes and invariants are compared.

A `Lockstep` holds the spec's state and one system. Each step is applied to both; the
system's outcome is compared with the spec's (the code, and details that are values rather
than the system's own identifiers), and every invariant is checked on the system's
observation. An adapter that raises, hangs past the step timeout, or returns something
that is not an Outcome or Observation is a failure of that step, recorded like any other.
The run so far is always available as a trace.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from mjpki.adapters.system import AdapterError, AdapterFactory, SystemAdapter
from mjpki.properties.invariants import Violation, check_state, check_transition
from mjpki.spec.actions import Action
from mjpki.spec.blame import DETAIL_REQS, blame, failure_reqs
from mjpki.spec.machine import step
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State, initial_state
from mjpki.spec.trace import Trace, TraceStep, step_reqs
from mjpki.spec.world import World

__all__ = ["COMPARED_DETAILS", "Divergence", "Lockstep", "SearchStopped", "lockstep_machine", "write_failure"]

COMPARED_DETAILS = frozenset(DETAIL_REQS)
"""Outcome details compared with the spec's (mjpki.spec.blame.DETAIL_REQS); the rest name the system's own serials and are not."""

T = TypeVar("T")
U = TypeVar("U")


class SearchStopped(BaseException):
    """Raised inside a generated run to end the whole Hypothesis search (its shrink budget is spent).

    A BaseException, like KeyboardInterrupt: Hypothesis counts an Exception as a failure to shrink, this one it lets through.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """Where the system first parted from the spec, and why."""

    index: int
    """The diverging step, or -1 before the first step (factory or initial observation)."""
    action: Action | None
    what: str
    reqs: tuple[str, ...]
    invariants: tuple[str, ...] = ()
    """The invariants the system's observation broke, when that is the divergence (empty for an outcome or adapter failure)."""

    def __str__(self) -> str:
        where = "before the first step" if self.action is None else f"step {self.index} {self.action}"
        return f"{where}: {self.what} [{', '.join(self.reqs)}]"


_Call = tuple["concurrent.futures.Future[Any]", Callable[[], Any], "tuple[Callable[[Any], bool], _Call] | None"]
"""A queued adapter call: its future, the call, and the follow-up to make at once if the result passes a test."""


class _AdapterThread:
    """One daemon thread that makes an in-process adapter's calls in order.

    Not a ThreadPoolExecutor: the interpreter joins those threads at exit, so an adapter call that hangs forever would
    keep `mjpki run --in-process` (or a replay) from exiting after its verdict. A daemon thread dies with the process.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="mjpki-adapter", daemon=True).start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            while call is not None:
                future, fn, then = call
                call, result, made = None, None, future.set_running_or_notify_cancel()
                if made:
                    try:
                        result = fn()
                    except BaseException as exc:  # SystemExit and KeyboardInterrupt included: the caller judges them
                        future.set_exception(exc)
                        made = False
                    else:
                        future.set_result(result)
                if then is not None:
                    if made and then[0](result):
                        call = then[1]  # the follow-up call, made at once: no round trip to the caller in between
                    else:
                        then[1][0].cancel()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue one call; its future answers when the thread has made it."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put((future, fn, None))
        return future

    def submit_then(
        self, fn: Callable[[], T], when: Callable[[T], bool], then: Callable[[], U]
    ) -> tuple[concurrent.futures.Future[T], concurrent.futures.Future[U]]:
        """Queue a call and, if `when` holds for its result, a second one made right after it (else cancelled)."""
        first: concurrent.futures.Future[T] = concurrent.futures.Future()
        second: concurrent.futures.Future[U] = concurrent.futures.Future()
        self._calls.put((first, fn, (when, (second, then, None))))
        return first, second

    def shutdown(self) -> None:
        """Let the thread end after the calls queued so far (at once if it is idle; never, if a call hangs)."""
        self._calls.put(None)


class Lockstep:
    """The spec and one system under test, stepped together."""

    def __init__(
        self,
        factory: AdapterFactory,
        world: World,
        *,
        timeout: float | None = 10.0,
        system_name: str = "",
        factory_timeout: float | None = None,
    ) -> None:
        """timeout: seconds an adapter call may take (None: no deadline). The calls go through a worker thread, which
        gives them the deadline, unless there is none or the factory's systems keep their own (`enforces_deadline`: the
        wire adapters, whose transport kills a hung child and fails the call): then they are made on this thread."""
        self.world = world
        self.timeout = timeout
        self._direct = timeout is None or getattr(factory, "enforces_deadline", False) is True
        """Adapter calls are made on the calling thread: no thread hop per call."""
        self.system_name = system_name or getattr(factory, "__qualname__", repr(factory))
        self.state: State = initial_state(world)
        self.steps: list[TraceStep] = []
        self.divergence: Divergence | None = None
        self._pool: _AdapterThread | None = None
        """The worker thread, started at the first call that goes through it."""
        self._hung = False
        """An adapter call timed out: its worker thread is still busy, so nothing more is sent."""
        self.system: SystemAdapter | None = None
        self._obs: Observation | None = None
        self.publishes = False
        """The system hands over its artefacts: what it publishes is judged on them (mjpki.published), not on self-report."""
        self.published_checks = 0
        """Artefact judgements made: one after every step and at the run's end (mjpki.published.ArtefactJudge)."""
        self._artefact_judge: Any = None
        self.se_reader: Any = None
        # Building a system (keys, databases, readers) takes longer than a step: by default six step timeouts, at least a minute.
        limit = factory_timeout if factory_timeout is not None else None if timeout is None else max(6 * timeout, 60.0)
        made, problem = self._call(lambda: factory(world), timeout=limit)
        if problem:
            self._diverge(-1, None, f"the adapter factory failed: {problem}", ())
            return
        self.system = made
        # Reads the system's SEs over APDUs (mjpki.se_read) when it offers se_apdu and the factory carries SE keys.
        self.se_reader = self._se_reader(factory, made)
        obs, problem = self._observe()
        if problem:
            self._diverge(-1, None, problem, ())
            return
        self._obs = obs
        found = _state_violations(world, obs)  # type: ignore[arg-type]
        if found:
            self._diverge(
                -1, None, "initial state: " + "; ".join(map(str, found)), tuple(r for v in found for r in v.reqs),
                tuple(dict.fromkeys(v.invariant for v in found)),
            )  # fmt: skip
        self.publishes = callable(getattr(made, "artefacts", None))
        if not self.broken and self.publishes:
            self._judge_published(-1, None, None, obs)  # type: ignore[arg-type]

    # --- calling the adapter safely ---

    def _call(self, fn: Callable[[], T], *, timeout: float | None = None) -> tuple[T | None, str | None]:
        if self._direct:
            try:
                return fn(), None
            except AdapterError as exc:  # over the wire: the adapter's deadline passed, its process ended, or it said no
                return None, f"the adapter failed: {exc}"
            except Exception as exc:  # Ctrl-C and SystemExit here are this process's own: they end the run
                return None, f"the adapter raised {type(exc).__name__}: {exc}"
        if self._pool is None:
            self._pool = _AdapterThread()
        return self._wait(self._pool.submit(fn), timeout=timeout)

    def _wait(self, future: concurrent.futures.Future[T], *, timeout: float | None = None) -> tuple[T | None, str | None]:
        """The answer of a call queued on the worker thread, within the deadline."""
        limit = self.timeout if timeout is None else timeout
        try:
            return future.result(timeout=limit), None
        except concurrent.futures.TimeoutError:
            self._hung = True
            return None, f"no answer within {limit:g} s (the adapter hangs)"
        except BaseException as exc:  # an adapter's exception, SystemExit and KeyboardInterrupt too, is a finding
            if not (future.done() and not future.cancelled() and future.exception() is exc):
                raise  # not the adapter's: e.g. Ctrl-C while waiting for it
            if isinstance(exc, AdapterError):  # the adapter's own account of what went wrong (over the wire: exit, signal, stderr)
                return None, f"the adapter failed: {exc}"
            return None, f"the adapter raised {type(exc).__name__}: {exc}"

    def _observe(
        self, index: int = -1, action: Action | None = None, *, full: bool = False, queued: concurrent.futures.Future[Any] | None = None
    ) -> tuple[Observation | None, str | None]:
        """The system's observation (`queued`: the call already queued on the worker thread right after the step)."""
        assert self.system is not None
        if queued is not None and not queued.cancelled():
            obs, problem = self._wait(queued)
        else:
            obs, problem = self._call(self.system.observation)
        if problem:
            return None, f"observation(): {problem}"
        if not isinstance(obs, Observation):
            return None, f"observation() returned {type(obs).__name__}, not an Observation"
        if self.se_reader is not None:
            return self._read_ses(obs, index, action, full=full)
        return obs, None

    # --- the SEs read over APDUs (mjpki.se_read): their slots replace the self-reported ones ---

    def _se_reader(self, factory: AdapterFactory, system: SystemAdapter) -> Any:
        from mjpki.se_read import SeKeys, SeReader, SeReadError

        keys = getattr(factory, "se_keys", None)
        if not isinstance(keys, SeKeys) or not callable(getattr(system, "se_apdu", None)):
            return None

        def transmit(phone: str, apdu: bytes) -> bytes:
            response, problem = self._call(lambda: system.se_apdu(phone, apdu))  # type: ignore[attr-defined]
            if problem is not None:
                raise SeReadError(f"se_apdu(): {problem}")
            if not isinstance(response, bytes | bytearray):
                raise SeReadError(f"se_apdu() returned {type(response).__name__}, not bytes")
            return bytes(response)

        return SeReader(self.world, keys, transmit)

    def _read_ses(self, obs: Observation, index: int, action: Action | None, *, full: bool) -> tuple[Observation | None, str | None]:
        """obs with the SE slots read over APDUs; a self-report that differs is a divergence naming the SE requirement."""
        from mjpki.se_read import SeReadError

        try:
            judged, found = self.se_reader.observe(self.state, obs, index=index, action_phone=getattr(action, "phone", None), full=full)
        except SeReadError as exc:
            return None, f"reading the SEs over APDUs: {exc}"
        if found:
            reqs = tuple(dict.fromkeys(r for f in found for r in f.reqs))
            self._diverge(index, action, "SE slots read over APDUs: " + "; ".join(map(str, found)), reqs)
        return judged, None

    @property
    def se_reads(self) -> int:
        """SEs the harness read over APDUs in this run (0: the SE slots were judged on self-report)."""
        return 0 if self.se_reader is None else int(self.se_reader.reads)

    def _finish_ses(self) -> None:
        """Read every SE once more at the run's end: an SE a step changed unannounced is found here at the latest."""
        if self.broken or self.system is None or self.se_reader is None or self._obs is None or not self.steps:
            return
        last = len(self.steps) - 1
        action = self.steps[last].action
        post, problem = self._observe(last, action, full=True)
        if problem is not None or post is None:
            self._diverge(last, action, problem or "", ())
            return
        found = [] if post is self._obs else _state_violations(self.world, post)
        if found:
            self._diverge(last, action, "invariant: " + "; ".join(map(str, found)), tuple(dict.fromkeys(r for v in found for r in v.reqs)))
        self._obs = post

    def _judge_published(
        self, index: int, action: Action | None, pre: Observation | None, post: Observation, *, full: bool = False
    ) -> tuple[str, ...]:
        """Judge the system's artefacts after this step (mjpki.published.ArtefactJudge; full: OCSP about every certificate);
        a finding is a divergence."""
        if self._artefact_judge is None:
            from mjpki.published import ArtefactJudge

            self._artefact_judge = ArtefactJudge(self.world)
        judge = self._artefact_judge
        self.published_checks += 1
        now = self.state.now
        found, problem = self._call(lambda: judge(post, self.system, now=now, index=index, pre=pre, full=full))
        if problem is not None:
            self._diverge(index, action, f"artefacts(): {problem}", ())
            return (problem,)
        if found:
            reqs = tuple(dict.fromkeys(r for f in found for r in f.reqs))
            self._diverge(index, action, "published artefacts: " + "; ".join(map(str, found)), reqs)
        return tuple(str(f) for f in found or ())

    def _diverge(self, index: int, action: Action | None, what: str, reqs: tuple[str, ...], invariants: tuple[str, ...] = ()) -> None:
        if self.divergence is None:
            self.divergence = Divergence(index=index, action=action, what=what, reqs=reqs, invariants=invariants)

    # --- stepping ---

    @property
    def broken(self) -> bool:
        """True once the system has diverged (further steps are not sent)."""
        return self.divergence is not None

    def step(self, action: Action) -> TraceStep:
        """Apply one action to the spec and, unless the world cannot take it, to the system."""
        new_state, expected = step(self.world, self.state, action)
        self.state = new_state
        index = len(self.steps)
        reqs = step_reqs(action, expected)
        if (expected.reason is not None and expected.reason.environmental) or self.broken or self.system is None:
            record = TraceStep(action=action, expected=expected, reqs=reqs, note="not sent to the system")
            self.steps.append(record)
            return record
        system = self.system
        queued: concurrent.futures.Future[Any] | None = None
        if self._direct:
            actual, problem = self._call(lambda: system.step(action))
        else:
            # The observation is queued with the step and made right after it when the step gave an outcome (it is asked
            # for then, whatever the outcome): one hand-over to the worker thread per step instead of two.
            if self._pool is None:
                self._pool = _AdapterThread()
            stepped, queued = self._pool.submit_then(lambda: system.step(action), lambda r: isinstance(r, Outcome), system.observation)
            actual, problem = self._wait(stepped)
        violations: tuple[str, ...] = ()
        if problem is None and not isinstance(actual, Outcome):
            problem = f"step() returned {type(actual).__name__}, not an Outcome"
        if problem is not None:
            self._diverge(index, action, problem, failure_reqs(action, expected))
            record = TraceStep(action=action, expected=expected, reqs=reqs, note=problem)
            self.steps.append(record)
            return record
        assert isinstance(actual, Outcome)
        mismatch = _compare(action, expected, actual, self.state, self._obs)
        if mismatch:
            # Blame what differs (the refusal, the detail), not the whole rule (issue 15, part 7); the rule's list only
            # if nothing narrower is known.
            what, blamed = mismatch
            self._diverge(index, action, what, blamed or reqs)
        post, problem = self._observe(index, action, queued=queued)
        if problem is not None:
            self._diverge(index, action, problem, failure_reqs(action, expected))
        else:
            assert post is not None and self._obs is not None
            # The same object as before the step (an adapter that keeps its observation while nothing changed): already judged.
            judged = [] if post is self._obs else _state_violations(self.world, post)
            found = check_transition(self.world, self._obs, action, actual, post, states=False) + judged
            violations = tuple(str(v) for v in found)
            if found:
                self._diverge(
                    index, action, "invariant: " + "; ".join(map(str, found)), tuple(dict.fromkeys(r for v in found for r in v.reqs)),
                    tuple(dict.fromkeys(v.invariant for v in found)),
                )  # fmt: skip
            if not self.broken and self.publishes:
                violations += self._judge_published(index, action, self._obs, post)
            self._obs = post
        record = TraceStep(action=action, expected=expected, actual=actual, reqs=reqs, violations=violations, note=problem)
        self.steps.append(record)
        return record

    def finish(self) -> None:
        """Judge the artefacts of the run's last state once more, asking OCSP about every certificate.

        After each step the artefacts are judged whole, but OCSP is asked only about some certificates
        (mjpki.published.ArtefactJudge): here about every one. Every SE is read once more too, when the harness reads them
        over APDUs.
        """
        self._finish_ses()
        if self.broken or self.system is None or not self.publishes or self._obs is None or not self.steps:
            return
        last = len(self.steps) - 1
        self._judge_published(last, self.steps[last].action, None, self._obs, full=True)

    def trace(self, *, title: str = "", source: str = "hypothesis") -> Trace:
        """The run so far, with the system's outcomes and violations."""
        meta: dict[str, Any] = {}
        if self.divergence is not None:
            meta["divergence"] = {"index": self.divergence.index, "what": self.divergence.what, "reqs": list(self.divergence.reqs)}
        return Trace(world=self.world, steps=tuple(self.steps), title=title, source=source, system=self.system_name, meta=meta)

    def close(self) -> None:
        """Close the system, diverged or not (it may hold readers or files), unless it hangs; stop the worker thread."""
        if self.system is not None and not self._hung:
            self._call(self.system.close)  # a close that raises is not a finding: the divergence, if any, is already recorded
        if self._pool is not None:
            self._pool.shutdown()


@lru_cache(maxsize=4096)
def _judged(world: World, obs: Observation) -> tuple[Violation, ...]:
    return tuple(check_state(world, obs))


def _state_violations(world: World, obs: Observation) -> list[Violation]:
    """The state invariants' violations on obs, judged once per distinct (world, observation) in this process.

    State invariants are a function of the observation alone, and a search meets the same states again and again (every
    run starts from the initial one; refusals leave the state as it was). An observation that cannot be hashed (an
    adapter's own containers in it) is judged every time.
    """
    try:
        return list(_judged(world, obs))
    except TypeError:
        return check_state(world, obs)


def _final_replay() -> bool:
    """True while Hypothesis replays the example it reports (after shrinking), not while it searches or shrinks."""
    from hypothesis.control import current_build_context
    from hypothesis.errors import InvalidArgument

    try:
        return bool(current_build_context().is_final)
    except InvalidArgument:  # not inside a Hypothesis test
        return False


def write_failure(trace: Trace, divergence: Divergence, out_dir: Path, name: str) -> tuple[Path, ...]:
    """Write a failing run as <name>.json (the trace), .txt (the step table) and .md (report with sequence diagram)."""
    from mjpki.mermaid import markdown_report
    from mjpki.render import step_table

    out_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    paths = (out_dir / f"{safe}.json", out_dir / f"{safe}.txt", out_dir / f"{safe}.md")
    paths[0].write_text(trace.dumps(), encoding="utf-8")
    paths[1].write_text(f"{trace.title}\n{divergence}\n\n{step_table(trace)}\n", encoding="utf-8")
    paths[2].write_text(markdown_report(trace, name=safe), encoding="utf-8")
    return paths


def _compare(
    action: Action, expected: Outcome, actual: Outcome, state: State | None = None, system: Observation | None = None
) -> tuple[str, tuple[str, ...]] | None:
    """What differs between the outcomes and the requirement IDs it is about (mjpki.spec.blame, given the spec's state
    after the step and the system's observation before it), or None."""
    return blame(action, expected, actual, state=state, system=system)


def lockstep_machine(
    factory: AdapterFactory,
    world: World,
    *,
    trace_dir: str | None = None,
    timeout: float = 10.0,
    name: str = "",
    on_divergence: Callable[[Trace, Divergence], None] | None = None,
    on_run_end: Callable[[Lockstep], None] | None = None,
    stop: Callable[[], bool] | None = None,
    reduce_seconds: float = 0.0,
) -> type:
    """A Hypothesis RuleBasedStateMachine that runs generated steps in lockstep on the spec and a system.

    On a divergence it writes the run as a trace (and a step table next to it) into
    trace_dir and calls on_divergence; Hypothesis replays the shrunk example last, so the
    file (and the last call) hold the shortest failing run it found. on_run_end sees every
    run as it ends (for progress and requirement coverage). Where stop() turns true, the next run or step raises
    SearchStopped, which ends the search (shrinking included) at once: the caller keeps the shortest run it was shown.
    reduce_seconds > 0: the failing run Hypothesis replays last (its shrunk example) is first reduced step by step
    (mjpki.minimise, within that many seconds) and the reduced run is the one written to trace_dir and reported.
    """

    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule

    from mjpki.render import step_table
    from mjpki.strategies import action_strategy

    system_name = name or getattr(factory, "__qualname__", repr(factory))
    written: list[int] = []
    """Length of the failing run last written to trace_dir: a longer one found later (while shrinking) does not replace it."""

    class LockstepMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._stop_if_asked()
            self.run = Lockstep(factory, world, timeout=timeout, system_name=system_name)
            self._fail_if_diverged()

        @rule(data=st.data())
        def act(self, data: st.DataObject) -> None:
            self._stop_if_asked()
            action = data.draw(action_strategy(world, self.run.state), label="action")
            self.run.step(action)
            self._fail_if_diverged()

        def _stop_if_asked(self) -> None:
            if stop is not None and stop():
                raise SearchStopped("the search's budget is spent")

        def _fail_if_diverged(self) -> None:
            d = self.run.divergence
            if d is None:
                return
            trace = self.run.trace(title=f"{system_name} diverges from the spec", source="hypothesis")
            if on_divergence is not None:
                on_divergence(trace, d)
            if reduce_seconds > 0 and _final_replay():
                from mjpki.minimise import minimise  # it replays through Lockstep: imported here, not at the top

                done = minimise(trace, d, factory, seconds=reduce_seconds, timeout=timeout, system_name=system_name)
                trace, d = done.trace, done.divergence
            table = step_table(trace)
            if trace_dir and (not written or len(trace.steps) <= written[-1]):
                written.append(len(trace.steps))
                write_failure(trace, d, Path(trace_dir), system_name)
            raise AssertionError(f"{system_name} diverges from the spec: {d}\n{table}")

        def teardown(self) -> None:
            if not hasattr(self, "run"):  # stopped before its Lockstep was made
                return
            try:
                if not self.run.broken:
                    self.run.finish()  # the last state's artefacts, every serial asked
                    self._fail_if_diverged()
            finally:
                # No hypothesis.target() score here: steering by the (action, outcome) pairs a run adds made the searches
                # miss the edge faults more often, not less (bench/search_reach.py, docs/detection.md).
                self.run.close()
                if on_run_end is not None:
                    on_run_end(self.run)

    LockstepMachine.__name__ = f"Lockstep_{system_name}"
    return LockstepMachine
