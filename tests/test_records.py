"""The SQLite records (impl/records.py): round trips, serial uniqueness (CA-2), revocation is final (REV-4), holds,
per-profile CRL entries (CA-4), linkage (LNK-6), transactions, restart from a file, and bad files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mjpki.impl.ca import JpkiCa, PersonalData, PublicationPoints
from mjpki.impl.records import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ApplicationRecord,
    CertRecord,
    CrlRecord,
    DeletionRecord,
    DuplicateRecordError,
    InvalidRecordError,
    PersonRecord,
    PushTokenRecord,
    Records,
    RecordsError,
    RecordsFileError,
    RevokedError,
    UnknownRecordError,
    commitment_of,
    key_fingerprint,
)
from mjpki.spec.domain import CertStatus, HoldCause, Kind, PinStatus, Profile, RevocationReason
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.observe import SlotView

NOT_BEFORE = datetime(2026, 4, 1, tzinfo=UTC)
NOT_AFTER = datetime(2031, 5, 2, tzinfo=UTC)
EXPIRY = 2_000_000  # abstract minutes, about 3.8 years after the epoch
PERSON = PersonalData(name="山田 太郎", address="東京都千代田区霞が関2-1-2", birth_date=date(1990, 5, 1), sex="男")
R = b"\x01" * 32
S = hashlib.sha256(R).digest()
DER = serialization.Encoding.DER


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The signing CA key, the auth CA key and one subject key, generated once per module (RSA keygen is slow)."""
    return tuple(rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3))  # type: ignore[return-value]


def make_ca(keys: tuple[rsa.RSAPrivateKey, ...]) -> JpkiCa:
    """A CA from the module's keys, with its own (empty) set of issued serials."""
    return JpkiCa.generate(signing_key=keys[0], auth_key=keys[1])


@dataclass
class Env:
    """A store, a CA and a subject key, with helpers that issue real certificates and record them."""

    records: Records
    ca: JpkiCa
    key: rsa.RSAPublicKey

    def der(self, serial: int, kind: Kind, profile: Profile, *, ca: JpkiCa | None = None) -> bytes:
        """The DER of a certificate issued by the CA with this serial, kind and profile."""
        cert = (ca or self.ca).issue(
            kind=kind,
            profile=profile,
            serial=serial,
            public_key=self.key,
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
            personal=PERSON if kind is Kind.SIGNING else None,
        )
        return cert.public_bytes(DER)

    def person(self, person: str = "P1", birth: date = date(1990, 5, 1)) -> PersonRecord:
        return self.records.add_person(person=person, birth_date=birth)

    def card(self, person: str, kind: Kind, *, at: int = 0, current: bool = True) -> CertRecord:
        """Issue and record a card certificate, by default the person's current one."""
        serial = self.records.next_serial()
        rec = self.records.add_card_cert(
            serial=serial, person=person, kind=kind, issued_at=at, expiry=EXPIRY, der=self.der(serial, kind, Profile.CARD)
        )
        if current:
            self.records.set_current_card(person=person, kind=kind, serial=serial)
        return rec

    def phone(
        self, person: str, kind: Kind, *, card_serial: int, se_id: str = "SE-D1", token: str | None = "tok-D1", r: bytes = R, at: int = 10
    ) -> CertRecord:
        """Issue and record a phone certificate linked to card_serial."""
        serial = self.records.next_serial()
        return self.records.add_phone_cert(
            serial=serial,
            person=person,
            kind=kind,
            issued_at=at,
            expiry=EXPIRY,
            der=self.der(serial, kind, Profile.PHONE),
            se_id=se_id,
            card_serial=card_serial,
            commitment=S,
            presented_r=r,
            push_token=token,
        )


@pytest.fixture
def records() -> Iterator[Records]:
    """Fresh in-memory records."""
    with Records.open() as r:
        yield r


@pytest.fixture
def env(records: Records, keys: tuple[rsa.RSAPrivateKey, ...]) -> Env:
    return Env(records=records, ca=make_ca(keys), key=keys[2].public_key())


@dataclass
class Populated:
    """The serials of the state populate() builds."""

    card_sign: int
    card_auth: int
    phone_sign: int
    phone_auth: int
    p2_card_sign: int


def populate(env: Env) -> Populated:
    """A state that touches every table: persons, certificates, holds, revocation, linkage, tokens, application, deletion, CA."""
    r = env.records
    env.person("P1")
    env.person("P2", date(1984, 2, 29))
    r.register_push_token(token="tok-D1", phone="D1", install="install-1")
    r.register_push_token(token="tok-D2", phone="D2", install="install-2")
    r.register_push_token(token="tok-D1-old", phone="D1", install="install-0")
    r.invalidate_push_token(token="tok-D1-old")
    card_sign = env.card("P1", Kind.SIGNING).serial
    card_auth = env.card("P1", Kind.AUTH).serial
    phone_sign = env.phone("P1", Kind.SIGNING, card_serial=card_sign).serial
    phone_auth = env.phone("P1", Kind.AUTH, card_serial=card_sign).serial
    r.set_linkage(card_serial=card_sign, se_id="SE-D1")
    r.add_hold(serial=phone_auth, cause=HoldCause.PHONE_LOST, at=100)
    r.add_hold(serial=card_auth, cause=HoldCause.CARD_LOST, at=110)
    r.revoke(serial=phone_sign, reason=RevocationReason.DEVICE_STOPPED, at=200)
    r.put_deletion(phone="D1", person="P1", serials={phone_sign}, push_token="tok-D1", deadline=200 + 48 * 60)
    p2_card_sign = env.card("P2", Kind.SIGNING).serial
    env.card("P2", Kind.AUTH)
    r.put_application(
        person="P2",
        phone="D2",
        se_id="SE-D2",
        kinds={Kind.SIGNING, Kind.AUTH},
        commitment=S,
        card_serial=p2_card_sign,
        push_token="tok-D2",
        push_due=305,
    )
    env.ca.issue(  # issued but never recorded: the saved CA must still know the serial (CA-2)
        kind=Kind.AUTH, profile=Profile.CARD, serial=900, public_key=env.key, not_before=NOT_BEFORE, not_after=NOT_AFTER
    )
    r.save_ca(ca=env.ca)
    return Populated(card_sign=card_sign, card_auth=card_auth, phone_sign=phone_sign, phone_auth=phone_auth, p2_card_sign=p2_card_sign)


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to a records file, foreign keys on: to show what the schema itself enforces."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


