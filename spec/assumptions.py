"""Where the sources are silent or disagree: the named assumptions and variants the spec takes."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum

from mjpki.spec.domain import PhoneLinkage

__all__ = ["Assumption", "ASSUMPTIONS", "Variants"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Assumption:
    """A choice the sources leave open, with the requirement IDs it concerns."""

    name: str
    reqs: tuple[str, ...]
    text: str


ASSUMPTIONS: dict[str, Assumption] = {
    a.name: a
    for a in (
        Assumption(
            name="ASM-PUSH-TIMING",
            reqs=("ISS-7", "OPS-2"),
            text="An application made in [08:00, 19:30) gets its push 5 minutes later; any other "
            "time, at the next 08:00. The sources say 'within minutes' and 'from about 08:00'.",
        ),
        Assumption(
            name="ASM-NOT-USABLE-BEFORE-REGISTRATION",
            reqs=("ISS-7", "PIN-2"),
            text="A phone key is usable only after registration and after the real PIN has been set "
            "through the temporary PIN; until then its PIN status is TEMP_BLOCKED.",
        ),
        Assumption(
            name="ASM-ONE-PENDING-APPLICATION",
            reqs=("ISS-2", "ISS-6"),
            text="A person has at most one pending application; a new one supersedes the old, whose "
            "commitment S is discarded (so registering against it fails the H(R)=S check).",
        ),
        Assumption(
            name="ASM-EXISTING-CERTS-BY-PERSON",
            reqs=("ISS-3", "ISS-4", "LNK-3"),
            text="The existing-certificate decision (ISS-4) considers every unrevoked, unexpired phone "
            "certificate of the person, whatever card signing serial it is linked to; looking only at "
            "the current serial would leave two in force during the cascade delay after a renewal.",
        ),
        Assumption(
            name="ASM-OTHER-SE-IS-MODEL-CHANGE",
            reqs=("LNK-4", "LNK-5", "MCH-1"),
            text="Applying on a phone whose SE differs from the one holding the person's live phone "
            "certificates is a model change: all of them, of both kinds, are revoked (consent needed) "
            "and a remote deletion is sent to the old phone.",
        ),
        Assumption(
            name="ASM-REVOKE-AT-APPLICATION",
            reqs=("ISS-4", "MCH-1"),
            text="The old certificates are revoked when the application is accepted (the user consents "
            "in the application), before any key generation or issuance.",
        ),
        Assumption(
            name="ASM-RESUME-WHILE-PHONE-LOST",
            reqs=("SUS-3", "SUS-2", "SUS-1"),
            text="Resumption from the app after a found card needs the card's signature, so it is the "
            "cardholder acting even if the phone is still reported lost: it lifts only the card hold. A "
            "phone certificate also held for the lost phone stays suspended until the phone is reported "
            "found, but the phone signing certificate is revoked and a new signing application may start "
            "on that phone. The sources do not say whether the app should refuse instead.",
        ),
        Assumption(
            name="ASM-CASCADE-AT-DEADLINE",
            reqs=("REV-2",),
            text="The periodic linkage sweep revokes a phone certificate exactly when the cascade delay has "
            "passed since a card certificate it follows (ASM-PHONE-LINKAGE) was revoked; the delay is a "
            "variant. Revoking a card signing certificate as superseded after a hold (a found card) does not "
            "cascade (ASM-CARD-FOUND).",
        ),
        Assumption(
            name="ASM-PHONE-LINKAGE",
            reqs=("LNK-1", "LNK-2", "REV-2", "SUS-2", "VAL-1"),
            text="Which card certificates the phone certificates follow (revocation, suspension, expiry) is the "
            "variant phone_linkage. The law's outline (002) defines 個人番号カード用電子証明書 as both card "
            "certificates and links the phone certificates to them; the issuance flow carries the card signing "
            "certificate's serial (001 p.15), the SE-ID is kept per card signing certificate (001 p.18), 002 p.11 #1 "
            "asks only for a card signing certificate, and 001 p.15 leaves the linkage rule itself open. "
            "card_signing (default, the reading the issuance flow supports): both phone certificates follow the card "
            "signing certificate they were issued on; revoking or suspending the card auth certificate alone leaves "
            "them in force. per_kind: the phone signing certificate follows the card signing certificate, the phone "
            "auth certificate the card auth certificate. either: both follow both; revoking or suspending either card "
            "certificate reaches both phone certificates. A phone certificate follows the person's card certificates "
            "current when it is "
            "registered and expires with the earliest of them (VAL-1); where it is to follow the card auth "
            "certificate, the application and the registration need that certificate in force "
            "(CARD_AUTH_CERT_NOT_VALID).",
        ),
        Assumption(
            name="ASM-CARD-FOUND",
            reqs=("SUS-2", "SUS-3", "VAL-1", "VAL-2", "LNK-2"),
            text="When a lost card is found, the card auth certificate resumes and the card signing "
            "certificate is revoked (superseded after hold, which does not cascade) and re-issued with "
            "the same expiry (unless that expiry has passed during the hold: then it is only revoked, and the "
            "person renews it). The variant card_found_fresh_expiry gives the re-issued certificate a fresh "
            "expiry instead, to the 5th birthday after re-issue (003 FAQ 1). The phone certificates held for the "
            "card stay suspended until the user resumes them from the app with the new card signature: the phone "
            "auth certificate resumes, re-linked to the new card signing certificate, and keeps the expiry written "
            "in it; the phone signing certificate is revoked and a new signing application starts. Only phone "
            "certificates whose card certificates continue are resumed: the card signing one they follow was "
            "re-issued this way (same expiry; with a fresh expiry, one no earlier) and the card auth one they follow "
            "is in force. If one was renewed or revoked for another reason meanwhile, they stay on hold and the "
            "cascade revokes them. With a fresh expiry, a resumed phone auth certificate that follows the card "
            "signing certificate expires before it: VAL-1 then holds as 'never later than its card certificate'.",
        ),
        Assumption(
            name="ASM-APPLET-CHECK-WIPES",
            reqs=("ISS-8", "DEL-1"),
            text="The applet presence check at an app install's first start removes whatever applet is "
            "on the SE, with all its keys and certificates, then installs a fresh one with its access "
            "rules. Certificates whose keys it removed stay at the JPKI system until revoked.",
        ),
        Assumption(
            name="ASM-SE-NOT-STATUS-AWARE",
            reqs=("REV-5", "DEL-3"),
            text="The SE signs whenever it holds the key and the PIN is right; it does not know the "
            "certificate's status. Verifiers enforce REV-5. (The sources leave a technical measure "
            "against signing with a revoked key under study.)",
        ),
        Assumption(
            name="ASM-SCP03-LOCKOUT",
            reqs=("ISS-9",),
            text="Each security domain of the SE (the ISD, the applet's APSD) counts failed SCP03 EXTERNAL "
            "AUTHENTICATEs (wrong host cryptogram or C-MAC) since its last successful one, in non-volatile memory; "
            "after 64 in a row its INITIALIZE UPDATE answers 6983 for good. The sources and GlobalPlatform leave "
            "whether and when a key set is blocked to the issuer's policy; 64 is twice the longest example of the "
            "applet-level search, so the suite's own probes never block such a card.",
        ),
        Assumption(
            name="ASM-SE-SLOT-KEY",
            reqs=("ISS-5", "ISS-6"),
            text="GET SLOT STATUS says whether a slot holds a key, not which one. Where the harness reads a phone's SE "
            "over APDUs, a slot's key is taken to be the one its certificate certifies: WRITE CERTIFICATE installs "
            "only a certificate for the slot's own key (docs/apdu-interface.md), which the applet-level checks judge. "
            "A slot counts as the lifecycle's slot when it holds a key, a certificate and a PIN status (as the "
            "reference reads it); key pairs without a certificate are outside the lifecycle spec's view.",
        ),
        Assumption(
            name="ASM-VERIFIER-ORDER",
            reqs=("ACL-2", "ACL-3", "VAL-3", "REV-5", "SUS-4"),
            text="Before any PIN is asked, the app checks the return URL whitelist and the private "
            "provider's approval. After the key was used, the verifier checks the validity period "
            "first, then revocation, then suspension, at the CRL/OCSP of the certificate's profile.",
        ),
        Assumption(
            name="ASM-RELYING-PARTY-ORDER",
            reqs=("SP-1", "CA-3", "CA-4", "REV-5", "SUS-4"),
            text="A relying party's verifier that accepts one profile only (card or phone certificates) reads the "
            "certificate's profile (its policy OID, CA-3) first and refuses one of the other profile without asking "
            "anyone; only then does it check the validity period and ask the OCSP of the certificate's own profile "
            "(CA-4) in the order of ASM-VERIFIER-ORDER. An OCSP answer of unknown (a certificate this CA never "
            "issued) is a refusal, never good. SP-1 says a verifier can tell the two apart and checks status at the "
            "responder of the certificate's kind; the sources give no order between the two checks.",
        ),
        Assumption(
            name="ASM-CERTIFICATE-BY-ISSUE-ORDER",
            reqs=("SP-1", "CA-2"),
            text="A step that presents a certificate to a verifier names it by person, kind, profile and issue "
            "order (0 the first of those the CA issued), never by serial: a system's serials are its own (CA-2 asks "
            "only that they are unique). An index past the last names a certificate of that person, kind and "
            "profile that this CA never issued (a forgery under the CA's name).",
        ),
        Assumption(
            name="ASM-EXPIRY-INSTANT",
            reqs=("VAL-2",),
            text="A certificate issued at time t expires at 00:00 after the holder's 5th birthday after "
            "t. A 29 February birthday falls on 28 February in common years.",
        ),
        Assumption(
            name="ASM-PIN-RESET-BY-CORRECT-ENTRY",
            reqs=("PIN-3",),
            text="A correct PIN entry restores the full retry count; a wrong one decrements it and at "
            "zero the PIN locks. Only PIN initialisation (PIN-4) unlocks it.",
        ),
        Assumption(
            name="ASM-OS-AUTH-PRESENTS-PIN",
            reqs=("PIN-6", "PIN-3"),
            text="When the OS screen lock or biometrics stand in for the auth PIN, the app presents the "
            "PIN the OS releases to the SE, so a successful use restores the retry count like a typed "
            "correct PIN. A locked PIN still admits no use.",
        ),
        Assumption(
            name="ASM-REVOKE-FROM-PHONE-PER-KIND",
            reqs=("REV-1",),
            text="Revocation from the phone revokes one kind at a time, with that kind's PIN, and then "
            "deletes that kind's key and certificate from the SE. On a certificate already revoked it "
            "only deletes the leftover data.",
        ),
        Assumption(
            name="ASM-DELETION-WARNING",
            reqs=("MCH-3", "MCH-2"),
            text="The app's warning that a remote deletion may fail is part of the answer to the step that sends "
            "the deletion: a model-change application (Apply revoking certificates on another SE) and a revocation "
            "with the card (RevokeWithCard) are accepted with deletion_warning=True. 001 p.24 has the app warn, in "
            "the revocation flow on the new phone, that the old phone's certificates may not be deleted remotely "
            "and that the old phone should then be reset; 003 tells the user to keep the old phone online and that "
            "it must come online within 48 hours. No source has a warning that appears after a failure, or anything "
            "that clears one, so the spec keeps no warning state; a failed deletion shows in AdvanceTime's "
            "deletions_failed.",
        ),
        Assumption(
            name="ASM-SERVICE-HOURS",
            reqs=("OPS-1", "SUS-1", "SUS-2", "SUS-3"),
            text="Every call-centre and municipal-office step is taken at any hour of any day (the default; the "
            "spec has no opening hours). 003 gives 24 hours a day, 365 days a year only for suspending a lost or "
            "stolen phone, and hours (weekdays 09:30-20:00, weekends and holidays 09:30-17:30) only for enquiries "
            "on the same line; it names none for reporting a lost card there. 002 says the office is visited in "
            "its opening hours (開庁時間) but gives none, so the office steps (card certificate issuance, renewal "
            "and revocation, personal data change, found card, found phone) have no hours either. Only the push "
            "has hours (ASM-PUSH-TIMING).",
        ),
        Assumption(
            name="ASM-DELETION-TARGETS-SERIALS",
            reqs=("DEL-1", "MCH-2"),
            text="A remote deletion names the revoked serials; the SE deletes only slots holding those "
            "certificates, so a phone that changed hands keeps its new holder's data.",
        ),
        Assumption(
            name="ASM-ARTEFACT-TIME",
            reqs=("CA-4", "REV-4"),
            text="Artefacts carry the world's time: spec minute t is the UTC instant EPOCH + t minutes (the spec's "
            "midnight read as UTC), in certificates' validity, CRLs' thisUpdate, nextUpdate and revocation dates, and "
            "OCSP answers' thisUpdate and nextUpdate; a CRL or OCSP answer must be current at the world's now. Only "
            "an OCSP answer's producedAt is the real time (the library stamps it); it is not judged. A verifier "
            "outside the suite checks at the world's now: openssl verify -attime, openssl ocsp -validity_period.",
        ),
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Variants:
    """Settings where the sources disagree or leave a number open; defaults are as launched."""

    factory_reset_wipes_se: bool = False
    """DEL-2: the design study wipes the SE on reset (001 p.26); the launched service does not (003)."""
    signing_pin_tries: int = 5
    """PIN-3: wrong entries before the phone signing PIN locks (as on the card)."""
    auth_pin_tries: int = 3
    """PIN-3: wrong entries before the phone auth PIN locks (as on the card)."""
    cascade_delay_minutes: int = 24 * 60
    """REV-2: how long after a card certificate's revocation the sweep revokes the phone certificates that follow it."""
    remote_deletion_removes_applet: bool = False
    """MCH-4: a remote deletion removes keys and certificates only (False) or the applet too (True)."""
    phone_linkage: PhoneLinkage = PhoneLinkage.CARD_SIGNING
    """LNK-2, REV-2, SUS-2, VAL-1: which card certificates the phone certificates follow (ASM-PHONE-LINKAGE):
    card_signing (the default), per_kind or either."""
    card_found_fresh_expiry: bool = False
    """SUS-3, VAL-2: the card signing certificate re-issued for a found card keeps the held one's expiry (False,
    ASM-CARD-FOUND) or runs to the 5th birthday after re-issue (True, 003 FAQ 1)."""

    def __post_init__(self) -> None:
        for name in ("signing_pin_tries", "auth_pin_tries"):
            if not 1 <= getattr(self, name) <= 15:
                raise ValueError(f"{name} must be 1..15 (a retry counter in a status word nibble)")
        if self.cascade_delay_minutes < 0:
            raise ValueError("cascade_delay_minutes must be >= 0 (0 means the same instant)")
        if not isinstance(self.phone_linkage, PhoneLinkage):  # JSON and the command line give the value
            try:
                object.__setattr__(self, "phone_linkage", PhoneLinkage(self.phone_linkage))
            except ValueError:
                allowed = ", ".join(m.value for m in PhoneLinkage)
                raise ValueError(f"phone_linkage must be one of {allowed}, got {self.phone_linkage!r}") from None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The variant names, as the CLI's --variant option takes them."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, items: list[str], base: Variants | None = None) -> Variants:
        """--variant NAME=VALUE options over base (the defaults unless given): a Boolean as true/false, yes/no or 1/0,
        a number as an integer, phone_linkage by its value."""
        start = base or cls()
        values: dict[str, object] = {}
        for item in items:
            name, _, value = item.partition("=")
            if name not in cls.names() or not value:
                raise ValueError(f"--variant takes NAME=VALUE with NAME one of {list(cls.names())}")
            current, low = getattr(start, name), value.lower()
            if isinstance(current, bool):
                if low not in ("0", "1", "true", "false", "yes", "no"):
                    raise ValueError(f"{name} is true or false, not {value!r}")
                values[name] = low in ("1", "true", "yes")
            elif isinstance(current, int):
                try:
                    values[name] = int(value)
                except ValueError:
                    raise ValueError(f"{name} is a whole number, not {value!r}") from None
            else:
                values[name] = value
        return replace(start, **values)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, bool | int | str]:
        """The settings as JSON data (an enum as its value); Variants(**data) reads them back."""
        return {name: (v.value if isinstance(v := getattr(self, name), Enum) else v) for name in self.names()}
