"""Judge what a system publishes from its artefacts (CRLs, OCSP answers, certificates as DER), not from what it reports.

A system adapter with the optional `artefacts()` (and `ocsp(request)`) of `mjpki.adapters.artefacts` hands over its CA
certificates, the certificates it issued and its current CRLs. `verify_artefacts` checks them with `cryptography`:

- certificates: issued and signed by one of the CAs (CA-1), sha256WithRSAEncryption and RSA-2048 (CA-5), unique serials
  (CA-2), exactly one profile policy OID (CA-3, SP-1: a verifier that accepts only card certificates refuses a phone one
  and vice versa), one CRL distribution point per kind and profile, never shared across profiles (CA-4);
- CRLs: signed by their CA, current at the world's now (thisUpdate <= now < nextUpdate), an issuingDistributionPoint
  naming the point the certificates name, one list per point; each entry a serial the CA issued, on its own profile's
  list, certificateHold read as suspended and any other reason as revoked (CA-4, REV-4, SUS-1);
- OCSP (with `ocsp`): a serial the system never issued is never "good" (SP-1); each certificate's answer is signed by
  its CA, echoes the nonce, is current, and agrees with the CRLs (CA-4, REV-4).

From them it derives the published statuses and the certificate views; `judge` compares those with the system's own
observation (a disagreement is a finding: the system says one thing and publishes another) and runs the state
invariants on the observation rebuilt from the artefacts. Times in artefacts are read with ASM-ARTEFACT-TIME.

A judgement is a function of (world, observation, artefacts' bytes, the world's now, the OCSP answers' bytes): `judgement`
computes it from those alone, so nothing verified once is verified again. Certificates, CRLs, OCSP answers and signatures
are verified once per DER (and signature checks once per (issuer, tbs digest, signature)); the artefacts as a whole once
per (bytes, now); and `ArtefactJudge`, which a lockstep run uses after every step, hands back its last judgement when all
of those are as they were. Only the OCSP answers are asked for afresh each time (the system could answer otherwise).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, SignatureAlgorithmOID

from mjpki.adapters.artefacts import Artefacts
from mjpki.impl.ca import KEY_SIZE, kind_of, profile_of
from mjpki.properties.invariants import Violation, check_state
from mjpki.spec.clock import from_datetime, to_datetime
from mjpki.spec.domain import CertStatus, Kind, Profile, Serial
from mjpki.spec.observe import CertView, Observation
from mjpki.spec.world import World

__all__ = [
    "ARTEFACT_REQS",
    "FULL_EVERY",
    "OCSP_ROTATION",
    "Finding",
    "CertFacts",
    "Verified",
    "OcspAnswer",
    "verify_artefacts",
    "derived_observation",
    "compare_with_observation",
    "judgement",
    "judge",
    "ArtefactJudge",
]

ARTEFACT_REQS = frozenset({"CA-1", "CA-2", "CA-3", "CA-4", "CA-5", "REV-4", "SP-1"})
"""The requirements judged on verified artefacts when a system hands them over; the rest stay on self-report."""

FULL_EVERY = 16
"""ArtefactJudge asks OCSP about every certificate (and a serial never issued) on every FULL_EVERY-th step."""
OCSP_ROTATION = 1
"""ArtefactJudge asks OCSP, on every step, about this many certificates beyond the changed ones, in turn."""

_LIST_REQS = ("CA-4", "REV-4", "SP-1")
_SHA256_RSA = SignatureAlgorithmOID.RSA_WITH_SHA256


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing the artefacts show wrong, with the requirements it breaks."""

    reqs: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.message} [{', '.join(self.reqs)}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class CertFacts:
    """A certificate as its DER shows it: serial, kind and profile (policy OID), validity (spec minutes), key, points."""

    serial: Serial
    kind: Kind
    profile: Profile
    not_before: int
    not_after: int
    key: str
    """SHA-256 of the SubjectPublicKeyInfo, hex (what the reference's observation reports as a phone key)."""
    crl_point: str | None
    ocsp_point: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """What the artefacts show: the certificates, the published statuses derived from the CRLs, and the findings."""

    certs: tuple[CertFacts, ...]
    published: frozenset[tuple[Profile, Serial, CertStatus]]
    findings: tuple[Finding, ...]

    def cert(self, serial: Serial) -> CertFacts | None:
        """The certificate with this serial, if the artefacts hold it."""
        return next((c for c in self.certs if c.serial == serial), None)

    def status(self, serial: Serial) -> CertStatus:
        """The status the CRLs publish for a serial: REVOKED or SUSPENDED when listed, ACTIVE otherwise."""
        listed = {st for (_p, s, st) in self.published if s == serial}
        return CertStatus.REVOKED if CertStatus.REVOKED in listed else next(iter(listed), CertStatus.ACTIVE)


def _status_reqs(*statuses: CertStatus | None) -> tuple[str, ...]:
    """The requirements a disagreement about these statuses breaks: REV-4 for a revocation, SUS-4 for a hold."""
    reqs = (("REV-4",) if CertStatus.REVOKED in statuses else ()) + (("SUS-4",) if CertStatus.SUSPENDED in statuses else ())
    return reqs or ("REV-4",)


def _utc(t: int) -> datetime:
    """Spec time as the UTC instant artefacts carry (ASM-ARTEFACT-TIME: the spec's epoch read as UTC)."""
    return to_datetime(t).replace(tzinfo=UTC)


def _minutes(moment: datetime) -> int:
    """A UTC instant of an artefact as spec minutes (ASM-ARTEFACT-TIME)."""
    return from_datetime(moment.astimezone(UTC).replace(tzinfo=None))


_SIGNATURES: dict[tuple[x509.Certificate, bytes, bytes, str], bool] = {}
"""(issuer, SHA-256 of the signed bytes, signature, hash) -> verified: each signature is checked once per process."""
_SIGNATURES_KEPT = 16384


def _signed_by(issuer: x509.Certificate, signature: bytes, tbs: bytes, algorithm: hashes.HashAlgorithm | None) -> bool:
    """True if the issuer's RSA key made this PKCS#1 v1.5 signature over tbs (memoised: the answer cannot change)."""
    if algorithm is None:
        return False
    memo = (issuer, hashlib.sha256(tbs).digest(), signature, algorithm.name)
    known = _SIGNATURES.get(memo)
    if known is not None:
        return known
    key = issuer.public_key()
    good = isinstance(key, rsa.RSAPublicKey)
    if good:
        try:
            key.verify(signature, tbs, padding.PKCS1v15(), algorithm)  # type: ignore[union-attr]
        except InvalidSignature:
            good = False
    if len(_SIGNATURES) >= _SIGNATURES_KEPT:
        _SIGNATURES.clear()
    _SIGNATURES[memo] = good
    return good


def _uris(names: Iterable[x509.GeneralName] | None) -> tuple[str, ...]:
    return tuple(n.value for n in names or () if isinstance(n, x509.UniformResourceIdentifier))


def _load_cas(artefacts: Artefacts, out: list[Finding]) -> list[x509.Certificate]:
    cas: list[x509.Certificate] = []
    for i, der in enumerate(artefacts.ca_certs):
        try:
            ca = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            out.append(Finding(reqs=("CA-1",), message=f"CA certificate #{i} is not DER X.509 ({exc})"))
            continue
        key = ca.public_key()
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != KEY_SIZE or ca.signature_algorithm_oid != _SHA256_RSA:
            out.append(Finding(reqs=("CA-5",), message=f"CA certificate {ca.subject.rfc4514_string()} is not RSA-2048 sha256WithRSA"))
        cas.append(ca)
    if not cas:
        out.append(Finding(reqs=("CA-1",), message="the system hands over no CA certificate"))
    return cas


def _issuer(
    cas: list[x509.Certificate], name: x509.Name, signature: bytes, tbs: bytes, algorithm: hashes.HashAlgorithm | None
) -> x509.Certificate | None:
    return next((ca for ca in cas if ca.subject == name and _signed_by(ca, signature, tbs, algorithm)), None)


@functools.lru_cache(maxsize=4096)
def _analyse_cert(der: bytes, cas_der: tuple[bytes, ...]) -> tuple[CertFacts | None, int, tuple[Finding, ...]]:
    """One issued certificate's facts, the index of its issuing CA (-1: none) and its findings; cached by DER, since a
    certificate never changes once issued and every judgement of a run sees it again."""
    out: list[Finding] = []
    cas = [x509.load_der_x509_certificate(d) for d in cas_der]
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return None, -1, (Finding(reqs=("CA-1",), message=f"an issued certificate is not DER X.509 ({exc})"),)
    serial = cert.serial_number
    issuer = _issuer(cas, cert.issuer, cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm)
    if issuer is None:
        return None, -1, (Finding(reqs=("CA-1",), message=f"certificate {serial} is not signed by any of the system's CA certificates"),)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != KEY_SIZE or cert.signature_algorithm_oid != _SHA256_RSA:
        out.append(Finding(reqs=("CA-5",), message=f"certificate {serial} is not an RSA-{KEY_SIZE} key signed sha256WithRSA"))
    try:
        kind, profile = kind_of(cert), profile_of(cert)
    except ValueError as exc:  # a verifier could not tell card from phone
        return None, cas.index(issuer), (*out, Finding(reqs=("CA-3", "SP-1"), message=str(exc)))
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crl_points = tuple(u for dp in dps for u in _uris(dp.full_name))
    except x509.ExtensionNotFound:
        crl_points = ()
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp_points = tuple(u for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP for u in _uris([d.access_location]))
    except x509.ExtensionNotFound:
        ocsp_points = ()
    if len(crl_points) != 1:
        out.append(Finding(reqs=("CA-4", "SP-1"), message=f"certificate {serial} names {len(crl_points)} CRL distribution points, not one"))
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    facts = CertFacts(
        serial=serial, kind=kind, profile=profile, not_before=_minutes(cert.not_valid_before_utc),
        not_after=_minutes(cert.not_valid_after_utc), key=hashlib.sha256(spki).hexdigest(),
        crl_point=crl_points[0] if crl_points else None, ocsp_point=ocsp_points[0] if ocsp_points else None,
    )  # fmt: skip
    return facts, cas.index(issuer), tuple(out)


def _load_certs(
    artefacts: Artefacts, cas: list[x509.Certificate], out: list[Finding]
) -> dict[Serial, tuple[CertFacts, bytes, x509.Certificate]]:
    """serial -> (facts, DER, issuing CA) for every certificate that parses, is signed by a CA and names a profile."""
    found: dict[Serial, tuple[CertFacts, bytes, x509.Certificate]] = {}
    points: dict[str, set[Profile]] = {}
    cas_der = tuple(ca.public_bytes(serialization.Encoding.DER) for ca in cas)
    for der in artefacts.certs:
        facts, issuer, findings = _analyse_cert(der, cas_der)
        out.extend(findings)
        if facts is None:
            continue
        if facts.serial in found:
            out.append(Finding(reqs=("CA-2",), message=f"serial {facts.serial} is carried by two issued certificates"))
            continue
        found[facts.serial] = (facts, der, cas[issuer])  # parsed again only if OCSP is asked about it
        if facts.crl_point is not None:
            points.setdefault(facts.crl_point, set()).add(facts.profile)
    for point, profiles in sorted(points.items()):
        if len(profiles) > 1:
            out.append(Finding(reqs=("CA-4", "SP-1"), message=f"card and phone certificates share the CRL distribution point {point}"))
    return found


_CrlRead = tuple[int, str | None, bool, datetime, datetime | None, tuple[tuple[Serial, x509.ReasonFlags], ...]]


@functools.lru_cache(maxsize=1024)
def _analyse_crl(der: bytes, cas_der: tuple[bytes, ...]) -> _CrlRead | str:
    """A CRL's issuing CA (index, -1: none), point, CA-list flag, times and (serial, reason) entries; or why it does not
    parse. Cached by DER: a system hands over the same CRL until it issues the next one."""
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        return str(exc)
    cas = [x509.load_der_x509_certificate(d) for d in cas_der]
    issuer = _issuer(cas, crl.issuer, crl.signature, crl.tbs_certlist_bytes, crl.signature_hash_algorithm)
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
        point, ca_list = (_uris(idp.full_name) or (None,))[0], idp.only_contains_ca_certs
    except x509.ExtensionNotFound:
        point, ca_list = None, False
    listed: list[tuple[Serial, x509.ReasonFlags]] = []
    for entry in crl:
        try:
            code = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            code = x509.ReasonFlags.unspecified
        listed.append((entry.serial_number, code))
    index = -1 if issuer is None else cas.index(issuer)
    return index, point, ca_list, crl.last_update_utc, crl.next_update_utc, tuple(listed)


def _read_crls(
    artefacts: Artefacts, cas: list[x509.Certificate], certs: dict[Serial, tuple[CertFacts, bytes, x509.Certificate]],
    now: int, out: list[Finding],
) -> set[tuple[Profile, Serial, CertStatus]]:  # fmt: skip
    published: set[tuple[Profile, Serial, CertStatus]] = set()
    at = _utc(now)
    seen: set[str] = set()
    cas_der = tuple(ca.public_bytes(serialization.Encoding.DER) for ca in cas)
    for i, der in enumerate(artefacts.crls):
        read = _analyse_crl(der, cas_der)
        if isinstance(read, str):
            out.append(Finding(reqs=_LIST_REQS, message=f"CRL #{i} is not DER ({read})"))
            continue
        issuer_index, point, ca_list, this_update, next_update, listed = read
        where = point or f"CRL #{i}"
        if issuer_index < 0:
            out.append(Finding(reqs=("CA-4", "CA-5"), message=f"the CRL at {where} is not signed by any of the system's CA certificates"))
            continue
        issuer = cas[issuer_index]
        if this_update > at or next_update is None or next_update <= at:
            out.append(
                Finding(reqs=("REV-4",), message=f"the CRL at {where} is not current at {at:%Y-%m-%d %H:%M} "
                        f"(thisUpdate {this_update:%Y-%m-%d %H:%M}, nextUpdate {next_update})")
            )  # fmt: skip
        if ca_list:
            continue  # the CRL over the CA certificates themselves: no end-entity serial belongs on it
        if point is None:
            out.append(Finding(reqs=("CA-4", "SP-1"), message=f"CRL #{i} has no issuingDistributionPoint: whose list it is cannot be told"))
            continue
        if point in seen:
            out.append(Finding(reqs=("CA-4",), message=f"two CRLs claim the distribution point {point}"))
        seen.add(point)
        owners = {f.profile for f, _c, ca in certs.values() if f.crl_point == point and ca == issuer}
        for serial, code in listed:
            mine = certs.get(serial)
            status = CertStatus.SUSPENDED if code is x509.ReasonFlags.certificate_hold else CertStatus.REVOKED
            if mine is None or mine[2] != issuer:
                out.append(Finding(reqs=_LIST_REQS, message=f"the CRL at {point} lists serial {serial}, which this CA never issued"))
                continue
            facts = mine[0]
            if facts.crl_point != point:
                out.append(
                    Finding(
                        reqs=("CA-4", "SP-1"),
                        message=f"{facts.profile.value} certificate {serial} is listed on the CRL at {point}, not its own",
                    )
                )
            if code is x509.ReasonFlags.remove_from_crl:
                out.append(Finding(reqs=("REV-4",), message=f"the CRL at {point} lists serial {serial} as removeFromCRL"))
                continue
            for profile in owners or {facts.profile}:
                published.add((profile, serial, status))
    wanted = {f.crl_point for f, _c, _ca in certs.values() if f.crl_point is not None}
    for point in sorted(wanted - seen):
        out.append(Finding(reqs=_LIST_REQS, message=f"no current CRL is handed over for the distribution point {point}"))
    return published


@dataclass(frozen=True, slots=True)
class _Static:
    """What the artefacts show at one now, without OCSP: a function of their bytes and the now alone."""

    cas: tuple[x509.Certificate, ...]
    certs: Mapping[Serial, tuple[CertFacts, bytes, x509.Certificate]]
    published: frozenset[tuple[Profile, Serial, CertStatus]]
    findings: tuple[Finding, ...]
    facts: tuple[CertFacts, ...]
    """The certificates' facts in serial order."""


@functools.lru_cache(maxsize=256)
def _read_static(artefacts: Artefacts, now: int) -> _Static:
    """The certificates, CRLs and their findings at now; memoised by (bytes, now), as a system hands over the same
    artefacts step after step until something changes."""
    findings: list[Finding] = []
    cas = _load_cas(artefacts, findings)
    certs = _load_certs(artefacts, cas, findings)
    published = _read_crls(artefacts, cas, certs, now, findings)
    facts = tuple(f for f, _c, _ca in sorted(certs.values(), key=lambda t: t[0].serial))
    return _Static(
        cas=tuple(cas), certs=MappingProxyType(certs), published=frozenset(published), findings=tuple(findings), facts=facts
    )


def _never_issued(certs: Iterable[Serial], cas: Iterable[x509.Certificate]) -> Serial:
    """A serial the system never issued: one above every end-entity serial, skipping the CA certificates' own."""
    taken = {c.serial_number for c in cas}
    serial = max((*certs, 0)) + 1
    while serial in taken:
        serial += 1
    return serial


@dataclass(frozen=True, slots=True, kw_only=True)
class OcspAnswer:
    """One OCSP question and the system's answer as DER: about an issued certificate, or a serial it never issued."""

    serial: Serial
    never_issued_under: int | None = None
    """For a serial the system never issued: the index of the CA certificate it was asked under; None: an issued one."""
    answer: bytes


def _nonce(serial: Serial, now: int) -> bytes:
    """The nonce mjpki sends about a serial at a now: the same question gets the same request (a responder may cache)."""
    return hashlib.sha256(f"mjpki {serial} {now}".encode()).digest()[:16]


@functools.lru_cache(maxsize=4096)
def _request(cert_der: bytes, issuer: x509.Certificate, now: int) -> bytes:
    """The DER OCSP request about an issued certificate at now (SHA-1 CertID, as openssl sends, and a nonce)."""
    cert = x509.load_der_x509_certificate(cert_der)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(_nonce(cert.serial_number, now)), critical=False)
    )
    return request.build().public_bytes(serialization.Encoding.DER)


