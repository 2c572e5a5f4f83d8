"""GlobalPlatform Secure Channel Protocol '03' (GPC v2.3 Amendment D), AES, S8 mode: the host (TSM) side and the card (SE) side."""

# Byte-level only: AES, AES-CMAC and the SP 800-108 KDF come from the `cryptography` package; nothing here does I/O.
#
# Choices where Amendment D leaves room (each is also stated where it is implemented):
# - Short APDUs only (Lc 1..255, Le one byte); logical channels 0..3 (CLA 0x00-0x03 / 0x80-0x83).
# - A wrapped command that had an Le carries Le = 0x00 (padding and the R-MAC make the response longer than the plain Le).
# - The encryption counter advances for every command after EXTERNAL AUTHENTICATE, with or without data, at every level.
# - Either side ends the session on any secure messaging error it detects (bad C-MAC, padding, framing, R-MAC).
# - The EXTERNAL AUTHENTICATE response is a bare status word (no R-MAC); R-MAC/R-ENC start with the next command.
# - The sequence counter (pseudo-random card challenges) is the value used for the next challenge and advances on every
#   INITIALIZE UPDATE, so no challenge repeats even if a session is never completed.
# - Failed EXTERNAL AUTHENTICATEs (wrong host cryptogram or C-MAC) are counted per card object (one security domain's key
#   set), non-volatile; a successful one sets the count back to 0. Once AUTHENTICATION_LIMIT fail in a row, INITIALIZE
#   UPDATE answers 6983 (authentication method blocked) for good. GP leaves the limit to the card issuer's policy; this
#   is ASM-SCP03-LOCKOUT (mjpki.spec.assumptions).
# - The host side demands that an unwrapped response carry no more data than the plain command's Le asked for.

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from mjpki.impl.apdu import SW_WRONG_LENGTH, CommandApdu

__all__ = [
    # errors
    "SCP03Error",
    "SecureMessagingError",
    "AuthenticationError",
    # constants
    "SCP_IDENTIFIER",
    "INS_INITIALIZE_UPDATE",
    "INS_EXTERNAL_AUTHENTICATE",
    "SL_C_MAC",
    "SL_C_DECRYPTION",
    "SL_R_MAC",
    "SL_R_ENCRYPTION",
    "SECURITY_LEVELS",
    "I_S16",
    "I_PSEUDO_RANDOM_CHALLENGE",
    "I_R_MAC",
    "I_R_ENCRYPTION",
    "DERIVE_CARD_CRYPTOGRAM",
    "DERIVE_HOST_CRYPTOGRAM",
    "DERIVE_CARD_CHALLENGE",
    "DERIVE_S_ENC",
    "DERIVE_S_MAC",
    "DERIVE_S_RMAC",
    "SW_OK",
    "SW_AUTHENTICATION_BLOCKED",
    "AUTHENTICATION_LIMIT",
    # keys and derivations
    "StaticKeys",
    "SessionKeys",
    "kdf",
    "derive_session_keys",
    "card_cryptogram",
    "host_cryptogram",
    "pseudo_random_card_challenge",
    # INITIALIZE UPDATE
    "initialize_update_command",
    "InitializeUpdateResponse",
    # the two sides
    "SCP03Host",
    "SCP03Card",
]

# --- constants ---------------------------------------------------------------------------------------------------

SCP_IDENTIFIER: Final = 0x03
INS_INITIALIZE_UPDATE: Final = 0x50
INS_EXTERNAL_AUTHENTICATE: Final = 0x82

# Security level bits (EXTERNAL AUTHENTICATE P1, Amendment D Table 7-4) and the levels this module accepts.
SL_C_MAC: Final = 0x01
SL_C_DECRYPTION: Final = 0x02
SL_R_MAC: Final = 0x10
SL_R_ENCRYPTION: Final = 0x20
SECURITY_LEVELS: Final = (0x01, 0x03, 0x11, 0x13, 0x33)

# Bits of the SCP03 "i" parameter (key information byte 3 of the INITIALIZE UPDATE response).
I_S16: Final = 0x01  # S16 mode (16-byte challenges, cryptograms and MACs): not supported here
I_PSEUDO_RANDOM_CHALLENGE: Final = 0x10
I_R_MAC: Final = 0x20
I_R_ENCRYPTION: Final = 0x40

# Data derivation constants (Amendment D Table 4-1).
DERIVE_CARD_CRYPTOGRAM: Final = 0x00
DERIVE_HOST_CRYPTOGRAM: Final = 0x01
DERIVE_CARD_CHALLENGE: Final = 0x02
DERIVE_S_ENC: Final = 0x04
DERIVE_S_MAC: Final = 0x06
DERIVE_S_RMAC: Final = 0x07

SW_OK: Final = b"\x90\x00"
SW_AUTHENTICATION_BLOCKED: Final = b"\x69\x83"
AUTHENTICATION_LIMIT: Final = 64
"""Failed EXTERNAL AUTHENTICATEs in a row after which a security domain's key set is blocked (ASM-SCP03-LOCKOUT): twice
the longest example the applet-level search runs (30 steps), so the suite's own probes never lock a card that counts so."""

