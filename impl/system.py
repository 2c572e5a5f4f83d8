"""The reference system: every spec action carried out with the real parts, answered in the spec's vocabulary.

`ReferenceSystem(world)` puts together one JPKI CA (mjpki.impl.ca.JpkiCa), the JPKI system's records (mjpki.impl.records.Records,
SQLite), one GP-SE per phone (mjpki.impl.se.GpSe, SE-ID from the world), an abstract clock (int minutes from mjpki.spec.clock.EPOCH,
nothing sleeps), a push service, the official app per phone, an SEI-TSM and an SP-TSM (mjpki.impl.se_tsm.Tsm over SCP03), each
person's My Number card (an RSA key pair certified by the CA at time 0) and the verifiers (profile, validity period and an
OCSP response the CA builds from the records).

`step(action)` returns a mjpki.spec.outcome.Outcome; the guards run in the order of the spec rule so that the refusal codes
match. Serials, keys and push tokens are the system's own, not the spec's. `observation()` builds the
mjpki.spec.observe.Observation the invariants of mjpki.properties.invariants judge, from the records and each SE's slot status.

Each phone's SE is reached only through APDUs (`SeLink.transmit`): in process a `GpSe`, or a card across PC/SC
(`mjpki.adapters.pcsc_system`), chosen with `se_links`. Where the real parts cannot tell the spec's distinctions apart by VERIFY
alone (a PIN that is temporarily blocked or locked both answer 6983), the SP-TSM reads the SE's GET SLOT STATUS over SCP03.

Known differences from the spec (outcome codes agree on every scenario and on random walks otherwise):
- GENERATE KEY PAIR empties the slots of the application's kinds before the H(R)=S check, so a COMMITMENT_MISMATCH
  leaves those slots empty (the spec keeps them) and consumes the stale R (the spec keeps its nonce);
- what is outside the JPKI system's records (the clock, the SEs, the apps, the cards) is not persisted: a restart from
  the SQLite file gets the records and the CA back; pass card_keys to keep the persons' cards (without them, reopened
  records that hold card certificates are refused when the system is built, with a message saying so).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp

from mjpki.adapters.artefacts import Artefacts
from mjpki.impl import se_apdu as APDU
from mjpki.impl.ca import CrlEntry, JpkiCa, PersonalData, build_ocsp_request, kind_of, profile_of
from mjpki.impl.records import CertRecord, CrlRecord, Records, commitment_of, key_fingerprint
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.se_tsm import SeCommandError, Tsm
from mjpki.spec import actions as A
from mjpki.spec.clock import DAY, DELETION_WINDOW, HOUR, PRIMARY_AUTH_INTERVAL, fifth_birthday_expiry, push_due, to_datetime
from mjpki.spec.domain import (
    CASCADING_REASONS,
    AuthMethod,
    CertStatus,
    HoldCause,
    Kind,
    PersonId,
    PhoneId,
    PinStatus,
    Profile,
    RevocationReason,
    Serial,
    SPKind,
)
from mjpki.spec.observe import Observation, SlotView
from mjpki.spec.outcome import Outcome, accepted, refused
from mjpki.spec.reasons import Reason as R
from mjpki.spec.rules import pin_well_formed
from mjpki.spec.world import World

__all__ = [
    "ReferenceSystem",
    "SeLink",
    "SystemDefectError",
    "Signed",
    "OFFICIAL_APP_HASH",
    "OTHER_APP_HASH",
    "CRL_PERIOD",
    "OCSP_PERIOD",
    "to_utc",
    "digest_info",
]

OFFICIAL_APP_HASH = hashlib.sha256(b"mjpki official app signing certificate").digest()
"""SHA-256 of the official app's signing certificate: the only caller the SE's access rule admits (ACL-1)."""
OTHER_APP_HASH = hashlib.sha256(b"some other app signing certificate").digest()
"""An app that is not the official one: the SE refuses it (ACL-1)."""

CRL_PERIOD = DAY
"""nextUpdate - thisUpdate of every CRL the reference publishes (issued again when its entries change or it falls due)."""
OCSP_PERIOD = HOUR
"""nextUpdate - thisUpdate of every OCSP answer the reference gives (RFC 6960 4.2.2.1)."""

_SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def to_utc(t: int) -> datetime:
    """Spec time t as the aware datetime the CA writes into certificates (the spec has no time zones: read as UTC)."""
    return to_datetime(t).replace(tzinfo=UTC)


def digest_info(message: bytes) -> bytes:
    """The DER DigestInfo of SHA-256(message), as OpenSC hands it to COMPUTE DIGITAL SIGNATURE."""
    return _SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


def _eligible(world: World, phone: PhoneId) -> bool:
    spec = world.phone(phone)
    return spec.android >= 9 and spec.gp_se and spec.nfc  # ACT-3


@runtime_checkable
class SeLink(Protocol):
    """The transport from a phone's software to its SE: a `GpSe` in process, or a card across PC/SC."""

    @property
    def se_id(self) -> str:
        """The SE-ID of the SE at the other end (a PC/SC link checks it over SCP03 when it connects)."""
        ...

    def transmit(self, apdu: bytes, *, caller: bytes | None) -> bytes:
        """One command APDU from the app whose signing-certificate hash is `caller` (ACL-1); response data || SW."""
        ...


class SystemDefectError(RuntimeError):
    """A part answered in a way the system does not expect (a defect, never a refusal)."""


@dataclass(slots=True, kw_only=True)
class _App:
    """The official app on one phone, and the phone's own state (holder, connectivity, screen lock)."""

    holder: PersonId | None
    token: str | None = None
    installs: int = 0
    applet_ready: bool = False
    online: bool = True
    push_enabled: bool = True
    os_auth_enrolled: bool = False
    os_pin: str | None = None
    """The auth PIN kept behind the OS screen lock / biometrics once enrolled (PIN-6)."""
    last_primary_auth: int | None = None
    held_pins: dict[Kind, str] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class _Card:
    """A person's My Number card: its key pair (the card certificates certify it)."""

    key: rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True, kw_only=True)
class Signed:
    """What a key use hands a verifier: the message, the signature and the certificate (DER)."""

    message: bytes
    signature: bytes
    certificate: bytes