@functools.lru_cache(maxsize=256)
def _unknown_request(ca: x509.Certificate, serial: Serial) -> bytes:
    """The DER OCSP request about a serial never issued, under this CA (no nonce)."""
    issuer_name, issuer_key = _hash(ca.subject.public_bytes()), _hash(_key_bits(ca))
    request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(issuer_name, issuer_key, serial, hashes.SHA1())
    return request.build().public_bytes(serialization.Encoding.DER)


def _ask_ocsp(ask: Callable[[bytes], bytes], static: _Static, now: int, probe: frozenset[Serial] | None) -> tuple[OcspAnswer, ...]:
    """The system's answers to mjpki's OCSP questions: every certificate and a serial never issued (probe None), or probe."""
    asked: list[OcspAnswer] = []
    if probe is None:  # SP-1: a serial never issued must not be "good" (asked at full judgements)
        unknown = _never_issued(static.certs, static.cas)
        for i, ca in enumerate(static.cas):
            asked.append(OcspAnswer(serial=unknown, never_issued_under=i, answer=ask(_unknown_request(ca, unknown))))
    for serial, (_facts, der, issuer) in sorted(static.certs.items()):
        if probe is None or serial in probe:
            asked.append(OcspAnswer(serial=serial, answer=ask(_request(der, issuer, now))))
    return tuple(asked)


