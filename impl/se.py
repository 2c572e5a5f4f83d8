"""The phone's GlobalPlatform secure element (GP-SE) as an APDU processor: issuer security domain and JPKI applet.

`GpSe.transmit(apdu, caller=...)` takes a command APDU's bytes and returns the response's bytes (data || SW). Bad input
never raises: it gets an ISO 7816 status word. docs/apdu-interface.md is the normative description of the interface; the
constants, codecs and command builders live in `mjpki.impl.se_apdu`, a TSM client in `mjpki.impl.se_tsm`.

What is in it:
- the issuer security domain (ISD, A0 00 00 01 51 00 00 00): SCP03 (mjpki.impl.scp03.SCP03Card), INSTALL of the JPKI applet with
  its application-provider security domain (APSD), DELETE, STORE DATA of access rules (ACL-1), GET STATUS, GET DATA of the SE-ID;
- the JPKI applet (D3 92 F0 00 26 01 00 00 00 01), answering like the My Number card's JPKI application (the files and
  commands OpenSC's card-jpki.c uses) plus proprietary TSM commands accepted only inside SCP03 opened to the applet;
- access control (ACL-1): with a `caller` (SHA-256 of the calling app's signing certificate) the applet is reachable only if
  the ISD's access rules list that hash; `caller=None` is a contact/contactless reader, allowed iff `reader_access`.

Persistence: `snapshot()` returns the SE's whole non-volatile memory (it stands for the chip's EEPROM) as JSON-able data:
keys, certificates, PIN values and counters, applet presence, access rules, the pending R, SCP03 sequence counters.
`GpSe.from_snapshot()` / `restore()` load it. Private keys exist only there and in this object: no APDU returns them.
Volatile state (selection, current EF, PIN-verified flags, secure channel sessions, pending output) is lost on
`power_reset()`, as on a card reset.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from mjpki.impl.scp03 import SCP03Card, SCP03Error, SecureMessagingError, StaticKeys
from mjpki.impl.se_apdu import (
    APSD_AID,
    EF_CA_CERT,
    EF_CERT,
    EF_KEY,
    EF_PIN,
    EF_TOKEN_INFO,
    INS_CHANGE_REFERENCE_DATA,
    INS_COMPUTE_DIGITAL_SIGNATURE,
    INS_DELETE,
    INS_DELETE_KEYS,
    INS_GENERATE_KEY_PAIR,
    INS_GENERATE_R,
    INS_GET_CHALLENGE,
    INS_GET_DATA,
    INS_GET_OUTPUT,
    INS_GET_SE_ID,
    INS_GET_SLOT_STATUS,
    INS_GET_STATUS,
    INS_INSTALL,
    INS_MANAGE_CHANNEL,
    INS_READ_BINARY,
    INS_SELECT,
    INS_SET_TEMPORARY_PIN,
    INS_STORE_DATA,
    INS_UNBLOCK_AND_SET_PIN,
    INS_VERIFY,
    INS_WRITE_CERTIFICATE,
    ISD_AID,
    JPKI_AID,
    JPKI_ELF_AID,
    JPKI_MODULE_AID,
    KIND_BIT,
    KIND_REF,
    MAX_BLOCK,
    MAX_CERT_LEN,
    MAX_PIN_LEN,
    MAX_SE_ID_LEN,
    MAX_SIGN_INPUT,
    REF_KIND,
    SW_AUTH_BLOCKED,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS,
    SW_INCOMPATIBLE_FILE,
    SW_INCORRECT_DATA,
    SW_INS_NOT_SUPPORTED,
    SW_LOGICAL_CHANNEL_NOT_SUPPORTED,
    SW_MORE_DATA,
    SW_NO_CURRENT_EF,
    SW_NOT_ENOUGH_MEMORY,
    SW_NOT_FOUND,
    SW_OK,
    SW_REFERENCE_DATA_NOT_USABLE,
    SW_REFERENCED_DATA_NOT_FOUND,
    SW_SECURITY_STATUS,
    SW_UNKNOWN,
    SW_WRONG_LENGTH,
    SW_WRONG_OFFSET,
    SW_WRONG_P1P2,
    TAG_ACCESS_RULE,
    TAG_AID,
    TAG_APP_HASH,
    TAG_KEY_REF,
    TAG_NEW_PIN,
    TAG_R,
    TAG_SE_ID,
    TAG_SERIAL,
    TAG_SLOT,
    TAG_TEMP_PIN,
    TOKEN_INFO,
    TSM_INS,
    ApduError,
    CommandApdu,
    SeStatus,
    SlotStatus,
    encode_slot_status,
    parse_tlv,
    pin_well_formed,
    sw_wrong_pin,
    tlv,
)
from mjpki.spec.domain import Kind, PinStatus

__all__ = ["GpSe", "SNAPSHOT_FORMAT", "TSM_MIN_SECURITY_LEVEL"]

SNAPSHOT_FORMAT: Final = "mjpki.gpse/1"
TSM_MIN_SECURITY_LEVEL: Final = 0x03
"""ISD card management and the applet's TSM commands need a session with at least C-MAC and C-DECRYPTION."""

_LOG = logging.getLogger(__name__)
_ISD: Final = "isd"
_JPKI: Final = "jpki"
_MAX_RULE_HASHES: Final = 64
_HASH_LEN: Final = 32
_R_LEN: Final = 32
_RSA_BITS: Final = 2048
_RSA_EXPONENT: Final = 65537

# DER DigestInfo prefixes (RFC 8017 section 9.2 note 1): these inputs are signed through `cryptography`'s Prehashed path.
_DIGEST_INFO: Final = (
    (bytes.fromhex("3021300906052b0e03021a05000414"), hashes.SHA1()),
    (bytes.fromhex("302d300d06096086480165030402040500041c"), hashes.SHA224()),
    (bytes.fromhex("3031300d060960864801650304020105000420"), hashes.SHA256()),
    (bytes.fromhex("3041300d060960864801650304020205000430"), hashes.SHA384()),
    (bytes.fromhex("3051300d060960864801650304020305000440"), hashes.SHA512()),
)

# GET STATUS entries: life cycle state and privileges (GPC 11.1.1, 11.1.2).
_LC_SELECTABLE: Final = 0x07
_LC_SD_PERSONALIZED: Final = 0x0F
_PRIV_ISD: Final = bytes.fromhex("9EFE80")
_PRIV_SD: Final = bytes.fromhex("800000")
_PRIV_APP: Final = bytes.fromhex("000000")


class _Sw(Exception):
    """Leave a command handler early with this status word."""

    def __init__(self, sw: bytes) -> None:
        super().__init__(sw.hex())
        self.sw = sw


Response = tuple[bytes, bytes]
"""A handler's answer: response data and status word."""


