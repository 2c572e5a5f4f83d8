"""A pool of pre-made RSA-2048 keys for the in-process reference SE (mjpki.impl.se), for learning, tests and benchmarks.

A fresh RSA-2048 key costs ~60 ms and is most of what the reference does; where only status words and the applet's
logic are judged, the same few keys serve. `pooled_key_generation()` swaps mjpki.impl.se's key generation for the pool while
inside; serve-se, the system-level runs and anything that issues real certificates never enter it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["KeyPool", "pooled_key_generation"]


class KeyPool:
    """The keys handed out, in order; `restart()` begins the sequence again (so a replay on a fresh SE gets the same keys)."""

    def __init__(self, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
        self._keys = keys
        self._next = 0

    def restart(self) -> None:
        """The next key handed out is the first of the pool again."""
        self._next = 0

    def take(self) -> rsa.RSAPrivateKey:
        """The next key of the pool, cycling."""
        key = self._keys[self._next % len(self._keys)]
        self._next += 1
        return key


@contextlib.contextmanager
def pooled_key_generation(size: int = 4) -> Iterator[KeyPool]:
    """While inside, mjpki.impl.se's RSA key generation takes keys from a small pool instead of making new ones.

    Only for the in-process reference and its subclasses, in learning and in tests: the abstraction sees status words,
    never keys, and a fresh RSA-2048 key takes ~60 ms, which would dominate (every query that generates a key pair pays
    it). serve-se and the system-level runs never enter it.
    """
    import mjpki.impl.se as se_module

    pool = KeyPool(_key_pool(size))
    original = se_module.rsa

    class _PooledRsa:
        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

        @staticmethod
        def generate_private_key(public_exponent: int, key_size: int, backend: Any = None) -> rsa.RSAPrivateKey:
            return pool.take() if (public_exponent, key_size) == (65537, 2048) else original.generate_private_key(public_exponent, key_size)

    se_module.rsa = _PooledRsa()  # type: ignore[assignment]
    try:
        yield pool
    finally:
        se_module.rsa = original


@cache
def _key_pool(size: int) -> tuple[rsa.RSAPrivateKey, ...]:
    return tuple(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(size))
