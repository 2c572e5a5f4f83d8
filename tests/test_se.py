"""The GP-SE (mjpki.impl.se.GpSe): ISD, JPKI applet, TSM commands over SCP03, access control, PINs, signatures, persistence.

Every sequence is checked against docs/apdu-interface.md. RSA key generation is the slow part, so one SE is
personalised per module and tests that change it work on a copy restored from its snapshot (no key generation).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from mjpki.impl import se_apdu as A
from mjpki.impl.ca import JpkiCa, PersonalData
from mjpki.impl.scp03 import SCP03Host, StaticKeys
from mjpki.impl.se import SNAPSHOT_FORMAT, GpSe
from mjpki.impl.se_tsm import SeCommandError, Tsm
from mjpki.spec.domain import Kind, PinStatus, Profile
from mjpki.spec.rules import pin_well_formed as spec_pin_well_formed

h = bytes.fromhex

ISD_KEYS = StaticKeys(
    enc=h("404142434445464748494A4B4C4D4E4F"), mac=h("505152535455565758595A5B5C5D5E5F"), dek=h("606162636465666768696A6B6C6D6E6F")
)
APP = hashlib.sha256(b"signing certificate of the official Mynaportal app").digest()
OTHER_APP = hashlib.sha256(b"signing certificate of some other app").digest()
PINS = {Kind.AUTH: b"1234", Kind.SIGNING: b"ABCD1234"}
TEMP_PINS = {Kind.AUTH: bytes(range(16)), Kind.SIGNING: bytes(range(100, 116))}
SHA256_DIGEST_INFO = h("3031300d060960864801650304020105000420")
PERSON = PersonalData(name="山田 花子", address="東京都千代田区永田町1-7-1", birth_date=date(1988, 4, 2), sex="女")
NOW = datetime.now(UTC).replace(microsecond=0)
_SERIALS = itertools.count(0x5E0000)

SW_OK = A.SW_OK


def sw(response: bytes) -> str:
    """The status word of a response, as upper-case hex."""
    return response[-2:].hex().upper()


def tx(se: GpSe, apdu: bytes | str, caller: bytes | None = None) -> bytes:
    """Send one plain APDU (bytes or hex with spaces)."""
    return se.transmit(h(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu, caller=caller)


def digest_info(message: bytes) -> bytes:
    """The DER DigestInfo of SHA-256(message), as OpenSC builds it on the host."""
    return SHA256_DIGEST_INFO + hashlib.sha256(message).digest()


# --- the TSM, played with SCP03Host ------------------------------------------------------------------------------


class HostTsm:
    """A test TSM: raw APDUs (as docs/apdu-interface.md writes them) through SCP03Host, nothing from mjpki.impl.se_tsm."""

    def __init__(self, se: GpSe, *, caller: bytes | None = APP, keys: StaticKeys = ISD_KEYS) -> None:
        self.se = se
        self.caller = caller
        self.keys = keys
        self.host: SCP03Host | None = None

    def plain(self, apdu: bytes | str) -> bytes:
        """A plain command; the raw response."""
        return tx(self.se, apdu, self.caller)

    def select(self, aid: str) -> None:
        """SELECT by AID with P2 0C; asserts 9000."""
        aid_bytes = h(aid.replace(" ", ""))
        assert self.plain(A.command_apdu(0x00, 0xA4, 0x04, 0x0C, aid_bytes)) == SW_OK
        self.host = None

    def open(self, level: int = 0x33) -> None:
        """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected security domain."""
        host = SCP03Host(self.keys)
        host.process_initialize_update_response(self.plain(host.initialize_update()))
        assert self.plain(host.external_authenticate(level)) == SW_OK
        self.host = host

    def send(self, apdu: bytes | str) -> tuple[bytes, str]:
        """A command wrapped in the open session; (plain data, SW hex)."""
        assert self.host is not None
        plain = h(apdu.replace(" ", "")) if isinstance(apdu, str) else apdu
        response = self.host.unwrap(self.plain(self.host.wrap(plain)))
        return response[:-2], sw(response)

    def long(self, apdu: bytes | str) -> bytes:
        """A command whose output continues (6310) with GET OUTPUT."""
        data, status = self.send(apdu)
        out = data
        while status == "6310":
            assert len(data) == A.MAX_BLOCK
            data, status = self.send(A.get_output(len(out)))
            out += data
        assert status == "9000"
        return out


# --- personalisation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Issued:
    """A personalised SE's non-volatile memory and what the TSM learned personalising it."""

    snapshot: dict[str, Any]
    public_keys: dict[Kind, rsa.RSAPublicKey]
    certs: dict[Kind, bytes]
    ca_certs: dict[Kind, bytes]
    serials: dict[Kind, int]
    r: bytes
    s: bytes

    def se(self) -> GpSe:
        """A fresh SE holding this memory (no key generation)."""
        return GpSe.from_snapshot(json.loads(json.dumps(self.snapshot)))


def issue_cert(ca: JpkiCa, kind: Kind, public_key: rsa.RSAPublicKey) -> x509.Certificate:
    """A phone certificate of this kind for the key, from the project's reference CA."""
    return ca.issue(
        kind=kind,
        profile=Profile.PHONE,
        serial=next(_SERIALS),
        public_key=public_key,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=365),
        personal=PERSON if kind is Kind.SIGNING else None,
    )


def der(cert: x509.Certificate) -> bytes:
    """A certificate's DER bytes."""
    return cert.public_bytes(serialization.Encoding.DER)


def tsm_for(se: GpSe, caller: bytes | None = APP, level: int = 0x33) -> Tsm:
    """mjpki.impl.se_tsm's TSM over this SE, reaching it as `caller`."""
    return Tsm(lambda apdu: se.transmit(apdu, caller=caller), ISD_KEYS, security_level=level)


def personalise(se: GpSe, ca: JpkiCa, kinds: tuple[Kind, ...]) -> Issued:
    """The whole SEI-TSM + SP-TSM sequence: install, access rule, R, key pairs, certificates, temporary then real PINs."""
    tsm = tsm_for(se)
    tsm.open_isd()
    if tsm.applet_present():  # ISS-8: a leftover applet is removed first
        assert tsm.delete_applet()
    tsm.install_applet()
    tsm.store_access_rules({A.JPKI_AID: [APP]})
    tsm.open_applet()
    assert tsm.read_se_id() == se.se_id
    s = tsm.generate_r()
    output = tsm.generate_key_pair(kinds)
    assert hashlib.sha256(output.r).digest() == s
    public_keys, certs, ca_certs, serials = {}, {}, {}, {}
    for kind in kinds:
        public_key = serialization.load_der_public_key(output.public_keys[kind])
        assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
        cert = issue_cert(ca, kind, public_key)
        tsm.write_certificate(A.CERT_TARGET[("user", kind)], der(cert))
        ca_der = der(ca.ca(kind).certificate)
        tsm.write_certificate(A.CERT_TARGET[("ca", kind)], ca_der)
        tsm.set_temporary_pin(kind, TEMP_PINS[kind])
        tsm.unblock_and_set_pin(kind, TEMP_PINS[kind], PINS[kind])
        public_keys[kind], certs[kind], ca_certs[kind], serials[kind] = public_key, der(cert), ca_der, cert.serial_number
    se.power_reset()
    return Issued(snapshot=se.snapshot(), public_keys=public_keys, certs=certs, ca_certs=ca_certs, serials=serials, r=output.r, s=s)


@pytest.fixture(scope="module")
def issued(ca: JpkiCa) -> Issued:
    """One SE personalised with both kinds (two key generations), shared through snapshots."""
    return personalise(GpSe("SE-D1", ISD_KEYS), ca, (Kind.AUTH, Kind.SIGNING))


def opensc_select_ap(se: GpSe, caller: bytes | None = None) -> None:
    """What OpenSC's jpki_select_ap sends."""
    assert tx(se, "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01", caller) == SW_OK


def select_ef(se: GpSe, fid: int, caller: bytes | None = None) -> bytes:
    """SELECT EF by file ID, P1 02 P2 0C."""
    return tx(se, A.select_ef(fid), caller)


def verify_pin(se: GpSe, kind: Kind, pin: bytes | None, caller: bytes | None = None) -> str:
    """Select the kind's PIN EF and VERIFY (no data: the status query)."""
    assert select_ef(se, A.EF_PIN[kind], caller) == SW_OK
    return sw(tx(se, A.verify(pin), caller))


def sign(se: GpSe, kind: Kind, data: bytes, caller: bytes | None = None) -> bytes:
    """Select the kind's key EF and COMPUTE DIGITAL SIGNATURE, as OpenSC does."""
    assert select_ef(se, A.EF_KEY[kind], caller) == SW_OK
    return tx(se, A.compute_signature(data), caller)


def read_file(se: GpSe, fid: int, caller: bytes | None = None) -> bytes:
    """Read a certificate EF as OpenSC does: the 4-byte header gives the size, then 256-byte READ BINARYs."""
    assert select_ef(se, fid, caller) == SW_OK
    header = tx(se, A.read_binary(0, 4), caller)
    assert sw(header) == "9000" and len(header) == 6 and header[:2] == b"\x30\x82"
    size = int.from_bytes(header[2:4], "big") + 4
    out = b""
    while len(out) < size:
        chunk = tx(se, A.read_binary(len(out), min(256, size - len(out)) & 0xFF), caller)
        assert sw(chunk) == "9000", sw(chunk)
        out += chunk[:-2]
    return out


# --- personalisation (ISS-2, ISS-5, ISS-6, ISS-8, ISS-9, PIN-2, ACL-1) ---------------------------------------------


