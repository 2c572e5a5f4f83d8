"""BER-TLV as the interface uses it: tags of 1-3 bytes, definite lengths of 1-3 bytes, no recursion."""

from __future__ import annotations

__all__ = ["TlvError", "tlv", "parse_tlv"]


class TlvError(ValueError):
    """Bytes that are not a sequence of BER-TLV data objects."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


def tlv(tag: int, value: bytes) -> bytes:
    """One data object: the tag's bytes as written, the length, the value."""
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big") + _length(len(value)) + value


def parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """The data objects of `data` in order; TlvError if it is not exactly a sequence of them."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:  # more tag bytes follow while b8 is set, at most two
            for _ in range(2):
                if i >= n:
                    raise TlvError("truncated tag")
                tag = tag << 8 | data[i]
                i += 1
                if not tag & 0x80:
                    break
            else:
                raise TlvError("a tag longer than 3 bytes")
        if i >= n:
            raise TlvError(f"tag {tag:X} has no length")
        first = data[i]
        i += 1
        if first < 0x80:
            length = first
        elif first in (0x81, 0x82):
            width = first - 0x80
            if i + width > n:
                raise TlvError("truncated length")
            length = int.from_bytes(data[i : i + width], "big")
            i += width
        else:
            raise TlvError(f"unsupported length byte {first:02X}")
        if i + length > n:
            raise TlvError(f"tag {tag:X} says {length} bytes, {n - i} remain")
        out.append((tag, bytes(data[i : i + length])))
        i += length
    return out
