"""Issue 12, finding 9: failed SCP03 authentications are counted and block a key set (ASM-SCP03-LOCKOUT); Le and short answers.

The reference SE (mjpki.impl.se.GpSe, through mjpki.impl.scp03.SCP03Card) and the applet-level model (mjpki.spec.apdu)
agree on the count, on what resets it and on the 6983 once blocked; an SE that never blocks is caught by the lockstep.
A response shortened on the way fails the R-MAC; a short answer the card MACed is accepted (docs/apdu-interface.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import pytest

from mjpki.applet_lockstep import AppletRun, access_rule_apdu, install_apdu, open_channel, select
from mjpki.applet_run import applet_target_for_class
from mjpki.impl.apdu import CommandApdu
from mjpki.impl.scp03 import (
    AUTHENTICATION_LIMIT,
    SW_AUTHENTICATION_BLOCKED,
    SCP03Card,
    SCP03Host,
    SecureMessagingError,
    StaticKeys,
)
from mjpki.impl.se import GpSe
from mjpki.impl.system import OFFICIAL_APP_HASH
from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.commands import Command, ExtAuth, InitUpdate, Reset, Wrapped

KEYS = StaticKeys(enc=secrets.token_bytes(16), mac=secrets.token_bytes(16), dek=secrets.token_bytes(16))
AID = bytes.fromhex("A000000151000000")
FAIL = [InitUpdate(I.KEY_VERSION), ExtAuth(0x33, cryptogram_ok=False)]
FAIL_MAC = [InitUpdate(I.KEY_VERSION), ExtAuth(0x33, mac_ok=False)]


def _authenticate(card: SCP03Card, host: SCP03Host, *, right: bool = True) -> bytes:
    """One INITIALIZE UPDATE / EXTERNAL AUTHENTICATE; the card's answer to the second (or to the first, if it refused)."""
    answer = card.initialize_update(host.initialize_update())
    host.process_initialize_update_response(answer)
    command = bytearray(host.external_authenticate(0x33))
    if not right:
        command[5] ^= 0x01  # one bit of the host cryptogram
    try:
        return card.external_authenticate(bytes(command))
    except Exception as exc:  # SCP03Error and its subclasses carry the status word
        return exc.sw  # type: ignore[attr-defined,no-any-return]


def test_the_limit_is_the_interfaces() -> None:
    assert AUTHENTICATION_LIMIT == I.AUTHENTICATION_LIMIT == 64


def test_a_card_blocks_after_the_limit_and_a_success_resets_the_count() -> None:
    card = SCP03Card(KEYS, aid=AID, authentication_limit=3)
    assert _authenticate(card, SCP03Host(KEYS), right=False) == b"\x63\x00"
    assert _authenticate(card, SCP03Host(KEYS), right=False) == b"\x63\x00" and card.failed_authentications == 2
    assert _authenticate(card, SCP03Host(KEYS)) == b"\x90\x00" and card.failed_authentications == 0
    for _ in range(3):
        assert _authenticate(card, SCP03Host(KEYS), right=False) == b"\x63\x00"
    counter = card.sequence_counter
    with pytest.raises(Exception) as refused:
        card.initialize_update(SCP03Host(KEYS).initialize_update())
    assert getattr(refused.value, "sw", None) == SW_AUTHENTICATION_BLOCKED and "blocked" in str(refused.value)
    assert card.sequence_counter == counter and card.blocked  # no challenge given, none used up
    card.close()  # a reset does not unblock it
    assert card.blocked


def _lockstep(commands: Sequence[Command], cls: type = GpSe) -> AppletRun:
    """The commands to a fresh `cls` and to the model, side by side; the run (check .divergence)."""
    run = AppletRun(applet_target_for_class(cls, name=cls.__name__, se_id="SE-LOCK"))
    try:
        for command in commands:
            if run.send(command) is None:
                break
    finally:
        run.close()
    return run


def _isd_lockout() -> list[Command]:
    """63 failures (both kinds, a reset among them), a success, then 64 failures: INITIALIZE UPDATE is blocked for good."""
    commands: list[Command] = [select(I.ISD_AID)]
    commands += (FAIL + FAIL_MAC) * 31 + FAIL + [Reset(), select(I.ISD_AID)] + open_channel()  # 63 failed, then a success
    commands += FAIL * AUTHENTICATION_LIMIT
    return [*commands, InitUpdate(I.KEY_VERSION), Reset(), select(I.ISD_AID), InitUpdate(I.KEY_VERSION)]


