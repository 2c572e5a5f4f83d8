"""The actions of the lifecycle: one frozen dataclass per process the sources describe."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from mjpki.spec.domain import AuthMethod, Kind, PersonId, PhoneId, Profile

__all__ = [
    "Action",
    "ACTION_TYPES",
    "action_from_json",
    # card side
    "IssueCardCertificate",
    "RevokeCardCertificate",
    "ChangePersonalData",
    "ReportCardLost",
    "CardFound",
    # app and applet
    "InstallApp",
    "UninstallApp",
    "PrepareApplet",
    # issuance
    "Apply",
    "DeliverIssuancePush",
    "Register",
    "SetPin",
    # use
    "UnlockScreen",
    "EnrollOsAuth",
    "Authenticate",
    "Sign",
    "UseCard",
    "VerifyCertificate",
    "ChangePin",
    "InitialisePin",
    # revocation, suspension, deletion
    "RevokeFromPhone",
    "RevokeWithCard",
    "ReportPhoneLost",
    "PhoneFound",
    "ResumeFromApp",
    "DeliverDeletionPush",
    # the phone's world
    "SetOnline",
    "SetPushEnabled",
    "FactoryReset",
    "TransferPhone",
    "AdvanceTime",
]


class Action:
    """Base of all actions. Subclasses are frozen keyword-only dataclasses with JSON-able fields."""

    actor: ClassVar[str]
    """Who starts it, for sequence diagrams: user, call_centre, office, push, world, verifier."""

    @property
    def name(self) -> str:
        """The action's name as traces write it."""
        return type(self).__name__

    def to_json(self) -> dict[str, Any]:
        """The action as JSON data: {"action": name, "args": {...}}."""
        args = {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"action": self.name, "args": args}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.to_json()["args"].items())
        return f"{self.name}({args})"


def _to_json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(_to_json(v) for v in value)
    return value


ACTION_TYPES: dict[str, type[Action]] = {}
"""Every action type by name, in the order this module defines them."""


def _action(actor: str) -> Any:
    def wrap(cls: type[Action]) -> type[Action]:
        cls.actor = actor
        made = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        if made.__name__ in ACTION_TYPES:
            raise ValueError(f"action {made.__name__} defined twice")
        ACTION_TYPES[made.__name__] = made
        return made

    return wrap


# --- card side (municipal office, call centre) -------------------------------------------


@_action("office")
class IssueCardCertificate(Action):
    """The municipal office issues or renews a card certificate; the old one of that kind is superseded."""

    person: PersonId
    kind: Kind


@_action("office")
class RevokeCardCertificate(Action):
    """The municipal office revokes a card certificate at the holder's request."""

    person: PersonId
    kind: Kind


@_action("office")
class ChangePersonalData(Action):
    """Name or address changes: the card signing certificate, which carries them, is revoked."""

    person: PersonId


@_action("call_centre")
class ReportCardLost(Action):
    """The call centre suspends the card certificates and the phone certificates linked to them."""

    person: PersonId


@_action("office")
class CardFound(Action):
    """The municipal office lifts the card hold: auth resumes, signing is revoked and re-issued."""

    person: PersonId


# --- app and applet ----------------------------------------------------------------------


@_action("user")
class InstallApp(Action):
    """Install (or reinstall) the official app; the install gets a new push token."""

    phone: PhoneId


@_action("user")
class UninstallApp(Action):
    """Remove the app; its push token becomes invalid."""

    phone: PhoneId


@_action("user")
class PrepareApplet(Action):
    """First start of an app install: remove any leftover applet, install a fresh one (ISS-8)."""

    phone: PhoneId


# --- issuance ----------------------------------------------------------------------------


@_action("user")
class Apply(Action):
    """Apply for phone certificates with the card signature; also the model-change application."""

    person: PersonId
    phone: PhoneId
    kinds: frozenset[Kind]
    signing_pin: str | None = None
    auth_pin: str | None = None
    consent: bool = False
    """The user consents to revoking existing phone certificates (ISS-4, MCH-1)."""
    card_signature_valid: bool = True


@_action("push")
class DeliverIssuancePush(Action):
    """The push service delivers the 'ready to register' notification for the person's application."""

    person: PersonId


@_action("user")
class Register(Action):
    """Tap 'register': key generation in the SE, H(R)=S check, issuance, linkage, write."""

    person: PersonId
    phone: PhoneId


@_action("user")
class SetPin(Action):
    """The app sets the held PIN through the temporary PIN: verify temp, unblock, set (PIN-2)."""

    phone: PhoneId
    kind: Kind


# --- use ---------------------------------------------------------------------------------


@_action("user")
class UnlockScreen(Action):
    """Primary authentication at the OS screen lock (PIN, pattern or password)."""

    phone: PhoneId


@_action("user")
class EnrollOsAuth(Action):
    """Let the OS screen lock or biometrics stand in for the phone auth PIN (PIN-6)."""

    phone: PhoneId
    pin: str


