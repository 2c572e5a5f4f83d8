"""The harness reads each phone's SE itself, over APDUs, instead of trusting the slots `observation()` reports.

A system adapter that offers the optional `se_apdu(phone, apdu)` (mjpki.adapters.system.SeApdu; over the wire the
capability `se_apdu`) passes one command APDU to the SE of a phone, as the TSMs reach it through the official app, and
returns the response (data || SW). Given the SEs' SCP03 keys (`mjpki run --se-keys FILE`, or GlobalPlatform's test keys
with `--se-test-keys`, never by default), the lockstep (mjpki.lockstep) then reads a phone's SE after every step that may
have touched it: SELECT the JPKI applet, INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to its APSD at level 33 (mjpki's
SCP03 host), GET SLOT STATUS, parsed with the applet model's code (mjpki.spec.apdu.abstraction.parse_slot_status), never
the reference implementation's. The invariants judge the slots read; a self-report that differs is a divergence naming
the SE requirement; an SE that cannot be read (a bad status word, a malformed answer, an R-MAC that does not verify) is a
reported failure of that step.

The keys file holds one line per SE: `SE-ID HEX`, HEX being one AES key used as ENC, MAC and DEK or the three joined
(as serve-se's --keys-file), or `* HEX` for every SE not named; `#` starts a comment. Like every keys file of mjpki it
must be a regular file only its owner can read (mode 0600).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from mjpki.impl.isd_keys import TEST_KEYS, KeysError, parse_keys, read_owner_only
from mjpki.impl.scp03 import SCP03Error, SCP03Host, StaticKeys
from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.abstraction import SeView, SlotStatusError, parse_slot_status
from mjpki.spec.domain import PhoneId, SEId
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.observe import Observation, SlotView
from mjpki.spec.state import State
from mjpki.spec.world import World

__all__ = [
    "CAPABILITY",
    "SE_REQS",
    "SE_KEYS_ENV",
    "SeKeys",
    "TEST_SE_KEYS",
    "SeReadError",
    "SeFinding",
    "SeReader",
    "SeKeyedFactory",
    "parse_se_keys",
    "read_se_keys_file",
    "se_keys_for_run",
    "se_keys_from_reference_environment",
    "read_se",
    "slot_views",
    "compare_slots",
]

CAPABILITY: Final = "se_apdu"
"""The optional adapter method, and the wire capability, that passes one APDU to a phone's SE."""
SE_REQS: Final = frozenset({"ISS-5", "ISS-6", "PIN-2", "PIN-3", "MCH-4", "DEL-1", "REV-1"})
"""The requirements whose checks read the SE slots (invariants key_only_in_its_se, pin_counter_consistent,
locked_pin_admits_no_key_use, deletion_touches_only_its_target, and the slot comparison below): judged on the slots read
over APDUs when the harness reads them, on self-report otherwise."""
SE_KEYS_ENV: Final = "MJPKI_REFERENCE_SE_KEYS"
"""Where the reference system (mjpki.adapters.reference) finds its SEs' keys: a keys file, or "test" for GP's test keys."""
_MAX_FILE: Final = 64 * 1024
_SW_OK: Final = b"\x90\x00"
_SW_NOT_FOUND: Final = b"\x6a\x82"
_LEVEL: Final = 0x33
"""C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION: GET SLOT STATUS is read at level 33 (docs/apdu-interface.md, SCP03)."""
_SELECT_JPKI: Final = bytes([0x00, 0xA4, 0x04, 0x0C, len(I.JPKI_AID)]) + I.JPKI_AID
_GET_SLOT_STATUS: Final = bytes.fromhex("803E000000")


@dataclass(frozen=True, slots=True, kw_only=True)
class SeKeys:
    """The SEs' SCP03 keys the harness reads them with: per SE-ID, and a default for the rest."""

    by_se: FrozenMap[SEId, StaticKeys] = field(default_factory=FrozenMap)
    default: StaticKeys | None = None
    source: str
    """Where they came from, for messages (a file name, --se-test-keys); never the keys."""
    test: bool = False
    """GlobalPlatform's published test keys, asked for in words (--se-test-keys, MJPKI_REFERENCE_SE_KEYS=test)."""

    def for_se(self, se_id: SEId) -> StaticKeys | None:
        """The keys of this SE, or None if none are given for it."""
        return self.by_se.get(se_id, self.default)