_BLOCK = 16
_CHALLENGE_LEN = 8  # S8 mode
_CRYPTOGRAM_LEN = 8
_MAC_LEN = 8
_KEY_LENGTHS = (16, 24, 32)
_CLA_GP = 0x80
_CLA_SM = 0x04  # b3: GlobalPlatform proprietary secure messaging
_CLA_SM_MASK = 0x0C  # b4 b3: must read 01 on a wrapped command, 00 on a plain one
_CLA_CHANNEL = 0x03
_CLA_FURTHER_INTERINDUSTRY = 0x40  # channels 4..19 use a different CLA coding, not supported here
_SEQUENCE_COUNTER_MAX = 0xFFFFFF
_IU_RESPONSE_LEN = 10 + 3 + _CHALLENGE_LEN + _CRYPTOGRAM_LEN  # without the optional 3-byte sequence counter

_SW_CONDITIONS_NOT_SATISFIED = b"\x69\x85"
_SW_INCORRECT_P1P2 = b"\x6a\x86"
_SW_REFERENCED_DATA_NOT_FOUND = b"\x6a\x88"
_SW_CLASS_NOT_SUPPORTED = b"\x6e\x00"
_SW_INS_NOT_SUPPORTED = b"\x6d\x00"


# --- errors ------------------------------------------------------------------------------------------------------


class SCP03Error(Exception):
    """The other side's bytes are not acceptable; `sw` is the ISO 7816 status word a card answers with."""

    sw: bytes = b"\x6f\x00"

    def __init__(self, message: str, *, sw: bytes | None = None) -> None:
        super().__init__(message)
        if sw is not None:
            self.sw = sw


class SecureMessagingError(SCP03Error):
    """A wrapped command or response failed verification (C-MAC, R-MAC, padding, framing, replay): SW 6982."""

    sw = b"\x69\x82"


class AuthenticationError(SCP03Error):
    """A card or host cryptogram did not verify: SW 6300 on the card side."""

    sw = b"\x63\x00"


# --- primitives (all AES work is delegated to `cryptography`) ----------------------------------------------------


def _cmac(key: bytes, data: bytes) -> bytes:
    """The full 16-byte AES-CMAC of data."""
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _aes_block(key: bytes, block: bytes) -> bytes:
    """One AES block encryption (ECB), used to turn a counter block into an ICV."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _cbc_encrypt(key: bytes, data: bytes, *, icv: bytes) -> bytes:
    """AES-CBC encryption of whole blocks."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(icv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _cbc_decrypt(key: bytes, data: bytes, *, icv: bytes) -> bytes:
    """AES-CBC decryption of whole blocks."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(icv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _pad80(data: bytes) -> bytes:
    """ISO/IEC 9797-1 method 2 padding to whole AES blocks: 0x80 then zeros (always at least one byte)."""
    return data + b"\x80" + bytes(-(len(data) + 1) % _BLOCK)


def _unpad80(padded: bytes) -> bytes:
    """Strip method 2 padding, which must lie in the last block; raise SecureMessagingError otherwise."""
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(padded) - len(stripped) >= _BLOCK:
        raise SecureMessagingError("bad padding: the decrypted data does not end in 0x80 followed by fewer than 16 zero bytes")
    return stripped[:-1]


def _bytes(value: bytes, name: str) -> bytes:
    """value as immutable bytes; raise TypeError for anything that is not bytes-like."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes (e.g. bytes.fromhex('...')), got {type(value).__name__}")
    return bytes(value)


def _check_length(value: bytes, length: int, name: str) -> bytes:
    """value as bytes of exactly `length` bytes; raise ValueError saying what was expected."""
    value = _bytes(value, name)
    if len(value) != length:
        raise ValueError(f"{name} must be exactly {length} bytes, got {len(value)}")
    return value


def _check_aes_key(value: bytes, name: str) -> bytes:
    """value as bytes if it is an AES-128/192/256 key; raise ValueError otherwise."""
    value = _bytes(value, name)
    if len(value) not in _KEY_LENGTHS:
        raise ValueError(f"{name} must be 16, 24 or 32 bytes (AES-128/192/256), got {len(value)} bytes; pass the raw key, not hex text")
    return value


def _check_sw(sw: bytes) -> bytes:
    """sw as 2 bytes; raise ValueError otherwise."""
    return _check_length(sw, 2, "the status word")


def _is_success_sw(sw: bytes) -> bool:
    """True for 9000 and warnings 62xx/63xx, the status words that carry data, R-MAC and R-ENC (Amendment D 6.2.5)."""
    return sw == SW_OK or sw[0] in (0x62, 0x63)


def _check_security_level(security_level: int) -> int:
    """security_level if this module supports it; raise ValueError listing the supported levels otherwise."""
    if security_level not in SECURITY_LEVELS:
        supported = ", ".join(f"0x{level:02X}" for level in SECURITY_LEVELS)
        raise ValueError(f"security level 0x{security_level:02X} is not supported; use one of {supported}")
    return security_level


# --- keys and derivations ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticKeys:
    """A static SCP03 key set: K-ENC, K-MAC, K-DEK (AES-128/192/256) and its key version number."""

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    key_version: int = 0x30

    def __post_init__(self) -> None:
        object.__setattr__(self, "enc", _check_aes_key(self.enc, "K-ENC"))
        object.__setattr__(self, "mac", _check_aes_key(self.mac, "K-MAC"))
        object.__setattr__(self, "dek", _check_aes_key(self.dek, "K-DEK"))
        if not 0x01 <= self.key_version <= 0xFF:
            raise ValueError(f"key_version must be 0x01..0xFF (0x00 only means 'any' in INITIALIZE UPDATE), got {self.key_version}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionKeys:
    """The keys of one secure channel session: S-ENC, S-MAC and S-RMAC."""

    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "s_enc", _check_aes_key(self.s_enc, "S-ENC"))
        object.__setattr__(self, "s_mac", _check_aes_key(self.s_mac, "S-MAC"))
        object.__setattr__(self, "s_rmac", _check_aes_key(self.s_rmac, "S-RMAC"))


