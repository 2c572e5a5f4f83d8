"""Issue 12: a short fuzz of the APDU processor (in lockstep with the model) and of serve-se's vpcd framing.

bench/fuzz_apdu.py --count N runs the long version; these few thousand take a few seconds. Fixed seeds: a failure here
is reproduced by the same call.
"""

from __future__ import annotations

from mjpki.apdu_fuzz import apdus, fuzz_applet, fuzz_framing
from mjpki.impl.apdu import CommandApdu
from mjpki.impl.se import GpSe


def test_the_reference_se_survives_hostile_apdus_in_lockstep_with_the_model() -> None:
    assert fuzz_applet(GpSe, count=3000, seed=12) == []


class BreaksOnLongReads(GpSe):
    """A faulty SE: READ BINARY with a short file identifier in P1 (which it should refuse with 6A86) raises."""

    def transmit(self, apdu: bytes, *, caller: bytes | None = None) -> bytes:
        if len(apdu) >= 4 and apdu[1] == 0xB0 and apdu[2] & 0x80:
            raise IndexError("short EF identifiers are not handled")
        return super().transmit(apdu, caller=caller)


def test_the_fuzzer_finds_an_se_that_breaks() -> None:
    findings = fuzz_applet(BreaksOnLongReads, count=3000, seed=12)
    assert findings and CommandApdu.parse(bytes.fromhex(findings[0].apdu)).ins == 0xB0, findings


def test_serve_se_answers_every_whole_vpcd_frame_and_survives_broken_ones() -> None:
    assert fuzz_framing(count=2000, seed=12) == []


def test_the_generator_covers_the_shapes_that_matter() -> None:
    import random

    sample = list(apdus(random.Random(3), 2000))
    assert any(len(a) < 4 for a in sample) and any(len(a) > 200 for a in sample)
    assert {a[1] for a in sample if len(a) >= 4} >= {0xA4, 0xB0, 0x20, 0x2A, 0x50, 0x82, 0xE6}
    assert any(len(a) > 5 and a[4] != len(a) - 5 and a[4] != len(a) - 6 for a in sample)  # Lc that lies
