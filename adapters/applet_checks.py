"""Applet-level conformance checks: any AppletAdapter (in process, a PC/SC reader, a third party's applet) run through them.

    from mjpki.adapters.applet_checks import run_checks, render
    results = run_checks(PcscApplet("Virtual PCD 00 00"), keys)
    print(render(results)); assert all(r.passed for r in results)

The checks follow docs/apdu-interface.md. They need the SE's ISD SCP03 keys: the run wipes the JPKI applet and
personalises a fresh one over SCP03 (install, access rule, R, key pairs, certificates from a throw-away test CA,
temporary and real PINs) before it looks at the card interface, so it is destructive: never point it at an SE whose
contents matter. The PINs it sets are `AUTH_PIN` and `SIGNING_PIN`; it locks the auth PIN at the end.

Each check is independent of the order of the ones after it only through the personalisation (check "personalise"):
if that fails, the checks that need a personalised applet fail with that reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mjpki.adapters.applet import AppletAdapter, AppletAdapterError
from mjpki.impl import se_apdu as A
from mjpki.impl.scp03 import SCP03Error, SCP03Host, StaticKeys
from mjpki.impl.se_tsm import SeCommandError, Tsm
from mjpki.spec.domain import Kind, PinStatus

__all__ = ["AUTH_PIN", "SIGNING_PIN", "APP_HASH", "CheckResult", "CHECKS", "run_checks", "render"]

AUTH_PIN: Final = b"1234"
SIGNING_PIN: Final = b"ABC123"
APP_HASH: Final = hashlib.sha256(b"mjpki official app signing certificate").digest()
"""The access rule the checks store admits this app (mjpki.impl.system.OFFICIAL_APP_HASH); a reader needs the SE's reader access."""
_SHA256_DIGEST_INFO: Final = bytes.fromhex("3031300d060960864801650304020105000420")


class CheckFailed(AssertionError):
    """A check's expectation was not met."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One check's verdict."""

    id: str
    title: str
    reqs: tuple[str, ...]
    passed: bool
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class _Ctx:
    adapter: AppletAdapter
    keys: StaticKeys
    auth_tries: int
    signing_tries: int
    certs: dict[Kind, bytes] = field(default_factory=dict)
    ca_certs: dict[Kind, bytes] = field(default_factory=dict)
    personalised: str | None = "not run"
    """None once the personalisation succeeded; else why it did not."""

    def send(self, apdu: bytes) -> tuple[bytes, bytes]:
        response = self.adapter.transmit(apdu)
        if len(response) < 2:
            raise CheckFailed(f"{apdu.hex().upper()}: a response of {len(response)} bytes has no status word")
        return response[:-2], response[-2:]

    def expect(self, apdu: bytes, *sws: bytes, what: str) -> bytes:
        data, sw = self.send(apdu)
        if sw not in sws:
            raise CheckFailed(
                f"{what}: {apdu.hex().upper()} answered {sw.hex().upper()}, expected {' or '.join(s.hex().upper() for s in sws)}"
            )
        return data

    def need_personalised(self) -> None:
        if self.personalised is not None:
            raise CheckFailed(f"needs the personalised applet, but the personalisation failed: {self.personalised}")

    def select_jpki(self) -> None:
        self.expect(A.select_aid(A.JPKI_AID), A.SW_OK, what="SELECT JPKI")

    def verify(self, kind: Kind, pin: bytes | None) -> bytes:
        self.expect(A.select_ef(A.EF_PIN[kind]), A.SW_OK, what="SELECT PIN EF")
        return self.send(A.verify(pin))[1]


def _tries(sw: bytes) -> int | None:
    return sw[1] & 0x0F if sw[0] == 0x63 and sw[1] & 0xF0 == 0xC0 else None


# --- the checks ------------------------------------------------------------------------------------------------------


def _check_isd(ctx: _Ctx) -> None:
    ctx.adapter.reset()
    fci = ctx.expect(A.select_aid(A.ISD_AID, fci=True), A.SW_OK, what="SELECT ISD with FCI")
    if not fci.startswith(b"\x6f") or A.ISD_AID not in fci:
        raise CheckFailed(f"the ISD's FCI {fci.hex().upper()} is not 6F {{ 84 ISD-AID ... }}")