TEST_SE_KEYS: Final = SeKeys(default=TEST_KEYS, source="GlobalPlatform's test keys (--se-test-keys)", test=True)
"""Every SE with GP's test keys 40..4F: for the reference and test stacks only, and only when asked for."""


class SeReadError(Exception):
    """An SE that could not be read: what the harness sent and what came back (no secrets)."""


def parse_se_keys(text: str, *, source: str) -> SeKeys:
    """`SE-ID HEX` lines (`* HEX`: every other SE; `#` comments) as SeKeys; KeysError naming the line that is wrong."""
    by_se: dict[SEId, StaticKeys] = {}
    default: StaticKeys | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _sep, hexkeys = line.partition(" ")
        if not hexkeys.strip():
            raise KeysError(f"{source} line {number}: write SE-ID HEX (or * HEX for every other SE)")
        try:
            keys = parse_keys(hexkeys)
        except ValueError as exc:
            raise KeysError(f"{source} line {number}: {exc}") from None
        if name == "*":
            if default is not None:
                raise KeysError(f"{source} line {number}: a second * line")
            default = keys
        elif name in by_se:
            raise KeysError(f"{source} line {number}: {name} is given twice")
        else:
            by_se[name] = keys
    if not by_se and default is None:
        raise KeysError(f"{source} names no SE: write one SE-ID HEX line per SE (or * HEX)")
    return SeKeys(by_se=FrozenMap(by_se), default=default, source=source)


def read_se_keys_file(path: str | os.PathLike[str]) -> SeKeys:
    """The SE keys from a regular file only its owner can read; KeysError saying what is wrong otherwise."""
    data = read_owner_only(path, what="SE keys file", limit=_MAX_FILE)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeysError(f"SE keys file {path} is not ASCII text") from None
    return parse_se_keys(text, source=str(path))



def se_keys_for_run(path: str | None, *, test_keys: bool, python_adapter: bool) -> SeKeys | None:
    """The keys a run reads the SEs with (--se-keys FILE or --se-test-keys), or None: the SE slots are judged on self-report.

    A Python adapter that mjpki starts (the reference by default) is given the same keys in $MJPKI_REFERENCE_SE_KEYS, so
    the reference's SEs hold them; a --shim or --url system holds its own. KeysError (a ValueError) when unusable.
    """
    if path and test_keys:
        raise KeysError("give the SE keys file or the test keys, not both")
    if path:
        keys, value = read_se_keys_file(path), os.path.abspath(path)
    elif test_keys:
        keys, value = TEST_SE_KEYS, "test"
    else:
        return None
    if python_adapter:
        os.environ.setdefault(SE_KEYS_ENV, value)  # one the caller set already wins: it names the reference's own keys
    return keys


def se_keys_from_reference_environment(environ: Mapping[str, str] | None = None) -> SeKeys | None:
    """$MJPKI_REFERENCE_SE_KEYS: a keys file, "test" for GP's test keys, unset for none; KeysError when unusable."""
    text = (os.environ if environ is None else environ).get(SE_KEYS_ENV, "").strip()
    if not text:
        return None
    if text.lower() == "test":
        return TEST_SE_KEYS
    return read_se_keys_file(text)


def _sw(response: bytes, what: str) -> bytes:
    if len(response) < 2:
        raise SeReadError(f"{what}: an answer of {len(response)} bytes has no status word")
    return response[-2:]


