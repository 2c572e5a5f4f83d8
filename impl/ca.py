"""The reference JPKI certificate authority: real X.509 certificates, CRLs and OCSP responses (pyca/cryptography).

Two CAs, one per kind (CA-1): the signing CA issues card and phone signing certificates, the
auth CA issues card and phone auth certificates, each with one RSA-2048 key shared by card and
phone certificates. Every certificate, CRL and OCSP response is signed sha256WithRSAEncryption
(RSASSA-PKCS1-v1_5, CA-5). Given the keys, issuance and CRLs are byte-for-byte deterministic
(PKCS#1 v1.5 signatures are); OCSP responses are not, as the library stamps producedAt itself.

Assumption (profile OIDs, CA-3): the real phone profile's parameters are not public, so a
certificate's profile is carried by its certificatePolicies extension, with one policy OID per
kind and profile under 1.3.6.1.4.1.32473, the private enterprise number that RFC 5612 reserves
for documentation (so it can never clash with a real policy):

    =========  =======  =============================  ==========================
    kind       profile  policy OID                     constant
    =========  =======  =============================  ==========================
    signing    card     1.3.6.1.4.1.32473.1.1.1.1      CARD_SIGNING_POLICY_OID
    signing    phone    1.3.6.1.4.1.32473.1.1.1.2      PHONE_SIGNING_POLICY_OID
    auth       card     1.3.6.1.4.1.32473.1.1.2.1      CARD_AUTH_POLICY_OID
    auth       phone    1.3.6.1.4.1.32473.1.1.2.2      PHONE_AUTH_POLICY_OID
    =========  =======  =============================  ==========================

Key usage is the same for both profiles (CA-3): signing digitalSignature + nonRepudiation,
auth digitalSignature. Each kind and profile has its own CRL distribution point and OCSP URL
(CA-4), under the reserved .invalid domain: http://crl.jpki.invalid/{sign|auth}/{card|phone}.crl
and http://ocsp.jpki.invalid/{sign|auth}/{card|phone} by default, or under a served base URL (PublicationPoints.served,
mjpki.impl.publish_server), where a CA certificate also names the CRL over itself. As card and phone CRLs come from the same
CA name and key, each CRL is a partitioned CRL and carries a critical issuingDistributionPoint
naming its URL, so a verifier cannot take the card CRL for the status of a phone certificate.

Personal data (the "basic four", 基本4情報): a signing certificate's subject is C=JP, CN=<name>,
serialNumber=<subject identifier>; address, birth date (ISO 8601, YYYY-MM-DD) and sex are
UTF8String otherName entries of a non-critical subjectAltName (RFC 5280 4.2.1.6), under the same
documentation arc: address 1.3.6.1.4.1.32473.1.2.1, birth date .2.2, sex .2.3. An auth
certificate's subject is C=JP, CN=<subject identifier> (the serial in hex) and it has no
subjectAltName: it carries no personal data.

Revocation reasons (the caller keeps the status records and passes CRL entries in): RFC 5280
5.3.1 asks to omit the reasonCode rather than write unspecified, so "unspecified" entries and
OCSP answers carry no reason at all.

    ======================  ====================  =============================================
    reason                  X.509 CRLReason       why
    ======================  ====================  =============================================
    USER_REQUEST            unspecified (absent)  the user need not say why (REV-1)
    DATA_CHANGE             affiliationChanged    name or address changed; no key compromise
    SUPERSEDED              superseded            renewal or re-issuance (VAL-3, ISS-4)
    SUPERSEDED_AFTER_HOLD   superseded            found card, signing certificate re-issued
    DEVICE_STOPPED          cessationOfOperation  model change, transfer, sale, disposal (REV-3)
    CASCADE                 cessationOfOperation  the linked card certificate went (REV-2)
    SUSPENDED_SIGNING       unspecified (absent)  a held signing certificate is not resumed
    any HoldCause           certificateHold       suspension (SUS-1, SUS-2); on resumption the
                                                  entry is simply no longer passed (SUS-3)
    ======================  ====================  =============================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from mjpki.spec.domain import CertStatus, HoldCause, Kind, Profile, RevocationReason

__all__ = [
    # OIDs, URLs, names
    "CARD_SIGNING_POLICY_OID",
    "PHONE_SIGNING_POLICY_OID",
    "CARD_AUTH_POLICY_OID",
    "PHONE_AUTH_POLICY_OID",
    "POLICY_OIDS",
    "ADDRESS_OID",
    "BIRTH_DATE_OID",
    "SEX_OID",
    "KEY_SIZE",
    "CA_NOT_BEFORE",
    "CA_NOT_AFTER",
    "PublicationPoints",
    "DEFAULT_POINTS",
    "crl_url",
    "ocsp_url",
    "ca_name",
    "subject_identifier",
    # reasons
    "REASON_CODES",
    "reason_code",
    # values
    "PersonalData",
    "CrlEntry",
    "CaPem",
    "IssuingCa",
    # the CA
    "JpkiCa",
    # reading certificates back
    "profile_of",
    "kind_of",
    "personal_data_of",
    # OCSP client side
    "build_ocsp_request",
]

_ARC = "1.3.6.1.4.1.32473.1"  # RFC 5612 documentation PEN; .1 = mjpki

CARD_SIGNING_POLICY_OID = x509.ObjectIdentifier(f"{_ARC}.1.1.1")
"""certificatePolicies OID of a card signing certificate (assumption, CA-3)."""
PHONE_SIGNING_POLICY_OID = x509.ObjectIdentifier(f"{_ARC}.1.1.2")
"""certificatePolicies OID of a phone signing certificate (assumption, CA-3)."""
CARD_AUTH_POLICY_OID = x509.ObjectIdentifier(f"{_ARC}.1.2.1")
"""certificatePolicies OID of a card auth certificate (assumption, CA-3)."""
PHONE_AUTH_POLICY_OID = x509.ObjectIdentifier(f"{_ARC}.1.2.2")
"""certificatePolicies OID of a phone auth certificate (assumption, CA-3)."""

POLICY_OIDS: Mapping[tuple[Kind, Profile], x509.ObjectIdentifier] = MappingProxyType(
    {
        (Kind.SIGNING, Profile.CARD): CARD_SIGNING_POLICY_OID,
        (Kind.SIGNING, Profile.PHONE): PHONE_SIGNING_POLICY_OID,
        (Kind.AUTH, Profile.CARD): CARD_AUTH_POLICY_OID,
        (Kind.AUTH, Profile.PHONE): PHONE_AUTH_POLICY_OID,
    }
)
"""The policy OID of each kind and profile; profile_of and kind_of read it back."""

ADDRESS_OID = x509.ObjectIdentifier(f"{_ARC}.2.1")
"""subjectAltName otherName type of the holder's address (UTF8String)."""
BIRTH_DATE_OID = x509.ObjectIdentifier(f"{_ARC}.2.2")
"""subjectAltName otherName type of the holder's birth date (UTF8String, YYYY-MM-DD)."""
SEX_OID = x509.ObjectIdentifier(f"{_ARC}.2.3")
"""subjectAltName otherName type of the holder's sex (UTF8String)."""