def _check_unknown_aid(ctx: _Ctx) -> None:
    for aid in (bytes.fromhex("A000000063504B43532D3135"), bytes.fromhex("D27600012401"), bytes.fromhex("A0000000030000")):
        ctx.expect(A.select_aid(aid), A.SW_NOT_FOUND, what=f"SELECT unknown AID {aid.hex().upper()}")


def _check_unknown_ins(ctx: _Ctx) -> None:
    ctx.expect(A.select_aid(A.ISD_AID), A.SW_OK, what="SELECT ISD")
    for apdu in (bytes.fromhex("0010000000"), bytes.fromhex("00FE0000"), bytes.fromhex("80FE000000")):
        ctx.expect(apdu, A.SW_INS_NOT_SUPPORTED, what="unknown INS to the ISD")


def _check_malformed(ctx: _Ctx) -> None:
    ctx.expect(A.select_aid(A.ISD_AID), A.SW_OK, what="SELECT ISD")
    cases = [
        (bytes.fromhex("00A404"), A.SW_WRONG_LENGTH, "3-byte APDU"),
        (bytes.fromhex("00A4040C05A0000001"), A.SW_WRONG_LENGTH, "Lc 5 with 3 data bytes"),
        (bytes.fromhex("00A4040C02A000000151"), A.SW_WRONG_LENGTH, "Lc 2 with 5 data bytes (and no valid Le)"),
        (bytes.fromhex("FFA4040C00"), A.SW_CLA_NOT_SUPPORTED, "CLA FF"),
        (bytes.fromhex("01A4040C08") + A.ISD_AID, A.SW_LOGICAL_CHANNEL_NOT_SUPPORTED, "logical channel 1"),
        (bytes.fromhex("0070000001"), A.SW_LOGICAL_CHANNEL_NOT_SUPPORTED, "MANAGE CHANNEL"),
    ]
    for apdu, sw, what in cases:
        ctx.expect(apdu, sw, what=what)


def _open(ctx: _Ctx, aid: bytes, level: int = 0x33) -> SCP03Host:
    ctx.expect(A.select_aid(aid), A.SW_OK, what="SELECT")
    host = SCP03Host(ctx.keys)
    response = ctx.adapter.transmit(host.initialize_update())
    try:
        host.process_initialize_update_response(response)
    except SCP03Error as exc:
        raise CheckFailed(f"INITIALIZE UPDATE: the card did not authenticate itself ({exc}); are the keys the SE's?") from exc
    ctx.expect(host.external_authenticate(level), A.SW_OK, what="EXTERNAL AUTHENTICATE")
    return host


def _check_scp03_mutual(ctx: _Ctx) -> None:
    host = _open(ctx, A.ISD_AID)
    data, sw = _unwrapped(ctx, host, A.get_se_id_isd())
    if sw != A.SW_OK or not data.startswith(b"\xdf\x4a"):
        raise CheckFailed(f"GET DATA (SE-ID) in the session answered {sw.hex().upper()} {data.hex().upper()}")
    # a host that does not know the keys: its cryptogram is wrong, the card must not open the session
    host = SCP03Host(ctx.keys)
    host.process_initialize_update_response(ctx.adapter.transmit(host.initialize_update()))
    ea = bytearray(host.external_authenticate(0x33))
    ea[5] ^= 0x01  # one bit of the host cryptogram
    ctx.expect(bytes(ea), b"\x63\x00", A.SW_SECURITY_STATUS, what="EXTERNAL AUTHENTICATE with a wrong host cryptogram")
    ctx.expect(host.wrap(A.get_se_id_isd()), A.SW_SECURITY_STATUS, what="a wrapped command after a failed authentication")


def _unwrapped(ctx: _Ctx, host: SCP03Host, apdu: bytes) -> tuple[bytes, bytes]:
    response = ctx.adapter.transmit(host.wrap(apdu))
    if len(response) == 2:
        return b"", response
    plain = host.unwrap(response)
    return plain[:-2], plain[-2:]


