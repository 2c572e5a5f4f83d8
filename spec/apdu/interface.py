"""The GP-SE's APDU interface as data: AIDs, files, instructions, status words and the clauses (rules) of the model.

This is the applet-level model's vocabulary, written from docs/apdu-interface.md and independent of the reference
implementation (impl/): the doc's status-word and command tables are checked against `STATUS_WORDS` and `RULES` here
(tests/test_apdu_doc.py), so the document and the model cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mjpki.spec.domain import Kind

__all__ = [
    "ISD_AID",
    "JPKI_AID",
    "JPKI_ELF_AID",
    "APSD_AID",
    "EF_TOKEN_INFO",
    "TOKEN_INFO",
    "EF_CERT",
    "EF_CA_CERT",
    "EF_KEY",
    "EF_PIN",
    "KIND_REF",
    "KIND_ORDER",
    "KEY_VERSION",
    "MAX_BLOCK",
    "MAX_CERT_LEN",
    "MAX_SIGN_INPUT",
    "MAX_PIN_LEN",
    "SPKI_LEN",
    "SECURITY_LEVELS",
    "TSM_LEVEL",
    "AUTHENTICATION_LIMIT",
    "StatusWord",
    "STATUS_WORDS",
    "Rule",
    "RULES",
    "rule",
]

ISD_AID: Final = bytes.fromhex("A000000151000000")
JPKI_AID: Final = bytes.fromhex("D392F000260100000001")
JPKI_ELF_AID: Final = bytes.fromhex("D392F0002601000000")
APSD_AID: Final = bytes.fromhex("A0000001515350414A504B49")

EF_TOKEN_INFO: Final = 0x0006
TOKEN_INFO: Final = b"JPKIAPGPSETOKEN".ljust(32, b" ")
EF_CERT: Final = {Kind.AUTH: 0x000A, Kind.SIGNING: 0x0001}
EF_CA_CERT: Final = {Kind.AUTH: 0x000B, Kind.SIGNING: 0x0002}
EF_KEY: Final = {Kind.AUTH: 0x0017, Kind.SIGNING: 0x001A}
EF_PIN: Final = {Kind.AUTH: 0x0018, Kind.SIGNING: 0x001B}
KIND_REF: Final = {Kind.AUTH: 0x01, Kind.SIGNING: 0x02}
"""Key and PIN references as OpenSC uses them (1 = auth, 2 = signing); also the bits of a `kinds` bitmap."""
KIND_ORDER: Final = (Kind.AUTH, Kind.SIGNING)
"""Auth first: the order of slots in GENERATE KEY PAIR's output and GET SLOT STATUS."""

