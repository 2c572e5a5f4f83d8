"""Abstract time: the push window (ISS-7), the 5th-birthday expiry (VAL-2), the instants that matter."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mjpki.scenarios import base_world
from mjpki.spec import initial_state
from mjpki.spec.clock import DAY, HOUR, fifth_birthday_expiry, from_datetime, in_push_window, push_due, to_datetime
from mjpki.spec.machine import next_instants


@pytest.mark.parametrize(
    ("at", "due"),
    [
        (8 * HOUR, 8 * HOUR + 5),  # the window opens at 08:00
        (19 * HOUR + 29, 19 * HOUR + 34),  # still inside at 19:29
        (19 * HOUR + 30, DAY + 8 * HOUR),  # 19:30 is outside: next morning
        (23 * HOUR, DAY + 8 * HOUR),
        (2 * HOUR, 8 * HOUR),  # after midnight: the same morning's 08:00
        (7 * HOUR + 59, 8 * HOUR),
    ],
)
def test_push_due(at: int, due: int) -> None:
    assert push_due(at) == due


def test_window_edges() -> None:
    assert not in_push_window(8 * HOUR - 1) and in_push_window(8 * HOUR)
    assert in_push_window(19 * HOUR + 29) and not in_push_window(19 * HOUR + 30)


@pytest.mark.parametrize(
    ("birth", "issued", "expires"),
    [
        (date(1990, 6, 15), datetime(2026, 4, 1), datetime(2030, 6, 16)),  # birthday still ahead this year
        (date(1990, 3, 1), datetime(2026, 4, 1), datetime(2031, 3, 2)),  # birthday passed this year
        (date(1990, 4, 1), datetime(2026, 4, 1, 12), datetime(2031, 4, 2)),  # issued on the birthday: it does not count
        (date(2000, 2, 29), datetime(2026, 4, 1), datetime(2031, 3, 1)),  # 29 Feb in 2031 is 28 Feb
        (date(2000, 2, 29), datetime(2026, 1, 10), datetime(2030, 3, 1)),
    ],
)
def test_fifth_birthday(birth: date, issued: datetime, expires: datetime) -> None:
    assert to_datetime(fifth_birthday_expiry(birth, from_datetime(issued))) == expires


def test_next_instants_are_future_and_sorted() -> None:
    world = base_world()
    state = initial_state(world)
    instants = next_instants(world, state)
    assert instants == tuple(sorted(instants)) and all(t > state.now for t in instants)
    assert instants[0] == 8 * HOUR  # the push window opens before anything else happens
