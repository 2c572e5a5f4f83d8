"""Short command APDUs (ISO 7816-3 cases 1-4): the one parser the SE and SCP03 both use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["SW_WRONG_LENGTH", "ApduError", "CommandApdu"]

SW_WRONG_LENGTH: Final = b"\x67\x00"


class ApduError(ValueError):
    """Bytes that are not a short command APDU; `sw` is what a card answers."""

    def __init__(self, message: str, sw: bytes = SW_WRONG_LENGTH) -> None:
        super().__init__(message)
        self.sw = sw


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandApdu:
    """A short command APDU: header, data (empty for cases 1-2), Le (None for cases 1 and 3)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    @classmethod
    def parse(cls, apdu: bytes) -> CommandApdu:
        """Split a short command APDU; raise ApduError (SW 6700) for anything else, extended length included."""
        n = len(apdu)
        if n < 4:
            raise ApduError(f"an APDU needs at least CLA INS P1 P2 (4 bytes), got {n}")
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        if n <= 5:
            return cls(cla=cla, ins=ins, p1=p1, p2=p2, le=apdu[4] if n == 5 else None)
        lc = apdu[4]
        if lc == 0:
            raise ApduError("extended-length APDUs are not supported; send at most 255 data bytes per short APDU")
        if n == 5 + lc:
            return cls(cla=cla, ins=ins, p1=p1, p2=p2, data=bytes(apdu[5:]))
        if n == 6 + lc:
            return cls(cla=cla, ins=ins, p1=p1, p2=p2, data=bytes(apdu[5:-1]), le=apdu[-1])
        raise ApduError(f"Lc says {lc} data bytes but the APDU has {n - 5} bytes after Lc")

    @property
    def p1p2(self) -> int:
        """P1 and P2 as one 16-bit number."""
        return self.p1 << 8 | self.p2

    @property
    def ne(self) -> int | None:
        """The number of response bytes asked for: Le, with 00 meaning 256; None without Le."""
        return None if self.le is None else (self.le or 256)

    def to_bytes(self) -> bytes:
        """The APDU's bytes: Lc and data only if there is data, Le only if set."""
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out += bytes([len(self.data)]) + self.data
        if self.le is not None:
            out += bytes([self.le])
        return out