KEY_VERSION: Final = 0x30
"""The SCP03 key version of both security domains' key sets (INITIALIZE UPDATE P1 00 also means this one)."""
MAX_BLOCK: Final = 239
"""Data bytes per wrapped response at level 33, and per WRITE CERTIFICATE block."""
MAX_CERT_LEN: Final = 8192
MAX_SIGN_INPUT: Final = 245
MAX_PIN_LEN: Final = 16
SPKI_LEN: Final = 294
"""An RSA-2048 SubjectPublicKeyInfo with exponent 65537 in DER is always 294 bytes."""
SECURITY_LEVELS: Final = (0x01, 0x03, 0x11, 0x13, 0x33)
"""EXTERNAL AUTHENTICATE levels the SE accepts; others get 6A86."""
TSM_LEVEL: Final = 0x03
"""Card management and TSM commands need C-MAC and C-DECRYPTION (level & 03 == 03)."""
AUTHENTICATION_LIMIT: Final = 64
"""Failed EXTERNAL AUTHENTICATEs in a row (per security domain) after which INITIALIZE UPDATE answers 6983 (ASM-SCP03-LOCKOUT)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusWord:
    """One status word the interface uses, with what it means here (the doc's table)."""

    sw: str
    meaning: str


STATUS_WORDS: Final = (
    StatusWord(sw="9000", meaning="success"),
    StatusWord(sw="6310", meaning="success, more output: continue with GET OUTPUT"),
    StatusWord(sw="63Cx", meaning="wrong PIN (or temporary PIN) with x tries left; also the answer to an empty VERIFY"),
    StatusWord(sw="6300", meaning="SCP03: host cryptogram wrong"),
    StatusWord(sw="6700", meaning="wrong length: APDU framing, Lc/data, missing Le, PIN or signature input too long"),
    StatusWord(sw="6881", meaning="logical channel not supported (channels 1-3, MANAGE CHANNEL)"),
    StatusWord(sw="6981", meaning="READ BINARY on a key or PIN EF"),
    StatusWord(sw="6982", meaning="security status not satisfied: access rule, no/insufficient SCP03, SM failure, PIN not verified"),
    StatusWord(
        sw="6983",
        meaning="authentication method blocked: PIN locked or temporarily blocked; temporary PIN spent; SCP03 key set blocked",
    ),
    StatusWord(sw="6984", meaning="reference data not usable: no PIN set for this kind"),
    StatusWord(sw="6985", meaning="conditions not satisfied"),
    StatusWord(sw="6986", meaning="command not allowed: no current EF, or not the right kind of EF"),
    StatusWord(sw="6A80", meaning="incorrect data: TLV, certificate, PIN format (PIN-1), INSTALL data"),
    StatusWord(sw="6A82", meaning="application or file not found"),
    StatusWord(sw="6A84", meaning="not enough memory: chained data too long"),
    StatusWord(sw="6A86", meaning="incorrect P1 P2, or a chained block out of order"),
    StatusWord(sw="6A88", meaning="referenced data not found: key, serial, AID, GET DATA tag, key version"),
    StatusWord(sw="6B00", meaning="offset at or past the end (READ BINARY, GET OUTPUT)"),
    StatusWord(sw="6D00", meaning="instruction not supported by the selected application"),
    StatusWord(sw="6E00", meaning="class not supported"),
    StatusWord(sw="6F00", meaning="internal error (never expected)"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A clause of the APDU interface: one command (or layer), where it runs, the status words it may give, what it serves."""

    id: str
    title: str
    header: str
    """CLA INS as the doc writes them, e.g. "80 32"; "" for layers that are not one command."""
    where: str
    """"runtime", "ISD", "applet", "SD" (the selected application's security domain)."""
    sws: tuple[str, ...]
    reqs: tuple[str, ...]


def _r(id: str, title: str, header: str, where: str, sws: str, reqs: str = "") -> Rule:
    return Rule(id=id, title=title, header=header, where=where, sws=tuple(sws.split()), reqs=tuple(reqs.split()))


RULES: Final[dict[str, Rule]] = {
    r.id: r
    for r in (
        _r("frame", "APDU framing, class and channel", "", "runtime", "6700 6E00 6881"),
        _r("reset", "card reset: volatile state cleared", "", "runtime", ""),
        _r("switch-caller", "another app (or a reader) sends from now on", "", "runtime", ""),
        _r("select-aid", "SELECT by AID", "00 A4", "runtime", "9000 6A82 6A86 6982", "ACL-1"),  # ACL-1 only for the applet
        _r("acl", "access rule checked on every command to the applet", "", "applet", "6982", "ACL-1"),
        _r("initialize-update", "SCP03 INITIALIZE UPDATE", "80 50", "SD", "9000 6A88 6A86 6700 6E00 6983", "ISS-9"),
        _r("external-authenticate", "SCP03 EXTERNAL AUTHENTICATE", "84 82", "SD", "9000 6300 6982 6985 6A86 6700 6E00", "ISS-9"),
        _r("secure-messaging", "wrapped command: C-MAC checked, session ended on failure", "84", "SD", "6982", "ISS-9"),
        _r("security-level", "card management and TSM commands need SCP03 at level 03 or higher", "", "SD", "6982", "ISS-9"),
        _r("unknown-ins", "instruction not supported", "", "runtime", "6D00"),
        _r("isd-install", "INSTALL [for install and make selectable]", "80 E6", "ISD", "9000 6A80 6A86 6A88 6985", "ISS-8"),
        _r("isd-delete", "DELETE", "80 E4", "ISD", "9000 6A80 6A86 6A88 6985", "MCH-4 ISS-8"),
        _r("isd-store-data", "STORE DATA (access rules)", "80 E2", "ISD", "9000 6A80 6A84 6A86 6700", "ACL-1"),
        _r("isd-get-status", "GET STATUS", "80 F2", "ISD", "9000 6A80 6A86 6A88", "ISS-8"),
        _r("isd-select-file", "SELECT of a file in the ISD (it has none)", "00 A4", "ISD", "6A86"),
        _r("isd-get-data", "GET DATA (SE-ID)", "80 CA", "ISD", "9000 6A88 6700", "LNK-6 PIN-4"),
        _r("select-ef", "SELECT EF", "00 A4", "applet", "9000 6A82 6A86 6700"),
        _r("read-binary", "READ BINARY", "00 B0", "applet", "9000 6700 6A86 6986 6981 6982 6A82 6B00", "ISS-5"),
        _r("verify", "VERIFY", "00 20", "applet", "9000 63Cx 6983 6984 6986 6A86", "PIN-3"),
        _r("change-pin", "CHANGE REFERENCE DATA", "00 24", "applet", "9000 63Cx 6982 6983 6984 6986 6A80 6A86 6700", "PIN-5 PIN-1 PIN-3"),
        _r("sign", "COMPUTE DIGITAL SIGNATURE", "80 2A", "applet", "9000 6700 6982 6985 6986 6A86 6A88", "CA-5"),
        _r("get-challenge", "GET CHALLENGE", "00 84", "applet", "9000 6700 6A86"),
        _r("get-se-id", "GET SE-ID", "80 30", "applet", "9000 6A86 6700", "ISS-3 PIN-4"),
        _r("generate-r", "GENERATE R", "80 32", "applet", "9000 6A86 6700", "ISS-2"),
        _r("generate-key-pair", "GENERATE KEY PAIR", "80 34", "applet", "9000 6310 6985 6A86 6700", "ISS-5 ISS-2"),
        _r("get-output", "GET OUTPUT", "80 40", "applet", "9000 6310 6985 6B00 6700", "ISS-5"),
        _r("write-certificate", "WRITE CERTIFICATE", "80 36", "applet", "9000 6A80 6A84 6A86 6A88 6700", "ISS-6"),
        _r("set-temporary-pin", "SET TEMPORARY PIN", "80 38", "applet", "9000 6985 6A86 6A88 6700", "PIN-2 PIN-4"),
        _r("unblock-and-set-pin", "UNBLOCK AND SET PIN", "80 3A", "applet", "9000 63Cx 6983 6985 6A80 6A86 6700", "PIN-2 PIN-1"),
        _r("delete-keys", "DELETE KEYS AND CERTIFICATES", "80 3C", "applet", "9000 6A80 6A86 6A88", "MCH-4 DEL-1 REV-1"),
        _r("get-slot-status", "GET SLOT STATUS", "80 3E", "applet", "9000 6A86 6700"),
    )
}
"""Every clause of the interface, by id. A step of the model names the clause that decided its answer."""


def rule(rule_id: str) -> Rule:
    """The clause with this id; KeyError names the known ones."""
    try:
        return RULES[rule_id]
    except KeyError:
        raise KeyError(f"no APDU rule {rule_id!r}; known: {', '.join(RULES)}") from None
