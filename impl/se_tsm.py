"""A TSM's side of the GP-SE interface: SCP03 sessions (mjpki.impl.scp03.SCP03Host), the ISD and applet commands of docs/apdu-interface.md.

`Tsm(transmit, keys)` drives any transport that takes a command APDU and returns the response (e.g.
`lambda apdu: se.transmit(apdu, caller=OFFICIAL_APP_HASH)`: the TSM reaches the SE through the official app). Every
command that does not answer as expected raises `SeCommandError` carrying the status word.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from mjpki.impl import se_apdu as A
from mjpki.impl.scp03 import SCP03Error, SCP03Host, StaticKeys
from mjpki.spec.domain import Kind

__all__ = ["SeCommandError", "Tsm", "DEFAULT_SECURITY_LEVEL"]

DEFAULT_SECURITY_LEVEL = 0x33
"""C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION: the temporary PIN and R travel encrypted both ways."""


class SeCommandError(Exception):
    """The SE answered a command with an unexpected status word."""

    def __init__(self, what: str, sw: bytes) -> None:
        super().__init__(f"{what}: SW {sw.hex().upper()}")
        self.sw = sw


class Tsm:
    """A TSM session with one SE: select a security domain, open SCP03 to it, send commands (wrapped once the session is open)."""

    def __init__(self, transmit: Callable[[bytes], bytes], keys: StaticKeys, *, security_level: int = DEFAULT_SECURITY_LEVEL) -> None:
        self._transmit = transmit
        self._keys = keys
        self._level = security_level
        self._host: SCP03Host | None = None

    # --- transport and session -----------------------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """True while a secure channel is open."""
        return self._host is not None and self._host.is_open

    def raw(self, apdu: bytes) -> bytes:
        """Send bytes as they are; the response as it is."""
        return self._transmit(apdu)

    def select(self, aid: bytes) -> None:
        """SELECT by AID (ends any session)."""
        self._host = None
        response = self._transmit(A.select_aid(aid))
        if response != A.SW_OK:
            raise SeCommandError(f"SELECT {aid.hex().upper()}", response[-2:])

    def open_secure_channel(self) -> None:
        """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE to the selected security domain at this TSM's level."""
        host = SCP03Host(self._keys)
        response = self._transmit(host.initialize_update())
        try:
            host.process_initialize_update_response(response)
        except SCP03Error as exc:
            raise SeCommandError("INITIALIZE UPDATE", response[-2:]) from exc
        response = self._transmit(host.external_authenticate(self._level))
        if response != A.SW_OK:
            raise SeCommandError("EXTERNAL AUTHENTICATE", response[-2:])
        self._host = host

    def send(self, apdu: bytes) -> tuple[bytes, bytes]:
        """(data, SW) of a command, wrapped and unwrapped if a session is open."""
        host = self._host
        if host is None or not host.is_open:
            response = self._transmit(apdu)
            return response[:-2], response[-2:]
        response = host.unwrap(self._transmit(host.wrap(apdu)))
        return response[:-2], response[-2:]

    def call(self, apdu: bytes, what: str, *, ok: Iterable[bytes] = (A.SW_OK,)) -> bytes:
        """The response data of a command; SeCommandError unless its SW is in `ok`."""
        data, sw = self.send(apdu)
        if sw not in tuple(ok):
            raise SeCommandError(what, sw)
        return data

    def _long(self, apdu: bytes, what: str) -> bytes:
        """A command whose output may continue (6310) through GET OUTPUT."""
        data, sw = self.send(apdu)
        out = data
        while sw == A.SW_MORE_DATA:
            data, sw = self.send(A.get_output(len(out)))
            out += data
        if sw != A.SW_OK:
            raise SeCommandError(what, sw)
        return out

    # --- the ISD -------------------------------------------------------------------------------------------------

    def open_isd(self) -> None:
        """Select the ISD and open SCP03 to it."""
        self.select(A.ISD_AID)
        self.open_secure_channel()

    def install_applet(self, *, pin_tries: tuple[int, int] | None = None) -> None:
        """INSTALL [for install and make selectable] the JPKI applet (and its APSD), with PIN retry limits (auth, signing) if given."""
        self.call(A.install_for_install_and_selectable(pin_tries=pin_tries), "INSTALL")

    def delete_applet(self) -> bool:
        """DELETE the JPKI applet with related objects; False if there was none (6A88)."""
        _data, sw = self.send(A.delete_aid(A.JPKI_AID))
        if sw == A.SW_REFERENCED_DATA_NOT_FOUND:
            return False
        if sw != A.SW_OK:
            raise SeCommandError("DELETE", sw)
        return True

    def store_access_rules(self, rules: Mapping[bytes, Iterable[bytes]]) -> None:
        """STORE DATA: replace the access rules of each AID given (ACL-1)."""
        self.call(A.store_access_rules(rules), "STORE DATA")

    def applet_present(self) -> bool:
        """GET STATUS (applications): whether the JPKI applet is installed."""
        _data, sw = self.send(A.get_status(0x40, A.JPKI_AID))
        if sw == A.SW_REFERENCED_DATA_NOT_FOUND:
            return False
        if sw != A.SW_OK:
            raise SeCommandError("GET STATUS", sw)
        return True

    def read_se_id_isd(self) -> str:
        """The ISD's GET DATA DF4A: the SE-ID."""
        data = self.call(A.get_se_id_isd(), "GET DATA (SE-ID)")
        ((tag, value),) = A.parse_tlv(data)
        if tag != A.TAG_SE_ID:
            raise SeCommandError("GET DATA (SE-ID): unexpected tag", A.SW_OK)
        return value.decode()

    # --- the applet ----------------------------------------------------------------------------------------------

    def open_applet(self) -> None:
        """Select the JPKI applet and open SCP03 to it (through its APSD)."""
        self.select(A.JPKI_AID)
        self.open_secure_channel()

    def read_se_id(self) -> str:
        """GET SE-ID."""
        return self.call(A.get_se_id(), "GET SE-ID").decode()

    def generate_r(self) -> bytes:
        """GENERATE R: returns S = SHA-256(R) (ISS-2)."""
        return self.call(A.generate_r(), "GENERATE R")

    def generate_key_pair(self, kinds: Iterable[Kind]) -> A.KeyPairOutput:
        """GENERATE KEY PAIR for these kinds: their public keys and the R they consume (ISS-5)."""
        return A.parse_key_pair_output(self._long(A.generate_key_pair(kinds), "GENERATE KEY PAIR"))

    def write_certificate(self, target: int, der: bytes) -> None:
        """WRITE CERTIFICATE (target 01 auth, 02 signing, 03 auth CA, 04 signing CA), in blocks."""
        for apdu in A.write_certificate(target, der):
            self.call(apdu, "WRITE CERTIFICATE")

    def set_temporary_pin(self, kind: Kind, temp_pin: bytes, *, reset: bool = False) -> None:
        """SET TEMPORARY PIN (and block the PIN): initial (PIN-2) or PIN initialisation (reset=True, PIN-4)."""
        self.call(A.set_temporary_pin(kind, temp_pin, reset=reset), "SET TEMPORARY PIN")

    def unblock_and_set_pin(self, kind: Kind, temp_pin: bytes, new_pin: bytes) -> None:
        """UNBLOCK AND SET PIN: verify the temporary PIN, set the real one (PIN-2)."""
        self.call(A.unblock_and_set_pin(kind, temp_pin, new_pin), "UNBLOCK AND SET PIN")

    def delete_keys(self, kinds: Iterable[Kind], serial: int | None = None) -> bool:
        """DELETE KEYS AND CERTIFICATES; with a serial only where it matches (False: nothing matched, nothing deleted)."""
        _data, sw = self.send(A.delete_keys(kinds, serial))
        if sw == A.SW_REFERENCED_DATA_NOT_FOUND and serial is not None:
            return False
        if sw != A.SW_OK:
            raise SeCommandError("DELETE KEYS", sw)
        return True

    def slot_status(self) -> A.SeStatus:
        """GET SLOT STATUS, parsed."""
        return A.parse_slot_status(self.call(A.get_slot_status(), "GET SLOT STATUS"))
