"""Where the sources are silent or disagree: the named assumptions and variants the spec takes."""

from __future__ import annotations

from dataclasses import dataclass, fields

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
            text="The periodic linkage sweep revokes a linked phone certificate exactly when the cascade "
            "delay has passed since the card signing certificate was revoked; the delay is a variant. "
            "Phone certificates are linked to the card signing certificate only, so revoking a card "
            "auth certificate alone does not cascade.",
        ),
        Assumption(
            name="ASM-CARD-FOUND",
            reqs=("SUS-2", "SUS-3", "VAL-1", "LNK-2"),
            text="When a lost card is found, the card auth certificate resumes and the card signing "
            "certificate is revoked (superseded after hold, which does not cascade) and re-issued with "
            "the same expiry (unless that expiry has passed during the hold: then it is only revoked, and the "
            "person renews it). The linked phone certificates stay suspended until the user resumes them "
            "from the app with the new card signature: the phone auth certificate is re-linked to the "
            "new card signing certificate and resumes; the phone signing certificate is revoked and a "
            "new signing application starts. Only phone certificates whose card signing certificate was "
            "re-issued this way are resumed: if it was renewed or revoked for another reason meanwhile, "
            "they stay on hold and the cascade revokes them.",
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
            name="ASM-VERIFIER-ORDER",
            reqs=("ACL-2", "ACL-3", "VAL-3", "REV-5", "SUS-4"),
            text="Before any PIN is asked, the app checks the return URL whitelist and the private "
            "provider's approval. After the key was used, the verifier checks the validity period "
            "first, then revocation, then suspension, at the CRL/OCSP of the certificate's profile.",
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
            name="ASM-DELETION-TARGETS-SERIALS",
            reqs=("DEL-1", "MCH-2"),
            text="A remote deletion names the revoked serials; the SE deletes only slots holding those "
            "certificates, so a phone that changed hands keeps its new holder's data.",
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
    """REV-2: how long after a card signing revocation the sweep revokes the linked phone certificates."""
    remote_deletion_removes_applet: bool = False
    """MCH-4: a remote deletion removes keys and certificates only (False) or the applet too (True)."""

    def __post_init__(self) -> None:
        for name in ("signing_pin_tries", "auth_pin_tries"):
            if not 1 <= getattr(self, name) <= 15:
                raise ValueError(f"{name} must be 1..15 (a retry counter in a status word nibble)")
        if self.cascade_delay_minutes < 0:
            raise ValueError("cascade_delay_minutes must be >= 0 (0 means the same instant)")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The variant names, as the CLI's --variant option takes them."""
        return tuple(f.name for f in fields(cls))