# --- persistent state --------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Slot:
    """One kind's data in the applet: key pair, certificate, PIN (pin_status None: no PIN at all)."""

    key: rsa.RSAPrivateKey | None = None
    cert: bytes | None = None
    cert_serial: int | None = None
    pin: bytes | None = None
    pin_status: PinStatus | None = None
    tries_left: int = 0
    temp_pin: bytes | None = None
    temp_tries_left: int = 0


@dataclass(slots=True, kw_only=True)
class _Applet:
    """The JPKI applet instance and its APSD: SCP03 endpoint, pending R, CA certificates, one slot per kind."""

    card: SCP03Card
    apsd_keys: StaticKeys
    max_tries: dict[Kind, int]
    """The PIN retry limits, set by INSTALL (C9 parameters) or else the SE's defaults."""
    r: bytes | None = None
    ca_certs: dict[Kind, bytes] = field(default_factory=dict)
    slots: dict[Kind, _Slot] = field(default_factory=lambda: {kind: _Slot() for kind in Kind})


@dataclass(slots=True, kw_only=True)
class _Chain:
    """Blocks of a chained command (STORE DATA, WRITE CERTIFICATE) received so far."""

    ins: int
    p1: int
    next_block: int = 0
    data: bytes = b""


# --- the SE ------------------------------------------------------------------------------------------------------


