"""One spec, two levels: the reference's TSM scripts, run against a GpSe with the applet-level model in lockstep, leave the
model in a state whose SE facts (mjpki.spec.apdu.abstraction.se_view) are those the lifecycle spec's rule states for the same
action (spec/rules.py), and that the reference SE itself reports (GpSe.status()).

The scripts are mjpki.impl.se_tsm.Tsm's own methods, called in the order impl/system.py calls them; only the transport is
swapped: `LockstepTsm` hands each plain command to mjpki.applet_lockstep.AppletRun, which wraps it in its own SCP03
session, sends it to the SE and steps the model with it (a divergence fails the test).

The lifecycle side is the slot facts each rule writes (not a whole lifecycle run): the expected `mjpki.spec.state.SecureElement`
is built as the rule builds it, with the certificate serials the script wrote, and mapped by
mjpki.spec.apdu.abstraction.lifecycle_view. Each expectation cites its rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from mjpki.adapters.applet import ReferenceApplet
from mjpki.applet_lockstep import OFFICIAL_APP_HASH, AppletRun, AppletTarget
from mjpki.applet_lockstep import test_certificate as make_certificate
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.se_apdu import CERT_TARGET, KeyPairOutput
from mjpki.impl.se_tsm import SeCommandError, Tsm
from mjpki.spec import state as lifecycle
from mjpki.spec.apdu import interface as I
from mjpki.spec.apdu.abstraction import EMPTY, SeView, SlotView, lifecycle_view, se_view
from mjpki.spec.apdu.commands import ExtAuth, InitUpdate, Send, Wrapped
from mjpki.spec.domain import Kind, PinStatus
from mjpki.spec.fmap import FrozenMap

h = bytes.fromhex
KEYS = StaticKeys(
    enc=h("404142434445464748494A4B4C4D4E4F"), mac=h("505152535455565758595A5B5C5D5E5F"), dek=h("606162636465666768696A6B6C6D6E6F")
)
LIMITS = {Kind.AUTH: 3, Kind.SIGNING: 5}
"""max_tries(world, kind) of the lifecycle spec's default world, and the limits the SEI-TSM installs with."""
PINS = {Kind.AUTH: b"1234", Kind.SIGNING: b"ABCD1234"}
TEMP = b"TEMP-0123456789A"
SERIALS = {Kind.AUTH: 4001, Kind.SIGNING: 4002}
BOTH = (Kind.AUTH, Kind.SIGNING)


class LockstepTsm(Tsm):
    """mjpki.impl.se_tsm.Tsm whose transport is an AppletRun: every command goes to the SE and to the model."""

    def __init__(self, run: AppletRun) -> None:
        super().__init__(lambda apdu: b"", KEYS)
        self.run = run
        self._open = False

    def _step(self, command: Send | InitUpdate | ExtAuth | Wrapped) -> tuple[bytes, bytes]:
        record = self.run.send(command)
        assert record is not None and self.run.divergence is None, f"the SE and the applet-level model part: {self.run.divergence}"
        return record.exchange.observed.data, record.exchange.observed.sw

    def select(self, aid: bytes) -> None:
        self._open = False
        _data, sw = self._step(Send(bytes([0x00, 0xA4, 0x04, 0x0C, len(aid)]) + aid))
        if sw != b"\x90\x00":
            raise SeCommandError(f"SELECT {aid.hex().upper()}", sw)

    def open_secure_channel(self) -> None:
        for command, what in ((InitUpdate(I.KEY_VERSION), "INITIALIZE UPDATE"), (ExtAuth(self._level), "EXTERNAL AUTHENTICATE")):
            _data, sw = self._step(command)
            if sw != b"\x90\x00":
                raise SeCommandError(what, sw)
        self._open = True

    @property
    def secure(self) -> bool:
        return self._open

    def send(self, apdu: bytes) -> tuple[bytes, bytes]:
        return self._step(Wrapped(apdu) if self._open else Send(apdu))


