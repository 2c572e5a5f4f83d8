"""What a system publishes is judged on its artefacts (mjpki.published), and the reference serves them for real.

- Systems whose observation() reports what the spec expects while their CRLs or OCSP answers lie (tests/faulty_impls.py
  LYING) conform on self-report alone and are caught on the artefacts, naming the requirement they break.
- The reference, served by mjpki.impl.publish_server on 127.0.0.1, answers the openssl CLI as the lifecycle demands:
  `openssl ocsp -url` good / revoked / revoked with certificateHold / unknown, `openssl verify -crl_check_all
  -crl_download` accepts an active certificate and refuses a revoked one, and a verifier restricted to the card policy
  refuses a phone certificate and the other way round (SP-1).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from mjpki.adapters.artefacts import Artefacts
from mjpki.adapters.reference import ServedSystem, factory
from mjpki.adapters.reference import served as served_reference
from mjpki.adapters.system import AdapterFactory
from mjpki.impl.ca import POLICY_OIDS, build_ocsp_request
from mjpki.impl.publish_server import PublishServer
from mjpki.impl.system import ReferenceSystem, to_utc
from mjpki.lockstep import Lockstep
from mjpki.published import ArtefactJudge, judgement, verify_artefacts
from mjpki.scenarios import SCENARIOS, Scenario
from mjpki.spec import actions as A
from mjpki.spec.domain import CertStatus, Kind, Profile, RevocationReason
from mjpki.spec.machine import step as spec_step
from mjpki.spec.observe import observe
from mjpki.spec.state import initial_state
from mjpki.spec.world import World
from tests.faulty_impls import LYING, Fault, shared_parts

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module", autouse=True)
def _parts() -> None:
    shared_parts()  # the CA and card keys of the faulty systems, made once


class _SelfReportOnly:
    """A system with its artefacts hidden: the suite can judge it only on what observation() says."""

    def __init__(self, system: Any) -> None:
        self._system = system

    def step(self, action: A.Action) -> Any:
        return self._system.step(action)

    def observation(self) -> Any:
        return self._system.observation()

    def close(self) -> None:
        self._system.close()


def _hidden(make: AdapterFactory) -> AdapterFactory:
    return lambda world: _SelfReportOnly(make(world))  # type: ignore[return-value]


def _run(make: AdapterFactory, scenario: Scenario) -> Lockstep:
    run = Lockstep(make, scenario.world, timeout=30)
    try:
        for e in scenario.steps:
            run.step(e.action)
            if run.broken:
                break
    finally:
        run.close()
    return run


@pytest.mark.parametrize("name", sorted(LYING))
def test_a_lying_system_passes_on_self_report_and_is_caught_on_its_artefacts(name: str) -> None:
    """CA-4, REV-4, SUS-4, SP-1: the same faulty system, judged on self-report and on its artefacts."""
    fault: Fault = LYING[name]
    scenario = SCENARIOS[fault.caught_by]
    trusted = _run(_hidden(fault.factory), scenario)
    assert trusted.divergence is None, f"{name} is caught on self-report alone: {trusted.divergence}"
    assert not trusted.publishes and trusted.published_checks == 0
    judged = _run(fault.factory, scenario)
    assert judged.divergence is not None, f"{name} passes {scenario.id} although its artefacts lie"
    assert judged.divergence.what.startswith("published artefacts:"), judged.divergence.what
    assert set(fault.breaks) <= set(judged.divergence.reqs), (fault.breaks, judged.divergence)


@pytest.mark.parametrize("name", sorted(LYING))
def test_every_scenario_that_catches_a_lying_system_blames_at_most_three_requirements(name: str) -> None:
    """Issue 15 part 7 for the lying systems: over every scenario that catches one, the requirements blamed hold the one
    it breaks and are at most three (a serial on the other profile's list is CA-4 and SP-1, not the status it kept)."""
    fault: Fault = LYING[name]
    blamed: set[str] = set()
    for scenario in SCENARIOS.values():
        run = _run(fault.factory, scenario)
        if run.divergence is not None:
            blamed |= set(run.divergence.reqs)
    assert set(fault.breaks) <= blamed and len(blamed) <= 3, (fault.breaks, sorted(blamed))


def test_the_reference_publishes_what_it_reports() -> None:
    """CA-4, REV-4, SUS-1: revoked and held phone certificates are on the phone lists, as certificateHold for a hold."""
    scenario = SCENARIOS["lost-phone-found"]
    run = _run(factory, scenario)
    assert run.divergence is None and run.publishes and run.published_checks > 0
    system = factory(scenario.world)
    try:
        for e in scenario.steps[:11]:  # up to ReportPhoneLost: both phone certificates on hold
            assert system.step(e.action).code == e.code
        obs = system.observation()
        verified = verify_artefacts(system.artefacts(), now=system.now, ocsp_responder=system.ocsp)
    finally:
        system.close()
    assert verified.findings == ()
    held = {s for (p, s, st) in verified.published if p is Profile.PHONE and st is CertStatus.SUSPENDED}
    assert held == {c.serial for c in obs.certs if c.profile is Profile.PHONE} and len(held) == 2
    assert verified.published == obs.published


def test_a_crl_that_is_not_current_at_the_worlds_now_is_a_finding() -> None:
    """REV-4: a CRL's nextUpdate has passed at the world's now (ASM-ARTEFACT-TIME)."""
    system = factory(SCENARIOS["issue-both-kinds"].world)
    try:
        artefacts = system.artefacts()
    finally:
        system.close()
    assert verify_artefacts(artefacts, now=0).findings == ()
    late = verify_artefacts(artefacts, now=2 * 24 * 60)
    assert late.findings and all(f.reqs == ("REV-4",) and "not current" in f.message for f in late.findings)
    forged = Artefacts(ca_certs=artefacts.ca_certs[:1], certs=artefacts.certs, crls=artefacts.crls)  # the auth CA withheld
    assert any(
        "not signed by any of the system's CA certificates" in f.message and "CA-1" in f.reqs
        for f in verify_artefacts(forged, now=0).findings
    )


# --- the reference as a real service, judged by openssl -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Served:
    server: PublishServer
    system: ServedSystem
    world: World
    folder: Path


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[_Served]:
    """The reference on 127.0.0.1: a phone signing certificate revoked from the phone, the phone auth one still active."""
    scenario = SCENARIOS["revoke-from-phone"]
    system = served_reference(scenario.world)  # what `mjpki serve-system` serves by default
    try:
        for e in (*scenario.steps[:9], scenario.steps[10]):  # issue both, set PINs, RevokeFromPhone(signing)
            assert system.step(e.action).code == e.code == "ACCEPTED"
        yield _Served(server=system.server, system=system, world=scenario.world, folder=tmp_path)
    finally:
        system.close()
    with pytest.raises(urllib.error.URLError):  # closing the system stops its endpoints
        urllib.request.urlopen(system.server.base_url + "/crl/sign/phone.crl", timeout=5)


def _pem(folder: Path, name: str, der: bytes) -> Path:
    path = folder / f"{name}.pem"
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return path


def _files(s: _Served) -> dict[tuple[Kind, Profile], tuple[Path, Path, x509.Certificate]]:
    """(kind, profile) -> (the newest such certificate's PEM, its CA's PEM, the certificate)."""
    artefacts = s.system.artefacts()
    cas = {Kind.SIGNING: _pem(s.folder, "ca-sign", artefacts.ca_certs[0]), Kind.AUTH: _pem(s.folder, "ca-auth", artefacts.ca_certs[1])}
    out: dict[tuple[Kind, Profile], tuple[Path, Path, x509.Certificate]] = {}
    for c in s.system.observation().certs:
        der = next(d for d in artefacts.certs if x509.load_der_x509_certificate(d).serial_number == c.serial)
        out[c.kind, c.profile] = (_pem(s.folder, f"cert-{c.serial}", der), cas[c.kind], x509.load_der_x509_certificate(der))
    return out


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None, "the openssl command line tool is required for these tests (apt-get install openssl): not a skip"
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30, check=False)


