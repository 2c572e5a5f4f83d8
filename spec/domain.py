"""The spec's vocabulary: identifiers and the finite enumerations its state is made of."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "PersonId",
    "PhoneId",
    "SEId",
    "Serial",
    "Kind",
    "Profile",
    "CertStatus",
    "HoldCause",
    "RevocationReason",
    "CASCADING_REASONS",
    "PinStatus",
    "AuthMethod",
    "SPKind",
    "PhoneLinkage",
]

PersonId = str
"""A person, e.g. "P1"; the holder of one My Number card at a time."""
PhoneId = str
"""A phone (device), e.g. "D1"."""
SEId = str
"""The SE-ID (SE識別ID) of a phone's GP-SE, e.g. "SE-D1"."""
Serial = int
"""A certificate serial number, unique across card and phone certificates (CA-2)."""


class Kind(Enum):
    """The two certificate kinds of JPKI."""

    SIGNING = "signing"  # 署名用: legal e-signatures, carries the basic four data items
    AUTH = "auth"  # 利用者証明用: login, no personal data


class Profile(Enum):
    """Where a certificate lives, which also fixes its profile, CRL and OCSP URL (CA-3, CA-4)."""

    CARD = "card"
    PHONE = "phone"


class CertStatus(Enum):
    """A certificate's status at the JPKI system. Expiry is derived from the clock, not stored."""

    ACTIVE = "active"
    SUSPENDED = "suspended"  # 一時保留 (SUS-1, SUS-2)
    REVOKED = "revoked"  # final (REV-4)


class HoldCause(Enum):
    """Why a certificate is suspended; a certificate resumes only when no cause is left."""

    PHONE_LOST = "phone_lost"  # SUS-1: call centre, lost or stolen phone
    CARD_LOST = "card_lost"  # SUS-2: call centre, lost card


class RevocationReason(Enum):
    """Why a certificate was revoked; the reference CA maps these to X.509 reason codes."""

    USER_REQUEST = "user_request"
    DATA_CHANGE = "data_change"  # the signing certificate carries name and address
    SUPERSEDED = "superseded"  # renewal or re-issuance of the same kind (VAL-3, ISS-4)
    SUPERSEDED_AFTER_HOLD = "superseded_after_hold"  # SUS-3: card found, signing re-issued
    DEVICE_STOPPED = "device_stopped"  # REV-3: model change, transfer, sale, disposal, loss
    CASCADE = "cascade"  # REV-2: the linked card signing certificate was revoked
    SUSPENDED_SIGNING = "suspended_signing"  # SUS-3: a suspended signing cert is never resumed


CASCADING_REASONS: frozenset[RevocationReason] = frozenset(RevocationReason) - {
    # ASM-CARD-FOUND: re-issuing the card signing certificate after a found card does not
    # cascade; the linked phone certificates wait, suspended, for resumption from the app.
    RevocationReason.SUPERSEDED_AFTER_HOLD,
}
"""Revocation reasons of a card signing certificate that cascade to linked phone certificates (REV-2)."""


class PinStatus(Enum):
    """The state of one PIN in the JPKI applet."""

    TEMP_BLOCKED = "temp_blocked"  # PIN-2: temporary PIN set and blocked, the real PIN not yet set
    SET = "set"
    LOCKED = "locked"  # PIN-3: too many wrong entries


class AuthMethod(Enum):
    """How the user unlocks the phone auth key (PIN-6); the signing key always takes its PIN."""

    PIN = "pin"
    OS_CREDENTIAL = "os_credential"  # the OS screen-lock PIN, pattern or password
    BIOMETRIC = "biometric"


class SPKind(Enum):
    """A service provider (verifier): public bodies, or private ones that need approval (ACL-3)."""

    PUBLIC = "public"
    PRIVATE = "private"


class PhoneLinkage(Enum):
    """Which card certificates a phone certificate follows: their revocation (REV-2), suspension (SUS-2) and expiry (VAL-1).

    The sources link the phone certificates to "the card certificates" (個人番号カード用電子証明書, both kinds, in
    the law's outline, 002) and describe the link only from the card signing certificate's side (001 p.15, p.18). The
    variant `phone_linkage` picks a reading (ASM-PHONE-LINKAGE).
    """

    CARD_SIGNING = "card_signing"
    """The default, the reading the issuance flow supports: both phone certificates follow the card signing certificate only."""
    PER_KIND = "per_kind"
    """Each kind follows its own: the phone signing certificate the card signing one, the phone auth certificate the
    card auth one."""
    EITHER = "either"
    """Both phone certificates follow both card certificates: revoking or suspending either cascades to both."""

    def follows(self, kind: Kind) -> frozenset[Kind]:
        """The kinds of card certificate a phone certificate of this kind follows."""
        if self is PhoneLinkage.CARD_SIGNING:
            return frozenset({Kind.SIGNING})
        if self is PhoneLinkage.PER_KIND:
            return frozenset({kind})
        return frozenset({Kind.SIGNING, Kind.AUTH})
