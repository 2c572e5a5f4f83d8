"""Deliberately faulty GP-SE applets: the reference SE (mjpki.impl.se.GpSe) with one realistic implementer's mistake each.

Each fault is a small subclass of GpSe that overrides one command handler or helper and breaks one line of
docs/apdu-interface.md (quoted in its `doc`) and the requirements named in `reqs`. The overrides call the reference's own
code and change one decision (a check, a counter, a flag, what is cleared or kept), so that a later change to the
reference reaches the faulty applets too. `FAULTY_APPLETS` registers them for the model-based APDU conformance search;
tests/test_faulty_applets_live.py shows each one live: a short hand-written APDU sequence on which its answers differ
from the reference's.

They cover both security domains (the ISD's card management and SCP03, the applet's APSD), every command family of the
applet, the volatile/non-volatile split of a power reset and the access rule (ACL-1). Every class builds like GpSe
(`cls(se_id, keys, ...)`, or `cls.from_snapshot(snapshot)` to load a personalised SE's memory into a faulty applet).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Literal

from cryptography.hazmat.primitives import serialization

import mjpki.impl.se
from mjpki.impl.apdu import CommandApdu
from mjpki.impl.scp03 import SCP03Card
from mjpki.impl.se import _ISD, _JPKI, TSM_MIN_SECURITY_LEVEL, GpSe, Response, _Applet, _checked_certificate, _Slot, _Sw
from mjpki.impl.se_apdu import (
    EF_CERT,
    EF_KEY,
    EF_PIN,
    INS_SELECT,
    INS_WRITE_CERTIFICATE,
    JPKI_AID,
    KIND_BIT,
    MAX_BLOCK,
    MAX_PIN_LEN,
    REF_KIND,
    SW_AUTH_BLOCKED,
    SW_INCORRECT_DATA,
    SW_MORE_DATA,
    SW_OK,
    SW_REFERENCED_DATA_NOT_FOUND,
    SW_SECURITY_STATUS,
    SW_WRONG_OFFSET,
    encode_slot_status,
    pin_well_formed,
    sw_wrong_pin,
)
from mjpki.spec.domain import Kind, PinStatus
from tests.swap import swapped

__all__ = ["Domain", "FaultyApplet", "FAULTY_APPLETS", "FAULTY_APPLETS_BY_ID"]

Domain = Literal["ISD", "APSD", "applet"]
"""Where the mistake sits: the issuer security domain, the applet's security domain (its SCP03), the applet itself."""

_KEBAB = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def _kind_of(files: Mapping[Kind, int], fid: int | None) -> Kind | None:
    """The kind whose EF in `files` is `fid`, if any."""
    return next((kind for kind, f in files.items() if f == fid), None)


# --- the ISD: card management ------------------------------------------------------------------------------------


class InstallOverInstalled(GpSe):
    """INSTALL does not look for an existing instance: a second INSTALL replaces the applet, its keys, certificates, PINs and R."""

    def _isd_install(self, cmd: CommandApdu) -> Response:
        applet, self._applet = self._applet, None  # the mistake: the "already installed" check never sees the old one
        data, sw = super()._isd_install(cmd)
        if sw != SW_OK:
            self._applet = applet
        return data, sw


class DeleteAppletKeepsRule(GpSe):
    """DELETE of the applet removes the instance and its APSD but leaves its access rule in the ISD."""

    def _isd_delete(self, cmd: CommandApdu) -> Response:
        rule = self._access_rules.get(JPKI_AID)
        data, sw = super()._isd_delete(cmd)
        if sw == SW_OK and rule is not None:
            self._access_rules[JPKI_AID] = rule  # the mistake: the ARA-M entry is not part of the deletion
        return data, sw


class StoreDataMergesRules(GpSe):
    """STORE DATA adds a rule's hashes to the AID's existing rule instead of replacing it (a rule with no C1 removes nothing)."""

    def _isd_store_data(self, cmd: CommandApdu) -> Response:
        before = dict(self._access_rules)
        data, sw = super()._isd_store_data(cmd)
        if sw == SW_OK:
            for aid, hashes_ in before.items():
                self._access_rules[aid] = tuple(dict.fromkeys(hashes_ + self._access_rules.get(aid, ())))
        return data, sw


class GetStatusEmptySuccess(GpSe):
    """GET STATUS with no match answers 9000 with an empty list instead of 6A88, so a TSM sees a leftover applet that is not there."""

    def _isd_get_status(self, cmd: CommandApdu) -> Response:
        data, sw = super()._isd_get_status(cmd)
        if sw == SW_REFERENCED_DATA_NOT_FOUND:
            return b"", SW_OK
        return data, sw


