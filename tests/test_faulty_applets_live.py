"""Every faulty applet of tests/faulty_applets.py is live: a short APDU sequence on which it answers otherwise than GpSe.

Each demo below is a hand-written sequence from docs/apdu-interface.md. It runs on a fresh SE loaded from one
personalised SE's snapshot (both kinds, PINs set), once as the reference `GpSe` and once as the faulty class, and returns
the decisive observation (a status word, or a fact read back over APDUs). The test asserts the reference's observation
is the documented one and the faulty applet's is the one its mistake produces. RSA key generation is the slow part: the
SE is personalised once per module; only the demos about key generation generate keys (auth only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mjpki.impl import se_apdu as A
from mjpki.impl.ca import JpkiCa, PersonalData
from mjpki.impl.scp03 import SCP03Host, StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.se_tsm import Tsm
from mjpki.spec.domain import Kind, PinStatus, Profile
from mjpki.spec.requirements import REQUIREMENTS
from tests.faulty_applets import FAULTY_APPLETS, FaultyApplet

h = bytes.fromhex

ISD_KEYS = StaticKeys(
    enc=h("404142434445464748494A4B4C4D4E4F"), mac=h("505152535455565758595A5B5C5D5E5F"), dek=h("606162636465666768696A6B6C6D6E6F")
)
APP = hashlib.sha256(b"signing certificate of the official Mynaportal app").digest()
OTHER_APP = hashlib.sha256(b"signing certificate of some other app").digest()
PINS = {Kind.AUTH: b"1234", Kind.SIGNING: b"ABCD1234"}
TEMP_PINS = {Kind.AUTH: bytes(range(16)), Kind.SIGNING: bytes(range(100, 116))}
WRONG_AUTH_PIN = b"9999"
PERSON = PersonalData(name="山田 花子", address="東京都千代田区永田町1-7-1", birth_date=date(1988, 4, 2), sex="女")
DIGEST_INFO = h("3031300d060960864801650304020105000420") + hashlib.sha256(b"a challenge").digest()


@dataclass(frozen=True, slots=True)
class Personalised:
    """A personalised SE's non-volatile memory, and the certificates the TSM wrote into it."""

    snapshot: dict[str, Any]
    certs: dict[Kind, bytes]
    serials: dict[Kind, int]


@pytest.fixture(scope="module")
def personalised(ca: JpkiCa) -> Personalised:
    """The SEI-TSM and SP-TSM sequence of docs/apdu-interface.md on a reference SE, both kinds (two key generations)."""
    se = GpSe("SE-D1", ISD_KEYS)
    tsm = Tsm(lambda apdu: se.transmit(apdu, caller=APP), ISD_KEYS)
    tsm.open_isd()
    tsm.install_applet()
    tsm.store_access_rules({A.JPKI_AID: [APP]})
    tsm.open_applet()
    tsm.generate_r()
    output = tsm.generate_key_pair([Kind.AUTH, Kind.SIGNING])
    certs, serials = {}, {}
    now = datetime.now(UTC).replace(microsecond=0)
    for serial, kind in enumerate(Kind, start=0x5A0001):
        public_key = serialization.load_der_public_key(output.public_keys[kind])
        assert isinstance(public_key, rsa.RSAPublicKey)
        cert = ca.issue(
            kind=kind,
            profile=Profile.PHONE,
            serial=serial,
            public_key=public_key,
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=365),
            personal=PERSON if kind is Kind.SIGNING else None,
        )
        certs[kind] = cert.public_bytes(serialization.Encoding.DER)
        serials[kind] = serial
        tsm.write_certificate(A.CERT_TARGET[("user", kind)], certs[kind])
        tsm.write_certificate(A.CERT_TARGET[("ca", kind)], ca.ca(kind).certificate.public_bytes(serialization.Encoding.DER))
        tsm.set_temporary_pin(kind, TEMP_PINS[kind])
        tsm.unblock_and_set_pin(kind, TEMP_PINS[kind], PINS[kind])
    se.power_reset()
    return Personalised(snapshot=se.snapshot(), certs=certs, serials=serials)


# --- talking to one SE --------------------------------------------------------------------------------------------------


