"""An immutable, hashable mapping for spec states (Python 3.11 has no frozendict)."""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Generic, TypeVar

__all__ = ["FrozenMap"]

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V], Generic[K, V]):
    """A mapping that never changes; updates return a new map. Keys iterate in sorted order."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        pairs = dict(items.items() if isinstance(items, Mapping) else items)
        # Sorted storage makes equality, hashing and iteration independent of insertion
        # order, so two states built along different paths compare equal.
        self._items: dict[K, V] = dict(sorted(pairs.items(), key=lambda kv: _sort_key(kv[0])))
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    # The Mapping mixins would look every key up again through __getitem__; the spec, the explorer and the observation
    # iterate these maps on every step, so the dict's own (read-only) views and lookups answer directly.
    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K, default: Any = None) -> Any:
        return self._items.get(key, default)

    def keys(self) -> KeysView[K]:
        return self._items.keys()

    def values(self) -> ValuesView[V]:
        return self._items.values()

    def items(self) -> ItemsView[K, V]:
        return self._items.items()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._items == other._items
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    def set(self, key: K, value: V) -> FrozenMap[K, V]:
        """Return a copy with key bound to value."""
        new = dict(self._items)
        if key in new:
            new[key] = value
            return _sorted_already(new)  # the same keys in the same order
        new[key] = value
        return FrozenMap(new)

    def remove(self, key: K) -> FrozenMap[K, V]:
        """Return a copy without key (no error if absent)."""
        return _sorted_already({k: v for k, v in self._items.items() if k != key})

    def update_where(self, pred: Callable[[K, V], bool], fn: Callable[[V], V]) -> FrozenMap[K, V]:
        """Return a copy with fn applied to every value whose (key, value) satisfies pred."""
        return _sorted_already({k: fn(v) if pred(k, v) else v for k, v in self._items.items()})


def _sorted_already(items: dict[K, V]) -> FrozenMap[K, V]:
    """A map over items whose keys are in sorted order already (a subset of a map's keys, in its order): no sort."""
    out: FrozenMap[K, V] = FrozenMap.__new__(FrozenMap)
    out._items = items
    out._hash = None
    return out


def _sort_key(key: Any) -> Any:
    # Keys are ints, strings, enums or tuples of those; sort enums by value and
    # keep mixed types apart by their type name.
    if isinstance(key, tuple):
        return tuple(_sort_key(k) for k in key)
    value = getattr(key, "value", key)
    return (type(value).__name__, value)