class GetDataSeIdPlain(GpSe):
    """GET DATA of the SE-ID is served like public card data: no SCP03 session is needed."""

    def _isd_get_data(self, cmd: CommandApdu, level: int | None) -> Response:
        return super()._isd_get_data(cmd, TSM_MIN_SECURITY_LEVEL)  # the mistake: the session's level is not consulted


# --- SCP03: the ISD and the applet's APSD -------------------------------------------------------------------------------


class IsdAcceptsCmacOnly(GpSe):
    """The ISD checks that card management commands come wrapped, not the session's level: C-MAC only (01) is enough."""

    def _require_secure(self, level: int | None) -> None:
        if level is not None and self._selected == _ISD:
            return
        super()._require_secure(level)


class IsdPlainKeepsSession(GpSe):
    """A plain card management command gets 6982 in the ISD, but the open SCP03 session is not ended."""

    def _require_secure(self, level: int | None) -> None:
        if level is None and self._selected == _ISD:
            raise _Sw(SW_SECURITY_STATUS)  # the mistake: refused without closing the ISD's session
        super()._require_secure(level)


class ApsdAcceptsCmacOnly(GpSe):
    """The applet checks that TSM commands come wrapped, not the session's level: a C-MAC-only (01) session personalises it."""

    def _require_secure(self, level: int | None) -> None:
        if level is not None and self._selected == _JPKI:
            return
        super()._require_secure(level)


class ApsdSessionSurvivesBadMac(GpSe):
    """A wrapped command to the applet whose C-MAC fails gets 6982, but the APSD's session stays open for the next command."""

    def _security_domain(
        self, cmd: CommandApdu, raw: bytes, card: SCP03Card, dispatch: Callable[[CommandApdu, int | None], Response]
    ) -> bytes:
        wrapped = bool(cmd.cla & 0x04) and cmd.ins not in (0x50, 0x82) and card is not self._isd_card
        session = card._session if wrapped else None
        answer = super()._security_domain(cmd, raw, card, dispatch)
        if session is not None and answer == SW_SECURITY_STATUS and not card.is_open:
            card._session = session  # the mistake: the secure messaging error is reported, the session is not torn down
        return answer


# --- the applet: SELECT, files, power reset ----------------------------------------------------------------------------


class ReselectKeepsVerified(GpSe):
    """A SELECT of the applet while it is already selected keeps the PIN-verified flags (treated as a no-op for the applet)."""

    def _select_application(self, cmd: CommandApdu, caller: bytes | None) -> Response:
        reselect = self._selected == _JPKI and cmd.data == JPKI_AID
        verified = set(self._verified)
        data, sw = super()._select_application(cmd, caller)
        if reselect and sw == SW_OK:
            self._verified |= verified
        return data, sw


class SigningCertAnyPin(GpSe):
    """READ BINARY of the signing certificate checks that some PIN is verified, not that the signing PIN is."""

    def _jpki_read_binary(self, cmd: CommandApdu, level: int | None) -> Response:
        if self._current_ef != EF_CERT[Kind.SIGNING] or not self._verified or Kind.SIGNING in self._verified:
            return super()._jpki_read_binary(cmd, level)
        self._verified.add(Kind.SIGNING)
        try:
            return super()._jpki_read_binary(cmd, level)
        finally:
            self._verified.discard(Kind.SIGNING)