# --- opening ---------------------------------------------------------------------------------------


def test_new_database_has_schema_version_and_application_id(records: Records) -> None:
    snap = records.snapshot()
    assert snap["schema_version"] == [{"singleton": 1, "version": SCHEMA_VERSION, "application": "mjpki-records"}]
    assert snap["application_id"] == APPLICATION_ID
    assert records.path is None and not records.closed


def test_closed_records_say_so() -> None:
    r = Records.open()
    r.close()
    r.close()  # harmless
    with pytest.raises(RecordsError, match="closed"):
        r.persons()


# --- persons ---------------------------------------------------------------------------------------


def test_person_round_trip_and_current_cards(env: Env) -> None:
    r = env.records
    assert env.person("P1") == PersonRecord(id="P1", birth_date=date(1990, 5, 1))
    assert r.get_person("nobody") is None
    with pytest.raises(DuplicateRecordError, match="P1"):
        env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    auth = env.card("P1", Kind.AUTH)
    p1 = r.person("P1")
    assert (p1.card_signing, p1.card_auth) == (sign.serial, auth.serial)
    assert p1.current(Kind.SIGNING) == sign.serial and p1.current(Kind.AUTH) == auth.serial
    assert r.current_cards() == FrozenMap({("P1", Kind.SIGNING): sign.serial, ("P1", Kind.AUTH): auth.serial})
    assert r.set_current_card(person="P1", kind=Kind.AUTH, serial=None).card_auth is None
    assert r.persons() == (r.person("P1"),)


def test_current_card_must_be_the_persons_card_cert_of_that_kind(env: Env) -> None:
    r = env.records
    env.person("P1")
    env.person("P2")
    sign = env.card("P1", Kind.SIGNING)
    phone = env.phone("P1", Kind.AUTH, card_serial=sign.serial, token=None)
    with pytest.raises(InvalidRecordError, match="card auth"):
        r.set_current_card(person="P1", kind=Kind.AUTH, serial=sign.serial)
    with pytest.raises(InvalidRecordError, match="card auth"):
        r.set_current_card(person="P1", kind=Kind.AUTH, serial=phone.serial)
    with pytest.raises(InvalidRecordError, match="'P1'"):
        r.set_current_card(person="P2", kind=Kind.SIGNING, serial=sign.serial)
    with pytest.raises(UnknownRecordError, match="no certificate with serial 999"):
        r.set_current_card(person="P1", kind=Kind.SIGNING, serial=999)
    with pytest.raises(UnknownRecordError, match="add_person"):
        r.set_current_card(person="P9", kind=Kind.SIGNING, serial=None)


# --- certificates ----------------------------------------------------------------------------------


def test_card_and_phone_certificate_round_trip(env: Env) -> None:
    r = env.records
    env.person("P1")
    r.register_push_token(token="tok-D1", phone="D1", install="install-1")
    card = env.card("P1", Kind.SIGNING, at=5)
    assert card == CertRecord(
        serial=card.serial,
        profile=Profile.CARD,
        kind=Kind.SIGNING,
        person="P1",
        status=CertStatus.ACTIVE,
        issued_at=5,
        expiry=EXPIRY,
        der=card.der,
    )
    assert card.certificate().serial_number == card.serial
    assert card.commitment_ok is None and card.view().key is None
    phone = env.phone("P1", Kind.AUTH, card_serial=card.serial, at=7)
    assert r.get_certificate(phone.serial) == phone
    assert (phone.profile, phone.kind, phone.se_id, phone.card_serial) == (Profile.PHONE, Kind.AUTH, "SE-D1", card.serial)
    assert (phone.commitment, phone.presented_r, phone.push_token, phone.issued_at) == (S, R, "tok-D1", 7)
    spki = env.key.public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert phone.key_fingerprint == hashlib.sha256(spki).digest() == key_fingerprint(env.key)
    assert phone.commitment_ok is True and commitment_of(R) == S
    view = phone.view()
    assert (view.serial, view.profile, view.card_serial, view.se_id, view.key, view.commitment_ok) == (
        phone.serial,
        Profile.PHONE,
        card.serial,
        "SE-D1",
        phone.key_fingerprint.hex(),
        True,
    )
    wrong_r = env.phone("P1", Kind.SIGNING, card_serial=card.serial, r=b"\x02" * 32)
    assert wrong_r.commitment_ok is False  # recorded as it happened, so an invariant can catch it (ISS-6)
    assert phone.in_force(EXPIRY - 1) and not phone.in_force(EXPIRY) and phone.live(0) and phone.expired(EXPIRY)
    assert r.get_certificate(12345) is None