class Probe:
    """One SE under test, reached by the official app (`caller`), with plain APDUs and mjpki.impl.se_tsm's TSM."""

    def __init__(self, se: GpSe, p: Personalised) -> None:
        self.se = se
        self.p = p
        self.caller: bytes | None = APP
        self.tsm = self.tsm_at(0x33)

    def tsm_at(self, level: int) -> Tsm:
        """A TSM over this SE at a given SCP03 security level."""
        return Tsm(lambda apdu: self.se.transmit(apdu, caller=self.caller), ISD_KEYS, security_level=level)

    def raw(self, apdu: bytes, caller: bytes | None = APP) -> bytes:
        """The response to a command sent as it is."""
        return self.se.transmit(apdu, caller=caller)

    def sw(self, apdu: bytes, caller: bytes | None = APP) -> str:
        """The status word of a plain command, as upper-case hex."""
        return self.raw(apdu, caller)[-2:].hex().upper()

    def send(self, apdu: bytes, tsm: Tsm | None = None) -> str:
        """The status word of a command sent through the TSM (wrapped while its session is open)."""
        _data, sw = (tsm or self.tsm).send(apdu)
        return sw.hex().upper()

    def select_jpki(self) -> str:
        return self.sw(A.select_aid(A.JPKI_AID))

    def select_ef(self, fid: int) -> str:
        return self.sw(A.select_ef(fid))

    def verify(self, kind: Kind, pin: bytes | None) -> str:
        """SELECT EF of the kind's PIN, then VERIFY (no data: the status query)."""
        assert self.select_ef(A.EF_PIN[kind]) == "9000"
        return self.sw(A.verify(pin))

    def sign(self, kind: Kind) -> str:
        """SELECT EF of the kind's key, then COMPUTE DIGITAL SIGNATURE (plain, as OpenSC sends it)."""
        assert self.select_ef(A.EF_KEY[kind]) == "9000"
        return self.sw(A.compute_signature(DIGEST_INFO))

    def lock_auth_pin(self) -> None:
        """Three wrong auth PINs (the default limit): 63C2, 63C1, 63C0."""
        assert [self.verify(Kind.AUTH, WRONG_AUTH_PIN) for _ in range(3)] == ["63C2", "63C1", "63C0"]


Observation = Any
DemoFn = Callable[[Probe], Observation]


@dataclass(frozen=True, slots=True)
class Demo:
    """A sequence and the decisive observation it gives on the reference and on the faulty applet."""

    run: DemoFn
    reference: Observation
    faulty: Observation


# --- the ISD --------------------------------------------------------------------------------------------------------------


def install_twice(p: Probe) -> Observation:
    p.tsm.open_isd()
    return p.send(A.install_for_install_and_selectable())


def rule_after_delete_and_reinstall(p: Probe) -> Observation:
    p.tsm.open_isd()
    assert p.tsm.delete_applet()
    p.tsm.install_applet()
    return p.select_jpki()  # no access rule stored for the new installation


def replaced_rule_still_admits(p: Probe) -> Observation:
    p.tsm.open_isd()
    p.tsm.store_access_rules({A.JPKI_AID: [OTHER_APP]})
    assert p.sw(A.select_aid(A.JPKI_AID), OTHER_APP) == "9000"
    return p.select_jpki()  # the official app's hash was replaced


def get_status_without_applet(p: Probe) -> Observation:
    p.tsm.open_isd()
    assert p.tsm.delete_applet()
    return p.send(A.get_status(0x40))


def get_data_plain(p: Probe) -> Observation:
    assert p.sw(A.select_aid(A.ISD_AID)) == "9000"
    return p.sw(A.get_se_id_isd())


def isd_level_01(p: Probe) -> Observation:
    tsm = p.tsm_at(0x01)
    tsm.open_isd()
    return p.send(A.get_status(0x40), tsm)


def isd_plain_then_wrapped(p: Probe) -> Observation:
    p.tsm.open_isd()
    assert p.sw(A.get_status(0x40)) == "6982"  # plain: refused, and the session must end
    return p.send(A.get_status(0x40))


# --- the APSD -------------------------------------------------------------------------------------------------------------


def apsd_level_01(p: Probe) -> Observation:
    tsm = p.tsm_at(0x01)
    tsm.open_applet()
    return p.send(A.get_slot_status(), tsm)


