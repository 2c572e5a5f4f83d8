"""How often generated runs reach the last step of each multi-step flow: the stateful search's reach, on the spec alone.

    .venv/bin/python bench/flow_reach.py [--runs N] [--steps N] [--strategies MODULE.py]

Draws N runs of up to --steps actions from mjpki.strategies.action_strategy (or the action_strategy of another
strategies file, e.g. an older version: `git show HEAD~5:mjpki/strategies.py > /tmp/old.py`), derandomized, and steps
each on the spec (no system: the spec is the oracle, what it reaches a system is put to). Prints, per flow, the share
of runs whose steps reached the flow's last step. docs/detection.md keeps the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mjpki.scenarios import base_world
from mjpki.spec import actions as A
from mjpki.spec.clock import DAY
from mjpki.spec.domain import HoldCause, PinStatus
from mjpki.spec.machine import next_instants, step
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State, initial_state
from mjpki.spec.world import World
from tests.fault_exposure import cascaded

Marker = Callable[[World, State, A.Action, Outcome, State], bool]


def _both_holds(state: State) -> bool:
    return any({HoldCause.PHONE_LOST, HoldCause.CARD_LOST} <= c.holds for c in state.phone_certs.values())


FLOWS: dict[str, Marker] = {
    "registration complete": lambda w, s, a, o, t: isinstance(a, A.Register) and o.ok,
    "model change applied (old phone's certificates revoked)": lambda w, s, a, o, t: (
        isinstance(a, A.Apply) and o.ok and o.details.get("deletion_warning") is True
    ),
    "model change without consent refused": lambda w, s, a, o, t: isinstance(a, A.Apply) and o.code == "CONSENT_REQUIRED",
    "deletion push delivered (keys deleted)": lambda w, s, a, o, t: (
        isinstance(a, A.DeliverDeletionPush) and o.ok and bool(o.details.get("deleted"))
    ),
    "registration on a phone with a deletion pending (the slot changes hands)": lambda w, s, a, o, t: (
        isinstance(a, A.Register) and o.ok and any(ph == a.phone for ph, _p in s.deletions)
    ),
    "deletion delivered after the slot changed hands": lambda w, s, a, o, t: (
        isinstance(a, A.DeliverDeletionPush)
        and o.ok
        and o.details.get("deleted") == ()
        and any(sl.cert_serial is not None for sl in s.phones[a.phone].se.slots.values())
    ),
    "PIN initialisation on a phone without the card's certificates": lambda w, s, a, o, t: (
        isinstance(a, A.InitialisePin) and a.card_signature_valid and o.code in ("SE_ID_MISMATCH", "PHONE_CERT_NOT_FOUND")
    ),
    "registration with a superseded application's R refused": lambda w, s, a, o, t: (
        isinstance(a, A.Register) and o.code == "COMMITMENT_MISMATCH"
    ),
    "registration from a phone whose SE holds a stale R refused": lambda w, s, a, o, t: (
        isinstance(a, A.Register) and o.code == "COMMITMENT_MISMATCH" and s.phones[a.phone].se.nonce is not None
    ),
    "time stepped into a queued deletion's last day (the deletion still waiting)": lambda w, s, a, o, t: (
        isinstance(a, A.AdvanceTime)
        and o.ok
        and any(s.now < d.deadline - DAY <= s.now + a.minutes < d.deadline for d in s.deletions.values())
    ),
    "held for phone and card, phone found first": lambda w, s, a, o, t: isinstance(a, A.PhoneFound) and o.ok and _both_holds(s),
    "held for phone and card, card found first": lambda w, s, a, o, t: isinstance(a, A.CardFound) and o.ok and _both_holds(s),
    "revocation from the phone refused for a locked PIN": lambda w, s, a, o, t: isinstance(a, A.RevokeFromPhone) and o.code == "PIN_LOCKED",
    "screen lock standing in for the auth PIN": lambda w, s, a, o, t: isinstance(a, A.Authenticate) and a.method.value != "pin" and o.ok,
    "PIN initialised after it locked": lambda w, s, a, o, t: (
        isinstance(a, A.InitialisePin)
        and o.ok
        and a.kind in s.phones[a.phone].se.slots
        and s.phones[a.phone].se.slots[a.kind].pin_status is PinStatus.LOCKED
    ),
    "deletion push refused, the old phone's notifications off": lambda w, s, a, o, t: (
        isinstance(a, A.DeliverDeletionPush) and o.code == "PUSH_DISABLED"
    ),
    "time step to a minute before a deadline": lambda w, s, a, o, t: (
        isinstance(a, A.AdvanceTime) and o.ok and (s.now + a.minutes + 1) in next_instants(w, s, limit=8)
    ),
    "deletion failed at its deadline": lambda w, s, a, o, t: isinstance(a, A.AdvanceTime) and bool(o.details.get("deletions_failed")),
    "cascade: a phone certificate revoked for the card certificate it follows (REV-2)": lambda w, s, a, o, t: cascaded(s, t),
}
"""Each flow's last step, as a predicate on (world, state before, action, outcome, state after)."""


def _strategies(path: str | None) -> Callable[..., st.SearchStrategy[A.Action]]:
    if path is None:
        from mjpki.strategies import action_strategy

        return action_strategy
    spec = importlib.util.spec_from_file_location("mjpki_strategies_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"flow_reach: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.action_strategy  # type: ignore[no-any-return]


def measure(*, runs: int, steps: int, strategies: str | None = None) -> tuple[Counter[str], int]:
    """Per flow, the runs that reached its last step; and the runs drawn."""
    action_strategy = _strategies(strategies)
    world = base_world()
    reached: Counter[str] = Counter()
    drawn = [0]

    @settings(
        max_examples=runs, derandomize=True, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(st.data())
    def one_run(data: st.DataObject) -> None:
        drawn[0] += 1
        state = initial_state(world)
        seen: set[str] = set()
        for _ in range(steps):
            action = data.draw(action_strategy(world, state))
            after, outcome = step(world, state, action)
            seen.update(name for name, hit in FLOWS.items() if name not in seen and hit(world, state, action, outcome, after))
            state = after
        reached.update(seen)

    one_run()
    return reached, drawn[0]


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 0 (it measures, it does not judge)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="generated runs (default 200)")
    parser.add_argument("--steps", type=int, default=50, help="steps per run (default 50, the ci profile's)")
    parser.add_argument("--strategies", default=None, metavar="FILE", help="a strategies module file to measure instead")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    reached, drawn = measure(runs=args.runs, steps=args.steps, strategies=args.strategies)
    for name in FLOWS:
        print(f"{100 * reached[name] / max(drawn, 1):5.1f} %  {name}")
    print(f"{drawn} runs of {args.steps} steps in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