def test_docs_personalisation_sequence_byte_for_byte(ca: JpkiCa) -> None:
    """The example sequence of docs/apdu-interface.md, from raw hex: both kinds, install to real PINs."""
    se = GpSe("SE-D1", ISD_KEYS)
    tsm = HostTsm(se)
    # SEI-TSM
    tsm.select("A0 00 00 01 51 00 00 00")
    tsm.open()
    assert tsm.send("80 F2 40 02 02 4F 00 00") == (b"", "6A88")  # no applet left over (ISS-8)
    install = (
        "80 E6 0C 00 26 09 D3 92 F0 00 26 01 00 00 00 0A D3 92 F0 00 26 01 00 00 00 01"
        " 0A D3 92 F0 00 26 01 00 00 00 01 01 00 02 C9 00 00 00"
    )
    assert h(install.replace(" ", "")) == A.install_for_install_and_selectable()
    assert tsm.send(install) == (b"\x00", "9000")
    rule = "80 E2 90 00 30 E2 2E 4F 0A D3 92 F0 00 26 01 00 00 00 01 C1 20" + APP.hex()
    assert h(rule.replace(" ", "")) == A.store_access_rules({A.JPKI_AID: [APP]})
    assert tsm.send(rule) == (b"", "9000")
    data, status = tsm.send("80 F2 40 02 02 4F 00 00")
    assert status == "9000" and A.JPKI_AID in data and A.APSD_AID in data
    # SP-TSM
    tsm.select("D3 92 F0 00 26 01 00 00 00 01")
    tsm.open()
    assert tsm.send("80 30 00 00 00") == (b"SE-D1", "9000")
    s, status = tsm.send("80 32 00 00 00")
    assert status == "9000" and len(s) == 32
    first, status = tsm.send("80 34 03 00 00")
    assert status == "6310" and first.startswith(h("E1820129830101308201220"[:-1]))
    second, status = tsm.send("80 40 00 EF 00")
    assert status == "6310"
    third, status = tsm.send("80 40 01 DE 00")
    assert status == "9000"
    output = A.parse_key_pair_output(first + second + third)
    assert hashlib.sha256(output.r).digest() == s  # ISS-2 / ISS-6: the JPKI system's H(R) = S check
    assert third.endswith(b"\xc0\x20" + output.r)
    serials = {}
    for kind in (Kind.AUTH, Kind.SIGNING):
        public_key = serialization.load_der_public_key(output.public_keys[kind])
        assert isinstance(public_key, rsa.RSAPublicKey)
        cert = der(issue_cert(ca, kind, public_key))
        serials[kind] = x509.load_der_x509_certificate(cert).serial_number
        ref = A.KIND_REF[kind]
        blocks = [cert[i : i + 239] for i in range(0, len(cert), 239)]
        for n, block in enumerate(blocks):
            p2 = n | (0x80 if n == len(blocks) - 1 else 0)
            assert tsm.send(bytes([0x80, 0x36, ref, p2, len(block)]) + block) == (b"", "9000")
        ca_cert = der(ca.ca(kind).certificate)
        for apdu in A.write_certificate(ref + 2, ca_cert):
            assert tsm.send(apdu) == (b"", "9000")
        assert tsm.send(f"80 38 {ref:02X} 00 10 {TEMP_PINS[kind].hex()}") == (b"", "9000")
    assert tsm.send(f"80 3A 01 00 18 81 10 {TEMP_PINS[Kind.AUTH].hex()} 82 04 31 32 33 34") == (b"", "9000")
    assert tsm.send(f"80 3A 02 00 1C 81 10 {TEMP_PINS[Kind.SIGNING].hex()} 82 08 41 42 43 44 31 32 33 34") == (b"", "9000")
    data, status = tsm.send("80 3E 00 00 00")
    assert status == "9000"
    status_tlv = A.parse_slot_status(data)
    assert status_tlv == se.status()
    for kind, tries in ((Kind.AUTH, 3), (Kind.SIGNING, 5)):
        slot = status_tlv.slots[kind]
        assert (slot.key_present, slot.cert_serial, slot.pin_status, slot.tries_left) == (True, serials[kind], PinStatus.SET, tries)
    assert not status_tlv.r_pending
    # then OpenSC's APDUs, plain, from a reader
    se.power_reset()
    opensc_select_ap(se)
    assert sw(tx(se, "00 A4 02 0C 02 00 18")) == "9000" and sw(tx(se, "00 20 00 80")) == "63C3"
    assert sw(tx(se, "00 20 00 80 04 31 32 33 34")) == "9000"
    signature = sign(se, Kind.AUTH, digest_info(b"login challenge"))
    assert sw(signature) == "9000" and len(signature) == 258
    public_key = serialization.load_der_public_key(output.public_keys[Kind.AUTH])
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature[:-2], b"login challenge", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("kind", list(Kind))
def test_one_kind_alone_leaves_the_other_empty_yet_opensc_can_bind(ca: JpkiCa, kind: Kind) -> None:
    """LNK-5: one kind alone. OpenSC asks both PINs' status at bind time: the missing kind's PIN answers 63C0."""
    se = GpSe(f"SE-{kind.value}", ISD_KEYS)
    done = personalise(se, ca, (kind,))
    other = Kind.SIGNING if kind is Kind.AUTH else Kind.AUTH
    status = se.status()
    assert status.slots[kind].key_present and status.slots[kind].cert_serial == done.serials[kind]
    assert status.slots[other] == A.SlotStatus(
        kind=other, key_present=False, cert_serial=None, pin_status=None, tries_left=0, temp_tries_left=0
    )
    opensc_select_ap(se)
    assert verify_pin(se, kind, None) == f"63C{se.max_tries(kind):X}"
    assert verify_pin(se, other, None) == "63C0"
    assert verify_pin(se, other, b"1234") == "6984"  # no PIN set for that kind
    assert sw(select_ef(se, A.EF_CERT[other])) == "6A82"
    assert sw(select_ef(se, A.EF_KEY[other])) == "6A82"


def test_tsm_reads_the_se_id_from_the_isd_and_the_applet(issued: Issued) -> None:
    """ISS-3 / LNK-6 / PIN-4: the SE-ID comes over SCP03, from the ISD (GET DATA DF4A) or the applet."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_isd()
    assert tsm.read_se_id_isd() == "SE-D1"
    assert tsm.send(A.command_apdu(0x80, 0xCA, 0x9F, 0x7F, b"", 0)) == (b"", A.SW_REFERENCED_DATA_NOT_FOUND)
    tsm.open_applet()
    assert tsm.read_se_id() == "SE-D1"


def test_isd_get_status_delete_and_reinstall(issued: Issued) -> None:
    """ISS-8 / MCH-4: DELETE removes the applet with every key, certificate, PIN, R and its access rule."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_isd()
    data = tsm.call(A.get_status(0x40), "GET STATUS")
    entries = A.parse_tlv(data)
    assert [A.parse_tlv(body)[0] for tag, body in entries if tag == 0xE3] == [(0x4F, A.APSD_AID), (0x4F, A.JPKI_AID)]
    assert A.ISD_AID in tsm.call(A.get_status(0x80), "GET STATUS")
    assert tsm.send(A.get_status(0x20)) == (b"", A.SW_WRONG_P1P2)
    assert tsm.send(A.delete_aid(A.ISD_AID)) == (b"", A.SW_CONDITIONS)
    assert tsm.send(A.delete_aid(A.JPKI_ELF_AID)) == (b"", A.SW_CONDITIONS)
    assert tsm.send(A.delete_aid(A.APSD_AID, related=False)) == (b"", A.SW_CONDITIONS)
    assert tsm.send(A.delete_aid(h("A0000000030000"))) == (b"", A.SW_REFERENCED_DATA_NOT_FOUND)
    assert tsm.send(A.install_for_install_and_selectable()) == (b"", A.SW_CONDITIONS)  # already there
    assert tsm.delete_applet()
    assert not tsm.applet_present() and not se.applet_present
    assert not tsm.delete_applet()
    assert A.JPKI_AID not in se.access_rules
    assert sw(tx(se, A.select_aid(A.JPKI_AID), APP)) == "6A82"
    assert se.snapshot()["applet"] is None
    # reinstall: empty slots, and no app admitted until the access rule is stored again
    tsm.open_isd()
    tsm.install_applet()
    assert sw(tx(se, A.select_aid(A.JPKI_AID), APP)) == "6982"
    tsm.open_isd()
    tsm.store_access_rules({A.JPKI_AID: [APP]})
    assert sw(tx(se, A.select_aid(A.JPKI_AID), APP)) == "9000"
    status = se.status()
    assert status.applet and not status.r_pending and not any(s.key_present for s in status.slots.values())
    # DELETE of the APSD with related objects takes the applet too
    tsm.open_isd()
    assert tsm.send(A.delete_aid(A.APSD_AID)) == (b"\x00", SW_OK)
    assert not se.applet_present


def test_isd_install_and_delete_refuse_bad_input(issued: Issued) -> None:
    """INSTALL and DELETE: wrong P1P2, load file, AID or data layout get their status words; nothing changes."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_isd()
    assert tsm.delete_applet()
    good = A.install_for_install_and_selectable()
    cases = {
        A.install_for_install_and_selectable(elf_aid=h("A000000062010101")): A.SW_REFERENCED_DATA_NOT_FOUND,
        A.install_for_install_and_selectable(module_aid=h("A00000006201010101")): A.SW_REFERENCED_DATA_NOT_FOUND,
        A.install_for_install_and_selectable(app_aid=h("D392F000260100000002")): A.SW_INCORRECT_DATA,
        good[:2] + b"\x04" + good[3:]: A.SW_WRONG_P1P2,
        A.command_apdu(0x80, 0xE6, 0x0C, 0x00, good[5:-2], 0): A.SW_INCORRECT_DATA,  # truncated
        A.command_apdu(0x80, 0xE6, 0x0C, 0x00, good[5:-1] + b"\x00", 0): A.SW_INCORRECT_DATA,  # trailing byte
        A.command_apdu(0x80, 0xE4, 0x00, 0x80, h("4F03010203"), 0): A.SW_INCORRECT_DATA,
        A.command_apdu(0x80, 0xE4, 0x01, 0x80, A.tlv(0x4F, A.JPKI_AID), 0): A.SW_WRONG_P1P2,
        A.command_apdu(0x80, 0xE4, 0x00, 0x80, b"\x4f\x20", 0): A.SW_INCORRECT_DATA,
    }
    for apdu, expected in cases.items():
        assert tsm.send(apdu) == (b"", expected), apdu.hex()
    assert not se.applet_present
    assert tsm.send(good) == (b"\x00", SW_OK)


def test_access_rules_store_data_chaining_and_errors(issued: Issued) -> None:
    """ACL-1: STORE DATA replaces a rule per AID, in one block or several; malformed rules change nothing."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_isd()
    rule = A.tlv(0xE2, A.tlv(0x4F, A.JPKI_AID) + A.tlv(0xC1, APP) + A.tlv(0xC1, OTHER_APP))
    assert tsm.send(A.command_apdu(0x80, 0xE2, 0x10, 0x00, rule[:30])) == (b"", SW_OK)
    assert tsm.send(A.command_apdu(0x80, 0xE2, 0x90, 0x01, rule[30:])) == (b"", SW_OK)
    assert se.access_rules[A.JPKI_AID] == (APP, OTHER_APP)
    assert tsm.send(A.command_apdu(0x80, 0xE2, 0x90, 0x01, rule[30:])) == (b"", A.SW_WRONG_P1P2)  # block 1 with no block 0
    assert sw(tx(se, A.select_aid(A.JPKI_AID), OTHER_APP)) == "9000"
    bad = [
        A.tlv(0xE3, A.tlv(0x4F, A.JPKI_AID)),
        A.tlv(0xE2, A.tlv(0xC1, APP)),
        A.tlv(0xE2, A.tlv(0x4F, A.JPKI_AID) + A.tlv(0xC1, APP[:31])),
        A.tlv(0xE2, A.tlv(0x4F, A.JPKI_AID) + A.tlv(0x4F, A.JPKI_AID)),
        A.tlv(0xE2, A.tlv(0x4F, A.JPKI_AID) + A.tlv(0xC2, APP)),
        h("E2FF00"),
    ]
    tsm.open_isd()  # the SELECT by the other caller ended the session
    for data in bad:
        assert tsm.send(A.command_apdu(0x80, 0xE2, 0x90, 0x00, data)) == (b"", A.SW_INCORRECT_DATA), data.hex()
    assert tsm.send(A.command_apdu(0x80, 0xE2, 0x80, 0x00, rule)) == (b"", A.SW_WRONG_P1P2)  # encrypted / not BER-TLV
    assert se.access_rules[A.JPKI_AID] == (APP, OTHER_APP)
    tsm.store_access_rules({A.JPKI_AID: [APP]})
    assert se.access_rules[A.JPKI_AID] == (APP,)
    tsm.store_access_rules({A.JPKI_AID: []})  # no hash: no app admitted
    assert A.JPKI_AID not in se.access_rules
    assert sw(tx(se, A.select_aid(A.JPKI_AID), APP)) == "6982"


