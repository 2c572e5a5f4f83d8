"""Deliberately faulty implementations: the reference system with one realistic implementer's mistake each.

Each fault is a small subclass of mjpki.impl.system.ReferenceSystem that overrides one action handler, one helper or one
part (the CA, the SE applet, the SP-TSM, the OCSP responder, the push service), and breaks one
requirement. `FAULTY` registers them with the requirement they break; tests/test_faulty_impls.py shows that the suite
catches each one, with a trace whose divergence names that requirement, and that the reference itself passes.

Every fault differs from the reference only in the way its `doc` states: the overrides call the reference's own code
and change one decision (a comparison, a filter, a counter, a status), so that a later change to the reference reaches
the faulty systems too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

import mjpki.impl.system
from mjpki.adapters.reference import se_keys_for
from mjpki.adapters.system import SystemAdapter
from mjpki.impl.ca import JpkiCa, build_ocsp_request
from mjpki.impl.records import ApplicationRecord, CertRecord, CrlRecord
from mjpki.impl.scp03 import StaticKeys
from mjpki.impl.se import GpSe
from mjpki.impl.se_apdu import SW_OK
from mjpki.impl.se_tsm import Tsm
from mjpki.impl.system import ReferenceSystem
from mjpki.spec import actions as A
from mjpki.spec.clock import from_datetime
from mjpki.spec.domain import CertStatus, HoldCause, Kind, PersonId, PhoneId, Profile, RevocationReason, Serial
from mjpki.spec.outcome import Outcome, accepted, refused
from mjpki.spec.reasons import Reason as R
from mjpki.spec.world import World
from tests.swap import swapped

__all__ = ["Fault", "FAULTY", "LYING", "LYING_SE", "SHARED_PERSONS", "shared_parts", "reference_factory"]

SHARED_PERSONS: tuple[PersonId, ...] = ("P1", "P2", "P3")
"""Persons whose card keys are generated once per process (base_world's); others get fresh keys."""


@cache
def shared_parts() -> tuple[JpkiCa, dict[PersonId, rsa.RSAPrivateKey]]:
    """One CA and one card key per person for every system of the process: RSA key generation is the slow part."""
    ca = JpkiCa.generate()
    keys = {p: rsa.generate_private_key(public_exponent=65537, key_size=2048) for p in SHARED_PERSONS}
    return ca, keys


def _build(cls: type[ReferenceSystem]) -> Callable[[World], SystemAdapter]:
    def make(world: World) -> SystemAdapter:
        ca, keys = shared_parts()
        # The SEs hold the keys $MJPKI_REFERENCE_SE_KEYS gives, as the reference's do, so the suite can read them (mjpki.se_read).
        return cls(world, ca=ca, card_keys=dict(keys), se_keys=se_keys_for(world))

    make.__qualname__ = make.__name__ = cls.__name__
    return make


reference_factory: Callable[[World], SystemAdapter] = _build(ReferenceSystem)
"""The reference system with the shared CA and card keys (what every fault is measured against)."""


# --- the CA and the registration service ----------------------------------------------------------------------------

_CA_DEFAULT_VALIDITY = timedelta(days=5 * 365 + 1)
"""What a generic CA product calls five years."""


class _CaWithDefaultValidity:
    """The JPKI CA configured with its product default validity for end-entity certificates of the phone profile."""

    def __init__(self, ca: JpkiCa) -> None:
        self._ca = ca

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ca, name)

    def issue(self, **kw: Any) -> x509.Certificate:
        if kw.get("profile") is Profile.PHONE:
            kw["not_after"] = kw["not_before"] + _CA_DEFAULT_VALIDITY  # the mistake: not the card's expiry
        return self._ca.issue(**kw)


class CaDefaultValidity(ReferenceSystem):
    """The CA gives phone certificates its default 5-year validity, and the records take the expiry from the certificate."""

    def __init__(self, world: World, **kw: Any) -> None:
        super().__init__(world, **kw)
        self.ca = _CaWithDefaultValidity(self.ca)  # type: ignore[assignment]
        add = self.records.add_phone_cert

        def add_phone_cert(**fields: Any) -> CertRecord:
            # The registration service records what the certificate says, as it should; the certificate is wrong.
            not_after = x509.load_der_x509_certificate(fields["der"]).not_valid_after_utc
            fields["expiry"] = from_datetime(datetime(*not_after.timetuple()[:6]))
            return add(**fields)

        self.records.add_phone_cert = add_phone_cert  # type: ignore[method-assign]


