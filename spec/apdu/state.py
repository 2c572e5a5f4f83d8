"""The applet-level model's state: what a GP-SE with the JPKI applet holds, as a reader can come to know it.

Frozen values only. Values the card chooses are kept as far as the host has seen them: a key slot knows its public key
once GENERATE KEY PAIR's output has been read whole, R is known only by its commitment S until the output gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from mjpki.spec.domain import Kind, PinStatus
from mjpki.spec.fmap import FrozenMap

__all__ = ["Domain", "CardConfig", "Session", "Slot", "Output", "Chain", "Applet", "CardState", "initial_state"]


class Domain(Enum):
    """The two security domains: the issuer's (ISD), and the applet provider's (APSD), reached through the selected applet."""

    ISD = "isd"
    APSD = "apsd"


@dataclass(frozen=True, slots=True, kw_only=True)
class CardConfig:
    """What the model is told about the card under test: its SE-ID, who is calling, and the default PIN retry limits."""

    se_id: str
    caller: bytes | None = None
    """SHA-256 of the calling app's signing certificate, or None for a reader with no app."""
    reader_access: bool = True
    """Whether a reader (caller None) may reach the applet (ACL-1)."""
    auth_tries: int = 3
    signing_tries: int = 5

    def default_limit(self, kind: Kind) -> int:
        """The retry limit an installation without C9 limits gets."""
        return self.auth_tries if kind is Kind.AUTH else self.signing_tries


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One security domain's SCP03 state on the card."""

    pending: bool = False
    """INITIALIZE UPDATE answered; the next EXTERNAL AUTHENTICATE may open a session."""
    level: int | None = None
    """The open session's security level, or None."""
    counter: int | None = None
    """The last sequence counter the card announced (non-volatile: it only grows)."""
    host_ahead: bool = False
    """A wrapped command was refused before the card verified it (ACL-1), so the host's MAC chaining has moved on and
    the card's has not: the next wrapped command cannot verify."""
    failures: int = 0
    """Failed EXTERNAL AUTHENTICATEs since the last successful one (non-volatile; ASM-SCP03-LOCKOUT)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One kind's key pair, certificate and PIN (pin_status None: no PIN at all)."""

    key: bool = False
    spki: bytes | None = None
    """The public key (DER SubjectPublicKeyInfo) once the host has read it; None while unknown."""
    cert: bytes | None = None
    serial: int | None = None
    pin: bytes | None = None
    pin_status: PinStatus | None = None
    tries: int = 0
    temp_pin: bytes | None = None
    temp_tries: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Output:
    """A long output waiting for GET OUTPUT: its length, the bytes seen so far, and what it must hold."""

    total: int
    seen: FrozenMap[int, int] = field(default_factory=FrozenMap)
    """Offset -> byte, for every byte of the output the host has received."""
    kinds: tuple[Kind, ...] = ()
    commitment: bytes | None = None
    """S = SHA-256(R) that the R at the end must match (None if the host never saw S)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Chain:
    """Blocks of a chained command (STORE DATA, WRITE CERTIFICATE) received so far."""

    ins: int
    p1: int
    next_block: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Applet:
    """The installed JPKI applet with its APSD."""

    limits: FrozenMap[Kind, int]
    slots: FrozenMap[Kind, Slot]
    ca_certs: FrozenMap[Kind, bytes] = field(default_factory=FrozenMap)
    r_pending: bool = False
    commitment: bytes | None = None
    """The last S = SHA-256(R) the applet answered."""
    apsd: Session = field(default_factory=Session)


@dataclass(frozen=True, slots=True, kw_only=True)
class CardState:
    """The whole card: non-volatile (rules, applet, counters) and volatile (selection, EF, PINs verified, output, chain)."""

    config: CardConfig
    rules: FrozenMap[bytes, tuple[bytes, ...]] = field(default_factory=FrozenMap)
    applet: Applet | None = None
    isd: Session = field(default_factory=Session)
    applet_selected: bool = False
    current_ef: int | None = None
    verified: frozenset[Kind] = frozenset()
    output: Output | None = None
    chain: Chain | None = None
    last_challenge: bytes | None = None
    """The last GET CHALLENGE answer, so that a repeated one is caught."""
    caller: bytes | None = None
    """Who sends the commands now (SwitchCaller); starts as config.caller."""


def initial_state(config: CardConfig, *, installed: bool = False) -> CardState:
    """A card as it leaves the factory (no applet), or with an empty applet installed (default limits, no rule)."""
    applet = None
    if installed:
        applet = Applet(
            limits=FrozenMap((k, config.default_limit(k)) for k in Kind),
            slots=FrozenMap((k, Slot()) for k in Kind),
        )
    return CardState(config=config, applet=applet, caller=config.caller)
