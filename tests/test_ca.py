"""The reference CA (impl/ca.py): certificates, CRLs and OCSP responses checked with cryptography and the openssl command."""

from __future__ import annotations

import itertools
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from mjpki.impl.ca import (
    CARD_AUTH_POLICY_OID,
    CARD_SIGNING_POLICY_OID,
    PHONE_AUTH_POLICY_OID,
    PHONE_SIGNING_POLICY_OID,
    POLICY_OIDS,
    REASON_CODES,
    CrlEntry,
    IssuingCa,
    JpkiCa,
    PersonalData,
    build_ocsp_request,
    crl_url,
    kind_of,
    ocsp_url,
    personal_data_of,
    profile_of,
    reason_code,
    subject_identifier,
)
from mjpki.spec.domain import CertStatus, HoldCause, Kind, Profile, RevocationReason

NOW = datetime.now(UTC).replace(microsecond=0)
NOT_BEFORE = NOW - timedelta(days=1)
NOT_AFTER = NOW + timedelta(days=365)
PERSON = PersonalData(name="山田 太郎", address="東京都千代田区霞が関2-1-2", birth_date=date(1990, 5, 1), sex="男")
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
COMBOS = [(kind, profile) for kind in Kind for profile in Profile]
_SERIALS = itertools.count(0x1000)


def fresh_serial() -> int:
    """A serial no test has used yet (the CA refuses reuse, CA-2)."""
    return next(_SERIALS)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subject_keys() -> list[rsa.RSAPrivateKey]:
    """A few subject keys, reused across certificates."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


def issue(ca: JpkiCa, key: rsa.RSAPrivateKey, kind: Kind, profile: Profile, *, serial: int | None = None) -> x509.Certificate:
    """A certificate of this kind and profile, with the basic four for a signing one."""
    return ca.issue(
        kind=kind,
        profile=profile,
        serial=fresh_serial() if serial is None else serial,
        public_key=key.public_key(),
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        personal=PERSON if kind is Kind.SIGNING else None,
    )


@pytest.fixture(scope="module")
def certs(ca: JpkiCa, subject_keys: list[rsa.RSAPrivateKey]) -> dict[tuple[Kind, Profile], x509.Certificate]:
    """One certificate of each kind and profile."""
    return {(kind, profile): issue(ca, subject_keys[i % 2], kind, profile) for i, (kind, profile) in enumerate(COMBOS)}


def run(openssl: str, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run openssl; stdout and stderr together in .stdout."""
    return subprocess.run(
        [openssl, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=60
    )


def write(path: Path, obj: x509.Certificate | x509.CertificateRevocationList | bytes) -> Path:
    """Write a certificate or CRL as PEM (or raw bytes) and return the path."""
    path.write_bytes(obj if isinstance(obj, bytes) else obj.public_bytes(PEM))
    return path


def crl(ca: JpkiCa, kind: Kind, profile: Profile, entries: list[CrlEntry], *, number: int = 1) -> x509.CertificateRevocationList:
    """A CRL valid now."""
    return ca.build_crl(
        kind=kind,
        profile=profile,
        entries=entries,
        this_update=NOW - timedelta(minutes=1),
        next_update=NOW + timedelta(days=1),
        crl_number=number,
    )


# --- the CAs (CA-1, CA-5) -----------------------------------------------------------------------------


def test_openssl_is_installed(openssl: str, tmp_path: Path) -> None:
    out = run(openssl, "version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("OpenSSL"), out.stdout


@pytest.mark.parametrize("kind", list(Kind))
def test_ca_certificate_is_self_signed_rsa2048_sha256(ca: JpkiCa, kind: Kind, openssl: str, tmp_path: Path) -> None:
    # CA-1, CA-5: one RSA-2048 CA per kind, sha256WithRSAEncryption (PKCS#1 v1.5).
    cert = ca.ca(kind).certificate
    assert cert.subject == cert.issuer
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert isinstance(cert.signature_algorithm_parameters, padding.PKCS1v15)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)
    pem = write(tmp_path / "ca.pem", cert)
    text = run(openssl, "x509", "-noout", "-text", "-in", pem, cwd=tmp_path)
    assert text.returncode == 0, text.stdout
    assert "Public-Key: (2048 bit)" in text.stdout and "sha256WithRSAEncryption" in text.stdout and "CA:TRUE" in text.stdout
    verify = run(openssl, "verify", "-CAfile", pem, pem, cwd=tmp_path)
    assert verify.returncode == 0 and "OK" in verify.stdout, verify.stdout


def test_the_two_cas_have_different_keys(ca: JpkiCa) -> None:
    assert ca.ca(Kind.SIGNING).key.public_key() != ca.ca(Kind.AUTH).key.public_key()
    assert ca.ca(Kind.SIGNING).certificate.subject != ca.ca(Kind.AUTH).certificate.subject


@pytest.mark.parametrize("kind", list(Kind))
def test_card_and_phone_share_the_ca_key_of_their_kind(certs: dict, ca: JpkiCa, kind: Kind) -> None:
    # CA-1: the phone certificate is issued with the same CA key as the card certificate.
    card, phone = certs[kind, Profile.CARD], certs[kind, Profile.PHONE]
    assert card.issuer == phone.issuer == ca.ca(kind).certificate.subject
    aki = {c.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier for c in (card, phone)}
    ski = ca.ca(kind).certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == {ski}


@pytest.mark.parametrize(("kind", "profile"), COMBOS)
def test_signature_verifies_with_the_ca_public_key(certs: dict, ca: JpkiCa, kind: Kind, profile: Profile) -> None:
    # CA-5: RSASSA-PKCS1-v1_5 with SHA-256, under the CA key of the certificate's kind (CA-1).
    cert = certs[kind, profile]
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert cert.public_key().key_size == 2048
    ca.ca(kind).key.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())
    cert.verify_directly_issued_by(ca.ca(kind).certificate)
    other = Kind.AUTH if kind is Kind.SIGNING else Kind.SIGNING
    with pytest.raises(InvalidSignature):
        ca.ca(other).key.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())