class CommitmentNotChecked(ReferenceSystem):
    """Registration compares the application's S with itself instead of with H(R) of the R the SE uploads."""

    def _do_Register(self, a: A.Register) -> Outcome:
        application = self.records.get_application(a.person)
        if application is None:
            return super()._do_Register(a)
        # The check is still there and still runs; it just never sees R. The early check against the S this SE last
        # answered goes the same way: it is the application's S compared with itself.
        known = self._last_s.pop(a.phone, None)
        try:
            with swapped(mjpki.impl.system, "commitment_of", lambda _r: application.commitment):
                return super()._do_Register(a)
        finally:
            if known is not None:
                self._last_s.setdefault(a.phone, known)


# --- the JPKI system's business rules -------------------------------------------------------------------------------


class ExistingCertsOnThisSeOnly(ReferenceSystem):
    """The existing-certificate lookup of an application looks at this phone's SE only, so a new phone leaves the old one in force."""

    def _do_Apply(self, a: A.Apply) -> Outcome:
        se_id = self.world.phone(a.phone).se_id
        everything = self.live_phone_certs

        def on_this_se(person: PersonId) -> tuple[CertRecord, ...]:
            return tuple(c for c in everything(person) if c.se_id == se_id)

        with swapped(self, "live_phone_certs", on_this_se):
            return super()._do_Apply(a)


class NoCascade(ReferenceSystem):
    """The linkage sweep is never run: phone certificates stay in force after their card signing certificate is revoked."""

    def _sweep(self, until: int) -> list[Serial]:
        return []


class CascadeDelayDoubled(ReferenceSystem):
    """The linkage sweep waits two cascade delays, not one (48 h where the spec's delay is 24 h): the cascade lands a day late."""

    def _sweep(self, until: int) -> list[Serial]:
        # A card certificate revoked at r is due at r + 2 * delay <= until, i.e. r + delay <= until - delay.
        return super()._sweep(until - self.world.variants.cascade_delay_minutes)


class CardFoundResumesSigning(ReferenceSystem):
    """A found card's signing certificate is taken off hold instead of being revoked and re-issued."""

    def _do_CardFound(self, a: A.CardFound) -> Outcome:
        held = [
            c
            for k in Kind
            if (c := self.current_card(a.person, k)) is not None and HoldCause.CARD_LOST in c.holds and c.status is CertStatus.SUSPENDED
        ]
        if not held:
            return refused(R.NOTHING_SUSPENDED)
        for cert in held:
            self.records.remove_hold(serial=cert.serial, cause=HoldCause.CARD_LOST)  # the mistake: signing too
        return accepted(
            resumed=tuple(c.serial for c in held if c.kind is Kind.AUTH),
            reissued=tuple(c.serial for c in held if c.kind is Kind.SIGNING),
        )


class PinInitialisationOnAnySe(ReferenceSystem):
    """PIN initialisation never compares the SE-ID read from the phone with the one on record for the card."""

    def _do_InitialisePin(self, a: A.InitialisePin) -> Outcome:
        here = self.world.phone(a.phone).se_id
        with swapped(self.records, "get_linkage", lambda _card_serial: here):
            return super()._do_InitialisePin(a)


class LiftingOneHoldResumes(ReferenceSystem):
    """Lifting one hold makes the certificate active although another hold remains: the records count only the hold lifted."""

    def __init__(self, world: World, **kw: Any) -> None:
        super().__init__(world, **kw)
        records = self.records
        lift, changeable = records.remove_hold, records._changeable

        def remove_hold(*, serial: Serial, cause: HoldCause) -> CertRecord:
            # The records still delete the one hold and still set the status from the holds they see; they see this one only.
            def seen(s: Serial, action: str) -> CertRecord:
                return replace(changeable(s, action), holds=frozenset({cause}))

            with swapped(records, "_changeable", seen):
                return lift(serial=serial, cause=cause)

        records.remove_hold = remove_hold  # type: ignore[method-assign]


class RevokeWithCardKeepsKeys(ReferenceSystem):
    """Revocation with the card (portal) revokes the phone certificates but sends the old phone no remote deletion."""

    def _do_RevokeWithCard(self, a: A.RevokeWithCard) -> Outcome:
        with swapped(self, "_request_deletion", lambda _certs: None):
            return super()._do_RevokeWithCard(a)


# --- the app --------------------------------------------------------------------------------------------------------