def _load_answer(der: bytes, *, what: str) -> ocsp.OCSPResponse | Finding:
    try:
        return ocsp.load_der_ocsp_response(der)
    except (ValueError, TypeError) as exc:
        return Finding(reqs=("CA-4",), message=f"the OCSP answer about {what} is not a DER OCSP response ({exc})")


@functools.lru_cache(maxsize=1024)
def _unknown_findings(der: bytes, serial: Serial) -> tuple[Finding, ...]:
    """SP-1: what is wrong with the answer about a serial never issued (memoised by its DER)."""
    answer = _load_answer(der, what=f"serial {serial} (never issued)")
    if isinstance(answer, Finding):
        return (answer,)
    if answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL and answer.certificate_status is ocsp.OCSPCertStatus.GOOD:
        return (Finding(reqs=("SP-1", "CA-4"), message=f"OCSP answers good for serial {serial}, which the system never issued"),)
    return ()


@functools.lru_cache(maxsize=8192)
def _answer_findings(
    der: bytes, serial: Serial, profile: Profile, issuer: x509.Certificate, now: int, listed: frozenset[CertStatus]
) -> tuple[Finding, ...]:
    """What is wrong with a certificate's OCSP answer, given what its CRL lists at now (memoised by the answer's DER)."""
    answer = _load_answer(der, what=f"certificate {serial}")
    if isinstance(answer, Finding):
        return (answer,)
    out: list[Finding] = []
    if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return (Finding(reqs=_LIST_REQS, message=f"OCSP gives no answer for certificate {serial} ({answer.response_status.name})"),)
    if not _signed_by(issuer, answer.signature, answer.tbs_response_bytes, answer.signature_hash_algorithm):
        out.append(Finding(reqs=("CA-4", "CA-5"), message=f"the OCSP answer for certificate {serial} is not signed by its CA"))
    if answer.serial_number != serial:
        out.append(Finding(reqs=("CA-4",), message=f"OCSP answers for serial {answer.serial_number} when asked about {serial}"))
        return tuple(out)
    echoed = [e.value.nonce for e in answer.extensions if isinstance(e.value, x509.OCSPNonce)]
    if echoed and echoed != [_nonce(serial, now)]:
        out.append(Finding(reqs=("CA-4",), message=f"the OCSP answer for certificate {serial} carries another request's nonce"))
    at = _utc(now)
    if answer.this_update_utc > at or (answer.next_update_utc is not None and answer.next_update_utc <= at):
        out.append(Finding(reqs=("REV-4",), message=f"the OCSP answer for certificate {serial} is not current at {at:%Y-%m-%d %H:%M}"))
    said = answer.certificate_status
    if said is ocsp.OCSPCertStatus.REVOKED:
        got = CertStatus.SUSPENDED if answer.revocation_reason is x509.ReasonFlags.certificate_hold else CertStatus.REVOKED
    else:
        got = CertStatus.ACTIVE if said is ocsp.OCSPCertStatus.GOOD else None
    expected = next(iter(listed), CertStatus.ACTIVE) if len(listed) <= 1 else None
    if got is None or got is not expected:
        crl_says = "not listed" if not listed else "/".join(sorted(s.value for s in listed))
        out.append(
            Finding(reqs=_status_reqs(got, expected), message=f"OCSP answers {said.name.lower()}"
                    f"{'' if answer.revocation_reason is None else ' (' + answer.revocation_reason.name + ')'} for "
                    f"{profile.value} certificate {serial}, its CRL says {crl_says}")
        )  # fmt: skip
    return tuple(out)