def _world_time(s: _Served) -> int:
    """The world's now as Unix seconds: what openssl is told to verify at (ASM-ARTEFACT-TIME)."""
    return int(to_utc(s.system.observation().now).timestamp())


def _ask_openssl(s: _Served, cert: Path, ca: Path, url: str, *extra: str) -> str:
    # openssl ocsp judges thisUpdate/nextUpdate by the real clock and has no -attime for them: allow the distance to the world's now.
    slack = abs(int(datetime.now(UTC).timestamp()) - _world_time(s)) + 3600
    r = _openssl(
        "ocsp",
        "-url",
        url,
        "-issuer",
        str(ca),
        "-CAfile",
        str(ca),
        "-validity_period",
        str(slack),
        *extra,
        *(("-cert", str(cert)) if cert.name else ()),
    )
    assert r.returncode == 0, r.stderr
    assert "Response verify OK" in r.stderr + r.stdout and "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r.stdout


def _ocsp_url(cert: x509.Certificate) -> str:
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    return next(str(d.access_location.value) for d in aia if d.access_method == x509.AuthorityInformationAccessOID.OCSP)


def test_openssl_ocsp_against_the_served_responder(served: _Served) -> None:
    """CA-4, REV-4, SUS-4, SP-1: good, revoked, revoked with certificateHold for a hold, unknown for a serial never issued."""
    files = _files(served)
    auth, auth_ca, auth_cert = files[Kind.AUTH, Profile.PHONE]
    signing, signing_ca, signing_cert = files[Kind.SIGNING, Profile.PHONE]
    assert _ocsp_url(auth_cert).startswith(served.server.base_url + "/ocsp/auth/phone")
    assert f"{auth}: good" in _ask_openssl(served, auth, auth_ca, _ocsp_url(auth_cert))
    revoked = _ask_openssl(served, signing, signing_ca, _ocsp_url(signing_cert))
    assert f"{signing}: revoked" in revoked and "certificateHold" not in revoked
    unknown = _ask_openssl(served, Path(""), signing_ca, _ocsp_url(signing_cert), "-serial", str(10**9))
    assert f"{10**9}: unknown" in unknown
    assert served.system.step(A.ReportPhoneLost(person="P1")).code == "ACCEPTED"  # SUS-1: the auth certificate on hold
    held = _ask_openssl(served, auth, auth_ca, _ocsp_url(auth_cert))
    assert f"{auth}: revoked" in held and "Reason: certificateHold" in held
    # RFC 6960 A.1 GET: the request base64 in the URL; the nonce comes back
    request = build_ocsp_request(
        certificate=auth_cert, issuer=x509.load_pem_x509_certificate(auth_ca.read_bytes()), nonce=b"mjpki-nonce-0001"
    )
    encoded = urllib.parse.quote(base64.b64encode(request.public_bytes(serialization.Encoding.DER)).decode(), safe="")
    with urllib.request.urlopen(f"{_ocsp_url(auth_cert)}/{encoded}", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/ocsp-response"
        response = ocsp.load_der_ocsp_response(answer.read())
    assert response.revocation_reason is x509.ReasonFlags.certificate_hold
    assert [e.value.nonce for e in response.extensions if isinstance(e.value, x509.OCSPNonce)] == [b"mjpki-nonce-0001"]


def test_openssl_verify_downloads_the_crls_and_checks_the_policy(served: _Served) -> None:
    """REV-4, REV-5: the CRLs at the certificates' distribution points; SP-1: a card-only verifier refuses a phone certificate."""
    files = _files(served)
    at = str(_world_time(served))
    for (kind, profile), (cert, ca, _c) in files.items():
        r = _openssl("verify", "-attime", at, "-crl_check_all", "-crl_download", "-CAfile", str(ca), str(cert))
        if (kind, profile) == (Kind.SIGNING, Profile.PHONE):
            assert r.returncode != 0 and "certificate revoked" in r.stdout + r.stderr, r.stdout + r.stderr
        else:
            assert r.returncode == 0 and f"{cert}: OK" in r.stdout, r.stdout + r.stderr
        for wanted in Profile:  # SP-1: a verifier that asks for one profile's policy accepts that profile only
            r = _openssl(
                "verify",
                "-attime",
                at,
                "-policy",
                POLICY_OIDS[kind, wanted].dotted_string,
                "-explicit_policy",
                "-CAfile",
                str(ca),
                str(cert),
            )
            assert (r.returncode == 0) is (wanted is profile), (kind, profile, wanted, r.stdout + r.stderr)


def test_the_server_serves_each_crl_at_its_own_point_and_refuses_the_rest(served: _Served) -> None:
    """CA-4: each list at the URL its issuingDistributionPoint names; bad requests get one clear line, not a traceback."""
    base = served.server.base_url
    for kind in ("sign", "auth"):
        for name in ("card", "phone", "ca"):
            with urllib.request.urlopen(f"{base}/crl/{kind}/{name}.crl", timeout=10) as answer:
                crl = x509.load_der_x509_crl(answer.read())
            idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
            assert [n.value for n in idp.full_name or ()] == [f"{base}/crl/{kind}/{name}.crl"]
            assert idp.only_contains_ca_certs is (name == "ca")
    for url, data, status in (
        (f"{base}/crl/sign/other.crl", None, 404),
        (f"{base}/ocsp/sign/phone/not*base64", None, 400),
        (f"{base}/elsewhere", None, 404),
        (f"{base}/ocsp/sign/phone", b"x" * (70 * 1024), 413),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10)
        assert refused.value.code == status and b"Traceback" not in refused.value.read()
    # A request that is not OCSP gets the responder's malformedRequest, over POST as over GET
    garbage = urllib.request.Request(
        f"{base}/ocsp/sign/phone", data=b"\x30\x03\x02\x01\x01", headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(garbage, timeout=10) as answer:
        assert ocsp.load_der_ocsp_response(answer.read()).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_the_runs_last_state_is_judged_when_it_ends() -> None:
    # Between steps artefacts are judged only when due; a publication that goes wrong after the last judged step must
    # still be found when the run ends (Lockstep.finish, called by scenario checks, tours and the stateful search).
    scenario = SCENARIOS["revoke-from-phone"]
    honest = [True]

    def make(world: World) -> Any:
        system = factory(world)
        real = system.artefacts
        system.artefacts = lambda: real() if honest[0] else Artefacts(ca_certs=real().ca_certs, certs=real().certs, crls=())  # type: ignore[method-assign]
        return system

    run = Lockstep(make, scenario.world, timeout=30)
    try:
        for e in scenario.steps:
            run.step(e.action)
        assert not run.broken, run.divergence
        run.finish()
        assert not run.broken, run.divergence  # honest: the final judgement finds nothing
        honest[0] = False
        run.finish()
        assert run.divergence is not None and "published artefacts" in run.divergence.what, run.divergence
        assert run.divergence.index == len(run.steps) - 1 and run.divergence.reqs
    finally:
        run.close()


# --- judged after every step, and what a judgement may reuse (issue 14 part 3, issue 15 part 4) ---------------------------


class _SometimesLyingCrl(ReferenceSystem):
    """Leaves revoked certificates off the phone CRLs while `lying` is set, and tells the truth otherwise."""

    lying = False

    def artefacts(self) -> Artefacts:
        return self._build_artefacts()  # not the records-keyed cache: the lie depends on the flag, not on the records

    def _crl(self, kind: Kind, profile: Profile | None, entries: tuple[Any, ...]) -> bytes:
        if self.lying and profile is Profile.PHONE:
            entries = tuple(e for e in entries if e[2].status is not CertStatus.REVOKED)
        return super()._crl(kind, profile, entries)


def _judged_before(pre: Any, post: Any, *, index: int, action: str) -> bool:
    """When the artefacts were judged before they were judged after every step (the old published_due): the first step,
    a changed certificate or publication, AdvanceTime, every 16th step (and the run's end, Lockstep.finish)."""
    changed = set(post.certs) ^ set(pre.certs) or pre.published ^ post.published
    return index == 0 or index % 16 == 0 or bool(changed) or action == "AdvanceTime"


def test_a_lie_between_the_old_judgement_points_is_caught_after_the_step() -> None:
    """REV-4: a CRL that leaves a revoked serial off only on odd steps where nothing changed, and tells the truth at the
    run's end, passed when the artefacts were judged only when due; judged after every step it is caught at once."""
    scenario = SCENARIOS["revoke-from-phone"]
    state, pre, lies = initial_state(scenario.world), None, []
    for i, e in enumerate(scenario.steps):
        state, _ = spec_step(scenario.world, state, e.action)
        post = observe(scenario.world, state)
        revoked_phone = any(p is Profile.PHONE and st is CertStatus.REVOKED for p, _s, st in post.published)
        if i % 2 and i < len(scenario.steps) - 1 and revoked_phone and not _judged_before(pre, post, index=i, action=e.action.name):
            lies.append(i)
        pre = post
    assert lies, "the scenario has no odd step the old rule skipped"
    systems: list[_SometimesLyingCrl] = []

    def make(world: World) -> _SometimesLyingCrl:
        ca, keys = shared_parts()
        systems.append(_SometimesLyingCrl(world, ca=ca, card_keys=dict(keys)))
        return systems[-1]

    run = Lockstep(make, scenario.world, timeout=30)
    try:
        for i, e in enumerate(scenario.steps):
            systems[0].lying = i in lies
            run.step(e.action)
            if run.broken:
                break
    finally:
        run.close()
    d = run.divergence
    assert d is not None and d.index == lies[0] and d.what.startswith("published artefacts:"), d
    assert "REV-4" in d.reqs and "which the CRLs do not carry" in d.what


def test_a_judgement_is_made_again_only_when_its_inputs_change() -> None:
    """The judgement is a function of (world, observation, artefacts' bytes, now, OCSP answers' bytes): the same inputs are
    not judged again; other bytes, or another now, are."""
    world = SCENARIOS["revoke-from-phone"].world
    system = factory(world)
    try:
        for e in SCENARIOS["revoke-from-phone"].steps[:11]:  # a phone certificate revoked
            system.step(e.action)
        obs, now = system.observation(), system.now
        judge = ArtefactJudge(world, rotation=0)
        assert judge(obs, system, now=now, index=11, pre=None) == []  # full: every certificate asked over OCSP
        assert judge(obs, system, now=now, index=12, pre=obs) == [] and judge.reused == 0  # fewer OCSP answers: other inputs
        assert judge(obs, system, now=now, index=13, pre=obs) == [] and judge.reused == 1  # the very inputs of the last one
        artefacts = system.artefacts()
        assert system.artefacts() is artefacts  # the reference hands over the same artefacts while records and clock stand
        assert judgement(world, obs, artefacts, now=now) == judgement(world, obs, artefacts, now=now) == ()
        no_crls = Artefacts(ca_certs=artefacts.ca_certs, certs=artefacts.certs, crls=())
        assert any("no current CRL" in f.message for f in judgement(world, obs, no_crls, now=now))
        late = judgement(world, replace(obs, now=now + 2 * 24 * 60), artefacts, now=now + 2 * 24 * 60)
        assert any("not current" in f.message for f in late)
    finally:
        system.close()


def test_the_reference_reissues_a_crl_on_change_or_when_due_and_answers_ocsp_once_per_question() -> None:
    """REV-4, ASM-ARTEFACT-TIME: a CRL stays as issued while its entries are right and thisUpdate <= now < nextUpdate, and
    is issued again (thisUpdate now) when an entry changes or it falls due; the same OCSP question about an unchanged
    record at the same now gets the same answer, a status change a new one."""
    scenario = SCENARIOS["revoke-from-phone"]
    system = factory(scenario.world)
    try:
        for e in scenario.steps[:10]:
            system.step(e.action)
        before = system.artefacts()
        phone_cert = next(c for c in system.records.certificates() if c.profile is Profile.PHONE)
        issuer = x509.load_der_x509_certificate(before.ca_certs[0 if phone_cert.kind is Kind.SIGNING else 1])
        request = build_ocsp_request(certificate=x509.load_der_x509_certificate(phone_cert.der), issuer=issuer, nonce=b"n" * 16)
        request_der = request.public_bytes(serialization.Encoding.DER)
        good = system.ocsp(request_der)
        assert system.ocsp(request_der) == good
        assert ocsp.load_der_ocsp_response(good).certificate_status is ocsp.OCSPCertStatus.GOOD
        system.step(A.AdvanceTime(minutes=60))  # within the CRLs' day: the same lists, still current
        later = system.artefacts()
        assert later.crls == before.crls and verify_artefacts(later, now=system.now).findings == ()
        system.records.revoke(serial=phone_cert.serial, at=system.now, reason=RevocationReason.USER_REQUEST)
        revoked = system.artefacts()
        changed = [a != b for a, b in zip(before.crls, revoked.crls, strict=True)]
        assert sum(changed) == 1  # only the list of that certificate's kind and profile was issued again
        answer = ocsp.load_der_ocsp_response(system.ocsp(request_der))
        assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
        system.step(A.AdvanceTime(minutes=24 * 60))  # past nextUpdate: every list issued again, current at the new now
        due = system.artefacts()
        assert all(a != b for a, b in zip(revoked.crls, due.crls, strict=True))
        for der in due.crls:
            assert x509.load_der_x509_crl(der).last_update_utc == to_utc(system.now)
        assert verify_artefacts(due, now=system.now).findings == ()
    finally:
        system.close()
