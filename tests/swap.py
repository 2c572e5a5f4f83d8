"""One decision of a reference object made differently, for one call: how the shipped faulty implementations are built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["swapped"]


@contextmanager
def swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Replace owner.name by value while the block runs, then restore it (or remove it, if the instance had none)."""
    had = name in vars(owner)
    old = vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)
