"""Refusal reason codes, shared by the spec, the reference implementation and every adapter."""

from __future__ import annotations

from enum import Enum

__all__ = ["Reason"]


class Reason(Enum):
    """Why an action was refused. Each code names the requirement IDs it enforces.

    Codes marked environmental describe a step the world cannot take (a person acting on a
    phone they do not hold, time running backwards); the harness does not send such steps
    to a system under test, and the spec refuses them only so that every step has an outcome.
    """

    def __new__(cls, value: str, reqs: tuple[str, ...], environmental: bool = False) -> Reason:
        obj = object.__new__(cls)
        obj._value_ = value
        obj.reqs = reqs  # type: ignore[attr-defined]
        obj.environmental = environmental  # type: ignore[attr-defined]
        return obj

    reqs: tuple[str, ...]
    environmental: bool

    # --- the world (never sent to a system under test) ---
    NOT_PHONE_HOLDER = ("not_phone_holder", ("ACT-1",), True)
    INVALID_TIME_STEP = ("invalid_time_step", ("ISS-7",), True)
    ALREADY_IN_THAT_STATE = ("already_in_that_state", ("OPS-2",), True)

    # --- phone, app and applet ---
    APP_NOT_INSTALLED = ("app_not_installed", ("ACT-1",))
    DEVICE_NOT_ELIGIBLE = ("device_not_eligible", ("ACT-3",))
    DEVICE_OFFLINE = ("device_offline", ("OPS-2", "MCH-3"))
    APPLET_NOT_READY = ("applet_not_ready", ("ISS-8", "ACT-2"))
    ACCESS_DENIED = ("access_denied", ("ACL-1",))

    # --- application and issuance ---
    CARD_SIGNING_CERT_NOT_VALID = ("card_signing_cert_not_valid", ("LNK-1", "ISS-1", "ISS-2"))
    # Only where the phone_linkage variant makes a phone certificate follow the card auth certificate:
    CARD_AUTH_CERT_NOT_VALID = ("card_auth_cert_not_valid", ("LNK-1", "LNK-2"))
    CARD_SIGNATURE_INVALID = ("card_signature_invalid", ("ISS-1", "ISS-2", "PIN-4"))
    NO_KIND_SELECTED = ("no_kind_selected", ("LNK-5",))
    PIN_FORMAT_INVALID = ("pin_format_invalid", ("PIN-1",))
    CONSENT_REQUIRED = ("consent_required", ("ISS-4", "MCH-1"))
    NO_APPLICATION = ("no_application", ("ISS-7",))
    PUSH_NOT_DUE = ("push_not_due", ("ISS-7", "OPS-2"))
    PUSH_TOKEN_INVALID = ("push_token_invalid", ("MCH-2", "MCH-3", "DEL-2"))
    PUSH_DISABLED = ("push_disabled", ("MCH-3",))
    NOT_NOTIFIED = ("not_notified", ("ISS-7",))
    COMMITMENT_MISMATCH = ("commitment_mismatch", ("ISS-2", "ISS-6"))

    # --- PINs and key use ---
    NO_CERTIFICATE = ("no_certificate", ("ISS-6", "REV-1"))
    PIN_NOT_SET = ("pin_not_set", ("PIN-2", "ISS-7"))
    NO_PIN_PENDING = ("no_pin_pending", ("PIN-2",))
    PIN_LOCKED = ("pin_locked", ("PIN-3",))
    WRONG_PIN = ("wrong_pin", ("PIN-3",))
    SE_ID_MISMATCH = ("se_id_mismatch", ("PIN-4", "LNK-6"))
    PHONE_CERT_NOT_FOUND = ("phone_cert_not_found", ("PIN-4", "LNK-6"))
    OS_AUTH_NOT_ALLOWED = ("os_auth_not_allowed", ("PIN-6",))
    OS_AUTH_NOT_ENROLLED = ("os_auth_not_enrolled", ("PIN-6",))
    BIOMETRIC_NOT_CLASS3 = ("biometric_not_class3", ("PIN-6",))
    PRIMARY_AUTH_REQUIRED = ("primary_auth_required", ("PIN-6",))

    # --- verification by a service provider ---
    SP_NOT_WHITELISTED = ("sp_not_whitelisted", ("ACL-2",))
    SP_NOT_APPROVED = ("sp_not_approved", ("ACL-3",))
    CERT_EXPIRED = ("cert_expired", ("VAL-3", "REV-5"))
    CERT_REVOKED = ("cert_revoked", ("REV-4", "REV-5", "DEL-3"))
    CERT_SUSPENDED = ("cert_suspended", ("SUS-4", "REV-5"))
    # A certificate of a profile this verifier does not accept (a phone one where only card ones are taken, or vice versa).
    WRONG_PROFILE = ("wrong_profile", ("SP-1", "CA-3"))
    # A certificate this CA never issued: the OCSP of its profile answers unknown, never good.
    UNKNOWN_CERTIFICATE = ("unknown_certificate", ("SP-1", "CA-4"))

    # --- revocation, suspension, deletion ---
    NOTHING_TO_REVOKE = ("nothing_to_revoke", ("REV-4",))
    NOTHING_SUSPENDED = ("nothing_suspended", ("SUS-3",))
    NO_PENDING_DELETION = ("no_pending_deletion", ("MCH-2",))
    DELETION_WINDOW_PASSED = ("deletion_window_passed", ("MCH-2", "MCH-3"))