class OsAuthKeepsOldPin(ReferenceSystem):
    """The app keeps the old auth PIN behind the screen lock after a PIN change, so the OS presents a PIN the SE no longer has."""

    def _do_ChangePin(self, a: A.ChangePin) -> Outcome:
        app = self.apps[a.phone]
        kept = app.os_pin
        outcome = super()._do_ChangePin(a)
        app.os_pin = kept  # the mistake: the copy behind the screen lock is never updated
        return outcome


class RevokeFromPhoneSkipsLockedPin(ReferenceSystem):
    """Revocation from the phone skips the PIN once it is locked: stopping use is taken to be harmless, so no PIN is asked."""

    def _do_RevokeFromPhone(self, a: A.RevokeFromPhone) -> Outcome:
        verify = self._verify_pin

        def locked_is_enough(phone: PhoneId, kind: Kind, pin: str | None) -> Outcome | None:
            no = verify(phone, kind, pin)
            return None if no is not None and no.reason is R.PIN_LOCKED else no  # the mistake: a locked PIN lets it through

        with swapped(self, "_verify_pin", locked_is_enough):
            return super()._do_RevokeFromPhone(a)


# --- the SE applet and the SP-TSM -----------------------------------------------------------------------------------


class _SeCounterNotReset(GpSe):
    """A JPKI applet whose VERIFY does not reset the retry counter after a correct PIN."""

    def _check_pin(self, kind: Kind, slot: Any, candidate: bytes) -> bytes:
        before = slot.tries_left
        sw = super()._check_pin(kind, slot, candidate)
        if sw == SW_OK:
            slot.tries_left = before  # the mistake: the counter keeps the wrong entries of earlier sessions
        return sw


class PinCounterNotReset(ReferenceSystem):
    """The SE applet does not reset the PIN retry counter after a correct PIN, so old wrong entries add up to a lock."""

    def __init__(self, world: World, **kw: Any) -> None:
        keys = StaticKeys(enc=secrets.token_bytes(16), mac=secrets.token_bytes(16), dek=secrets.token_bytes(16))
        v = world.variants
        links = {
            ph.id: _SeCounterNotReset(ph.se_id, keys, auth_pin_tries=v.auth_pin_tries, signing_pin_tries=v.signing_pin_tries)
            for ph in world.phones
        }
        super().__init__(world, isd_keys=keys, se_links=links, **kw)


class DeletionOfFirstSerialOnly(ReferenceSystem):
    """The SP-TSM's remote deletion deletes the key and certificate of the request's first serial only."""

    def _sp_tsm_delete(self, phone: PhoneId, serials: set[Serial]) -> tuple[str, ...]:
        return super()._sp_tsm_delete(phone, set(sorted(serials)[:1]))


class DeletionOfWhatTheSlotHoldsNow(ReferenceSystem):
    """The SP-TSM's remote deletion empties the slots of the request's kinds, whatever certificate they hold when it arrives."""

    def _sp_tsm_delete(self, phone: PhoneId, serials: set[Serial]) -> tuple[str, ...]:
        kinds = {self.records.certificate(s).kind for s in serials}
        # The mistake: the request is taken to mean "this phone's signing/auth keys", not these serials' keys (DEL-1).
        held_now = {sl.cert_serial for k, sl in self._slots(phone).items() if k in kinds and sl.cert_serial is not None}
        return super()._sp_tsm_delete(phone, held_now)


class _TsmAuthPinScript:
    """An SP-TSM session whose SET TEMPORARY PIN script addresses the auth PIN whatever kind it is asked for."""

    def __init__(self, tsm: Tsm) -> None:
        self._tsm = tsm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tsm, name)

    def set_temporary_pin(self, kind: Kind, temp_pin: bytes, *, reset: bool = False) -> None:
        self._tsm.set_temporary_pin(Kind.AUTH, temp_pin, reset=reset)  # the mistake: a copy of the auth script


class SigningPinInitResetsAuthPin(ReferenceSystem):
    """PIN initialisation of the signing PIN runs the SP-TSM's auth-PIN script: the auth PIN is reset, the signing one is not."""

    def _do_InitialisePin(self, a: A.InitialisePin) -> Outcome:
        if a.kind is not Kind.SIGNING:
            return super()._do_InitialisePin(a)
        session = self.tsm
        with swapped(self, "tsm", lambda phone: _TsmAuthPinScript(session(phone))):
            return super()._do_InitialisePin(a)


