"""The served SEs' ISD (and APSD) SCP03 keys: from an option, a 0600 file or the environment; GP's test keys only when asked.

GlobalPlatform publishes the test key set 40 41 ... 4F. An SE holding it is open to anyone who can send it APDUs (with
pcscd, every local user): INITIALIZE UPDATE and EXTERNAL AUTHENTICATE with these keys, then SET TEMPORARY PIN, UNBLOCK
AND SET PIN, wipe or re-personalise (issue 12, finding 2). So no entry point falls back to them: `mjpki serve-se` and
mjpki.adapters.pcsc_system take keys from `--keys-file FILE` (hex, a private file), `--keys HEX` or $MJPKI_PCSC_KEYS,
and use the test keys only when told so in words: `--test-keys`, `--demo`, or MJPKI_PCSC_KEYS=test. Nothing here does
I/O beyond reading the one file it is given.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mjpki.impl.scp03 import StaticKeys

__all__ = [
    "TEST_KEYS",
    "KEYS_ENV",
    "TEST_WORD",
    "TEST_KEYS_WARNING",
    "KeysError",
    "Keys",
    "parse_keys",
    "read_keys_file",
    "read_owner_only",
    "keys_from_environment",
    "is_test_keys",
]

TEST_KEYS: Final = StaticKeys(enc=bytes(range(0x40, 0x50)), mac=bytes(range(0x40, 0x50)), dek=bytes(range(0x40, 0x50)))
"""GlobalPlatform's published test keys 40..4F (ENC = MAC = DEK, version 0x30): for test and demo SEs only."""
KEYS_ENV: Final = "MJPKI_PCSC_KEYS"
"""The environment variable holding the served SEs' keys (hex), or TEST_WORD for the test keys."""
TEST_WORD: Final = "test"
"""MJPKI_PCSC_KEYS=test: the caller says, in words, that these are test SEs with the published test keys."""
TEST_KEYS_WARNING: Final = (
    "WARNING: the SEs' ISD keys are GlobalPlatform's published test keys 40..4F: anyone who can reach pcscd can open them, "
    "set or unblock PINs and sign as their holder. For a test or demo stack only."
)
_MAX_FILE: Final = 4096


class KeysError(ValueError):
    """No keys, or keys in a form that cannot be used: the message is one line that says how to give them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Keys:
    """Resolved keys and where they came from (for messages)."""

    keys: StaticKeys
    source: str
    declared_test: bool = False
    """True when the source said "test" in words (MJPKI_PCSC_KEYS=test), not just happened to hold the test keys."""

    @property
    def test(self) -> bool:
        """Whether these are GP's published test keys."""
        return is_test_keys(self.keys)


def is_test_keys(keys: StaticKeys) -> bool:
    """Whether any of the three keys is GP's published test key (the version does not make them secret)."""
    return TEST_KEYS.enc in (keys.enc, keys.mac, keys.dek)


def parse_keys(text: str) -> StaticKeys:
    """SCP03 static keys from hex: one 16/24/32-byte key used as ENC, MAC and DEK, or three of equal length joined."""
    try:
        raw = bytes.fromhex(text.replace(":", "").replace(" ", "").strip())
    except ValueError as exc:
        raise ValueError(f"keys must be hex: {exc}") from exc
    if len(raw) in (16, 24, 32):
        return StaticKeys(enc=raw, mac=raw, dek=raw)
    if len(raw) in (48, 72, 96):
        n = len(raw) // 3
        return StaticKeys(enc=raw[:n], mac=raw[n : 2 * n], dek=raw[2 * n :])
    raise ValueError(f"keys must be one AES key (16/24/32 bytes) or three (ENC||MAC||DEK), got {len(raw)} bytes")


def read_owner_only(path: str | os.PathLike[str], *, what: str, hint: str = "", limit: int = _MAX_FILE) -> bytes:
    """The bytes of a regular file only its owner can read, at most `limit`; KeysError naming `what` otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise KeysError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeysError(f"{what} {path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeysError(f"{what} {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}): chmod 600 it")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise KeysError(f"{what} {path} is larger than {limit} bytes{hint}")
    return data


def read_keys_file(path: str | os.PathLike[str]) -> StaticKeys:
    """Keys from a regular file of hex text that only its owner can read; KeysError saying what is wrong otherwise."""
    data = read_owner_only(path, what="keys file", hint=": it should hold hex ENC||MAC||DEK (or one key)")
    try:
        return parse_keys(data.decode("ascii"))
    except UnicodeDecodeError:
        raise KeysError(f"keys file {path} is not hex text") from None
    except ValueError as exc:
        raise KeysError(f"keys file {path}: {exc}") from None


def keys_from_environment(environ: Mapping[str, str] | None = None) -> Keys | None:
    """Keys from $MJPKI_PCSC_KEYS (hex, or "test"), None when it is unset or empty; KeysError when malformed."""
    text = (os.environ if environ is None else environ).get(KEYS_ENV, "").strip()
    if not text:
        return None
    if text.lower() == TEST_WORD:
        return Keys(keys=TEST_KEYS, source=f"${KEYS_ENV}={TEST_WORD}", declared_test=True)
    try:
        return Keys(keys=parse_keys(text), source=f"${KEYS_ENV}")
    except ValueError as exc:
        raise KeysError(f"${KEYS_ENV}: {exc}") from None