class GpSe:
    """A GP-SE with an ISD and (once installed) the JPKI applet; `transmit` is its only way in from outside Python."""

    def __init__(
        self,
        se_id: str,
        isd_keys: StaticKeys,
        *,
        apsd_keys: StaticKeys | None = None,
        auth_pin_tries: int = 3,
        signing_pin_tries: int = 5,
        reader_access: bool = True,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if not isinstance(se_id, str) or not 1 <= len(se_id.encode()) <= MAX_SE_ID_LEN:
            raise ValueError(f"se_id must be a str of 1..{MAX_SE_ID_LEN} UTF-8 bytes, got {se_id!r}")
        for name, keys in (("isd_keys", isd_keys), ("apsd_keys", apsd_keys)):
            if keys is not None and not isinstance(keys, StaticKeys):
                raise TypeError(f"{name} must be an mjpki.impl.scp03.StaticKeys, got {type(keys).__name__}")
        for name, tries in (("auth_pin_tries", auth_pin_tries), ("signing_pin_tries", signing_pin_tries)):
            if not isinstance(tries, int) or not 1 <= tries <= 15:
                raise ValueError(f"{name} must be 1..15 (a 63Cx status word carries it in one nibble), got {tries!r}")
        self._se_id = se_id
        self._isd_keys = isd_keys
        self._apsd_keys = isd_keys if apsd_keys is None else apsd_keys  # documented: the APSD may share the ISD's keys
        self._max_tries = {Kind.AUTH: auth_pin_tries, Kind.SIGNING: signing_pin_tries}
        self._reader_access = bool(reader_access)
        self._random_bytes = random_bytes
        self._isd_card = SCP03Card(isd_keys, aid=ISD_AID)
        self._access_rules: dict[bytes, tuple[bytes, ...]] = {}
        self._applet: _Applet | None = None
        self._lock = threading.RLock()
        self._generation = 0
        """Commands (and resets) processed so far: a reader may keep what it read while this has not moved."""
        self._selected = _ISD
        self._current_ef: int | None = None
        self._verified: set[Kind] = set()
        self._output: bytes | None = None
        self._chain: _Chain | None = None

    def __repr__(self) -> str:
        return f"GpSe(se_id={self._se_id!r}, applet={self._applet is not None})"

    # --- public API ----------------------------------------------------------------------------------------------

    @property
    def se_id(self) -> str:
        """The SE-ID (SE識別ID)."""
        return self._se_id

    @property
    def generation(self) -> int:
        """A number that changes with every command processed, reset or restore: unchanged, nothing in the SE changed."""
        return self._generation

    @property
    def reader_access(self) -> bool:
        """Whether a reader with no app (`caller=None`, e.g. PC/SC) may reach the JPKI applet."""
        return self._reader_access

    @property
    def applet_present(self) -> bool:
        """Whether the JPKI applet is installed."""
        return self._applet is not None

    @property
    def access_rules(self) -> Mapping[bytes, tuple[bytes, ...]]:
        """AID -> allowed app-certificate SHA-256 hashes, as loaded by STORE DATA (a copy)."""
        return dict(self._access_rules)

    def max_tries(self, kind: Kind) -> int:
        """The retry limit of the PIN of this kind: the installed applet's, else the default a new installation gets."""
        applet = self._applet
        return (applet.max_tries if applet is not None else self._max_tries)[kind]

    def status(self) -> SeStatus:
        """The facts GET SLOT STATUS reports (applet, R pending, per kind key/certificate serial/PIN status/tries)."""
        with self._lock:
            applet = self._applet
            if applet is None:
                empty = {
                    k: SlotStatus(kind=k, key_present=False, cert_serial=None, pin_status=None, tries_left=0, temp_tries_left=0)
                    for k in Kind
                }
                return SeStatus(applet=False, r_pending=False, slots=empty)
            slots = {
                kind: SlotStatus(
                    kind=kind,
                    key_present=s.key is not None,
                    cert_serial=s.cert_serial,
                    pin_status=s.pin_status,
                    tries_left=s.tries_left,
                    temp_tries_left=s.temp_tries_left,
                )
                for kind, s in applet.slots.items()
            }
            return SeStatus(applet=True, r_pending=applet.r is not None, slots=slots)

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        """Process one command APDU; return response data || SW. Malformed input gets a status word, never an exception."""
        if not isinstance(apdu, bytes | bytearray | memoryview):
            raise TypeError(f"apdu must be bytes, got {type(apdu).__name__}")
        if caller is not None and (not isinstance(caller, bytes | bytearray) or len(caller) != _HASH_LEN):
            raise ValueError("caller must be None (a reader) or the 32-byte SHA-256 of the calling app's signing certificate")
        with self._lock:
            self._generation += 1
            try:
                return self._process(bytes(apdu), None if caller is None else bytes(caller))
            except Exception:  # a defect, not bad input: answer like a card that hit an internal error
                _LOG.exception("GpSe %s: internal error on APDU %s", self._se_id, bytes(apdu).hex())
                self._close_sessions()
                return SW_UNKNOWN

    def power_reset(self) -> None:
        """A card reset: the ISD is selected again; no current EF, no verified PIN, no secure channel, no pending output."""
        with self._lock:
            self._generation += 1
            self._close_sessions()
            self._selected = _ISD
            self._clear_application_state()

    # --- snapshot / restore (the chip's EEPROM) --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The SE's whole non-volatile memory as JSON-able data. It holds the private keys: store it as the chip's EEPROM."""
        with self._lock:
            applet = self._applet
            return {
                "format": SNAPSHOT_FORMAT,
                "se_id": self._se_id,
                "config": {
                    "auth_pin_tries": self._max_tries[Kind.AUTH],
                    "signing_pin_tries": self._max_tries[Kind.SIGNING],
                    "reader_access": self._reader_access,
                    "apsd_keys": _keys_to_json(self._apsd_keys),
                },
                "isd": {
                    "keys": _keys_to_json(self._isd_keys),
                    "sequence_counter": self._isd_card.sequence_counter,
                    "failed_authentications": self._isd_card.failed_authentications,
                },
                "access_rules": {aid.hex().upper(): [h.hex() for h in hashes_] for aid, hashes_ in self._access_rules.items()},
                "applet": None
                if applet is None
                else {
                    "apsd": {
                        "keys": _keys_to_json(applet.apsd_keys),
                        "sequence_counter": applet.card.sequence_counter,
                        "failed_authentications": applet.card.failed_authentications,
                    },
                    "max_tries": {kind.value: applet.max_tries[kind] for kind in Kind},
                    "r": None if applet.r is None else applet.r.hex(),
                    "ca_certs": {kind.value: applet.ca_certs[kind].hex() if kind in applet.ca_certs else None for kind in Kind},
                    "slots": {kind.value: _slot_to_json(applet.slots[kind]) for kind in Kind},
                },
            }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any], *, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> GpSe:
        """An SE whose non-volatile memory is `snapshot` (from `snapshot()`), freshly reset; ValueError if malformed."""
        try:
            if snapshot["format"] != SNAPSHOT_FORMAT:
                raise ValueError(f"unknown snapshot format {snapshot['format']!r}; expected {SNAPSHOT_FORMAT!r}")
            config = snapshot["config"]
            se = cls(
                snapshot["se_id"],
                _keys_from_json(snapshot["isd"]["keys"]),
                apsd_keys=_keys_from_json(config["apsd_keys"]),
                auth_pin_tries=config["auth_pin_tries"],
                signing_pin_tries=config["signing_pin_tries"],
                reader_access=config["reader_access"],
                random_bytes=random_bytes,
            )
            se._load_nonvolatile(snapshot)
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed GpSe snapshot: {exc!r}") from exc
        return se

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Replace this SE's whole state by `snapshot` (as `from_snapshot`), then reset it."""
        other = GpSe.from_snapshot(snapshot, random_bytes=self._random_bytes)
        with self._lock:
            for name in ("_se_id", "_isd_keys", "_apsd_keys", "_max_tries", "_reader_access", "_isd_card", "_access_rules", "_applet"):
                setattr(self, name, getattr(other, name))
            self.power_reset()

    def _load_nonvolatile(self, snapshot: Mapping[str, Any]) -> None:
        self._isd_card = _card_from_json(self._isd_keys, ISD_AID, snapshot["isd"])
        rules: dict[bytes, tuple[bytes, ...]] = {}
        for aid_hex, hashes_hex in snapshot["access_rules"].items():
            aid = bytes.fromhex(aid_hex)
            hashes_ = tuple(bytes.fromhex(h) for h in hashes_hex)
            if not 5 <= len(aid) <= 16 or any(len(h) != _HASH_LEN for h in hashes_):
                raise ValueError(f"malformed access rule for {aid_hex}")
            rules[aid] = hashes_
        self._access_rules = rules
        data = snapshot["applet"]
        if data is None:
            self._applet = None
            return
        apsd_keys = _keys_from_json(data["apsd"]["keys"])
        limits = data.get("max_tries") or {kind.value: self._max_tries[kind] for kind in Kind}  # older snapshots: the defaults
        max_tries = {kind: int(limits[kind.value]) for kind in Kind}
        if not all(1 <= n <= 15 for n in max_tries.values()):
            raise ValueError(f"PIN retry limits must be 1..15, got {max_tries}")
        applet = _Applet(
            card=_card_from_json(apsd_keys, APSD_AID, data["apsd"]),
            apsd_keys=apsd_keys,
            max_tries=max_tries,
            r=None if data["r"] is None else bytes.fromhex(data["r"]),
        )
        if applet.r is not None and len(applet.r) != _R_LEN:
            raise ValueError(f"R must be {_R_LEN} bytes")
        for kind in Kind:
            ca = data["ca_certs"][kind.value]
            if ca is not None:
                applet.ca_certs[kind] = _checked_certificate(bytes.fromhex(ca))[0]
            applet.slots[kind] = _slot_from_json(data["slots"][kind.value], max_tries=max_tries[kind])
        self._applet = applet

    # --- dispatch --------------------------------------------------------------------------------------------------

    def _process(self, raw: bytes, caller: bytes | None) -> bytes:
        try:
            cmd = CommandApdu.parse(raw)
        except ApduError as exc:
            return exc.sw
        base = cmd.cla & 0xFC
        if base not in (0x00, 0x04, 0x80, 0x84):
            return SW_CLA_NOT_SUPPORTED
        if cmd.cla & 0x03:
            return SW_LOGICAL_CHANNEL_NOT_SUPPORTED  # only the basic channel
        if base == 0x00 and cmd.ins == INS_MANAGE_CHANNEL:
            return SW_LOGICAL_CHANNEL_NOT_SUPPORTED
        if base == 0x00 and cmd.ins == INS_SELECT and cmd.p1 == 0x04:
            data, sw = self._select_application(cmd, caller)
            return data + sw
        if self._selected == _JPKI and self._applet is not None:
            if not self._allowed(caller):
                return SW_SECURITY_STATUS  # ACL-1, checked on every command the applet receives
            return self._security_domain(cmd, raw, self._applet.card, self._jpki_dispatch)
        self._selected = _ISD
        return self._security_domain(cmd, raw, self._isd_card, self._isd_dispatch)

    def _security_domain(
        self, cmd: CommandApdu, raw: bytes, card: SCP03Card, dispatch: Callable[[CommandApdu, int | None], Response]
    ) -> bytes:
        """The SCP03 layer every security domain (ISD, and the applet through its APSD) puts in front of its commands."""
        base = cmd.cla & 0xFC
        if base in (0x80, 0x84) and cmd.ins == 0x50:
            self._clear_transient()
            try:
                return card.initialize_update(raw)
            except SCP03Error as exc:
                return exc.sw
        if base in (0x80, 0x84) and cmd.ins == 0x82:
            self._clear_transient()
            try:
                return card.external_authenticate(raw)
            except SCP03Error as exc:
                return exc.sw
        if base in (0x04, 0x84):
            if not card.is_open:
                return SW_SECURITY_STATUS
            try:
                plain = CommandApdu.parse(card.unwrap_command(raw))
            except SecureMessagingError:
                return SW_SECURITY_STATUS  # the card side has ended the session
            data, sw = self._run(dispatch, plain, card.security_level)
            if sw == SW_OK or sw[0] in (0x62, 0x63):
                return card.wrap_response(data, sw)
            return sw
        data, sw = self._run(dispatch, cmd, None)
        return data + sw

    @staticmethod
    def _run(dispatch: Callable[[CommandApdu, int | None], Response], cmd: CommandApdu, level: int | None) -> Response:
        try:
            return dispatch(cmd, level)
        except _Sw as exc:
            return b"", exc.sw

    def _require_secure(self, level: int | None) -> None:
        """Card management and TSM commands: wrapped, in a session of level >= 03; a plain one also ends the session."""
        if level is None:
            self._current_card().close()
            raise _Sw(SW_SECURITY_STATUS)
        if level & TSM_MIN_SECURITY_LEVEL != TSM_MIN_SECURITY_LEVEL:
            raise _Sw(SW_SECURITY_STATUS)

    def _current_card(self) -> SCP03Card:
        if self._selected == _JPKI and self._applet is not None:
            return self._applet.card
        return self._isd_card

    def _close_sessions(self) -> None:
        self._isd_card.close()
        if self._applet is not None:
            self._applet.card.close()

    def _clear_application_state(self) -> None:
        self._current_ef = None
        self._verified.clear()
        self._clear_transient()

    def _clear_transient(self) -> None:
        self._output = None
        self._chain = None

    def _allowed(self, caller: bytes | None) -> bool:
        """ACL-1: a reader if reader_access; an app if its certificate hash is in the JPKI AID's access rule."""
        if caller is None:
            return self._reader_access
        return any(hmac.compare_digest(caller, h) for h in self._access_rules.get(JPKI_AID, ()))

    # --- SELECT by AID ---------------------------------------------------------------------------------------------

    def _select_application(self, cmd: CommandApdu, caller: bytes | None) -> Response:
        aid = cmd.data
        if not aid or aid == ISD_AID:
            target = _ISD
        elif aid == JPKI_AID and self._applet is not None:
            target = _JPKI
        else:
            return b"", SW_NOT_FOUND  # the current selection stays
        if cmd.p2 not in (0x00, 0x04, 0x0C):
            return b"", SW_WRONG_P1P2
        if target == _JPKI and not self._allowed(caller):
            return b"", SW_SECURITY_STATUS
        self._close_sessions()
        self._selected = target
        self._clear_application_state()
        if cmd.p2 == 0x0C:
            return b"", SW_OK
        if target == _ISD:
            return tlv(0x6F, tlv(0x84, ISD_AID) + tlv(0xA5, tlv(0x9F65, b"\xff"))), SW_OK
        return tlv(0x6F, tlv(0x84, JPKI_AID)), SW_OK

    # --- the issuer security domain ------------------------------------------------------------------------------------

    def _isd_dispatch(self, cmd: CommandApdu, level: int | None) -> Response:
        if self._chain is not None and not (cmd.ins == INS_STORE_DATA and cmd.cla & 0x80):
            self._chain = None
        cls = cmd.cla & 0x80
        if cls == 0x00 and cmd.ins == INS_SELECT:
            return b"", SW_WRONG_P1P2  # the ISD has no files
        if cmd.ins == INS_GET_DATA:
            return self._isd_get_data(cmd, level)
        if cls == 0x80:
            handler = {
                INS_INSTALL: self._isd_install,
                INS_DELETE: self._isd_delete,
                INS_STORE_DATA: self._isd_store_data,
                INS_GET_STATUS: self._isd_get_status,
            }.get(cmd.ins)
            if handler is not None:
                self._require_secure(level)
                return handler(cmd)
        return b"", SW_INS_NOT_SUPPORTED

    def _isd_get_data(self, cmd: CommandApdu, level: int | None) -> Response:
        if cmd.p1p2 != TAG_SE_ID:
            return b"", SW_REFERENCED_DATA_NOT_FOUND
        self._require_secure(level)
        if cmd.data:
            return b"", SW_WRONG_LENGTH
        return tlv(TAG_SE_ID, self._se_id.encode()), SW_OK

    def _isd_install(self, cmd: CommandApdu) -> Response:
        if cmd.p1 != 0x0C or cmd.p2 != 0x00:
            return b"", SW_WRONG_P1P2  # only [for install and make selectable]; the load file is preloaded
        try:
            elf, module, app, privileges, params, _token = _split_lv(cmd.data, 6)
            c9 = [v for t, v in parse_tlv(params) if t == 0xC9]
        except ValueError:
            return b"", SW_INCORRECT_DATA
        if len(privileges) not in (1, 3) or len(c9) != 1:
            return b"", SW_INCORRECT_DATA
        # C9 (application-specific parameters): empty, or the PIN retry limits auth || signing, one byte each (1..15)
        if c9[0] and (len(c9[0]) != 2 or not all(1 <= n <= 15 for n in c9[0])):
            return b"", SW_INCORRECT_DATA
        if elf != JPKI_ELF_AID or module != JPKI_MODULE_AID:
            return b"", SW_REFERENCED_DATA_NOT_FOUND
        if app != JPKI_AID:
            return b"", SW_INCORRECT_DATA  # this SE's load file makes only the JPKI instance
        if self._applet is not None:
            return b"", SW_CONDITIONS
        limits = {Kind.AUTH: c9[0][0], Kind.SIGNING: c9[0][1]} if c9[0] else dict(self._max_tries)
        self._applet = _Applet(card=SCP03Card(self._apsd_keys, aid=APSD_AID), apsd_keys=self._apsd_keys, max_tries=limits)
        return b"\x00", SW_OK

    def _isd_delete(self, cmd: CommandApdu) -> Response:
        if cmd.p1 != 0x00 or cmd.p2 not in (0x00, 0x80):
            return b"", SW_WRONG_P1P2
        try:
            objects = parse_tlv(cmd.data)
        except ValueError:
            return b"", SW_INCORRECT_DATA
        if len(objects) != 1 or objects[0][0] != TAG_AID or not 5 <= len(objects[0][1]) <= 16:
            return b"", SW_INCORRECT_DATA
        aid = objects[0][1]
        if aid in (JPKI_AID, APSD_AID):
            if self._applet is None:
                return b"", SW_REFERENCED_DATA_NOT_FOUND
            if aid == APSD_AID and cmd.p2 != 0x80:
                return b"", SW_CONDITIONS  # the APSD has an associated application: delete with related objects
            # MCH-4: the applet goes with all its keys, certificates, PINs and R, its APSD and its access rule.
            self._applet = None
            self._access_rules.pop(JPKI_AID, None)
            self._clear_application_state()
            return b"\x00", SW_OK
        if aid in (ISD_AID, JPKI_ELF_AID):
            return b"", SW_CONDITIONS  # the ISD and the ROM load file cannot be deleted
        return b"", SW_REFERENCED_DATA_NOT_FOUND

    def _isd_store_data(self, cmd: CommandApdu) -> Response:
        if cmd.p1 & 0x7F != 0x10:
            return b"", SW_WRONG_P1P2  # BER-TLV, not encrypted
        data = self._chained(cmd, limit=4096)
        if data is None:
            return b"", SW_OK
        try:
            rules = _parse_access_rules(data)
        except ValueError:
            return b"", SW_INCORRECT_DATA
        for aid, hashes_ in rules.items():
            if hashes_:
                self._access_rules[aid] = hashes_
            else:
                self._access_rules.pop(aid, None)
        return b"", SW_OK

    def _isd_get_status(self, cmd: CommandApdu) -> Response:
        if cmd.p1 not in (0x80, 0x40) or cmd.p2 != 0x02:
            return b"", SW_WRONG_P1P2
        try:
            objects = parse_tlv(cmd.data)
        except ValueError:
            return b"", SW_INCORRECT_DATA
        if len(objects) != 1 or objects[0][0] != TAG_AID or len(objects[0][1]) > 16:
            return b"", SW_INCORRECT_DATA
        wanted = objects[0][1]
        if cmd.p1 == 0x80:
            entries = [(ISD_AID, _LC_SD_PERSONALIZED, _PRIV_ISD)]
        else:
            entries = [] if self._applet is None else [(APSD_AID, _LC_SD_PERSONALIZED, _PRIV_SD), (JPKI_AID, _LC_SELECTABLE, _PRIV_APP)]
        found = [e for e in entries if not wanted or e[0] == wanted]
        if not found:
            return b"", SW_REFERENCED_DATA_NOT_FOUND
        return b"".join(tlv(0xE3, tlv(TAG_AID, aid) + tlv(0x9F70, bytes([lc])) + tlv(0xC5, priv)) for aid, lc, priv in found), SW_OK

    def _chained(self, cmd: CommandApdu, *, limit: int) -> bytes | None:
        """Collect blocks: P2 = block number (WRITE CERTIFICATE: bits 7-1), last block flagged; the whole data once complete."""
        if cmd.ins == INS_STORE_DATA:
            block, last = cmd.p2, bool(cmd.p1 & 0x80)
        else:
            block, last = cmd.p2 & 0x7F, bool(cmd.p2 & 0x80)
        if not cmd.data:
            self._chain = None
            raise _Sw(SW_WRONG_LENGTH)
        chain = self._chain
        if block == 0:
            chain = _Chain(ins=cmd.ins, p1=cmd.p1 & 0x7F if cmd.ins == INS_STORE_DATA else cmd.p1)
        elif chain is None or chain.ins != cmd.ins or chain.next_block != block or (cmd.ins != INS_STORE_DATA and chain.p1 != cmd.p1):
            self._chain = None
            raise _Sw(SW_WRONG_P1P2)
        chain.data += cmd.data
        chain.next_block += 1
        if len(chain.data) > limit:
            self._chain = None
            raise _Sw(SW_NOT_ENOUGH_MEMORY)
        if not last:
            self._chain = chain
            return None
        self._chain = None
        return chain.data

    # --- the JPKI applet -----------------------------------------------------------------------------------------

    def _jpki_dispatch(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        assert applet is not None
        if cmd.ins != INS_GET_OUTPUT:
            self._output = None  # the output of a TSM command is readable only until the next command
        if self._chain is not None and cmd.ins != INS_WRITE_CERTIFICATE:
            self._chain = None
        cls = cmd.cla & 0x80
        if cls == 0x00:
            handler = {
                INS_SELECT: self._jpki_select_ef,
                INS_READ_BINARY: self._jpki_read_binary,
                INS_VERIFY: self._jpki_verify,
                INS_CHANGE_REFERENCE_DATA: self._jpki_change_pin,
                INS_GET_CHALLENGE: self._jpki_get_challenge,
            }.get(cmd.ins)
            if handler is not None:
                return handler(cmd, level)
            return b"", SW_INS_NOT_SUPPORTED
        if cmd.ins == INS_COMPUTE_DIGITAL_SIGNATURE:
            return self._jpki_sign(cmd, level)
        if cmd.ins in TSM_INS:
            self._require_secure(level)
            tsm: dict[int, Callable[[_Applet, CommandApdu], Response]] = {
                INS_GET_SE_ID: self._tsm_get_se_id,
                INS_GENERATE_R: self._tsm_generate_r,
                INS_GENERATE_KEY_PAIR: self._tsm_generate_key_pair,
                INS_WRITE_CERTIFICATE: self._tsm_write_certificate,
                INS_SET_TEMPORARY_PIN: self._tsm_set_temporary_pin,
                INS_UNBLOCK_AND_SET_PIN: self._tsm_unblock_and_set_pin,
                INS_DELETE_KEYS: self._tsm_delete_keys,
                INS_GET_SLOT_STATUS: self._tsm_get_slot_status,
                INS_GET_OUTPUT: self._tsm_get_output,
            }
            return tsm[cmd.ins](applet, cmd)
        return b"", SW_INS_NOT_SUPPORTED

    def _ef_exists(self, fid: int) -> bool:
        applet = self._applet
        assert applet is not None
        if fid == EF_TOKEN_INFO or fid in EF_PIN.values():
            return True  # PIN EFs always answer, so OpenSC can ask both PINs' status even with one kind issued
        for kind in Kind:
            slot = applet.slots[kind]
            if (fid == EF_CERT[kind] and slot.cert is not None) or (fid == EF_KEY[kind] and slot.key is not None):
                return True
            if fid == EF_CA_CERT[kind] and kind in applet.ca_certs:
                return True
        return False

    def _current_kind(self, files: Mapping[Kind, int]) -> Kind:
        """The kind whose EF in `files` is current; 6986 if the current EF is none of them."""
        for kind, fid in files.items():
            if self._current_ef == fid:
                return kind
        raise _Sw(SW_NO_CURRENT_EF)

    def _jpki_select_ef(self, cmd: CommandApdu, level: int | None) -> Response:
        if cmd.p1 != 0x02 or cmd.p2 != 0x0C:
            return b"", SW_WRONG_P1P2
        if len(cmd.data) != 2:
            return b"", SW_WRONG_LENGTH
        fid = int.from_bytes(cmd.data, "big")
        if not self._ef_exists(fid):
            return b"", SW_NOT_FOUND
        self._current_ef = fid
        return b"", SW_OK

    def _jpki_read_binary(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        assert applet is not None
        if cmd.data or cmd.ne is None:
            return b"", SW_WRONG_LENGTH
        if cmd.p1 & 0x80:
            return b"", SW_WRONG_P1P2  # short EF identifiers are not supported
        fid = self._current_ef
        if fid is None:
            return b"", SW_NO_CURRENT_EF
        if fid in EF_KEY.values() or fid in EF_PIN.values():
            return b"", SW_INCOMPATIBLE_FILE  # no command reads a key or a PIN
        content: bytes | None = TOKEN_INFO if fid == EF_TOKEN_INFO else None
        for kind in Kind:
            if fid == EF_CERT[kind]:
                content = applet.slots[kind].cert
                if kind is Kind.SIGNING and Kind.SIGNING not in self._verified:
                    return b"", SW_SECURITY_STATUS  # the signing certificate carries the basic four personal data items
            elif fid == EF_CA_CERT[kind]:
                content = applet.ca_certs.get(kind)
        if content is None:
            return b"", SW_NOT_FOUND  # deleted since it was selected
        offset = cmd.p1p2
        if offset >= len(content):
            return b"", SW_WRONG_OFFSET
        limit = 256 if level is None else MAX_BLOCK
        return content[offset : offset + min(cmd.ne, limit)], SW_OK

    def _jpki_get_challenge(self, cmd: CommandApdu, level: int | None) -> Response:
        """ISO GET CHALLENGE (PKCS#11 C_GenerateRandom through OpenSC): Ne fresh random bytes, kept nowhere in the SE."""
        if cmd.p1p2 != 0x0000:
            return b"", SW_WRONG_P1P2  # P1 would name an algorithm: the applet has one generator
        if cmd.data or cmd.ne is None:
            return b"", SW_WRONG_LENGTH
        limit = 256 if level is None else MAX_BLOCK  # what fits a wrapped response, as READ BINARY
        return self._draw_random(min(cmd.ne, limit)), SW_OK

    def _draw_random(self, n: int) -> bytes:
        """n bytes from the SE's random source (R, challenges); a source giving another length is a defect (6F00)."""
        out = bytes(self._random_bytes(n))
        if len(out) != n:
            raise RuntimeError("random_bytes returned the wrong length")
        return out

    def _jpki_verify(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        assert applet is not None
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return b"", SW_WRONG_P1P2
        kind = self._current_kind(EF_PIN)
        slot = applet.slots[kind]
        if not cmd.data:
            # OpenSC's GET_INFO: needs SW1 = 63 whatever the state (a 6983 here stops it binding the card).
            return b"", sw_wrong_pin(slot.tries_left if slot.pin_status is PinStatus.SET else 0)
        self._check_pin_usable(slot)
        return b"", self._check_pin(kind, slot, cmd.data)

    @staticmethod
    def _check_pin_usable(slot: _Slot) -> None:
        if slot.pin_status is None:
            raise _Sw(SW_REFERENCE_DATA_NOT_USABLE)  # no PIN has been set for this kind
        if slot.pin_status is not PinStatus.SET:
            raise _Sw(SW_AUTH_BLOCKED)  # TEMP_BLOCKED (PIN-2) or LOCKED (PIN-3)

    def _check_pin(self, kind: Kind, slot: _Slot, candidate: bytes) -> bytes:
        """PIN-3: a correct PIN resets the counter and marks the PIN verified; a wrong one spends a try (0 locks)."""
        assert slot.pin is not None
        if hmac.compare_digest(candidate, slot.pin):
            slot.tries_left = self.max_tries(kind)
            self._verified.add(kind)
            return SW_OK
        self._verified.discard(kind)
        slot.tries_left = max(slot.tries_left - 1, 0)
        if slot.tries_left == 0:
            slot.pin_status = PinStatus.LOCKED
        return sw_wrong_pin(slot.tries_left)

    def _jpki_change_pin(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        assert applet is not None
        if cmd.p1 not in (0x00, 0x01) or cmd.p2 != 0x80:
            return b"", SW_WRONG_P1P2
        kind = self._current_kind(EF_PIN)
        if not cmd.data:
            return b"", SW_WRONG_LENGTH
        slot = applet.slots[kind]
        self._check_pin_usable(slot)
        assert slot.pin is not None
        if cmd.p1 == 0x01:
            if kind not in self._verified:
                return b"", SW_SECURITY_STATUS  # new PIN only: the current one must have been verified
            new = cmd.data
        else:
            # old || new: the SE splits at the current PIN's length, and checks the old PIN before looking at the new one
            old, new = cmd.data[: len(slot.pin)], cmd.data[len(slot.pin) :]
            sw = self._check_pin(kind, slot, old)
            if sw != SW_OK:
                return b"", sw
        if not pin_well_formed(kind, new):
            return b"", SW_INCORRECT_DATA  # PIN-1
        slot.pin = new  # PIN-5
        return b"", SW_OK

    def _jpki_sign(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        assert applet is not None
        if level is not None:
            return b"", SW_CONDITIONS  # a 256-byte signature does not fit a wrapped response; sign on the plain interface
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return b"", SW_WRONG_P1P2
        kind = self._current_kind(EF_KEY)
        key = applet.slots[kind].key
        if key is None:
            return b"", SW_REFERENCED_DATA_NOT_FOUND
        if kind not in self._verified:
            return b"", SW_SECURITY_STATUS  # the auth key needs the auth PIN, the signing key the signing PIN
        if not 1 <= len(cmd.data) <= MAX_SIGN_INPUT:
            return b"", SW_WRONG_LENGTH
        return _sign_pkcs1v15(key, cmd.data), SW_OK

    # --- TSM commands (SCP03 to the applet, level >= 03) ----------------------------------------------------------------

    @staticmethod
    def _expect(cmd: CommandApdu, *, p1: tuple[int, ...] = (0x00,), p2: tuple[int, ...] = (0x00,), data: bool | None = False) -> None:
        if cmd.p1 not in p1 or cmd.p2 not in p2:
            raise _Sw(SW_WRONG_P1P2)
        if data is not None and bool(cmd.data) != data:
            raise _Sw(SW_WRONG_LENGTH)

    def _start_output(self, output: bytes) -> Response:
        """A long output: the first chunk now, with 6310 while more remains for GET OUTPUT."""
        self._output = output
        return output[:MAX_BLOCK], SW_MORE_DATA if len(output) > MAX_BLOCK else SW_OK

    def _tsm_get_output(self, applet: _Applet, cmd: CommandApdu) -> Response:
        if cmd.data:
            return b"", SW_WRONG_LENGTH
        output = self._output
        if output is None:
            return b"", SW_CONDITIONS
        offset = cmd.p1p2
        if offset >= len(output):
            return b"", SW_WRONG_OFFSET
        end = offset + MAX_BLOCK
        return output[offset:end], SW_MORE_DATA if end < len(output) else SW_OK

    def _tsm_get_se_id(self, applet: _Applet, cmd: CommandApdu) -> Response:
        self._expect(cmd)
        return self._se_id.encode(), SW_OK

    def _tsm_generate_r(self, applet: _Applet, cmd: CommandApdu) -> Response:
        """ISS-2: a fresh random R, kept in the SE; the answer is only the commitment S = SHA-256(R)."""
        self._expect(cmd)
        r = self._draw_random(_R_LEN)
        applet.r = r
        return hashlib.sha256(r).digest(), SW_OK

    def _tsm_generate_key_pair(self, applet: _Applet, cmd: CommandApdu) -> Response:
        """ISS-5: RSA-2048 key pairs generated in the SE; the output is each public key and R, which is consumed."""
        self._expect(cmd, p1=(0x01, 0x02, 0x03))
        if applet.r is None:
            return b"", SW_CONDITIONS  # GENERATE R first: the public keys go out only together with R
        output = b""
        for kind in (Kind.AUTH, Kind.SIGNING):
            if not cmd.p1 & KIND_BIT[kind]:
                continue
            key = rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=_RSA_BITS)
            applet.slots[kind] = _Slot(key=key)  # a new key: the old key, certificate and PIN of this kind are gone
            self._verified.discard(kind)
            spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            output += tlv(TAG_SLOT, tlv(TAG_KEY_REF, bytes([KIND_REF[kind]])) + spki)
        output += tlv(TAG_R, applet.r)
        applet.r = None
        self._forget_missing_current_ef()
        return self._start_output(output)

    def _tsm_write_certificate(self, applet: _Applet, cmd: CommandApdu) -> Response:
        if cmd.p1 not in (0x01, 0x02, 0x03, 0x04):
            return b"", SW_WRONG_P1P2
        data = self._chained(cmd, limit=MAX_CERT_LEN)
        if data is None:
            return b"", SW_OK
        try:
            der, cert = _checked_certificate(data)
        except ValueError:
            return b"", SW_INCORRECT_DATA
        kind = REF_KIND[1 if cmd.p1 in (0x01, 0x03) else 2]
        if cmd.p1 in (0x03, 0x04):
            applet.ca_certs[kind] = der
            return b"", SW_OK
        slot = applet.slots[kind]
        if slot.key is None:
            return b"", SW_REFERENCED_DATA_NOT_FOUND
        if cert.public_key().public_numbers() != slot.key.public_key().public_numbers():
            return b"", SW_INCORRECT_DATA  # a certificate for another key is never installed
        slot.cert, slot.cert_serial = der, cert.serial_number
        return b"", SW_OK

    def _tsm_set_temporary_pin(self, applet: _Applet, cmd: CommandApdu) -> Response:
        """PIN-2 (P2 00) and PIN-4 (P2 01): set a temporary PIN and block the PIN in one step."""
        self._expect(cmd, p1=(0x01, 0x02), p2=(0x00, 0x01), data=True)
        if len(cmd.data) > MAX_PIN_LEN:
            return b"", SW_WRONG_LENGTH
        kind = REF_KIND[cmd.p1]
        slot = applet.slots[kind]
        if slot.key is None:
            return b"", SW_REFERENCED_DATA_NOT_FOUND
        if cmd.p2 == 0x00 and slot.pin_status in (PinStatus.SET, PinStatus.LOCKED):
            return b"", SW_CONDITIONS  # a PIN is already in use: resetting it is PIN initialisation (P2 = 01)
        slot.pin, slot.pin_status, slot.tries_left = None, PinStatus.TEMP_BLOCKED, applet.max_tries[kind]
        slot.temp_pin, slot.temp_tries_left = cmd.data, applet.max_tries[kind]
        self._verified.discard(kind)
        return b"", SW_OK

    def _tsm_unblock_and_set_pin(self, applet: _Applet, cmd: CommandApdu) -> Response:
        """PIN-2: verify the temporary PIN, then set the real PIN (PIN-1 format) and unblock."""
        self._expect(cmd, p1=(0x01, 0x02), data=True)
        try:
            objects = parse_tlv(cmd.data)
        except ValueError:
            return b"", SW_INCORRECT_DATA
        if [t for t, _v in objects] != [TAG_TEMP_PIN, TAG_NEW_PIN]:
            return b"", SW_INCORRECT_DATA
        temp, new = objects[0][1], objects[1][1]
        kind = REF_KIND[cmd.p1]
        slot = applet.slots[kind]
        if slot.pin_status is not PinStatus.TEMP_BLOCKED or slot.temp_pin is None:
            return b"", SW_CONDITIONS
        if slot.temp_tries_left == 0:
            return b"", SW_AUTH_BLOCKED  # the temporary PIN is spent: PIN initialisation sets a new one
        if not pin_well_formed(kind, new):
            return b"", SW_INCORRECT_DATA
        if not hmac.compare_digest(temp, slot.temp_pin):
            slot.temp_tries_left -= 1
            return b"", sw_wrong_pin(slot.temp_tries_left)
        slot.pin, slot.pin_status, slot.tries_left = new, PinStatus.SET, applet.max_tries[kind]
        slot.temp_pin, slot.temp_tries_left = None, 0
        return b"", SW_OK

    def _tsm_delete_keys(self, applet: _Applet, cmd: CommandApdu) -> Response:
        """MCH-4 / DEL-1: delete the key, certificate and PIN of the kinds named, or only the one with a given serial."""
        self._expect(cmd, p1=(0x01, 0x02, 0x03), data=None)
        kinds = [k for k in Kind if cmd.p1 & KIND_BIT[k]]
        if cmd.data:
            try:
                objects = parse_tlv(cmd.data)
            except ValueError:
                return b"", SW_INCORRECT_DATA
            if len(objects) != 1 or objects[0][0] != TAG_SERIAL or not 1 <= len(objects[0][1]) <= 20:
                return b"", SW_INCORRECT_DATA
            serial = int.from_bytes(objects[0][1], "big")
            kinds = [k for k in kinds if applet.slots[k].cert_serial == serial]
            if not kinds:
                return b"", SW_REFERENCED_DATA_NOT_FOUND  # DEL-1: another certificate is there; nothing is deleted
        for kind in kinds:
            applet.slots[kind] = _Slot()
            self._verified.discard(kind)
        self._forget_missing_current_ef()
        return b"", SW_OK

    def _tsm_get_slot_status(self, applet: _Applet, cmd: CommandApdu) -> Response:
        self._expect(cmd)
        return encode_slot_status(self.status()), SW_OK

    def _forget_missing_current_ef(self) -> None:
        if self._current_ef is not None and not self._ef_exists(self._current_ef):
            self._current_ef = None


# --- helpers -----------------------------------------------------------------------------------------------------


def _sign_pkcs1v15(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 over data the host prepared (normally a DigestInfo, as OpenSC sends): CA-5.

    A DER DigestInfo of SHA-1/224/256/384/512 is signed by `cryptography` (Prehashed); any other input (e.g. the 36-byte
    MD5+SHA-1 of TLS 1.0, or a DigestInfo without NULL parameters) gets the same EMSA-PKCS1-v1_5 type 1 block and the RSA
    private operation on the key's own CRT numbers, as a card's raw PKCS#1 signing does. Either way the signature is
    checked with the public key before it leaves the SE (a fault countermeasure).
    """
    signature: bytes | None = None
    for prefix, algorithm in _DIGEST_INFO:
        if data.startswith(prefix) and len(data) == len(prefix) + algorithm.digest_size:
            signature = key.sign(data[len(prefix) :], padding.PKCS1v15(), utils.Prehashed(algorithm))
            break
    if signature is None:
        k = key.key_size // 8
        block = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
        n = key.private_numbers()
        m = int.from_bytes(block, "big")
        s1, s2 = pow(m, n.dmp1, n.p), pow(m, n.dmq1, n.q)
        signature = (s2 + (n.iqmp * (s1 - s2) % n.p) * n.q).to_bytes(k, "big")
    if key.public_key().recover_data_from_signature(signature, padding.PKCS1v15(), None) != data:
        raise RuntimeError("the signature does not verify with the key's own public key")
    return signature


def _checked_certificate(data: bytes) -> tuple[bytes, x509.Certificate]:
    """data as a DER X.509 certificate with the 4-byte header 30 82 LL LL OpenSC reads the length from; ValueError if not."""
    if len(data) < 4 or data[0] != 0x30 or data[1] != 0x82 or int.from_bytes(data[2:4], "big") + 4 != len(data):
        raise ValueError("not a DER SEQUENCE with a two-byte length filling the data")
    try:
        cert = x509.load_der_x509_certificate(data)
        cert.public_key()
    except Exception as exc:
        raise ValueError(f"not an X.509 certificate: {exc}") from exc
    return data, cert


def _split_lv(data: bytes, count: int) -> list[bytes]:
    """count length-value fields filling data exactly (the INSTALL data layout); ValueError otherwise."""
    out: list[bytes] = []
    i = 0
    for _ in range(count):
        if i >= len(data):
            raise ValueError("truncated")
        n = data[i]
        if i + 1 + n > len(data):
            raise ValueError("truncated")
        out.append(data[i + 1 : i + 1 + n])
        i += 1 + n
    if i != len(data):
        raise ValueError("trailing bytes")
    return out


def _parse_access_rules(data: bytes) -> dict[bytes, tuple[bytes, ...]]:
    """STORE DATA access rules: E2 { 4F AID, C1 hash (32 bytes) ... } repeated; ValueError if malformed."""
    rules: dict[bytes, tuple[bytes, ...]] = {}
    for tag, body in parse_tlv(data):
        if tag != TAG_ACCESS_RULE:
            raise ValueError(f"unexpected tag {tag:X}")
        inner = parse_tlv(body)
        aids = [v for t, v in inner if t == TAG_AID]
        hashes_ = [v for t, v in inner if t == TAG_APP_HASH]
        if len(aids) != 1 or not 5 <= len(aids[0]) <= 16 or len(aids) + len(hashes_) != len(inner):
            raise ValueError("an access rule needs one AID and nothing but app hashes")
        if any(len(h) != _HASH_LEN for h in hashes_) or len(hashes_) > _MAX_RULE_HASHES:
            raise ValueError("app hashes are SHA-256 (32 bytes), at most 64 per AID")
        rules[aids[0]] = tuple(dict.fromkeys(hashes_))
    if not rules:
        raise ValueError("no access rule")
    return rules


def _card_from_json(keys: StaticKeys, aid: bytes, data: Mapping[str, Any]) -> SCP03Card:
    """A security domain's SCP03 card side with its non-volatile counters (older snapshots: no failed authentications)."""
    return SCP03Card(
        keys, aid=aid, sequence_counter=int(data["sequence_counter"]), failed_authentications=int(data.get("failed_authentications", 0))
    )


def _keys_to_json(keys: StaticKeys) -> dict[str, Any]:
    return {"enc": keys.enc.hex(), "mac": keys.mac.hex(), "dek": keys.dek.hex(), "key_version": keys.key_version}


def _keys_from_json(data: Mapping[str, Any]) -> StaticKeys:
    return StaticKeys(
        enc=bytes.fromhex(data["enc"]), mac=bytes.fromhex(data["mac"]), dek=bytes.fromhex(data["dek"]), key_version=int(data["key_version"])
    )


def _hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _bytes_or_none(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _slot_to_json(slot: _Slot) -> dict[str, Any]:
    key = (
        None
        if slot.key is None
        else slot.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).hex()
    )
    return {
        "private_key": key,
        "certificate": _hex_or_none(slot.cert),
        "pin": _hex_or_none(slot.pin),
        "pin_status": None if slot.pin_status is None else slot.pin_status.value,
        "tries_left": slot.tries_left,
        "temp_pin": _hex_or_none(slot.temp_pin),
        "temp_tries_left": slot.temp_tries_left,
    }


def _slot_from_json(data: Mapping[str, Any], *, max_tries: int) -> _Slot:
    slot = _Slot(
        key=None if data["private_key"] is None else _load_private_key(bytes.fromhex(data["private_key"])),
        pin=_bytes_or_none(data["pin"]),
        pin_status=None if data["pin_status"] is None else PinStatus(data["pin_status"]),
        tries_left=int(data["tries_left"]),
        temp_pin=_bytes_or_none(data["temp_pin"]),
        temp_tries_left=int(data["temp_tries_left"]),
    )
    if not 0 <= slot.tries_left <= max_tries or not 0 <= slot.temp_tries_left <= max_tries:
        raise ValueError("a PIN counter is outside 0..the retry limit")
    if (slot.pin_status is PinStatus.SET or slot.pin_status is PinStatus.LOCKED) != (slot.pin is not None):
        raise ValueError("a PIN value must be present exactly when the PIN is SET or LOCKED")
    if (slot.pin_status is PinStatus.TEMP_BLOCKED) != (slot.temp_pin is not None):
        raise ValueError("a temporary PIN must be present exactly when the PIN is TEMP_BLOCKED")
    if data["certificate"] is not None:
        der, cert = _checked_certificate(bytes.fromhex(data["certificate"]))
        if slot.key is None or cert.public_key().public_numbers() != slot.key.public_key().public_numbers():
            raise ValueError("a certificate whose key is not the slot's key")
        slot.cert, slot.cert_serial = der, cert.serial_number
    return slot


def _load_private_key(der: bytes) -> rsa.RSAPrivateKey:
    """A PKCS#8 RSA-2048 key from the snapshot; consistency is checked on the CRT numbers (cheap) instead of OpenSSL's slow check."""
    key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != _RSA_BITS:
        raise ValueError("a slot key must be an RSA-2048 private key")
    n = key.private_numbers()
    e, p, q = n.public_numbers.e, n.p, n.q
    if (
        p * q != n.public_numbers.n
        or n.dmp1 != n.d % (p - 1)
        or n.dmq1 != n.d % (q - 1)
        or (n.iqmp * q) % p != 1
        or (e * n.dmp1) % (p - 1) != 1
        or (e * n.dmq1) % (q - 1) != 1
    ):
        raise ValueError("inconsistent RSA private key")
    return key
