"""The applet-level adapter interface and conformance checks, in process (the same checks over pcscd: tests/test_pcsc.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mjpki.adapters.applet import AppletAdapter, AppletAdapterError, ReferenceApplet
from mjpki.adapters.applet_checks import CHECKS, render, run_checks
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.serve_se import TEST_KEYS
from mjpki.spec.domain import Kind


def _fresh() -> ReferenceApplet:
    return ReferenceApplet(GpSe("SE-CHECK", TEST_KEYS))


def test_the_reference_applet_passes_every_check() -> None:
    adapter = _fresh()
    assert isinstance(adapter, AppletAdapter)
    results = run_checks(adapter, TEST_KEYS)
    assert [r.id for r in results] == [c[0] for c in CHECKS]
    assert all(r.passed for r in results), render(results)
    assert render(results).endswith(f"{len(CHECKS)}/{len(CHECKS)} checks passed")


def test_the_retry_limits_go_with_install() -> None:
    """The checks install the applet with their limits in C9: a fresh SE of other defaults takes them."""
    adapter = ReferenceApplet(GpSe("SE-CHECK", TEST_KEYS))
    assert all(r.passed for r in run_checks(adapter, TEST_KEYS, auth_tries=4, signing_tries=7))
    assert adapter.se.max_tries(Kind.AUTH) == 4 and adapter.se.max_tries(Kind.SIGNING) == 7

    class IgnoresC9(_Faulty):
        """An applet that keeps its built-in limits (3, 5) whatever INSTALL says."""

        def transmit(self, apdu: bytes) -> bytes:
            response = super().transmit(apdu)
            applet = self.inner.se._applet
            if applet is not None:
                applet.max_tries = {Kind.AUTH: 3, Kind.SIGNING: 5}
            return response

    failed = _failed(IgnoresC9(), tries=(4, 7))
    assert "personalise" in failed


class _Faulty:
    """A ReferenceApplet whose answers (or reset) a fault rewrites: the checks must notice."""

    def __init__(self, rewrite: Callable[[bytes, bytes], bytes] | None = None, *, reset_works: bool = True) -> None:
        self.inner = _fresh()
        self.rewrite = rewrite
        self.reset_works = reset_works

    @property
    def name(self) -> str:
        return "faulty"

    def transmit(self, apdu: bytes) -> bytes:
        response = self.inner.transmit(apdu)
        return self.rewrite(apdu, response) if self.rewrite else response

    def reset(self) -> None:
        if self.reset_works:
            self.inner.reset()

    def close(self) -> None:
        self.inner.close()


def _failed(adapter: AppletAdapter, keys: StaticKeys = TEST_KEYS, tries: tuple[int, int] = (3, 5)) -> set[str]:
    return {r.id for r in run_checks(adapter, keys, auth_tries=tries[0], signing_tries=tries[1]) if not r.passed}


def test_a_locked_pin_answering_6983_to_the_status_query_fails() -> None:
    """OpenSC 0.23 cannot bind a card whose empty VERIFY answers 6983."""

    def rewrite(apdu: bytes, response: bytes) -> bytes:
        return b"\x69\x83" if apdu[:4] == bytes.fromhex("00200080") and len(apdu) <= 5 and response == b"\x63\xc0" else response

    assert _failed(_Faulty(rewrite)) == {"lock"}


def test_a_reset_that_keeps_the_verified_pin_fails() -> None:
    assert "reset-clears" in _failed(_Faulty(reset_works=False))


def test_unknown_aid_answered_otherwise_fails() -> None:
    def rewrite(apdu: bytes, response: bytes) -> bytes:
        return b"\x6a\x86" if response == b"\x6a\x82" and apdu[1] == 0xA4 and apdu[2] == 0x04 else response

    assert "unknown-aid" in _failed(_Faulty(rewrite))


def test_a_card_ignoring_a_tampered_mac_fails() -> None:
    seen: list[bytes] = []

    def rewrite(apdu: bytes, response: bytes) -> bytes:
        # stands for a card that takes wrapped commands without checking their C-MAC
        seen.append(apdu)
        return b"\x90\x00" if apdu[0] == 0x84 and apdu[1] == 0xF2 and response == b"\x69\x82" else response

    assert "scp03-tampered" in _failed(_Faulty(rewrite))
    assert seen


def test_signing_without_verify_fails() -> None:
    def rewrite(apdu: bytes, response: bytes) -> bytes:
        return b"\x00" * 256 + b"\x90\x00" if apdu[:2] == b"\x80\x2a" and response == b"\x69\x82" else response

    assert "sign-after-verify" in _failed(_Faulty(rewrite))


def test_wrong_keys_fail_the_secure_channel_and_say_why_the_rest_cannot_run() -> None:
    wrong = StaticKeys(enc=b"\x01" * 16, mac=b"\x02" * 16, dek=b"\x03" * 16)
    results = {r.id: r for r in run_checks(_fresh(), wrong)}
    assert not results["scp03-mutual-auth"].passed and not results["personalise"].passed
    assert "personalisation failed" in results["read-certificates"].detail
    assert results["unknown-aid"].passed and results["malformed"].passed


def test_a_closed_reference_applet_refuses() -> None:
    adapter = _fresh()
    adapter.close()
    with pytest.raises(AppletAdapterError):
        adapter.transmit(bytes.fromhex("00A4040000"))
    with pytest.raises(AppletAdapterError):
        adapter.reset()
    adapter.close()  # twice is harmless