# --- access control (ACL-1) ----------------------------------------------------------------------------------------


def test_access_control_by_caller_hash(issued: Issued) -> None:
    """ACL-1: only apps whose certificate hash is in the rule reach the applet; readers iff reader_access."""
    se = issued.se()
    assert sw(tx(se, A.select_aid(A.JPKI_AID), OTHER_APP)) == "6982"
    assert sw(tx(se, A.select_aid(A.JPKI_AID), APP)) == "9000"
    assert sw(tx(se, A.select_aid(A.JPKI_AID), None)) == "9000"  # reader_access defaults to True (PC/SC, OpenSC)
    # the check runs on every command the applet receives, not only on SELECT
    assert select_ef(se, A.EF_CERT[Kind.AUTH], APP) == SW_OK
    assert sw(tx(se, A.read_binary(0, 4), OTHER_APP)) == "6982"
    assert sw(tx(se, A.read_binary(0, 4), APP)) == "9000"
    # the ISD is not restricted by caller
    for caller in (APP, OTHER_APP, None):
        assert tx(se, A.select_aid(A.ISD_AID), caller) == SW_OK
    # reader_access=False: a reader is refused like an unlisted app
    snap = issued.snapshot | {"config": issued.snapshot["config"] | {"reader_access": False}}
    closed = GpSe.from_snapshot(snap)
    assert not closed.reader_access
    assert sw(tx(closed, A.select_aid(A.JPKI_AID), None)) == "6982"
    assert sw(tx(closed, A.select_aid(A.JPKI_AID), APP)) == "9000"
    assert sw(tx(closed, A.read_binary(0, 1), None)) == "6982"
    fresh = GpSe("SE-X", ISD_KEYS, reader_access=False)
    assert not fresh.reader_access
    with pytest.raises(ValueError, match="32-byte"):
        se.transmit(A.select_aid(A.JPKI_AID), caller=b"short")


def test_tsm_reaches_the_applet_only_through_an_admitted_app(issued: Issued) -> None:
    """ACL-1 holds for the TSM too: through another app, even SELECT fails."""
    se = issued.se()
    with pytest.raises(SeCommandError) as info:
        tsm_for(se, caller=OTHER_APP).open_applet()
    assert info.value.sw == A.SW_SECURITY_STATUS
    tsm_for(se, caller=APP).open_applet()


# --- TSM commands need SCP03 (ISS-9) --------------------------------------------------------------------------------


def test_tsm_commands_without_scp03_get_6982(issued: Issued) -> None:
    """ISS-9: every TSM command and every ISD card management command, plain or at level 01, answers 6982."""
    se = issued.se()
    tsm = HostTsm(se)
    tsm.select(A.JPKI_AID.hex())
    tsm_commands = [
        A.get_se_id(),
        A.generate_r(),
        A.generate_key_pair([Kind.AUTH]),
        A.write_certificate(0x01, issued.certs[Kind.AUTH])[0],
        A.set_temporary_pin(Kind.AUTH, b"TEMP", reset=True),
        A.unblock_and_set_pin(Kind.AUTH, b"TEMP", b"9999"),
        A.delete_keys([Kind.AUTH, Kind.SIGNING]),
        A.get_slot_status(),
        A.get_output(0),
    ]
    assert {apdu[1] for apdu in tsm_commands} == set(A.TSM_INS)
    for apdu in tsm_commands:
        assert sw(tsm.plain(apdu)) == "6982", apdu.hex()
    # a plain TSM command also ends an open session
    tsm.open()
    assert tsm.send(A.get_slot_status())[1] == "9000"
    assert sw(tsm.plain(A.get_slot_status())) == "6982"
    assert sw(tsm.plain(tsm.host.wrap(A.get_slot_status()))) == "6982"  # type: ignore[union-attr]
    # C-MAC alone (level 01) is not enough
    tsm.open(level=0x01)
    for apdu in tsm_commands:
        assert tsm.send(apdu) == (b"", "6982"), apdu.hex()
    # level 03 is enough
    tsm.open(level=0x03)
    assert tsm.send(A.get_se_id()) == (b"SE-D1", "9000")
    assert se.status() == issued.se().status()  # nothing changed
    # the ISD's card management
    tsm.select(A.ISD_AID.hex())
    for apdu in (
        A.install_for_install_and_selectable(),
        A.delete_aid(A.JPKI_AID),
        A.store_access_rules({A.JPKI_AID: [OTHER_APP]}),
        A.get_status(),
        A.get_se_id_isd(),
    ):
        assert sw(tsm.plain(apdu)) == "6982", apdu.hex()
    tsm.open(level=0x01)
    assert tsm.send(A.delete_aid(A.JPKI_AID)) == (b"", "6982")
    assert se.applet_present and se.access_rules[A.JPKI_AID] == (APP,)
    # TSM instructions are unknown to the ISD
    tsm.open()
    assert tsm.send(A.get_slot_status()) == (b"", "6D00")


def test_secure_channel_failures(issued: Issued) -> None:
    """A tampered wrapped command, a wrong key set, or a SELECT end the session; each answers its status word."""
    se = issued.se()
    tsm = HostTsm(se)
    tsm.select(A.JPKI_AID.hex())
    tsm.open()
    assert tsm.host is not None
    wrapped = bytearray(tsm.host.wrap(A.get_slot_status()))
    wrapped[-3] ^= 0x01  # a C-MAC byte
    assert sw(tsm.plain(bytes(wrapped))) == "6982"
    assert sw(tsm.plain(tsm.host.wrap(A.get_slot_status()))) == "6982"  # the session is over
    tsm.open()
    tsm.select(A.JPKI_AID.hex())  # SELECT ends the session
    assert sw(tsm.plain(SCP03Host(ISD_KEYS).initialize_update()[:4] + b"\x00")) == "6700"
    wrong = HostTsm(se, keys=StaticKeys(enc=bytes(16), mac=bytes(16), dek=bytes(16)))
    host = SCP03Host(wrong.keys)
    response = wrong.plain(host.initialize_update())
    assert sw(response) == "9000"  # the card answers; the host sees the card cryptogram fail
    with pytest.raises(Exception, match="card cryptogram"):
        host.process_initialize_update_response(response)
    assert sw(tsm.plain(h("8482330010") + bytes(16))) == "6300"  # wrong host cryptogram
    assert sw(tsm.plain(h("8482330010") + bytes(16))) == "6985"  # no INITIALIZE UPDATE before it
    assert sw(tsm.plain(h("80503100080102030405060708"))) == "6A88"  # unknown key version


# --- R and S (ISS-2, ISS-5) ----------------------------------------------------------------------------------------


def test_r_commitment_released_exactly_once_and_kept_across_resets(issued: Issued) -> None:
    """ISS-2: S = SHA-256(R); ISS-5: R goes out once, with the public key; a pending R is non-volatile."""
    se = issued.se()
    assert hashlib.sha256(issued.r).digest() == issued.s
    tsm = tsm_for(se)
    tsm.open_applet()
    assert tsm.send(A.generate_key_pair([Kind.AUTH])) == (b"", A.SW_CONDITIONS)  # R was consumed at issuance
    s1 = tsm.generate_r()
    s2 = tsm.generate_r()  # a new application replaces R
    assert s1 != s2 and len(s2) == 32
    assert tsm.slot_status().r_pending
    # R survives a reset and a reload of the EEPROM (issuance is asynchronous)
    se.power_reset()
    se = GpSe.from_snapshot(se.snapshot())
    tsm = tsm_for(se)
    tsm.open_applet()
    assert tsm.slot_status().r_pending
    output = tsm.generate_key_pair([Kind.AUTH])
    assert hashlib.sha256(output.r).digest() == s2
    assert set(output.public_keys) == {Kind.AUTH}
    # once only: R is gone from the SE, the output buffer is gone after the next command
    assert se.snapshot()["applet"]["r"] is None
    assert not tsm.slot_status().r_pending
    assert tsm.send(A.get_output(0)) == (b"", A.SW_CONDITIONS)
    assert tsm.send(A.generate_key_pair([Kind.AUTH])) == (b"", A.SW_CONDITIONS)
    # the new key replaced the auth slot entirely; the signing slot is untouched
    status = tsm.slot_status()
    assert status.slots[Kind.AUTH] == A.SlotStatus(
        kind=Kind.AUTH, key_present=True, cert_serial=None, pin_status=None, tries_left=0, temp_tries_left=0
    )
    assert status.slots[Kind.SIGNING] == issued.se().status().slots[Kind.SIGNING]
    # GET OUTPUT on a fresh output: offsets, and 6B00 past the end
    tsm.generate_r()
    data, status_word = tsm.send(A.generate_key_pair([Kind.SIGNING]))
    assert status_word == A.SW_MORE_DATA and len(data) == A.MAX_BLOCK
    rest, status_word = tsm.send(A.get_output(A.MAX_BLOCK))
    assert status_word == SW_OK
    assert tsm.send(A.get_output(A.MAX_BLOCK + len(rest))) == (b"", A.SW_WRONG_OFFSET)
    again, status_word = tsm.send(A.get_output(A.MAX_BLOCK))  # an idempotent re-read until another command
    assert (again, status_word) == (rest, SW_OK)
    assert A.parse_key_pair_output(data + rest).public_keys.keys() == {Kind.SIGNING}