class ReferenceSystem:
    """The whole JPKI smartphone system of the sources, built from the real parts."""

    def __init__(
        self,
        world: World,
        *,
        db_path: str | Path | None = None,
        ca: JpkiCa | None = None,
        card_keys: dict[PersonId, rsa.RSAPrivateKey] | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        isd_keys: StaticKeys | None = None,
        se_links: Mapping[PhoneId, SeLink] | None = None,
        se_keys: Mapping[str, StaticKeys] | None = None,
    ) -> None:
        """se_links: the phones whose SE is reached through another transport (e.g. PC/SC); the others get an in-process
        GpSe. isd_keys: the SEs' SCP03 keys, which the TSMs hold (required with se_links; random otherwise). se_keys: keys of
        particular SEs by SE-ID, in place of isd_keys (what `mjpki run --se-keys` gives the harness, mjpki.se_read)."""
        self.world = world
        self.now = 0
        self.records = Records.open(db_path)
        try:
            self.ca = self._load_or_save_ca(ca)
        except BaseException:
            self.records.close()
            raise
        self._random = random_bytes
        self._crl_number = 0
        self._crls: dict[tuple[Kind, Profile | None], tuple[tuple[CrlRecord, ...], int, int, bytes]] = {}
        """Each list as last issued: its entries, its thisUpdate and nextUpdate (spec minutes) and its DER."""
        self._published: tuple[tuple[object, ...], Artefacts] | None = None
        """The artefacts last handed over and the (records version, now) they were built at."""
        self._ocsp_answers: dict[tuple[bytes, tuple[object, ...] | None, int], bytes] = {}
        """(request DER, the record's status, now) -> the answer given: the same question about an unchanged record at the
        same now gets the same answer, signed once."""
        links = dict(se_links or {})
        if links and isd_keys is None:
            raise ValueError("se_links need isd_keys: the TSMs must hold the keys of the SEs at the other end")
        unknown = set(links) - {ph.id for ph in world.phones}
        if unknown:
            raise ValueError(f"se_links name phones the world does not have: {sorted(unknown)}")
        self.isd_keys = isd_keys or StaticKeys(enc=random_bytes(16), mac=random_bytes(16), dek=random_bytes(16))
        v = world.variants
        self._se_keys: dict[PhoneId, StaticKeys] = {ph.id: (se_keys or {}).get(ph.se_id, self.isd_keys) for ph in world.phones}
        """Each phone's SE keys, which its TSMs hold."""
        # Every SE is used only through transmit(): the same code drives an in-process GpSe and a card across PC/SC.
        self.ses: dict[PhoneId, SeLink] = {
            ph.id: links.get(ph.id)
            or GpSe(ph.se_id, self._se_keys[ph.id], auth_pin_tries=v.auth_pin_tries, signing_pin_tries=v.signing_pin_tries)
            for ph in world.phones
        }
        self.apps: dict[PhoneId, _App] = {ph.id: _App(holder=ph.initial_holder) for ph in world.phones}
        self._temp_pins: dict[tuple[PhoneId, Kind], bytes] = {}
        """The SP-TSM's temporary PINs, handed to the app to unblock with (PIN-2)."""
        self._slot_keys: dict[tuple[PhoneId, Kind], str] = {}
        """Fingerprints (hex) of the public keys each SE output at key generation, for the observation."""
        self._last_s: dict[PhoneId, bytes] = {}
        """The S each SE last answered to GENERATE R: registration compares it before the SE generates keys (see _do_Register)."""
        self._observed: tuple[tuple[object, ...], Observation] | None = None
        """The last observation and what it was made of (see observation)."""
        self._slot_reads: dict[PhoneId, tuple[SeLink, int, dict[Kind, APDU.SlotStatus]]] = {}
        """Each in-process SE's last GET SLOT STATUS answer, with the SE's generation right after it (see _slots)."""
        keys = card_keys or {}
        self.cards: dict[PersonId, _Card] = {}
        for p in world.persons:
            if p.has_card or p.id in keys:  # a card issued after the start is kept too when its key is given
                key = keys.get(p.id) or rsa.generate_private_key(public_exponent=65537, key_size=2048)
                self.cards[p.id] = _Card(key=key)
        try:
            # One transaction (BEGIN IMMEDIATE): two processes creating the same new records file do not both add the persons.
            with self.records.transaction():
                fresh = not self.records.persons()
                if fresh:
                    for p in world.persons:
                        self.records.add_person(person=p.id, birth_date=p.birth)
                        if p.has_card:
                            for kind in (Kind.SIGNING, Kind.AUTH):
                                self._issue_card(p.id, kind)
                    self.records.save_ca(ca=self.ca)
            if not fresh:
                self._check_card_keys()
        except BaseException:
            self.records.close()
            raise

    def _load_or_save_ca(self, ca: JpkiCa | None) -> JpkiCa:
        """The CA the records hold, else `ca` (or a new one) saved; another process creating the same file may win the race."""
        saved = self.records.load_ca()
        if saved is not None:
            return saved
        made = ca if ca is not None else JpkiCa.generate()  # generated outside the write lock: it takes a while
        with self.records.transaction():  # BEGIN IMMEDIATE: whoever saves first, the others load theirs (CA-1: one CA)
            saved = self.records.load_ca()
            if saved is not None:
                return saved
            self.records.save_ca(ca=made)
        return made

    def _check_card_keys(self) -> None:
        """Reopened records: ValueError unless every current card certificate is for a card key this system holds."""
        strangers = []
        for p in self.world.persons:
            card = self.cards.get(p.id)
            for kind in (Kind.SIGNING, Kind.AUTH):
                cert = self.current_card(p.id, kind)
                if cert is None:
                    continue
                public = cert.certificate().public_key()
                if card is None or public.public_numbers() != card.key.public_key().public_numbers():  # type: ignore[union-attr]
                    strangers.append(p.id)
                    break
        if strangers:
            raise ValueError(
                f"{self.records.path} holds card certificates of {', '.join(strangers)} for card keys this system was not given, "
                "so their cards could not sign (UseCard, Apply by card): pass card_keys (ReferenceSystem.cards of the system that "
                "issued them) or use new records"
            )

    def close(self) -> None:
        """Close the records."""
        self.records.close()

    # --- time ----------------------------------------------------------------------------------------------------

    def dt(self, t: int | None = None) -> datetime:
        """The aware datetime of spec time t (now by default)."""
        return to_utc(self.now if t is None else t)

    # --- the card side ---------------------------------------------------------------------------------------------

    def _personal(self, person: PersonId) -> PersonalData:
        p = self.world.person(person)
        return PersonalData(name=f"Person {person}", address="1-1 Kasumigaseki, Chiyoda-ku, Tokyo", birth_date=p.birth, sex="1")

    def _issue_card(self, person: PersonId, kind: Kind, *, expiry: int | None = None) -> CertRecord:
        """The municipal office issues a card certificate for the card's key and makes it current."""
        card = self.cards.get(person)
        if card is None:  # a person without a card gets one now
            card = self.cards[person] = _Card(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        exp = fifth_birthday_expiry(self.world.person(person).birth, self.now) if expiry is None else expiry
        serial = self.records.next_serial()
        cert = self.ca.issue(
            kind=kind,
            profile=Profile.CARD,
            serial=serial,
            public_key=card.key.public_key(),
            not_before=self.dt(),
            not_after=self.dt(exp),
            personal=self._personal(person) if kind is Kind.SIGNING else None,
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        with self.records.transaction():
            record = self.records.add_card_cert(serial=serial, person=person, kind=kind, issued_at=self.now, expiry=exp, der=der)
            self.records.set_current_card(person=person, kind=kind, serial=serial)
        return record

    def current_card(self, person: PersonId, kind: Kind) -> CertRecord | None:
        """The person's current card certificate of this kind."""
        serial = self.records.person(person).current(kind)
        return None if serial is None else self.records.certificate(serial)

    def card_sign(self, person: PersonId, kind: Kind, message: bytes, *, valid: bool = True) -> bytes:
        """The card signs message with its key (over NFC); valid=False stands for a signature that does not verify."""
        card = self.cards[person]
        signed = message if valid else message + b" (tampered)"
        return card.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())

    def _card_signature_guard(self, person: PersonId, signature_valid: bool) -> Outcome | None:
        """The JPKI system checks the card signing certificate's status, then the signature over its challenge."""
        card = self.current_card(person, Kind.SIGNING)
        if card is None or not card.in_force(self.now):
            return refused(R.CARD_SIGNING_CERT_NOT_VALID)
        challenge = self._random(32)
        signature = self.card_sign(person, Kind.SIGNING, challenge, valid=signature_valid)
        try:
            card.certificate().public_key().verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
        except InvalidSignature:
            return refused(R.CARD_SIGNATURE_INVALID)
        return None

    # --- the SE, the app, the TSMs -----------------------------------------------------------------------------------

    def transmit(self, phone: PhoneId, apdu: bytes, *, caller: bytes = OFFICIAL_APP_HASH) -> tuple[bytes, bytes]:
        """(data, SW) of one plain APDU to the phone's SE from an app."""
        response = self.ses[phone].transmit(apdu, caller=caller)
        return response[:-2], response[-2:]

    def tsm(self, phone: PhoneId) -> Tsm:
        """A TSM session with the phone's SE, through the official app (SEI-TSM and SP-TSM share the keys here)."""
        se = self.ses[phone]
        return Tsm(lambda apdu: se.transmit(apdu, caller=OFFICIAL_APP_HASH), self._se_keys[phone])

    def se_apdu(self, phone: PhoneId, apdu: bytes) -> bytes:
        """The optional SeApdu of mjpki.adapters.system: one APDU to the phone's SE as the TSMs send it, the response unchanged."""
        se = self.ses.get(phone)
        if se is None:
            raise KeyError(f"no phone {phone!r} in this world")
        return se.transmit(bytes(apdu), caller=OFFICIAL_APP_HASH)

    def _sei_prepare(self, phone: PhoneId) -> bool:
        """SEI-TSM: remove any applet left over, install a fresh one with the access rule for the official app (ISS-8)."""
        tsm = self.tsm(phone)
        tsm.open_isd()
        leftover = tsm.delete_applet() if tsm.applet_present() else False
        v = self.world.variants
        # The retry limits go with INSTALL (C9), so an SE this system did not build (PC/SC) gets the world's too.
        tsm.install_applet(pin_tries=(v.auth_pin_tries, v.signing_pin_tries))
        tsm.store_access_rules({APDU.JPKI_AID: [OFFICIAL_APP_HASH]})
        self._forget_keys(phone)
        return leftover

    def _sei_remove(self, phone: PhoneId) -> None:
        """SEI-TSM: delete the applet with everything in it (MCH-4 variant, factory reset wipe variant)."""
        tsm = self.tsm(phone)
        tsm.open_isd()
        if tsm.applet_present():
            tsm.delete_applet()
        self._forget_keys(phone)

    def _forget_keys(self, phone: PhoneId) -> None:
        for kind in Kind:
            self._slot_keys.pop((phone, kind), None)
            self._temp_pins.pop((phone, kind), None)

    def _se_status(self, phone: PhoneId) -> APDU.SeStatus | None:
        """GET SLOT STATUS over SCP03 to the applet, as the SP-TSM reads it for the app; None when no applet answers."""
        tsm = self.tsm(phone)
        try:
            tsm.open_applet()
        except SeCommandError as exc:
            if exc.sw == APDU.SW_NOT_FOUND:
                return None  # no JPKI applet installed
            raise SystemDefectError(f"opening SCP03 to the applet of {phone}: {exc}") from exc
        return tsm.slot_status()

    def _applet_present(self, phone: PhoneId) -> bool:
        """Whether the SE has the JPKI applet: SELECT by AID answers 6A82 exactly when it has none."""
        sw = self._select_jpki(phone)
        if sw == APDU.SW_NOT_FOUND:
            return False
        if sw in (APDU.SW_OK, APDU.SW_SECURITY_STATUS):
            return True  # 6982: installed, but the access rule does not admit the official app
        raise SystemDefectError(f"SELECT JPKI on {phone} answered {sw.hex()}")

    def _slots(self, phone: PhoneId, *, reuse: bool = False) -> dict[Kind, APDU.SlotStatus]:
        """The SE's slots that hold a certificate (the spec's slots), from GET SLOT STATUS.

        reuse: the last read's answer if the SE has processed nothing since (the observation after a step that did not touch
        this SE); only for an in-process GpSe, whose every command passes through here. A card over PC/SC is always read.
        """
        link = self.ses[phone]
        local = isinstance(link, GpSe)
        last = self._slot_reads.get(phone)
        if reuse and local and last is not None and last[0] is link and last[1] == link.generation:  # type: ignore[union-attr]
            return dict(last[2])
        status = self._se_status(phone)
        slots = {} if status is None else {k: s for k, s in status.slots.items() if s.cert_serial is not None}
        if local:
            self._slot_reads[phone] = (link, link.generation, slots)  # type: ignore[union-attr]
        return dict(slots)

    def _pin_refusal(self, phone: PhoneId, kind: Kind, sw: bytes) -> Outcome:
        """The refusal for a VERIFY that did not answer 9000."""
        if sw[0] == 0x63 and sw[1] & 0xF0 == 0xC0:
            return refused(R.WRONG_PIN, tries_left=sw[1] & 0x0F)
        status = self._se_status(phone)
        slot = None if status is None else status.slots.get(kind)
        if sw == APDU.SW_AUTH_BLOCKED and slot is not None and slot.pin_status is PinStatus.LOCKED:
            return refused(R.PIN_LOCKED)
        if sw in (APDU.SW_AUTH_BLOCKED, APDU.SW_REFERENCE_DATA_NOT_USABLE):
            return refused(R.PIN_NOT_SET)
        raise SystemDefectError(f"VERIFY on {phone} answered {sw.hex()}")

    def _select_jpki(self, phone: PhoneId, caller: bytes = OFFICIAL_APP_HASH) -> bytes:
        _d, sw = self.transmit(phone, APDU.select_aid(APDU.JPKI_AID), caller=caller)
        return sw

    def _verify_pin(self, phone: PhoneId, kind: Kind, pin: str | None) -> Outcome | None:
        """The app selects the applet and verifies the PIN (PIN-3: a wrong one spends a try in the SE)."""
        sw = self._select_jpki(phone)
        if sw != APDU.SW_OK:
            raise SystemDefectError(f"SELECT JPKI on {phone} answered {sw.hex()}")
        self._ok(phone, APDU.select_ef(APDU.EF_PIN[kind]), "SELECT PIN EF")
        _d, sw = self.transmit(phone, APDU.verify(pin.encode() if pin else b"\x00"))
        if sw != APDU.SW_OK:
            return self._pin_refusal(phone, kind, sw)
        return None

    def _ok(self, phone: PhoneId, apdu: bytes, what: str) -> bytes:
        data, sw = self.transmit(phone, apdu)
        if sw != APDU.SW_OK:
            raise SystemDefectError(f"{what} on {phone} answered {sw.hex()}")
        return data

    def _read_cert(self, phone: PhoneId, kind: Kind) -> bytes:
        """READ BINARY of the kind's certificate EF, as OpenSC reads it (header, then 256-byte steps)."""
        self._ok(phone, APDU.select_ef(APDU.EF_CERT[kind]), "SELECT certificate EF")
        head = self._ok(phone, APDU.read_binary(0, 4), "READ BINARY")
        size = int.from_bytes(head[2:4], "big") + 4
        out = b""
        while len(out) < size:
            left = size - len(out)
            out += self._ok(phone, APDU.read_binary(len(out), 0 if left >= 256 else left), "READ BINARY")
        return out

    def se_sign(self, phone: PhoneId, kind: Kind, message: bytes) -> Signed:
        """With the PIN verified in this selection: read the certificate, sign DigestInfo(SHA-256(message)) in the SE."""
        der = self._read_cert(phone, kind)
        self._ok(phone, APDU.select_ef(APDU.EF_KEY[kind]), "SELECT key EF")
        signature = self._ok(phone, APDU.compute_signature(digest_info(message)), "COMPUTE DIGITAL SIGNATURE")
        return Signed(message=message, signature=signature, certificate=der)

    # --- the verifier ----------------------------------------------------------------------------------------------

    def ocsp_status(self, certificate: x509.Certificate) -> ocsp.OCSPResponse:
        """The JPKI OCSP responder of the certificate's profile: a signed answer from the records (CA-4)."""
        profile = profile_of(certificate)
        # The responder of the certificate's own kind and profile (its policy OID): a serial the records do not hold for
        # that kind and profile is answered unknown, by the CA that certificate names (never "good", SP-1).
        kind = kind_of(certificate)
        record = self.records.get_certificate(certificate.serial_number)
        request = build_ocsp_request(certificate=certificate, issuer=self.ca.ca(kind).certificate)
        status: CertStatus | None = None
        revoked_at = None
        reason = None
        if record is not None and record.profile is profile and record.kind is kind:
            status = record.status
            entry = record.crl_entry()
            if entry is not None:
                revoked_at = self.dt(entry.at)
                reason = entry.reason
        return self.ca.build_ocsp_response(
            kind=kind,
            request=request.public_bytes(serialization.Encoding.DER),
            status=status,
            this_update=self.dt(),
            revoked_at=revoked_at,
            reason=reason,
        )

    def verify(self, signed: Signed, *, expected: Profile) -> tuple[R | None, x509.Certificate]:
        """A service provider's check (ASM-VERIFIER-ORDER): signature, profile, validity period, then OCSP status."""
        cert = x509.load_der_x509_certificate(signed.certificate)
        if profile_of(cert) is not expected:
            raise SystemDefectError(f"certificate {cert.serial_number} is not of the {expected.value} profile")
        cert.public_key().verify(signed.signature, signed.message, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
        if not cert.not_valid_before_utc <= self.dt() < cert.not_valid_after_utc:
            return R.CERT_EXPIRED, cert
        response = self.ocsp_status(cert)
        issuer = self.ca.ca(self.records.certificate(cert.serial_number).kind).certificate
        issuer.public_key().verify(  # type: ignore[union-attr,call-arg]
            response.signature, response.tbs_response_bytes, padding.PKCS1v15(), response.signature_hash_algorithm
        )
        if response.certificate_status is ocsp.OCSPCertStatus.GOOD:
            return None, cert
        if response.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            if response.revocation_reason is x509.ReasonFlags.certificate_hold:
                return R.CERT_SUSPENDED, cert
            return R.CERT_REVOKED, cert
        raise SystemDefectError(f"OCSP does not know certificate {cert.serial_number}")

    def relying_party(self, der: bytes, *, accept: Profile) -> tuple[R | None, x509.Certificate]:
        """A relying party that takes `accept` certificates only (SP-1, ASM-RELYING-PARTY-ORDER): the profile's policy OID
        (CA-3), the issuing CA's signature, the validity period, then the OCSP answer of the certificate's profile (CA-4)."""
        cert = x509.load_der_x509_certificate(der)
        if not self._accepts_profile(profile_of(cert), accept):
            return R.WRONG_PROFILE, cert
        issuer = self.ca.ca(kind_of(cert)).certificate
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return R.UNKNOWN_CERTIFICATE, cert  # not signed by the JPKI CA of its kind: never issued by this CA
        if not cert.not_valid_before_utc <= self.dt() < cert.not_valid_after_utc:
            return R.CERT_EXPIRED, cert
        response = self.ocsp_status(cert)
        issuer.public_key().verify(  # type: ignore[union-attr,call-arg]
            response.signature, response.tbs_response_bytes, padding.PKCS1v15(), response.signature_hash_algorithm
        )
        return self._ocsp_verdict(response), cert

    def _accepts_profile(self, profile: Profile, accept: Profile) -> bool:
        """The verifier's profile check: only certificates of the profile it accepts (SP-1, CA-3)."""
        return profile is accept

    def _ocsp_verdict(self, response: ocsp.OCSPResponse) -> R | None:
        """What an OCSP answer means to a relying party: good passes, a hold suspends, any other revocation revokes, and
        unknown (a serial this CA never issued) refuses (SP-1, CA-4)."""
        if response.certificate_status is ocsp.OCSPCertStatus.GOOD:
            return None
        if response.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            return R.CERT_SUSPENDED if response.revocation_reason is x509.ReasonFlags.certificate_hold else R.CERT_REVOKED
        return R.UNKNOWN_CERTIFICATE

    def never_issued(self, person: PersonId, kind: Kind, profile: Profile) -> bytes:
        """A certificate of this person, kind and profile under the CA's name that the CA never issued (DER).

        Signed with the CA's own key, as after a key compromise or a mis-issuance outside the records, so that only the
        OCSP answer (unknown) can tell it from a real one; the serial is taken from the records' counter and never used
        by a record afterwards, and the CA's own list of issued serials is left alone (a separate JpkiCa over its keys).
        """
        forger = JpkiCa(signing=self.ca.ca(Kind.SIGNING), auth=self.ca.ca(Kind.AUTH), points=self.ca.points)
        card = self.cards.get(person)
        key = card.key if card is not None else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = forger.issue(
            kind=kind,
            profile=profile,
            serial=self.records.next_serial(),
            public_key=key.public_key(),
            not_before=self.dt(),
            not_after=self.dt(self.now + DAY),
            personal=self._personal(person) if kind is Kind.SIGNING else None,
        )
        return cert.public_bytes(serialization.Encoding.DER)

    # --- records helpers --------------------------------------------------------------------------------------------

    def live_phone_certs(self, person: PersonId) -> tuple[CertRecord, ...]:
        """The person's phone certificates that are neither revoked nor expired."""
        return tuple(c for c in self.records.certificates(person=person, profile=Profile.PHONE) if c.live(self.now))

    def _revoke(self, serial: Serial, reason: RevocationReason, at: int | None = None) -> None:
        cert = self.records.certificate(serial)
        if cert.status is not CertStatus.REVOKED:
            self.records.revoke(serial=serial, reason=reason, at=self.now if at is None else at)

    def _sweep(self, until: int) -> list[Serial]:
        """The linkage sweep (REV-2, ASM-CASCADE-AT-DEADLINE): a phone certificate goes at the earliest deadline of the
        card certificates it follows (ASM-PHONE-LINKAGE)."""
        delay = self.world.variants.cascade_delay_minutes
        due: list[tuple[int, Serial]] = []
        for pc in self.records.certificates(profile=Profile.PHONE):
            if pc.status is CertStatus.REVOKED:
                continue
            deadlines = [
                card.revoked_at + delay
                for card in map(self.records.certificate, pc.follows)
                if card.status is CertStatus.REVOKED
                and card.reason in CASCADING_REASONS
                and card.revoked_at is not None
                and card.revoked_at + delay <= until
            ]
            if deadlines:
                due.append((min(deadlines), pc.serial))
        due.sort()
        for at, serial in due:
            self._revoke(serial, RevocationReason.CASCADE, at=max(at, self.now))
        return [s for _at, s in due]

    def _relink(self, serial: Serial, card_serial: Serial) -> None:
        """Link a live phone auth certificate to the new card signing certificate, which it follows if it followed the
        old one (ASM-CARD-FOUND)."""
        self.records.relink_phone_cert(serial=serial, card_serial=card_serial)

    def _request_deletion(self, certs: list[CertRecord]) -> None:
        """Queue remote deletions to each old phone, addressed by the registering install's push token (MCH-2)."""
        for cert in certs:
            assert cert.se_id is not None
            phone = self.world.phone_by_se(cert.se_id).id
            old = self.records.get_deletion(phone=phone, person=cert.person)
            serials = {cert.serial} | (set(old.serials) if old else set())
            self.records.put_deletion(
                phone=phone, person=cert.person, serials=serials, push_token=cert.push_token, deadline=self.now + DELETION_WINDOW
            )

    def _card_auth_guard(self, person: PersonId, kinds: frozenset[Kind]) -> Outcome | None:
        """Where a phone certificate applied for is to follow the card auth certificate, it must be in force (ASM-PHONE-LINKAGE)."""
        linkage = self.world.variants.phone_linkage
        if any(Kind.AUTH in linkage.follows(k) for k in kinds):
            card = self.current_card(person, Kind.AUTH)
            if card is None or not card.in_force(self.now):
                return refused(R.CARD_AUTH_CERT_NOT_VALID)
        return None

    def _phone_guards(self, phone: PhoneId, *, online: bool = True) -> Outcome | None:
        app = self.apps[phone]
        if app.token is None:
            return refused(R.APP_NOT_INSTALLED)
        if online and not app.online:
            return refused(R.DEVICE_OFFLINE)
        return None

    def _holder_guard(self, person: PersonId, phone: PhoneId) -> Outcome | None:
        if self.apps[phone].holder != person:
            return refused(R.NOT_PHONE_HOLDER)
        return None

    def _start_application(self, person: PersonId, phone: PhoneId, kinds: frozenset[Kind], pins: dict[Kind, str]) -> int:
        """The SE makes R and answers S = H(R); the JPKI system holds S with the application (ISS-2, ISS-7)."""
        tsm = self.tsm(phone)  # Apply and ResumeFromApp both refuse before this when the SE has no applet
        tsm.open_applet()
        se_id = tsm.read_se_id()
        s = tsm.generate_r()
        self._last_s[phone] = s
        card = self.current_card(person, Kind.SIGNING)
        assert card is not None
        app = self.apps[phone]
        assert app.token is not None
        due = push_due(self.now)
        self.records.put_application(
            person=person,
            phone=phone,
            se_id=se_id,
            kinds=kinds,
            commitment=s,
            card_serial=card.serial,
            push_token=app.token,
            push_due=due,
        )
        app.held_pins.update(pins)
        return due

    def _token_reaches(self, phone: PhoneId, token: str | None) -> bool:
        """The push service reaches the phone's app through this token: it is valid and the current install's."""
        if token is None:
            return False
        record = self.records.get_push_token(token)
        return record is not None and record.valid and record.phone == phone and self.apps[phone].token == token

    # --- the actions --------------------------------------------------------------------------------------------------

    def step(self, action: A.Action) -> Outcome:
        """Carry out one spec action; the outcome in the spec's vocabulary."""
        handler = getattr(self, f"_do_{type(action).__name__}", None)
        if handler is None:
            raise NotImplementedError(f"no handler for {type(action).__name__}")
        with self.records.transaction():
            return handler(action)  # type: ignore[no-any-return]

    # card side

    def _do_IssueCardCertificate(self, a: A.IssueCardCertificate) -> Outcome:
        old = self.current_card(a.person, a.kind)
        if old is not None and old.status is not CertStatus.REVOKED:
            self._revoke(old.serial, RevocationReason.SUPERSEDED)
        new = self._issue_card(a.person, a.kind)
        cascaded = self._sweep(self.now)
        return accepted(serial=new.serial, expiry=new.expiry, superseded=old.serial if old else None, cascaded=tuple(cascaded))

    def _do_RevokeCardCertificate(self, a: A.RevokeCardCertificate) -> Outcome:
        cert = self.current_card(a.person, a.kind)
        if cert is None or cert.status is CertStatus.REVOKED:
            return refused(R.NOTHING_TO_REVOKE)
        self._revoke(cert.serial, RevocationReason.USER_REQUEST)
        return accepted(revoked=(cert.serial,), cascaded=tuple(self._sweep(self.now)))

    def _do_ChangePersonalData(self, a: A.ChangePersonalData) -> Outcome:
        cert = self.current_card(a.person, Kind.SIGNING)
        if cert is None or cert.status is CertStatus.REVOKED:
            return refused(R.NOTHING_TO_REVOKE)
        self._revoke(cert.serial, RevocationReason.DATA_CHANGE)
        return accepted(revoked=(cert.serial,), cascaded=tuple(self._sweep(self.now)))

    def _do_ReportCardLost(self, a: A.ReportCardLost) -> Outcome:
        cards = [c for k in Kind if (c := self.current_card(a.person, k)) is not None and c.live(self.now)]
        if not cards:
            return refused(R.NO_CERTIFICATE)
        card_serials = {c.serial for c in cards}
        for c in cards:
            self.records.add_hold(serial=c.serial, cause=HoldCause.CARD_LOST, at=self.now)
        linked = {c.serial for c in self.live_phone_certs(a.person) if c.follows & card_serials}  # SUS-2, ASM-PHONE-LINKAGE
        for serial in sorted(linked):
            self.records.add_hold(serial=serial, cause=HoldCause.CARD_LOST, at=self.now)
        return accepted(suspended=tuple(sorted(card_serials | linked)))

    def _do_CardFound(self, a: A.CardFound) -> Outcome:
        held = [
            c
            for k in Kind
            if (c := self.current_card(a.person, k)) is not None and HoldCause.CARD_LOST in c.holds and c.status is CertStatus.SUSPENDED
        ]
        if not held:
            return refused(R.NOTHING_SUSPENDED)
        resumed: list[Serial] = []
        reissued: list[Serial] = []
        for cert in held:
            if cert.kind is Kind.AUTH:
                self.records.remove_hold(serial=cert.serial, cause=HoldCause.CARD_LOST)
                resumed.append(cert.serial)
            else:
                self._revoke(cert.serial, RevocationReason.SUPERSEDED_AFTER_HOLD)
                if cert.expiry > self.now:  # expired during the hold: revoked only, the person renews (ASM-CARD-FOUND)
                    fresh = self.world.variants.card_found_fresh_expiry  # then to the 5th birthday from now (VAL-2)
                    self._issue_card(a.person, Kind.SIGNING, expiry=None if fresh else cert.expiry)
                    reissued.append(cert.serial)
        return accepted(resumed=tuple(resumed), reissued=tuple(reissued))

    # app and applet

    def _do_InstallApp(self, a: A.InstallApp) -> Outcome:
        app = self.apps[a.phone]
        if app.token is not None:
            self.records.invalidate_push_token(token=app.token)
        app.installs += 1
        install = f"{a.phone}-install-{app.installs}"
        token = f"push-{secrets.token_hex(8)}"
        self.records.register_push_token(token=token, phone=a.phone, install=install)
        app.token = token
        app.applet_ready = False
        app.os_auth_enrolled = False
        app.os_pin = None
        app.held_pins.clear()
        return accepted()

    def _do_UninstallApp(self, a: A.UninstallApp) -> Outcome:
        app = self.apps[a.phone]
        if app.token is None:
            return refused(R.APP_NOT_INSTALLED)
        self.records.invalidate_push_token(token=app.token)
        app.token = None
        app.applet_ready = False
        app.os_auth_enrolled = False
        app.os_pin = None
        app.held_pins.clear()
        return accepted()

    def _do_PrepareApplet(self, a: A.PrepareApplet) -> Outcome:
        if (no := self._phone_guards(a.phone)) is not None:
            return no
        if not _eligible(self.world, a.phone):
            return refused(R.DEVICE_NOT_ELIGIBLE)
        removed = tuple(sorted(k.value for k in self._slots(a.phone)))
        leftover = self._sei_prepare(a.phone)
        self.apps[a.phone].applet_ready = True
        return accepted(leftover_removed=leftover, removed=removed if leftover else ())

    # issuance

    def _do_Apply(self, a: A.Apply) -> Outcome:
        if (no := self._holder_guard(a.person, a.phone) or self._phone_guards(a.phone)) is not None:
            return no
        if not _eligible(self.world, a.phone):
            return refused(R.DEVICE_NOT_ELIGIBLE)
        if not self.apps[a.phone].applet_ready:
            return refused(R.APPLET_NOT_READY)
        if not a.kinds:
            return refused(R.NO_KIND_SELECTED)
        pins = {Kind.SIGNING: a.signing_pin, Kind.AUTH: a.auth_pin}
        for kind in sorted(a.kinds, key=lambda k: k.value):
            if not pin_well_formed(kind, pins[kind]):
                return refused(R.PIN_FORMAT_INVALID, kind=kind.value)
        if (no := self._card_signature_guard(a.person, a.card_signature_valid)) is not None:
            return no
        if (no := self._card_auth_guard(a.person, a.kinds)) is not None:
            return no
        se_id = self.ses[a.phone].se_id
        live = self.live_phone_certs(a.person)
        other_se = [c for c in live if c.se_id != se_id]
        same_se = [c for c in live if c.se_id == se_id and c.kind in a.kinds]
        to_revoke = other_se + same_se
        if to_revoke and not a.consent:
            return refused(R.CONSENT_REQUIRED, serials=tuple(c.serial for c in to_revoke))
        for c in other_se:
            self._revoke(c.serial, RevocationReason.DEVICE_STOPPED)
        for c in same_se:
            self._revoke(c.serial, RevocationReason.SUPERSEDED)
        self._request_deletion(other_se)
        chosen = {k: pins[k] for k in a.kinds}
        due = self._start_application(a.person, a.phone, a.kinds, chosen)  # type: ignore[arg-type]
        # MCH-3: the app warns that the old phone's data stays if the remote deletion cannot reach it (ASM-DELETION-WARNING).
        return accepted(revoked=tuple(c.serial for c in to_revoke), push_due=due, deletion_warning=bool(other_se))

    def _do_DeliverIssuancePush(self, a: A.DeliverIssuancePush) -> Outcome:
        application = self.records.get_application(a.person)
        if application is None:
            return refused(R.NO_APPLICATION)
        if self.now < application.push_due:
            return refused(R.PUSH_NOT_DUE, push_due=application.push_due)
        app = self.apps[application.phone]
        if not self._token_reaches(application.phone, application.push_token):
            return refused(R.PUSH_TOKEN_INVALID)
        if not app.push_enabled:
            return refused(R.PUSH_DISABLED)
        if not app.online:
            return refused(R.DEVICE_OFFLINE)
        self.records.mark_notified(person=a.person)
        return accepted(phone=application.phone)

    def _do_Register(self, a: A.Register) -> Outcome:
        if (no := self._holder_guard(a.person, a.phone) or self._phone_guards(a.phone)) is not None:
            return no
        application = self.records.get_application(a.person)
        if application is None:
            return refused(R.NO_APPLICATION)
        if not application.notified:
            return refused(R.NOT_NOTIFIED)
        card = self.current_card(a.person, Kind.SIGNING)
        if card is None or card.serial != application.card_serial or not card.in_force(self.now):
            return refused(R.CARD_SIGNING_CERT_NOT_VALID)
        if (no := self._card_auth_guard(a.person, application.kinds)) is not None:
            return no
        if not self._applet_present(a.phone):
            return refused(R.APPLET_NOT_READY)
        # An application made on another SE (or superseded since this SE made its R) cannot match: refuse before GENERATE KEY
        # PAIR, which would replace the keys in this SE's slots, some of which may still hold certificates (a refused
        # registration changes nothing, ISS-5). The S is the one this SE answered; H(R) = S is still checked below.
        known = self._last_s.get(a.phone)
        if known is not None and known != application.commitment:
            return refused(R.COMMITMENT_MISMATCH)
        # ISS-5/ISS-6: the SE generates the key pairs and outputs the public keys with R; the CA certifies only if H(R) = S.
        tsm = self.tsm(a.phone)
        tsm.open_applet()
        kinds = sorted(application.kinds, key=lambda k: k.value)
        data, sw = tsm.send(APDU.generate_key_pair(kinds))
        out = data
        while sw == APDU.SW_MORE_DATA:
            data, sw = tsm.send(APDU.get_output(len(out)))
            out += data
        if sw == APDU.SW_CONDITIONS:  # no R pending in this SE
            return refused(R.COMMITMENT_MISMATCH)
        if sw != APDU.SW_OK:
            raise SystemDefectError(f"GENERATE KEY PAIR on {a.phone} answered {sw.hex()}")
        generated = APDU.parse_key_pair_output(out)
        for kind, spki in generated.public_keys.items():
            self._slot_keys[(a.phone, kind)] = key_fingerprint(serialization.load_der_public_key(spki)).hex()
        if commitment_of(generated.r) != application.commitment:
            return refused(R.COMMITMENT_MISMATCH)
        se_id = tsm.read_se_id()
        issued: list[tuple[str, Serial]] = []
        for kind in kinds:
            public_key = serialization.load_der_public_key(generated.public_keys[kind])
            assert isinstance(public_key, rsa.RSAPublicKey)
            # ASM-PHONE-LINKAGE: it follows the person's current card certificates of the kinds the variant names, and
            # expires with the earliest of them (VAL-1).
            followed = [c for k in self.world.variants.phone_linkage.follows(kind) if (c := self.current_card(a.person, k)) is not None]
            expiry = min(c.expiry for c in followed)
            serial = self.records.next_serial()
            cert = self.ca.issue(
                kind=kind,
                profile=Profile.PHONE,
                serial=serial,
                public_key=public_key,
                not_before=self.dt(),
                not_after=self.dt(expiry),  # VAL-1
                personal=self._personal(a.person) if kind is Kind.SIGNING else None,
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            self.records.add_phone_cert(
                serial=serial,
                person=a.person,
                kind=kind,
                issued_at=self.now,
                expiry=expiry,
                der=der,
                se_id=se_id,
                card_serial=card.serial,  # LNK-2
                follows=[c.serial for c in followed],
                commitment=application.commitment,
                presented_r=generated.r,
                push_token=self.apps[a.phone].token,
            )
            tsm.write_certificate(APDU.CERT_TARGET[("user", kind)], der)
            tsm.write_certificate(APDU.CERT_TARGET[("ca", kind)], self.ca.ca(kind).certificate.public_bytes(serialization.Encoding.DER))
            temp = self._random(16)
            tsm.set_temporary_pin(kind, temp)  # PIN-2: set and blocked
            self._temp_pins[(a.phone, kind)] = temp
            issued.append((kind.value, serial))
        self.records.set_linkage(card_serial=card.serial, se_id=se_id)  # LNK-6
        self.records.remove_application(person=a.person)
        return accepted(issued=tuple(issued))

    def _do_SetPin(self, a: A.SetPin) -> Outcome:
        if (no := self._phone_guards(a.phone)) is not None:
            return no
        slot = self._slots(a.phone).get(a.kind)
        if slot is None:
            return refused(R.NO_CERTIFICATE)
        app = self.apps[a.phone]
        pin = app.held_pins.get(a.kind)
        temp = self._temp_pins.get((a.phone, a.kind))
        if slot.pin_status is not PinStatus.TEMP_BLOCKED or pin is None or temp is None:
            return refused(R.NO_PIN_PENDING)
        tsm = self.tsm(a.phone)
        tsm.open_applet()
        tsm.unblock_and_set_pin(a.kind, temp, pin.encode())
        del self._temp_pins[(a.phone, a.kind)]
        del app.held_pins[a.kind]
        if a.kind is Kind.AUTH and app.os_auth_enrolled:
            app.os_pin = pin
        return accepted()

    # use

    def _do_UnlockScreen(self, a: A.UnlockScreen) -> Outcome:
        self.apps[a.phone].last_primary_auth = self.now
        return accepted()

    def _do_EnrollOsAuth(self, a: A.EnrollOsAuth) -> Outcome:
        if (no := self._phone_guards(a.phone, online=False)) is not None:
            return no
        if Kind.AUTH not in self._slots(a.phone):
            return refused(R.NO_CERTIFICATE)
        spec = self.world.phone(a.phone)
        if spec.android < 11 and not spec.biometric_class3:
            return refused(R.OS_AUTH_NOT_ALLOWED)
        if (no := self._verify_pin(a.phone, Kind.AUTH, a.pin)) is not None:
            return no
        app = self.apps[a.phone]
        app.os_auth_enrolled = True
        app.os_pin = a.pin
        return accepted()

    def _sp_guards(self, sp_id: str, *, signing: bool) -> Outcome | None:
        sp = self.world.service_provider(sp_id)
        if not sp.whitelisted:
            return refused(R.SP_NOT_WHITELISTED)  # ACL-2: the return URL is not on the whitelist
        if signing and sp.kind is SPKind.PRIVATE and not sp.approved:
            return refused(R.SP_NOT_APPROVED)  # ACL-3
        return None

    def _use_key(self, phone: PhoneId, kind: Kind, method: AuthMethod, pin: str | None, sp: str) -> Outcome:
        """Unlock the key in the SE, sign the SP's challenge, and have the SP's verifier check it."""
        slot = self._slots(phone).get(kind)
        if slot is None:
            return refused(R.NO_CERTIFICATE)
        app = self.apps[phone]
        if method is AuthMethod.PIN:
            if (no := self._verify_pin(phone, kind, pin)) is not None:
                return no
        else:
            if slot.pin_status is PinStatus.TEMP_BLOCKED:
                return refused(R.PIN_NOT_SET)
            if slot.pin_status is PinStatus.LOCKED:
                return refused(R.PIN_LOCKED)
            spec = self.world.phone(phone)
            if kind is Kind.SIGNING or (method is AuthMethod.OS_CREDENTIAL and spec.android < 11):
                return refused(R.OS_AUTH_NOT_ALLOWED)
            if method is AuthMethod.BIOMETRIC and not spec.biometric_class3:
                return refused(R.BIOMETRIC_NOT_CLASS3)
            if not app.os_auth_enrolled:
                return refused(R.OS_AUTH_NOT_ENROLLED)
            if method is AuthMethod.OS_CREDENTIAL:
                app.last_primary_auth = self.now
            elif app.last_primary_auth is None or self.now - app.last_primary_auth > PRIMARY_AUTH_INTERVAL:
                return refused(R.PRIMARY_AUTH_REQUIRED)
            # The OS releases the PIN kept behind the screen lock; the app presents it to the SE, and a successful
            # VERIFY resets the SE's PIN counter (ASM-OS-AUTH-PRESENTS-PIN).
            if (no := self._verify_pin(phone, kind, app.os_pin)) is not None:
                return no
        challenge = f"{sp}:{kind.value}:{self.now}:".encode() + self._random(16)
        signed = self.se_sign(phone, kind, challenge)
        why, cert = self.verify(signed, expected=Profile.PHONE)
        if why is not None:
            return refused(why, serial=cert.serial_number)
        return accepted(serial=cert.serial_number, profile=profile_of(cert).value)

    def _key_use(self, a: A.Authenticate | A.Sign, kind: Kind) -> Outcome:
        """Authenticate or Sign: phone, calling app (ACL-1), service provider (ACL-2, ACL-3), then the key itself."""
        if (no := self._phone_guards(a.phone)) is not None:
            return no
        if not a.official_app:
            sw = self._select_jpki(a.phone, OTHER_APP_HASH)
            if sw == APDU.SW_OK:
                raise SystemDefectError(f"the SE of {a.phone} admitted an app that is not the official one (ACL-1)")
            return refused(R.ACCESS_DENIED)
        if (no := self._sp_guards(a.sp, signing=kind is Kind.SIGNING)) is not None:
            return no
        return self._use_key(a.phone, kind, a.method, a.pin, a.sp)

    def _do_Authenticate(self, a: A.Authenticate) -> Outcome:
        return self._key_use(a, Kind.AUTH)

    def _do_Sign(self, a: A.Sign) -> Outcome:
        return self._key_use(a, Kind.SIGNING)

    def _do_UseCard(self, a: A.UseCard) -> Outcome:
        sp = self.world.service_provider(a.sp)
        if a.kind is Kind.SIGNING and sp.kind is SPKind.PRIVATE and not sp.approved:
            return refused(R.SP_NOT_APPROVED)
        cert = self.current_card(a.person, a.kind)
        if cert is None:
            return refused(R.NO_CERTIFICATE)
        challenge = f"{a.sp}:card:{self.now}:".encode() + self._random(16)
        signed = Signed(message=challenge, signature=self.card_sign(a.person, a.kind, challenge), certificate=cert.der)
        why, x = self.verify(signed, expected=Profile.CARD)
        if why is not None:
            return refused(why, serial=x.serial_number)
        return accepted(serial=x.serial_number, profile=profile_of(x).value)

    def _do_VerifyCertificate(self, a: A.VerifyCertificate) -> Outcome:
        # ASM-CERTIFICATE-BY-ISSUE-ORDER: the records list a person's certificates by serial, which this system allocates
        # in issue order.
        issued = self.records.certificates(person=a.person, kind=a.kind, profile=a.profile)
        der = issued[a.index].der if 0 <= a.index < len(issued) else self.never_issued(a.person, a.kind, a.profile)
        why, cert = self.relying_party(der, accept=a.accept)
        if why is R.WRONG_PROFILE:
            return refused(why, profile=profile_of(cert).value)
        if why is R.UNKNOWN_CERTIFICATE:
            return refused(why)
        if why is not None:
            return refused(why, serial=cert.serial_number)
        return accepted(serial=cert.serial_number, profile=profile_of(cert).value)

    def _do_ChangePin(self, a: A.ChangePin) -> Outcome:
        if (no := self._phone_guards(a.phone, online=False)) is not None:
            return no
        if a.kind not in self._slots(a.phone):
            return refused(R.NO_CERTIFICATE)
        if not pin_well_formed(a.kind, a.new_pin):
            return refused(R.PIN_FORMAT_INVALID, kind=a.kind.value)
        if (no := self._verify_pin(a.phone, a.kind, a.old_pin)) is not None:
            return no
        self._ok(a.phone, APDU.change_pin(None, a.new_pin.encode()), "CHANGE REFERENCE DATA")
        app = self.apps[a.phone]
        if a.kind is Kind.AUTH and app.os_auth_enrolled:
            app.os_pin = a.new_pin
        return accepted()

    def _do_InitialisePin(self, a: A.InitialisePin) -> Outcome:
        if (no := self._holder_guard(a.person, a.phone) or self._phone_guards(a.phone)) is not None:
            return no
        if not pin_well_formed(a.kind, a.new_pin):
            return refused(R.PIN_FORMAT_INVALID, kind=a.kind.value)
        if (no := self._card_signature_guard(a.person, a.card_signature_valid)) is not None:
            return no
        live = [c for c in self.live_phone_certs(a.person) if c.kind is a.kind]
        if not live:
            return refused(R.PHONE_CERT_NOT_FOUND)
        card = self.current_card(a.person, Kind.SIGNING)
        assert card is not None
        # PIN-4: the SE-ID read from this phone's SE over SCP03 must be the one recorded for the card (LNK-6).
        tsm = self.tsm(a.phone)
        tsm.open_isd()
        if self.records.get_linkage(card.serial) != tsm.read_se_id_isd():
            return refused(R.SE_ID_MISMATCH)
        slot = self._slots(a.phone).get(a.kind)
        if slot is None or slot.cert_serial not in {c.serial for c in live}:
            return refused(R.PHONE_CERT_NOT_FOUND)
        temp = self._random(16)
        tsm.open_applet()
        tsm.set_temporary_pin(a.kind, temp, reset=True)
        self._temp_pins[(a.phone, a.kind)] = temp
        self.apps[a.phone].held_pins[a.kind] = a.new_pin
        return accepted()

    # revocation, suspension, deletion

    def _sp_tsm_delete(self, phone: PhoneId, serials: set[Serial]) -> tuple[str, ...]:
        """SP-TSM: DELETE KEYS AND CERTIFICATES, serial-matched, for each serial (DEL-1); the kinds it emptied."""
        slots = self._slots(phone)
        targets = {k: s.cert_serial for k, s in slots.items() if s.cert_serial in serials}
        if not targets:
            return ()
        tsm = self.tsm(phone)
        tsm.open_applet()
        gone: list[str] = []
        for kind, serial in sorted(targets.items(), key=lambda kv: kv[0].value):
            assert serial is not None
            if tsm.delete_keys([kind], serial):
                gone.append(kind.value)
                self._slot_keys.pop((phone, kind), None)
                self._temp_pins.pop((phone, kind), None)
        return tuple(gone)

    def _do_RevokeFromPhone(self, a: A.RevokeFromPhone) -> Outcome:
        if (no := self._phone_guards(a.phone)) is not None:
            return no
        slot = self._slots(a.phone).get(a.kind)
        if slot is None:
            return refused(R.NO_CERTIFICATE)
        if (no := self._verify_pin(a.phone, a.kind, a.pin)) is not None:
            return no
        assert slot.cert_serial is not None
        cert = self.records.certificate(slot.cert_serial)
        revoked: tuple[Serial, ...] = ()
        if cert.live(self.now):
            self._revoke(cert.serial, RevocationReason.DEVICE_STOPPED)
            revoked = (cert.serial,)
        gone = self._sp_tsm_delete(a.phone, {cert.serial})
        return accepted(revoked=revoked, deleted=gone)

    def _do_RevokeWithCard(self, a: A.RevokeWithCard) -> Outcome:
        if (no := self._card_signature_guard(a.person, a.card_signature_valid)) is not None:
            return no
        live = list(self.live_phone_certs(a.person))
        if not live:
            return refused(R.NOTHING_TO_REVOKE)
        for c in live:
            self._revoke(c.serial, RevocationReason.DEVICE_STOPPED)
        self._request_deletion(live)
        return accepted(revoked=tuple(c.serial for c in live), deletion_warning=True)  # MCH-3, ASM-DELETION-WARNING

    def _do_ReportPhoneLost(self, a: A.ReportPhoneLost) -> Outcome:
        live = sorted(c.serial for c in self.live_phone_certs(a.person))
        if not live:
            return refused(R.PHONE_CERT_NOT_FOUND)
        for serial in live:
            self.records.add_hold(serial=serial, cause=HoldCause.PHONE_LOST, at=self.now)
        return accepted(suspended=tuple(live))

    def _do_PhoneFound(self, a: A.PhoneFound) -> Outcome:
        held = [c for c in self.live_phone_certs(a.person) if HoldCause.PHONE_LOST in c.holds]
        if not held:
            return refused(R.NOTHING_SUSPENDED)
        resumed: list[Serial] = []
        revoked: list[Serial] = []
        for cert in held:
            if cert.kind is Kind.AUTH:
                self.records.remove_hold(serial=cert.serial, cause=HoldCause.PHONE_LOST)
                resumed.append(cert.serial)
            else:
                self._revoke(cert.serial, RevocationReason.SUSPENDED_SIGNING)
                revoked.append(cert.serial)
        return accepted(resumed=tuple(resumed), revoked=tuple(revoked))

    def _continues(self, cert: CertRecord, card: CertRecord) -> bool:
        """ASM-CARD-FOUND: every card certificate cert follows continues: a card signing one was re-issued when the card
        was found (the current one, `card`, has its expiry; with card_found_fresh_expiry, one no earlier), a card auth one
        is in force."""
        for old in map(self.records.certificate, cert.follows):
            if old.kind is Kind.SIGNING:
                if old.reason is not RevocationReason.SUPERSEDED_AFTER_HOLD:
                    return False
                kept = card.expiry >= old.expiry if self.world.variants.card_found_fresh_expiry else card.expiry == old.expiry
                if not kept:
                    return False
            elif not old.in_force(self.now):
                return False
        return True

    def _do_ResumeFromApp(self, a: A.ResumeFromApp) -> Outcome:
        if (no := self._holder_guard(a.person, a.phone) or self._phone_guards(a.phone)) is not None:
            return no
        if (no := self._card_signature_guard(a.person, a.card_signature_valid)) is not None:
            return no
        card = self.current_card(a.person, Kind.SIGNING)
        assert card is not None  # the card signature guard passed
        held = [c for c in self.live_phone_certs(a.person) if HoldCause.CARD_LOST in c.holds and self._continues(c, card)]
        if not held:
            return refused(R.NOTHING_SUSPENDED)
        se_id = self.ses[a.phone].se_id
        if any(c.se_id != se_id for c in held):
            return refused(R.SE_ID_MISMATCH)
        signing = [c for c in held if c.kind is Kind.SIGNING]
        if signing and not pin_well_formed(Kind.SIGNING, a.signing_pin):
            return refused(R.PIN_FORMAT_INVALID, kind=Kind.SIGNING.value)
        if signing and not self._applet_present(a.phone):
            return refused(R.APPLET_NOT_READY)
        resumed: list[Serial] = []
        for cert in held:
            if cert.kind is Kind.AUTH:
                # ASM-CARD-FOUND: re-linked to the new card signing certificate; it keeps the expiry written in it.
                self.records.remove_hold(serial=cert.serial, cause=HoldCause.CARD_LOST)
                self._relink(cert.serial, card.serial)
                resumed.append(cert.serial)
        for cert in signing:
            self._revoke(cert.serial, RevocationReason.SUSPENDED_SIGNING)
        self.records.set_linkage(card_serial=card.serial, se_id=se_id)
        due = None
        if signing:
            assert a.signing_pin is not None
            due = self._start_application(a.person, a.phone, frozenset({Kind.SIGNING}), {Kind.SIGNING: a.signing_pin})
        return accepted(resumed=tuple(resumed), revoked=tuple(c.serial for c in signing), push_due=due)

    def _do_DeliverDeletionPush(self, a: A.DeliverDeletionPush) -> Outcome:
        pending = self.records.deletions(phone=a.phone)
        if not pending:
            return refused(R.NO_PENDING_DELETION)
        app = self.apps[a.phone]
        reachable = [d for d in pending if self._token_reaches(a.phone, d.push_token)]
        if not reachable:
            return refused(R.PUSH_TOKEN_INVALID)
        if not app.push_enabled:
            return refused(R.PUSH_DISABLED)
        if not app.online:
            return refused(R.DEVICE_OFFLINE)
        deleted: list[str] = []
        for d in reachable:
            deleted.extend(self._sp_tsm_delete(a.phone, set(d.serials)))
            self.records.remove_deletion(phone=d.phone, person=d.person)
        if self.world.variants.remote_deletion_removes_applet and not self._slots(a.phone):
            self._sei_remove(a.phone)  # MCH-4, via the SEI-TSM
            app.applet_ready = False
        return accepted(deleted=tuple(sorted(deleted)))

    # the phone's world

    def _do_SetOnline(self, a: A.SetOnline) -> Outcome:
        app = self.apps[a.phone]
        if app.online == a.online:
            return refused(R.ALREADY_IN_THAT_STATE)
        app.online = a.online
        return accepted()

    def _do_SetPushEnabled(self, a: A.SetPushEnabled) -> Outcome:
        app = self.apps[a.phone]
        if app.push_enabled == a.enabled:
            return refused(R.ALREADY_IN_THAT_STATE)
        app.push_enabled = a.enabled
        return accepted()

    def _do_FactoryReset(self, a: A.FactoryReset) -> Outcome:
        app = self.apps[a.phone]
        wipe = self.world.variants.factory_reset_wipes_se
        if app.token is not None:
            self.records.invalidate_push_token(token=app.token)
        app.token = None
        app.applet_ready = False
        app.os_auth_enrolled = False
        app.os_pin = None
        app.last_primary_auth = None
        app.held_pins.clear()
        app.push_enabled = True
        if wipe:
            self._sei_remove(a.phone)
        return accepted(se_wiped=wipe)

    def _do_TransferPhone(self, a: A.TransferPhone) -> Outcome:
        self.world.person(a.to)
        app = self.apps[a.phone]
        if app.holder == a.to:
            return refused(R.ALREADY_IN_THAT_STATE)
        app.holder = a.to
        return accepted()

    def _do_AdvanceTime(self, a: A.AdvanceTime) -> Outcome:
        if a.minutes < 1:
            return refused(R.INVALID_TIME_STEP)
        target = self.now + a.minutes
        cascaded = self._sweep(target)
        expired = [d for d in self.records.deletions() if d.deadline <= target]
        for d in expired:
            self.records.remove_deletion(phone=d.phone, person=d.person)
        self.now = target
        return accepted(cascaded=tuple(cascaded), deletions_failed=tuple(d.phone for d in expired))

    # --- observation ----------------------------------------------------------------------------------------------

    def slot_views(self) -> tuple[SlotView, ...]:
        """Each phone's applet slots that hold a certificate, from the SE's slot status."""
        views: list[SlotView] = []
        for ph in self.world.phones:
            # Only the SEs a step touched are read again: reading every SE over a fresh SCP03 session after every step was
            # a fifth of a conformance run, and an SE that processed no command since its last read answers the same.
            for kind, s in sorted(self._slots(ph.id, reuse=True).items(), key=lambda kv: kv[0].value):
                if not s.key_present or s.cert_serial is None or s.pin_status is None:
                    continue
                views.append(
                    SlotView(
                        phone=ph.id,
                        se_id=ph.se_id,
                        kind=kind,
                        key=self._slot_keys.get((ph.id, kind), "?"),
                        cert_serial=s.cert_serial,
                        pin_status=s.pin_status,
                        tries_left=s.tries_left,
                    )
                )
        return tuple(views)

    # --- publication (the optional Artefacts interface of mjpki.adapters.artefacts) -----------------------------------

    def artefacts(self) -> Artefacts:
        """The CA certificates, every issued certificate and the current CRLs (one per kind and profile, one per CA), as DER.

        Built again only when the records or the clock moved since the last call (the same records at the same now give
        the same lists: `_crl` keeps each as issued while it is right and current)."""
        key = (self.records.version(), self.now)
        if self._published is not None and self._published[0] == key:
            return self._published[1]
        self._published = (key, self._build_artefacts())
        return self._published[1]

    def _build_artefacts(self) -> Artefacts:
        records = self.records.certificates()
        entries = tuple((c.kind, c.profile, e) for c in records if (e := c.crl_entry()) is not None)
        lists = (Profile.CARD, Profile.PHONE, None)  # None: the CRL over the CA certificate itself
        crls = tuple(self._crl(kind, profile, entries) for kind in (Kind.SIGNING, Kind.AUTH) for profile in lists)
        der = serialization.Encoding.DER
        return Artefacts(
            ca_certs=tuple(self.ca.ca(k).certificate.public_bytes(der) for k in (Kind.SIGNING, Kind.AUTH)),
            certs=tuple(c.der for c in records),
            crls=crls,
        )

    def _crl(self, kind: Kind, profile: Profile | None, entries: tuple[tuple[Kind, Profile, CrlRecord], ...]) -> bytes:
        """One list (profile None: the CA's own), issued afresh only when its entries changed or it is due (REV-4)."""
        # Like a CA that publishes on change and on schedule: a CRL stays as issued while its entries are the records' and
        # it is current at the world's now, thisUpdate <= now < nextUpdate (ASM-ARTEFACT-TIME); otherwise it is issued
        # again, with thisUpdate now and the next CRL number.
        mine = tuple(e for k, p, e in entries if (k, p) == (kind, profile))
        cached = self._crls.get((kind, profile))
        if cached is not None and cached[0] == mine and cached[1] <= self.now < cached[2]:
            return cached[3]
        self._crl_number += 1
        this_update, next_update = self.dt(), self.dt(self.now + CRL_PERIOD)
        if profile is None:
            crl = self.ca.build_ca_crl(kind=kind, this_update=this_update, next_update=next_update, crl_number=self._crl_number)
        else:
            listed = [CrlEntry(serial=e.serial, revoked_at=self.dt(e.at), reason=e.reason) for e in mine]
            crl = self.ca.build_crl(
                kind=kind, profile=profile, entries=listed, this_update=this_update, next_update=next_update, crl_number=self._crl_number
            )
        der = crl.public_bytes(serialization.Encoding.DER)
        self._crls[kind, profile] = (mine, self.now, self.now + CRL_PERIOD, der)
        return der

    def ocsp(self, request: bytes) -> bytes:
        """The OCSP responder (RFC 6960): good, revoked (certificateHold while suspended) or unknown, at the world's now."""
        try:
            parsed = ocsp.load_der_ocsp_request(request)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                serialization.Encoding.DER
            )
        kind = next((k for k in Kind if self.ca.names_issuer(parsed, kind=k)), None)
        if kind is None:  # a CA this responder does not answer for
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER
            )
        serial = parsed.serial_number
        record = self.records.get_certificate(serial) if 0 < serial < 1 << 63 else None  # SQLite holds 64-bit serials only
        status: CertStatus | None = None  # unknown: a serial this CA never issued (never "good", SP-1)
        revoked_at = reason = None
        entry = None
        if record is not None and record.kind is kind:
            status = record.status
            entry = record.crl_entry()
            if entry is not None:
                revoked_at, reason = self.dt(entry.at), entry.reason
        # The answer depends on the request (CertID, nonce), the record's status and the world's now alone: asked again
        # about the same, it is the answer already signed (thisUpdate now, current for OCSP_PERIOD; producedAt as first made).
        memo = (request, None if status is None else (kind, status, entry), self.now)
        known = self._ocsp_answers.get(memo)
        if known is not None:
            return known
        response = self.ca.build_ocsp_response(
            kind=kind, request=parsed, status=status, this_update=self.dt(), next_update=self.dt(self.now + OCSP_PERIOD),
            revoked_at=revoked_at, reason=reason,
        )  # fmt: skip
        answer = response.public_bytes(serialization.Encoding.DER)
        if len(self._ocsp_answers) >= 4096:
            self._ocsp_answers.clear()
        self._ocsp_answers[memo] = answer
        return answer

    def observation(self) -> Observation:
        """What the invariants judge: the records, the CRL/OCSP publication, the linkage, the SE slots, the holders."""
        slots, holders = self.slot_views(), {ph: app.holder for ph, app in self.apps.items()}
        # Records, clock, slots and holders as they were at the last observation (a refusal changes none): the same object,
        # which the lockstep has judged already; the records are not read again.
        key = (self.records.version(), self.now, slots, tuple(holders.items()))
        if self._observed is not None and self._observed[0] == key:
            return self._observed[1]
        obs = self.records.observation(now=self.now, slots=slots, holders=holders)
        self._observed = (key, obs)
        return obs