# --- the verifier side ----------------------------------------------------------------------------------------------


class OcspGoodWhileOnHold(ReferenceSystem):
    """The OCSP responder answers good for a suspended certificate: it reports revocations only, not holds."""

    def ocsp_status(self, certificate: x509.Certificate) -> ocsp.OCSPResponse:
        record = self.records.get_certificate(certificate.serial_number)
        if record is None or record.status is not CertStatus.SUSPENDED:
            return super().ocsp_status(certificate)
        request = build_ocsp_request(certificate=certificate, issuer=self.ca.ca(record.kind).certificate)
        return self.ca.build_ocsp_response(
            kind=record.kind,
            request=request.public_bytes(serialization.Encoding.DER),
            status=CertStatus.ACTIVE,  # the mistake: a hold is not a revocation, so "good"
            this_update=self.dt(),
            revoked_at=None,
            reason=None,
        )


class VerifierIgnoresProfile(ReferenceSystem):
    """The relying party's verifier takes a certificate of either profile: it checks the signature and the status, not the policy OID."""

    def _accepts_profile(self, profile: Profile, accept: Profile) -> bool:
        return True  # the mistake: the certificate's profile is not compared with the one the service accepts (SP-1, CA-3)


class VerifierAcceptsUnknown(ReferenceSystem):
    """The relying party's verifier reads an OCSP answer of unknown as good: it looks only for a revocation or a hold."""

    def _ocsp_verdict(self, response: ocsp.OCSPResponse) -> R | None:
        if response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
            return None  # the mistake: "not revoked" read as "good", for a serial the CA never issued (CA-4)
        return super()._ocsp_verdict(response)


# --- the push service -----------------------------------------------------------------------------------------------


class PushIgnoresDueTime(ReferenceSystem):
    """The push service delivers the issuance notice whenever asked, before its due time and outside 08:00-19:30."""

    def _do_DeliverIssuancePush(self, a: A.DeliverIssuancePush) -> Outcome:
        stored = self.records.get_application

        def due_now(person: PersonId) -> ApplicationRecord | None:
            app = stored(person)
            return None if app is None else replace(app, push_due=min(app.push_due, self.now))

        with swapped(self.records, "get_application", due_now):
            return super()._do_DeliverIssuancePush(a)


class DeletionWindowOneDay(ReferenceSystem):
    """The remote deletion's deadline is configured as one day instead of the 48 hours the sources give."""

    def _request_deletion(self, certs: list[CertRecord]) -> None:
        with swapped(mjpki.impl.system, "DELETION_WINDOW", 24 * 60):  # the mistake: 24 h, not 48 h (MCH-2)
            super()._request_deletion(certs)


class DeletionPushIgnoresSetting(ReferenceSystem):
    """The push service delivers the remote deletion to the old app although its notifications are turned off."""

    def _do_DeliverDeletionPush(self, a: A.DeliverDeletionPush) -> Outcome:
        app = self.apps[a.phone]
        enabled = app.push_enabled
        app.push_enabled = True  # the mistake: the user's notification setting is not consulted (_App has slots: no swapped)
        try:
            return super()._do_DeliverDeletionPush(a)
        finally:
            app.push_enabled = enabled


# --- what it publishes: the observation reports what the spec expects, the artefacts do not ---------------------------
# These systems' observation() is the reference's, read from correct records; only their CRLs or OCSP answers are wrong.
# On self-report alone they conform; mjpki.published catches them on the artefacts (tests/test_published.py).


class CrlOmitsRevoked(ReferenceSystem):
    """The phone CRLs list holds only: a revoked phone certificate is left off the list (a status filter gone wrong)."""

    def _crl(self, kind: Kind, profile: Profile | None, entries: tuple[tuple[Kind, Profile, CrlRecord], ...]) -> bytes:
        if profile is Profile.PHONE:  # the mistake: only SUSPENDED entries make it onto the phone lists
            entries = tuple(e for e in entries if e[2].status is CertStatus.SUSPENDED)
        return super()._crl(kind, profile, entries)


class HoldPublishedAsRevocation(ReferenceSystem):
    """A hold goes onto the CRL without the certificateHold reason, so every verifier reads it as a final revocation."""

    def _crl(self, kind: Kind, profile: Profile | None, entries: tuple[tuple[Kind, Profile, CrlRecord], ...]) -> bytes:
        # the mistake: the hold cause is written as a revocation reason (unspecified: no reasonCode at all)
        as_revoked = tuple(
            (k, p, replace(e, reason=RevocationReason.USER_REQUEST) if isinstance(e.reason, HoldCause) else e) for k, p, e in entries
        )
        return super()._crl(kind, profile, as_revoked)