KEY_SIZE = 2048
"""RSA modulus size of every CA and subject key (CA-5)."""
CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
"""Default start of the CA certificates' validity."""
CA_NOT_AFTER = datetime(2060, 1, 1, tzinfo=UTC)
"""Default end of the CA certificates' validity (covers every 5-year card certificate of the spec)."""

_PUBLIC_EXPONENT = 65537
_MAX_SERIAL = 1 << 159  # RFC 5280 4.1.2.2: at most 20 octets, positive
_KIND_PATH = MappingProxyType({Kind.SIGNING: "sign", Kind.AUTH: "auth"})
_CA_OU = MappingProxyType({Kind.SIGNING: "JPKI for digital signature", Kind.AUTH: "JPKI for user authentication"})
_CA_CN = MappingProxyType({Kind.SIGNING: "mjpki reference signing CA", Kind.AUTH: "mjpki reference auth CA"})
_SIGNATURE_HASH = hashes.SHA256()  # with RSA keys: sha256WithRSAEncryption, PKCS#1 v1.5 (CA-5)


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicationPoints:
    """Where the CA publishes: the base URLs of its CRL distribution points and OCSP responders (CA-4).

    The default names the reserved .invalid domain (nothing answers there); `served(base)` names a real endpoint such
    as mjpki.impl.publish_server's, e.g. http://127.0.0.1:8123/crl/sign/phone.crl and http://127.0.0.1:8123/ocsp/sign/phone.
    """

    crl_base: str = "http://crl.jpki.invalid"
    ocsp_base: str = "http://ocsp.jpki.invalid"

    def __post_init__(self) -> None:
        for name in ("crl_base", "ocsp_base"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith(("http://", "https://")) or value.endswith("/"):
                raise ValueError(f"PublicationPoints.{name} must be an http(s) URL without a trailing slash, got {value!r}")

    @classmethod
    def served(cls, base: str) -> PublicationPoints:
        """The points of a server at base (e.g. http://127.0.0.1:8123): CRLs under /crl, OCSP under /ocsp."""
        base = base.rstrip("/")
        return cls(crl_base=f"{base}/crl", ocsp_base=f"{base}/ocsp")

    def crl(self, *, kind: Kind, profile: Profile) -> str:
        """The CRL distribution point of certificates of this kind and profile (CA-4)."""
        return f"{self.crl_base}/{_KIND_PATH[kind]}/{profile.value}.crl"

    def ocsp(self, *, kind: Kind, profile: Profile) -> str:
        """The OCSP responder URL of certificates of this kind and profile (CA-4)."""
        return f"{self.ocsp_base}/{_KIND_PATH[kind]}/{profile.value}"

    def ca_crl(self, kind: Kind) -> str:
        """The distribution point of the CRL over the CA certificate of this kind itself."""
        return f"{self.crl_base}/{_KIND_PATH[kind]}/ca.crl"


DEFAULT_POINTS = PublicationPoints()
"""The publication points under the reserved .invalid domain, for a CA that is not served."""


def crl_url(*, kind: Kind, profile: Profile, points: PublicationPoints = DEFAULT_POINTS) -> str:
    """The CRL distribution point of certificates of this kind and profile (CA-4)."""
    return points.crl(kind=kind, profile=profile)


def ocsp_url(*, kind: Kind, profile: Profile, points: PublicationPoints = DEFAULT_POINTS) -> str:
    """The OCSP responder URL of certificates of this kind and profile (CA-4)."""
    return points.ocsp(kind=kind, profile=profile)


def ca_name(kind: Kind) -> x509.Name:
    """The subject (and issuer) name of the CA of this kind."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CA_OU[kind]),
            x509.NameAttribute(NameOID.COMMON_NAME, _CA_CN[kind]),
        ]
    )


def subject_identifier(serial: int) -> str:
    """The serial-like identifier in an end-entity subject: the serial number in upper-case hex."""
    return f"{serial:016X}"


# --- reasons -----------------------------------------------------------------------------------

REASON_CODES: Mapping[RevocationReason, x509.ReasonFlags] = MappingProxyType(
    {
        RevocationReason.USER_REQUEST: x509.ReasonFlags.unspecified,
        RevocationReason.DATA_CHANGE: x509.ReasonFlags.affiliation_changed,
        RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
        RevocationReason.SUPERSEDED_AFTER_HOLD: x509.ReasonFlags.superseded,
        RevocationReason.DEVICE_STOPPED: x509.ReasonFlags.cessation_of_operation,
        RevocationReason.CASCADE: x509.ReasonFlags.cessation_of_operation,
        RevocationReason.SUSPENDED_SIGNING: x509.ReasonFlags.unspecified,
    }
)
"""The X.509 CRLReason of each revocation reason (the table in the module docstring)."""


def reason_code(reason: RevocationReason | HoldCause) -> x509.ReasonFlags:
    """The X.509 CRLReason of a revocation reason, or certificateHold for any suspension cause."""
    if isinstance(reason, HoldCause):
        return x509.ReasonFlags.certificate_hold
    if isinstance(reason, RevocationReason):
        return REASON_CODES[reason]
    raise TypeError(f"expected a RevocationReason or a HoldCause (for a suspension), got {reason!r}")


def _reason_extension_value(reason: RevocationReason | HoldCause) -> x509.ReasonFlags | None:
    """The reason to write, or None where RFC 5280 5.3.1 says to omit an unspecified one."""
    code = reason_code(reason)
    return None if code is x509.ReasonFlags.unspecified else code


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonalData:
    """The basic four data items (基本4情報) a signing certificate carries: name, address, birth date, sex."""

    name: str
    address: str
    birth_date: date
    sex: str

    def __post_init__(self) -> None:
        for field, value in (("name", self.name), ("address", self.address), ("sex", self.sex)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"PersonalData.{field} must be a non-empty string, got {value!r}")
        if len(self.name) > 64:
            raise ValueError(f"PersonalData.name goes into the subject CN, at most 64 characters (RFC 5280); got {len(self.name)}")
        if not isinstance(self.birth_date, date) or isinstance(self.birth_date, datetime):
            raise ValueError(f"PersonalData.birth_date must be a datetime.date (not a datetime), got {self.birth_date!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrlEntry:
    """One CRL entry: a revoked serial (reason a RevocationReason) or a suspended one (reason its HoldCause)."""

    serial: int
    revoked_at: datetime
    reason: RevocationReason | HoldCause

    def __post_init__(self) -> None:
        _check_serial(self.serial)
        object.__setattr__(self, "revoked_at", _utc(self.revoked_at, what="CrlEntry.revoked_at"))
        reason_code(self.reason)  # type check with a clear message


@dataclass(frozen=True, slots=True, kw_only=True)
class CaPem:
    """One CA's key and certificate as PEM, for a store to persist (key PKCS#8, encrypted if a password was given)."""

    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuingCa:
    """One JPKI CA: its kind, its RSA-2048 key and its self-signed certificate (CA-1, CA-5)."""

    kind: Kind
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            raise TypeError(f"IssuingCa.kind must be a Kind, got {self.kind!r}")
        if not isinstance(self.key, rsa.RSAPrivateKey):
            raise ValueError(f"the {self.kind.value} CA key must be an RSA private key (CA-5), got {type(self.key).__name__}")
        _check_rsa_2048(self.key.public_key(), what="the CA key")
        if self.certificate.public_key() != self.key.public_key():
            raise ValueError(f"the {self.kind.value} CA certificate does not belong to the given key: pass the matching pair")
        if self.certificate.subject != ca_name(self.kind) or self.certificate.issuer != ca_name(self.kind):
            raise ValueError(
                f"the certificate is not a self-signed {self.kind.value} CA certificate "
                f"(subject {self.certificate.subject.rfc4514_string()}); did you swap the signing and auth CAs?"
            )

    @classmethod
    def create(
        cls,
        *,
        kind: Kind,
        key: rsa.RSAPrivateKey | None = None,
        not_before: datetime = CA_NOT_BEFORE,
        not_after: datetime = CA_NOT_AFTER,
        crl_point: str | None = None,
    ) -> IssuingCa:
        """A CA of this kind with a self-signed certificate; generates an RSA-2048 key unless one is given.

        crl_point: the distribution point of the CRL over this CA certificate, written into it as a CRLDP (a verifier
        that checks every certificate of the path, `openssl verify -crl_check_all -crl_download`, fetches it there)."""
        if key is None:
            key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=KEY_SIZE)
        _check_rsa_2048(key.public_key(), what="the CA key")
        not_before = _utc(not_before, what="not_before")
        not_after = _utc(not_after, what="not_after")
        if not_before >= not_after:
            raise ValueError(f"CA not_before {not_before} must be earlier than not_after {not_after}")
        name = ca_name(kind)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_ca_serial(key))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        )
        if crl_point is not None:
            certificate = certificate.add_extension(_distribution_points(crl_point), critical=False)
        return cls(kind=kind, key=key, certificate=certificate.sign(key, _SIGNATURE_HASH))

    def to_pem(self, *, password: bytes | None = None) -> CaPem:
        """The key (PKCS#8, encrypted with the password if given) and the certificate as PEM."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        return CaPem(key_pem=key_pem, cert_pem=self.certificate.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def from_pem(cls, *, kind: Kind, pem: CaPem, password: bytes | None = None) -> IssuingCa:
        """A CA loaded back from to_pem's output; checks key, certificate and kind belong together."""
        key = serialization.load_pem_private_key(pem.key_pem, password=password)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"the {kind.value} CA key PEM holds a {type(key).__name__}, not an RSA key (CA-5)")
        return cls(kind=kind, key=key, certificate=x509.load_pem_x509_certificate(pem.cert_pem))

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate as PEM (what a verifier puts in its trust store)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