# --- profiles, key usage, URLs (CA-3, CA-4) --------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_key_usage_by_kind_is_the_same_for_card_and_phone(certs: dict, kind: Kind) -> None:
    # CA-3: key usage is unchanged between the profiles.
    usages = [certs[kind, p].extensions.get_extension_for_class(x509.KeyUsage) for p in Profile]
    assert all(u.critical for u in usages)
    assert usages[0].value == usages[1].value
    ku = usages[0].value
    assert ku.digital_signature
    assert ku.content_commitment is (kind is Kind.SIGNING)  # nonRepudiation only for signing
    assert not (ku.key_encipherment or ku.key_cert_sign or ku.crl_sign or ku.key_agreement)
    assert not certs[kind, Profile.CARD].extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(("kind", "profile"), COMBOS)
def test_profile_and_kind_read_back(certs: dict, kind: Kind, profile: Profile) -> None:
    # CA-3, SP-1: a verifier can tell a phone certificate from a card one.
    cert = certs[kind, profile]
    assert profile_of(cert) is profile
    assert kind_of(cert) is kind
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [POLICY_OIDS[kind, profile]]


def test_policy_oids_are_distinct_and_under_the_documentation_arc() -> None:
    oids = [CARD_SIGNING_POLICY_OID, PHONE_SIGNING_POLICY_OID, CARD_AUTH_POLICY_OID, PHONE_AUTH_POLICY_OID]
    assert len(set(oids)) == 4 == len(POLICY_OIDS)
    assert all(o.dotted_string.startswith("1.3.6.1.4.1.32473.") for o in oids)  # RFC 5612 example PEN