def read_se(transmit: Callable[[bytes], bytes], keys: StaticKeys) -> SeView:
    """The SE's JPKI facts: SELECT the applet (6A82: none installed), SCP03 to its APSD at level 33, GET SLOT STATUS.

    SeReadError for any answer the interface does not give: another status word, a card cryptogram or R-MAC that does not
    verify (wrong keys, or a tampered answer), slot status data that does not parse.
    """
    sw = _sw(transmit(_SELECT_JPKI), "SELECT JPKI")
    if sw == _SW_NOT_FOUND:
        return SeView()
    if sw != _SW_OK:
        raise SeReadError(f"SELECT JPKI answered {sw.hex().upper()}")
    host = SCP03Host(keys)
    response = transmit(host.initialize_update())
    sw = _sw(response, "INITIALIZE UPDATE")
    if sw != _SW_OK:
        raise SeReadError(f"INITIALIZE UPDATE to the applet's APSD answered {sw.hex().upper()}")
    try:
        host.process_initialize_update_response(response)
    except (SCP03Error, ValueError) as exc:
        raise SeReadError(f"INITIALIZE UPDATE: {exc} (are the SE keys given the ones this SE holds?)") from None
    sw = _sw(transmit(host.external_authenticate(_LEVEL)), "EXTERNAL AUTHENTICATE")
    if sw != _SW_OK:
        raise SeReadError(f"EXTERNAL AUTHENTICATE at level {_LEVEL:02X} answered {sw.hex().upper()}")
    response = transmit(host.wrap(_GET_SLOT_STATUS))
    _sw(response, "GET SLOT STATUS")
    try:
        plain = host.unwrap(response)
    except (SCP03Error, ValueError, RuntimeError) as exc:
        raise SeReadError(f"GET SLOT STATUS: {exc}") from None
    if plain[-2:] != _SW_OK:
        raise SeReadError(f"GET SLOT STATUS answered {plain[-2:].hex().upper()}")
    try:
        return parse_slot_status(plain[:-2])
    except SlotStatusError as exc:
        raise SeReadError(f"GET SLOT STATUS: {exc}") from None


def slot_views(world: World, phone: PhoneId, se: SeView, obs: Observation) -> tuple[SlotView, ...]:
    """The lifecycle slots of an SE read over APDUs: those with a key, a certificate and a PIN status (ASM-SE-SLOT-KEY).

    The key is the one the slot's certificate certifies in obs ("?" for a certificate obs does not hold: the invariant
    key_only_in_its_se names it).
    """
    se_id = world.phone(phone).se_id
    out: list[SlotView] = []
    for kind in I.KIND_ORDER:
        s = se.slots.get(kind)
        if s is None or not s.key or s.cert_serial is None or s.pin_status is None:
            continue
        cert = obs.cert(s.cert_serial)
        key = cert.key if cert is not None and cert.key is not None else "?"
        view = SlotView(
            phone=phone, se_id=se_id, kind=kind, key=key, cert_serial=s.cert_serial, pin_status=s.pin_status, tries_left=s.tries_left
        )
        out.append(view)
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class SeFinding:
    """Where a phone's self-reported slots differ from its SE as read, with the requirements the difference is about."""

    phone: PhoneId
    reqs: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.message} [{', '.join(self.reqs)}]"


def compare_slots(phone: PhoneId, reported: tuple[SlotView, ...], read: tuple[SlotView, ...]) -> list[SeFinding]:
    """What observation() says about a phone's slots that its SE, read over APDUs, does not hold."""
    out: list[SeFinding] = []
    mine = {s.kind: s for s in reported if s.phone == phone}
    got = {s.kind: s for s in read}
    for kind in I.KIND_ORDER:
        r, g = mine.get(kind), got.get(kind)
        where = f"{phone} {kind.value} slot"
        if r is None and g is None:
            continue
        if g is None:
            assert r is not None
            out.append(SeFinding(phone=phone, reqs=("ISS-5", "ISS-6", "DEL-1"), message=f"{where}: observation() reports "
                                 f"certificate {r.cert_serial}, the SE holds none"))  # fmt: skip
            continue
        if r is None:
            out.append(SeFinding(phone=phone, reqs=("MCH-4",), message=f"{where}: the SE holds certificate {g.cert_serial} "
                                 "with its key, observation() reports none"))  # fmt: skip
            continue
        if r.cert_serial != g.cert_serial:
            out.append(SeFinding(phone=phone, reqs=("ISS-6", "MCH-4"), message=f"{where}: observation() reports certificate "
                                 f"{r.cert_serial}, the SE holds {g.cert_serial}"))  # fmt: skip
        elif r.key != g.key:
            out.append(SeFinding(phone=phone, reqs=("ISS-5", "ISS-6"), message=f"{where}: observation() reports key {r.key}, "
                                 f"certificate {g.cert_serial} in the SE certifies {g.key}"))  # fmt: skip
        if r.pin_status is not g.pin_status:
            out.append(SeFinding(phone=phone, reqs=("PIN-2", "PIN-3"), message=f"{where}: observation() reports PIN "
                                 f"{r.pin_status.value}, the SE {g.pin_status.value}"))  # fmt: skip
        if r.tries_left != g.tries_left:
            out.append(SeFinding(phone=phone, reqs=("PIN-3",), message=f"{where}: observation() reports {r.tries_left} PIN tries "
                                 f"left, the SE {g.tries_left}"))  # fmt: skip
    return out