class KeyEfReadable(GpSe):
    """The key EFs get the certificates' access condition (free read): READ BINARY returns the private key (PKCS#8 DER)."""

    def _jpki_read_binary(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        kind = _kind_of(EF_KEY, self._current_ef)
        key = None if applet is None or kind is None else applet.slots[kind].key
        if key is None or cmd.data or cmd.ne is None or cmd.p1 & 0x80:
            return super()._jpki_read_binary(cmd, level)
        content = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        if cmd.p1p2 >= len(content):
            return b"", SW_WRONG_OFFSET
        return content[cmd.p1p2 : cmd.p1p2 + min(cmd.ne, 256 if level is None else MAX_BLOCK)], SW_OK


class RetryCounterVolatile(GpSe):
    """The PIN retry counters live in volatile memory: a power reset brings a SET PIN's counter back to the limit."""

    def power_reset(self) -> None:
        super().power_reset()
        applet = self._applet
        if applet is not None:
            for kind, slot in applet.slots.items():
                if slot.pin_status is PinStatus.SET:
                    slot.tries_left = applet.max_tries[kind]


class VerifiedSurvivesReset(GpSe):
    """The PIN-verified flags are cleared when the applet is deselected, not when it is selected: a reset deselects nothing.

    The Java Card habit of resetting session state in deselect(): SELECT of another application or of the applet again
    still clears the flags, but after a power reset the first SELECT of the applet finds the PINs still verified.
    """

    def power_reset(self) -> None:
        verified = set(self._verified)
        super().power_reset()
        self._verified |= verified

    def _select_application(self, cmd: CommandApdu, caller: bytes | None) -> Response:
        deselects_applet = self._selected == _JPKI
        verified = set(self._verified)
        data, sw = super()._select_application(cmd, caller)
        if sw == SW_OK and not deselects_applet:
            self._verified |= verified
        return data, sw


class RVolatile(GpSe):
    """R is kept in volatile (transient) memory: a power reset loses the pending R before registration."""

    def power_reset(self) -> None:
        super().power_reset()
        if self._applet is not None:
            self._applet.r = None


# --- the applet: VERIFY, CHANGE REFERENCE DATA, COMPUTE DIGITAL SIGNATURE ----------------------------------------------


class WrongVerifyKeepsVerified(GpSe):
    """A wrong VERIFY spends a try but leaves an earlier verification standing."""

    def _check_pin(self, kind: Kind, slot: _Slot, candidate: bytes) -> bytes:
        was_verified = kind in self._verified
        sw = super()._check_pin(kind, slot, candidate)
        if was_verified and sw != SW_OK:
            self._verified.add(kind)
        return sw


class CounterNotResetOnSuccess(GpSe):
    """A correct PIN verifies but does not put the retry counter back to the limit: wrong tries add up across sessions."""

    def _check_pin(self, kind: Kind, slot: _Slot, candidate: bytes) -> bytes:
        tries_left = slot.tries_left
        sw = super()._check_pin(kind, slot, candidate)
        if sw == SW_OK:
            slot.tries_left = tries_left
        return sw


class LocksOneTryEarly(GpSe):
    """Off by one: the PIN locks on the wrong try that leaves one try (the check is `tries_left <= 1`)."""

    def _check_pin(self, kind: Kind, slot: _Slot, candidate: bytes) -> bytes:
        sw = super()._check_pin(kind, slot, candidate)
        if sw != SW_OK and slot.tries_left == 1:
            slot.tries_left, slot.pin_status = 0, PinStatus.LOCKED
            return sw_wrong_pin(0)
        return sw


class OneExtraTry(GpSe):
    """Off by one: the PIN locks only on a wrong try made with 0 tries left, so one more try than the limit is allowed."""

    def _check_pin(self, kind: Kind, slot: _Slot, candidate: bytes) -> bytes:
        last_try = slot.tries_left == 1
        sw = super()._check_pin(kind, slot, candidate)
        if last_try and sw != SW_OK:
            slot.pin_status = PinStatus.SET  # the mistake: the counter reached 0, yet the PIN is not locked
        return sw


class EmptyVerify6983WhenLocked(GpSe):
    """The PIN status query (VERIFY without data) answers a locked PIN with 6983, as a VERIFY with data would, not 63C0."""

    def _jpki_verify(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        kind = _kind_of(EF_PIN, self._current_ef)
        locked = applet is not None and kind is not None and applet.slots[kind].pin_status is PinStatus.LOCKED
        if locked and not cmd.data and cmd.p1p2 == 0x0080:
            return b"", SW_AUTH_BLOCKED
        return super()._jpki_verify(cmd, level)


class TempPinVerifiesWhileBlocked(GpSe):
    """VERIFY of a temporarily blocked PIN compares the data with the temporary PIN and, if it matches, verifies the PIN."""

    def _jpki_verify(self, cmd: CommandApdu, level: int | None) -> Response:
        applet = self._applet
        kind = _kind_of(EF_PIN, self._current_ef)
        if applet is not None and kind is not None and cmd.data and cmd.p1p2 == 0x0080:
            slot = applet.slots[kind]
            if slot.pin_status is PinStatus.TEMP_BLOCKED and slot.temp_pin is not None and hmac.compare_digest(cmd.data, slot.temp_pin):
                self._verified.add(kind)  # the mistake: the temporary PIN is taken as the PIN's reference data
                return b"", SW_OK
        return super()._jpki_verify(cmd, level)


class ChangePinP101Unverified(GpSe):
    """CHANGE REFERENCE DATA with P1 01 (new PIN only) checks that the PIN is usable, not that it was verified since the reset/SELECT."""

    def _jpki_change_pin(self, cmd: CommandApdu, level: int | None) -> Response:
        kind = _kind_of(EF_PIN, self._current_ef)
        if cmd.p1 != 0x01 or kind is None or kind in self._verified:
            return super()._jpki_change_pin(cmd, level)
        self._verified.add(kind)
        try:
            return super()._jpki_change_pin(cmd, level)
        finally:
            self._verified.discard(kind)


class SignAuthKeyWithSigningPin(GpSe):
    """COMPUTE DIGITAL SIGNATURE takes the signing PIN, the stronger one, to unlock the auth key as well."""

    def _jpki_sign(self, cmd: CommandApdu, level: int | None) -> Response:
        if self._current_ef != EF_KEY[Kind.AUTH] or Kind.SIGNING not in self._verified or Kind.AUTH in self._verified:
            return super()._jpki_sign(cmd, level)
        self._verified.add(Kind.AUTH)
        try:
            return super()._jpki_sign(cmd, level)
        finally:
            self._verified.discard(Kind.AUTH)


# --- the applet: TSM commands ------------------------------------------------------------------------------------------


class GenerateRKeepsPending(GpSe):
    """GENERATE R draws a new R only when none is pending; otherwise it answers the pending R's commitment again."""

    def _tsm_generate_r(self, applet: _Applet, cmd: CommandApdu) -> Response:
        if applet.r is None:
            return super()._tsm_generate_r(applet, cmd)
        self._expect(cmd)
        return hashlib.sha256(applet.r).digest(), SW_OK


class RReusable(GpSe):
    """GENERATE KEY PAIR does not consume R: a second key generation goes out with the same R."""

    def _tsm_generate_key_pair(self, applet: _Applet, cmd: CommandApdu) -> Response:
        r = applet.r
        answer = super()._tsm_generate_key_pair(applet, cmd)
        if applet.r is None:
            applet.r = r
        return answer


class KeyGenerationKeepsOldCert(GpSe):
    """GENERATE KEY PAIR replaces a slot's key (and PIN) but leaves its old certificate, which now certifies a key that is gone."""

    def _tsm_generate_key_pair(self, applet: _Applet, cmd: CommandApdu) -> Response:
        old = {kind: (slot.cert, slot.cert_serial) for kind, slot in applet.slots.items()}
        data, sw = super()._tsm_generate_key_pair(applet, cmd)
        if sw in (SW_OK, SW_MORE_DATA):
            for kind in Kind:
                if cmd.p1 & KIND_BIT[kind]:
                    applet.slots[kind].cert, applet.slots[kind].cert_serial = old[kind]
        return data, sw


class GetOutputAfterOtherCommand(GpSe):
    """A pending output is dropped only when a new output replaces it: GET OUTPUT still reads it after other commands."""

    def _jpki_dispatch(self, cmd: CommandApdu, level: int | None) -> Response:
        pending = self._output
        answer = super()._jpki_dispatch(cmd, level)
        if self._output is None:
            self._output = pending
        return answer


class GetOutputEmptyAtEnd(GpSe):
    """Off by one in GET OUTPUT: an offset exactly at the end answers 9000 with no data instead of 6B00 (`>` for `>=`)."""

    def _tsm_get_output(self, applet: _Applet, cmd: CommandApdu) -> Response:
        output = self._output
        if output is not None and not cmd.data and cmd.p1p2 == len(output):
            return b"", SW_OK
        return super()._tsm_get_output(applet, cmd)


class WriteCertificateForAnyKey(GpSe):
    """WRITE CERTIFICATE checks that the kind has a key, not that the certificate certifies that key."""

    def _tsm_write_certificate(self, applet: _Applet, cmd: CommandApdu) -> Response:
        chain = self._chain
        before = chain.data if chain is not None and cmd.p2 & 0x7F else b""
        data, sw = super()._tsm_write_certificate(applet, cmd)
        if sw != SW_INCORRECT_DATA or cmd.p1 not in (0x01, 0x02) or not cmd.p2 & 0x80:
            return data, sw
        try:
            der, cert = _checked_certificate(before + cmd.data)
        except ValueError:
            return data, sw  # a malformed certificate is still refused
        slot = applet.slots[REF_KIND[cmd.p1]]
        slot.cert, slot.cert_serial = der, cert.serial_number  # the mistake: installed although its key is another one
        return b"", SW_OK


class WriteCertChainSurvivesOtherCommand(GpSe):
    """A WRITE CERTIFICATE chain is not dropped by an intervening other command: the next block still continues it."""

    def _jpki_dispatch(self, cmd: CommandApdu, level: int | None) -> Response:
        chain = self._chain
        answer = super()._jpki_dispatch(cmd, level)
        if cmd.ins != INS_WRITE_CERTIFICATE and self._chain is None:
            self._chain = chain
        return answer


class TempPinMode00Overwrites(GpSe):
    """SET TEMPORARY PIN validates the mode byte but does not act on it: mode 00 resets a SET or LOCKED PIN like mode 01."""

    def _tsm_set_temporary_pin(self, applet: _Applet, cmd: CommandApdu) -> Response:
        if cmd.p2 == 0x00:
            cmd = replace(cmd, p2=0x01)
        return super()._tsm_set_temporary_pin(applet, cmd)


class SetTempPinKeepsVerified(GpSe):
    """SET TEMPORARY PIN blocks the PIN but does not drop its verified flag: the key still signs in the same session."""

    def _tsm_set_temporary_pin(self, applet: _Applet, cmd: CommandApdu) -> Response:
        verified = set(self._verified)
        answer = super()._tsm_set_temporary_pin(applet, cmd)
        self._verified |= verified
        return answer


class SpentTempPinStillWorks(GpSe):
    """UNBLOCK AND SET PIN does not check the temporary PIN's counter before comparing: a spent temporary PIN still unblocks."""

    def _tsm_unblock_and_set_pin(self, applet: _Applet, cmd: CommandApdu) -> Response:
        kind = REF_KIND.get(cmd.p1)
        slot = None if kind is None else applet.slots[kind]
        if slot is not None and slot.temp_pin is not None and slot.temp_tries_left == 0:
            slot.temp_tries_left = 1  # the mistake: the comparison runs whatever the counter says
            try:
                return super()._tsm_unblock_and_set_pin(applet, cmd)
            finally:
                if slot.pin_status is PinStatus.TEMP_BLOCKED:
                    slot.temp_tries_left = 0
        return super()._tsm_unblock_and_set_pin(applet, cmd)


_PIN_LENGTH_ONLY: ContextVar[bool] = ContextVar("pin_length_only", default=False)


def _pin_check(kind: Kind, pin: bytes) -> bool:
    """mjpki.impl.se's PIN format check while UnblockAcceptsMalformedPin runs: the length alone (4 bytes auth, 6..16 signing).

    Anywhere else (another thread, another SE) it is the real check, so the swap never leaks beyond that one command.
    """
    if _PIN_LENGTH_ONLY.get():
        return len(pin) == 4 if kind is Kind.AUTH else 6 <= len(pin) <= MAX_PIN_LEN
    return pin_well_formed(kind, pin)


class UnblockAcceptsMalformedPin(GpSe):
    """UNBLOCK AND SET PIN checks the new PIN's length only, not its characters (4 digits; upper-case letters and digits)."""

    def _tsm_unblock_and_set_pin(self, applet: _Applet, cmd: CommandApdu) -> Response:
        token = _PIN_LENGTH_ONLY.set(True)
        try:
            with swapped(mjpki.impl.se, "pin_well_formed", _pin_check):
                return super()._tsm_unblock_and_set_pin(applet, cmd)
        finally:
            _PIN_LENGTH_ONLY.reset(token)


class DeleteKeysKeepsKey(GpSe):
    """DELETE KEYS AND CERTIFICATES empties a slot's certificate, PIN and counters but leaves its private key."""

    def _tsm_delete_keys(self, applet: _Applet, cmd: CommandApdu) -> Response:
        old = dict(applet.slots)
        data, sw = super()._tsm_delete_keys(applet, cmd)
        if sw == SW_OK:
            for kind, slot in applet.slots.items():
                if slot is not old[kind]:
                    slot.key = old[kind].key  # the mistake: the key object is not part of the "slot contents" wiped
        return data, sw


class DeleteKeysIgnoresSerial(GpSe):
    """DELETE KEYS with a serial no slot has deletes the kinds named anyway, as if no serial had been given."""

    def _tsm_delete_keys(self, applet: _Applet, cmd: CommandApdu) -> Response:
        data, sw = super()._tsm_delete_keys(applet, cmd)
        if sw == SW_REFERENCED_DATA_NOT_FOUND and cmd.data:
            return super()._tsm_delete_keys(applet, replace(cmd, data=b""))
        return data, sw


class SlotStatusLockedAsSet(GpSe):
    """GET SLOT STATUS derives the PIN status from the PIN value being present, so a LOCKED PIN is reported as SET (02)."""

    def _tsm_get_slot_status(self, applet: _Applet, cmd: CommandApdu) -> Response:
        self._expect(cmd)
        status = self.status()
        slots = {kind: replace(s, pin_status=PinStatus.SET) if s.pin_status is PinStatus.LOCKED else s for kind, s in status.slots.items()}
        return encode_slot_status(replace(status, slots=slots)), SW_OK


# --- access control (ACL-1) -----------------------------------------------------------------------------------------------


class AclCheckedAtSelectOnly(GpSe):
    """The access rule is checked when the applet is selected only; later commands from any caller reach the selected applet."""

    def _process(self, raw: bytes, caller: bytes | None) -> bytes:
        if len(raw) >= 4 and raw[0] & 0xFC == 0x00 and raw[1] == INS_SELECT and raw[2] == 0x04:
            return super()._process(raw, caller)
        self._allowed = lambda _caller: True  # type: ignore[method-assign]  # the mistake: no per-command check
        try:
            return super()._process(raw, caller)
        finally:
            del self._allowed


# --- the register ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultyApplet:
    """A deliberately faulty applet: how to build it, what it breaks, where, and the line of docs/apdu-interface.md it contradicts."""

    id: str
    cls: type[GpSe]
    reqs: tuple[str, ...]
    """Requirement IDs (docs/requirements.md) the fault breaks."""
    family: str
    """The command family the mistake sits in (the command, or "SCP03", "power reset", "access control")."""
    domain: Domain
    doc: str
    """The line of docs/apdu-interface.md it contradicts."""

    def __post_init__(self) -> None:
        if not _KEBAB.fullmatch(self.id):
            raise ValueError(f"faulty applet id {self.id!r} is not kebab-case")
        if not (isinstance(self.cls, type) and issubclass(self.cls, GpSe)) or self.cls is GpSe:
            raise TypeError(f"{self.id}: cls must be a proper subclass of mjpki.impl.se.GpSe")
        if not self.reqs:
            raise ValueError(f"{self.id}: name at least one requirement it breaks")
        if self.domain not in ("ISD", "APSD", "applet"):
            raise ValueError(f"{self.id}: domain must be ISD, APSD or applet, got {self.domain!r}")

    @property
    def mistake(self) -> str:
        """What the implementer got wrong (the first line of the class docstring)."""
        return (self.cls.__doc__ or "").strip().splitlines()[0]


FAULTY_APPLETS: tuple[FaultyApplet, ...] = (
    # ISD: card management
    FaultyApplet(
        id="install-over-installed",
        cls=InstallOverInstalled,
        reqs=("ISS-8",),
        family="INSTALL",
        domain="ISD",
        doc="INSTALL: 'Already installed: 6985.'",
    ),
    FaultyApplet(
        id="delete-applet-keeps-rule",
        cls=DeleteAppletKeepsRule,
        reqs=("ACL-1", "MCH-4"),
        family="DELETE",
        domain="ISD",
        doc="DELETE of the applet 'deletes the applet with all its keys, certificates, PINs and R, its APSD and its access rule'.",
    ),
    FaultyApplet(
        id="store-data-merges-rules",
        cls=StoreDataMergesRules,
        reqs=("ACL-1",),
        family="STORE DATA",
        domain="ISD",
        doc="STORE DATA: 'Each rule replaces the rule of its AID; a rule with no C1 removes it (no app admitted).'",
    ),
    FaultyApplet(
        id="get-status-empty-success",
        cls=GetStatusEmptySuccess,
        reqs=("ISS-8",),
        family="GET STATUS",
        domain="ISD",
        doc="GET STATUS: 'No match (e.g. P1 40 with no applet): 6A88.'",
    ),
    FaultyApplet(
        id="get-data-se-id-plain",
        cls=GetDataSeIdPlain,
        reqs=("ISS-9", "LNK-6", "PIN-4"),
        family="GET DATA",
        domain="ISD",
        doc="GET DATA (SE-ID): 'Needs SCP03 (>= 03), so that the SE-ID the TSM records comes over an authenticated channel.'",
    ),
    FaultyApplet(
        id="isd-accepts-cmac-only",
        cls=IsdAcceptsCmacOnly,
        reqs=("ISS-9",),
        family="SCP03",
        domain="ISD",
        doc="Security levels: 'a wrapped command in a session of level 01 (C-MAC only) gets 6982' (card management needs 03).",
    ),
    FaultyApplet(
        id="isd-plain-keeps-session",
        cls=IsdPlainKeepsSession,
        reqs=("ISS-9",),
        family="SCP03",
        domain="ISD",
        doc="Security levels: 'a plain command (CLA 80) that needs SCP03 gets 6982 and ends any open session'.",
    ),
    # APSD: the applet's secure channel
    FaultyApplet(
        id="apsd-accepts-cmac-only",
        cls=ApsdAcceptsCmacOnly,
        reqs=("ISS-9",),
        family="SCP03",
        domain="APSD",
        doc="TSM commands: accepted only wrapped in an SCP03 session opened to the applet 'at level >= 03; plain or lower: 6982'.",
    ),
    FaultyApplet(
        id="apsd-session-survives-bad-mac",
        cls=ApsdSessionSurvivesBadMac,
        reqs=("ISS-9",),
        family="SCP03",
        domain="APSD",
        doc="Security levels: 'a wrapped command ... whose C-MAC, padding or framing fails, gets 6982 and the session ends'.",
    ),
    # the applet: SELECT, files, power reset
    FaultyApplet(
        id="reselect-keeps-verified",
        cls=ReselectKeepsVerified,
        reqs=("PIN-3",),
        family="SELECT",
        domain="applet",
        doc="SELECT: 'A successful SELECT (even of the application already selected) ... clears ... every PIN-verified flag'.",
    ),
    FaultyApplet(
        id="signing-cert-any-pin",
        cls=SigningCertAnyPin,
        reqs=("DEL-3",),
        family="READ BINARY",
        domain="applet",
        doc="READ BINARY: 'Signing certificate before the signing PIN is verified: 6982.'",
    ),
    FaultyApplet(
        id="key-ef-readable",
        cls=KeyEfReadable,
        reqs=("ISS-5",),
        family="READ BINARY",
        domain="applet",
        doc="Files: the private key EFs are read 'never (6981)'; 'There is no command that reads a private key' (ISS-5).",
    ),
    FaultyApplet(
        id="retry-counter-volatile",
        cls=RetryCounterVolatile,
        reqs=("PIN-3",),
        family="power reset",
        domain="applet",
        doc="Volatile and non-volatile state: the PIN 'counters' are non-volatile; only selection, EF, verified flags, sessions are lost.",
    ),
    FaultyApplet(
        id="verified-survives-reset",
        cls=VerifiedSurvivesReset,
        reqs=("PIN-3",),
        family="power reset",
        domain="applet",
        doc="VERIFY: 'the PIN is verified until reset or a new SELECT'; the PIN-verified flags are volatile (lost on power_reset()).",
    ),
    FaultyApplet(
        id="r-volatile",
        cls=RVolatile,
        reqs=("ISS-2",),
        family="power reset",
        domain="applet",
        doc="GENERATE R: the SE 'keeps it in non-volatile memory (... R must survive resets until registration)'.",
    ),
    # the applet: PINs and signatures
    FaultyApplet(
        id="wrong-verify-keeps-verified",
        cls=WrongVerifyKeepsVerified,
        reqs=("PIN-3",),
        family="VERIFY",
        domain="applet",
        doc="VERIFY: 'wrong PIN: 63Cx with x tries left, the verified flag is dropped'.",
    ),
    FaultyApplet(
        id="counter-not-reset-on-success",
        cls=CounterNotResetOnSuccess,
        reqs=("PIN-3",),
        family="VERIFY",
        domain="applet",
        doc="VERIFY: 'correct PIN: 9000, the counter goes back to the limit'.",
    ),
    FaultyApplet(
        id="locks-one-try-early",
        cls=LocksOneTryEarly,
        reqs=("PIN-3",),
        family="VERIFY",
        domain="applet",
        doc="VERIFY: 'wrong PIN: 63Cx with x tries left ...; the try that reaches 0 answers 63C0 and locks the PIN'.",
    ),
    FaultyApplet(
        id="one-extra-try",
        cls=OneExtraTry,
        reqs=("PIN-3",),
        family="VERIFY",
        domain="applet",
        doc="VERIFY: 'the try that reaches 0 answers 63C0 and locks the PIN (PIN-3)'; then 'PIN locked ...: 6983'.",
    ),
    FaultyApplet(
        id="empty-verify-6983-when-locked",
        cls=EmptyVerify6983WhenLocked,
        reqs=("PIN-3",),
        family="VERIFY",
        domain="applet",
        doc="VERIFY with no data 'always answers SW1 = 63: ... 63C0 when the PIN is locked' (OpenSC fails on 6983).",
    ),
    FaultyApplet(
        id="temp-pin-verifies-while-blocked",
        cls=TempPinVerifiesWhileBlocked,
        reqs=("PIN-2",),
        family="VERIFY",
        domain="applet",
        doc="VERIFY with data: 'PIN locked or temporarily blocked: 6983'.",
    ),
    FaultyApplet(
        id="change-pin-p1-01-unverified",
        cls=ChangePinP101Unverified,
        reqs=("PIN-5",),
        family="CHANGE REFERENCE DATA",
        domain="applet",
        doc="CHANGE REFERENCE DATA: 'P1 01: data = new PIN, accepted only if the PIN has been verified since the last reset/SELECT'.",
    ),
    FaultyApplet(
        id="sign-auth-key-with-signing-pin",
        cls=SignAuthKeyWithSigningPin,
        reqs=("PIN-1", "PIN-3"),
        family="COMPUTE DIGITAL SIGNATURE",
        domain="applet",
        doc="COMPUTE DIGITAL SIGNATURE: 'The matching PIN not verified (auth key: auth PIN, signing key: signing PIN): 6982.'",
    ),
    # the applet: TSM commands
    FaultyApplet(
        id="generate-r-keeps-pending",
        cls=GenerateRKeepsPending,
        reqs=("ISS-2",),
        family="GENERATE R",
        domain="applet",
        doc="GENERATE R: 'The SE draws a 32-byte random R ... A new GENERATE R replaces a pending R.'",
    ),
    FaultyApplet(
        id="r-reusable",
        cls=RReusable,
        reqs=("ISS-2", "ISS-5"),
        family="GENERATE KEY PAIR",
        domain="applet",
        doc="GENERATE KEY PAIR: 'R is consumed ... a second GENERATE KEY PAIR answers 6985 until a new GENERATE R.'",
    ),
    FaultyApplet(
        id="key-generation-keeps-old-cert",
        cls=KeyGenerationKeepsOldCert,
        reqs=("ISS-5", "ISS-6"),
        family="GENERATE KEY PAIR",
        domain="applet",
        doc="GENERATE KEY PAIR: 'the private key stays in the slot, and the slot's old key, certificate and PIN are gone'.",
    ),
    FaultyApplet(
        id="get-output-after-other-command",
        cls=GetOutputAfterOtherCommand,
        reqs=("ISS-5",),
        family="GET OUTPUT",
        domain="applet",
        doc="Long outputs: 'readable only until the next command other than GET OUTPUT ...: afterwards GET OUTPUT answers 6985.'",
    ),
    FaultyApplet(
        id="get-output-empty-at-end",
        cls=GetOutputEmptyAtEnd,
        reqs=("ISS-5",),
        family="GET OUTPUT",
        domain="applet",
        doc="Long outputs: GET OUTPUT with an 'Offset at or past the end: 6B00.'",
    ),
    FaultyApplet(
        id="write-certificate-for-any-key",
        cls=WriteCertificateForAnyKey,
        reqs=("ISS-6",),
        family="WRITE CERTIFICATE",
        domain="applet",
        doc="WRITE CERTIFICATE: 'the certificate certifies exactly that key (6A80: a certificate for another key is never installed)'.",
    ),
    FaultyApplet(
        id="write-cert-chain-survives-other-command",
        cls=WriteCertChainSurvivesOtherCommand,
        reqs=("ISS-6",),
        family="WRITE CERTIFICATE",
        domain="applet",
        doc="WRITE CERTIFICATE: 'a block out of order or for another target, or an intervening other command, drops the chain (6A86)'.",
    ),
    FaultyApplet(
        id="temp-pin-mode-00-overwrites",
        cls=TempPinMode00Overwrites,
        reqs=("PIN-2", "PIN-4"),
        family="SET TEMPORARY PIN",
        domain="applet",
        doc="SET TEMPORARY PIN: 'mode 00 is the initial setting and is refused with 6985 if a PIN is SET or LOCKED'.",
    ),
    FaultyApplet(
        id="set-temp-pin-keeps-verified",
        cls=SetTempPinKeepsVerified,
        reqs=("PIN-2", "PIN-4"),
        family="SET TEMPORARY PIN",
        domain="applet",
        doc="SET TEMPORARY PIN: sets the temporary PIN and blocks the PIN in one step: '... the verified flag dropped'.",
    ),
    FaultyApplet(
        id="spent-temp-pin-still-works",
        cls=SpentTempPinStillWorks,
        reqs=("PIN-2",),
        family="UNBLOCK AND SET PIN",
        domain="applet",
        doc="UNBLOCK AND SET PIN: 'the temporary PIN not spent (else 6983) ... at 0 it is spent and only a new SET TEMPORARY PIN helps'.",
    ),
    FaultyApplet(
        id="unblock-accepts-malformed-pin",
        cls=UnblockAcceptsMalformedPin,
        reqs=("PIN-1", "PIN-2"),
        family="UNBLOCK AND SET PIN",
        domain="applet",
        doc="UNBLOCK AND SET PIN: 'The new PIN must have the kind's format, PIN-1 (6A80, no try spent).'",
    ),
    FaultyApplet(
        id="delete-keys-keeps-key",
        cls=DeleteKeysKeepsKey,
        reqs=("MCH-4", "REV-1"),
        family="DELETE KEYS",
        domain="applet",
        doc="DELETE KEYS AND CERTIFICATES: 'Without data: empties the slot of every kind in the bitmap (key, certificate, PIN, counters)'.",
    ),
    FaultyApplet(
        id="delete-keys-ignores-serial",
        cls=DeleteKeysIgnoresSerial,
        reqs=("DEL-1",),
        family="DELETE KEYS",
        domain="applet",
        doc="DELETE KEYS with a serial: 'if none has, 6A88 and nothing is deleted - a remote deletion never removes another person's data'",
    ),
    FaultyApplet(
        id="slot-status-locked-as-set",
        cls=SlotStatusLockedAsSet,
        reqs=("PIN-3",),
        family="GET SLOT STATUS",
        domain="applet",
        doc="GET SLOT STATUS: '85 01 pin-status: 00 none, 01 TEMP_BLOCKED, 02 SET, 03 LOCKED'.",
    ),
    # access control
    FaultyApplet(
        id="acl-checked-at-select-only",
        cls=AclCheckedAtSelectOnly,
        reqs=("ACL-1",),
        family="access control",
        domain="applet",
        doc="Access control: 'The check runs on SELECT and again on every command while the applet is selected (another caller gets 6982)'",
    ),
)
"""Every faulty applet, grouped by domain and family."""

FAULTY_APPLETS_BY_ID: dict[str, FaultyApplet] = {f.id: f for f in FAULTY_APPLETS}
"""The faulty applets by id."""

if len(FAULTY_APPLETS_BY_ID) != len(FAULTY_APPLETS):
    raise RuntimeError("faulty applet ids must be unique")