def kdf(key: bytes, *, constant: int, context: bytes, length_bits: int) -> bytes:
    """Amendment D 4.1.5 data derivation: NIST SP 800-108 counter-mode KDF with AES-CMAC as PRF."""
    key = _check_aes_key(key, "the derivation key")
    context = _bytes(context, "context")
    if not 0 <= constant <= 0xFF:
        raise ValueError(f"the derivation constant must fit in one byte, got {constant}")
    if length_bits <= 0 or length_bits % 8 or length_bits > 0xFFFF:
        raise ValueError(f"length_bits must be a positive multiple of 8 below 65536, got {length_bits}")
    # Amendment D lays out each PRF input as: label (11 zero bytes || constant) || 0x00 || L (2 bytes, bits) || i (1 byte) || context.
    # KBKDFCMAC produces exactly that with caller-supplied fixed data and the 1-byte counter placed in the middle of it.
    before_counter = bytes(11) + bytes([constant]) + b"\x00" + length_bits.to_bytes(2, "big")
    derivation = KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=length_bits // 8,
        rlen=1,
        llen=None,
        location=CounterLocation.MiddleFixed,
        label=None,
        context=None,
        fixed=before_counter + context,
        break_location=len(before_counter),
    )
    return derivation.derive(key)


def derive_session_keys(keys: StaticKeys, *, host_challenge: bytes, card_challenge: bytes) -> SessionKeys:
    """S-ENC, S-MAC, S-RMAC from the static keys and both challenges (Amendment D 6.2.1)."""
    context = _check_length(host_challenge, _CHALLENGE_LEN, "host_challenge") + _check_length(
        card_challenge, _CHALLENGE_LEN, "card_challenge"
    )
    return SessionKeys(
        s_enc=kdf(keys.enc, constant=DERIVE_S_ENC, context=context, length_bits=8 * len(keys.enc)),
        s_mac=kdf(keys.mac, constant=DERIVE_S_MAC, context=context, length_bits=8 * len(keys.mac)),
        s_rmac=kdf(keys.mac, constant=DERIVE_S_RMAC, context=context, length_bits=8 * len(keys.mac)),
    )


