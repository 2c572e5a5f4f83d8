"""The executable spec as a system under test: the smallest complete adapter, and a model for writing one.

    from mjpki.adapters.spec_adapter import SpecSystem
    system = SpecSystem(world)          # a factory is anything that takes a World
    outcome = system.step(InstallApp(phone="D1"))
    observation = system.observation()

`SpecSystem(world, stepper=...)` runs another transition function instead of the spec's (the
suite's own tests use this to build faulty systems from the seeded bugs).
"""

from __future__ import annotations

from collections.abc import Callable

from mjpki.spec.actions import Action
from mjpki.spec.machine import step
from mjpki.spec.observe import Observation, observe
from mjpki.spec.outcome import Outcome
from mjpki.spec.state import State, initial_state
from mjpki.spec.world import World

__all__ = ["SpecSystem"]


class SpecSystem:
    """A system that is the spec (or a variant of its transition function)."""

    def __init__(self, world: World, *, stepper: Callable[[World, State, Action], tuple[State, Outcome]] = step) -> None:
        self.world = world
        self.state = initial_state(world)
        self._stepper = stepper
        self._observed: tuple[State, Observation] | None = None
        """The last observation and the state it is of: a refusal leaves the state as it was, and so its observation."""

    def step(self, action: Action) -> Outcome:
        """Apply the action to the current state."""
        self.state, outcome = self._stepper(self.world, self.state, action)
        return outcome

    def observation(self) -> Observation:
        """The spec's observation of the current state."""
        if self._observed is None or self._observed[0] is not self.state:
            self._observed = (self.state, observe(self.world, self.state))
        return self._observed[1]

    def close(self) -> None:
        """Nothing to release."""