def _ocsp_findings(static: _Static, asked: Iterable[OcspAnswer], now: int) -> list[Finding]:
    out: list[Finding] = []
    for a in asked:
        if a.never_issued_under is not None:
            out.extend(_unknown_findings(a.answer, a.serial))
            continue
        mine = static.certs.get(a.serial)
        if mine is None:
            out.append(Finding(reqs=("CA-4",), message=f"an OCSP answer about serial {a.serial}, which the artefacts do not hold"))
            continue
        listed = frozenset(st for (_p, s, st) in static.published if s == a.serial)
        out.extend(_answer_findings(a.answer, a.serial, mine[0].profile, mine[2], now, listed))
    return out


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def _key_bits(ca: x509.Certificate) -> bytes:
    """The CA's subjectPublicKey BIT STRING contents (what an OCSP CertID hashes, RFC 6960 4.1.1)."""
    return ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def _verified(static: _Static, asked: Iterable[OcspAnswer], now: int) -> Verified:
    findings = list(static.findings) + _ocsp_findings(static, asked, now)
    return Verified(certs=static.facts, published=static.published, findings=tuple(dict.fromkeys(findings)))


def verify_artefacts(
    artefacts: Artefacts, *, now: int, ocsp_responder: Callable[[bytes], bytes] | None = None, probe: frozenset[Serial] | None = None
) -> Verified:
    """Check the artefacts at the world's now and derive what they publish; probe: the serials to ask OCSP about (None: all)."""
    static = _read_static(artefacts, now)
    asked = _ask_ocsp(ocsp_responder, static, now, probe) if ocsp_responder is not None and static.cas else ()
    return _verified(static, asked, now)