def _foreign(subject_key: rsa.RSAPrivateKey, policies: list[x509.ObjectIdentifier]) -> x509.Certificate:
    """A self-signed certificate with the given policy OIDs (none: no extension)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foreign")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(subject_key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )
    if policies:
        builder = builder.add_extension(x509.CertificatePolicies([x509.PolicyInformation(o, None) for o in policies]), critical=False)
    return builder.sign(subject_key, hashes.SHA256())


def test_profile_of_refuses_certificates_of_neither_profile(ca: JpkiCa, subject_keys: list) -> None:
    with pytest.raises(ValueError, match="no certificatePolicies"):
        profile_of(ca.ca(Kind.SIGNING).certificate)
    with pytest.raises(ValueError, match="exactly one JPKI profile policy"):
        profile_of(_foreign(subject_keys[0], [x509.ObjectIdentifier("1.2.3.4")]))
    with pytest.raises(ValueError, match="exactly one JPKI profile policy"):
        profile_of(_foreign(subject_keys[0], [CARD_SIGNING_POLICY_OID, PHONE_SIGNING_POLICY_OID]))


def test_crl_and_ocsp_urls_differ_between_profiles_and_kinds() -> None:
    # CA-4: separate CRL distribution points and OCSP URLs for phone and card certificates.
    crls = {crl_url(kind=k, profile=p) for k, p in COMBOS}
    ocsps = {ocsp_url(kind=k, profile=p) for k, p in COMBOS}
    assert len(crls) == 4 and len(ocsps) == 4
    assert crl_url(kind=Kind.SIGNING, profile=Profile.PHONE) == "http://crl.jpki.invalid/sign/phone.crl"
    assert ocsp_url(kind=Kind.AUTH, profile=Profile.CARD) == "http://ocsp.jpki.invalid/auth/card"


@pytest.mark.parametrize(("kind", "profile"), COMBOS)
def test_certificate_carries_its_profile_urls(certs: dict, kind: Kind, profile: Profile) -> None:
    # CA-4: the CRL DP and OCSP URL in the certificate are those of its kind and profile.
    cert = certs[kind, profile]
    dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for dp in dps for n in dp.full_name] == [crl_url(kind=kind, profile=profile)]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.OCSP] == [
        ocsp_url(kind=kind, profile=profile)
    ]


# --- personal data --------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(Profile))
def test_signing_certificate_carries_the_basic_four(certs: dict, profile: Profile) -> None:
    cert = certs[Kind.SIGNING, profile]
    assert personal_data_of(cert) == PERSON
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == PERSON.name
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == subject_identifier(cert.serial_number)
    assert not cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


@pytest.mark.parametrize("profile", list(Profile))
def test_auth_certificate_carries_no_personal_data(certs: dict, profile: Profile) -> None:
    cert = certs[Kind.AUTH, profile]
    assert personal_data_of(cert) is None
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [(a.oid, a.value) for a in cert.subject] == [
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.COMMON_NAME, subject_identifier(cert.serial_number)),
    ]
    der = cert.public_bytes(DER)
    for item in (PERSON.name, PERSON.address, PERSON.sex, PERSON.birth_date.isoformat()):
        assert item.encode() not in der


def test_personal_data_is_validated() -> None:
    with pytest.raises(ValueError, match="name must be a non-empty"):
        PersonalData(name=" ", address="a", birth_date=date(2000, 1, 1), sex="F")
    with pytest.raises(ValueError, match="at most 64"):
        PersonalData(name="x" * 65, address="a", birth_date=date(2000, 1, 1), sex="F")
    with pytest.raises(ValueError, match=r"datetime\.date"):
        PersonalData(name="n", address="a", birth_date=datetime(2000, 1, 1, tzinfo=UTC), sex="F")


# --- issuance refusals ------------------------------------------------------------------------------------


def test_serial_reuse_is_refused_across_kinds_and_profiles(ca: JpkiCa, subject_keys: list) -> None:
    # CA-2: serials never collide between card and phone certificates.
    serial = fresh_serial()
    issue(ca, subject_keys[0], Kind.SIGNING, Profile.CARD, serial=serial)
    assert serial in ca.issued_serials
    for kind, profile in COMBOS:
        with pytest.raises(ValueError, match=f"serial {serial} was already issued.*allocate a fresh one"):
            issue(ca, subject_keys[1], kind, profile, serial=serial)


def test_serials_known_at_construction_are_refused(ca: JpkiCa, subject_keys: list) -> None:
    pem = ca.to_pem()
    reloaded = JpkiCa.from_pem(signing=pem[Kind.SIGNING], auth=pem[Kind.AUTH], issued_serials=[77, 78])
    with pytest.raises(ValueError, match="already issued"):
        issue(reloaded, subject_keys[0], Kind.AUTH, Profile.PHONE, serial=78)


def test_issue_refuses_bad_input(ca: JpkiCa, subject_keys: list) -> None:
    key = subject_keys[0].public_key()
    ok = {"kind": Kind.AUTH, "profile": Profile.PHONE, "public_key": key, "not_before": NOT_BEFORE, "not_after": NOT_AFTER}
    cases: list[tuple[dict, str]] = [
        ({"not_before": NOT_BEFORE.replace(tzinfo=None)}, "timezone-aware"),
        ({"not_after": NOT_BEFORE}, "earlier than not_after"),
        ({"not_after": datetime(2070, 1, 1, tzinfo=UTC)}, "outside the auth CA's own"),
        ({"public_key": rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()}, "RSA-2048"),
        ({"personal": PERSON}, "carries no personal data"),
        ({"kind": Kind.SIGNING}, "basic four"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            ca.issue(**{**ok, **change}, serial=fresh_serial())
    for bad in (0, -1, 1 << 159, True):
        with pytest.raises(ValueError, match=r"2\*\*159"):
            ca.issue(**ok, serial=bad)
    with pytest.raises(TypeError, match="Profile"):
        ca.issue(**{**ok, "profile": "phone"}, serial=fresh_serial())


# --- openssl on every certificate -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "profile"), COMBOS)
def test_openssl_parses_and_verifies_every_certificate(
    certs: dict, ca: JpkiCa, kind: Kind, profile: Profile, openssl: str, tmp_path: Path
) -> None:
    cert = write(tmp_path / "cert.pem", certs[kind, profile])
    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    other = Kind.AUTH if kind is Kind.SIGNING else Kind.SIGNING
    other_pem = write(tmp_path / "other.pem", ca.ca(other).cert_pem)
    text = run(openssl, "x509", "-noout", "-text", "-in", cert, cwd=tmp_path)
    assert text.returncode == 0, text.stdout
    assert POLICY_OIDS[kind, profile].dotted_string in text.stdout
    assert crl_url(kind=kind, profile=profile) in text.stdout and ocsp_url(kind=kind, profile=profile) in text.stdout
    assert "sha256WithRSAEncryption" in text.stdout
    assert ("Digital Signature, Non Repudiation" if kind is Kind.SIGNING else "Digital Signature\n") in text.stdout
    verify = run(openssl, "verify", "-CAfile", ca_pem, cert, cwd=tmp_path)
    assert verify.returncode == 0 and "cert.pem: OK" in verify.stdout, verify.stdout
    wrong = run(openssl, "verify", "-CAfile", other_pem, cert, cwd=tmp_path)
    assert wrong.returncode != 0, wrong.stdout


# --- CRLs (CA-4, REV-4, SUS-1, SUS-3) ------------------------------------------------------------------


def test_every_revocation_reason_has_a_code() -> None:
    assert set(REASON_CODES) == set(RevocationReason)
    assert reason_code(RevocationReason.DATA_CHANGE) is x509.ReasonFlags.affiliation_changed
    assert reason_code(RevocationReason.SUPERSEDED_AFTER_HOLD) is x509.ReasonFlags.superseded
    assert reason_code(RevocationReason.DEVICE_STOPPED) is x509.ReasonFlags.cessation_of_operation
    for cause in HoldCause:
        assert reason_code(cause) is x509.ReasonFlags.certificate_hold
    with pytest.raises(TypeError, match="HoldCause"):
        reason_code("superseded")  # type: ignore[arg-type]


def test_revoked_phone_certificate_is_on_the_phone_crl_only(ca: JpkiCa, subject_keys: list, openssl: str, tmp_path: Path) -> None:
    # REV-4, CA-4: revocation of a phone certificate is published on the phone CRL.
    kind = Kind.SIGNING
    revoked = issue(ca, subject_keys[0], kind, Profile.PHONE)
    good_phone = issue(ca, subject_keys[1], kind, Profile.PHONE)
    good_card = issue(ca, subject_keys[1], kind, Profile.CARD)
    entry = CrlEntry(serial=revoked.serial_number, revoked_at=NOW - timedelta(hours=1), reason=RevocationReason.DEVICE_STOPPED)
    phone_crl = crl(ca, kind, Profile.PHONE, [entry])
    card_crl = crl(ca, kind, Profile.CARD, [])
    assert phone_crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None
    assert card_crl.get_revoked_certificate_by_serial_number(revoked.serial_number) is None
    assert phone_crl.is_signature_valid(ca.ca(kind).key.public_key())

    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    phone_crl_pem = write(tmp_path / "phone.crl", phone_crl)
    card_crl_pem = write(tmp_path / "card.crl", card_crl)
    for path in (phone_crl_pem, card_crl_pem):
        out = run(openssl, "crl", "-noout", "-text", "-CAfile", ca_pem, "-in", path, cwd=tmp_path)
        assert out.returncode == 0 and "verify OK" in out.stdout, out.stdout
    text = run(openssl, "crl", "-noout", "-text", "-in", phone_crl_pem, cwd=tmp_path).stdout
    assert f"Serial Number: {revoked.serial_number:02X}" in text and "Cessation Of Operation" in text
    assert crl_url(kind=kind, profile=Profile.PHONE) in text and "Only User Certificates" in text

    def verify(cert: x509.Certificate, *crl_paths: Path) -> subprocess.CompletedProcess[str]:
        path = write(tmp_path / f"{cert.serial_number}.pem", cert)
        crl_args = [a for p in crl_paths for a in ("-CRLfile", p)]
        return run(openssl, "verify", "-crl_check", "-CAfile", ca_pem, *crl_args, path, cwd=tmp_path)

    out = verify(revoked, phone_crl_pem, card_crl_pem)
    assert out.returncode != 0 and "certificate revoked" in out.stdout, out.stdout
    out = verify(good_phone, phone_crl_pem)
    assert out.returncode == 0 and ": OK" in out.stdout, out.stdout
    out = verify(good_card, card_crl_pem)
    assert out.returncode == 0 and ": OK" in out.stdout, out.stdout
    # A partitioned CRL: the phone CRL says nothing about card certificates (SP-1).
    out = verify(good_card, phone_crl_pem)
    assert out.returncode != 0 and "different CRL scope" in out.stdout, out.stdout


def test_crl_reason_codes_hold_number_and_aki(ca: JpkiCa, openssl: str, tmp_path: Path) -> None:
    kind, profile = Kind.AUTH, Profile.CARD
    entries = [CrlEntry(serial=100 + i, revoked_at=NOW - timedelta(hours=2), reason=reason) for i, reason in enumerate(RevocationReason)]
    entries.append(CrlEntry(serial=200, revoked_at=NOW - timedelta(hours=1), reason=HoldCause.CARD_LOST))
    built = crl(ca, kind, profile, entries, number=42)
    assert built.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert built.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    aki = built.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.ca(kind).certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    idp = built.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and [n.value for n in idp.value.full_name] == [crl_url(kind=kind, profile=profile)]
    for entry in entries:
        revoked = built.get_revoked_certificate_by_serial_number(entry.serial)
        assert revoked is not None and revoked.revocation_date_utc == entry.revoked_at
        try:
            written = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            written = x509.ReasonFlags.unspecified  # RFC 5280 5.3.1: omitted rather than unspecified
        assert written is reason_code(entry.reason)
    crl_pem = write(tmp_path / "auth-card.crl", built)
    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    out = run(openssl, "crl", "-noout", "-text", "-CAfile", ca_pem, "-in", crl_pem, cwd=tmp_path)
    assert out.returncode == 0 and "verify OK" in out.stdout, out.stdout
    for label in ("Certificate Hold", "Superseded", "Cessation Of Operation", "Affiliation Changed", "CRL Number", "42"):
        assert label in out.stdout
    assert "Unspecified" not in out.stdout


def test_crl_tuples_are_accepted_and_output_is_deterministic(ca: JpkiCa) -> None:
    revoked_at = NOW - timedelta(hours=1)
    as_tuples = crl(ca, Kind.SIGNING, Profile.CARD, [(9, revoked_at, RevocationReason.SUPERSEDED), (8, revoked_at, HoldCause.CARD_LOST)])  # type: ignore[list-item]
    as_entries = crl(
        ca,
        Kind.SIGNING,
        Profile.CARD,
        [
            CrlEntry(serial=8, revoked_at=revoked_at, reason=HoldCause.CARD_LOST),
            CrlEntry(serial=9, revoked_at=revoked_at, reason=RevocationReason.SUPERSEDED),
        ],
    )
    assert as_tuples.public_bytes(DER) == as_entries.public_bytes(DER)


def test_auth_certificate_suspended_then_resumed(ca: JpkiCa, subject_keys: list, openssl: str, tmp_path: Path) -> None:
    # SUS-1: a lost phone's auth certificate is held (certificateHold); SUS-3: on resumption the entry goes away.
    kind, profile = Kind.AUTH, Profile.PHONE
    cert = issue(ca, subject_keys[0], kind, profile)
    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    cert_pem = write(tmp_path / "cert.pem", cert)
    hold = CrlEntry(serial=cert.serial_number, revoked_at=NOW - timedelta(hours=3), reason=HoldCause.PHONE_LOST)
    held_pem = write(tmp_path / "held.crl", crl(ca, kind, profile, [hold], number=7))
    out = run(openssl, "verify", "-crl_check", "-CAfile", ca_pem, "-CRLfile", held_pem, cert_pem, cwd=tmp_path)
    assert out.returncode != 0 and "certificate revoked" in out.stdout, out.stdout
    assert "Certificate Hold" in run(openssl, "crl", "-noout", "-text", "-in", held_pem, cwd=tmp_path).stdout
    resumed_pem = write(tmp_path / "resumed.crl", crl(ca, kind, profile, [], number=8))
    out = run(openssl, "verify", "-crl_check", "-CAfile", ca_pem, "-CRLfile", resumed_pem, cert_pem, cwd=tmp_path)
    assert out.returncode == 0 and "cert.pem: OK" in out.stdout, out.stdout


def test_build_crl_refuses_bad_input(ca: JpkiCa) -> None:
    at = NOW - timedelta(hours=1)
    twice = [CrlEntry(serial=5, revoked_at=at, reason=RevocationReason.SUPERSEDED)] * 2
    with pytest.raises(ValueError, match="appears twice"):
        crl(ca, Kind.SIGNING, Profile.CARD, twice)
    with pytest.raises(ValueError, match="leave it for the next CRL"):
        crl(ca, Kind.SIGNING, Profile.CARD, [CrlEntry(serial=5, revoked_at=NOW + timedelta(hours=1), reason=HoldCause.CARD_LOST)])
    with pytest.raises(ValueError, match="timezone-aware"):
        CrlEntry(serial=5, revoked_at=at.replace(tzinfo=None), reason=RevocationReason.SUPERSEDED)
    with pytest.raises(TypeError, match="RevocationReason or a HoldCause"):
        CrlEntry(serial=5, revoked_at=at, reason=CertStatus.REVOKED)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crl_number"):
        crl(ca, Kind.SIGNING, Profile.CARD, [], number=-1)
    with pytest.raises(ValueError, match="earlier than next_update"):
        ca.build_crl(kind=Kind.SIGNING, profile=Profile.CARD, entries=[], this_update=NOW, next_update=NOW, crl_number=1)


# --- OCSP (CA-4, REV-4, SUS-1) -------------------------------------------------------------------------

OCSP_CASES = [
    (CertStatus.ACTIVE, None, "good", None),
    (CertStatus.REVOKED, RevocationReason.SUPERSEDED, "revoked", "superseded"),
    (CertStatus.REVOKED, RevocationReason.DEVICE_STOPPED, "revoked", "cessationOfOperation"),
    (CertStatus.REVOKED, RevocationReason.USER_REQUEST, "revoked", None),
    (CertStatus.SUSPENDED, HoldCause.PHONE_LOST, "revoked", "certificateHold"),
]


@pytest.mark.parametrize(("status", "reason", "word", "reason_text"), OCSP_CASES)
@pytest.mark.parametrize("profile", list(Profile))
def test_ocsp_response_status_with_openssl(
    certs: dict,
    ca: JpkiCa,
    profile: Profile,
    status: CertStatus,
    reason: RevocationReason | HoldCause | None,
    word: str,
    reason_text: str | None,
    openssl: str,
    tmp_path: Path,
) -> None:
    kind = Kind.SIGNING if profile is Profile.PHONE else Kind.AUTH
    cert = certs[kind, profile]
    revoked_at = None if status is CertStatus.ACTIVE else NOW - timedelta(hours=1)
    response = ca.build_ocsp_response(
        kind=kind,
        request=cert,
        status=status,
        this_update=NOW - timedelta(minutes=1),
        next_update=NOW + timedelta(hours=1),
        revoked_at=revoked_at,
        reason=reason,
    )
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == cert.serial_number
    assert response.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    ca.ca(kind).key.public_key().verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    if status is CertStatus.ACTIVE:
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    else:
        assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_time_utc == revoked_at
    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    cert_pem = write(tmp_path / "cert.pem", cert)
    resp = write(tmp_path / "resp.der", response.public_bytes(DER))
    out = run(
        openssl, "ocsp", "-respin", resp, "-CAfile", ca_pem, "-issuer", ca_pem, "-cert", cert_pem, "-resp_text", "-no_nonce", cwd=tmp_path
    )
    assert out.returncode == 0, out.stdout
    assert "Response verify OK" in out.stdout, out.stdout
    assert f"cert.pem: {word}" in out.stdout, out.stdout
    if reason_text is None:
        assert "Reason:" not in out.stdout
    else:
        assert f"Reason: {reason_text}" in out.stdout, out.stdout


def test_ocsp_answers_an_openssl_request_with_its_nonce(certs: dict, ca: JpkiCa, openssl: str, tmp_path: Path) -> None:
    kind, profile = Kind.AUTH, Profile.PHONE
    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    cert_pem = write(tmp_path / "cert.pem", certs[kind, profile])
    req = tmp_path / "req.der"
    made = run(openssl, "ocsp", "-issuer", ca_pem, "-cert", cert_pem, "-reqout", req, cwd=tmp_path)
    assert made.returncode == 0, made.stdout
    response = ca.build_ocsp_response(kind=kind, request=req.read_bytes(), status=CertStatus.ACTIVE, this_update=NOW - timedelta(minutes=1))
    request_nonce = ocsp.load_der_ocsp_request(req.read_bytes()).extensions.get_extension_for_class(x509.OCSPNonce).value
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value == request_nonce
    resp = write(tmp_path / "resp.der", response.public_bytes(DER))
    out = run(openssl, "ocsp", "-reqin", req, "-respin", resp, "-CAfile", ca_pem, "-issuer", ca_pem, "-resp_text", cwd=tmp_path)
    assert out.returncode == 0 and "Response verify OK" in out.stdout, out.stdout
    assert "Nonce Verify error" not in out.stdout and "no nonce" not in out.stdout
    assert "Cert Status: good" in out.stdout


def test_ocsp_request_helper_round_trip(certs: dict, ca: JpkiCa, openssl: str, tmp_path: Path) -> None:
    kind, profile = Kind.SIGNING, Profile.CARD
    cert = certs[kind, profile]
    request = build_ocsp_request(certificate=cert, issuer=ca.ca(kind).certificate, nonce=b"mjpki-nonce-0001")
    assert request.serial_number == cert.serial_number
    response = ca.build_ocsp_response(
        kind=kind,
        request=request.public_bytes(DER),
        status=CertStatus.REVOKED,
        this_update=NOW,
        revoked_at=NOW - timedelta(days=1),
        reason=RevocationReason.DATA_CHANGE,
    )
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"mjpki-nonce-0001"
    assert response.revocation_reason is x509.ReasonFlags.affiliation_changed
    ca_pem = write(tmp_path / "ca.pem", ca.ca(kind).cert_pem)
    cert_pem = write(tmp_path / "cert.pem", cert)
    resp = write(tmp_path / "resp.der", response.public_bytes(DER))
    out = run(openssl, "ocsp", "-respin", resp, "-CAfile", ca_pem, "-issuer", ca_pem, "-cert", cert_pem, "-no_nonce", cwd=tmp_path)
    assert out.returncode == 0 and "Response verify OK" in out.stdout and "cert.pem: revoked" in out.stdout, out.stdout
    assert "affiliationChanged" in out.stdout
    unknown = ca.build_ocsp_response(kind=kind, request=request, status=None, this_update=NOW)
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_ocsp_refuses_the_wrong_ca_and_bad_status(certs: dict, ca: JpkiCa) -> None:
    cert = certs[Kind.SIGNING, Profile.PHONE]
    request = build_ocsp_request(certificate=cert, issuer=ca.ca(Kind.SIGNING).certificate)
    with pytest.raises(ValueError, match=r"answer with kind=Kind\.SIGNING"):
        ca.build_ocsp_response(kind=Kind.AUTH, request=request, status=CertStatus.ACTIVE, this_update=NOW)
    with pytest.raises(ValueError, match="was not issued by the auth CA"):
        ca.build_ocsp_response(kind=Kind.AUTH, request=cert, status=CertStatus.ACTIVE, this_update=NOW)
    at = NOW - timedelta(hours=1)
    bad: list[tuple[dict, str]] = [
        ({"status": CertStatus.ACTIVE, "reason": RevocationReason.SUPERSEDED}, "takes no revoked_at"),
        ({"status": CertStatus.REVOKED, "reason": RevocationReason.SUPERSEDED}, "needs revoked_at"),
        ({"status": CertStatus.REVOKED, "revoked_at": at, "reason": HoldCause.PHONE_LOST}, "needs reason=RevocationReason"),
        ({"status": CertStatus.SUSPENDED, "revoked_at": at, "reason": RevocationReason.SUPERSEDED}, "HoldCause"),
        ({"status": CertStatus.SUSPENDED, "revoked_at": NOW + timedelta(hours=1)}, "after this_update"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            ca.build_ocsp_response(kind=Kind.SIGNING, request=cert, this_update=NOW, **kwargs)


# --- persistence and determinism ----------------------------------------------------------------------


@pytest.mark.parametrize("password", [None, b"correct horse"])
def test_pem_round_trip_gives_the_same_ca_and_identical_output(ca: JpkiCa, subject_keys: list, password: bytes | None) -> None:
    pem = ca.to_pem(password=password)
    if password:
        assert b"ENCRYPTED" in pem[Kind.SIGNING].key_pem
    reloaded = JpkiCa.from_pem(signing=pem[Kind.SIGNING], auth=pem[Kind.AUTH], password=password)
    for kind in Kind:
        assert reloaded.ca(kind).certificate == ca.ca(kind).certificate
        assert reloaded.ca(kind).key.private_numbers() == ca.ca(kind).key.private_numbers()
    # Same keys and inputs give byte-identical certificates and CRLs (PKCS#1 v1.5 is deterministic).
    twin = JpkiCa.generate(signing_key=ca.ca(Kind.SIGNING).key, auth_key=ca.ca(Kind.AUTH).key)
    assert twin.ca(Kind.SIGNING).certificate == ca.ca(Kind.SIGNING).certificate
    serial = fresh_serial()
    a = issue(reloaded, subject_keys[0], Kind.SIGNING, Profile.PHONE, serial=serial)
    b = issue(twin, subject_keys[0], Kind.SIGNING, Profile.PHONE, serial=serial)
    assert a.public_bytes(DER) == b.public_bytes(DER)
    entries = [CrlEntry(serial=serial, revoked_at=NOW - timedelta(hours=1), reason=RevocationReason.CASCADE)]
    assert crl(reloaded, Kind.SIGNING, Profile.PHONE, entries).public_bytes(DER) == crl(
        twin, Kind.SIGNING, Profile.PHONE, entries
    ).public_bytes(DER)


def test_loading_checks_that_key_certificate_and_kind_belong_together(ca: JpkiCa) -> None:
    pem = ca.to_pem()
    with pytest.raises(ValueError, match="swap the signing and auth"):
        JpkiCa.from_pem(signing=pem[Kind.AUTH], auth=pem[Kind.SIGNING])
    mixed = type(pem[Kind.SIGNING])(key_pem=pem[Kind.AUTH].key_pem, cert_pem=pem[Kind.SIGNING].cert_pem)
    with pytest.raises(ValueError, match="does not belong to the given key"):
        IssuingCa.from_pem(kind=Kind.SIGNING, pem=mixed)
    with pytest.raises(ValueError, match="signing CA as signing="):
        JpkiCa(signing=ca.ca(Kind.AUTH), auth=ca.ca(Kind.SIGNING))