@_action("user")
class Authenticate(Action):
    """Log in at a service provider with the phone auth key; the verifier checks the status."""

    phone: PhoneId
    sp: str
    method: AuthMethod = AuthMethod.PIN
    pin: str | None = None
    official_app: bool = True


@_action("user")
class Sign(Action):
    """Sign for a service provider with the phone signing key; the verifier checks the status."""

    phone: PhoneId
    sp: str
    pin: str | None = None
    method: AuthMethod = AuthMethod.PIN
    official_app: bool = True


@_action("user")
class UseCard(Action):
    """Use a card certificate at a service provider; the verifier checks the card profile's status."""

    person: PersonId
    kind: Kind
    sp: str


@_action("verifier")
class VerifyCertificate(Action):
    """A relying party's verifier checks one certificate: its profile against those it accepts, then its status (SP-1)."""

    person: PersonId
    kind: Kind
    profile: Profile
    """The profile of the certificate presented (CA-3): a card or a phone certificate."""
    index: int
    """Which of the person's certificates of this kind and profile: 0 the first the CA issued, 1 the next, and so on
    (ASM-CERTIFICATE-BY-ISSUE-ORDER); an index past the last names a certificate this CA never issued."""
    accept: Profile
    """The one profile this verifier accepts (a service that takes card certificates only, or phone ones only)."""


@_action("user")
class ChangePin(Action):
    """Change a phone PIN, knowing the current one (PIN-5)."""

    phone: PhoneId
    kind: Kind
    old_pin: str
    new_pin: str


@_action("user")
class InitialisePin(Action):
    """Reset a forgotten or locked phone PIN online with the card signature (PIN-4)."""

    person: PersonId
    phone: PhoneId
    kind: Kind
    new_pin: str
    card_signature_valid: bool = True


# --- revocation, suspension, deletion ------------------------------------------------------


@_action("user")
class RevokeFromPhone(Action):
    """Stop using the phone: revoke one kind with its PIN, no card needed, and delete it (REV-1)."""

    phone: PhoneId
    kind: Kind
    pin: str


@_action("user")
class RevokeWithCard(Action):
    """Revoke all the person's phone certificates from another device with the card signature."""

    person: PersonId
    card_signature_valid: bool = True


@_action("call_centre")
class ReportPhoneLost(Action):
    """The call centre suspends the person's phone certificates, any hour (SUS-1)."""

    person: PersonId


@_action("office")
class PhoneFound(Action):
    """The municipal office lifts a lost-phone hold: auth resumes, signing is revoked (SUS-3)."""

    person: PersonId


@_action("user")
class ResumeFromApp(Action):
    """After a found card: resume the phone certificates from the app with the new card signature."""

    person: PersonId
    phone: PhoneId
    signing_pin: str | None = None
    card_signature_valid: bool = True


@_action("push")
class DeliverDeletionPush(Action):
    """The push service delivers pending remote deletion requests to the phone's app (MCH-2)."""

    phone: PhoneId


# --- the phone's world -------------------------------------------------------------------


@_action("world")
class SetOnline(Action):
    """The phone goes online or offline."""

    phone: PhoneId
    online: bool


@_action("world")
class SetPushEnabled(Action):
    """The user allows or refuses push notifications for the app."""

    phone: PhoneId
    enabled: bool


@_action("user")
class FactoryReset(Action):
    """Reset the phone to factory settings (DEL-2 variant decides what happens to the SE)."""

    phone: PhoneId


@_action("world")
class TransferPhone(Action):
    """Hand, sell or give the phone to another person (DEL-3)."""

    phone: PhoneId
    to: PersonId


@_action("world")
class AdvanceTime(Action):
    """Let time pass; due sweeps run and deletion windows close on the way."""

    minutes: int


def action_from_json(data: dict[str, Any]) -> Action:
    """Build an action from {"action": name, "args": {...}}, with errors that name what is wrong."""
    name = data.get("action")
    if name not in ACTION_TYPES:
        raise ValueError(f"unknown action {name!r}; known actions: {sorted(ACTION_TYPES)}")
    cls = ACTION_TYPES[name]
    hints = typing.get_type_hints(cls)
    args = dict(data.get("args", {}))
    known = {f.name for f in dataclasses.fields(cls)}
    extra = set(args) - known
    if extra:
        raise ValueError(f"{name} takes {sorted(known)}; unexpected {sorted(extra)}")
    kwargs = {k: _from_json(hints[k], v, f"{name}.{k}") for k, v in args.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _enum(cls: type[Enum], value: Any, where: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{where} must be one of {[m.value for m in cls]}, got {value!r}") from None


def _from_json(hint: Any, value: Any, where: str) -> Any:
    if hint in (Kind, AuthMethod, Profile):
        return _enum(hint, value, where)
    if hint == frozenset[Kind]:
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list of kinds, got {value!r}")
        return frozenset(_enum(Kind, v, where) for v in value)
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{where} must be an integer, got {value!r}")
    return value