def derived_observation(obs: Observation, verified: Verified) -> Observation:
    """The observation with what the artefacts show in place of self-report: statuses, profiles, kinds, expiry, publication.

    Where the artefacts agree with the self-report it is obs itself (nothing to rebuild, and invariants judged on it before
    are not judged again)."""
    facts_of = {f.serial: f for f in verified.certs}
    statuses: dict[Serial, CertStatus] = {}
    for _p, s, st in verified.published:  # verified.status(): revoked wins over suspended, unlisted is active
        statuses[s] = CertStatus.REVOKED if CertStatus.REVOKED in (st, statuses.get(s)) else st
    certs: list[CertView] = []
    changed = False
    for c in obs.certs:
        facts = facts_of.get(c.serial)
        if facts is None:
            certs.append(c)
            continue
        status = statuses.get(c.serial, CertStatus.ACTIVE)
        if (c.profile, c.kind, c.expiry, c.status) == (facts.profile, facts.kind, facts.not_after, status):
            certs.append(c)
            continue
        changed = True
        certs.append(replace(c, profile=facts.profile, kind=facts.kind, expiry=facts.not_after, status=status))
    if not changed and obs.published == verified.published:
        return obs
    return replace(obs, certs=tuple(certs), published=verified.published)


def compare_with_observation(obs: Observation, verified: Verified) -> list[Finding]:
    """Where the system's self-report disagrees with its artefacts."""
    out: list[Finding] = []
    reported = {c.serial: c for c in obs.certs}
    for serial in sorted(reported.keys() - {f.serial for f in verified.certs}):
        out.append(Finding(reqs=("CA-2",), message=f"observation() reports certificate {serial}, which the artefacts do not hold"))
    for facts in verified.certs:
        c = reported.get(facts.serial)
        if c is None:
            out.append(
                Finding(reqs=("CA-2",), message=f"the artefacts hold certificate {facts.serial}, which observation() does not report")
            )
            continue
        if (c.profile, c.kind) != (facts.profile, facts.kind):
            out.append(
                Finding(reqs=("CA-3", "SP-1"), message=f"certificate {facts.serial} is reported {c.kind.value}/{c.profile.value}, "
                        f"its policy OID says {facts.kind.value}/{facts.profile.value}")
            )  # fmt: skip
        if c.expiry != facts.not_after:
            out.append(
                Finding(
                    reqs=("VAL-1", "VAL-2"),
                    message=f"certificate {facts.serial} is reported to expire at {c.expiry}, its notAfter says {facts.not_after}",
                )
            )
        published = verified.status(facts.serial)
        misfiled = any((p, facts.serial, c.status) in verified.published for p in Profile if p is not facts.profile)
        if c.status is not published and not misfiled:  # one on another profile's list is that list's finding (CA-4)
            out.append(
                Finding(reqs=_status_reqs(c.status, published), message=f"certificate {facts.serial} is reported {c.status.value}, "
                        f"its CRL publishes it {published.value}")
            )  # fmt: skip
    if obs.published != verified.published:
        extra = sorted((p.value, s, st.value) for p, s, st in obs.published - verified.published)
        missing = sorted((p.value, s, st.value) for p, s, st in verified.published - obs.published)
        parts = ([f"reports {extra}, which the CRLs do not carry"] if extra else []) + (
            [f"omits {missing}, which they do"] if missing else []
        )
        differ = obs.published ^ verified.published
        moved = len({s for _p, s, _st in differ}) < len({(p, s) for p, s, _st in differ})  # a serial on another profile's list
        # A status is blamed only where the serial's status differs, not where the same status sits on the other
        # profile's list (that is CA-4 and SP-1 alone: blaming REV-4 or SUS-4 too named requirements the system kept).
        statuses = {(s, st) for _p, s, st in obs.published} ^ {(s, st) for _p, s, st in verified.published}
        reqs = (_status_reqs(*{st for _s, st in statuses}) if statuses or not moved else ()) + (("CA-4", "SP-1") if moved else ())
        out.append(Finding(reqs=reqs, message="observation()'s publication (profile, serial, status) " + " and ".join(parts)))
    return out


