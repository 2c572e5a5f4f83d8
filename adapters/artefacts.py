"""What a system publishes, as DER: the artefacts the suite verifies itself instead of trusting `observation()`.

A system adapter may implement two optional methods beside the `SystemAdapter` protocol:

- `artefacts() -> Artefacts`: its CA certificates, every certificate it issued, and its current CRLs;
- `ocsp(request: bytes) -> bytes`: its OCSP responder's DER answer to a DER OCSP request (RFC 6960).

When it does, the suite checks signatures, issuers, times and reason codes with `cryptography` and derives the
published statuses and certificate views from them; what `observation()` says about them is then only self-report.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Artefacts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Artefacts:
    """A system's published artefacts, each as DER bytes."""

    ca_certs: tuple[bytes, ...]
    """The issuing CA certificates (one per kind: signing, auth)."""
    certs: tuple[bytes, ...]
    """Every end-entity certificate the system has issued (card and phone certificates), revoked or not."""
    crls: tuple[bytes, ...]
    """The current CRLs: one per (kind, profile) list, and the CRL over the CA certificates themselves if it has one."""

    def __post_init__(self) -> None:
        for name in ("ca_certs", "certs", "crls"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(b, bytes) for b in value):
                raise TypeError(f"Artefacts.{name} must be a tuple of DER bytes, got {type(value).__name__}")