# --- the CA ------------------------------------------------------------------------------------


class JpkiCa:
    """The JPKI system's two CAs: issues certificates and builds CRLs and OCSP responses from the caller's records."""

    def __init__(
        self, *, signing: IssuingCa, auth: IssuingCa, issued_serials: Iterable[int] = (), points: PublicationPoints = DEFAULT_POINTS
    ) -> None:
        if not isinstance(points, PublicationPoints):
            raise TypeError(f"points must be a PublicationPoints, got {points!r}")
        self.points = points
        """Where this CA publishes: the URLs its certificates name and its CRLs' issuingDistributionPoints carry."""
        if signing.kind is not Kind.SIGNING or auth.kind is not Kind.AUTH:
            raise ValueError(f"pass the signing CA as signing= and the auth CA as auth= (got {signing.kind.value}, {auth.kind.value})")
        if signing.key.public_key() == auth.key.public_key():
            raise ValueError("the signing and auth CAs must have different keys")
        self._cas: dict[Kind, IssuingCa] = {Kind.SIGNING: signing, Kind.AUTH: auth}
        self._issued: set[int] = set()
        for serial in issued_serials:
            self._issued.add(_check_serial(serial))

    @classmethod
    def generate(
        cls,
        *,
        signing_key: rsa.RSAPrivateKey | None = None,
        auth_key: rsa.RSAPrivateKey | None = None,
        not_before: datetime = CA_NOT_BEFORE,
        not_after: datetime = CA_NOT_AFTER,
        points: PublicationPoints | None = None,
    ) -> JpkiCa:
        """Both CAs, from the given keys or fresh RSA-2048 keys; same keys, dates and points give the same certificates.

        With points (a served CA), each CA certificate names the distribution point of the CRL over itself."""

        def make(kind: Kind, key: rsa.RSAPrivateKey | None) -> IssuingCa:
            point = None if points is None else points.ca_crl(kind)
            return IssuingCa.create(kind=kind, key=key, not_before=not_before, not_after=not_after, crl_point=point)

        return cls(signing=make(Kind.SIGNING, signing_key), auth=make(Kind.AUTH, auth_key), points=points or DEFAULT_POINTS)

    @classmethod
    def from_pem(
        cls,
        *,
        signing: CaPem,
        auth: CaPem,
        issued_serials: Iterable[int] = (),
        password: bytes | None = None,
        points: PublicationPoints = DEFAULT_POINTS,
    ) -> JpkiCa:
        """Both CAs loaded from PEM, with the serials already issued (so that none is reused, CA-2) and where they publish."""
        return cls(
            signing=IssuingCa.from_pem(kind=Kind.SIGNING, pem=signing, password=password),
            auth=IssuingCa.from_pem(kind=Kind.AUTH, pem=auth, password=password),
            issued_serials=issued_serials,
            points=points,
        )

    def to_pem(self, *, password: bytes | None = None) -> dict[Kind, CaPem]:
        """Both CAs' keys and certificates as PEM, by kind."""
        return {kind: ca.to_pem(password=password) for kind, ca in self._cas.items()}

    def ca(self, kind: Kind) -> IssuingCa:
        """The CA of this kind (signing or auth); the same for card and phone certificates (CA-1)."""
        if not isinstance(kind, Kind):
            raise TypeError(f"expected a Kind, got {kind!r}")
        return self._cas[kind]

    def names_issuer(self, request: ocsp.OCSPRequest, *, kind: Kind) -> bool:
        """True if the OCSP request's CertID names the CA of this kind as issuer."""
        return _names_issuer(request, self.ca(kind))

    @property
    def issued_serials(self) -> frozenset[int]:
        """Every serial this CA has issued or was told about at construction."""
        return frozenset(self._issued)

    def issue(
        self,
        *,
        kind: Kind,
        profile: Profile,
        serial: int,
        public_key: rsa.RSAPublicKey,
        not_before: datetime,
        not_after: datetime,
        personal: PersonalData | None = None,
    ) -> x509.Certificate:
        """An end-entity certificate for an RSA-2048 key; personal (the basic four) is required for signing, refused for auth."""
        ca = self.ca(kind)
        if not isinstance(profile, Profile):
            raise TypeError(f"expected a Profile, got {profile!r}")
        _check_serial(serial)
        if serial in self._issued:
            raise ValueError(
                f"serial {serial} was already issued by this CA; serials are unique across card and phone "
                "certificates of both kinds (CA-2): allocate a fresh one"
            )
        if serial == ca.certificate.serial_number:
            raise ValueError(f"serial {serial} is the {kind.value} CA certificate's own serial: allocate another one")
        _check_rsa_2048(public_key, what="the subject key")
        not_before = _utc(not_before, what="not_before")
        not_after = _utc(not_after, what="not_after")
        if not_before >= not_after:
            raise ValueError(f"not_before {not_before} must be earlier than not_after {not_after}")
        ca_from, ca_to = ca.certificate.not_valid_before_utc, ca.certificate.not_valid_after_utc
        if not_before < ca_from or not_after > ca_to:
            raise ValueError(
                f"validity {not_before} .. {not_after} is outside the {kind.value} CA's own ({ca_from} .. {ca_to}): "
                "shorten it, or create the CA with a longer validity"
            )
        if kind is Kind.SIGNING:
            if personal is None:
                raise ValueError("a signing certificate carries the basic four: pass personal=PersonalData(...)")
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.COMMON_NAME, personal.name),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, subject_identifier(serial)),
                ]
            )
        else:
            if personal is not None:
                raise ValueError("an auth certificate carries no personal data: leave personal out")
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.COMMON_NAME, subject_identifier(serial)),
                ]
            )
        ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, content_commitment=kind is Kind.SIGNING),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(POLICY_OIDS[kind, profile], None)]),
                critical=False,
            )
            .add_extension(
                _distribution_points(self.points.crl(kind=kind, profile=profile)),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.points.ocsp(kind=kind, profile=profile)),
                        )
                    ]
                ),
                critical=False,
            )
        )
        if personal is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.OtherName(ADDRESS_OID, _der_utf8(personal.address)),
                        x509.OtherName(BIRTH_DATE_OID, _der_utf8(personal.birth_date.isoformat())),
                        x509.OtherName(SEX_OID, _der_utf8(personal.sex)),
                    ]
                ),
                critical=False,
            )
        certificate = builder.sign(ca.key, _SIGNATURE_HASH)
        self._issued.add(serial)
        return certificate

    def build_crl(
        self,
        *,
        kind: Kind,
        profile: Profile,
        entries: Iterable[CrlEntry | tuple[int, datetime, RevocationReason | HoldCause]],
        this_update: datetime,
        next_update: datetime,
        crl_number: int,
    ) -> x509.CertificateRevocationList:
        """The CRL of this kind and profile (CA-4, REV-4), with the revoked and suspended serials the caller passes."""
        ca = self.ca(kind)
        if not isinstance(profile, Profile):
            raise TypeError(f"expected a Profile, got {profile!r}")
        this_update = _utc(this_update, what="this_update")
        next_update = _utc(next_update, what="next_update")
        normalised = [_as_entry(e) for e in entries]
        seen: set[int] = set()
        for entry in normalised:
            if entry.serial in seen:
                raise ValueError(f"serial {entry.serial} appears twice in the CRL entries: pass one entry per certificate")
            seen.add(entry.serial)
            if entry.revoked_at > this_update:
                raise ValueError(
                    f"serial {entry.serial} was revoked at {entry.revoked_at}, after this_update {this_update}: leave it for the next CRL"
                )
        url = self.points.crl(kind=kind, profile=profile)
        builder = _crl_builder(ca, this_update=this_update, next_update=next_update, crl_number=crl_number, url=url, over_cas=False)
        for entry in sorted(normalised, key=lambda e: e.serial):
            revoked = x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
            code = _reason_extension_value(entry.reason)
            if code is not None:
                revoked = revoked.add_extension(x509.CRLReason(code), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        return builder.sign(ca.key, _SIGNATURE_HASH)

    def build_ca_crl(self, *, kind: Kind, this_update: datetime, next_update: datetime, crl_number: int) -> x509.CertificateRevocationList:
        """The CRL over the CA certificate of this kind itself: empty (the CA is in force), only for CA certificates."""
        # A verifier that checks every certificate of the path (openssl -crl_check_all) wants a CRL for the CA too.
        ca = self.ca(kind)
        this_update = _utc(this_update, what="this_update")
        next_update = _utc(next_update, what="next_update")
        url = self.points.ca_crl(kind)
        builder = _crl_builder(ca, this_update=this_update, next_update=next_update, crl_number=crl_number, url=url, over_cas=True)
        return builder.sign(ca.key, _SIGNATURE_HASH)

    def build_ocsp_response(
        self,
        *,
        kind: Kind,
        request: bytes | ocsp.OCSPRequest | x509.Certificate,
        status: CertStatus | None,
        this_update: datetime,
        next_update: datetime | None = None,
        revoked_at: datetime | None = None,
        reason: RevocationReason | HoldCause | None = None,
    ) -> ocsp.OCSPResponse:
        """A signed OCSP response by this kind's CA (its own responder) to a request (DER or parsed) or for a certificate."""
        # status ACTIVE answers good; REVOKED needs revoked_at and a RevocationReason; SUSPENDED needs
        # revoked_at (the time of the hold) and answers revoked/certificateHold; None answers unknown (a
        # serial the caller has no record of). One key answers for card and phone alike: which serials
        # the responder behind each profile's OCSP URL answers for is the caller's call (CA-4).
        ca = self.ca(kind)
        this_update = _utc(this_update, what="this_update")
        if next_update is not None:
            next_update = _utc(next_update, what="next_update")
            if this_update >= next_update:
                raise ValueError(f"this_update {this_update} must be earlier than next_update {next_update}")
        cert_status, revocation_time, revocation_reason = _ocsp_status(status, revoked_at, reason, this_update)
        builder = ocsp.OCSPResponseBuilder()
        if isinstance(request, x509.Certificate):
            self._check_issued_by(ca, request)
            builder = builder.add_response(
                cert=request,
                issuer=ca.certificate,
                algorithm=hashes.SHA1(),  # the CertID hash openssl and most clients use by default
                cert_status=cert_status,
                this_update=this_update,
                next_update=next_update,
                revocation_time=revocation_time,
                revocation_reason=revocation_reason,
            )
        else:
            parsed = ocsp.load_der_ocsp_request(request) if isinstance(request, bytes) else request
            if not isinstance(parsed, ocsp.OCSPRequest):
                raise TypeError(f"request must be DER bytes, an OCSPRequest or a Certificate, got {type(request).__name__}")
            if not _names_issuer(parsed, ca):
                other = next((k for k, c in self._cas.items() if k is not kind and _names_issuer(parsed, c)), None)
                hint = f"it is for the {other.value} CA: answer with kind={other}" if other else "it is for another CA"
                raise ValueError(f"the OCSP request does not name the {kind.value} CA as issuer; {hint}")
            builder = builder.add_response_by_hash(
                issuer_name_hash=parsed.issuer_name_hash,
                issuer_key_hash=parsed.issuer_key_hash,
                serial_number=parsed.serial_number,
                algorithm=parsed.hash_algorithm,
                cert_status=cert_status,
                this_update=this_update,
                next_update=next_update,
                revocation_time=revocation_time,
                revocation_reason=revocation_reason,
            )
            for extension in parsed.extensions:
                if isinstance(extension.value, x509.OCSPNonce):
                    builder = builder.add_extension(extension.value, critical=False)
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
        return builder.sign(ca.key, _SIGNATURE_HASH)

    @staticmethod
    def _check_issued_by(ca: IssuingCa, certificate: x509.Certificate) -> None:
        """Refuse a certificate the given CA did not sign."""
        try:
            certificate.verify_directly_issued_by(ca.certificate)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise ValueError(
                f"certificate serial {certificate.serial_number} was not issued by the {ca.kind.value} CA: "
                "ask the CA of its kind (see kind_of)"
            ) from exc


# --- reading certificates back ------------------------------------------------------------------


def _policy_match(certificate: x509.Certificate) -> tuple[Kind, Profile]:
    """The (kind, profile) whose policy OID the certificate carries; ValueError if none or several."""
    try:
        policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        raise ValueError(
            f"certificate {certificate.subject.rfc4514_string()} has no certificatePolicies: "
            "it is neither a card nor a phone certificate of this CA"
        ) from None
    present = {p.policy_identifier for p in policies}
    matches = [key for key, oid in POLICY_OIDS.items() if oid in present]
    if len(matches) != 1:
        found = ", ".join(oid.dotted_string for oid in sorted(present, key=lambda o: o.dotted_string)) or "none"
        raise ValueError(
            f"certificate {certificate.subject.rfc4514_string()} must carry exactly one JPKI profile policy OID "
            f"(card or phone, see POLICY_OIDS); found {found}"
        )
    return matches[0]


def profile_of(certificate: x509.Certificate) -> Profile:
    """Card or phone, read from the certificate's policy OID (CA-3, SP-1); ValueError for neither."""
    return _policy_match(certificate)[1]


def kind_of(certificate: x509.Certificate) -> Kind:
    """Signing or auth, read from the certificate's policy OID; ValueError for a certificate of neither profile."""
    return _policy_match(certificate)[0]


def personal_data_of(certificate: x509.Certificate) -> PersonalData | None:
    """The basic four a signing certificate carries, or None if it carries none (an auth certificate)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    values = {n.type_id: _read_der_utf8(n.value) for n in san.get_values_for_type(x509.OtherName)}
    ours = {ADDRESS_OID, BIRTH_DATE_OID, SEX_OID}
    if not ours & values.keys():
        return None
    if not ours <= values.keys():
        missing = ", ".join(sorted(oid.dotted_string for oid in ours - values.keys()))
        raise ValueError(f"certificate serial {certificate.serial_number} has only part of the basic four; missing {missing}")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise ValueError(f"certificate serial {certificate.serial_number} needs exactly one subject CN (the name)")
    return PersonalData(
        name=str(names[0].value),
        address=values[ADDRESS_OID],
        birth_date=date.fromisoformat(values[BIRTH_DATE_OID]),
        sex=values[SEX_OID],
    )


# --- OCSP client side --------------------------------------------------------------------------


def build_ocsp_request(
    *,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> ocsp.OCSPRequest:
    """An OCSP request for one certificate (CertID hash SHA-1 by default, as openssl uses), with an optional nonce."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build()


# --- helpers -----------------------------------------------------------------------------------


def _distribution_points(url: str) -> x509.CRLDistributionPoints:
    """A cRLDistributionPoints extension naming one URL."""
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None, crl_issuer=None)]
    )


