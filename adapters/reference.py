"""The reference implementation (impl/) as a system-level adapter: the suite's default system under test.

    mjpki run --adapter mjpki.adapters.reference:factory
    pytest --jpki-adapter=mjpki.adapters.reference:factory
    mjpki serve-system --adapter mjpki.adapters.reference:served   # the default: CRLs and OCSP served too

`ReferenceSystem` implements `SystemAdapter` itself; this module only names the factory.
Every system starts with fresh records (in memory, or in a file through `factory_with_db`);
the CA and card RSA keys are generated once per process and reused, because key
generation dominates start-up and key material carries no lifecycle state.

Each system's SEs get random SCP03 keys, unless $MJPKI_REFERENCE_SE_KEYS names a keys file (`SE-ID HEX` lines,
mjpki.se_read) or says `test` (GlobalPlatform's test keys): then they hold those, and the suite, given the same keys
(`mjpki run --se-keys FILE` / `--se-test-keys`, which set it for a reference they start), reads them over `se_apdu`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from mjpki.adapters.artefacts import Artefacts
from mjpki.adapters.system import AdapterFactory
from mjpki.impl.ca import JpkiCa, PublicationPoints
from mjpki.impl.publish_server import ConfinedSystem, PublishServer
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.system import ReferenceSystem
from mjpki.spec.actions import Action
from mjpki.spec.domain import Kind
from mjpki.spec.observe import Observation
from mjpki.spec.outcome import Outcome
from mjpki.spec.world import World

__all__ = ["factory", "factory_with_db", "factory_with_points", "served", "se_keys_for", "ServedSystem"]


@cache
def _ca() -> JpkiCa:
    return JpkiCa.generate()


@cache
def _card_key(person: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _keys(world: World) -> dict[str, rsa.RSAPrivateKey]:
    return {p.id: _card_key(p.id) for p in world.persons if p.has_card}


def se_keys_for(world: World) -> dict[str, StaticKeys]:
    """The SEs' keys from $MJPKI_REFERENCE_SE_KEYS (mjpki.se_read), by SE-ID; empty when it is unset (random keys)."""
    from mjpki.se_read import se_keys_from_reference_environment

    given = se_keys_from_reference_environment()
    if given is None:
        return {}
    return {ph.se_id: keys for ph in world.phones if (keys := given.for_se(ph.se_id)) is not None}


def _own(ca: JpkiCa) -> JpkiCa:
    """The CA's keys and certificates with a set of issued serials of the system's own: systems built at the same time
    (concurrent sessions of `mjpki serve-system`) would otherwise allocate the same serials from the shared set (CA-2)."""
    return JpkiCa(signing=ca.ca(Kind.SIGNING), auth=ca.ca(Kind.AUTH), points=ca.points)


def factory(world: World) -> ReferenceSystem:
    """A fresh reference system for the world, records in an in-memory SQLite database."""
    return ReferenceSystem(world, ca=_own(_ca()), card_keys=_keys(world), se_keys=se_keys_for(world))


def factory_with_points(points: PublicationPoints) -> AdapterFactory:
    """A factory whose systems' certificates name these CRL and OCSP URLs (a served system, mjpki.impl.publish_server)."""
    base = _ca()
    # The same CA keys, certificates re-made to name the CRL over themselves at these points (key generation is the slow part).
    ca = JpkiCa.generate(signing_key=base.ca(Kind.SIGNING).key, auth_key=base.ca(Kind.AUTH).key, points=points)

    def make(world: World) -> ReferenceSystem:
        return ReferenceSystem(world, ca=_own(ca), card_keys=_keys(world), se_keys=se_keys_for(world))

    return make


def factory_with_db(db_path: str | Path) -> AdapterFactory:
    """A factory whose systems keep their records in the SQLite file db_path (removed first: each system starts fresh)."""
    path = Path(db_path)

    def make(world: World) -> ReferenceSystem:
        path.unlink(missing_ok=True)
        return ReferenceSystem(world, db_path=path, ca=_own(_ca()), card_keys=_keys(world), se_keys=se_keys_for(world))

    return make


class ServedSystem:
    """A reference system whose CRL distribution points and OCSP responder are live on 127.0.0.1, at the URLs its certificates name.

    Each system gets a server of its own on a free port, so concurrent sessions of `mjpki serve-system` never mix their
    publications; a relying party (openssl, a browser, a verifier under test) reaches them from the certificates alone.
    """

    def __init__(self, world: World) -> None:
        self.server = PublishServer()
        try:
            # SQLite connections belong to the thread that opened them; the server's threads call the system too.
            self._system = ConfinedSystem(lambda: factory_with_points(self.server.points)(world))
        except BaseException:
            self.server.close()
            raise
        self.server.serve(self._system)

    def step(self, action: Action) -> Outcome:
        """The reference's step."""
        return self._system.step(action)

    def observation(self) -> Observation:
        """The reference's observation."""
        return self._system.observation()

    def artefacts(self) -> Artefacts:
        """The reference's CA certificates, issued certificates and current CRLs (the same the server serves)."""
        return self._system.artefacts()

    def ocsp(self, request: bytes) -> bytes:
        """The reference's OCSP answer (the same the server gives)."""
        return self._system.ocsp(request)

    def se_apdu(self, phone: str, apdu: bytes) -> bytes:
        """The reference's SE answer to one APDU (mjpki.adapters.system.SeApdu)."""
        return self._system.se_apdu(phone, apdu)

    def close(self) -> None:
        """Stop serving, then close the system."""
        try:
            self.server.close()
        finally:
            self._system.close()


def served(world: World) -> ServedSystem:
    """A fresh reference system with its CRLs and OCSP responder served over HTTP on 127.0.0.1 (`mjpki serve-system`'s default)."""
    return ServedSystem(world)
