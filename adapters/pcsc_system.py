"""The reference system with its phones' SEs across PC/SC: the system-level suite over pcscd.

    pytest --jpki-adapter=mjpki.adapters.pcsc_system:factory
    mjpki run --adapter mjpki.adapters.pcsc_system:factory

Everything but the SEs is the reference implementation (mjpki.impl.system.ReferenceSystem: CA, records, TSMs, apps); every
APDU to a routed phone's SE goes through pcscd to a reader. `scripts/pcsc.sh start` gives the setup the defaults match:
pcscd with vpcd readers and `mjpki serve-se --phones 5`, one two-slot reader per SE of mjpki.scenarios.base_world():

    "mjpki SE-0001 00 00"   the official app's channel to SE-0001 (phone D1)   (the caller the SE sees: OFFICIAL_APP_HASH)
    "mjpki SE-0001 00 01"   another app's channel to the same SE               (OTHER_APP_HASH: ACL-1 must refuse it)

On a phone the access rule (ACL-1) is enforced per calling app; a PC/SC reader has no notion of an app, so each app is
a reader of its own and serve-se tells the SE which app each reader stands for.

Each new system starts from a factory-fresh SE: its SE-ID is read over SCP03 and must be the world's, then the
SEI-TSM deletes any JPKI applet left over by an earlier run (with its keys, certificates, PINs, R and access rule).

Environment (defaults in brackets):
- MJPKI_PCSC_READER_PREFIX  reader name before the SE-ID ["mjpki "]; the official app's reader is PREFIX+SE-ID+" 00 00",
                            the other app's PREFIX+SE-ID+" 00 01"
- MJPKI_PCSC_KEYS           the SEs' ISD SCP03 keys, hex, or `test` for GP's published test keys 40..4F (what
                            `serve-se --test-keys` and `--demo` give fresh SEs) [required: no default]
- MJPKI_PCSC_PHONES         comma-separated phone IDs routed over PC/SC [every phone]; the others get an in-process GpSe
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from mjpki.adapters.applet import AppletAdapter, AppletAdapterError
from mjpki.adapters.system import AdapterError
from mjpki.impl.isd_keys import KEYS_ENV, KeysError, keys_from_environment
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se_tsm import SeCommandError, Tsm
from mjpki.impl.serve_se import PHONE_READER_PREFIX
from mjpki.impl.system import OFFICIAL_APP_HASH, OTHER_APP_HASH, ReferenceSystem
from mjpki.spec.domain import PhoneId
from mjpki.spec.world import World

__all__ = ["PcscSeLink", "PcscSystem", "factory", "preflight", "settings_from_env", "ENV_PREFIX", "ENV_KEYS", "ENV_PHONES"]

ENV_PREFIX = "MJPKI_PCSC_READER_PREFIX"
ENV_KEYS = KEYS_ENV
ENV_PHONES = "MJPKI_PCSC_PHONES"

_OPEN: list[PcscSeLink] = []
"""Links of the systems this process built and has not closed: a harness that drops a diverged system without closing
it would otherwise leak PC/SC contexts until pcscd refuses new ones. The readers belong to one system at a time."""
_OPEN_LOCK = threading.Lock()


class PcscSeLink:
    """One SE reached through PC/SC readers, one reader per calling app; an mjpki.impl.system.SeLink."""

    def __init__(self, se_id: str, channels: Mapping[bytes | None, AppletAdapter]) -> None:
        self._se_id = se_id
        self.channels = dict(channels)

    def __repr__(self) -> str:
        return f"PcscSeLink({self._se_id!r}, {[c.name for c in self.channels.values()]})"

    @property
    def se_id(self) -> str:
        """The SE-ID, checked over SCP03 by `check_and_wipe`."""
        return self._se_id

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        """Send the APDU on the reader that stands for this caller; ValueError for a caller no reader stands for."""
        channel = self.channels.get(caller)
        if channel is None:
            raise ValueError(f"no PC/SC reader stands for caller {caller.hex() if caller else None} on {self._se_id}")
        return channel.transmit(apdu)

    def check_and_wipe(self, keys: StaticKeys) -> None:
        """Reset each reader's card, check every reader reaches this SE (SE-ID over SCP03), delete any JPKI applet (ISS-8)."""
        for caller, channel in self.channels.items():
            channel.reset()
            tsm = Tsm(channel.transmit, keys)
            try:
                tsm.open_isd()  # the ISD admits every caller; its SE-ID comes over an authenticated channel
                found = tsm.read_se_id_isd()
            except SeCommandError as exc:
                raise AdapterError(f"{channel.name}: cannot open SCP03 to the ISD ({exc}); are the keys ({ENV_KEYS}) the SE's?") from exc
            if found != self._se_id:
                raise AdapterError(f"{channel.name} holds SE {found!r}, not {self._se_id!r}: check the reader names ({ENV_PREFIX})")
            if caller == OFFICIAL_APP_HASH and tsm.applet_present():
                tsm.delete_applet()

    def close(self) -> None:
        """Close every reader (harmless twice)."""
        for channel in self.channels.values():
            channel.close()
        with _OPEN_LOCK:
            if self in _OPEN:
                _OPEN.remove(self)