def test_the_reference_se_and_the_model_block_the_isd_alike() -> None:
    run = _lockstep(_isd_lockout())
    assert run.divergence is None, run.divergence
    assert [s.exchange.observed.sw for s in run.steps[-4:]] == [SW_AUTHENTICATION_BLOCKED, b"", b"\x90\x00", SW_AUTHENTICATION_BLOCKED]
    assert run.state.isd.failures == AUTHENTICATION_LIMIT


def test_the_apsd_counts_on_its_own_and_a_new_install_starts_afresh() -> None:
    install = [Wrapped(install_apdu(None)), Wrapped(access_rule_apdu([OFFICIAL_APP_HASH]))]
    delete = [Wrapped(bytes.fromhex("80E400800C4F0A") + I.JPKI_AID + b"\x00")]
    commands: list[Command] = [select(I.ISD_AID), *open_channel(), *install, select(I.JPKI_AID)]
    commands += FAIL * AUTHENTICATION_LIMIT + [InitUpdate(I.KEY_VERSION)]  # the APSD is blocked ...
    commands += [select(I.ISD_AID), *open_channel()]  # ... the ISD is not
    commands += [*delete, *install, select(I.JPKI_AID), *open_channel()]  # a new applet, a new APSD
    run = _lockstep(commands)
    assert run.divergence is None, run.divergence
    blocked = 4 + len(install) + 2 * AUTHENTICATION_LIMIT
    assert run.steps[blocked].exchange.observed.sw == SW_AUTHENTICATION_BLOCKED
    assert run.steps[-1].exchange.observed.sw == b"\x90\x00"


class NeverBlocks(GpSe):
    """A faulty SE: its ISD counts nothing (what GpSe did before issue 12)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._isd_card = SCP03Card(self._isd_keys, aid=AID, authentication_limit=None)  # type: ignore[has-type]


def test_an_se_that_never_blocks_diverges() -> None:
    run = _lockstep(_isd_lockout(), NeverBlocks)
    assert run.divergence is not None and run.divergence.rule == "initialize-update", run.divergence
    assert "6983" in run.divergence.what and "ISS-9" in run.divergence.reqs


def test_the_count_survives_a_snapshot() -> None:
    se = GpSe("SE-SNAP", KEYS)
    host = SCP03Host(KEYS)
    answer = se.transmit(host.initialize_update(), caller=None)
    host.process_initialize_update_response(answer)
    command = bytearray(host.external_authenticate(0x33))
    command[5] ^= 0x01
    assert se.transmit(bytes(command), caller=None) == b"\x63\x00"
    restored = GpSe.from_snapshot(se.snapshot())
    assert restored.snapshot()["isd"]["failed_authentications"] == 1


# --- Le and short answers ------------------------------------------------------------------------------------------------


def _session() -> tuple[SCP03Host, SCP03Card]:
    host, card = SCP03Host(KEYS), SCP03Card(KEYS, aid=AID)
    host.process_initialize_update_response(card.initialize_update(host.initialize_update()))
    assert card.external_authenticate(host.external_authenticate(0x33)) == b"\x90\x00"
    return host, card


def test_a_short_answer_the_card_macs_is_accepted_and_a_shortened_one_is_not() -> None:
    read_16 = CommandApdu(cla=0x00, ins=0xB0, p1=0, p2=0, le=16).to_bytes()
    host, card = _session()
    wrapped = host.wrap(read_16)
    assert CommandApdu.parse(wrapped).le == 0x00  # the plain Le never reaches the card
    card.unwrap_command(wrapped)
    assert host.unwrap(card.wrap_response(b"\x30\x03\x02\x01", b"\x90\x00")) == b"\x30\x03\x02\x01\x90\x00"  # end of file: 4 < 16
    card.unwrap_command(host.wrap(read_16))
    answer = card.wrap_response(bytes(16), b"\x90\x00")
    with pytest.raises(SecureMessagingError, match="R-MAC"):
        host.unwrap(answer[:16] + answer[-2:])  # a block dropped on the way
    assert not host.is_open  # the host ended the session