def _check_scp03_tampered(ctx: _Ctx) -> None:
    host = _open(ctx, A.ISD_AID)
    wrapped = bytearray(host.wrap(A.get_status(0x80)))
    wrapped[-2] ^= 0x01  # one bit of the C-MAC (the last byte is Le)
    ctx.expect(bytes(wrapped), A.SW_SECURITY_STATUS, what="a wrapped command with a tampered C-MAC")
    ctx.expect(host.wrap(A.get_status(0x80)), A.SW_SECURITY_STATUS, what="the next correctly wrapped command (the session must have ended)")
    ctx.expect(A.install_for_install_and_selectable(), A.SW_SECURITY_STATUS, what="plain INSTALL (card management needs SCP03)")
    host = _open(ctx, A.ISD_AID, level=0x01)
    _data, sw = _unwrapped(ctx, host, A.get_status(0x80))
    if sw != A.SW_SECURITY_STATUS:
        raise CheckFailed(f"GET STATUS in a C-MAC-only session (level 01) answered {sw.hex().upper()}, expected 6982")


def _test_cert(ca_key: rsa.RSAPrivateKey, subject: str, public_key: rsa.RSAPublicKey, serial: int, *, ca: bool = False) -> bytes:
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mjpki applet check CA")]))
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _check_personalise(ctx: _Ctx) -> None:
    ctx.personalised = "it raised"
    ctx.adapter.reset()
    tsm = Tsm(ctx.adapter.transmit, ctx.keys)
    try:
        tsm.open_isd()
        if tsm.applet_present():
            tsm.delete_applet()
        if tsm.applet_present():
            raise CheckFailed("GET STATUS still lists the applet after DELETE")
        tsm.install_applet(pin_tries=(ctx.auth_tries, ctx.signing_tries))  # C9: the retry limits
        tsm.store_access_rules({A.JPKI_AID: [APP_HASH]})
        tsm.open_applet()
        s = tsm.generate_r()
        out = tsm.generate_key_pair([Kind.AUTH, Kind.SIGNING])
        if hashlib.sha256(out.r).digest() != s:
            raise CheckFailed("GENERATE KEY PAIR's R does not hash to GENERATE R's commitment S (ISS-2)")
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for n, kind in enumerate((Kind.AUTH, Kind.SIGNING), start=1):
            public_key = serialization.load_der_public_key(out.public_keys[kind])
            assert isinstance(public_key, rsa.RSAPublicKey)
            ctx.certs[kind] = _test_cert(ca_key, f"applet check {kind.value}", public_key, 0x1000 + n)
            ctx.ca_certs[kind] = _test_cert(ca_key, "mjpki applet check CA", ca_key.public_key(), 0x10 + n, ca=True)
            tsm.write_certificate(A.CERT_TARGET[("user", kind)], ctx.certs[kind])
            tsm.write_certificate(A.CERT_TARGET[("ca", kind)], ctx.ca_certs[kind])
            temp = bytes(range(n, n + 16))
            tsm.set_temporary_pin(kind, temp)
            tsm.unblock_and_set_pin(kind, temp, AUTH_PIN if kind is Kind.AUTH else SIGNING_PIN)
        status = tsm.slot_status()
    except SeCommandError as exc:
        ctx.personalised = str(exc)
        raise CheckFailed(f"personalisation over SCP03: {exc}") from exc
    for kind, limit in ((Kind.AUTH, ctx.auth_tries), (Kind.SIGNING, ctx.signing_tries)):
        slot = status.slots[kind]
        serial = x509.load_der_x509_certificate(ctx.certs[kind]).serial_number
        if not slot.key_present or slot.cert_serial != serial or slot.pin_status is not PinStatus.SET or slot.tries_left != limit:
            ctx.personalised = f"GET SLOT STATUS: {slot}"
            raise CheckFailed(f"GET SLOT STATUS after personalisation: {slot}, expected key, serial {serial}, PIN SET, {limit} tries")
    ctx.personalised = None