def test_certificate_must_match_its_der_and_its_card(env: Env) -> None:
    r = env.records
    env.person("P1")
    env.person("P2")
    sign = env.card("P1", Kind.SIGNING)
    auth = env.card("P1", Kind.AUTH)
    serial = r.next_serial()
    der = env.der(serial, Kind.AUTH, Profile.PHONE)
    with pytest.raises(InvalidRecordError, match="pass the DER of certificate"):
        r.add_card_cert(serial=serial + 1, person="P1", kind=Kind.AUTH, issued_at=0, expiry=EXPIRY, der=der)
    with pytest.raises(InvalidRecordError, match="phone auth certificate by its policy OID"):
        r.add_card_cert(serial=serial, person="P1", kind=Kind.AUTH, issued_at=0, expiry=EXPIRY, der=der)
    with pytest.raises(InvalidRecordError, match=r"not an X.509 certificate"):
        r.add_card_cert(serial=serial, person="P1", kind=Kind.AUTH, issued_at=0, expiry=EXPIRY, der=b"\x30\x00")
    with pytest.raises(InvalidRecordError, match="expiry"):
        r.add_card_cert(serial=serial, person="P1", kind=Kind.AUTH, issued_at=EXPIRY, expiry=EXPIRY, der=der)
    with pytest.raises(UnknownRecordError, match="P9"):
        r.add_card_cert(
            serial=serial,
            person="P9",
            kind=Kind.AUTH,
            issued_at=0,
            expiry=EXPIRY,
            der=env.der(serial, Kind.AUTH, Profile.CARD, ca=make_ca_like(env)),
        )
    phone = dict(
        serial=serial, kind=Kind.AUTH, issued_at=0, expiry=EXPIRY, der=der, se_id="SE-D1", commitment=S, presented_r=R, push_token=None
    )
    with pytest.raises(InvalidRecordError, match="LNK-2"):  # linked to a card auth certificate
        r.add_phone_cert(person="P1", card_serial=auth.serial, **phone)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordError, match="LNK-2"):  # linked to another person's card
        r.add_phone_cert(person="P2", card_serial=sign.serial, **phone)  # type: ignore[arg-type]
    with pytest.raises(UnknownRecordError, match="register_push_token"):
        r.add_phone_cert(person="P1", card_serial=sign.serial, **{**phone, "push_token": "tok-unknown"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kind must be one of"):
        r.add_card_cert(serial=serial, person="P1", kind="auth", issued_at=0, expiry=EXPIRY, der=der)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordError, match="2\\*\\*63"):
        r.add_card_cert(serial=1 << 63, person="P1", kind=Kind.AUTH, issued_at=0, expiry=EXPIRY, der=der)
    assert r.get_certificate(serial) is None  # none of it was recorded
    assert r.add_phone_cert(person="P1", card_serial=sign.serial, **phone).serial == serial  # type: ignore[arg-type]


def test_phone_certificate_follows_card_certificates(env: Env) -> None:
    """ASM-PHONE-LINKAGE: a phone certificate follows its card signing certificate unless told which card certificates."""
    r = env.records
    env.person("P1")
    env.person("P2")
    sign, auth, other = env.card("P1", Kind.SIGNING), env.card("P1", Kind.AUTH), env.card("P2", Kind.AUTH)
    default = env.phone("P1", Kind.SIGNING, card_serial=sign.serial, token=None)
    assert default.follows == {sign.serial} and default.view().follows == {sign.serial} and sign.view().follows is None

    def add(follows: list[int]) -> CertRecord:
        serial = r.next_serial()
        return r.add_phone_cert(
            serial=serial, person="P1", kind=Kind.AUTH, issued_at=10, expiry=EXPIRY, der=env.der(serial, Kind.AUTH, Profile.PHONE),
            se_id="SE-D1", card_serial=sign.serial, commitment=S, presented_r=R, push_token=None, follows=follows,
        )  # fmt: skip

    with pytest.raises(InvalidRecordError, match="only follow card certificates of 'P1'"):
        add([other.serial])
    with pytest.raises(InvalidRecordError, match="two card certificates of one kind"):
        add([sign.serial, env.card("P1", Kind.SIGNING, current=False).serial])
    both = add([sign.serial, auth.serial])
    assert both.follows == {sign.serial, auth.serial}
    only_auth = add([auth.serial])
    # Re-linked after a found card: a followed card signing certificate is replaced, a card auth one kept.
    new = env.card("P1", Kind.SIGNING)
    r.relink_phone_cert(serial=both.serial, card_serial=new.serial)
    r.relink_phone_cert(serial=only_auth.serial, card_serial=new.serial)
    assert r.certificate(both.serial).follows == {new.serial, auth.serial}
    assert r.certificate(only_auth.serial).follows == {auth.serial} and r.certificate(only_auth.serial).card_serial == new.serial
    assert {row["serial"] for row in r.snapshot()["phone_follows"]} == {default.serial, both.serial, only_auth.serial}


def make_ca_like(env: Env) -> JpkiCa:
    """Another CA object with the same keys as env.ca, with its own issued-serial set (to issue a serial twice)."""
    pems = env.ca.to_pem()
    return JpkiCa.from_pem(signing=pems[Kind.SIGNING], auth=pems[Kind.AUTH])


def test_listing_by_person_profile_kind_status_and_link(env: Env) -> None:
    r = env.records
    env.person("P1")
    env.person("P2")
    sign = env.card("P1", Kind.SIGNING)
    auth = env.card("P1", Kind.AUTH)
    phone_sign = env.phone("P1", Kind.SIGNING, card_serial=sign.serial, token=None)
    phone_auth = env.phone("P1", Kind.AUTH, card_serial=sign.serial, token=None, se_id="SE-D2")
    other = env.card("P2", Kind.SIGNING)
    r.add_hold(serial=auth.serial, cause=HoldCause.CARD_LOST, at=1)
    r.revoke(serial=phone_sign.serial, reason=RevocationReason.USER_REQUEST, at=20)

    def serials(**filters: object) -> list[int]:
        return [c.serial for c in r.certificates(**filters)]  # type: ignore[arg-type]

    assert serials() == sorted([sign.serial, auth.serial, phone_sign.serial, phone_auth.serial, other.serial])
    assert serials(person="P1") == [sign.serial, auth.serial, phone_sign.serial, phone_auth.serial]
    assert serials(person="P2") == [other.serial]
    assert serials(profile=Profile.PHONE) == [phone_sign.serial, phone_auth.serial]
    assert serials(profile=Profile.CARD, kind=Kind.SIGNING) == [sign.serial, other.serial]
    assert serials(status=CertStatus.SUSPENDED) == [auth.serial]
    assert serials(status=CertStatus.REVOKED) == [phone_sign.serial]
    assert serials(status=CertStatus.ACTIVE, person="P1") == [sign.serial, phone_auth.serial]
    assert serials(card_serial=sign.serial) == [phone_sign.serial, phone_auth.serial]
    assert serials(se_id="SE-D2") == [phone_auth.serial]
    assert serials(person="P9") == []
    assert r.certificates(status=CertStatus.SUSPENDED)[0].holds == FrozenMap({HoldCause.CARD_LOST: 1})


# --- serials (CA-2) --------------------------------------------------------------------------------


def test_duplicate_serial_is_refused_by_the_database_across_profiles(env: Env) -> None:
    r = env.records
    env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    card = env.card("P1", Kind.AUTH)
    # a phone certificate with the card auth certificate's serial (another CA object, so the CA itself lets it through)
    der = env.der(card.serial, Kind.SIGNING, Profile.PHONE, ca=make_ca_like(env))
    with pytest.raises(DuplicateRecordError, match="CA-2") as caught:
        r.add_phone_cert(
            serial=card.serial,
            person="P1",
            kind=Kind.SIGNING,
            issued_at=0,
            expiry=EXPIRY,
            der=der,
            se_id="SE-D1",
            card_serial=sign.serial,
            commitment=S,
            presented_r=R,
            push_token=None,
        )
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)  # the primary key, not a Python check, refused it
    assert r.certificates() == (sign, card)


