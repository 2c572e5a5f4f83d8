"""A pool of pre-made RSA-2048 keys for the in-process reference SE (mjpki.impl.se), for learning, tests and benchmarks.

A fresh RSA-2048 key costs ~60 ms and is most of what the reference does; where only status words and the applet's
logic are judged, the same few keys serve. `pooled_key_generation()` swaps mjpki.impl.se's key generation for the pool while
inside; serve-se, the system-level runs and anything that issues real certificates never enter it.

`pooled_reference_keys()` is the system-level counterpart for the suite's own tests: the reference system's SE key pairs
and card keys come from pairs of pre-generated primes (distinct keys, hundreds of them, for a dozen generations). It works
only inside a running test of the suite's own pytest process (tests/conftest.py marks it; RuntimeError elsewhere, child
processes included) and nothing outside tests/ calls it: `mjpki run`, serve-se, serve-system and the default factory
always generate fresh keys (tests/test_harness_speed.py checks both).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["KeyPool", "PrimePairPool", "mark_suite_session", "pooled_key_generation", "pooled_reference_keys"]


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
    with _swapped_rsa((se_module,), pool):
        yield pool


class PrimePairPool:
    """Distinct RSA-2048 keys made from pairs of pre-generated primes: n primes give n(n-1)/2 keys, each in microseconds, in order."""

    def __init__(self, primes: tuple[int, ...]) -> None:
        self._pairs = tuple(itertools.combinations(primes, 2))
        self._next = 0

    def restart(self) -> None:
        """The next key handed out is the first again."""
        self._next = 0

    def take(self) -> rsa.RSAPrivateKey:
        """The next key, cycling after every pair was used once."""
        p, q = self._pairs[self._next % len(self._pairs)]
        self._next += 1
        return _key_from_primes(p, q)

    def __len__(self) -> int:
        return len(self._pairs)


_SUITE_SESSION: list[bool] = []
"""Non-empty in the suite's own pytest process (mark_suite_session)."""


def mark_suite_session() -> None:
    """Called by tests/conftest.py when the suite's pytest session starts: this process may use pooled_reference_keys."""
    _SUITE_SESSION.append(True)


@contextlib.contextmanager
def pooled_reference_keys(primes: int = 24) -> Iterator[PrimePairPool]:
    """Tests only: while inside, the reference system's SE key pairs (mjpki.impl.se) and new card keys (mjpki.impl.system) come
    from a PrimePairPool, distinct for primes*(primes-1)/2 generations (276 by default: more than any run makes).

    RuntimeError outside a running pytest test: a conformance run must judge a system that makes its own keys (ISS-5), so
    nothing but the suite's tests may shorten that. The card keys of mjpki.adapters.reference (made once per process) are
    left alone: they are cached beyond the block.
    """
    # Both: a test is running (the variable is inherited by child processes, so it is not enough alone) and this very
    # process is the suite's pytest session (a flag in memory, set by tests/conftest.py: no child has it).
    if "PYTEST_CURRENT_TEST" not in os.environ or not _SUITE_SESSION:
        raise RuntimeError("pooled_reference_keys() is for the suite's own tests only (run under pytest)")
    import mjpki.impl.se as se_module
    import mjpki.impl.system as system_module

    pool = PrimePairPool(_primes(primes))
    with _swapped_rsa((se_module, system_module), pool):
        yield pool


@contextlib.contextmanager
def _swapped_rsa(modules: tuple[Any, ...], pool: KeyPool | PrimePairPool) -> Iterator[None]:
    """While inside, the modules' `rsa.generate_private_key(65537, 2048)` takes from the pool (other sizes are generated)."""
    originals = [m.rsa for m in modules]
    real = originals[0]

    class _PooledRsa:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def generate_private_key(public_exponent: int, key_size: int, backend: Any = None) -> rsa.RSAPrivateKey:
            return pool.take() if (public_exponent, key_size) == (65537, 2048) else real.generate_private_key(public_exponent, key_size)

    for m in modules:
        m.rsa = _PooledRsa()
    try:
        yield
    finally:
        for m, original in zip(modules, originals, strict=True):
            m.rsa = original


def _key_from_primes(p: int, q: int) -> rsa.RSAPrivateKey:
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(
        p=p, q=q, d=d, dmp1=rsa.rsa_crt_dmp1(d, p), dmq1=rsa.rsa_crt_dmq1(d, q), iqmp=rsa.rsa_crt_iqmp(p, q), public_numbers=public
    )
    # The primes come from keys OpenSSL generated and checked; checking every pair again would cost ~100 ms a key.
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@cache
def _primes(count: int) -> tuple[int, ...]:
    # OpenSSL's RSA-2048 primes: 1024 bits with the top two set (so any product is 2048 bits) and p-1 prime to 65537.
    out: list[int] = []
    for key in _key_pool((count + 1) // 2):
        n = key.private_numbers()
        out += [n.p, n.q]
    return tuple(out[:count])


@cache
def _key_pool(size: int) -> tuple[rsa.RSAPrivateKey, ...]:
    return tuple(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(size))
