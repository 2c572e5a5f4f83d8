"""The reference implementation (impl/) as a system-level adapter: the suite's default system under test.

    mjpki run --adapter mjpki.adapters.reference:factory
    pytest --jpki-adapter=mjpki.adapters.reference:factory

`ReferenceSystem` implements `SystemAdapter` itself; this module only names the factory.
Every system starts with fresh records (in memory, or in a file through `factory_with_db`);
the CA and card RSA keys are generated once per process and reused, because key
generation dominates start-up and key material carries no lifecycle state.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from mjpki.adapters.system import AdapterFactory
from mjpki.impl.ca import JpkiCa
from mjpki.impl.system import ReferenceSystem
from mjpki.spec.world import World

__all__ = ["factory", "factory_with_db"]


@cache
def _ca() -> JpkiCa:
    return JpkiCa.generate()


@cache
def _card_key(person: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _keys(world: World) -> dict[str, rsa.RSAPrivateKey]:
    return {p.id: _card_key(p.id) for p in world.persons if p.has_card}


def factory(world: World) -> ReferenceSystem:
    """A fresh reference system for the world, records in an in-memory SQLite database."""
    return ReferenceSystem(world, ca=_ca(), card_keys=_keys(world))


def factory_with_db(db_path: str | Path) -> AdapterFactory:
    """A factory whose systems keep their records in the SQLite file db_path (removed first: each system starts fresh)."""
    path = Path(db_path)

    def make(world: World) -> ReferenceSystem:
        path.unlink(missing_ok=True)
        return ReferenceSystem(world, db_path=path, ca=_ca(), card_keys=_keys(world))

    return make