# --- certificates --------------------------------------------------------------------------------------------------


def test_auth_certificate_readable_without_pin_signing_only_after_signing_pin(issued: Issued) -> None:
    """The auth certificate and both CA certificates are free to read; the signing one needs the signing PIN."""
    se = issued.se()
    opensc_select_ap(se)
    assert read_file(se, A.EF_CERT[Kind.AUTH]) == issued.certs[Kind.AUTH]
    assert read_file(se, A.EF_CA_CERT[Kind.AUTH]) == issued.ca_certs[Kind.AUTH]
    assert read_file(se, A.EF_CA_CERT[Kind.SIGNING]) == issued.ca_certs[Kind.SIGNING]
    assert select_ef(se, A.EF_CERT[Kind.SIGNING]) == SW_OK
    assert sw(tx(se, A.read_binary(0, 4))) == "6982"
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    assert select_ef(se, A.EF_CERT[Kind.SIGNING]) == SW_OK
    assert sw(tx(se, A.read_binary(0, 4))) == "6982"  # the auth PIN does not open the signing certificate
    assert verify_pin(se, Kind.SIGNING, PINS[Kind.SIGNING]) == "9000"
    assert read_file(se, A.EF_CERT[Kind.SIGNING]) == issued.certs[Kind.SIGNING]
    se.power_reset()
    opensc_select_ap(se)
    assert select_ef(se, A.EF_CERT[Kind.SIGNING]) == SW_OK
    assert sw(tx(se, A.read_binary(0, 4))) == "6982"


def test_read_binary_offsets_short_reads_and_errors(issued: Issued) -> None:
    """READ BINARY: offsets, Le 00 = 256, a short read at the end, 6B00 past it; the token info EF."""
    se = issued.se()
    opensc_select_ap(se)
    assert sw(tx(se, A.read_binary(0, 0))) == "6986"  # no current EF yet
    assert select_ef(se, A.EF_TOKEN_INFO) == SW_OK
    assert tx(se, A.read_binary(0, 0)) == A.TOKEN_INFO + SW_OK == b"JPKIAPGPSETOKEN" + b" " * 17 + SW_OK
    assert tx(se, A.read_binary(0x10, 0x20)) == A.TOKEN_INFO[0x10:] + SW_OK
    assert tx(se, A.read_binary(4, 5)) == A.TOKEN_INFO[4:9] + SW_OK
    assert sw(tx(se, A.read_binary(0x20, 1))) == "6B00"
    assert sw(tx(se, A.read_binary(0x7FFF, 0))) == "6B00"
    assert sw(tx(se, "00 B0 00 00")) == "6700"  # no Le
    assert sw(tx(se, "00 B0 00 00 01 00 00")) == "6700"  # data
    assert sw(tx(se, "00 B0 81 00 00")) == "6A86"  # short EF identifier
    cert = issued.certs[Kind.AUTH]
    assert select_ef(se, A.EF_CERT[Kind.AUTH]) == SW_OK
    assert tx(se, A.read_binary(0, 0)) == cert[:256] + SW_OK
    assert tx(se, A.read_binary(len(cert) - 3, 0)) == cert[-3:] + SW_OK
    assert sw(tx(se, A.read_binary(len(cert), 0))) == "6B00"
    for kind in Kind:
        for fid in (A.EF_KEY[kind], A.EF_PIN[kind]):
            assert select_ef(se, fid) == SW_OK
            assert sw(tx(se, A.read_binary(0, 0))) == "6981"  # no command reads a key or a PIN (ISS-5)
    assert sw(select_ef(se, 0x3F00)) == "6A82"
    assert sw(tx(se, "00 A4 02 0C 01 00")) == "6700"
    assert sw(tx(se, "00 A4 02 00 02 00 0A")) == "6A86"
    assert sw(tx(se, "00 A4 00 0C 02 3F 00")) == "6A86"


def test_write_certificate_checks(issued: Issued, ca: JpkiCa) -> None:
    """ISS-6: only a DER certificate for the slot's own key is installed; blocks must come in order."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_applet()
    foreign = der(ca.ca(Kind.AUTH).certificate)  # a certificate for another key
    for target, expected in ((0x01, A.SW_INCORRECT_DATA), (0x02, A.SW_INCORRECT_DATA)):
        (apdu,) = A.write_certificate(target, foreign)[-1:]
        blocks = A.write_certificate(target, foreign)
        for block in blocks[:-1]:
            assert tsm.send(block) == (b"", SW_OK)
        assert tsm.send(apdu) == (b"", expected)
    assert tsm.send(A.write_certificate(0x01, b"\x30\x82\x00\x02\x05\x00")[0]) == (b"", A.SW_INCORRECT_DATA)
    assert tsm.send(A.write_certificate(0x01, b"\x30\x03\x02\x01\x01")[0]) == (b"", A.SW_INCORRECT_DATA)
    cert = issued.certs[Kind.AUTH]
    blocks = A.write_certificate(0x01, cert)
    assert tsm.send(blocks[1]) == (b"", A.SW_WRONG_P1P2)  # block 1 without block 0
    assert tsm.send(blocks[0]) == (b"", SW_OK)
    assert tsm.send(blocks[2]) == (b"", A.SW_WRONG_P1P2)  # block 2 after block 0
    assert tsm.send(blocks[1]) == (b"", A.SW_WRONG_P1P2)  # the chain was dropped
    assert tsm.send(A.command_apdu(0x80, 0x36, 0x05, 0x80, cert[:10])) == (b"", A.SW_WRONG_P1P2)
    assert tsm.send(A.command_apdu(0x80, 0x36, 0x01, 0x80)) == (b"", A.SW_WRONG_LENGTH)
    big = [A.command_apdu(0x80, 0x36, 0x03, n, bytes(239)) for n in range(35)]
    for apdu in big[:34]:
        assert tsm.send(apdu) == (b"", SW_OK)
    assert tsm.send(big[34]) == (b"", A.SW_NOT_ENOUGH_MEMORY)
    for apdu in blocks:  # the right certificate, in order, still goes in
        assert tsm.send(apdu) == (b"", SW_OK)
    assert se.status() == issued.se().status()
    assert tsm.delete_keys([Kind.AUTH])
    for apdu in blocks[:-1]:
        assert tsm.send(apdu) == (b"", SW_OK)
    assert tsm.send(blocks[-1]) == (b"", A.SW_REFERENCED_DATA_NOT_FOUND)  # no key for it


# --- signatures (CA-5, ISS-5) --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_signature_verifies_with_the_public_key_from_generate_key_pair(issued: Issued, kind: Kind) -> None:
    """CA-5: RSASSA-PKCS1-v1_5 over the host's DigestInfo, made in the SE, verifies with the generated public key."""
    se = issued.se()
    opensc_select_ap(se)
    other = Kind.SIGNING if kind is Kind.AUTH else Kind.AUTH
    assert sw(sign(se, kind, digest_info(b"m"))) == "6982"  # no PIN verified
    assert verify_pin(se, other, PINS[other]) == "9000"
    assert sw(sign(se, kind, digest_info(b"m"))) == "6982"  # the other kind's PIN does not unlock this key
    assert verify_pin(se, kind, PINS[kind]) == "9000"
    for message in (b"", b"a document to sign", bytes(1000)):
        response = sign(se, kind, digest_info(message))
        assert sw(response) == "9000" and len(response) == 258
        issued.public_keys[kind].verify(response[:-2], message, padding.PKCS1v15(), hashes.SHA256())
    # the verified state lasts across EF selections (OpenSC verifies, then selects the key EF and signs)
    assert select_ef(se, A.EF_TOKEN_INFO) == SW_OK
    assert sw(sign(se, kind, digest_info(b"again"))) == "9000"