class Card:
    """A reference SE, the model in lockstep with it, and a TSM over both."""

    def __init__(self) -> None:
        self.se = GpSe("SE-REFINE", KEYS)
        target = AppletTarget(
            name="refinement", open=lambda: ReferenceApplet(self.se, caller=OFFICIAL_APP_HASH), isd_keys=KEYS, caller=OFFICIAL_APP_HASH
        )
        self.run = AppletRun(target)
        self.tsm = LockstepTsm(self.run)
        self.output: KeyPairOutput | None = None

    # the scripts, as impl/system.py runs them

    def prepare_applet(self) -> bool:
        """SEI-TSM (system._prepare_applet): remove a leftover applet (ISS-8), install with limits, store the access rule."""
        self.tsm.open_isd()
        leftover = self.tsm.delete_applet() if self.tsm.applet_present() else False
        self.tsm.install_applet(pin_tries=(LIMITS[Kind.AUTH], LIMITS[Kind.SIGNING]))
        self.tsm.store_access_rules({I.JPKI_AID: [OFFICIAL_APP_HASH]})
        return leftover

    def apply(self) -> bytes:
        """The app's application (system._do_Apply...): GET SE-ID, GENERATE R (ISS-2)."""
        self.tsm.open_applet()
        self.tsm.read_se_id()
        return self.tsm.generate_r()

    def register(self, kinds: tuple[Kind, ...] = BOTH) -> None:
        """SP-TSM at registration (system._do_Register): key pairs, then per kind its certificate, CA certificate, temporary PIN."""
        self.tsm.open_applet()
        self.output = self.tsm.generate_key_pair(kinds)
        self.tsm.read_se_id()
        for kind in kinds:
            der = make_certificate(self.output.public_keys[kind], SERIALS[kind])
            self.tsm.write_certificate(CERT_TARGET[("user", kind)], der)
            self.tsm.write_certificate(CERT_TARGET[("ca", kind)], make_certificate(None, 7 + len(kind.value), ca=True))
            self.tsm.set_temporary_pin(kind, TEMP)

    def set_pin(self, kind: Kind) -> None:
        """system._do_SetPin: UNBLOCK AND SET PIN with the temporary PIN."""
        self.tsm.open_applet()
        self.tsm.unblock_and_set_pin(kind, TEMP, PINS[kind])

    def initialise_pin(self, kind: Kind) -> None:
        """system._do_InitialisePin: SE-ID over SCP03 from the ISD (PIN-4), then SET TEMPORARY PIN mode 01."""
        self.tsm.open_isd()
        self.tsm.read_se_id_isd()
        self.tsm.open_applet()
        self.tsm.set_temporary_pin(kind, TEMP, reset=True)

    def remote_delete(self, kind: Kind, serial: int) -> bool:
        """system._sp_tsm_delete: DELETE KEYS AND CERTIFICATES, serial-matched (DEL-1)."""
        self.tsm.open_applet()
        return self.tsm.delete_keys([kind], serial)

    def check(self, expected: lifecycle.SecureElement, rule: str) -> None:
        """The model's view equals the lifecycle rule's SE, and the reference SE reports the same."""
        model = se_view(self.run.state)
        want = lifecycle_view(expected)
        assert model == want, f"after {rule}: the applet-level model's SE facts\n  {model}\ndiffer from the lifecycle rule's\n  {want}"
        assert _impl_view(self.se) == model, f"after {rule}: GpSe.status() {_impl_view(self.se)} differs from the model {model}"


def _impl_view(se: GpSe) -> SeView:
    """GpSe.status() in the same terms (the third witness: the reference itself)."""
    status = se.status()
    if not status.applet:
        return SeView()
    slots = (
        (k, SlotView(key=s.key_present, cert_serial=s.cert_serial, pin_status=s.pin_status, tries_left=s.tries_left))
        for k, s in status.slots.items()
    )
    return SeView(applet=True, r_pending=status.r_pending, slots=FrozenMap((k, v) for k, v in slots if v != EMPTY))


def _issued(kinds: tuple[Kind, ...] = BOTH) -> FrozenMap[Kind, lifecycle.Slot]:
    """spec/rules.py _register: per kind Slot(cert_serial=the new serial, pin_status=TEMP_BLOCKED, pin=None, tries_left=max_tries)."""
    return FrozenMap(
        (k, lifecycle.Slot(person="p", key_id=0, cert_serial=SERIALS[k], pin_status=PinStatus.TEMP_BLOCKED, pin=None, tries_left=LIMITS[k]))
        for k in kinds
    )


@pytest.fixture
def card() -> Iterator[Card]:
    c = Card()
    yield c
    c.run.close()


