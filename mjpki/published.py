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
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, SignatureAlgorithmOID

from mjpki.adapters.artefacts import Artefacts
from mjpki.impl.ca import KEY_SIZE, kind_of, profile_of
from mjpki.properties.invariants import check_state
from mjpki.spec.clock import from_datetime, to_datetime
from mjpki.spec.domain import CertStatus, Kind, Profile, Serial
from mjpki.spec.observe import CertView, Observation
from mjpki.spec.world import World

__all__ = [
    "ARTEFACT_REQS",
    "Finding",
    "CertFacts",
    "Verified",
    "verify_artefacts",
    "derived_observation",
    "compare_with_observation",
    "judge",
    "published_due",
]

ARTEFACT_REQS = frozenset({"CA-1", "CA-2", "CA-3", "CA-4", "CA-5", "REV-4", "SP-1"})
"""The requirements judged on verified artefacts when a system hands them over; the rest stay on self-report."""

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


def _signed_by(issuer: x509.Certificate, signature: bytes, tbs: bytes, algorithm: hashes.HashAlgorithm | None) -> bool:
    """True if the issuer's RSA key made this PKCS#1 v1.5 signature over tbs."""
    key = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or algorithm is None:
        return False
    try:
        key.verify(signature, tbs, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


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


def _never_issued(certs: Iterable[Serial], cas: list[x509.Certificate]) -> Serial:
    """A serial the system never issued: one above every end-entity serial, skipping the CA certificates' own."""
    taken = {c.serial_number for c in cas}
    serial = max((*certs, 0)) + 1
    while serial in taken:
        serial += 1
    return serial


def _ocsp_checks(
    ask: Callable[[bytes], bytes], cas: list[x509.Certificate], certs: dict[Serial, tuple[CertFacts, bytes, x509.Certificate]],
    published: set[tuple[Profile, Serial, CertStatus]], now: int, probe: frozenset[Serial] | None, out: list[Finding],
) -> None:  # fmt: skip
    at = _utc(now)
    unknown = _never_issued(certs, cas)
    for ca in cas if probe is None else ():  # SP-1: a serial never issued must not be "good" (asked at full judgements)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(_hash(ca.subject.public_bytes()), _hash(_key_bits(ca)), unknown, hashes.SHA1())
            .build()
        )
        answer = _ask(ask, request, out, what=f"serial {unknown} (never issued)")
        answered = answer is not None and answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        if answered and answer.certificate_status is ocsp.OCSPCertStatus.GOOD:  # type: ignore[union-attr]
            out.append(Finding(reqs=("SP-1", "CA-4"), message=f"OCSP answers good for serial {unknown}, which the system never issued"))
    for serial, (facts, cert, issuer) in sorted(certs.items()):
        if probe is not None and serial not in probe:
            continue
        nonce = hashlib.sha256(f"mjpki {serial} {now}".encode()).digest()[:16]
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(x509.load_der_x509_certificate(cert), issuer, hashes.SHA1())
            .add_extension(x509.OCSPNonce(nonce), critical=False)
        )
        answer = _ask(ask, request.build(), out, what=f"certificate {serial}")
        if answer is None:
            continue
        if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            out.append(Finding(reqs=_LIST_REQS, message=f"OCSP gives no answer for certificate {serial} ({answer.response_status.name})"))
            continue
        if not _signed_by(issuer, answer.signature, answer.tbs_response_bytes, answer.signature_hash_algorithm):
            out.append(Finding(reqs=("CA-4", "CA-5"), message=f"the OCSP answer for certificate {serial} is not signed by its CA"))
        if answer.serial_number != serial:
            out.append(Finding(reqs=("CA-4",), message=f"OCSP answers for serial {answer.serial_number} when asked about {serial}"))
            continue
        echoed = [e.value.nonce for e in answer.extensions if isinstance(e.value, x509.OCSPNonce)]
        if echoed and echoed != [nonce]:
            out.append(Finding(reqs=("CA-4",), message=f"the OCSP answer for certificate {serial} carries another request's nonce"))
        if answer.this_update_utc > at or (answer.next_update_utc is not None and answer.next_update_utc <= at):
            out.append(Finding(reqs=("REV-4",), message=f"the OCSP answer for certificate {serial} is not current at {at:%Y-%m-%d %H:%M}"))
        listed = {st for (_p, s, st) in published if s == serial}
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
                        f"{facts.profile.value} certificate {serial}, its CRL says {crl_says}")
            )  # fmt: skip