def card_cryptogram(session_keys: SessionKeys, *, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The 8-byte card cryptogram (constant 0x00, keyed with S-MAC; Amendment D 6.2.2.2)."""
    context = _check_length(host_challenge, _CHALLENGE_LEN, "host_challenge") + _check_length(
        card_challenge, _CHALLENGE_LEN, "card_challenge"
    )
    return kdf(session_keys.s_mac, constant=DERIVE_CARD_CRYPTOGRAM, context=context, length_bits=8 * _CRYPTOGRAM_LEN)


def host_cryptogram(session_keys: SessionKeys, *, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The 8-byte host cryptogram (constant 0x01, keyed with S-MAC; Amendment D 6.2.2.3)."""
    context = _check_length(host_challenge, _CHALLENGE_LEN, "host_challenge") + _check_length(
        card_challenge, _CHALLENGE_LEN, "card_challenge"
    )
    return kdf(session_keys.s_mac, constant=DERIVE_HOST_CRYPTOGRAM, context=context, length_bits=8 * _CRYPTOGRAM_LEN)


def pseudo_random_card_challenge(keys: StaticKeys, *, sequence_counter: int, aid: bytes) -> bytes:
    """The 8-byte pseudo-random card challenge: constant 0x02, keyed with K-ENC, context = counter (3 bytes) || AID."""
    if not 0 <= sequence_counter <= _SEQUENCE_COUNTER_MAX:
        raise ValueError(f"sequence_counter must be 0..0xFFFFFF (3 bytes), got {sequence_counter}")
    aid = _bytes(aid, "aid")
    if not 5 <= len(aid) <= 16:
        raise ValueError(f"aid must be 5..16 bytes (the invoking security domain's AID), got {len(aid)}")
    context = sequence_counter.to_bytes(3, "big") + aid
    return kdf(keys.enc, constant=DERIVE_CARD_CHALLENGE, context=context, length_bits=8 * _CHALLENGE_LEN)


# --- APDU framing ------------------------------------------------------------------------------------------------


def _check_logical_channel(logical_channel: int) -> int:
    """logical_channel if it is 0..3; raise ValueError otherwise."""
    if not 0 <= logical_channel <= 3:
        raise ValueError(
            f"logical_channel must be 0..3 (channels 4..19 use a CLA coding this module does not support), got {logical_channel}"
        )
    return logical_channel


def initialize_update_command(*, key_version: int, host_challenge: bytes, logical_channel: int = 0) -> bytes:
    """INITIALIZE UPDATE: 80 50 kvn 00 08 host_challenge 00 (CLA carries the logical channel)."""
    if not 0x00 <= key_version <= 0xFF:
        raise ValueError(f"key_version must be 0x00..0xFF (0x00: the first available key set), got {key_version}")
    host_challenge = _check_length(host_challenge, _CHALLENGE_LEN, "host_challenge")
    cla = _CLA_GP | _check_logical_channel(logical_channel)
    return CommandApdu(cla=cla, ins=INS_INITIALIZE_UPDATE, p1=key_version, p2=0x00, data=host_challenge, le=0x00).to_bytes()


@dataclass(frozen=True, slots=True, kw_only=True)
class InitializeUpdateResponse:
    """The INITIALIZE UPDATE response data: diversification data, key information, challenge, cryptogram, counter."""

    key_diversification_data: bytes
    key_version: int
    i_parameter: int
    card_challenge: bytes
    card_cryptogram: bytes
    sequence_counter: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_diversification_data", _check_length(self.key_diversification_data, 10, "key_diversification_data"))
        object.__setattr__(self, "card_challenge", _check_length(self.card_challenge, _CHALLENGE_LEN, "card_challenge"))
        object.__setattr__(self, "card_cryptogram", _check_length(self.card_cryptogram, _CRYPTOGRAM_LEN, "card_cryptogram"))
        if not 0 <= self.key_version <= 0xFF or not 0 <= self.i_parameter <= 0xFF:
            raise ValueError("key_version and i_parameter must each fit in one byte")
        if self.sequence_counter is not None and not 0 <= self.sequence_counter <= _SEQUENCE_COUNTER_MAX:
            raise ValueError(f"sequence_counter must be 0..0xFFFFFF (3 bytes) or None, got {self.sequence_counter}")

    def to_bytes(self) -> bytes:
        """The response data field (without the status word)."""
        out = (
            self.key_diversification_data
            + bytes([self.key_version, SCP_IDENTIFIER, self.i_parameter])
            + self.card_challenge
            + self.card_cryptogram
        )
        if self.sequence_counter is not None:
            out += self.sequence_counter.to_bytes(3, "big")
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> InitializeUpdateResponse:
        """Parse the response data field (without the status word); raise SCP03Error if it is not an SCP03 S8 response."""
        data = _bytes(data, "data")
        if len(data) not in (_IU_RESPONSE_LEN, _IU_RESPONSE_LEN + 3):
            raise SCP03Error(
                f"INITIALIZE UPDATE response data must be {_IU_RESPONSE_LEN} or {_IU_RESPONSE_LEN + 3} bytes (S8 mode), got {len(data)}"
            )
        if data[11] != SCP_IDENTIFIER:
            raise SCP03Error(f"the card answered for SCP{data[11]:02X}, not SCP03")
        return cls(
            key_diversification_data=data[:10],
            key_version=data[10],
            i_parameter=data[12],
            card_challenge=data[13:21],
            card_cryptogram=data[21:29],
            sequence_counter=int.from_bytes(data[29:32], "big") if len(data) > _IU_RESPONSE_LEN else None,
        )


# --- the session state both sides keep ---------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Session:
    """An open secure channel: session keys, security level, MAC chaining value and encryption counter."""

    keys: SessionKeys
    security_level: int
    logical_channel: int
    mac_chaining: bytes
    counter: int = 0  # the value the last command used; the first command after EXTERNAL AUTHENTICATE uses 1
    commands: int = 0

    def begin_command(self) -> None:
        """Advance the encryption counter: once per command, with or without data (Amendment D 6.2.6)."""
        self.counter += 1
        self.commands += 1

    def command_icv(self) -> bytes:
        """ICV for C-DECRYPTION: AES(S-ENC, counter as a 16-byte block)."""
        return _aes_block(self.keys.s_enc, self.counter.to_bytes(_BLOCK, "big"))

    def response_icv(self) -> bytes:
        """ICV for R-ENCRYPTION: AES(S-ENC, 0x80 || counter in 15 bytes), with the counter of the command answered."""
        return _aes_block(self.keys.s_enc, b"\x80" + self.counter.to_bytes(_BLOCK - 1, "big"))

    def command_mac(self, *, header: bytes, body: bytes) -> bytes:
        """Full 16-byte C-MAC over chaining value || header (with modified CLA and Lc) || data field."""
        return _cmac(self.keys.s_mac, self.mac_chaining + header + body)

    def response_mac(self, *, body: bytes, sw: bytes) -> bytes:
        """8-byte R-MAC over chaining value || response data || status word, keyed with S-RMAC."""
        return _cmac(self.keys.s_rmac, self.mac_chaining + body + sw)[:_MAC_LEN]

    def has(self, bit: int) -> bool:
        """True if the session's security level includes bit."""
        return bool(self.security_level & bit)


def _mac_cla(cla: int) -> int:
    """The CLA the C-MAC covers: logical channel zeroed, b4 = 0, b3 = 1 (Amendment D 6.2.4)."""
    return (cla & 0xF0) | _CLA_SM


def _external_authenticate_mac_input(security_level: int, cryptogram: bytes) -> tuple[bytes, bytes]:
    """(MAC header, data) of EXTERNAL AUTHENTICATE as the C-MAC sees them."""
    return bytes([_CLA_GP | _CLA_SM, INS_EXTERNAL_AUTHENTICATE, security_level, 0x00, _CRYPTOGRAM_LEN + _MAC_LEN]), cryptogram


# --- host side ---------------------------------------------------------------------------------------------------


class SCP03Host:
    """The off-card entity (the TSM): opens a session, then wraps commands and unwraps responses."""

    def __init__(self, keys: StaticKeys, *, logical_channel: int = 0, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        if not isinstance(keys, StaticKeys):
            raise TypeError(f"keys must be a StaticKeys, got {type(keys).__name__}")
        self._keys = keys
        self._channel = _check_logical_channel(logical_channel)
        self._random_bytes = random_bytes
        self._host_challenge: bytes | None = None
        self._card: InitializeUpdateResponse | None = None
        self._session_keys: SessionKeys | None = None
        self._session: _Session | None = None

    @property
    def is_open(self) -> bool:
        """True once EXTERNAL AUTHENTICATE has been built and until a response fails verification."""
        return self._session is not None

    @property
    def security_level(self) -> int | None:
        """The session's security level, or None without a session."""
        return None if self._session is None else self._session.security_level

    @property
    def session_keys(self) -> SessionKeys | None:
        """The session keys once the INITIALIZE UPDATE response has been accepted."""
        return self._session_keys

    def initialize_update(self, host_challenge: bytes | None = None, *, key_version: int | None = None) -> bytes:
        """Start a new session: the INITIALIZE UPDATE APDU (random host challenge unless given; kvn defaults to the key set's)."""
        if host_challenge is None:
            host_challenge = self._random_bytes(_CHALLENGE_LEN)
        kvn = self._keys.key_version if key_version is None else key_version
        if kvn not in (0x00, self._keys.key_version):
            raise ValueError(f"key_version must be 0x00 (any) or this key set's 0x{self._keys.key_version:02X}, got 0x{kvn:02X}")
        apdu = initialize_update_command(key_version=kvn, host_challenge=host_challenge, logical_channel=self._channel)
        self._host_challenge = apdu[5:13]
        self._card = None
        self._session_keys = None
        self._session = None
        return apdu

    def process_initialize_update_response(self, response: bytes) -> InitializeUpdateResponse:
        """Check the card's R-APDU (data || SW) to INITIALIZE UPDATE: derive session keys and verify the card cryptogram."""
        if self._host_challenge is None:
            raise RuntimeError("call initialize_update() first")
        response = _bytes(response, "response")
        if len(response) < 2:
            raise ValueError("a response APDU needs at least the 2-byte status word")
        data, sw = response[:-2], response[-2:]
        if sw != SW_OK:
            raise SCP03Error(f"INITIALIZE UPDATE was refused with SW {sw.hex().upper()}", sw=sw)
        parsed = InitializeUpdateResponse.from_bytes(data)
        if parsed.key_version != self._keys.key_version:
            raise SCP03Error(f"the card used key version 0x{parsed.key_version:02X}, these keys are 0x{self._keys.key_version:02X}")
        if parsed.i_parameter & I_S16:
            raise SCP03Error(f"the card runs SCP03 in S16 mode (i=0x{parsed.i_parameter:02X}); only S8 mode is supported")
        if bool(parsed.i_parameter & I_PSEUDO_RANDOM_CHALLENGE) != (parsed.sequence_counter is not None):
            raise SCP03Error(f"i=0x{parsed.i_parameter:02X} and the presence of a sequence counter disagree")
        session_keys = derive_session_keys(self._keys, host_challenge=self._host_challenge, card_challenge=parsed.card_challenge)
        expected = card_cryptogram(session_keys, host_challenge=self._host_challenge, card_challenge=parsed.card_challenge)
        if not hmac.compare_digest(expected, parsed.card_cryptogram):
            raise AuthenticationError("the card cryptogram does not verify: the card does not hold these static keys")
        self._card = parsed
        self._session_keys = session_keys
        return parsed

    def external_authenticate(self, security_level: int) -> bytes:
        """The EXTERNAL AUTHENTICATE APDU (84 82 level 00 10 host cryptogram || C-MAC); the session is open afterwards."""
        if self._card is None or self._session_keys is None or self._host_challenge is None:
            raise RuntimeError("call initialize_update() and process_initialize_update_response() first")
        _check_security_level(security_level)
        if security_level & SL_R_MAC and not self._card.i_parameter & I_R_MAC:
            raise ValueError(f"the card does not offer R-MAC (i=0x{self._card.i_parameter:02X}); use level 0x01 or 0x03")
        if security_level & SL_R_ENCRYPTION and not self._card.i_parameter & I_R_ENCRYPTION:
            raise ValueError(f"the card does not offer R-ENCRYPTION (i=0x{self._card.i_parameter:02X}); use a level without 0x20")
        cryptogram = host_cryptogram(self._session_keys, host_challenge=self._host_challenge, card_challenge=self._card.card_challenge)
        mac_header, data = _external_authenticate_mac_input(security_level, cryptogram)
        full_mac = _cmac(self._session_keys.s_mac, bytes(_BLOCK) + mac_header + data)
        # The card's answer is a bare status word; the caller discards this host if it is not 9000.
        self._session = _Session(
            keys=self._session_keys, security_level=security_level, logical_channel=self._channel, mac_chaining=full_mac
        )
        self._host_challenge = None
        return bytes([mac_header[0] | self._channel]) + mac_header[1:] + data + full_mac[:_MAC_LEN]

    def wrap(self, apdu: bytes) -> bytes:
        """Protect a plain short command APDU at the session's level: C-DECRYPTION (if set), then C-MAC."""
        session = self._require_session()
        plain = CommandApdu.parse(_bytes(apdu, "apdu"))
        if plain.cla & _CLA_FURTHER_INTERINDUSTRY or plain.cla & _CLA_SM_MASK:
            raise ValueError(f"CLA 0x{plain.cla:02X} must be a plain first-interindustry or GP class (0x00-0x03, 0x80-0x83, ...)")
        if plain.cla & _CLA_CHANNEL != session.logical_channel:
            raise ValueError(
                f"CLA 0x{plain.cla:02X} names logical channel {plain.cla & _CLA_CHANNEL}, the session is on {session.logical_channel}"
            )
        body_len = len(_pad80(plain.data)) if session.has(SL_C_DECRYPTION) and plain.data else len(plain.data)
        if body_len + _MAC_LEN > 0xFF:
            raise ValueError(f"{len(plain.data)} data bytes do not fit one short APDU once padded and MACed; split the command")
        session.begin_command()
        body = plain.data
        if session.has(SL_C_DECRYPTION) and body:
            # No encryption for a command without data; the counter advanced anyway (begin_command).
            body = _cbc_encrypt(session.keys.s_enc, _pad80(body), icv=session.command_icv())
        lc = len(body) + _MAC_LEN
        full_mac = session.command_mac(header=bytes([_mac_cla(plain.cla), plain.ins, plain.p1, plain.p2, lc]), body=body)
        session.mac_chaining = full_mac
        # Le, when present, becomes 0x00: padding and the R-MAC make the response longer than the plain Le announced.
        le = None if plain.le is None else 0x00
        wrapped = CommandApdu(cla=plain.cla | _CLA_SM, ins=plain.ins, p1=plain.p1, p2=plain.p2, data=body + full_mac[:_MAC_LEN], le=le)
        return wrapped.to_bytes()

    def unwrap(self, response: bytes) -> bytes:
        """Verify and decrypt the card's R-APDU (data || SW) to the last wrapped command; return plain data || SW."""
        session = self._require_session()
        if session.commands == 0:
            raise RuntimeError("no command has been wrapped in this session yet; the EXTERNAL AUTHENTICATE answer is a bare SW")
        response = _bytes(response, "response")
        if len(response) < 2:
            raise ValueError("a response APDU needs at least the 2-byte status word")
        data, sw = response[:-2], response[-2:]
        if not session.has(SL_R_MAC):
            return response
        try:
            if not _is_success_sw(sw):
                if data:
                    raise SecureMessagingError(f"SW {sw.hex().upper()} is an error, yet {len(data)} unprotected data bytes came with it")
                return response
            if len(data) < _MAC_LEN:
                raise SecureMessagingError(f"the response has {len(data)} data bytes, too few to hold an 8-byte R-MAC")
            body, mac = data[:-_MAC_LEN], data[-_MAC_LEN:]
            if not hmac.compare_digest(session.response_mac(body=body, sw=sw), mac):
                raise SecureMessagingError("the R-MAC does not verify")
            if session.has(SL_R_ENCRYPTION) and body:
                if len(body) % _BLOCK:
                    raise SecureMessagingError(f"encrypted response data must be whole 16-byte blocks, got {len(body)} bytes")
                body = _unpad80(_cbc_decrypt(session.keys.s_enc, body, icv=session.response_icv()))
                if not body:
                    raise SecureMessagingError("encrypted response data that decrypts to nothing: empty data is sent unencrypted")
        except SecureMessagingError:
            self._session = None
            raise
        return body + sw

    def _require_session(self) -> _Session:
        """The open session, or RuntimeError saying how to open one."""
        if self._session is None:
            raise RuntimeError(
                "no open secure channel: call initialize_update(), process_initialize_update_response(), external_authenticate()"
            )
        return self._session


# --- card side ---------------------------------------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _Pending:
    """What the card remembers between INITIALIZE UPDATE and EXTERNAL AUTHENTICATE."""

    session_keys: SessionKeys
    host_cryptogram: bytes
    logical_channel: int


class SCP03Card:
    """The security domain's side: answers INITIALIZE UPDATE and EXTERNAL AUTHENTICATE, then unwraps commands and wraps responses."""

    def __init__(
        self,
        keys: StaticKeys,
        *,
        aid: bytes | None = None,
        sequence_counter: int = 1,
        key_diversification_data: bytes = bytes(10),
        r_mac: bool = True,
        r_encryption: bool = True,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        failed_authentications: int = 0,
        authentication_limit: int | None = AUTHENTICATION_LIMIT,
    ) -> None:
        if not isinstance(keys, StaticKeys):
            raise TypeError(f"keys must be a StaticKeys, got {type(keys).__name__}")
        if authentication_limit is not None and authentication_limit < 1:
            raise ValueError(f"authentication_limit must be at least 1 (or None: no lockout), got {authentication_limit}")
        if failed_authentications < 0:
            raise ValueError(f"failed_authentications must be 0 or more, got {failed_authentications}")
        self._failed = failed_authentications
        self._limit = authentication_limit
        if r_encryption and not r_mac:
            raise ValueError("R-ENCRYPTION needs R-MAC: pass r_mac=True or r_encryption=False")
        if not 0 <= sequence_counter <= _SEQUENCE_COUNTER_MAX:
            raise ValueError(f"sequence_counter must be 0..0xFFFFFF (3 bytes), got {sequence_counter}")
        self._keys = keys
        # With an AID the card challenge is pseudo-random (i b5), derived from the sequence counter and this AID.
        self._aid = None if aid is None else _bytes(aid, "aid")
        if self._aid is not None and not 5 <= len(self._aid) <= 16:
            raise ValueError(f"aid must be 5..16 bytes (the security domain's AID), got {len(self._aid)}")
        self._sequence_counter = sequence_counter
        self._diversification = _check_length(key_diversification_data, 10, "key_diversification_data")
        self._i = (
            (I_PSEUDO_RANDOM_CHALLENGE if self._aid is not None else 0)
            | (I_R_MAC if r_mac else 0)
            | (I_R_ENCRYPTION if r_encryption else 0)
        )
        self._random_bytes = random_bytes
        self._pending: _Pending | None = None
        self._session: _Session | None = None

    @property
    def i_parameter(self) -> int:
        """The SCP03 "i" parameter this card announces."""
        return self._i

    @property
    def sequence_counter(self) -> int:
        """The counter value the next pseudo-random card challenge will use."""
        return self._sequence_counter

    @property
    def is_open(self) -> bool:
        """True between a successful EXTERNAL AUTHENTICATE and the session's end."""
        return self._session is not None

    @property
    def failed_authentications(self) -> int:
        """Failed EXTERNAL AUTHENTICATEs since the last successful one (non-volatile: keep it with the sequence counter)."""
        return self._failed

    @property
    def blocked(self) -> bool:
        """True once the key set is blocked: INITIALIZE UPDATE answers 6983 from then on."""
        return self._limit is not None and self._failed >= self._limit

    @property
    def security_level(self) -> int | None:
        """The session's security level, or None without a session."""
        return None if self._session is None else self._session.security_level

    def close(self) -> None:
        """End any session or pending authentication (card reset, SELECT of another application, ...)."""
        self._pending = None
        self._session = None

    def initialize_update(self, apdu: bytes) -> bytes:
        """Answer INITIALIZE UPDATE with data || 9000; any running session ends. Raise SCP03Error (with its SW) if malformed."""
        self.close()
        try:
            command = CommandApdu.parse(_bytes(apdu, "apdu"))
        except (TypeError, ValueError) as exc:
            raise SCP03Error(f"malformed INITIALIZE UPDATE: {exc}", sw=SW_WRONG_LENGTH) from exc
        if command.cla & ~_CLA_CHANNEL != _CLA_GP:
            raise SCP03Error(
                f"INITIALIZE UPDATE needs CLA 0x80-0x83 without secure messaging, got 0x{command.cla:02X}", sw=_SW_CLASS_NOT_SUPPORTED
            )
        if command.ins != INS_INITIALIZE_UPDATE:
            raise SCP03Error(f"not INITIALIZE UPDATE: INS 0x{command.ins:02X}", sw=_SW_INS_NOT_SUPPORTED)
        if command.p1 not in (0x00, self._keys.key_version):
            raise SCP03Error(f"no key set with version 0x{command.p1:02X}", sw=_SW_REFERENCED_DATA_NOT_FOUND)
        if command.p2 != 0x00:
            raise SCP03Error(f"INITIALIZE UPDATE needs P2 = 00, got 0x{command.p2:02X}", sw=_SW_INCORRECT_P1P2)
        if len(command.data) != _CHALLENGE_LEN:
            raise SCP03Error(f"the host challenge must be {_CHALLENGE_LEN} bytes (S8 mode), got {len(command.data)}", sw=SW_WRONG_LENGTH)
        if self.blocked:
            raise SCP03Error(
                f"authentication method blocked: {self._failed} failed EXTERNAL AUTHENTICATEs in a row", sw=SW_AUTHENTICATION_BLOCKED
            )
        host_challenge = command.data
        counter: int | None = None
        if self._aid is not None:
            if self._sequence_counter > _SEQUENCE_COUNTER_MAX:
                raise SCP03Error("the sequence counter is exhausted; the key set must be replaced", sw=_SW_CONDITIONS_NOT_SATISFIED)
            counter = self._sequence_counter
            challenge = pseudo_random_card_challenge(self._keys, sequence_counter=counter, aid=self._aid)
            self._sequence_counter += 1  # every INITIALIZE UPDATE consumes a value, so no challenge repeats
        else:
            challenge = _check_length(self._random_bytes(_CHALLENGE_LEN), _CHALLENGE_LEN, "random_bytes(8)")
        session_keys = derive_session_keys(self._keys, host_challenge=host_challenge, card_challenge=challenge)
        response = InitializeUpdateResponse(
            key_diversification_data=self._diversification,
            key_version=self._keys.key_version,
            i_parameter=self._i,
            card_challenge=challenge,
            card_cryptogram=card_cryptogram(session_keys, host_challenge=host_challenge, card_challenge=challenge),
            sequence_counter=counter,
        )
        self._pending = _Pending(
            session_keys=session_keys,
            host_cryptogram=host_cryptogram(session_keys, host_challenge=host_challenge, card_challenge=challenge),
            logical_channel=command.cla & _CLA_CHANNEL,
        )
        return response.to_bytes() + SW_OK

    def external_authenticate(self, apdu: bytes) -> bytes:
        """Verify EXTERNAL AUTHENTICATE and open the session (returns 9000); raise AuthenticationError/SCP03Error otherwise."""
        pending, self._pending = self._pending, None  # one attempt per INITIALIZE UPDATE
        self._session = None
        if pending is None:
            raise SCP03Error("EXTERNAL AUTHENTICATE must directly follow INITIALIZE UPDATE", sw=_SW_CONDITIONS_NOT_SATISFIED)
        try:
            command = CommandApdu.parse(_bytes(apdu, "apdu"))
        except (TypeError, ValueError) as exc:
            raise SCP03Error(f"malformed EXTERNAL AUTHENTICATE: {exc}", sw=SW_WRONG_LENGTH) from exc
        if command.cla != _CLA_GP | _CLA_SM | pending.logical_channel:
            raise SCP03Error(
                f"EXTERNAL AUTHENTICATE needs CLA 0x{_CLA_GP | _CLA_SM | pending.logical_channel:02X}, got 0x{command.cla:02X}",
                sw=_SW_CLASS_NOT_SUPPORTED,
            )
        if command.ins != INS_EXTERNAL_AUTHENTICATE:
            raise SCP03Error(f"not EXTERNAL AUTHENTICATE: INS 0x{command.ins:02X}", sw=_SW_INS_NOT_SUPPORTED)
        if len(command.data) != _CRYPTOGRAM_LEN + _MAC_LEN or command.le is not None:
            raise SCP03Error("EXTERNAL AUTHENTICATE carries exactly 16 data bytes and no Le", sw=SW_WRONG_LENGTH)
        level = command.p1
        if level not in SECURITY_LEVELS or command.p2 != 0x00:
            raise SCP03Error(f"unsupported security level 0x{level:02X} or P2 0x{command.p2:02X}", sw=_SW_INCORRECT_P1P2)
        if (level & SL_R_MAC and not self._i & I_R_MAC) or (level & SL_R_ENCRYPTION and not self._i & I_R_ENCRYPTION):
            raise SCP03Error(f"security level 0x{level:02X} asks for response protection this card does not offer", sw=_SW_INCORRECT_P1P2)
        cryptogram, mac = command.data[:_CRYPTOGRAM_LEN], command.data[_CRYPTOGRAM_LEN:]
        # The cryptogram is checked first, so a host holding other keys gets 6300 as GP specifies, not 6982.
        if not hmac.compare_digest(cryptogram, pending.host_cryptogram):
            self._failed += 1
            raise AuthenticationError("the host cryptogram does not verify")
        mac_header, data = _external_authenticate_mac_input(level, cryptogram)
        full_mac = _cmac(pending.session_keys.s_mac, bytes(_BLOCK) + mac_header + data)
        if not hmac.compare_digest(full_mac[:_MAC_LEN], mac):
            self._failed += 1
            raise SecureMessagingError("the C-MAC of EXTERNAL AUTHENTICATE does not verify")
        self._failed = 0
        self._session = _Session(
            keys=pending.session_keys, security_level=level, logical_channel=pending.logical_channel, mac_chaining=full_mac
        )
        return SW_OK

    def unwrap_command(self, apdu: bytes) -> bytes:
        """Verify the C-MAC and decrypt a wrapped command, returning the plain APDU; else end the session, raise SecureMessagingError."""
        try:
            return self._unwrap_command(apdu)
        except SecureMessagingError:
            self.close()
            raise

    def wrap_response(self, data: bytes, sw: bytes) -> bytes:
        """Protect the response to the last unwrapped command: R-ENCRYPTION (if set), then R-MAC; error SWs go out bare."""
        data = _bytes(data, "data")
        sw = _check_sw(sw)
        if not _is_success_sw(sw):
            if data:
                raise ValueError(f"SW {sw.hex().upper()} is an error status word: it carries no data")
            return sw
        session = self._session
        if session is None or session.commands == 0:
            raise RuntimeError("no command has been unwrapped in an open session; only error status words can be sent")
        body = data
        if session.has(SL_R_ENCRYPTION) and body:
            body = _cbc_encrypt(session.keys.s_enc, _pad80(body), icv=session.response_icv())
        if session.has(SL_R_MAC):
            body += session.response_mac(body=body, sw=sw)
        if len(body) > 256:
            raise ValueError(f"{len(data)} data bytes do not fit a short response once padded and MACed; return less data")
        return body + sw

    def _unwrap_command(self, apdu: bytes) -> bytes:
        """unwrap_command without the session teardown."""
        session = self._session
        if session is None:
            raise SecureMessagingError("no open secure channel: INITIALIZE UPDATE and EXTERNAL AUTHENTICATE first")
        try:
            wrapped = CommandApdu.parse(_bytes(apdu, "apdu"))
        except (TypeError, ValueError) as exc:
            raise SecureMessagingError(f"malformed wrapped command: {exc}") from exc
        if wrapped.cla & _CLA_FURTHER_INTERINDUSTRY or wrapped.cla & _CLA_SM_MASK != _CLA_SM:
            raise SecureMessagingError(f"CLA 0x{wrapped.cla:02X} does not indicate GlobalPlatform secure messaging (b4 b3 = 01)")
        if wrapped.cla & _CLA_CHANNEL != session.logical_channel:
            raise SecureMessagingError(
                f"CLA 0x{wrapped.cla:02X} is for logical channel {wrapped.cla & _CLA_CHANNEL}, the session is on {session.logical_channel}"
            )
        if len(wrapped.data) < _MAC_LEN:
            raise SecureMessagingError(f"the data field has {len(wrapped.data)} bytes, too few to hold an 8-byte C-MAC")
        session.begin_command()
        body, mac = wrapped.data[:-_MAC_LEN], wrapped.data[-_MAC_LEN:]
        mac_header = bytes([_mac_cla(wrapped.cla), wrapped.ins, wrapped.p1, wrapped.p2, len(wrapped.data)])
        full_mac = session.command_mac(header=mac_header, body=body)
        if not hmac.compare_digest(full_mac[:_MAC_LEN], mac):
            raise SecureMessagingError("the C-MAC does not verify")
        session.mac_chaining = full_mac
        if session.has(SL_C_DECRYPTION) and body:
            if len(body) % _BLOCK:
                raise SecureMessagingError(f"encrypted command data must be whole 16-byte blocks, got {len(body)} bytes")
            body = _unpad80(_cbc_decrypt(session.keys.s_enc, body, icv=session.command_icv()))
            if not body:
                raise SecureMessagingError("an encrypted data field that decrypts to nothing: a command without data is sent unencrypted")
        return CommandApdu(cla=wrapped.cla & ~_CLA_SM, ins=wrapped.ins, p1=wrapped.p1, p2=wrapped.p2, data=body, le=wrapped.le).to_bytes()
