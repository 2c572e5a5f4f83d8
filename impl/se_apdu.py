"""The GP-SE's APDU interface as data: AIDs, file IDs, instruction codes, status words, TLV tags, codecs, builders, parsers.

Shared by the card side (`mjpki.impl.se.GpSe`) and any host (the TSM client `mjpki.impl.se_tsm`, the harness, tests), so that both
ends read the same constants; docs/apdu-interface.md is the normative description of everything here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from mjpki.impl.apdu import SW_WRONG_LENGTH, ApduError, CommandApdu
from mjpki.spec.domain import Kind, PinStatus

__all__ = [
    # AIDs, ATR
    "ISD_AID",
    "JPKI_AID",
    "JPKI_ELF_AID",
    "JPKI_MODULE_AID",
    "APSD_AID",
    "JPKI_ATR",
    # files
    "EF_TOKEN_INFO",
    "TOKEN_INFO",
    "EF_CERT",
    "EF_CA_CERT",
    "EF_KEY",
    "EF_PIN",
    "KIND_REF",
    "REF_KIND",
    "KIND_BIT",
    "CERT_TARGET",
    "TARGET_EF",
    # instruction codes
    "INS_SELECT",
    "INS_READ_BINARY",
    "INS_VERIFY",
    "INS_CHANGE_REFERENCE_DATA",
    "INS_GET_CHALLENGE",
    "INS_COMPUTE_DIGITAL_SIGNATURE",
    "INS_MANAGE_CHANNEL",
    "INS_GET_DATA",
    "INS_STORE_DATA",
    "INS_DELETE",
    "INS_INSTALL",
    "INS_GET_STATUS",
    "INS_GET_SE_ID",
    "INS_GENERATE_R",
    "INS_GENERATE_KEY_PAIR",
    "INS_WRITE_CERTIFICATE",
    "INS_SET_TEMPORARY_PIN",
    "INS_UNBLOCK_AND_SET_PIN",
    "INS_DELETE_KEYS",
    "INS_GET_SLOT_STATUS",
    "INS_GET_OUTPUT",
    "TSM_INS",
    "TAG_SE_ID",
    # TLV tags
    "TAG_AID",
    "TAG_APP_HASH",
    "TAG_ACCESS_RULE",
    "TAG_SLOT",
    "TAG_KEY_REF",
    "TAG_KEY_PRESENT",
    "TAG_PIN_STATUS",
    "TAG_TRIES_LEFT",
    "TAG_TEMP_TRIES_LEFT",
    "TAG_R",
    "TAG_R_PENDING",
    "TAG_SERIAL",
    "TAG_TEMP_PIN",
    "TAG_NEW_PIN",
    "PIN_STATUS_CODE",
    "CODE_PIN_STATUS",
    # status words
    "SW_OK",
    "SW_MORE_DATA",
    "SW_WRONG_LENGTH",
    "SW_LOGICAL_CHANNEL_NOT_SUPPORTED",
    "SW_INCOMPATIBLE_FILE",
    "SW_SECURITY_STATUS",
    "SW_AUTH_BLOCKED",
    "SW_REFERENCE_DATA_NOT_USABLE",
    "SW_CONDITIONS",
    "SW_NO_CURRENT_EF",
    "SW_INCORRECT_DATA",
    "SW_NOT_FOUND",
    "SW_NOT_ENOUGH_MEMORY",
    "SW_WRONG_P1P2",
    "SW_REFERENCED_DATA_NOT_FOUND",
    "SW_WRONG_OFFSET",
    "SW_INS_NOT_SUPPORTED",
    "SW_CLA_NOT_SUPPORTED",
    "SW_UNKNOWN",
    "sw_wrong_pin",
    # limits
    "MAX_BLOCK",
    "MAX_CERT_LEN",
    "MAX_PIN_LEN",
    "MAX_SIGN_INPUT",
    "MAX_SE_ID_LEN",
    # codecs
    "ApduError",
    "CommandApdu",
    "command_apdu",
    "tlv",
    "parse_tlv",
    "pin_well_formed",
    # status
    "SlotStatus",
    "SeStatus",
    "encode_slot_status",
    "parse_slot_status",
    "parse_key_pair_output",
    "KeyPairOutput",
    # builders
    "select_aid",
    "select_ef",
    "read_binary",
    "verify",
    "change_pin",
    "get_challenge",
    "compute_signature",
    "install_for_install_and_selectable",
    "delete_aid",
    "store_access_rules",
    "get_status",
    "get_se_id_isd",
    "get_se_id",
    "generate_r",
    "generate_key_pair",
    "write_certificate",
    "set_temporary_pin",
    "unblock_and_set_pin",
    "delete_keys",
    "get_slot_status",
    "get_output",
]

# --- AIDs --------------------------------------------------------------------------------------------------------

ISD_AID: Final = bytes.fromhex("A000000151000000")
"""The issuer security domain (GlobalPlatform's default ISD AID)."""
JPKI_AID: Final = bytes.fromhex("D392F000260100000001")
"""The JPKI application, as on the My Number card (OpenSC jpki.h AID_JPKI)."""
JPKI_ELF_AID: Final = bytes.fromhex("D392F0002601000000")
"""The JPKI executable load file (Java Card package), preloaded in this SE's ROM. An assumption of this SE."""
JPKI_MODULE_AID: Final = JPKI_AID
"""The applet class (executable module) inside the load file. An assumption of this SE."""
APSD_AID: Final = bytes.fromhex("A0000001515350414A504B49")
"""The application-provider security domain INSTALL creates for the applet ("A0000001515350 41" + "JPKI")."""
JPKI_ATR: Final = bytes.fromhex("3BE000FF8131FE4514")
"""The My Number card's ATR (OpenSC card-jpki.c jpki_atrs): a PC/SC bridge can present it so OpenSC picks `jpki` at once."""

# --- files of the JPKI application ----------------------------------------------------------------------------------

EF_TOKEN_INFO: Final = 0x0006
TOKEN_INFO: Final = b"JPKIAPGPSETOKEN".ljust(32, b" ")
EF_CERT: Final = {Kind.AUTH: 0x000A, Kind.SIGNING: 0x0001}
EF_CA_CERT: Final = {Kind.AUTH: 0x000B, Kind.SIGNING: 0x0002}
EF_KEY: Final = {Kind.AUTH: 0x0017, Kind.SIGNING: 0x001A}
EF_PIN: Final = {Kind.AUTH: 0x0018, Kind.SIGNING: 0x001B}
KIND_REF: Final = {Kind.AUTH: 0x01, Kind.SIGNING: 0x02}
"""The key and PIN references OpenSC uses (pkcs15-jpki.c): 1 = auth, 2 = signing."""
REF_KIND: Final = {ref: kind for kind, ref in KIND_REF.items()}
KIND_BIT: Final = KIND_REF
"""P1 bitmaps of GENERATE KEY PAIR and DELETE KEYS: bit 0x01 auth, bit 0x02 signing."""
CERT_TARGET: Final = {("user", Kind.AUTH): 0x01, ("user", Kind.SIGNING): 0x02, ("ca", Kind.AUTH): 0x03, ("ca", Kind.SIGNING): 0x04}
"""P1 of WRITE CERTIFICATE: which certificate EF to write."""
TARGET_EF: Final = {
    0x01: EF_CERT[Kind.AUTH],
    0x02: EF_CERT[Kind.SIGNING],
    0x03: EF_CA_CERT[Kind.AUTH],
    0x04: EF_CA_CERT[Kind.SIGNING],
}

# --- instruction codes -------------------------------------------------------------------------------------------

# ISO 7816-4 (CLA 00), as the My Number card's JPKI application answers them.
INS_SELECT: Final = 0xA4
INS_READ_BINARY: Final = 0xB0
INS_VERIFY: Final = 0x20
INS_CHANGE_REFERENCE_DATA: Final = 0x24
INS_GET_CHALLENGE: Final = 0x84  # PKCS#11 C_GenerateRandom reaches the card as this (OpenSC iso7816_get_challenge)
INS_MANAGE_CHANNEL: Final = 0x70
# JPKI (CLA 80): COMPUTE DIGITAL SIGNATURE as OpenSC card-jpki.c sends it.
INS_COMPUTE_DIGITAL_SIGNATURE: Final = 0x2A
# GlobalPlatform card management (CLA 80 plain / 84 wrapped), answered by the ISD.
INS_GET_DATA: Final = 0xCA
INS_STORE_DATA: Final = 0xE2
INS_DELETE: Final = 0xE4
INS_INSTALL: Final = 0xE6
INS_GET_STATUS: Final = 0xF2
# Proprietary TSM commands of the JPKI applet (CLA 84 only: wrapped in SCP03 at level >= 03).
INS_GET_SE_ID: Final = 0x30
INS_GENERATE_R: Final = 0x32
INS_GENERATE_KEY_PAIR: Final = 0x34
INS_WRITE_CERTIFICATE: Final = 0x36
INS_SET_TEMPORARY_PIN: Final = 0x38
INS_UNBLOCK_AND_SET_PIN: Final = 0x3A
INS_DELETE_KEYS: Final = 0x3C
INS_GET_SLOT_STATUS: Final = 0x3E
INS_GET_OUTPUT: Final = 0x40
TSM_INS: Final = frozenset(
    {
        INS_GET_SE_ID,
        INS_GENERATE_R,
        INS_GENERATE_KEY_PAIR,
        INS_WRITE_CERTIFICATE,
        INS_SET_TEMPORARY_PIN,
        INS_UNBLOCK_AND_SET_PIN,
        INS_DELETE_KEYS,
        INS_GET_SLOT_STATUS,
        INS_GET_OUTPUT,
    }
)
TAG_SE_ID: Final = 0xDF4A
"""P1 P2 of the ISD's proprietary GET DATA for the SE-ID (and the tag of the returned data object)."""

# --- TLV tags ----------------------------------------------------------------------------------------------------

TAG_ACCESS_RULE: Final = 0xE2  # STORE DATA: one access rule (simplified GP SEAC REF-AR-DO)
TAG_AID: Final = 0x4F
TAG_APP_HASH: Final = 0xC1  # SHA-256 of an Android app's signing certificate (as GP SEAC DeviceAppID-REF-DO)
TAG_SLOT: Final = 0xE1  # GET SLOT STATUS / GENERATE KEY PAIR: one kind
TAG_KEY_REF: Final = 0x83
TAG_KEY_PRESENT: Final = 0x84
TAG_PIN_STATUS: Final = 0x85
TAG_TRIES_LEFT: Final = 0x86
TAG_TEMP_TRIES_LEFT: Final = 0x87
TAG_R: Final = 0xC0
TAG_R_PENDING: Final = 0xC3
TAG_SERIAL: Final = 0xC2  # a certificate serial number, unsigned big-endian
TAG_TEMP_PIN: Final = 0x81
TAG_NEW_PIN: Final = 0x82
PIN_STATUS_CODE: Final = {None: 0x00, PinStatus.TEMP_BLOCKED: 0x01, PinStatus.SET: 0x02, PinStatus.LOCKED: 0x03}
CODE_PIN_STATUS: Final = {code: status for status, code in PIN_STATUS_CODE.items()}

# --- status words ------------------------------------------------------------------------------------------------

SW_OK: Final = b"\x90\x00"
SW_MORE_DATA: Final = b"\x63\x10"  # ISO 7816-4 "more data available": read on with GET OUTPUT
SW_LOGICAL_CHANNEL_NOT_SUPPORTED: Final = b"\x68\x81"
SW_INCOMPATIBLE_FILE: Final = b"\x69\x81"
SW_SECURITY_STATUS: Final = b"\x69\x82"
SW_AUTH_BLOCKED: Final = b"\x69\x83"
SW_REFERENCE_DATA_NOT_USABLE: Final = b"\x69\x84"
SW_CONDITIONS: Final = b"\x69\x85"
SW_NO_CURRENT_EF: Final = b"\x69\x86"
SW_INCORRECT_DATA: Final = b"\x6a\x80"
SW_NOT_FOUND: Final = b"\x6a\x82"
SW_NOT_ENOUGH_MEMORY: Final = b"\x6a\x84"
SW_WRONG_P1P2: Final = b"\x6a\x86"
SW_REFERENCED_DATA_NOT_FOUND: Final = b"\x6a\x88"
SW_WRONG_OFFSET: Final = b"\x6b\x00"
SW_INS_NOT_SUPPORTED: Final = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED: Final = b"\x6e\x00"
SW_UNKNOWN: Final = b"\x6f\x00"  # an internal error; never expected (the tests assert it never comes back)


def sw_wrong_pin(tries_left: int) -> bytes:
    """63Cx: a wrong PIN (or the answer to an empty VERIFY) with x tries left."""
    return bytes([0x63, 0xC0 | min(max(tries_left, 0), 0x0F)])


# --- limits ------------------------------------------------------------------------------------------------------

MAX_BLOCK: Final = 239
"""The most plain data one SCP03-wrapped short APDU carries each way at any level (16-byte padding, 8-byte MAC)."""
MAX_CERT_LEN: Final = 8192
MAX_PIN_LEN: Final = 16
MAX_SIGN_INPUT: Final = 256 - 11
"""The longest input PKCS#1 v1.5 type 1 padding admits for a 2048-bit modulus."""
MAX_SE_ID_LEN: Final = 64


# --- command APDUs -----------------------------------------------------------------------------------------------


def command_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    """A short command APDU's bytes; ValueError if the data does not fit."""
    if len(data) > 255:
        raise ValueError(f"{len(data)} data bytes do not fit a short APDU (at most 255)")
    for name, value in (("CLA", cla), ("INS", ins), ("P1", p1), ("P2", p2)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} must be one byte, got {value}")
    if le is not None and not 0 <= le <= 0xFF:
        raise ValueError(f"Le must be one byte (00 = 256), got {le}")
    return CommandApdu(cla=cla, ins=ins, p1=p1, p2=p2, data=bytes(data), le=le).to_bytes()


# --- BER-TLV -----------------------------------------------------------------------------------------------------


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def _length_bytes(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    if n <= 0xFFFF:
        return bytes([0x82]) + n.to_bytes(2, "big")
    raise ValueError(f"a TLV value of {n} bytes is too long (at most 65535)")


def tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV data object (tag of 1-3 bytes as written, definite length in 1-3 bytes)."""
    return _tag_bytes(tag) + _length_bytes(len(value)) + bytes(value)


def parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """The BER-TLV data objects of data, in order (no recursion); ValueError if malformed."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:  # multi-byte tag: subsequent bytes while b8 = 1
            for _ in range(2):
                if i >= n:
                    raise ValueError("truncated tag")
                tag = tag << 8 | data[i]
                i += 1
                if not tag & 0x80:
                    break
            else:
                raise ValueError("tags longer than 3 bytes are not used here")
        if i >= n:
            raise ValueError(f"tag {tag:X} has no length")
        first = data[i]
        i += 1
        if first < 0x80:
            length = first
        elif first in (0x81, 0x82):
            width = first - 0x80
            if i + width > n:
                raise ValueError("truncated length")
            length = int.from_bytes(data[i : i + width], "big")
            i += width
        else:
            raise ValueError(f"unsupported length byte {first:02X}")
        if i + length > n:
            raise ValueError(f"tag {tag:X} says {length} bytes, {n - i} remain")
        out.append((tag, bytes(data[i : i + length])))
        i += length
    return out


# --- PIN formats (PIN-1), as mjpki.spec.rules.pin_well_formed ----------------------------------------------------------

_SIGNING_PIN = re.compile(rb"(?=.*[A-Z])(?=.*[0-9])[A-Z0-9]{6,16}")
_AUTH_PIN = re.compile(rb"[0-9]{4}")


def pin_well_formed(kind: Kind, pin: bytes) -> bool:
    """PIN-1: signing 6-16 ASCII upper-case letters and digits (at least one of each), auth 4 ASCII digits."""
    pattern = _SIGNING_PIN if kind is Kind.SIGNING else _AUTH_PIN
    return pattern.fullmatch(pin) is not None


# --- slot status -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotStatus:
    """One kind's facts in the applet: the spec's `Slot` as the SE knows it (pin_status None: no PIN at all)."""

    kind: Kind
    key_present: bool
    cert_serial: int | None
    pin_status: PinStatus | None
    tries_left: int
    temp_tries_left: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SeStatus:
    """The SE's JPKI facts: applet installed, a random R pending, and each kind's slot (the spec's `SecureElement`)."""

    applet: bool
    r_pending: bool
    slots: Mapping[Kind, SlotStatus] = field(default_factory=dict)


def encode_slot_status(status: SeStatus) -> bytes:
    """The GET SLOT STATUS response data: C3 (R pending), then one E1 per kind (auth first)."""
    out = tlv(TAG_R_PENDING, bytes([int(status.r_pending)]))
    for kind in (Kind.AUTH, Kind.SIGNING):
        s = status.slots[kind]
        body = tlv(TAG_KEY_REF, bytes([KIND_REF[kind]])) + tlv(TAG_KEY_PRESENT, bytes([int(s.key_present)]))
        if s.cert_serial is not None:
            body += tlv(TAG_SERIAL, _serial_bytes(s.cert_serial))
        body += tlv(TAG_PIN_STATUS, bytes([PIN_STATUS_CODE[s.pin_status]]))
        body += tlv(TAG_TRIES_LEFT, bytes([s.tries_left])) + tlv(TAG_TEMP_TRIES_LEFT, bytes([s.temp_tries_left]))
        out += tlv(TAG_SLOT, body)
    return out


def _serial_bytes(serial: int) -> bytes:
    if serial < 0:
        raise ValueError(f"certificate serials are positive, got {serial}")
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")


def _one(objects: list[tuple[int, bytes]], tag: int, *, length: int | None = None) -> bytes:
    found = [v for t, v in objects if t == tag]
    if len(found) != 1:
        raise ValueError(f"expected exactly one tag {tag:02X}, found {len(found)}")
    if length is not None and len(found[0]) != length:
        raise ValueError(f"tag {tag:02X} must be {length} bytes, got {len(found[0])}")
    return found[0]


def parse_slot_status(data: bytes) -> SeStatus:
    """Parse a GET SLOT STATUS response (the applet answered, so `applet` is True); ValueError if malformed."""
    top = parse_tlv(data)
    r_pending = _one(top, TAG_R_PENDING, length=1)[0] == 1
    slots: dict[Kind, SlotStatus] = {}
    for tag, body in top:
        if tag != TAG_SLOT:
            continue
        inner = parse_tlv(body)
        kind = REF_KIND[_one(inner, TAG_KEY_REF, length=1)[0]]
        serials = [v for t, v in inner if t == TAG_SERIAL]
        slots[kind] = SlotStatus(
            kind=kind,
            key_present=_one(inner, TAG_KEY_PRESENT, length=1)[0] == 1,
            cert_serial=int.from_bytes(serials[0], "big") if serials else None,
            pin_status=CODE_PIN_STATUS[_one(inner, TAG_PIN_STATUS, length=1)[0]],
            tries_left=_one(inner, TAG_TRIES_LEFT, length=1)[0],
            temp_tries_left=_one(inner, TAG_TEMP_TRIES_LEFT, length=1)[0],
        )
    if set(slots) != set(Kind):
        raise ValueError(f"expected one slot per kind, got {sorted(k.value for k in slots)}")
    return SeStatus(applet=True, r_pending=r_pending, slots=slots)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPairOutput:
    """GENERATE KEY PAIR's output: each generated kind's public key (DER SubjectPublicKeyInfo) and the R it consumed."""

    public_keys: Mapping[Kind, bytes]
    r: bytes


def parse_key_pair_output(data: bytes) -> KeyPairOutput:
    """Parse the whole GENERATE KEY PAIR output (all chunks joined); ValueError if malformed."""
    top = parse_tlv(data)
    keys: dict[Kind, bytes] = {}
    for tag, body in top:
        if tag == TAG_SLOT:
            inner = parse_tlv(body)
            kind = REF_KIND[_one(inner, TAG_KEY_REF, length=1)[0]]
            spki = _one(inner, 0x30)
            keys[kind] = tlv(0x30, spki)
    return KeyPairOutput(public_keys=keys, r=_one(top, TAG_R, length=32))


# --- command builders (plain APDUs; a TSM wraps the CLA 80 ones with SCP03) ---------------------------------------


def select_aid(aid: bytes, *, fci: bool = False) -> bytes:
    """SELECT by DF name: 00 A4 04 0C (no response data), or 04 00 with Le to get the FCI."""
    return command_apdu(0x00, INS_SELECT, 0x04, 0x00 if fci else 0x0C, aid, 0x00 if fci else None)


def select_ef(fid: int) -> bytes:
    """SELECT EF under the current DF by file ID: 00 A4 02 0C 02 fid."""
    return command_apdu(0x00, INS_SELECT, 0x02, 0x0C, fid.to_bytes(2, "big"))


def read_binary(offset: int, le: int = 0) -> bytes:
    """READ BINARY: 00 B0 offset(15 bits) Le (00 = 256)."""
    if not 0 <= offset <= 0x7FFF:
        raise ValueError(f"offset must be 0..0x7FFF, got {offset}")
    return command_apdu(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, b"", le)


def verify(pin: bytes | None) -> bytes:
    """VERIFY against the selected PIN EF: 00 20 00 80 Lc PIN, or with no data to ask the tries left (63Cx)."""
    return command_apdu(0x00, INS_VERIFY, 0x00, 0x80, pin or b"")


def change_pin(old: bytes | None, new: bytes) -> bytes:
    """CHANGE REFERENCE DATA on the selected PIN EF: 00 24 00 80 old||new, or 00 24 01 80 new after a VERIFY."""
    if old is None:
        return command_apdu(0x00, INS_CHANGE_REFERENCE_DATA, 0x01, 0x80, new)
    return command_apdu(0x00, INS_CHANGE_REFERENCE_DATA, 0x00, 0x80, old + new)


def get_challenge(le: int) -> bytes:
    """GET CHALLENGE: 00 84 00 00 Le, asking Le fresh random bytes (00 = 256), as OpenSC sends C_GenerateRandom."""
    return command_apdu(0x00, INS_GET_CHALLENGE, 0x00, 0x00, b"", le)


def compute_signature(digest_info: bytes) -> bytes:
    """COMPUTE DIGITAL SIGNATURE with the selected key EF, as OpenSC sends it: 80 2A 00 80 Lc DigestInfo 00."""
    return command_apdu(0x80, INS_COMPUTE_DIGITAL_SIGNATURE, 0x00, 0x80, digest_info, 0x00)


def _lv(value: bytes) -> bytes:
    return bytes([len(value)]) + value


def install_for_install_and_selectable(
    *,
    elf_aid: bytes = JPKI_ELF_AID,
    module_aid: bytes = JPKI_MODULE_AID,
    app_aid: bytes = JPKI_AID,
    pin_tries: tuple[int, int] | None = None,
) -> bytes:
    """INSTALL [for install and make selectable]: 80 E6 0C 00, GP data (ELF, module, application AIDs, privileges 00, C9).

    C9 is empty (the SE's default retry limits) or, with pin_tries = (auth, signing), those limits, one byte each.
    """
    params = b"" if pin_tries is None else bytes(pin_tries)
    data = _lv(elf_aid) + _lv(module_aid) + _lv(app_aid) + _lv(b"\x00") + _lv(tlv(0xC9, params)) + _lv(b"")
    return command_apdu(0x80, INS_INSTALL, 0x0C, 0x00, data, 0x00)


def delete_aid(aid: bytes, *, related: bool = True) -> bytes:
    """DELETE: 80 E4 00 80 (with related objects) or 00, data 4F AID."""
    return command_apdu(0x80, INS_DELETE, 0x00, 0x80 if related else 0x00, tlv(TAG_AID, aid), 0x00)


def store_access_rules(rules: Mapping[bytes, Iterable[bytes]], *, block: int = 0, last: bool = True) -> bytes:
    """STORE DATA (one block, BER-TLV): per AID, E2 { 4F AID, C1 hash ... }; replaces that AID's rules."""
    data = b"".join(
        tlv(TAG_ACCESS_RULE, tlv(TAG_AID, aid) + b"".join(tlv(TAG_APP_HASH, h) for h in hashes)) for aid, hashes in rules.items()
    )
    return command_apdu(0x80, INS_STORE_DATA, 0x90 if last else 0x10, block, data)


def get_status(p1: int = 0x40, aid: bytes = b"") -> bytes:
    """GET STATUS: 80 F2 P1 02 (TLV format), data 4F [AID] (empty AID: all)."""
    return command_apdu(0x80, INS_GET_STATUS, p1, 0x02, tlv(TAG_AID, aid), 0x00)


def get_se_id_isd() -> bytes:
    """The ISD's proprietary GET DATA for the SE-ID: 80 CA DF 4A 00."""
    return command_apdu(0x80, INS_GET_DATA, TAG_SE_ID >> 8, TAG_SE_ID & 0xFF, b"", 0x00)


def get_se_id() -> bytes:
    """Applet TSM command GET SE-ID: 80 30 00 00 00."""
    return command_apdu(0x80, INS_GET_SE_ID, 0x00, 0x00, b"", 0x00)


def generate_r() -> bytes:
    """Applet TSM command GENERATE R: 80 32 00 00 00; answers S = SHA-256(R)."""
    return command_apdu(0x80, INS_GENERATE_R, 0x00, 0x00, b"", 0x00)


def _kinds_bitmap(kinds: Iterable[Kind]) -> int:
    bitmap = 0
    for kind in kinds:
        bitmap |= KIND_BIT[kind]
    if not bitmap:
        raise ValueError("name at least one kind")
    return bitmap


def generate_key_pair(kinds: Iterable[Kind]) -> bytes:
    """Applet TSM command GENERATE KEY PAIR: 80 34 kinds-bitmap 00 00."""
    return command_apdu(0x80, INS_GENERATE_KEY_PAIR, _kinds_bitmap(kinds), 0x00, b"", 0x00)


def write_certificate(target: int, der: bytes, *, block_size: int = MAX_BLOCK) -> list[bytes]:
    """Applet TSM command WRITE CERTIFICATE, split in blocks: 80 36 target block|80(last) chunk."""
    if not 1 <= block_size <= MAX_BLOCK:
        raise ValueError(f"block_size must be 1..{MAX_BLOCK}")
    chunks = [der[i : i + block_size] for i in range(0, len(der), block_size)] or [b""]
    if len(chunks) > 0x80:
        raise ValueError(f"{len(der)} bytes need {len(chunks)} blocks; at most 128 fit")
    return [
        command_apdu(0x80, INS_WRITE_CERTIFICATE, target, n | (0x80 if n == len(chunks) - 1 else 0), chunk)
        for n, chunk in enumerate(chunks)
    ]


def set_temporary_pin(kind: Kind, temp_pin: bytes, *, reset: bool = False) -> bytes:
    """Applet TSM command SET TEMPORARY PIN (and block the PIN): 80 38 kind 00 (initial) or 01 (PIN initialisation)."""
    return command_apdu(0x80, INS_SET_TEMPORARY_PIN, KIND_REF[kind], 0x01 if reset else 0x00, temp_pin)


def unblock_and_set_pin(kind: Kind, temp_pin: bytes, new_pin: bytes) -> bytes:
    """Applet TSM command UNBLOCK AND SET PIN: 80 3A kind 00, data 81 temp 82 new."""
    return command_apdu(0x80, INS_UNBLOCK_AND_SET_PIN, KIND_REF[kind], 0x00, tlv(TAG_TEMP_PIN, temp_pin) + tlv(TAG_NEW_PIN, new_pin))


def delete_keys(kinds: Iterable[Kind], serial: int | None = None) -> bytes:
    """Applet TSM command DELETE KEYS AND CERTIFICATES: 80 3C kinds-bitmap 00 [C2 serial]."""
    data = b"" if serial is None else tlv(TAG_SERIAL, _serial_bytes(serial))
    return command_apdu(0x80, INS_DELETE_KEYS, _kinds_bitmap(kinds), 0x00, data)


def get_slot_status() -> bytes:
    """Applet TSM command GET SLOT STATUS: 80 3E 00 00 00."""
    return command_apdu(0x80, INS_GET_SLOT_STATUS, 0x00, 0x00, b"", 0x00)


def get_output(offset: int) -> bytes:
    """Applet TSM command GET OUTPUT: 80 40 offset(16 bits) 00, the next chunk of a long output."""
    if not 0 <= offset <= 0xFFFF:
        raise ValueError(f"offset must be 0..0xFFFF, got {offset}")
    return command_apdu(0x80, INS_GET_OUTPUT, offset >> 8, offset & 0xFF, b"", 0x00)
