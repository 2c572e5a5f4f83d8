"""What the tester does to an applet (the model's inputs) and what it sees back (observations).

Most inputs are concrete: `Send` carries the exact bytes. SCP03 needs the host's keys, which the model does not hold,
so the secure-channel inputs are abstract and a mapper (mjpki.applet_lockstep) makes their bytes: `InitUpdate`,
`ExtAuth` (with a right or wrong host cryptogram and C-MAC) and `Wrapped` (a plain command protected with the host's
current session, intact, with a broken C-MAC, or the previous wrapped command sent again). Values the card chooses
(R, keys, signatures, challenges, cryptograms) come back in the observation and are judged by property.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Tamper", "Send", "InitUpdate", "ExtAuth", "Wrapped", "Reset", "SwitchCaller", "Command", "Observed", "command_from_json"]


class Tamper(Enum):
    """How a wrapped command is spoiled on its way to the card."""

    NONE = "none"
    MAC = "mac"  # one bit of the C-MAC flipped; the host then acts as if the command had never been sent
    REPLAY = "replay"  # the previous wrapped command's bytes sent again


@dataclass(frozen=True, slots=True)
class Send:
    """A plain command APDU, sent exactly as given (malformed ones included)."""

    apdu: bytes

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        return {"op": "send", "apdu": self.apdu.hex().upper()}


@dataclass(frozen=True, slots=True)
class InitUpdate:
    """INITIALIZE UPDATE `80 50 kvn 00 08 host-challenge 00` to the selected application's security domain."""

    key_version: int = 0x30

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        return {"op": "initialize-update", "key_version": self.key_version}


@dataclass(frozen=True, slots=True)
class ExtAuth:
    """EXTERNAL AUTHENTICATE `84 82 level 00 10 cryptogram C-MAC` answering the last INITIALIZE UPDATE."""

    level: int
    cryptogram_ok: bool = True
    mac_ok: bool = True

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        return {"op": "external-authenticate", "level": self.level, "cryptogram_ok": self.cryptogram_ok, "mac_ok": self.mac_ok}


@dataclass(frozen=True, slots=True)
class Wrapped:
    """A plain command (CLA 00 or 80) protected with the host's current SCP03 session (CLA 04 / 84)."""

    apdu: bytes
    tamper: Tamper = Tamper.NONE

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        return {"op": "wrapped", "apdu": self.apdu.hex().upper(), "tamper": self.tamper.value}


@dataclass(frozen=True, slots=True)
class Reset:
    """A card reset (power cycle): volatile state is lost, non-volatile state stays."""

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        return {"op": "reset"}


@dataclass(frozen=True, slots=True)
class SwitchCaller:
    """From now on another app (its certificate hash) or a reader with no app (None) sends the commands (ACL-1).

    Nothing on the card changes: the selection and what was verified stay, as when another app's command reaches an
    applet already selected on the channel. Only adapters that can speak as several callers carry it out.
    """

    caller: bytes | None

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        return {"op": "switch-caller", "caller": None if self.caller is None else self.caller.hex().upper()}


Command = Send | InitUpdate | ExtAuth | Wrapped | Reset | SwitchCaller


def command_from_json(data: Any) -> Command:
    """Read a command written by `to_json`; ValueError with what is wrong otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise ValueError(f"a command is an object with an 'op', got {data!r:.80}")
    op = data["op"]
    try:
        if op == "send":
            return Send(bytes.fromhex(data["apdu"]))
        if op == "initialize-update":
            return InitUpdate(_byte(data["key_version"]))
        if op == "external-authenticate":
            return ExtAuth(_byte(data["level"]), cryptogram_ok=bool(data["cryptogram_ok"]), mac_ok=bool(data["mac_ok"]))
        if op == "wrapped":
            return Wrapped(bytes.fromhex(data["apdu"]), Tamper(data.get("tamper", "none")))
        if op == "reset":
            return Reset()
        if op == "switch-caller":
            return SwitchCaller(None if data["caller"] is None else bytes.fromhex(data["caller"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed {op!r} command: {exc}") from None
    raise ValueError(f"unknown command op {op!r}: one of send, initialize-update, external-authenticate, wrapped, reset, switch-caller")


def _byte(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise ValueError(f"expected a byte 0..255, got {value!r:.40}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """The card's answer as the host saw it: status word, plain data (unwrapped by the host), and host-side findings.

    `host_error` is what the host's own checks found wrong with the answer (an R-MAC or card cryptogram that does not
    verify, a wrapped answer that does not decrypt); `cryptogram_keys` names the key sets ("isd", "apsd") under which
    an INITIALIZE UPDATE's card cryptogram verified.
    """

    sw: bytes
    data: bytes = b""
    host_error: str | None = None
    cryptogram_keys: frozenset[str] = frozenset()

    @property
    def sw_hex(self) -> str:
        """The status word as 4 upper-case hex digits."""
        return self.sw.hex().upper()

    def to_json(self) -> dict[str, Any]:
        """JSON data of the trace format."""
        out: dict[str, Any] = {"sw": self.sw_hex, "data": self.data.hex().upper()}
        if self.host_error is not None:
            out["host_error"] = self.host_error
        if self.cryptogram_keys:
            out["cryptogram_keys"] = sorted(self.cryptogram_keys)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Observed:
        """Read an observation written by `to_json`; ValueError otherwise."""
        if not isinstance(data, dict):
            raise ValueError("an observation is an object")
        try:
            sw = bytes.fromhex(data["sw"])
            if len(sw) not in (0, 2):
                raise ValueError("sw must be 2 bytes (or empty: a reset, or an answer without a status word)")
            return cls(
                sw=sw,
                data=bytes.fromhex(data.get("data", "")),
                host_error=data.get("host_error"),
                cryptogram_keys=frozenset(data.get("cryptogram_keys", ())),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed observation: {exc}") from None