def test_signature_verifies_with_openssl_pkeyutl(issued: Issued, openssl: str, tmp_path: Path) -> None:
    """CA-5: the SE's signatures also verify with `openssl pkeyutl -verify` (and a tampered one does not)."""
    se = issued.se()
    opensc_select_ap(se)
    for kind in Kind:
        assert verify_pin(se, kind, PINS[kind]) == "9000"
        message = f"signed by the {kind.value} key".encode()
        signature = sign(se, kind, digest_info(message))[:-2]
        pub = tmp_path / f"{kind.value}.pub.pem"
        pub.write_bytes(issued.public_keys[kind].public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        digest = tmp_path / f"{kind.value}.sha256"
        digest.write_bytes(hashlib.sha256(message).digest())
        for name, sig in (("good", signature), ("bad", signature[:-1] + bytes([signature[-1] ^ 1]))):
            sig_path = tmp_path / f"{kind.value}.{name}.sig"
            sig_path.write_bytes(sig)
            result = subprocess.run(
                [openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", digest, "-sigfile", sig_path, "-pkeyopt", "digest:sha256"],
                capture_output=True,
                text=True,
                check=False,
            )
            if name == "good":
                assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stdout + result.stderr
            else:
                assert result.returncode != 0


def test_signature_over_other_inputs(issued: Issued) -> None:
    """Any 1..245 bytes are padded and signed (SHA-1/512 DigestInfo, raw MD5+SHA-1); other lengths get 6700."""
    se = issued.se()
    opensc_select_ap(se)
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    public_key = issued.public_keys[Kind.AUTH]
    for algorithm, prefix in (
        (hashes.SHA1(), "3021300906052b0e03021a05000414"),
        (hashes.SHA512(), "3051300d060960864801650304020305000440"),
    ):
        digest = hashlib.new(algorithm.name, b"x").digest()
        response = sign(se, Kind.AUTH, h(prefix) + digest)
        public_key.verify(response[:-2], b"x", padding.PKCS1v15(), algorithm)
    for data in (hashlib.md5(b"tls").digest() + hashlib.sha1(b"tls").digest(), b"\x01", bytes(245)):
        response = sign(se, Kind.AUTH, data)
        assert sw(response) == "9000"
        assert public_key.recover_data_from_signature(response[:-2], padding.PKCS1v15(), None) == data
    assert sw(sign(se, Kind.AUTH, bytes(246))) == "6700"
    assert sw(tx(se, "80 2A 00 80 00")) == "6700"  # no data (a case-2 APDU)
    assert sw(tx(se, "80 2A 9E 9A 01 00 00")) == "6A86"
    assert select_ef(se, A.EF_CERT[Kind.AUTH]) == SW_OK
    assert sw(tx(se, A.compute_signature(digest_info(b"m")))) == "6986"  # the current EF is not a key
    assert sw(tx(se, "00 2A 00 80 01 00 00")) == "6D00"  # JPKI signs with CLA 80


# --- GET CHALLENGE (PKCS#11 C_GenerateRandom) ----------------------------------------------------------------------


class _CountingRandom:
    """A deterministic random_bytes that records every length it was asked for."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self._counter = itertools.count()

    def __call__(self, n: int) -> bytes:
        self.asked.append(n)
        return bytes(next(self._counter) & 0xFF for _ in range(n))


def test_get_challenge_answers_le_fresh_bytes_before_any_pin(issued: Issued) -> None:
    """00 84 00 00 Le: exactly Ne random bytes (Le 00 = 256) and 9000, no PIN needed; each answer is new."""
    assert A.get_challenge(8) == h("0084000008") and A.get_challenge(0) == h("0084000000")
    se = issued.se()
    opensc_select_ap(se)
    for le, n in ((1, 1), (8, 8), (10, 10), (100, 100), (239, 239), (255, 255), (0, 256)):
        first, second = tx(se, A.get_challenge(le)), tx(se, A.get_challenge(le))
        assert sw(first) == sw(second) == "9000" and len(first) == len(second) == n + 2, le
        if n >= 8:
            assert first != second, le  # fresh bytes each time (2^-64 odds of a false alarm)
    assert se.status() == issued.se().status()  # nothing of the card changed: no PIN was needed or spent


def test_get_challenge_draws_from_the_se_random_source(issued: Issued) -> None:
    """The bytes are random_bytes(Ne) of the SE (plain) or random_bytes(min(Ne, 239)) (wrapped); the SE keeps no copy."""
    source = _CountingRandom()
    se = GpSe.from_snapshot(json.loads(json.dumps(issued.snapshot)), random_bytes=source)
    before = se.snapshot()
    opensc_select_ap(se)
    assert tx(se, A.get_challenge(10)) == bytes(range(10)) + SW_OK
    assert tx(se, A.get_challenge(3)) == bytes(range(10, 13)) + SW_OK
    tsm = HostTsm(se, caller=None)
    tsm.select(A.JPKI_AID.hex())
    tsm.open()
    assert tsm.send(A.get_challenge(10)) == (bytes((13 + i) & 0xFF for i in range(A.MAX_BLOCK)), "9000")
    assert source.asked == [10, 3, A.MAX_BLOCK]
    after = se.snapshot()
    after["applet"]["apsd"]["sequence_counter"] = before["applet"]["apsd"]["sequence_counter"]  # the session opened
    assert after == before  # nothing non-volatile changed: no copy of a challenge, R and the PINs untouched


def test_get_challenge_errors(issued: Issued) -> None:
    """P1 P2 not 00 00: 6A86 (checked first); data or no Le: 6700; CLA 80: 6D00; the ISD: 6D00; ACL-1: 6982."""
    se = issued.se()
    assert sw(tx(se, A.get_challenge(8))) == "6D00"  # after reset the ISD is selected: it has no GET CHALLENGE
    opensc_select_ap(se, APP)
    for apdu in ("00 84 00 00", "00 84 00 00 01 00", "00 84 00 00 01 00 08"):
        assert sw(tx(se, apdu, APP)) == "6700", apdu
    for apdu in ("00 84 01 00 08", "00 84 00 01 08", "00 84 80 00 00", "00 84 FF FF 08", "00 84 01 00", "00 84 00 01 02 00 00 08"):
        assert sw(tx(se, apdu, APP)) == "6A86", apdu  # P1 P2 before the length, as SELECT EF and VERIFY
    assert sw(tx(se, "80 84 00 00 08", APP)) == "6D00"  # ISO class only
    assert sw(tx(se, A.get_challenge(8), OTHER_APP)) == "6982"  # ACL-1 on every command the applet receives
    assert sw(tx(se, A.get_challenge(8), APP)) == "9000"
    closed = GpSe.from_snapshot(se.snapshot() | {"config": se.snapshot()["config"] | {"reader_access": False}})
    assert sw(tx(closed, A.select_aid(A.JPKI_AID), APP)) == "9000"
    assert sw(tx(closed, A.get_challenge(8))) == "6982"  # a reader, with reader_access off


def test_get_challenge_wrapped_answers_at_most_239_bytes(issued: Issued) -> None:
    """CLA 04 in a session to the applet, at any level: min(Ne, 239) bytes; the wrapped Le is 00, so 239."""
    se = issued.se()
    tsm = HostTsm(se)
    tsm.select(A.JPKI_AID.hex())
    for level in (0x01, 0x03, 0x13, 0x33):
        tsm.open(level)
        first, second = tsm.send(A.get_challenge(8)), tsm.send(A.get_challenge(0))
        assert first[1] == second[1] == "9000" and len(first[0]) == len(second[0]) == A.MAX_BLOCK, level
        assert first[0] != second[0]
        assert tsm.send("00 84 00 00") == (b"", "6700")  # no Le, even wrapped
        assert tsm.send("00 84 00 01 00") == (b"", "6A86")
        assert tsm.send("80 84 00 00 00") == (b"", "6D00")
    tsm.select(A.ISD_AID.hex())
    tsm.open()
    assert tsm.send(A.get_challenge(8)) == (b"", "6D00")  # the ISD has none, wrapped or not


def test_get_challenge_keeps_ef_pins_and_session_but_ends_output_and_chain(issued: Issued) -> None:
    """It clears only what every applet command clears: the pending output and a certificate chain."""
    se = issued.se()
    opensc_select_ap(se)
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    assert select_ef(se, A.EF_KEY[Kind.AUTH]) == SW_OK
    assert sw(tx(se, A.get_challenge(8))) == "9000"
    assert sw(tx(se, A.compute_signature(digest_info(b"m")))) == "9000"  # current EF and verified PIN stay
    tsm = HostTsm(se)
    tsm.select(A.JPKI_AID.hex())
    tsm.open()
    blocks = A.write_certificate(0x03, issued.ca_certs[Kind.AUTH], block_size=200)
    assert len(blocks) >= 2 and tsm.send(blocks[0]) == (b"", "9000")
    assert sw(tsm.plain(A.get_challenge(8))) == "9000"  # plain, inside the session: the session stays
    assert tsm.send(blocks[1]) == (b"", "6A86")  # but the chain is gone
    assert tsm.send(A.generate_r())[1] == "9000"
    data, status = tsm.send(A.generate_key_pair([Kind.AUTH]))
    assert status == "6310" and len(data) == A.MAX_BLOCK
    assert sw(tsm.plain(A.get_challenge(8))) == "9000"
    assert tsm.send(A.get_output(len(data))) == (b"", "6985")  # the output is no longer readable


def test_get_challenge_works_with_a_locked_pin_and_without_keys(issued: Issued) -> None:
    """In any PIN state and with empty slots: GET CHALLENGE needs nothing of them."""
    se = issued.se()
    opensc_select_ap(se)
    for _ in range(3):
        verify_pin(se, Kind.AUTH, b"0000")
    assert se.status().slots[Kind.AUTH].pin_status is PinStatus.LOCKED
    assert sw(tx(se, A.get_challenge(16))) == "9000"
    tsm = HostTsm(se)
    tsm.select(A.JPKI_AID.hex())
    tsm.open()
    assert tsm.send(A.delete_keys([Kind.AUTH, Kind.SIGNING])) == (b"", "9000")
    opensc_select_ap(se)
    assert not any(s.key_present for s in se.status().slots.values())
    assert len(tx(se, A.get_challenge(16))) == 18


# --- the private keys never leave (ISS-5) ----------------------------------------------------------------------------

_P1P2 = ((0x00, 0x00), (0x00, 0x80), (0x01, 0x00), (0x02, 0x0C))
_BODIES: tuple[tuple[bytes, int | None], ...] = ((b"", None), (b"", 0x00), (b"\x00\x17", 0x00))


class _Secrets:
    """Every 16-byte window of every private-key number (p, q, d, d mod p-1, d mod q-1, q^-1 mod p) in an SE's EEPROM."""

    def __init__(self) -> None:
        self._cache: dict[str, set[bytes]] = {}
        self.seen: set[bytes] = set()

    def update(self, se: GpSe) -> None:
        applet = se.snapshot()["applet"]
        for slot in [] if applet is None else applet["slots"].values():
            key_hex = slot["private_key"]
            if key_hex is None or key_hex in self._cache:
                continue
            key = serialization.load_der_private_key(h(key_hex), None, unsafe_skip_rsa_key_validation=True)
            assert isinstance(key, rsa.RSAPrivateKey)
            n = key.private_numbers()
            windows: set[bytes] = set()
            for value in (n.p, n.q, n.d, n.dmp1, n.dmq1, n.iqmp):
                raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
                windows |= {raw[i : i + 16] for i in range(len(raw) - 15)}
            self._cache[key_hex] = windows
            self.seen |= windows

    @property
    def keys_seen(self) -> int:
        return len(self._cache)

    def leaked(self, response: bytes) -> bool:
        return any(response[i : i + 16] in self.seen for i in range(len(response) - 15))


def _walk(se: GpSe, secrets_: _Secrets, classes: tuple[int, ...], setup: Callable[[], Callable[[bytes], bytes]]) -> set[tuple[int, int]]:
    """Every INS under these CLAs with a few P1P2 and bodies; assert no response carries key material.

    Returns the (CLA, INS) pairs that succeeded at least once.
    """
    succeeded: set[tuple[int, int]] = set()
    for cla, ins, (p1, p2), (data, le) in itertools.product(classes, range(256), _P1P2, _BODIES):
        send = setup()
        response = send(A.command_apdu(cla, ins, p1, p2, data, le))
        assert len(response) >= 2 and sw(response) != "6F00", (cla, ins, p1, p2)
        if sw(response) in ("9000", "6310"):
            succeeded.add((cla, ins))
            secrets_.update(se)  # a key generation adds secrets; they must not be in this very response either
        assert not secrets_.leaked(response), f"key material in the response to {cla:02X} {ins:02X} {p1:02X} {p2:02X}"
    return succeeded


def test_no_apdu_returns_private_key_material(issued: Issued) -> None:
    """ISS-5: walk INS 00..FF under CLA 00/80 (plain) and 84/04 (SCP03, unwrapped) in the states that unlock the most."""
    se = issued.se()
    secrets_ = _Secrets()
    secrets_.update(se)
    assert len(secrets_.seen) > 1000
    base = se.snapshot()

    def unlocked(fid: int) -> Callable[[], Callable[[bytes], bytes]]:
        """Applet selected, both PINs verified, this EF current."""

        def setup() -> Callable[[bytes], bytes]:
            se.power_reset()
            opensc_select_ap(se)
            if any(verify_pin(se, kind, PINS[kind]) != "9000" for kind in Kind):
                se.restore(base)
                opensc_select_ap(se)
                assert all(verify_pin(se, kind, PINS[kind]) == "9000" for kind in Kind)
            assert select_ef(se, fid) == SW_OK
            return lambda apdu: se.transmit(apdu, caller=None)

        return setup

    def isd() -> Callable[[bytes], bytes]:
        se.power_reset()
        return lambda apdu: se.transmit(apdu, caller=APP)

    tsm = HostTsm(se)

    def secure() -> Callable[[bytes], bytes]:
        """An SCP03 session at level 33 to the applet; the walker sees the unwrapped plain response."""
        se.power_reset()
        tsm.select(A.JPKI_AID.hex())
        tsm.open(0x33)
        host = tsm.host
        assert host is not None

        def send(apdu: bytes) -> bytes:
            return host.unwrap(se.transmit(host.wrap(apdu), caller=APP))

        assert send(A.select_ef(A.EF_CA_CERT[Kind.AUTH])) == SW_OK  # so that READ BINARY has a file

        return send

    plain = _walk(se, secrets_, (0x00, 0x80), unlocked(A.EF_KEY[Kind.AUTH]))
    plain |= _walk(se, secrets_, (0x00, 0x80), unlocked(A.EF_CERT[Kind.SIGNING]))
    _walk(se, secrets_, (0x00, 0x80), isd)
    wrapped = _walk(se, secrets_, (0x00, 0x80), secure)  # wrapped: CLA 04 and 84 on the wire
    # the walk reached the dangerous places: signatures and certificate reads, R, a key generation, the slot status
    assert {(0x80, 0x2A), (0x00, 0xB0), (0x00, 0xA4)} <= plain
    assert {(0x80, 0x32), (0x80, 0x34), (0x80, 0x3E), (0x80, 0x3C), (0x00, 0xB0)} <= wrapped
    assert secrets_.keys_seen == 3


# --- PINs (PIN-1 .. PIN-5) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_wrong_pins_count_down_lock_and_a_correct_one_resets(issued: Issued, kind: Kind) -> None:
    """PIN-3: wrong entries count down (63Cx); at 0 the PIN locks: 63C0 on an empty VERIFY, 6983 with data."""
    se = issued.se()
    limit = se.max_tries(kind)
    assert limit == {Kind.AUTH: 3, Kind.SIGNING: 5}[kind]
    opensc_select_ap(se)
    assert verify_pin(se, kind, b"0000" if kind is Kind.AUTH else b"WRONG1") == f"63C{limit - 1:X}"
    assert verify_pin(se, kind, None) == f"63C{limit - 1:X}"
    assert verify_pin(se, kind, PINS[kind]) == "9000"  # a correct PIN resets the counter
    assert verify_pin(se, kind, None) == f"63C{limit:X}"  # still 63Cx while verified (OpenSC needs SW1 = 63)
    for left in range(limit - 1, -1, -1):
        assert verify_pin(se, kind, b"9999" if kind is Kind.AUTH else b"NOTIT9") == f"63C{left:X}"
    assert verify_pin(se, kind, None) == "63C0"
    assert verify_pin(se, kind, PINS[kind]) == "6983"
    status = se.status().slots[kind]
    assert (status.pin_status, status.tries_left) == (PinStatus.LOCKED, 0)
    assert sw(sign(se, kind, digest_info(b"m"))) == "6982"  # a locked PIN unlocks nothing
    assert sw(tx(se, A.change_pin(PINS[kind], PINS[kind]))) != "9000"


def test_pin_initialisation_and_temporary_pin(issued: Issued) -> None:
    """PIN-4: the TSM resets a locked PIN to a new temporary PIN, blocked; PIN-2: the temporary PIN sets the real one."""
    se = issued.se()
    kind = Kind.SIGNING
    opensc_select_ap(se)
    for _ in range(5):
        verify_pin(se, kind, b"WRONG1")
    assert se.status().slots[kind].pin_status is PinStatus.LOCKED
    tsm = tsm_for(se)
    tsm.open_applet()
    assert tsm.send(A.set_temporary_pin(kind, b"T")) == (b"", A.SW_CONDITIONS)  # initial mode: a PIN is in use
    assert tsm.send(A.set_temporary_pin(kind, bytes(17), reset=True)) == (b"", A.SW_WRONG_LENGTH)
    assert tsm.send(A.set_temporary_pin(kind, b"", reset=True)) == (b"", A.SW_WRONG_LENGTH)
    tsm.set_temporary_pin(kind, b"\xffTEMPORARY\x00PIN!", reset=True)
    status = tsm.slot_status().slots[kind]
    assert (status.pin_status, status.tries_left, status.temp_tries_left) == (PinStatus.TEMP_BLOCKED, 5, 5)
    assert status.key_present and status.cert_serial == issued.serials[kind]  # keys and certificate stay
    tsm.set_temporary_pin(kind, b"TEMP-2")  # the initial mode may repeat while TEMP_BLOCKED
    se.power_reset()
    opensc_select_ap(se)
    assert verify_pin(se, kind, None) == "63C0"  # blocked
    assert verify_pin(se, kind, b"TEMP-2") == "6983"  # the temporary PIN is no PIN for VERIFY
    tsm.open_applet()
    assert tsm.send(A.unblock_and_set_pin(kind, b"TEMP-X", b"NEW123")) == (b"", A.sw_wrong_pin(4))
    assert tsm.send(A.unblock_and_set_pin(kind, b"TEMP-2", b"new123")) == (b"", A.SW_INCORRECT_DATA)  # PIN-1, no try spent
    assert tsm.slot_status().slots[kind].temp_tries_left == 4
    assert tsm.send(A.command_apdu(0x80, 0x3A, 0x02, 0x00, A.tlv(0x82, b"NEW123") + A.tlv(0x81, b"TEMP-2"))) == (b"", A.SW_INCORRECT_DATA)
    assert tsm.send(A.unblock_and_set_pin(Kind.AUTH, b"x", b"1111")) == (b"", A.SW_CONDITIONS)  # the auth PIN is SET
    tsm.unblock_and_set_pin(kind, b"TEMP-2", b"NEW123")
    status = tsm.slot_status().slots[kind]
    assert (status.pin_status, status.tries_left, status.temp_tries_left) == (PinStatus.SET, 5, 0)
    assert tsm.send(A.unblock_and_set_pin(kind, b"TEMP-2", b"NEW456")) == (b"", A.SW_CONDITIONS)  # used up
    se.power_reset()
    opensc_select_ap(se)
    assert verify_pin(se, kind, PINS[kind]) == "63C4"
    assert verify_pin(se, kind, b"NEW123") == "9000"


def test_a_spent_temporary_pin_needs_a_new_initialisation(issued: Issued) -> None:
    """PIN-2: wrong temporary PINs count down too; at 0 only a new SET TEMPORARY PIN helps."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_applet()
    tsm.set_temporary_pin(Kind.AUTH, b"TT", reset=True)
    for left in (2, 1, 0):
        assert tsm.send(A.unblock_and_set_pin(Kind.AUTH, b"XX", b"4321")) == (b"", A.sw_wrong_pin(left))
    assert tsm.send(A.unblock_and_set_pin(Kind.AUTH, b"TT", b"4321")) == (b"", A.SW_AUTH_BLOCKED)
    tsm.set_temporary_pin(Kind.AUTH, b"TT", reset=True)
    tsm.unblock_and_set_pin(Kind.AUTH, b"TT", b"4321")
    assert tsm.slot_status().slots[Kind.AUTH].pin_status is PinStatus.SET


def test_pin_change_from_the_app(issued: Issued) -> None:
    """PIN-5: CHANGE REFERENCE DATA with old||new (P1 00) or, after VERIFY, new only (P1 01); PIN-1 on the new one."""
    se = issued.se()
    opensc_select_ap(se, APP)
    assert select_ef(se, A.EF_PIN[Kind.AUTH], APP) == SW_OK
    assert sw(tx(se, A.change_pin(b"1234", b"12345"), APP)) == "6A80"  # the old one was right: it stays
    assert sw(tx(se, A.change_pin(b"0000", b"5678"), APP)) == "63C2"  # wrong old PIN spends a try
    assert sw(tx(se, A.change_pin(b"1234", b"5678"), APP)) == "9000"
    assert verify_pin(se, Kind.AUTH, b"1234", APP) == "63C2"
    assert verify_pin(se, Kind.AUTH, b"5678", APP) == "9000"
    se.power_reset()
    opensc_select_ap(se, APP)
    assert select_ef(se, A.EF_PIN[Kind.SIGNING], APP) == SW_OK
    assert sw(tx(se, A.change_pin(None, b"XYZ789"), APP)) == "6982"  # new only: needs a VERIFY first
    assert verify_pin(se, Kind.SIGNING, PINS[Kind.SIGNING], APP) == "9000"
    for bad in (b"XYZ78", b"ABCDEFG", b"1234567", b"abc1234", b"A" * 16 + b"1"):
        assert sw(tx(se, A.change_pin(None, bad), APP)) == "6A80", bad
    assert sw(tx(se, A.change_pin(None, b"XYZ789"), APP)) == "9000"
    assert sw(tx(se, A.change_pin(b"XYZ789", b"Q1W2E3R4T5Y6U7I8"), APP)) == "9000"  # 16 characters
    assert verify_pin(se, Kind.SIGNING, b"Q1W2E3R4T5Y6U7I8", APP) == "9000"
    assert sw(tx(se, "00 24 02 80 04 31 32 33 34", APP)) == "6A86"
    assert sw(tx(se, "00 24 00 80", APP)) == "6700"
    assert select_ef(se, A.EF_TOKEN_INFO, APP) == SW_OK
    assert sw(tx(se, A.change_pin(b"1234", b"5678"), APP)) == "6986"


def test_pin_edge_cases(issued: Issued) -> None:
    """VERIFY needs a PIN EF and P1P2 00 80; a kind with no PIN answers 6984 (63C0 when asked for its status)."""
    se = issued.se()
    opensc_select_ap(se)
    assert sw(tx(se, A.verify(b"1234"))) == "6986"  # no current EF
    assert select_ef(se, A.EF_PIN[Kind.AUTH]) == SW_OK
    assert sw(tx(se, "00 20 00 81 04 31 32 33 34")) == "6A86"
    assert sw(tx(se, "00 20 01 80")) == "6A86"
    assert sw(tx(se, A.verify(b"1234" + bytes(40)))) == "63C2"  # just a wrong PIN
    tsm = tsm_for(se)
    tsm.open_applet()
    assert tsm.delete_keys([Kind.AUTH])
    assert tsm.send(A.set_temporary_pin(Kind.AUTH, b"T")) == (b"", A.SW_REFERENCED_DATA_NOT_FOUND)  # no key
    se.power_reset()
    opensc_select_ap(se)
    assert verify_pin(se, Kind.AUTH, None) == "63C0"
    assert verify_pin(se, Kind.AUTH, b"1234") == "6984"


@given(st.text(alphabet="0123456789ABCDEFXYZabc-!", max_size=18))
def test_pin_format_matches_the_spec(pin: str) -> None:
    """PIN-1: the SE's format check is the spec's pin_well_formed, for both kinds."""
    for kind in Kind:
        assert A.pin_well_formed(kind, pin.encode()) == spec_pin_well_formed(kind, pin)


# --- DELETE KEYS (DEL-1, MCH-4, REV-1) -----------------------------------------------------------------------------


def test_delete_with_a_non_matching_serial_deletes_nothing(issued: Issued) -> None:
    """DEL-1: a deletion names the certificate serial; another person's data (another serial) stays untouched."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_applet()
    before = se.snapshot()
    stranger = issued.serials[Kind.AUTH] + issued.serials[Kind.SIGNING] + 1
    assert not tsm.delete_keys([Kind.AUTH, Kind.SIGNING], serial=stranger)
    assert not tsm.delete_keys([Kind.AUTH], serial=issued.serials[Kind.SIGNING])  # that serial is in the other slot
    after = se.snapshot()
    assert after["applet"] == before["applet"]
    opensc_select_ap(se)
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    issued.public_keys[Kind.AUTH].verify(sign(se, Kind.AUTH, digest_info(b"m"))[:-2], b"m", padding.PKCS1v15(), hashes.SHA256())
    # the matching serial deletes exactly that kind
    tsm.open_applet()
    assert tsm.delete_keys([Kind.AUTH, Kind.SIGNING], serial=issued.serials[Kind.SIGNING])
    status = tsm.slot_status()
    assert status.slots[Kind.SIGNING] == A.SlotStatus(
        kind=Kind.SIGNING, key_present=False, cert_serial=None, pin_status=None, tries_left=0, temp_tries_left=0
    )
    assert status.slots[Kind.AUTH] == issued.se().status().slots[Kind.AUTH]
    assert se.snapshot()["applet"]["ca_certs"] == before["applet"]["ca_certs"]  # CA certificates stay
    # without a serial: unconditional, idempotent
    assert tsm.delete_keys([Kind.AUTH])
    assert tsm.delete_keys([Kind.AUTH])
    assert not any(s.key_present for s in tsm.slot_status().slots.values())
    for bad in (b"\xc2\x00", b"\xc1\x01\x01", b"\xc2\x15" + bytes(21), b"\xc2\x01\x01\xc2\x01\x02", b"\xc2"):
        assert tsm.send(A.command_apdu(0x80, 0x3C, 0x03, 0x00, bad)) == (b"", A.SW_INCORRECT_DATA), bad.hex()
    assert tsm.send(A.command_apdu(0x80, 0x3C, 0x04, 0x00)) == (b"", A.SW_WRONG_P1P2)


def test_deleting_a_slot_forgets_the_current_ef_and_the_verified_pin(issued: Issued) -> None:
    """REV-1: after a deletion the key EF is gone: the app's selection and verification do not survive it."""
    se = issued.se()
    opensc_select_ap(se, APP)
    assert verify_pin(se, Kind.SIGNING, PINS[Kind.SIGNING], APP) == "9000"
    assert select_ef(se, A.EF_KEY[Kind.SIGNING], APP) == SW_OK
    tsm = tsm_for(se)
    tsm.open_applet()
    assert tsm.delete_keys([Kind.SIGNING], serial=issued.serials[Kind.SIGNING])
    # the TSM's SELECT already reset the app's state; a fresh attempt finds no key EF and no signing certificate
    opensc_select_ap(se, APP)
    assert sw(select_ef(se, A.EF_KEY[Kind.SIGNING], APP)) == "6A82"
    assert sw(select_ef(se, A.EF_CERT[Kind.SIGNING], APP)) == "6A82"
    assert verify_pin(se, Kind.SIGNING, None, APP) == "63C0"


# --- status words for bad input --------------------------------------------------------------------------------------


def test_unknown_aids_get_6a82_and_keep_the_selection(issued: Issued) -> None:
    """OpenSC probes many AIDs (PIV, OpenPGP, ...) before JPKI: each gets 6A82 and the current selection stays."""
    se = issued.se()
    opensc_select_ap(se)
    assert select_ef(se, A.EF_TOKEN_INFO) == SW_OK
    probes = ["A000000308000010000100", "D27600012401", "A0000000630" + "1", "A00000039742544659", "E828BD080F", "D392F000260100000002"]
    for aid in probes:
        for p2, le in ((0x0C, None), (0x00, 0x00), (0x04, 0x00), (0x02, None)):
            assert sw(tx(se, A.command_apdu(0x00, 0xA4, 0x04, p2, h(aid if len(aid) % 2 == 0 else aid + "0"), le))) == "6A82"
    assert tx(se, A.read_binary(0, 4)) == A.TOKEN_INFO[:4] + SW_OK  # still the JPKI applet, still EF 0006
    assert sw(tx(se, A.command_apdu(0x00, 0xA4, 0x04, 0x02, A.JPKI_AID))) == "6A86"  # a known AID with an unknown P2
    fci = tx(se, A.select_aid(A.JPKI_AID, fci=True))
    assert fci == A.tlv(0x6F, A.tlv(0x84, A.JPKI_AID)) + SW_OK
    isd_fci = tx(se, A.select_aid(A.ISD_AID, fci=True))
    assert sw(isd_fci) == "9000" and A.tlv(0x84, A.ISD_AID) in isd_fci
    assert tx(se, "00 A4 04 00 00") == isd_fci  # SELECT with no AID: the ISD
    assert sw(tx(GpSe("SE-Y", ISD_KEYS), A.select_aid(A.JPKI_AID))) == "6A82"  # no applet installed


def test_unknown_instructions_get_6d00(issued: Issued) -> None:
    """An instruction the selected application does not know: 6D00, in the ISD and in the applet."""
    se = issued.se()
    for apdu in ("00 84 00 00 08", "00 C0 00 00 00", "80 CA 9F 7F 00", "00 B0 00 00 00", "00 20 00 80", "00 22 41 B6 03 83 01 01"):
        assert sw(tx(se, apdu)) in ("6D00", "6A88"), apdu  # ISD: GET DATA answers 6A88 for unknown tags
    assert sw(tx(se, "00 84 00 00 08")) == "6D00"  # the ISD has no GET CHALLENGE; the applet has (its own tests)
    opensc_select_ap(se)
    for apdu in (
        "00 88 00 00 08 01 02 03 04 05 06 07 08 00",
        "00 C0 00 00 00",
        "00 22 41 B6 03 83 01 01",
        "00 2A 9E 9A 02 00 00 00",
        "80 F2 40 02 02 4F 00 00",
        "80 E6 0C 00 01 00",
    ):
        assert sw(tx(se, apdu)) == "6D00", apdu


def test_malformed_apdus_get_status_words(issued: Issued) -> None:
    """Too short, Lc mismatch, extended length: 6700; bad CLA 6E00; channels 6881; bad P1P2 6A86. Nothing raises."""
    se = issued.se()
    opensc_select_ap(se)
    cases = {
        "": "6700",
        "00": "6700",
        "00 A4 04": "6700",
        "00 A4 04 0C 05 D3 92": "6700",  # Lc says 5, 2 follow
        "00 A4 04 0C 01 D3 92 F0": "6700",  # Lc says 1, 3 follow
        "00 A4 04 0C 00 00 0A D3 92 F0 00 26 01 00 00 00 01": "6700",  # extended length
        "FF A4 04 0C 01 00": "6E00",
        "10 A4 04 0C 01 00": "6E00",  # command chaining
        "0C A4 04 0C 01 00": "6E00",  # ISO secure messaging
        "C0 A4 04 0C 01 00": "6E00",
        "01 A4 04 0C 01 00": "6881",
        "83 50 00 00 08 00 00 00 00 00 00 00 00 00": "6881",
        "00 70 00 00 01": "6881",
        "00 A4 02 0D 02 00 06": "6A86",
        "00 B0 80 00 00": "6A86",
        "00 20 00 00": "6A86",
        "80 2A 00 00 01 00 00": "6A86",
    }
    for apdu, expected in cases.items():
        assert sw(tx(se, apdu)) == expected, apdu
    with pytest.raises(TypeError):
        se.transmit("00A4040C", caller=None)  # type: ignore[arg-type]


_CALLERS = st.sampled_from([None, APP, OTHER_APP])


@pytest.fixture(scope="module")
def fuzz_se(issued: Issued) -> GpSe:
    """A personalised SE the fuzzers may change as they like."""
    return issued.se()


@settings(max_examples=2500)
@given(raw=st.binary(max_size=300), caller=_CALLERS, select=st.booleans())
def test_fuzz_random_bytes_never_raise(fuzz_se: GpSe, raw: bytes, caller: bytes | None, select: bool) -> None:
    """A few thousand random byte strings: a status word always comes back (never 6F00), never an exception."""
    if select:
        fuzz_se.transmit(A.select_aid(A.JPKI_AID), caller=APP)
    response = fuzz_se.transmit(raw, caller=caller)
    assert isinstance(response, bytes) and len(response) >= 2 and sw(response) != "6F00"


_KNOWN_COMMANDS = (
    *((0x00, ins) for ins in (0xA4, 0xB0, 0x20, 0x24, 0x84, 0xCA)),
    *((0x80, ins) for ins in (0x2A, 0x50, 0xCA, 0xE2, 0xE4, 0xE6, 0xF2, *sorted(A.TSM_INS))),
    (0x84, 0x82),
)
_KNOWN_BYTES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x0C, 0x80, 0x90)
_KNOWN_DATA = (b"\x00\x18", b"\x00\x0a", b"\x00\x17", b"1234", A.JPKI_AID, A.tlv(0xC2, b"\x01"), A.tlv(0x81, b"T") + A.tlv(0x82, b"1234"))


def _random_apdu(rnd: random.Random, *, classes: tuple[int, ...], max_data: int) -> bytes:
    """A well-framed short APDU, mostly a command this SE knows with plausible P1 P2, with arbitrary data; 1 in 10 mis-framed."""
    if rnd.random() < 0.8:
        cla, ins = rnd.choice(_KNOWN_COMMANDS)
        cla = cla if cla in classes else cla & ~0x04
    else:
        cla, ins = rnd.choice((*classes, rnd.randrange(256))), rnd.randrange(256)
    p1, p2 = (rnd.choice(_KNOWN_BYTES) if rnd.random() < 0.7 else rnd.randrange(256) for _ in range(2))
    length = rnd.choice((0, 0, 1, 2, 8, rnd.randrange(max_data + 1)))
    data = rnd.choice(_KNOWN_DATA) if rnd.random() < 0.3 else rnd.randbytes(length)
    le = rnd.choice((None, 0x00, rnd.randrange(256)))
    apdu = bytes([cla, ins, p1, p2]) + (bytes([len(data)]) + data if data else b"") + (b"" if le is None else bytes([le]))
    if rnd.random() < 0.1:
        apdu = apdu[: rnd.randrange(len(apdu) + 1)] + rnd.randbytes(rnd.randrange(4))
    return apdu


@settings(max_examples=150)
@given(rnd=st.randoms(use_true_random=False))
def test_fuzz_structured_apdus_never_raise(fuzz_se: GpSe, rnd: random.Random) -> None:
    """Thousands of plausible APDUs (known CLA/INS/P1/P2, arbitrary bodies) in runs of 20, applet selected, any caller."""
    fuzz_se.transmit(A.select_aid(A.JPKI_AID), caller=APP)
    for _ in range(20):
        apdu = _random_apdu(rnd, classes=(0x00, 0x80, 0x84, 0x04), max_data=255)
        response = fuzz_se.transmit(apdu, caller=rnd.choice((None, APP, OTHER_APP)))
        assert len(response) >= 2 and sw(response) != "6F00", apdu.hex()


@settings(max_examples=100)
@given(rnd=st.randoms(use_true_random=False), isd=st.booleans())
def test_fuzz_inside_a_secure_channel_never_raises(fuzz_se: GpSe, rnd: random.Random, isd: bool) -> None:
    """The same wrapped in SCP03 at level 33, so the TSM and card-management parsers see arbitrary data too."""
    tsm = HostTsm(fuzz_se)
    tsm.select((A.ISD_AID if isd else A.JPKI_AID).hex())
    tsm.open()
    host = tsm.host
    assert host is not None
    for _ in range(20):
        apdu = _random_apdu(rnd, classes=(0x00, 0x80), max_data=239)
        if apdu[1:2] == bytes([A.INS_GENERATE_KEY_PAIR]):
            continue  # slow; its parser is covered by the walk
        try:
            wrapped = host.wrap(apdu)
        except ValueError:
            continue  # not an APDU the host can wrap (mis-framed, or a CLA it refuses)
        response = fuzz_se.transmit(wrapped, caller=APP)
        assert len(response) >= 2 and sw(response) != "6F00", apdu.hex()
        if sw(response) == "9000" or response[-2] in (0x62, 0x63):
            assert host.unwrap(response)[-2:] == response[-2:]  # a protected answer verifies on the host side
        if not host.is_open or sw(response) == "6982":
            tsm.open()  # the session may have ended (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, a plain command)
            host = tsm.host
            assert host is not None


# --- resets and persistence --------------------------------------------------------------------------------------


def test_power_reset_clears_volatile_state(issued: Issued) -> None:
    """A card reset: the ISD is selected again; no current EF, no verified PIN, no secure channel."""
    se = issued.se()
    opensc_select_ap(se)
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    assert select_ef(se, A.EF_KEY[Kind.AUTH]) == SW_OK
    tsm = HostTsm(se, caller=None)
    se.power_reset()
    assert sw(tx(se, A.read_binary(0, 4))) == "6D00"  # the ISD is selected, it has no READ BINARY
    opensc_select_ap(se)
    assert sw(tx(se, A.read_binary(0, 4))) == "6986"  # no current EF
    assert sw(sign(se, Kind.AUTH, digest_info(b"m"))) == "6982"  # PIN no longer verified
    tsm.select(A.JPKI_AID.hex())
    tsm.open()
    assert tsm.send(A.get_slot_status())[1] == "9000"
    se.power_reset()
    opensc_select_ap(se)
    assert tsm.host is not None
    assert sw(tsm.plain(tsm.host.wrap(A.get_slot_status()))) == "6982"  # the session is gone
    # re-selecting the applet also clears the verified state
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"
    opensc_select_ap(se)
    assert sw(sign(se, Kind.AUTH, digest_info(b"m"))) == "6982"


def test_snapshot_restore_round_trip_keeps_keys_and_counters(issued: Issued) -> None:
    """The EEPROM: JSON round trip; keys (signatures still verify), PIN counters, SCP03 counters survive; volatile does not."""
    se = issued.se()
    opensc_select_ap(se)
    assert verify_pin(se, Kind.SIGNING, b"WRONG9") == "63C4"
    assert verify_pin(se, Kind.AUTH, PINS[Kind.AUTH]) == "9000"  # verified, which is volatile
    tsm = HostTsm(se)
    tsm.select(A.ISD_AID.hex())
    host = SCP03Host(ISD_KEYS)
    first = tsm.plain(host.initialize_update())
    snap = json.loads(json.dumps(se.snapshot()))
    assert snap["format"] == SNAPSHOT_FORMAT and snap["se_id"] == "SE-D1"
    restored = GpSe.from_snapshot(snap)
    assert restored.snapshot() == snap
    assert restored.status() == se.status()
    assert restored.status().slots[Kind.SIGNING].tries_left == 4
    opensc_select_ap(restored)
    assert verify_pin(restored, Kind.SIGNING, None) == "63C4"
    assert sw(sign(restored, Kind.AUTH, digest_info(b"m"))) == "6982"  # the verified flag did not persist
    for kind in Kind:
        assert verify_pin(restored, kind, PINS[kind]) == "9000"
        signature = sign(restored, kind, digest_info(b"after restore"))
        issued.public_keys[kind].verify(signature[:-2], b"after restore", padding.PKCS1v15(), hashes.SHA256())
    assert read_file(restored, A.EF_CERT[Kind.SIGNING]) == issued.certs[Kind.SIGNING]
    # the SCP03 sequence counter is non-volatile: no card challenge repeats after a reload
    assert tx(restored, A.select_aid(A.ISD_AID), APP) == SW_OK
    second = tx(restored, SCP03Host(ISD_KEYS).initialize_update(), APP)
    assert int.from_bytes(second[29:32], "big") == int.from_bytes(first[29:32], "big") + 1
    # restore() in place
    other = GpSe("SE-OTHER", ISD_KEYS)
    other.restore(snap)
    assert other.se_id == "SE-D1" and other.snapshot() == snap and other.status().slots[Kind.SIGNING].tries_left == 4


def test_snapshot_is_the_eeprom_and_malformed_snapshots_are_refused(issued: Issued) -> None:
    """A fresh SE's snapshot; tampered or incomplete snapshots raise ValueError (no half-loaded SE)."""
    blank = GpSe("SE-Z", ISD_KEYS, auth_pin_tries=4, signing_pin_tries=7)
    snap = blank.snapshot()
    assert snap["applet"] is None and snap["access_rules"] == {}
    assert GpSe.from_snapshot(snap).max_tries(Kind.SIGNING) == 7
    good = issued.snapshot
    slot = good["applet"]["slots"]["auth"]
    key = serialization.load_der_private_key(h(slot["private_key"]), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    n = key.private_numbers()
    broken_key = rsa.RSAPrivateNumbers(
        p=n.p, q=n.q, d=n.d, dmp1=n.dmp1 ^ 2, dmq1=n.dmq1, iqmp=n.iqmp, public_numbers=n.public_numbers
    ).private_key(unsafe_skip_rsa_key_validation=True)
    broken_der = broken_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).hex()

    def with_slot(**changes: Any) -> dict[str, Any]:
        applet = good["applet"] | {"slots": good["applet"]["slots"] | {"auth": slot | changes}}
        return good | {"applet": applet}

    bad = [
        good | {"format": "something/else"},
        {k: v for k, v in good.items() if k != "isd"},
        good | {"config": good["config"] | {"auth_pin_tries": 0}},
        good | {"se_id": ""},
        good | {"access_rules": {"D392": [APP.hex()]}},
        with_slot(tries_left=9),
        with_slot(pin_status="set", pin=None),
        with_slot(pin_status="bogus"),
        with_slot(private_key=broken_der),
        with_slot(private_key=None),  # a certificate without its key
        with_slot(certificate="30820000"),
        good | {"applet": good["applet"] | {"r": "00"}},
    ]
    for snapshot in bad:
        with pytest.raises(ValueError):
            GpSe.from_snapshot(snapshot)


def test_slot_status_apdu_matches_python_status(issued: Issued) -> None:
    """GET SLOT STATUS (what the harness reads) says exactly what GpSe.status() says, in every PIN state."""
    se = issued.se()
    tsm = tsm_for(se)
    tsm.open_applet()
    assert tsm.slot_status() == se.status()
    tsm.set_temporary_pin(Kind.AUTH, b"T", reset=True)
    assert tsm.slot_status() == se.status()
    assert tsm.slot_status().slots[Kind.AUTH].pin_status is PinStatus.TEMP_BLOCKED
    tsm.delete_keys([Kind.SIGNING])
    tsm.generate_r()
    status = tsm.slot_status()
    assert status == se.status() and status.r_pending
    raw = tsm.call(A.get_slot_status(), "GET SLOT STATUS")
    assert raw.startswith(h("C30101E1"))
    with pytest.raises(ValueError):
        A.parse_slot_status(raw[:-1])
    assert GpSe("SE-Q", ISD_KEYS).status().applet is False


def test_tsm_instruction_table_is_the_documented_one() -> None:
    """The proprietary INS codes are those docs/apdu-interface.md lists."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "apdu-interface.md").read_text(encoding="utf-8")
    for ins in sorted(A.TSM_INS):
        assert f"`80 {ins:02X} " in doc, f"INS {ins:02X} is not documented"
    assert sorted(A.TSM_INS) == [0x30, 0x32, 0x34, 0x36, 0x38, 0x3A, 0x3C, 0x3E, 0x40]