class OcspGoodForUnknown(ReferenceSystem):
    """The OCSP responder answers good for any serial it has no record of (a missing row read as "not revoked")."""

    def ocsp(self, request: bytes) -> bytes:
        parsed = ocsp.load_der_ocsp_request(request)
        serial = parsed.serial_number
        known = 0 < serial < 1 << 63 and self.records.get_certificate(serial) is not None
        kind = next((k for k in Kind if self.ca.names_issuer(parsed, kind=k)), None)
        if known or kind is None:
            return super().ocsp(request)
        response = self.ca.build_ocsp_response(kind=kind, request=parsed, status=CertStatus.ACTIVE, this_update=self.dt())  # the mistake
        return response.public_bytes(serialization.Encoding.DER)


class PhoneListedOnCardCrl(ReferenceSystem):
    """A revoked or held phone certificate is written onto the card CRL of its kind, not the phone one (one list per CA)."""

    def _crl(self, kind: Kind, profile: Profile | None, entries: tuple[tuple[Kind, Profile, CrlRecord], ...]) -> bytes:
        if profile is not None:  # the mistake: the list is chosen by the CA (kind) alone, every entry on the card list
            entries = tuple((k, Profile.CARD, e) for k, _p, e in entries) if profile is Profile.CARD else ()
        return super()._crl(kind, profile, entries)


# --- what its SEs hold: the observation reports the slots the spec expects, the SEs hold something else ---------------
# On self-report alone it conforms; the harness catches it when it reads the SEs over APDUs (mjpki.se_read,
# tests/test_se_read.py).


class DeletionAcknowledgedNotDone(ReferenceSystem):
    """The SP-TSM acknowledges a deletion and drops the slots from its own account, but DELETE KEYS AND CERTIFICATES never
    reaches the SE: the old phone keeps the keys and certificates (a TSM that records the job before it runs it)."""

    def __init__(self, world: World, **kwargs: Any) -> None:
        super().__init__(world, **kwargs)
        self._claimed: set[tuple[PhoneId, Serial]] = set()
        """(phone, certificate serial) the SP-TSM reported deleted."""

    def _slots(self, phone: PhoneId, *, reuse: bool = False) -> dict[Kind, Any]:
        slots = super()._slots(phone, reuse=reuse)  # what GET SLOT STATUS says, less what the TSM believes it deleted
        return {k: s for k, s in slots.items() if (phone, s.cert_serial) not in self._claimed}

    def _sp_tsm_delete(self, phone: PhoneId, serials: set[Serial]) -> tuple[str, ...]:
        targets = {k: s.cert_serial for k, s in self._slots(phone).items() if s.cert_serial in serials}
        for kind, serial in targets.items():  # the mistake: the job is marked done, the DELETE is never sent
            self._claimed.add((phone, serial))  # type: ignore[arg-type]
            self._slot_keys.pop((phone, kind), None)
            self._temp_pins.pop((phone, kind), None)
        return tuple(sorted(k.value for k in targets))


# --- the register ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A deliberately faulty system: what it breaks, what the implementer got wrong, and how to build it."""

    name: str
    breaks: tuple[str, ...]
    """The requirement IDs it breaks: the divergence that catches it must name at least one (most faults name one)."""
    doc: str
    layer: str
    """Where the mistake sits: CA, records, SE applet, SP-TSM, OCSP responder, push service, app, JPKI system."""
    system: type[ReferenceSystem]
    factory: Callable[[World], SystemAdapter]
    caught_by: str
    """The check that catches it first: a scenario id, or "search" when no scenario does and the stateful search must."""


def _fault(name: str, breaks: tuple[str, ...], layer: str, system: type[ReferenceSystem], caught_by: str) -> Fault:
    doc = (system.__doc__ or "").strip()
    return Fault(name=name, breaks=breaks, doc=doc, layer=layer, system=system, factory=_build(system), caught_by=caught_by)