class PcscSystem(ReferenceSystem):
    """A ReferenceSystem whose routed phones' SEs are PcscSeLinks; closing it also lets go of the readers."""

    def close(self) -> None:
        """Close the records and the readers."""
        try:
            super().close()
        finally:
            for link in self.ses.values():
                if isinstance(link, PcscSeLink):
                    link.close()


def _keys_from_env() -> StaticKeys:
    """The SEs' keys from $MJPKI_PCSC_KEYS; AdapterError, saying what to set, if it is unset or malformed."""
    try:
        found = keys_from_environment()
    except KeysError as exc:
        raise AdapterError(str(exc)) from exc
    if found is None:  # no fallback to the published test keys (issue 12, finding 2)
        raise AdapterError(f"${ENV_KEYS} must hold the SEs' ISD SCP03 keys (hex ENC||MAC||DEK), or `test` for GP's published test keys")
    return found.keys


def preflight() -> None:
    """The settings every system needs, checked before a run starts (mjpki.adapterspec.preflight): AdapterError if absent."""
    _keys_from_env()


def settings_from_env(world: World) -> tuple[str, StaticKeys, tuple[PhoneId, ...]]:
    """(reader prefix, SE keys, routed phones) from the environment; AdapterError if malformed."""
    prefix = os.environ.get(ENV_PREFIX, PHONE_READER_PREFIX)
    keys = _keys_from_env()
    known = [ph.id for ph in world.phones]
    wanted = os.environ.get(ENV_PHONES, "").strip()
    phones = tuple(p.strip() for p in wanted.split(",") if p.strip()) if wanted else tuple(known)
    unknown = [p for p in phones if p not in known]
    if unknown:
        raise AdapterError(f"{ENV_PHONES} names phones the world does not have: {unknown} (it has {known})")
    return prefix, keys, phones


def factory(world: World) -> PcscSystem:
    """A reference system for the world whose phones' SEs are the PC/SC readers named by their SE-IDs (see the module doc)."""
    from mjpki.adapters.pcsc import PcscApplet

    prefix, keys, phones = settings_from_env(world)
    with _OPEN_LOCK:
        stale, _OPEN[:] = list(_OPEN), []
    for old in stale:
        old.close()  # an earlier system still holds the readers: a new system takes them over
    links: dict[PhoneId, PcscSeLink] = {}
    try:
        for ph in world.phones:
            if ph.id not in phones:
                continue
            link = links[ph.id] = PcscSeLink(ph.se_id, {})
            with _OPEN_LOCK:
                _OPEN.append(link)
            for caller, slot in ((OFFICIAL_APP_HASH, "00 00"), (OTHER_APP_HASH, "00 01")):
                link.channels[caller] = PcscApplet(f"{prefix}{ph.se_id} {slot}")  # in the link at once: closed on failure
            link.check_and_wipe(keys)
        return PcscSystem(world, isd_keys=keys, se_links=links)
    except (AppletAdapterError, SeCommandError) as exc:
        for link in links.values():
            link.close()
        raise AdapterError(f"PC/SC system for phones {list(phones)}: {exc}") from exc
    except BaseException:
        for link in links.values():
            link.close()
        raise