def _hash(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def _key_bits(ca: x509.Certificate) -> bytes:
    """The CA's subjectPublicKey BIT STRING contents (what an OCSP CertID hashes, RFC 6960 4.1.1)."""
    return ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def _ask(ask: Callable[[bytes], bytes], request: ocsp.OCSPRequest, out: list[Finding], *, what: str) -> ocsp.OCSPResponse | None:
    der = ask(request.public_bytes(serialization.Encoding.DER))
    try:
        return ocsp.load_der_ocsp_response(der)
    except (ValueError, TypeError) as exc:
        out.append(Finding(reqs=("CA-4",), message=f"the OCSP answer about {what} is not a DER OCSP response ({exc})"))
        return None


def verify_artefacts(
    artefacts: Artefacts, *, now: int, ocsp_responder: Callable[[bytes], bytes] | None = None, probe: frozenset[Serial] | None = None
) -> Verified:
    """Check the artefacts at the world's now and derive what they publish; probe: the serials to ask OCSP about (None: all)."""
    findings: list[Finding] = []
    cas = _load_cas(artefacts, findings)
    certs = _load_certs(artefacts, cas, findings)
    published = _read_crls(artefacts, cas, certs, now, findings)
    if ocsp_responder is not None and cas:
        _ocsp_checks(ocsp_responder, cas, certs, published, now, probe, findings)
    facts = tuple(f for f, _c, _ca in sorted(certs.values(), key=lambda t: t[0].serial))
    return Verified(certs=facts, published=frozenset(published), findings=tuple(dict.fromkeys(findings)))


def derived_observation(obs: Observation, verified: Verified) -> Observation:
    """The observation with what the artefacts show in place of self-report: statuses, profiles, kinds, expiry, publication."""
    certs: list[CertView] = []
    for c in obs.certs:
        facts = verified.cert(c.serial)
        if facts is None:
            certs.append(c)
            continue
        certs.append(replace(c, profile=facts.profile, kind=facts.kind, expiry=facts.not_after, status=verified.status(c.serial)))
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
        if c.status is not published:
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
        reqs = _status_reqs(*{st for _p, _s, st in differ}) + (("CA-4", "SP-1") if moved else ())
        out.append(Finding(reqs=reqs, message="observation()'s publication (profile, serial, status) " + " and ".join(parts)))
    return out


def judge(world: World, obs: Observation, system: object, *, now: int, probe: frozenset[Serial] | None = None) -> list[Finding]:
    """Everything wrong with what the system publishes at the world's now: its artefacts, their match with its self-report,
    and the state invariants on the observation rebuilt from the artefacts."""
    artefacts = system.artefacts()  # type: ignore[attr-defined]
    if not isinstance(artefacts, Artefacts):
        return [Finding(reqs=("CA-4",), message=f"artefacts() returned {type(artefacts).__name__}, not an Artefacts")]
    responder = getattr(system, "ocsp", None)
    verified = verify_artefacts(artefacts, now=now, ocsp_responder=responder if callable(responder) else None, probe=probe)
    found = list(verified.findings) + compare_with_observation(obs, verified)
    found += [Finding(reqs=v.reqs, message=f"on the artefacts: {v}") for v in check_state(world, derived_observation(obs, verified))]
    return list(dict.fromkeys(found))


def published_due(
    pre: Observation | None, post: Observation, *, index: int, action_name: str, every: int = 16
) -> tuple[bool, frozenset[Serial] | None]:
    """Whether to judge the artefacts after this step, and which serials to ask OCSP about (None: every one).

    Judging costs a CRL build and a few signatures, so it runs only when the self-report's certificates changed (the
    changed serials are probed), when time moved (CRLs must stay current), and on every `every`-th step (all probed)."""
    if pre is None or (index > 0 and index % every == 0):
        return True, None
    changed = frozenset(c.serial for c in set(post.certs) ^ set(pre.certs)) | frozenset(s for _p, s, _st in pre.published ^ post.published)
    if changed:
        return True, changed
    return action_name == "AdvanceTime", frozenset()