def _utc(moment: datetime, *, what: str) -> datetime:
    """The moment in UTC, whole seconds; refuses naive datetimes."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, e.g. datetime(..., tzinfo=datetime.UTC); got naive {moment}")
    return moment.astimezone(UTC).replace(microsecond=0)


def _check_serial(serial: int) -> int:
    """The serial, if it is a positive int of at most 20 octets (RFC 5280 4.1.2.2)."""
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < _MAX_SERIAL:
        raise ValueError(f"a serial number must be an int in [1, 2**159) (RFC 5280 4.1.2.2), got {serial!r}")
    return serial


def _check_rsa_2048(public_key: object, *, what: str) -> None:
    """Refuse anything but an RSA-2048 public key (CA-5)."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError(f"{what} must be an RSA public key (CA-5), got {type(public_key).__name__}")
    if public_key.key_size != KEY_SIZE:
        raise ValueError(f"{what} must be RSA-{KEY_SIZE} (CA-5), got RSA-{public_key.key_size}")


def _ca_serial(key: rsa.RSAPrivateKey) -> int:
    """A deterministic serial for a CA certificate: 127 bits of the SHA-256 of its public key."""
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return (int.from_bytes(hashlib.sha256(spki).digest()[:16], "big") >> 1) or 1


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    """A keyUsage with the given bits; key_cert_sign also sets cRLSign (a CA signs its own CRLs)."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_builder(
    ca: IssuingCa, *, this_update: datetime, next_update: datetime, crl_number: int, url: str, over_cas: bool
) -> x509.CertificateRevocationListBuilder:
    """A CRL of this CA, checked and with its extensions, naming url as its issuing distribution point (RFC 5280 5.2).

    over_cas: the list covers CA certificates only (the CRL over the CA itself), else end-entity certificates only.
    """
    if this_update >= next_update:
        raise ValueError(f"this_update {this_update} must be earlier than next_update {next_update}")
    if isinstance(crl_number, bool) or not isinstance(crl_number, int) or not 0 <= crl_number < _MAX_SERIAL:
        raise ValueError(f"crl_number must be an int in [0, 2**159) (RFC 5280 5.2.3), got {crl_number!r}")
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.IssuingDistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                only_contains_user_certs=not over_cas,
                only_contains_ca_certs=over_cas,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            critical=True,
        )
    )


def _as_entry(entry: CrlEntry | tuple[int, datetime, RevocationReason | HoldCause]) -> CrlEntry:
    """A CrlEntry from a CrlEntry or a (serial, revoked_at, reason) tuple."""
    if isinstance(entry, CrlEntry):
        return entry
    try:
        serial, revoked_at, reason = entry
    except (TypeError, ValueError):
        raise TypeError(f"a CRL entry is a CrlEntry or a (serial, revoked_at, reason) tuple, got {entry!r}") from None
    return CrlEntry(serial=serial, revoked_at=revoked_at, reason=reason)


def _ocsp_status(
    status: CertStatus | None,
    revoked_at: datetime | None,
    reason: RevocationReason | HoldCause | None,
    this_update: datetime,
) -> tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]:
    """The OCSP certStatus, revocation time and reason for a record's status."""
    if status is None or status is CertStatus.ACTIVE:
        if revoked_at is not None or reason is not None:
            raise ValueError(f"status {status} takes no revoked_at or reason: pass CertStatus.REVOKED or SUSPENDED for those")
        return (ocsp.OCSPCertStatus.UNKNOWN if status is None else ocsp.OCSPCertStatus.GOOD), None, None
    if not isinstance(status, CertStatus):
        raise TypeError(f"status must be a CertStatus or None (unknown), got {status!r}")
    if revoked_at is None:
        raise ValueError(f"status {status.value} needs revoked_at (the time of the revocation or hold)")
    revoked_at = _utc(revoked_at, what="revoked_at")
    if revoked_at > this_update:
        raise ValueError(f"revoked_at {revoked_at} is after this_update {this_update}: the response cannot report it yet")
    if status is CertStatus.SUSPENDED:
        if reason is not None and not isinstance(reason, HoldCause):
            raise ValueError(f"a suspended certificate's reason is its HoldCause (or None), got {reason!r}")
        return ocsp.OCSPCertStatus.REVOKED, revoked_at, x509.ReasonFlags.certificate_hold
    if not isinstance(reason, RevocationReason):
        raise ValueError(f"a revoked certificate needs reason=RevocationReason.<...>, got {reason!r}")
    return ocsp.OCSPCertStatus.REVOKED, revoked_at, _reason_extension_value(reason)


def _names_issuer(request: ocsp.OCSPRequest, ca: IssuingCa) -> bool:
    """True if the request's CertID names this CA (issuer name hash and key hash, in the request's hash)."""
    algorithm = request.hash_algorithm
    name_hash = hashes.Hash(algorithm)
    name_hash.update(ca.certificate.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(ca.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    return name_hash.finalize() == request.issuer_name_hash and key_hash.finalize() == request.issuer_key_hash


def _der_length(n: int) -> bytes:
    """A DER length field."""
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_utf8(text: str) -> bytes:
    """The DER encoding of a UTF8String."""
    body = text.encode("utf-8")
    return b"\x0c" + _der_length(len(body)) + body


def _read_der_utf8(der: bytes) -> str:
    """The text of a DER UTF8String; ValueError for anything else."""
    if len(der) < 2 or der[0] != 0x0C:
        raise ValueError(f"expected a DER UTF8String, got {der[:8].hex()}...")
    first = der[1]
    if first < 0x80:
        length, start = first, 2
    else:
        count = first & 0x7F
        length, start = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    if start + length != len(der):
        raise ValueError("malformed DER UTF8String: its length does not match")
    return der[start:].decode("utf-8")