def apsd_after_bad_mac(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    host = SCP03Host(ISD_KEYS)
    host.process_initialize_update_response(p.raw(host.initialize_update()))
    assert p.raw(host.external_authenticate(0x33)) == A.SW_OK
    session = host._session
    assert session is not None
    chaining = session.mac_chaining
    wrapped = host.wrap(A.get_slot_status())  # ... C-MAC (8 bytes) Le
    tampered = wrapped[:-2] + bytes([wrapped[-2] ^ 0x01]) + wrapped[-1:]
    assert p.raw(tampered) == A.SW_SECURITY_STATUS
    session.mac_chaining = chaining  # the host carries on as if the tampered command had not been sent
    return p.raw(host.wrap(A.get_slot_status()))[-2:].hex().upper()


# --- the applet: SELECT, files, power reset -------------------------------------------------------------------------------


def sign_after_reselect(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    assert p.select_jpki() == "9000"
    return p.sign(Kind.AUTH)


def read_signing_cert_with_auth_pin(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    assert p.select_ef(A.EF_CERT[Kind.SIGNING]) == "9000"
    return p.sw(A.read_binary(0, 4))


def read_key_ef(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.select_ef(A.EF_KEY[Kind.AUTH]) == "9000"
    return p.sw(A.read_binary(0, 0))


def tries_after_reset(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, WRONG_AUTH_PIN) == "63C2"
    p.se.power_reset()
    assert p.select_jpki() == "9000"
    return p.verify(Kind.AUTH, None)


def sign_after_reset(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    p.se.power_reset()
    assert p.select_jpki() == "9000"
    return p.sign(Kind.AUTH)


def r_after_reset(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.generate_r()
    p.se.power_reset()
    p.tsm.open_applet()
    return p.tsm.slot_status().r_pending


# --- the applet: VERIFY, CHANGE REFERENCE DATA, COMPUTE DIGITAL SIGNATURE ---------------------------------------------


def sign_after_wrong_verify(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    assert p.verify(Kind.AUTH, WRONG_AUTH_PIN) == "63C2"
    return p.sign(Kind.AUTH)


def tries_after_wrong_then_right(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, WRONG_AUTH_PIN) == "63C2"
    assert p.verify(Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    return p.verify(Kind.AUTH, None)


def second_wrong_pin(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, WRONG_AUTH_PIN) == "63C2"
    return p.verify(Kind.AUTH, WRONG_AUTH_PIN)


def right_pin_after_limit(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    p.lock_auth_pin()
    return p.verify(Kind.AUTH, PINS[Kind.AUTH])


def status_query_when_locked(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    p.lock_auth_pin()
    return p.verify(Kind.AUTH, None)


def verify_temporary_pin(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.set_temporary_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH], reset=True)
    assert p.select_jpki() == "9000"
    return p.verify(Kind.AUTH, TEMP_PINS[Kind.AUTH])


def change_pin_unverified(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.select_ef(A.EF_PIN[Kind.AUTH]) == "9000"
    return p.sw(A.change_pin(None, b"5678"))


def sign_auth_after_signing_pin(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.SIGNING, PINS[Kind.SIGNING]) == "9000"
    return p.sign(Kind.AUTH)


# --- the applet: TSM commands -----------------------------------------------------------------------------------------


def generate_r_twice(p: Probe) -> Observation:
    p.tsm.open_applet()
    return p.tsm.generate_r() == p.tsm.generate_r()  # the same commitment twice


def generate_key_pair_twice(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.generate_r()
    p.tsm.generate_key_pair([Kind.AUTH])
    return p.send(A.generate_key_pair([Kind.AUTH]))


def certificate_after_key_generation(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.generate_r()
    p.tsm.generate_key_pair([Kind.AUTH])
    return p.tsm.slot_status().slots[Kind.AUTH].cert_serial == p.p.serials[Kind.AUTH]


def get_output_after_slot_status(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.generate_r()
    assert p.send(A.generate_key_pair([Kind.AUTH])) == "6310"
    p.tsm.slot_status()
    return p.send(A.get_output(A.MAX_BLOCK))


def get_output_at_end(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.generate_r()
    data, sw = p.tsm.send(A.generate_key_pair([Kind.AUTH]))
    received = len(data)
    while sw == A.SW_MORE_DATA:
        data, sw = p.tsm.send(A.get_output(received))
        received += len(data)
    assert sw == A.SW_OK
    return p.send(A.get_output(received))


def write_signing_cert_as_auth(p: Probe) -> Observation:
    p.tsm.open_applet()
    blocks = A.write_certificate(A.CERT_TARGET[("user", Kind.AUTH)], p.p.certs[Kind.SIGNING])
    assert [p.send(apdu) for apdu in blocks[:-1]] == ["9000"] * (len(blocks) - 1)
    return p.send(blocks[-1])


def write_certificate_interrupted(p: Probe) -> Observation:
    p.tsm.open_applet()
    blocks = A.write_certificate(A.CERT_TARGET[("user", Kind.AUTH)], p.p.certs[Kind.AUTH])
    assert len(blocks) > 2
    assert p.send(blocks[0]) == "9000"
    p.tsm.slot_status()
    return p.send(blocks[1])


def initial_temporary_pin_over_set_pin(p: Probe) -> Observation:
    p.tsm.open_applet()
    return p.send(A.set_temporary_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH]))


def sign_after_set_temporary_pin(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    assert p.verify(Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    p.tsm.open_secure_channel()  # to the selected applet's APSD: the verified flag must survive this
    p.tsm.set_temporary_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH], reset=True)
    return p.sign(Kind.AUTH)  # plain, in the open session


def unblock_with_spent_temporary_pin(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.set_temporary_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH], reset=True)
    wrong = [p.send(A.unblock_and_set_pin(Kind.AUTH, bytes(16), b"5678")) for _ in range(3)]
    assert wrong == ["63C2", "63C1", "63C0"]
    return p.send(A.unblock_and_set_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH], b"5678"))


def unblock_with_malformed_pin(p: Probe) -> Observation:
    p.tsm.open_applet()
    p.tsm.set_temporary_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH], reset=True)
    return p.send(A.unblock_and_set_pin(Kind.AUTH, TEMP_PINS[Kind.AUTH], b"12a4"))


def key_after_delete_keys(p: Probe) -> Observation:
    p.tsm.open_applet()
    assert p.tsm.delete_keys([Kind.AUTH])
    return p.tsm.slot_status().slots[Kind.AUTH].key_present


def delete_keys_other_serial(p: Probe) -> Observation:
    p.tsm.open_applet()
    return p.send(A.delete_keys([Kind.AUTH], p.p.serials[Kind.AUTH] + 0x1000))


def slot_status_of_locked_pin(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    p.lock_auth_pin()
    p.tsm.open_applet()
    return p.tsm.slot_status().slots[Kind.AUTH].pin_status


def command_from_other_app(p: Probe) -> Observation:
    assert p.select_jpki() == "9000"
    return p.sw(A.select_ef(A.EF_PIN[Kind.AUTH]), OTHER_APP)


DEMOS: dict[str, Demo] = {
    "install-over-installed": Demo(install_twice, "6985", "9000"),
    "delete-applet-keeps-rule": Demo(rule_after_delete_and_reinstall, "6982", "9000"),
    "store-data-merges-rules": Demo(replaced_rule_still_admits, "6982", "9000"),
    "get-status-empty-success": Demo(get_status_without_applet, "6A88", "9000"),
    "get-data-se-id-plain": Demo(get_data_plain, "6982", "9000"),
    "isd-accepts-cmac-only": Demo(isd_level_01, "6982", "9000"),
    "isd-plain-keeps-session": Demo(isd_plain_then_wrapped, "6982", "9000"),
    "apsd-accepts-cmac-only": Demo(apsd_level_01, "6982", "9000"),
    "apsd-session-survives-bad-mac": Demo(apsd_after_bad_mac, "6982", "9000"),
    "reselect-keeps-verified": Demo(sign_after_reselect, "6982", "9000"),
    "signing-cert-any-pin": Demo(read_signing_cert_with_auth_pin, "6982", "9000"),
    "key-ef-readable": Demo(read_key_ef, "6981", "9000"),
    "retry-counter-volatile": Demo(tries_after_reset, "63C2", "63C3"),
    "verified-survives-reset": Demo(sign_after_reset, "6982", "9000"),
    "r-volatile": Demo(r_after_reset, True, False),
    "wrong-verify-keeps-verified": Demo(sign_after_wrong_verify, "6982", "9000"),
    "counter-not-reset-on-success": Demo(tries_after_wrong_then_right, "63C3", "63C2"),
    "locks-one-try-early": Demo(second_wrong_pin, "63C1", "63C0"),
    "one-extra-try": Demo(right_pin_after_limit, "6983", "9000"),
    "empty-verify-6983-when-locked": Demo(status_query_when_locked, "63C0", "6983"),
    "temp-pin-verifies-while-blocked": Demo(verify_temporary_pin, "6983", "9000"),
    "change-pin-p1-01-unverified": Demo(change_pin_unverified, "6982", "9000"),
    "sign-auth-key-with-signing-pin": Demo(sign_auth_after_signing_pin, "6982", "9000"),
    "generate-r-keeps-pending": Demo(generate_r_twice, False, True),
    "r-reusable": Demo(generate_key_pair_twice, "6985", "6310"),
    "key-generation-keeps-old-cert": Demo(certificate_after_key_generation, False, True),
    "get-output-after-other-command": Demo(get_output_after_slot_status, "6985", "9000"),
    "get-output-empty-at-end": Demo(get_output_at_end, "6B00", "9000"),
    "write-certificate-for-any-key": Demo(write_signing_cert_as_auth, "6A80", "9000"),
    "write-cert-chain-survives-other-command": Demo(write_certificate_interrupted, "6A86", "9000"),
    "temp-pin-mode-00-overwrites": Demo(initial_temporary_pin_over_set_pin, "6985", "9000"),
    "set-temp-pin-keeps-verified": Demo(sign_after_set_temporary_pin, "6982", "9000"),
    "spent-temp-pin-still-works": Demo(unblock_with_spent_temporary_pin, "6983", "9000"),
    "unblock-accepts-malformed-pin": Demo(unblock_with_malformed_pin, "6A80", "9000"),
    "delete-keys-keeps-key": Demo(key_after_delete_keys, False, True),
    "delete-keys-ignores-serial": Demo(delete_keys_other_serial, "6A88", "9000"),
    "slot-status-locked-as-set": Demo(slot_status_of_locked_pin, PinStatus.LOCKED, PinStatus.SET),
    "acl-checked-at-select-only": Demo(command_from_other_app, "6982", "9000"),
}


# --- the tests ----------------------------------------------------------------------------------------------------------


def test_registry_is_well_formed() -> None:
    """Enough faults, unique kebab-case ids, known requirements, both domains and every command family covered."""
    assert len(FAULTY_APPLETS) >= 24
    ids = [f.id for f in FAULTY_APPLETS]
    assert len(set(ids)) == len(ids)
    assert len({f.cls for f in FAULTY_APPLETS}) == len(FAULTY_APPLETS), "one class per fault"
    for f in FAULTY_APPLETS:
        assert issubclass(f.cls, GpSe) and f.cls is not GpSe
        assert set(f.reqs) <= set(REQUIREMENTS), f"{f.id}: unknown requirement in {f.reqs}"
        assert f.doc and f.mistake, f.id
    assert {f.domain for f in FAULTY_APPLETS} == {"ISD", "APSD", "applet"}
    families = {f.family for f in FAULTY_APPLETS}
    assert families >= {
        "INSTALL",
        "DELETE",
        "STORE DATA",
        "GET STATUS",
        "GET DATA",
        "SCP03",
        "SELECT",
        "READ BINARY",
        "VERIFY",
        "CHANGE REFERENCE DATA",
        "COMPUTE DIGITAL SIGNATURE",
        "GENERATE R",
        "GENERATE KEY PAIR",
        "GET OUTPUT",
        "WRITE CERTIFICATE",
        "SET TEMPORARY PIN",
        "UNBLOCK AND SET PIN",
        "DELETE KEYS",
        "GET SLOT STATUS",
        "power reset",
        "access control",
    }


def test_every_faulty_applet_has_a_demo() -> None:
    assert set(DEMOS) == {f.id for f in FAULTY_APPLETS}
    for demo in DEMOS.values():
        assert demo.reference != demo.faulty


@pytest.mark.parametrize("fault", FAULTY_APPLETS, ids=lambda f: f.id)
def test_fault_is_live(fault: FaultyApplet, personalised: Personalised) -> None:
    """The demo sequence: the reference answers as documented, the faulty applet as its mistake makes it."""
    demo = DEMOS[fault.id]
    reference = demo.run(Probe(GpSe.from_snapshot(personalised.snapshot), personalised))
    faulty = demo.run(Probe(fault.cls.from_snapshot(personalised.snapshot), personalised))
    assert reference == demo.reference, f"{fault.id}: the reference answered {reference!r}"
    assert faulty == demo.faulty, f"{fault.id}: the faulty applet answered {faulty!r}"
    assert faulty != reference


@pytest.mark.parametrize("fault", FAULTY_APPLETS, ids=lambda f: f.id)
def test_faulty_applet_agrees_on_the_app_path(fault: FaultyApplet, personalised: Personalised) -> None:
    """Away from its mistake a faulty applet is the reference: the common app path (PIN status, VERIFY, sign) agrees."""

    def app_path(se: GpSe) -> list[bytes]:
        answers = []
        for apdu in (
            A.select_aid(A.JPKI_AID),
            A.select_ef(A.EF_PIN[Kind.AUTH]),
            A.verify(None),
            A.select_ef(A.EF_CERT[Kind.AUTH]),
            A.read_binary(0, 4),
            A.select_ef(A.EF_PIN[Kind.AUTH]),
            A.verify(PINS[Kind.AUTH]),
            A.select_ef(A.EF_KEY[Kind.AUTH]),
        ):
            answers.append(se.transmit(apdu, caller=APP))
        answers.append(se.transmit(A.compute_signature(DIGEST_INFO), caller=APP)[-2:])  # RSA PKCS#1 v1.5 is deterministic anyway
        return answers

    assert app_path(fault.cls.from_snapshot(personalised.snapshot)) == app_path(GpSe.from_snapshot(personalised.snapshot))