@functools.lru_cache(maxsize=4096)
def _state_violations(world: World, obs: Observation) -> tuple[Violation, ...]:
    """The state invariants on an observation, once per distinct (world, observation): they depend on nothing else."""
    return tuple(check_state(world, obs))


def judgement(world: World, obs: Observation, artefacts: Artefacts, *, now: int, asked: tuple[OcspAnswer, ...] = ()) -> tuple[Finding, ...]:
    """Everything wrong with what a system publishes, from the inputs alone: the world, its observation, its artefacts'
    bytes, the world's now and its OCSP answers' bytes. The same inputs always give the same findings."""
    verified = _verified(_read_static(artefacts, now), asked, now)
    found = list(verified.findings) + compare_with_observation(obs, verified)
    derived = derived_observation(obs, verified)
    try:
        violations: Iterable[Violation] = _state_violations(world, derived)
    except TypeError:  # an observation that cannot be hashed (an adapter's own containers in it): judged afresh
        violations = check_state(world, derived)
    found += [Finding(reqs=v.reqs, message=f"on the artefacts: {v}") for v in violations]
    return tuple(dict.fromkeys(found))


def _artefacts_of(system: object) -> Artefacts | Finding:
    artefacts = system.artefacts()  # type: ignore[attr-defined]
    if not isinstance(artefacts, Artefacts):
        return Finding(reqs=("CA-4",), message=f"artefacts() returned {type(artefacts).__name__}, not an Artefacts")
    return artefacts


