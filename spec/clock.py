"""Abstract time: minutes since the spec's epoch, with the calendar facts the rules need."""

from __future__ import annotations

from datetime import date, datetime, timedelta

__all__ = [
    "EPOCH",
    "MINUTE",
    "HOUR",
    "DAY",
    "PUSH_DELAY",
    "PUSH_WINDOW_OPEN",
    "PUSH_WINDOW_CLOSE",
    "DELETION_WINDOW",
    "PRIMARY_AUTH_INTERVAL",
    "to_datetime",
    "from_datetime",
    "minute_of_day",
    "in_push_window",
    "push_due",
    "fifth_birthday_expiry",
    "next_window_edge",
]

EPOCH = datetime(2026, 4, 1, 0, 0)
"""Time 0 of the spec, in Japan Standard Time (the spec has no time zones)."""

MINUTE = 1
HOUR = 60
DAY = 24 * HOUR

PUSH_DELAY = 5 * MINUTE  # ISS-7 "within minutes" (ASM-PUSH-TIMING)
PUSH_WINDOW_OPEN = 8 * HOUR  # 08:00
PUSH_WINDOW_CLOSE = 19 * HOUR + 30  # 19:30
DELETION_WINDOW = 48 * HOUR  # MCH-2
PRIMARY_AUTH_INTERVAL = 72 * HOUR  # PIN-6


def to_datetime(t: int) -> datetime:
    """The wall-clock instant of spec time t."""
    return EPOCH + timedelta(minutes=t)


def from_datetime(dt: datetime) -> int:
    """Spec time of a wall-clock instant (whole minutes)."""
    return int((dt - EPOCH).total_seconds() // 60)


def minute_of_day(t: int) -> int:
    """Minutes since midnight at time t."""
    return t % DAY  # EPOCH is a midnight


def in_push_window(t: int) -> bool:
    """True if an application at time t is notified within minutes (ISS-7)."""
    return PUSH_WINDOW_OPEN <= minute_of_day(t) < PUSH_WINDOW_CLOSE


def push_due(t: int) -> int:
    """When the issuance push for an application made at time t may be delivered (ISS-7)."""
    if in_push_window(t):
        return t + PUSH_DELAY
    day_start = t - minute_of_day(t)
    if minute_of_day(t) < PUSH_WINDOW_OPEN:
        return day_start + PUSH_WINDOW_OPEN
    return day_start + DAY + PUSH_WINDOW_OPEN


def next_window_edge(t: int) -> int:
    """The next instant after t when the push window opens or closes."""
    day_start = t - minute_of_day(t)
    for edge in (day_start + PUSH_WINDOW_OPEN, day_start + PUSH_WINDOW_CLOSE):
        if edge > t:
            return edge
    return day_start + DAY + PUSH_WINDOW_OPEN


def _birthday_in(year: int, birth: date) -> date:
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year (ASM-EXPIRY-INSTANT)
        return date(year, 2, 28)


def fifth_birthday_expiry(birth: date, issued_at: int) -> int:
    """Expiry of a certificate issued at issued_at: 00:00 after the 5th birthday since issuance (VAL-2)."""
    issued = to_datetime(issued_at).date()
    year = issued.year
    if _birthday_in(year, birth) <= issued:
        year += 1  # this year's birthday has passed (or is today): it does not count
    fifth = _birthday_in(year + 4, birth)
    return from_datetime(datetime.combine(fifth + timedelta(days=1), datetime.min.time()))