def test_issuance_and_pin_setting(card: Card) -> None:
    assert not card.prepare_applet()
    # _prepare (A.PrepareApplet): se=SecureElement(applet=True): no slots, no nonce.
    card.check(lifecycle.SecureElement(applet=True), "PrepareApplet (_prepare)")
    card.apply()
    # _start_application (A.Apply...): se=replace(se, nonce=r).
    card.check(lifecycle.SecureElement(applet=True, nonce=1), "Apply (_start_application)")
    card.register()
    # _register (A.Register): a TEMP_BLOCKED slot per kind at max_tries, nonce=None.
    se = lifecycle.SecureElement(applet=True, slots=_issued())
    card.check(se, "Register (_register)")
    for kind in BOTH:
        card.set_pin(kind)
        # _set_pin (A.SetPin): replace(slot, pin=pin, pin_status=SET, tries_left=max_tries).
        slot = replace(se.slots[kind], pin=PINS[kind].decode(), pin_status=PinStatus.SET, tries_left=LIMITS[kind])
        se = replace(se, slots=se.slots.set(kind, slot))
        card.check(se, f"SetPin {kind.value} (_set_pin)")


def test_one_kind_issuance(card: Card) -> None:
    card.prepare_applet()
    card.apply()
    card.register((Kind.AUTH,))
    card.check(lifecycle.SecureElement(applet=True, slots=_issued((Kind.AUTH,))), "Register of the auth kind only (_register)")


def test_pin_initialisation(card: Card) -> None:
    card.prepare_applet()
    card.apply()
    card.register()
    card.set_pin(Kind.AUTH)
    card.set_pin(Kind.SIGNING)
    se = lifecycle.SecureElement(applet=True, slots=_issued())
    se = replace(se, slots=FrozenMap((k, replace(s, pin_status=PinStatus.SET, pin="x")) for k, s in se.slots.items()))
    card.initialise_pin(Kind.SIGNING)
    # _initialise_pin (A.InitialisePin): replace(slot, pin_status=TEMP_BLOCKED, pin=None, tries_left=max_tries).
    slot = replace(se.slots[Kind.SIGNING], pin_status=PinStatus.TEMP_BLOCKED, pin=None, tries_left=LIMITS[Kind.SIGNING])
    se = replace(se, slots=se.slots.set(Kind.SIGNING, slot))
    card.check(se, "InitialisePin signing (_initialise_pin)")
    card.set_pin(Kind.SIGNING)
    # then _set_pin completes it.
    se = replace(se, slots=se.slots.set(Kind.SIGNING, replace(slot, pin_status=PinStatus.SET, pin="y")))
    card.check(se, "SetPin after InitialisePin (_set_pin)")


def test_remote_deletion_is_serial_matched(card: Card) -> None:
    card.prepare_applet()
    card.apply()
    card.register()
    se = lifecycle.SecureElement(applet=True, slots=_issued())
    # _drop_slots (DEL-1): a serial no slot holds deletes nothing.
    assert not card.remote_delete(Kind.AUTH, 999)
    card.check(se, "remote deletion of a serial not in the SE (_drop_slots)")
    assert card.remote_delete(Kind.AUTH, SERIALS[Kind.AUTH])
    # _drop_slots: slots = those whose cert_serial is not in the serials.
    se = replace(se, slots=FrozenMap((k, s) for k, s in se.slots.items() if s.cert_serial != SERIALS[Kind.AUTH]))
    card.check(se, "remote deletion of the auth certificate (_drop_slots)")


def test_leftover_removal(card: Card) -> None:
    card.prepare_applet()
    card.apply()
    card.register()
    card.set_pin(Kind.AUTH)
    # A second PrepareApplet on the same SE (a second-hand phone, ISS-8): _prepare replaces the SE by
    # SecureElement(applet=True), whatever was there (ASM-APPLET-CHECK-WIPES).
    assert card.prepare_applet()
    card.check(lifecycle.SecureElement(applet=True), "PrepareApplet over a leftover applet (_prepare)")


def test_abstraction_of_a_fresh_card(card: Card) -> None:
    """Before any script the prelude has deleted any applet: the lifecycle's SecureElement() (no applet)."""
    card.check(lifecycle.SecureElement(), "the prelude (no applet)")