def _responder(system: object) -> Callable[[bytes], bytes] | None:
    responder = getattr(system, "ocsp", None)
    return responder if callable(responder) else None


def judge(world: World, obs: Observation, system: object, *, now: int, probe: frozenset[Serial] | None = None) -> list[Finding]:
    """Everything wrong with what the system publishes at the world's now: its artefacts, their match with its self-report,
    and the state invariants on the observation rebuilt from the artefacts (probe: the serials to ask OCSP about, None: all)."""
    artefacts = _artefacts_of(system)
    if isinstance(artefacts, Finding):
        return [artefacts]
    responder = _responder(system)
    static = _read_static(artefacts, now)
    asked = _ask_ocsp(responder, static, now, probe) if responder is not None and static.cas else ()
    return list(judgement(world, obs, artefacts, now=now, asked=asked))


class ArtefactJudge:
    """One run's artefact judgements, made after every step (issue 14, part 3): a lie that comes and goes is seen.

    Each step fetches the artefacts and judges them whole (certificates, CRLs, their match with the self-report, the
    invariants on the rebuilt observation). OCSP is asked about every certificate (and a serial never issued) at the
    first judgement, on every `every`-th step and when told `full` (a run's end); on the other steps about the certificates
    whose self-report or CRL entry changed since the last judgement, those new in the artefacts, and `rotation` more in
    turn, so each certificate is asked about at least every few steps. A judgement whose inputs (observation, artefacts'
    bytes, now, OCSP answers' bytes) are those of the last one is not made again: its findings are handed back.
    """

    def __init__(self, world: World, *, every: int = FULL_EVERY, rotation: int = OCSP_ROTATION) -> None:
        self.world = world
        self.every = every
        self.rotation = rotation
        self.judged = 0
        """Judgements made (the artefacts fetched and judged)."""
        self.reused = 0
        """Of those, how many had the very inputs of the one before and reused its findings."""
        self.asked = 0
        """OCSP questions asked."""
        self._last: tuple[tuple[object, ...], tuple[Finding, ...]] | None = None
        self._published: frozenset[tuple[Profile, Serial, CertStatus]] = frozenset()
        self._serials: frozenset[Serial] = frozenset()
        self._turn = 0

    def probe(self, pre: Observation | None, post: Observation, static: _Static, *, index: int, full: bool) -> frozenset[Serial] | None:
        """The serials to ask OCSP about after this step (None: every one, and a serial never issued)."""
        if full or pre is None or self.judged == 0 or (index > 0 and index % self.every == 0):
            return None
        changed = {c.serial for c in set(post.certs) ^ set(pre.certs)} | {s for _p, s, _st in pre.published ^ post.published}
        changed |= {s for _p, s, _st in static.published ^ self._published}  # the CRLs moved: OCSP must follow
        changed |= static.certs.keys() - self._serials  # issued since the last judgement
        serials = sorted(static.certs)
        for _ in range(min(self.rotation, len(serials))):  # the rest in turn: an OCSP lie about an old certificate is seen too
            changed.add(serials[self._turn % len(serials)])
            self._turn += 1
        return frozenset(changed)

    def __call__(
        self, obs: Observation, system: object, *, now: int, index: int, pre: Observation | None, full: bool = False
    ) -> list[Finding]:
        """The findings on the system's artefacts after step index (pre: the observation before it, None at the start)."""
        artefacts = _artefacts_of(system)
        if isinstance(artefacts, Finding):
            return [artefacts]
        static = _read_static(artefacts, now)
        responder = _responder(system)
        probe = self.probe(pre, obs, static, index=index, full=full)
        asked = _ask_ocsp(responder, static, now, probe) if responder is not None and static.cas else ()
        self.judged += 1
        self.asked += len(asked)
        self._published, self._serials = static.published, frozenset(static.certs)
        inputs = (obs, artefacts, now, asked)
        if self._last is not None and self._last[0] == inputs:
            self.reused += 1
            return list(self._last[1])
        found = judgement(self.world, obs, artefacts, now=now, asked=asked)
        self._last = (inputs, found)
        return list(found)