def _by_phone(slots: tuple[SlotView, ...]) -> dict[PhoneId, tuple[SlotView, ...]]:
    out: dict[PhoneId, list[SlotView]] = {}
    for s in slots:
        out.setdefault(s.phone, []).append(s)
    return {p: tuple(v) for p, v in out.items()}


class SeReader:
    """One lockstep run's reading of a system's SEs: which to read after a step, the slots last read, the self-report compared.

    An SE is read again only when a step may have touched it: the step names its phone, the spec's SE of that phone
    changed, or the system's own report of it changed; and every `every`-th step and at the run's end, all of them (a
    step that touches an SE it should not, and says nothing, is found there at the latest).
    """

    def __init__(self, world: World, keys: SeKeys, transmit: Callable[[PhoneId, bytes], bytes], *, every: int = 16) -> None:
        self.world = world
        self.keys = keys
        self._transmit = transmit
        self.every = every
        self.reads = 0
        """SEs read so far (each: SELECT, SCP03, GET SLOT STATUS)."""
        self._read: dict[PhoneId, tuple[SlotView, ...]] = {}
        self._spec: dict[PhoneId, object] = {}
        self._reported: dict[PhoneId, tuple[SlotView, ...]] = {}
        self._last: tuple[Observation, Observation] | None = None

    def due(self, state: State, obs: Observation, *, index: int, action_phone: PhoneId | None, full: bool) -> list[PhoneId]:
        """The phones whose SE to read now."""
        phones = [ph.id for ph in self.world.phones]
        if full or index < 0 or (index > 0 and index % self.every == 0):
            return phones
        reported = _by_phone(obs.slots)
        return [
            p for p in phones
            if p == action_phone or p not in self._read or self._spec.get(p) != state.phones[p].se
            or self._reported.get(p, ()) != reported.get(p, ())
        ]  # fmt: skip

    def observe(
        self, state: State, obs: Observation, *, index: int, action_phone: PhoneId | None, full: bool = False
    ) -> tuple[Observation, list[SeFinding]]:
        """obs with its slots replaced by those read over APDUs, and where the self-report differs; SeReadError if an SE
        cannot be read."""
        phones = self.due(state, obs, index=index, action_phone=action_phone, full=full)
        if not phones and self._last is not None and self._last[0] is obs:
            return self._last[1], []  # nothing to read and the same report: the same observation as last time
        reported = _by_phone(obs.slots)
        found: list[SeFinding] = []
        for phone in phones:
            se_id = self.world.phone(phone).se_id
            keys = self.keys.for_se(se_id)
            if keys is None:
                raise SeReadError(f"no SCP03 keys for {se_id} (phone {phone}) in {self.keys.source}")
            try:
                se = read_se(lambda apdu, p=phone: self._transmit(p, apdu), keys)
            except SeReadError as exc:
                raise SeReadError(f"{phone} ({se_id}): {exc}") from None
            self.reads += 1
            self._read[phone] = slot_views(self.world, phone, se, obs)
            self._spec[phone] = state.phones[phone].se
        for ph in self.world.phones:
            self._reported[ph.id] = reported.get(ph.id, ())
            if ph.id in self._read:
                found += compare_slots(ph.id, self._reported[ph.id], self._read[ph.id])
        # Slots of phones the world does not have stay as reported: the invariants name them.
        known = {ph.id for ph in self.world.phones}
        strays = tuple(s for s in obs.slots if s.phone not in known)
        judged = replace(obs, slots=tuple(s for ph in self.world.phones for s in self._read.get(ph.id, ())) + strays)
        self._last = (obs, judged)
        return judged, found


class SeKeyedFactory:
    """An AdapterFactory carrying the SEs' keys: the lockstep reads the SEs of the systems it builds over APDUs."""

    def __init__(self, factory: Callable[[World], object], keys: SeKeys) -> None:
        self.factory = factory
        self.se_keys = keys
        self.__qualname__ = getattr(factory, "__qualname__", repr(factory))

    def __call__(self, world: World) -> object:
        """The wrapped factory's system."""
        return self.factory(world)

    def __getattr__(self, name: str) -> object:
        """What the wrapped factory says about itself (e.g. a wire factory's `enforces_deadline`, its `name`)."""
        if name.startswith("__") or name in ("factory", "se_keys"):
            raise AttributeError(name)
        return getattr(self.factory, name)