def _check_select_jpki(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.adapter.reset()
    fci = ctx.expect(A.select_aid(A.JPKI_AID, fci=True), A.SW_OK, what="SELECT JPKI with FCI")
    if not fci.startswith(b"\x6f") or A.JPKI_AID not in fci:
        raise CheckFailed(f"the applet's FCI {fci.hex().upper()} is not 6F {{ 84 JPKI-AID }}")
    ctx.select_jpki()
    for apdu in (bytes.fromhex("0010000000"), bytes.fromhex("00CA000000")):
        ctx.expect(apdu, A.SW_INS_NOT_SUPPORTED, what="unknown INS to the applet")
    ctx.expect(A.select_ef(0x3F01), A.SW_NOT_FOUND, what="SELECT of an EF that does not exist")
    ctx.expect(A.generate_r(), A.SW_SECURITY_STATUS, what="a TSM command sent plain (no SCP03)")


def _read_ef(ctx: _Ctx, fid: int) -> bytes:
    ctx.expect(A.select_ef(fid), A.SW_OK, what=f"SELECT EF {fid:04X}")
    head = ctx.expect(A.read_binary(0, 4), A.SW_OK, what=f"READ BINARY header of {fid:04X}")
    if len(head) != 4 or head[:2] != b"\x30\x82":
        raise CheckFailed(f"EF {fid:04X} does not start with the 4-byte header 30 82 LL LL OpenSC reads: {head.hex().upper()}")
    size = int.from_bytes(head[2:4], "big") + 4
    out = b""
    while len(out) < size:
        left = size - len(out)
        out += ctx.expect(A.read_binary(len(out), 0 if left >= 256 else left), A.SW_OK, what=f"READ BINARY {fid:04X} at {len(out)}")
    return out


def _check_read_certificates(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.adapter.reset()
    ctx.select_jpki()
    for fid, want in (
        (A.EF_CERT[Kind.AUTH], ctx.certs[Kind.AUTH]),
        (A.EF_CA_CERT[Kind.AUTH], ctx.ca_certs[Kind.AUTH]),
        (A.EF_CA_CERT[Kind.SIGNING], ctx.ca_certs[Kind.SIGNING]),
    ):
        if _read_ef(ctx, fid) != want:
            raise CheckFailed(f"EF {fid:04X} does not hold the certificate written")
    ctx.expect(A.select_ef(A.EF_CERT[Kind.SIGNING]), A.SW_OK, what="SELECT signing certificate EF")
    ctx.expect(A.read_binary(0, 4), A.SW_SECURITY_STATUS, what="READ BINARY of the signing certificate before the signing PIN")
    ctx.expect(A.select_ef(A.EF_KEY[Kind.AUTH]), A.SW_OK, what="SELECT auth key EF")
    ctx.expect(A.read_binary(0, 4), A.SW_INCOMPATIBLE_FILE, what="READ BINARY of a private key EF")
    if ctx.verify(Kind.SIGNING, SIGNING_PIN) != A.SW_OK:
        raise CheckFailed("VERIFY with the right signing PIN did not answer 9000")
    if _read_ef(ctx, A.EF_CERT[Kind.SIGNING]) != ctx.certs[Kind.SIGNING]:
        raise CheckFailed("the signing certificate read after VERIFY is not the one written")
    ctx.expect(A.select_ef(A.EF_CERT[Kind.AUTH]), A.SW_OK, what="SELECT auth certificate EF")
    ctx.expect(A.read_binary(0x7000, 4), A.SW_WRONG_OFFSET, what="READ BINARY past the end")


def _check_verify_empty(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.select_jpki()
    for kind, limit in ((Kind.AUTH, ctx.auth_tries), (Kind.SIGNING, ctx.signing_tries)):
        sw = ctx.verify(kind, None)
        if _tries(sw) != limit:
            raise CheckFailed(
                f"empty VERIFY of the {kind.value} PIN answered {sw.hex().upper()}, expected 63C{limit:X} (OpenSC's PIN status query)"
            )


def _sign(ctx: _Ctx, kind: Kind, message: bytes) -> tuple[bytes, bytes]:
    ctx.expect(A.select_ef(A.EF_KEY[kind]), A.SW_OK, what="SELECT key EF")
    return ctx.send(A.compute_signature(_SHA256_DIGEST_INFO + hashlib.sha256(message).digest()))


def _check_sign_after_verify(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.adapter.reset()
    ctx.select_jpki()
    for kind, pin in ((Kind.AUTH, AUTH_PIN), (Kind.SIGNING, SIGNING_PIN)):
        message = f"mjpki applet check {kind.value}".encode()
        _data, sw = _sign(ctx, kind, message)
        if sw != A.SW_SECURITY_STATUS:
            raise CheckFailed(
                f"COMPUTE DIGITAL SIGNATURE with the {kind.value} key before VERIFY answered {sw.hex().upper()}, expected 6982"
            )
        if ctx.verify(kind, pin) != A.SW_OK:
            raise CheckFailed(f"VERIFY with the right {kind.value} PIN did not answer 9000")
        signature, sw = _sign(ctx, kind, message)
        if sw != A.SW_OK or len(signature) != 256:
            raise CheckFailed(f"COMPUTE DIGITAL SIGNATURE after VERIFY answered {sw.hex().upper()} with {len(signature)} bytes")
        public_key = x509.load_der_x509_certificate(ctx.certs[kind]).public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        try:
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise CheckFailed(f"the {kind.value} signature does not verify with the certificate's key (CA-5)") from exc


def _check_reset_clears(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.select_jpki()
    if ctx.verify(Kind.AUTH, AUTH_PIN) != A.SW_OK:
        raise CheckFailed("VERIFY with the right auth PIN did not answer 9000")
    ctx.adapter.reset()
    ctx.expect(A.read_binary(0, 4), A.SW_INS_NOT_SUPPORTED, what="READ BINARY after reset (the ISD is selected again)")
    ctx.select_jpki()
    ctx.expect(A.read_binary(0, 4), A.SW_NO_CURRENT_EF, what="READ BINARY after reset and SELECT (no current EF)")
    _data, sw = _sign(ctx, Kind.AUTH, b"after reset")
    if sw != A.SW_SECURITY_STATUS:
        raise CheckFailed(f"signing after a reset without a new VERIFY answered {sw.hex().upper()}, expected 6982")


def _check_wrong_pin(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.select_jpki()
    limit = ctx.signing_tries
    sw = ctx.verify(Kind.SIGNING, b"WRONG1")
    if _tries(sw) != limit - 1:
        raise CheckFailed(f"a wrong signing PIN answered {sw.hex().upper()}, expected 63C{limit - 1:X}")
    if _tries(ctx.verify(Kind.SIGNING, None)) != limit - 1:
        raise CheckFailed("the empty VERIFY does not show the try spent")
    if ctx.verify(Kind.SIGNING, SIGNING_PIN) != A.SW_OK or _tries(ctx.verify(Kind.SIGNING, None)) != limit:
        raise CheckFailed("the right PIN did not reset the counter to the limit (PIN-3)")


def _check_lock(ctx: _Ctx) -> None:
    ctx.need_personalised()
    ctx.select_jpki()
    limit = ctx.auth_tries
    for left in range(limit - 1, -1, -1):
        sw = ctx.verify(Kind.AUTH, b"0000")
        if _tries(sw) != left:
            raise CheckFailed(f"wrong auth PIN with {left + 1} tries left answered {sw.hex().upper()}, expected 63C{left:X}")
    sw = ctx.verify(Kind.AUTH, AUTH_PIN)
    if sw != A.SW_AUTH_BLOCKED:
        raise CheckFailed(f"the right PIN after the lock answered {sw.hex().upper()}, expected 6983 (PIN-3)")
    sw = ctx.verify(Kind.AUTH, None)
    if sw != b"\x63\xc0":
        raise CheckFailed(f"empty VERIFY of a locked PIN answered {sw.hex().upper()}, expected 63C0 (OpenSC needs SW1 63)")
    _data, sw = _sign(ctx, Kind.AUTH, b"locked")
    if sw != A.SW_SECURITY_STATUS:
        raise CheckFailed(f"signing with a locked PIN answered {sw.hex().upper()}, expected 6982")
    ctx.adapter.reset()
    ctx.select_jpki()
    if ctx.verify(Kind.AUTH, AUTH_PIN) != A.SW_AUTH_BLOCKED:
        raise CheckFailed("a reset unlocked the PIN")


CHECKS: Final[tuple[tuple[str, str, tuple[str, ...], Callable[[_Ctx], None]], ...]] = (
    ("isd-select", "after reset the ISD answers SELECT with its FCI", (), _check_isd),
    ("unknown-aid", "SELECT of an unknown AID answers 6A82 (OpenSC probes ~30)", (), _check_unknown_aid),
    ("unknown-ins", "an unknown INS answers 6D00", (), _check_unknown_ins),
    ("malformed", "malformed APDUs get ISO status words (6700, 6E00, 6881)", (), _check_malformed),
    ("scp03-mutual-auth", "SCP03 mutual authentication; a wrong host cryptogram opens nothing", ("ISS-9",), _check_scp03_mutual),
    (
        "scp03-tampered",
        "a tampered C-MAC is refused and ends the session; plain card management is refused",
        ("ISS-9",),
        _check_scp03_tampered,
    ),
    (
        "personalise",
        "install and personalise over SCP03 (R, key pairs, certificates, PINs)",
        ("ISS-2", "ISS-5", "ISS-6", "PIN-2"),
        _check_personalise,
    ),
    ("select-jpki", "SELECT JPKI; unknown INS/EF; TSM commands refused plain", ("ACL-1",), _check_select_jpki),
    (
        "read-certificates",
        "READ BINARY of the certificates with the 30 82 header; signing certificate after the PIN",
        ("ISS-6",),
        _check_read_certificates,
    ),
    ("verify-empty", "empty VERIFY answers 63Cx with the tries left", ("PIN-3",), _check_verify_empty),
    (
        "sign-after-verify",
        "COMPUTE DIGITAL SIGNATURE only after VERIFY; RSA PKCS#1 v1.5 verifies",
        ("CA-5", "PIN-3"),
        _check_sign_after_verify,
    ),
    ("reset-clears", "a reset clears selection, current EF and verified PINs", (), _check_reset_clears),
    ("wrong-pin", "a wrong PIN spends a try, the right one resets the counter", ("PIN-3",), _check_wrong_pin),
    (
        "lock",
        "the last wrong try locks the PIN; locked: 6983, empty VERIFY 63C0, no signature, a reset does not help",
        ("PIN-3",),
        _check_lock,
    ),
)
"""(id, title, requirement IDs, check), run in this order."""


def run_checks(adapter: AppletAdapter, keys: StaticKeys, *, auth_tries: int = 3, signing_tries: int = 5) -> list[CheckResult]:
    """Run every check on the adapter's applet (destructive: see the module doc); one result per check, in order."""
    ctx = _Ctx(adapter=adapter, keys=keys, auth_tries=auth_tries, signing_tries=signing_tries)
    results: list[CheckResult] = []
    for cid, title, reqs, check in CHECKS:
        try:
            check(ctx)
        except CheckFailed as exc:
            results.append(CheckResult(id=cid, title=title, reqs=reqs, passed=False, detail=str(exc)))
        except (AppletAdapterError, SeCommandError, SCP03Error, ValueError) as exc:
            results.append(CheckResult(id=cid, title=title, reqs=reqs, passed=False, detail=f"{type(exc).__name__}: {exc}"))
        else:
            results.append(CheckResult(id=cid, title=title, reqs=reqs, passed=True))
    return results


def render(results: list[CheckResult]) -> str:
    """The results as lines: PASS/FAIL, id, title, and why a check failed."""
    lines = [f"{'PASS' if r.passed else 'FAIL'}  {r.id:<18} {r.title}" + ("" if r.passed else f"\n      {r.detail}") for r in results]
    passed = sum(r.passed for r in results)
    lines.append(f"{passed}/{len(results)} checks passed")
    return "\n".join(lines)