def test_next_serial_is_fresh_and_starts_where_told(env: Env, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    r = env.records
    env.person("P1")
    serials = [r.next_serial() for _ in range(50)]
    assert serials == list(range(1, 51))
    # a certificate recorded with a serial beyond the counter moves it on
    der = env.der(500, Kind.AUTH, Profile.CARD)
    r.add_card_cert(serial=500, person="P1", kind=Kind.AUTH, issued_at=0, expiry=EXPIRY, der=der)
    assert r.next_serial() == 501
    # a serial the saved CA issued is never handed out again
    env.ca.issue(kind=Kind.AUTH, profile=Profile.CARD, serial=700, public_key=env.key, not_before=NOT_BEFORE, not_after=NOT_AFTER)
    r.save_ca(ca=env.ca)
    assert r.next_serial() == 701
    with Records.open(first_serial=10_000) as other:
        assert [other.next_serial(), other.next_serial()] == [10_000, 10_001]


# --- holds and revocation (SUS, REV-4) -------------------------------------------------------------


def test_holds_suspend_until_the_last_one_is_lifted(env: Env) -> None:
    r = env.records
    env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    cert = env.phone("P1", Kind.AUTH, card_serial=sign.serial, token=None)
    held = r.add_hold(serial=cert.serial, cause=HoldCause.PHONE_LOST, at=100)
    assert held.status is CertStatus.SUSPENDED and held.holds == FrozenMap({HoldCause.PHONE_LOST: 100})
    assert not held.in_force(200) and held.live(200)
    assert r.add_hold(serial=cert.serial, cause=HoldCause.PHONE_LOST, at=150).holds[HoldCause.PHONE_LOST] == 100  # keeps the first time
    both = r.add_hold(serial=cert.serial, cause=HoldCause.CARD_LOST, at=160)
    assert both.holds == FrozenMap({HoldCause.PHONE_LOST: 100, HoldCause.CARD_LOST: 160})
    one = r.remove_hold(serial=cert.serial, cause=HoldCause.PHONE_LOST)
    assert one.status is CertStatus.SUSPENDED and one.holds == FrozenMap({HoldCause.CARD_LOST: 160})
    with pytest.raises(UnknownRecordError, match="no phone_lost hold"):
        r.remove_hold(serial=cert.serial, cause=HoldCause.PHONE_LOST)
    resumed = r.remove_hold(serial=cert.serial, cause=HoldCause.CARD_LOST)
    assert resumed.status is CertStatus.ACTIVE and not resumed.holds and resumed.in_force(200)
    with pytest.raises(UnknownRecordError):
        r.add_hold(serial=4242, cause=HoldCause.CARD_LOST, at=1)


def test_rev4_revocation_is_final(env: Env) -> None:
    r = env.records
    env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    r.add_hold(serial=sign.serial, cause=HoldCause.CARD_LOST, at=50)
    revoked = r.revoke(serial=sign.serial, reason=RevocationReason.SUSPENDED_SIGNING, at=60)
    assert (revoked.status, revoked.revoked_at, revoked.reason) == (CertStatus.REVOKED, 60, RevocationReason.SUSPENDED_SIGNING)
    assert revoked.holds == FrozenMap({HoldCause.CARD_LOST: 50})  # kept as they were
    assert not revoked.live(61)
    with pytest.raises(RevokedError, match="REV-4"):
        r.revoke(serial=sign.serial, reason=RevocationReason.USER_REQUEST, at=70)
    with pytest.raises(RevokedError, match="REV-4"):
        r.remove_hold(serial=sign.serial, cause=HoldCause.CARD_LOST)
    with pytest.raises(RevokedError, match="issue a new certificate"):
        r.add_hold(serial=sign.serial, cause=HoldCause.PHONE_LOST, at=70)
    assert r.certificate(sign.serial) == revoked
    auth = env.card("P1", Kind.AUTH, at=100)
    with pytest.raises(InvalidRecordError, match="earlier"):
        r.revoke(serial=auth.serial, reason=RevocationReason.USER_REQUEST, at=99)


def test_schema_itself_enforces_rev4_serials_and_enums(tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    path = tmp_path / "records.sqlite"
    with Records.open(path) as records:
        env = Env(records=records, ca=make_ca(keys), key=keys[2].public_key())
        env.person("P1")
        sign = env.card("P1", Kind.SIGNING)
        auth = env.card("P1", Kind.AUTH)
        records.revoke(serial=sign.serial, reason=RevocationReason.USER_REQUEST, at=5)
    conn = raw(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="REV-4"):
            conn.execute("UPDATE certificates SET status = 'active', revoked_at = NULL, reason = NULL WHERE serial = ?", (sign.serial,))
        with pytest.raises(sqlite3.IntegrityError, match="REV-4"):
            conn.execute("INSERT INTO holds (serial, cause, since) VALUES (?, 'card_lost', 9)", (sign.serial,))
        with pytest.raises(sqlite3.IntegrityError, match="revoke the certificate instead"):
            conn.execute("DELETE FROM certificates WHERE serial = ?", (auth.serial,))
        with pytest.raises(sqlite3.IntegrityError, match=r"UNIQUE.*certificates.serial"):  # CA-2
            conn.execute(
                "INSERT INTO certificates (serial, profile, kind, person, status, issued_at, expiry, der) "
                "SELECT serial, profile, kind, person, status, issued_at, expiry, der FROM certificates WHERE serial = ?",
                (auth.serial,),
            )
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE certificates SET status = 'lost' WHERE serial = ?", (auth.serial,))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # revoked needs a time and a reason
            conn.execute("UPDATE certificates SET status = 'revoked' WHERE serial = ?", (auth.serial,))
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # a phone certificate needs its SE-ID and link
            conn.execute("UPDATE certificates SET profile = 'phone' WHERE serial = ?", (auth.serial,))
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            conn.execute("INSERT INTO linkage (card_serial, se_id) VALUES (9999, 'SE-X')")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("INSERT INTO holds (serial, cause, since) VALUES (?, 'bored', 9)", (auth.serial,))
    finally:
        conn.close()


# --- CRL entries (CA-4) ----------------------------------------------------------------------------


def test_crl_entries_are_per_kind_and_profile(env: Env) -> None:
    r = env.records
    env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    auth = env.card("P1", Kind.AUTH)
    phone_sign = env.phone("P1", Kind.SIGNING, card_serial=sign.serial, token=None)
    phone_auth = env.phone("P1", Kind.AUTH, card_serial=sign.serial, token=None)
    assert all(r.crl_entries(kind=k, profile=p) == () for k in Kind for p in Profile)
    r.revoke(serial=sign.serial, reason=RevocationReason.SUPERSEDED, at=50)
    r.add_hold(serial=phone_auth.serial, cause=HoldCause.PHONE_LOST, at=30)
    r.add_hold(serial=phone_auth.serial, cause=HoldCause.CARD_LOST, at=20)
    assert r.crl_entries(kind=Kind.SIGNING, profile=Profile.CARD) == (
        CrlRecord(serial=sign.serial, status=CertStatus.REVOKED, at=50, reason=RevocationReason.SUPERSEDED),
    )
    assert r.crl_entries(kind=Kind.SIGNING, profile=Profile.PHONE) == ()  # the card certificate is only on the card CRL
    assert r.crl_entries(kind=Kind.AUTH, profile=Profile.PHONE) == (
        CrlRecord(serial=phone_auth.serial, status=CertStatus.SUSPENDED, at=20, reason=HoldCause.CARD_LOST),  # the earliest hold
    )
    assert r.crl_entries(kind=Kind.AUTH, profile=Profile.CARD) == ()
    assert r.published() == frozenset(
        {(Profile.CARD, sign.serial, CertStatus.REVOKED), (Profile.PHONE, phone_auth.serial, CertStatus.SUSPENDED)}
    )
    # the entries feed the CA's CRL of the same kind and profile
    at = datetime(2026, 4, 2, tzinfo=UTC)
    crl = env.ca.build_crl(
        kind=Kind.AUTH,
        profile=Profile.PHONE,
        entries=[(e.serial, at, e.reason) for e in r.crl_entries(kind=Kind.AUTH, profile=Profile.PHONE)],
        this_update=at,
        next_update=datetime(2026, 4, 3, tzinfo=UTC),
        crl_number=1,
    )
    assert [c.serial_number for c in crl] == [phone_auth.serial]
    assert phone_sign.serial not in {s for _p, s, _st in r.published()} and auth.serial not in {s for _p, s, _st in r.published()}


# --- linkage (LNK-6) -------------------------------------------------------------------------------


def test_linkage_round_trip(env: Env) -> None:
    r = env.records
    env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    auth = env.card("P1", Kind.AUTH)
    phone = env.phone("P1", Kind.SIGNING, card_serial=sign.serial, token=None)
    assert r.get_linkage(sign.serial) is None and r.linkage() == FrozenMap()
    r.set_linkage(card_serial=sign.serial, se_id="SE-D1")
    assert r.get_linkage(sign.serial) == "SE-D1"
    r.set_linkage(card_serial=sign.serial, se_id="SE-D2")  # a model change links the card to the new SE
    assert r.linkage() == FrozenMap({sign.serial: "SE-D2"})
    for wrong in (auth.serial, phone.serial):
        with pytest.raises(InvalidRecordError, match="LNK-6"):
            r.set_linkage(card_serial=wrong, se_id="SE-D1")
    with pytest.raises(UnknownRecordError):
        r.set_linkage(card_serial=777, se_id="SE-D1")


# --- applications ----------------------------------------------------------------------------------


def test_application_round_trip_one_per_person(env: Env) -> None:
    r = env.records
    env.person("P1")
    r.register_push_token(token="tok-D1", phone="D1", install="install-1")
    sign = env.card("P1", Kind.SIGNING)
    auth = env.card("P1", Kind.AUTH)
    assert r.get_application("P1") is None
    app = r.put_application(
        person="P1", phone="D1", se_id="SE-D1", kinds=[Kind.AUTH], commitment=S, card_serial=sign.serial, push_token="tok-D1", push_due=485
    )
    assert app == ApplicationRecord(
        person="P1",
        phone="D1",
        se_id="SE-D1",
        kinds=frozenset({Kind.AUTH}),
        commitment=S,
        card_serial=sign.serial,
        push_token="tok-D1",
        push_due=485,
    )
    assert r.due_applications(now=484) == () and r.due_applications(now=485) == (app,)
    again = r.put_application(  # a new application replaces the pending one
        person="P1",
        phone="D1",
        se_id="SE-D1",
        kinds={Kind.SIGNING, Kind.AUTH},
        commitment=b"\x07" * 32,
        card_serial=sign.serial,
        push_token="tok-D1",
        push_due=500,
    )
    assert r.applications() == (again,) and again.kinds == frozenset(Kind)
    notified = r.mark_notified(person="P1")
    assert notified.notified and r.due_applications(now=10_000) == ()
    assert r.remove_application(person="P1") == notified
    assert r.applications() == () and r.snapshot()["application_kinds"] == []
    with pytest.raises(UnknownRecordError, match="no pending application"):
        r.remove_application(person="P1")
    common = dict(person="P1", phone="D1", se_id="SE-D1", commitment=S, push_token="tok-D1", push_due=1)
    with pytest.raises(InvalidRecordError, match="at least one kind"):
        r.put_application(kinds=(), card_serial=sign.serial, **common)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordError, match="card signing certificate"):
        r.put_application(kinds={Kind.AUTH}, card_serial=auth.serial, **common)  # type: ignore[arg-type]
    with pytest.raises(UnknownRecordError, match="register_push_token"):
        r.put_application(kinds={Kind.AUTH}, card_serial=sign.serial, **{**common, "push_token": "tok-x"})  # type: ignore[arg-type]


# --- push tokens -----------------------------------------------------------------------------------


def test_push_tokens_register_invalidate_lookup(records: Records) -> None:
    r = records
    first = r.register_push_token(token="tok-1", phone="D1", install="install-1")
    assert first == PushTokenRecord(token="tok-1", phone="D1", install="install-1", valid=True)
    r.register_push_token(token="tok-2", phone="D1", install="install-2")
    r.register_push_token(token="tok-3", phone="D2", install="install-3")
    with pytest.raises(DuplicateRecordError, match="tok-1"):
        r.register_push_token(token="tok-1", phone="D2", install="install-9")
    assert r.invalidate_push_token(token="tok-1").valid is False
    assert r.invalidate_push_token(token="tok-1").valid is False  # harmless twice
    assert r.get_push_token("tok-1") == PushTokenRecord(token="tok-1", phone="D1", install="install-1", valid=False)
    assert [t.token for t in r.push_tokens(phone="D1")] == ["tok-1", "tok-2"]
    assert [t.token for t in r.push_tokens()] == ["tok-1", "tok-2", "tok-3"]
    assert r.get_push_token("nope") is None
    with pytest.raises(UnknownRecordError, match="not registered"):
        r.invalidate_push_token(token="nope")


# --- deletions (MCH-2) -----------------------------------------------------------------------------


def test_deletion_put_list_remove(env: Env) -> None:
    r = env.records
    env.person("P1")
    env.person("P2")
    r.register_push_token(token="tok-D1", phone="D1", install="install-1")
    sign = env.card("P1", Kind.SIGNING)
    ps = env.phone("P1", Kind.SIGNING, card_serial=sign.serial)
    pa = env.phone("P1", Kind.AUTH, card_serial=sign.serial)
    d = r.put_deletion(phone="D1", person="P1", serials=[ps.serial], push_token="tok-D1", deadline=2880)
    assert d == DeletionRecord(phone="D1", person="P1", serials=frozenset({ps.serial}), push_token="tok-D1", deadline=2880)
    merged = r.put_deletion(phone="D1", person="P1", serials={ps.serial, pa.serial}, push_token="tok-D1", deadline=3000)
    assert r.deletions() == (merged,) and merged.serials == frozenset({ps.serial, pa.serial})
    assert r.get_deletion(phone="D1", person="P1") == merged and r.deletions(phone="D2") == ()
    no_token = r.put_deletion(phone="D3", person="P1", serials={pa.serial}, push_token=None, deadline=10)
    assert r.deletions(phone="D3") == (no_token,)
    with pytest.raises(InvalidRecordError, match="DEL-1"):  # only the person's phone certificates
        r.put_deletion(phone="D1", person="P1", serials={sign.serial}, push_token=None, deadline=1)
    with pytest.raises(InvalidRecordError, match="DEL-1"):
        r.put_deletion(phone="D1", person="P2", serials={ps.serial}, push_token=None, deadline=1)
    with pytest.raises(InvalidRecordError, match="at least one"):
        r.put_deletion(phone="D1", person="P1", serials=(), push_token=None, deadline=1)
    assert r.get_deletion(phone="D1", person="P1") == merged  # the refused puts changed nothing
    assert r.remove_deletion(phone="D1", person="P1") == merged
    assert r.deletions() == (no_token,) and len(r.snapshot()["deletion_serials"]) == 1
    with pytest.raises(UnknownRecordError, match="no pending deletion"):
        r.remove_deletion(phone="D1", person="P1")


# --- the CA --------------------------------------------------------------------------------------


def test_ca_save_load(env: Env, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    r = env.records
    assert r.load_ca() is None
    env.person("P1")
    sign = env.card("P1", Kind.SIGNING)
    r.save_ca(ca=env.ca, password=b"secret")
    r.save_ca(ca=env.ca, password=b"secret")  # the same CA again: fine
    loaded = r.load_ca(password=b"secret")
    assert loaded is not None
    for kind in Kind:
        assert loaded.ca(kind).certificate == env.ca.ca(kind).certificate
        assert loaded.ca(kind).key.private_numbers() == env.ca.ca(kind).key.private_numbers()
    assert loaded.issued_serials == {sign.serial}
    with pytest.raises(ValueError, match="already issued"):  # the loaded CA will not reuse a recorded serial (CA-2)
        loaded.issue(
            kind=Kind.SIGNING,
            profile=Profile.PHONE,
            serial=sign.serial,
            public_key=env.key,
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
            personal=PERSON,
        )
    with pytest.raises(RecordsError, match="password"):
        r.load_ca(password=b"wrong")
    other = JpkiCa.generate(signing_key=keys[1], auth_key=keys[0])  # keys swapped: a different CA
    with pytest.raises(InvalidRecordError, match="CA-1"):
        r.save_ca(ca=other)


def test_ca_publication_points_survive_a_restart(tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    # CA-4: a CA saved with the URLs its certificates name publishes at the same URLs when a later process loads it.
    points = PublicationPoints.served("http://127.0.0.1:8123")
    served = JpkiCa.generate(signing_key=keys[0], auth_key=keys[1], points=points)
    path = tmp_path / "records.sqlite"
    with Records.open(path) as records:
        records.save_ca(ca=served)
        assert records.snapshot()["ca_points"] == [
            {"singleton": 1, "crl_base": "http://127.0.0.1:8123/crl", "ocsp_base": "http://127.0.0.1:8123/ocsp"}
        ]
    with Records.open(path) as again:
        loaded = again.load_ca()
        assert loaded is not None and loaded.points == points
        assert loaded.points.crl(kind=Kind.SIGNING, profile=Profile.PHONE) == "http://127.0.0.1:8123/crl/sign/phone.crl"
        again.save_ca(ca=loaded)  # the same CA at the same points: fine
        moved = JpkiCa.from_pem(**{k.value: pem for k, pem in served.to_pem().items()}, points=PublicationPoints())
        with pytest.raises(InvalidRecordError, match=r"publishing at http://127\.0\.0\.1:8123/crl"):
            again.save_ca(ca=moved)
        assert again.load_ca().points == points  # type: ignore[union-attr]


def test_version_2_records_are_migrated_and_load_the_default_points(tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    # A file written before the points were kept: the CA loads as it did then, publishing at the default points.
    path = tmp_path / "records.sqlite"
    with Records.open(path) as records:
        records.save_ca(ca=make_ca(keys))
    conn = raw(path)
    conn.execute("DROP TABLE ca_points")
    conn.execute("UPDATE schema_version SET version = 2")
    conn.close()
    with Records.open(path) as again:
        assert again.snapshot()["schema_version"][0]["version"] == SCHEMA_VERSION == 3
        assert again.snapshot()["ca_points"] == []
        loaded = again.load_ca()
        assert loaded is not None and loaded.points == PublicationPoints()


# --- transactions ----------------------------------------------------------------------------------


def test_exception_mid_operation_leaves_no_partial_write(env: Env) -> None:
    r = env.records
    p = populate(env)
    before = r.snapshot()
    with pytest.raises(RuntimeError, match="boom"), r.transaction():
        env.person("P3")
        env.card("P3", Kind.SIGNING)
        r.add_hold(serial=p.card_sign, cause=HoldCause.CARD_LOST, at=300)
        r.revoke(serial=p.phone_auth, reason=RevocationReason.CASCADE, at=300)
        r.set_linkage(card_serial=p.card_sign, se_id="SE-D9")
        r.remove_application(person="P2")
        r.remove_deletion(phone="D1", person="P1")
        r.invalidate_push_token(token="tok-D2")
        assert r.get_person("P3") is not None and r.in_transaction  # visible inside the transaction
        raise RuntimeError("boom")
    assert not r.in_transaction
    assert r.snapshot() == before
    # a records error in the middle of a lifecycle step undoes the step's earlier writes too
    with pytest.raises(RevokedError), r.transaction():
        r.revoke(serial=p.card_auth, reason=RevocationReason.DATA_CHANGE, at=300)
        r.revoke(serial=p.phone_sign, reason=RevocationReason.CASCADE, at=300)  # revoked already (REV-4)
    assert r.snapshot() == before


def test_nested_transaction_is_a_savepoint(env: Env) -> None:
    r = env.records
    with r.transaction():
        env.person("P1")
        with pytest.raises(RuntimeError), r.transaction():
            env.person("P2")
            raise RuntimeError("inner")
        env.person("P3")
    assert [p.id for p in r.persons()] == ["P1", "P3"]


def test_uncommitted_writes_are_invisible_to_other_connections(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    with Records.open(path) as writer:
        with writer.transaction():
            writer.add_person(person="P1", birth_date=date(1990, 5, 1))
            with Records.open(path) as reader:
                assert reader.persons() == ()
        with Records.open(path) as reader:
            assert [p.id for p in reader.persons()] == ["P1"]


# --- restart -------------------------------------------------------------------------------------


def test_restart_from_file_preserves_every_record(tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    path = tmp_path / "jpki" / "records.sqlite"
    path.parent.mkdir()
    with Records.open(path, first_serial=100) as records:
        env = Env(records=records, ca=make_ca(keys), key=keys[2].public_key())
        p = populate(env)
        before = records.snapshot()
        views = records.cert_views()
        observation = records.observation(now=400, holders={"D1": "P1"})
        certificates = records.certificates()
    assert all(before[t] for t in ("persons", "certificates", "holds", "linkage", "applications", "application_kinds"))
    assert all(before[t] for t in ("push_tokens", "deletions", "deletion_serials", "ca", "ca_issued", "serial_counter"))
    with Records.open(path) as again:
        assert again.snapshot() == before
        assert again.cert_views() == views and again.certificates() == certificates
        assert again.observation(now=400, holders={"D1": "P1"}) == observation
        ca = again.load_ca()
        assert ca is not None and ca.to_pem() == env.ca.to_pem()
        assert ca.issued_serials == env.ca.issued_serials | {c.serial for c in certificates}
        assert 900 in ca.issued_serials
        fresh = again.next_serial()
        assert fresh == 901 and fresh not in ca.issued_serials
        again.revoke(serial=p.card_auth, reason=RevocationReason.USER_REQUEST, at=500)
        after = again.snapshot()
    with Records.open(path, first_serial=100) as third:  # the same first_serial is accepted
        assert third.snapshot() == after
    with pytest.raises(RecordsFileError, match="first_serial=100"):
        Records.open(path, first_serial=1)


def test_observation_gives_the_certificate_part(env: Env) -> None:
    p = populate(env)
    r = env.records
    slot = SlotView(phone="D1", se_id="SE-D1", kind=Kind.AUTH, key="k", cert_serial=p.phone_auth, pin_status=PinStatus.SET, tries_left=3)
    obs = r.observation(now=250, slots=[slot], holders={"D1": "P1", "D2": None})
    assert obs.now == 250 and obs.slots == (slot,) and obs.holders == FrozenMap({"D1": "P1", "D2": None})
    assert [c.serial for c in obs.certs] == [c.serial for c in r.certificates()]
    assert obs.cert(p.phone_sign).status is CertStatus.REVOKED  # type: ignore[union-attr]
    assert obs.cert(p.phone_auth).key == key_fingerprint(env.key).hex()  # type: ignore[union-attr]
    assert obs.published == frozenset(
        {
            (Profile.PHONE, p.phone_sign, CertStatus.REVOKED),
            (Profile.PHONE, p.phone_auth, CertStatus.SUSPENDED),
            (Profile.CARD, p.card_auth, CertStatus.SUSPENDED),
        }
    )
    assert obs.linkage == FrozenMap({p.card_sign: "SE-D1"})
    assert obs.current_card[("P1", Kind.SIGNING)] == p.card_sign and obs.current_card[("P2", Kind.SIGNING)] == p.p2_card_sign


# --- bad files -----------------------------------------------------------------------------------


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database at all\n" * 200)
    with pytest.raises(RecordsFileError, match="not a readable mjpki records database"):
        Records.open(path)
    assert path.read_bytes() == b"this is not a database at all\n" * 200  # left untouched


def test_corrupt_records_file_is_refused(tmp_path: Path, keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    path = tmp_path / "records.sqlite"
    with Records.open(path) as records:
        populate(Env(records=records, ca=make_ca(keys), key=keys[2].public_key()))
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[page : len(data) - page] = bytes([0xA5]) * (len(data) - 2 * page)  # every page but the first and the last
    path.write_bytes(bytes(data))
    with pytest.raises(RecordsFileError, match=r"damaged|corrupt"):
        Records.open(path)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(RecordsFileError, match=r"another application.*notes"):
        Records.open(path)


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    Records.open(path).close()
    conn = raw(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(RecordsFileError, match=rf"schema version 99.*only version {SCHEMA_VERSION}"):
        Records.open(path)


def test_missing_table_and_directory_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    Records.open(path).close()
    conn = raw(path)
    conn.execute("DROP TABLE deletion_serials")
    conn.close()
    with pytest.raises(RecordsFileError, match="lacks the tables deletion_serials"):
        Records.open(path)
    with pytest.raises(RecordsFileError, match="directory"):
        Records.open(tmp_path)
    with pytest.raises(RecordsFileError, match="folder"):
        Records.open(tmp_path / "no" / "such" / "records.sqlite")


def test_relink_phone_cert_checks_person_and_kind(env: Env) -> None:
    """ASM-CARD-FOUND: a live phone certificate moves to a card signing certificate of the same person only (LNK-2)."""
    pop = populate(env)
    r = env.records
    with pytest.raises(InvalidRecordError, match="LNK-2"):
        r.relink_phone_cert(serial=pop.phone_auth, card_serial=pop.card_auth)
    with pytest.raises(InvalidRecordError, match="LNK-2"):
        r.relink_phone_cert(serial=pop.phone_auth, card_serial=pop.p2_card_sign)
    with pytest.raises(InvalidRecordError, match="live phone certificate"):
        r.relink_phone_cert(serial=pop.phone_sign, card_serial=pop.card_sign)  # revoked: final (REV-4)
    new_sign = env.card("P1", Kind.SIGNING).serial
    r.relink_phone_cert(serial=pop.phone_auth, card_serial=new_sign)
    assert r.certificate(pop.phone_auth).card_serial == new_sign


def test_a_new_records_file_is_private(tmp_path: Path) -> None:
    # It holds both CA private keys (issue 12, finding 4): 0600 from the start, whatever the umask.
    old = os.umask(0o022)
    try:
        Records.open(tmp_path / "records.sqlite").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "records.sqlite").stat().st_mode) == 0o600


def test_an_existing_readable_records_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    Records.open(path).close()
    path.chmod(0o644)
    Records.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