FAULTY: dict[str, Fault] = {
    f.name: f
    for f in (
        _fault("ca-default-validity", ("VAL-1",), "CA", CaDefaultValidity, "issue-both-kinds"),
        _fault("commitment-not-checked", ("ISS-6",), "JPKI system", CommitmentNotChecked, "commitment-binds-the-se"),
        _fault("old-phone-stays-in-force", ("LNK-3",), "JPKI system", ExistingCertsOnThisSeOnly, "model-change-old-online"),
        _fault("no-cascade", ("REV-2",), "JPKI system", NoCascade, "cascade-after-delay"),
        _fault("cascade-delay-doubled", ("REV-2",), "JPKI system", CascadeDelayDoubled, "cascade-after-delay"),
        _fault("card-found-resumes-signing", ("SUS-3",), "JPKI system", CardFoundResumesSigning, "lost-card-found"),
        _fault("pin-init-on-foreign-se", ("PIN-4",), "JPKI system", PinInitialisationOnAnySe, "pin-lock-and-initialise"),
        _fault("pin-counter-not-reset", ("PIN-3",), "SE applet", PinCounterNotReset, "pin-lock-and-initialise"),
        _fault("deletion-first-serial-only", ("MCH-4",), "SP-TSM", DeletionOfFirstSerialOnly, "model-change-old-online"),
        _fault("ocsp-good-while-on-hold", ("SUS-4",), "OCSP responder", OcspGoodWhileOnHold, "lost-phone-found"),
        _fault("push-ignores-due-time", ("ISS-7",), "push service", PushIgnoresDueTime, "issue-both-kinds"),
        _fault("signing-pin-init-resets-auth", ("PIN-2",), "SP-TSM", SigningPinInitResetsAuthPin, "search"),
        _fault("revoke-with-card-keeps-keys", ("MCH-2",), "JPKI system", RevokeWithCardKeepsKeys, "search"),
        # Whichever hold it drops: the card's (found first) while the phone is still lost breaks SUS-1's hold, the phone's
        # while the card is still lost SUS-2's.
        _fault("lifting-one-hold-resumes", ("SUS-2", "SUS-1"), "records", LiftingOneHoldResumes, "held-for-phone-and-card"),
        _fault(
            "deletion-push-ignores-setting", ("MCH-3",), "push service", DeletionPushIgnoresSetting, "deletion-push-while-notifications-off"
        ),
        _fault("revoke-skips-locked-pin", ("REV-1",), "app", RevokeFromPhoneSkipsLockedPin, "revoke-from-phone-with-locked-pin"),
        _fault("os-auth-keeps-old-pin", ("PIN-6",), "app", OsAuthKeepsOldPin, "os-auth-after-pin-change"),
        _fault("deletion-window-one-day", ("MCH-2", "MCH-3"), "push service", DeletionWindowOneDay, "deletion-late-within-48-hours"),
        _fault("verifier-ignores-profile", ("SP-1", "CA-3"), "relying party", VerifierIgnoresProfile, "verifier-tells-phone-from-card"),
        _fault("verifier-accepts-unknown", ("SP-1", "CA-4"), "relying party", VerifierAcceptsUnknown, "verifier-tells-phone-from-card"),
        _fault(
            "deletion-of-what-the-slot-holds-now",
            ("DEL-1",),
            "SP-TSM",
            DeletionOfWhatTheSlotHoldsNow,
            "deletion-after-the-slot-changed-hands",
        ),
    )
}
"""The faulty systems by name."""


LYING: dict[str, Fault] = {
    f.name: f
    for f in (
        _fault("crl-omits-revoked", ("REV-4",), "CA (CRL)", CrlOmitsRevoked, "revoke-from-phone"),
        _fault("hold-published-as-revocation", ("SUS-4",), "CA (CRL)", HoldPublishedAsRevocation, "lost-phone-found"),
        _fault("ocsp-good-for-unknown", ("SP-1",), "OCSP responder", OcspGoodForUnknown, "issue-both-kinds"),
        _fault("phone-listed-on-card-crl", ("CA-4",), "CA (CRL)", PhoneListedOnCardCrl, "revoke-from-phone"),
    )
}
"""Systems whose observation() reports what the spec expects while their artefacts are wrong: only mjpki.published catches them."""


LYING_SE: dict[str, Fault] = {
    f.name: f
    for f in (_fault("deletion-acknowledged-not-done", ("MCH-4",), "SP-TSM", DeletionAcknowledgedNotDone, "model-change-old-online"),)
}
"""Systems whose observation() reports the SE slots the spec expects while their SEs hold something else: only the harness's
own reading of the SEs over APDUs (mjpki.se_read) catches them."""
