"""The JPKI system's records in SQLite (standard library sqlite3): persons, certificates, holds, linkage, applications,
push tokens, remote deletions, the CA keys, and the serial counter.

`Records.open(path)` opens (or creates) one database file; `Records.open()` an in-memory one. A later process that
reopens the file finds exactly the same state (`snapshot()` compares equal). Every lifecycle operation should run in
one `with records.transaction():` block: it commits on success and rolls back everything on an exception; each write
method is itself atomic, and a nested `transaction()` is a savepoint.

Schema (version 3, STRICT tables, foreign keys on, `PRAGMA application_id` = 0x6D6A706B "mjpk"):

    =================  ==============================================================================================
    table              what it holds
    =================  ==============================================================================================
    schema_version     one row: the schema version and the application name; an unknown version is refused on open
    serial_counter     one row: the first serial and the next fresh one (`next_serial()`)
    persons            id, birth date (ISO), the current card signing and card auth serials
    certificates       serial PRIMARY KEY, so serials are unique across card and phone certificates (CA-2); profile,
                       kind, person, status, issued_at, expiry, revoked_at, reason, DER; for phone certificates also
                       SE-ID, linked card signing serial, key fingerprint (SHA-256 of the SubjectPublicKeyInfo),
                       commitment S, presented R and the registering app install's push token
    holds              (serial, cause) -> since: the hold causes of a certificate (a certificate may have several)
    phone_follows      (phone serial, card serial): the card certificates a phone certificate follows (REV-2, SUS-2,
                       VAL-1; ASM-PHONE-LINKAGE), at most one of each kind (version 2)
    linkage            card signing serial PRIMARY KEY -> SE-ID (LNK-6)
    applications       one pending application per person (PRIMARY KEY person), and application_kinds its kinds
    push_tokens        token -> phone, app install, valid flag
    deletions          (phone, person) -> push token, deadline; and deletion_serials its serials
    ca, ca_issued      kind -> PEM key and certificate (`JpkiCa.to_pem`); the serials the CA has issued
    ca_points          one row: the base URLs of the CA's CRL distribution points and OCSP responder
                       (`PublicationPoints`, version 3; a version 2 file is migrated on open and loads the defaults)
    =================  ==============================================================================================

Enumerations are stored as the `.value` of the spec's enums, with CHECK constraints generated from those enums
(adding a member to one is a schema change: bump SCHEMA_VERSION). Times are the spec's abstract integers (minutes since
mjpki.spec.clock.EPOCH). R and S are bytes; the commitment is S = SHA-256(R), as the SE computes it (mjpki.impl.se).

Rules the store itself keeps, in Python with a clear error and again in the database as a backstop:
- status follows the holds: adding a hold suspends, removing the last one makes the certificate active again;
- revocation is final (REV-4): a revoked certificate's row and holds never change again (a trigger refuses it);
- certificate records are never deleted (a trigger refuses it); a duplicate serial is refused by the primary key (CA-2);
- a phone certificate links to a card signing certificate of the same person and follows card certificates of that
  person, at most one of each kind; the linkage table only takes card signing serials; the DER must carry the record's
  serial, kind and profile (read back with mjpki.impl.ca.kind_of/profile_of).
The lifecycle decisions (which certificate to revoke when, cascades, expiry of deletions) are the caller's.

One Records object is for one thread (sqlite3's default); several processes may share a file (SQLite locking).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mjpki.impl.ca import DEFAULT_POINTS, CaPem, JpkiCa, PublicationPoints, kind_of, profile_of
from mjpki.spec.domain import CertStatus, HoldCause, Kind, PersonId, PhoneId, Profile, RevocationReason, SEId, Serial
from mjpki.spec.fmap import FrozenMap
from mjpki.spec.observe import CertView, Observation, SlotView

__all__ = [
    # constants
    "SCHEMA_VERSION",
    "APPLICATION_ID",
    "MAX_SERIAL",
    "CA_PASSPHRASE_ENV",
    # errors
    "RecordsError",
    "RecordsFileError",
    "UnknownRecordError",
    "DuplicateRecordError",
    "InvalidRecordError",
    "RevokedError",
    # rows
    "PersonRecord",
    "CertRecord",
    "CrlRecord",
    "ApplicationRecord",
    "PushTokenRecord",
    "DeletionRecord",
    # helpers
    "key_fingerprint",
    "commitment_of",
    "ca_passphrase",
    # the store
    "Records",
]

SCHEMA_VERSION: Final = 3
"""The schema version this module writes and reads (version 2 files are migrated on open: `_MIGRATIONS`)."""
APPLICATION_ID: Final = 0x6D6A706B
"""`PRAGMA application_id` of an mjpki records file ("mjpk"), so a foreign SQLite file is told apart."""
APPLICATION_NAME: Final = "mjpki-records"
MAX_SERIAL: Final = (1 << 63) - 1
"""The largest serial the store takes (SQLite INTEGER is 64-bit signed; RFC 5280 allows more, the store does not)."""
CA_PASSPHRASE_ENV: Final = "MJPKI_CA_PASSPHRASE"
"""The environment variable whose value (UTF-8) encrypts the CA private keys at rest when no password is passed (issue 12)."""
_ENCRYPTED_PEM: Final = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def ca_passphrase() -> bytes | None:
    """$MJPKI_CA_PASSPHRASE as bytes, or None when it is unset or empty."""
    value = os.environ.get(CA_PASSPHRASE_ENV, "")
    return value.encode("utf-8") if value else None

_E = TypeVar("_E", bound=Enum)


# --- errors --------------------------------------------------------------------------------------


class RecordsError(Exception):
    """Base class of every error the records raise."""


class RecordsFileError(RecordsError):
    """The database file cannot be used: corrupt, not SQLite, another application's, or an unknown schema version."""


class UnknownRecordError(RecordsError, LookupError):
    """No record with that key (serial, person, token, application, deletion)."""


class DuplicateRecordError(RecordsError):
    """A record with that key exists already (a serial, a person, a push token)."""


class InvalidRecordError(RecordsError, ValueError):
    """A value the records refuse: inconsistent with itself or with other records."""


class RevokedError(RecordsError):
    """The certificate is revoked, and revocation is final (REV-4)."""


# --- rows ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonRecord:
    """A person: birth date and current card certificates (None when there is none)."""

    id: PersonId
    birth_date: date
    card_signing: Serial | None = None
    card_auth: Serial | None = None

    def current(self, kind: Kind) -> Serial | None:
        """The current card certificate serial of this kind."""
        return self.card_signing if kind is Kind.SIGNING else self.card_auth


@dataclass(frozen=True, slots=True, kw_only=True)
class CrlRecord:
    """One entry of a CRL: a revoked serial (reason a RevocationReason) or a suspended one (reason its HoldCause)."""

    serial: Serial
    status: CertStatus
    at: int
    """When it was revoked, or when its earliest current hold began."""
    reason: RevocationReason | HoldCause


@dataclass(frozen=True, slots=True, kw_only=True)
class CertRecord:
    """A card or phone certificate record; the phone-only fields are None for a card certificate."""

    serial: Serial
    profile: Profile
    kind: Kind
    person: PersonId
    status: CertStatus
    issued_at: int
    expiry: int
    der: bytes = field(repr=False)
    holds: FrozenMap[HoldCause, int] = field(default_factory=FrozenMap)
    """Hold cause -> when the hold began; kept as it was once the certificate is revoked."""
    revoked_at: int | None = None
    reason: RevocationReason | None = None
    se_id: SEId | None = None
    card_serial: Serial | None = None
    """Phone certificates: the card signing certificate it is linked to (LNK-2)."""
    follows: frozenset[Serial] = frozenset()
    """Phone certificates: the card certificates whose revocation and suspension it follows (ASM-PHONE-LINKAGE)."""
    key_fingerprint: bytes | None = None
    """Phone certificates: SHA-256 of the certified key's SubjectPublicKeyInfo."""
    commitment: bytes | None = None
    """Phone certificates: the S = SHA-256(R) of the application it was issued on (ISS-6)."""
    presented_r: bytes | None = None
    """Phone certificates: the R the SE uploaded with the public key."""
    push_token: str | None = None
    """Phone certificates: the registering app install's push token (MCH-2)."""

    def expired(self, now: int) -> bool:
        """True once the validity period has ended."""
        return now >= self.expiry

    def in_force(self, now: int) -> bool:
        """Active and not expired: what a verifier accepts."""
        return self.status is CertStatus.ACTIVE and not self.expired(now)

    def live(self, now: int) -> bool:
        """Neither revoked nor expired."""
        return self.status is not CertStatus.REVOKED and not self.expired(now)

    @property
    def commitment_ok(self) -> bool | None:
        """Phone certificates: whether SHA-256(presented R) equals the commitment S; None for a card certificate."""
        if self.commitment is None or self.presented_r is None:
            return None
        return commitment_of(self.presented_r) == self.commitment

    def certificate(self) -> x509.Certificate:
        """The X.509 certificate, parsed from the stored DER."""
        return x509.load_der_x509_certificate(self.der)

    def crl_entry(self) -> CrlRecord | None:
        """This certificate's entry on its own profile's CRL (CA-4), or None while it is active."""
        if self.status is CertStatus.REVOKED:
            assert self.revoked_at is not None and self.reason is not None  # the schema's CHECK
            return CrlRecord(serial=self.serial, status=self.status, at=self.revoked_at, reason=self.reason)
        if self.status is CertStatus.SUSPENDED and self.holds:
            cause, since = min(self.holds.items(), key=lambda kv: (kv[1], kv[0].value))
            return CrlRecord(serial=self.serial, status=self.status, at=since, reason=cause)
        return None

    def view(self) -> CertView:
        """The certificate as an Observation shows it (key: the fingerprint in hex)."""
        return CertView(
            serial=self.serial,
            profile=self.profile,
            kind=self.kind,
            person=self.person,
            status=self.status,
            issued_at=self.issued_at,
            expiry=self.expiry,
            revoked_at=self.revoked_at,
            reason=self.reason,
            card_serial=self.card_serial,
            follows=self.follows if self.profile is Profile.PHONE else None,
            se_id=self.se_id,
            key=None if self.key_fingerprint is None else self.key_fingerprint.hex(),
            commitment_ok=self.commitment_ok,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationRecord:
    """A pending application for phone certificates (ISS-2): the commitment S and what was asked."""

    person: PersonId
    phone: PhoneId
    se_id: SEId
    kinds: frozenset[Kind]
    commitment: bytes
    card_serial: Serial
    push_token: str
    push_due: int
    notified: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PushTokenRecord:
    """A push token: the phone and app install it addresses, and whether it still works."""

    token: str
    phone: PhoneId
    install: str
    valid: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class DeletionRecord:
    """A remote deletion request waiting for the old phone (MCH-2)."""

    phone: PhoneId
    person: PersonId
    serials: frozenset[Serial]
    push_token: str | None
    deadline: int


# --- helpers -------------------------------------------------------------------------------------


def key_fingerprint(public_key: Any) -> bytes:
    """SHA-256 of a public key's DER SubjectPublicKeyInfo (what a phone certificate record keeps)."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def commitment_of(r: bytes) -> bytes:
    """The commitment S = SHA-256(R) to a random R (ISS-2), as the SE computes it."""
    return hashlib.sha256(r).digest()


def _values(enum: type[Enum]) -> str:
    """An SQL list of an enum's values, for a CHECK constraint."""
    values = [str(m.value) for m in enum]
    assert all("'" not in v for v in values)
    return ", ".join(f"'{v}'" for v in values)


_KINDS = _values(Kind)
_PROFILES = _values(Profile)
_STATUSES = _values(CertStatus)
_CAUSES = _values(HoldCause)
_REASONS = _values(RevocationReason)

_CA_POINTS: Final = """CREATE TABLE ca_points (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        crl_base TEXT NOT NULL CHECK (crl_base GLOB 'http*://*'),
        ocsp_base TEXT NOT NULL CHECK (ocsp_base GLOB 'http*://*')
    ) STRICT"""

_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE schema_version (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        version INTEGER NOT NULL CHECK (version > 0),
        application TEXT NOT NULL
    ) STRICT""",
    """CREATE TABLE serial_counter (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        first INTEGER NOT NULL CHECK (first > 0),
        next INTEGER NOT NULL CHECK (next >= first)
    ) STRICT""",
    """CREATE TABLE persons (
        id TEXT PRIMARY KEY CHECK (length(id) > 0),
        birth_date TEXT NOT NULL CHECK (birth_date GLOB '[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]'),
        card_signing INTEGER UNIQUE REFERENCES certificates (serial),
        card_auth INTEGER UNIQUE REFERENCES certificates (serial)
    ) STRICT""",
    """CREATE TABLE push_tokens (
        token TEXT PRIMARY KEY CHECK (length(token) > 0),
        phone TEXT NOT NULL CHECK (length(phone) > 0),
        install TEXT NOT NULL CHECK (length(install) > 0),
        valid INTEGER NOT NULL CHECK (valid IN (0, 1))
    ) STRICT""",
    "CREATE INDEX push_tokens_by_phone ON push_tokens (phone)",
    f"""CREATE TABLE certificates (
        serial INTEGER PRIMARY KEY CHECK (serial > 0),
        profile TEXT NOT NULL CHECK (profile IN ({_PROFILES})),
        kind TEXT NOT NULL CHECK (kind IN ({_KINDS})),
        person TEXT NOT NULL REFERENCES persons (id),
        status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
        issued_at INTEGER NOT NULL,
        expiry INTEGER NOT NULL,
        revoked_at INTEGER,
        reason TEXT CHECK (reason IN ({_REASONS})),
        der BLOB NOT NULL CHECK (length(der) > 0),
        se_id TEXT CHECK (length(se_id) > 0),
        card_serial INTEGER REFERENCES certificates (serial),
        key_fingerprint BLOB CHECK (length(key_fingerprint) = 32),
        commitment BLOB CHECK (length(commitment) > 0),
        presented_r BLOB CHECK (length(presented_r) > 0),
        push_token TEXT REFERENCES push_tokens (token),
        CHECK (expiry > issued_at),
        CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
        CHECK ((status = 'revoked') = (reason IS NOT NULL)),
        CHECK (revoked_at IS NULL OR revoked_at >= issued_at),
        CHECK (card_serial IS NULL OR card_serial <> serial),
        CHECK (CASE WHEN profile = 'phone'
            THEN se_id IS NOT NULL AND card_serial IS NOT NULL AND key_fingerprint IS NOT NULL
                 AND commitment IS NOT NULL AND presented_r IS NOT NULL
            ELSE se_id IS NULL AND card_serial IS NULL AND key_fingerprint IS NULL
                 AND commitment IS NULL AND presented_r IS NULL AND push_token IS NULL
            END)
    ) STRICT""",
    "CREATE INDEX certificates_by_person ON certificates (person, profile, kind)",
    "CREATE INDEX certificates_by_list ON certificates (profile, kind, status)",
    "CREATE INDEX certificates_by_status ON certificates (status)",
    "CREATE INDEX certificates_by_card_serial ON certificates (card_serial) WHERE card_serial IS NOT NULL",
    "CREATE INDEX certificates_by_se_id ON certificates (se_id) WHERE se_id IS NOT NULL",
    """CREATE TRIGGER certificates_revoked_is_final BEFORE UPDATE ON certificates
        WHEN OLD.status = 'revoked'
        BEGIN SELECT RAISE(ABORT, 'REV-4: a revoked certificate is never changed again'); END""",
    """CREATE TRIGGER certificates_never_deleted BEFORE DELETE ON certificates
        BEGIN SELECT RAISE(ABORT, 'certificate records are kept for good: revoke the certificate instead'); END""",
    f"""CREATE TABLE holds (
        serial INTEGER NOT NULL REFERENCES certificates (serial),
        cause TEXT NOT NULL CHECK (cause IN ({_CAUSES})),
        since INTEGER NOT NULL,
        PRIMARY KEY (serial, cause)
    ) STRICT""",
    """CREATE TRIGGER holds_insert_not_on_revoked BEFORE INSERT ON holds
        WHEN (SELECT status FROM certificates WHERE serial = NEW.serial) = 'revoked'
        BEGIN SELECT RAISE(ABORT, 'REV-4: a revoked certificate is never changed again'); END""",
    """CREATE TRIGGER holds_delete_not_on_revoked BEFORE DELETE ON holds
        WHEN (SELECT status FROM certificates WHERE serial = OLD.serial) = 'revoked'
        BEGIN SELECT RAISE(ABORT, 'REV-4: a revoked certificate is never changed again'); END""",
    """CREATE TABLE phone_follows (
        serial INTEGER NOT NULL REFERENCES certificates (serial),
        card_serial INTEGER NOT NULL REFERENCES certificates (serial),
        PRIMARY KEY (serial, card_serial)
    ) STRICT""",
    """CREATE TABLE linkage (
        card_serial INTEGER PRIMARY KEY REFERENCES certificates (serial),
        se_id TEXT NOT NULL CHECK (length(se_id) > 0)
    ) STRICT""",
    "CREATE INDEX linkage_by_se_id ON linkage (se_id)",
    """CREATE TABLE applications (
        person TEXT PRIMARY KEY REFERENCES persons (id),
        phone TEXT NOT NULL CHECK (length(phone) > 0),
        se_id TEXT NOT NULL CHECK (length(se_id) > 0),
        commitment BLOB NOT NULL CHECK (length(commitment) > 0),
        card_serial INTEGER NOT NULL REFERENCES certificates (serial),
        push_token TEXT NOT NULL REFERENCES push_tokens (token),
        push_due INTEGER NOT NULL,
        notified INTEGER NOT NULL CHECK (notified IN (0, 1))
    ) STRICT""",
    "CREATE INDEX applications_by_push_due ON applications (push_due) WHERE notified = 0",
    f"""CREATE TABLE application_kinds (
        person TEXT NOT NULL REFERENCES applications (person) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ({_KINDS})),
        PRIMARY KEY (person, kind)
    ) STRICT""",
    """CREATE TABLE deletions (
        phone TEXT NOT NULL CHECK (length(phone) > 0),
        person TEXT NOT NULL REFERENCES persons (id),
        push_token TEXT REFERENCES push_tokens (token),
        deadline INTEGER NOT NULL,
        PRIMARY KEY (phone, person)
    ) STRICT""",
    "CREATE INDEX deletions_by_deadline ON deletions (deadline)",
    """CREATE TABLE deletion_serials (
        phone TEXT NOT NULL,
        person TEXT NOT NULL,
        serial INTEGER NOT NULL REFERENCES certificates (serial),
        PRIMARY KEY (phone, person, serial),
        FOREIGN KEY (phone, person) REFERENCES deletions (phone, person) ON DELETE CASCADE
    ) STRICT""",
    f"""CREATE TABLE ca (
        kind TEXT PRIMARY KEY CHECK (kind IN ({_KINDS})),
        key_pem BLOB NOT NULL CHECK (length(key_pem) > 0),
        cert_pem BLOB NOT NULL CHECK (length(cert_pem) > 0)
    ) STRICT""",
    """CREATE TABLE ca_issued (
        serial INTEGER PRIMARY KEY CHECK (serial > 0)
    ) STRICT""",
    _CA_POINTS,
)

_MIGRATIONS: Final[Mapping[int, tuple[str, ...]]] = MappingProxyType(
    {
        # Version 3 keeps where the CA publishes; a version 2 file had no row for it and loads the default points, as before.
        2: (_CA_POINTS,),
    }
)
"""Schema version -> the statements that bring a file of that version to the next one."""

_TABLES: Final = (
    "schema_version",
    "serial_counter",
    "persons",
    "push_tokens",
    "certificates",
    "holds",
    "phone_follows",
    "linkage",
    "applications",
    "application_kinds",
    "deletions",
    "deletion_serials",
    "ca",
    "ca_issued",
    "ca_points",
)


def _int(value: object, *, what: str) -> int:
    """The value if it is an int (not a bool); TypeError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    return value


def _serial(value: object, *, what: str = "serial") -> int:
    """The value if it is a serial the store can hold: an int in [1, MAX_SERIAL]."""
    serial = _int(value, what=what)
    if not 1 <= serial <= MAX_SERIAL:
        raise InvalidRecordError(f"{what} must be in [1, 2**63 - 1] (the store's INTEGER range), got {serial}")
    return serial


def _text(value: object, *, what: str) -> str:
    """The value if it is a non-empty str."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty str, got {value!r}")
    return value


def _blob(value: object, *, what: str) -> bytes:
    """The value if it is non-empty bytes."""
    if not isinstance(value, bytes) or not value:
        raise TypeError(f"{what} must be non-empty bytes, got {value!r}")
    return value


def _enum(value: object, enum: type[_E], *, what: str) -> _E:
    """The value if it is a member of the enum."""
    if not isinstance(value, enum):
        members = ", ".join(f"{enum.__name__}.{m.name}" for m in enum)
        raise TypeError(f"{what} must be one of {members}, got {value!r}")
    return value


def _plain(value: object) -> object:
    """A database value made JSON-able: bytes as hex, the rest as is."""
    return value.hex() if isinstance(value, bytes) else value


# --- the store -----------------------------------------------------------------------------------


def _private_file(path: Path) -> None:
    """The records hold both CA private keys: create the file 0600 before SQLite does, and take group and other
    access away from one that has it (SQLite's journal files take the database file's mode)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        try:
            mode = path.stat().st_mode
            if mode & 0o077 and path.is_file():
                path.chmod(mode & 0o700)
        except OSError as exc:
            raise RecordsFileError(f"cannot make {path} private to you ({exc}): it holds the CA private keys") from exc
        return
    except OSError as exc:
        raise RecordsFileError(f"cannot create {path} ({exc}): check that its folder exists and is writable") from exc
    os.close(fd)


class Records:
    """The JPKI system's records in one SQLite database; open with Records.open(), close with close()."""

    def __init__(self, connection: sqlite3.Connection, *, path: Path | None) -> None:
        """Wrap an open connection; use Records.open() rather than calling this."""
        self._conn: sqlite3.Connection | None = connection
        self._path = path
        self._depth = 0

    # --- opening and closing ----------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, first_serial: int | None = None) -> Records:
        """Open the records at path (created if new), or in memory for None; first_serial applies to a new database."""
        if first_serial is not None:
            _serial(first_serial, what="first_serial")
        where = None if path is None else Path(path)
        if where is not None and where.is_dir():
            raise RecordsFileError(f"{where} is a directory: pass the path of a records file inside it")
        if where is not None:
            _private_file(where)
        try:
            conn = sqlite3.connect(":memory:" if where is None else os.fspath(where), isolation_level=None)
        except sqlite3.Error as exc:
            raise RecordsFileError(f"cannot open {where} ({exc}): check that its folder exists and is writable") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")  # a replaced CA key (clear, then encrypted) is overwritten, not left in a free page
            records = cls(conn, path=where)
            records._prepare(first_serial)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise RecordsFileError(
                f"{where} is not a readable mjpki records database ({exc}): it is corrupt or not SQLite; "
                "restore it from a backup, or pass another path to create new records"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return records

    @property
    def path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._conn is None

    def close(self) -> None:
        """Close the database (an open transaction is rolled back); closing twice is harmless."""
        if self._conn is not None:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None
            self._depth = 0

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"Records({str(self._path) if self._path else ':memory:'}, {state})"

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection; RecordsError once closed."""
        if self._conn is None:
            raise RecordsError("the records are closed: reopen them with Records.open(path)")
        return self._conn

    def version(self) -> tuple[int, int]:
        """A value that moves whenever the records may have changed: this connection's row changes, other connections' commits."""
        db = self._db
        return db.total_changes, int(db.execute("PRAGMA data_version").fetchone()[0])

    def _where(self) -> str:
        return str(self._path) if self._path is not None else "the in-memory database"

    def _prepare(self, first_serial: int | None) -> None:
        """Create the schema in an empty database, or check an existing one is ours, intact and of our version."""
        db = self._db
        where = self._where()
        if self._path is not None:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise RecordsFileError(f"{where} is damaged (SQLite quick_check: {'; '.join(problems[:3])}): restore it from a backup")
        app_id, tables = self._identity()
        if not tables and app_id == 0:
            # Another process may be creating the same new file right now: decide, and create, under SQLite's write lock
            # (BEGIN IMMEDIATE waits for the other's transaction), so the loser finds finished records, not a half-made
            # schema it would call damaged or a CREATE TABLE that fails (issue 12, finding 8).
            with self.transaction():
                app_id, tables = self._identity()
                if not tables and app_id == 0:
                    self._create(first_serial)
                    return
        if app_id != APPLICATION_ID:
            raise RecordsFileError(
                f"{where} is a SQLite database of another application (application_id {app_id:#x}, tables "
                f"{', '.join(sorted(tables)) or 'none'}), not mjpki records: pass a new path to create records"
            )
        if "schema_version" not in tables:
            raise RecordsFileError(
                f"{where} has the mjpki application id but no schema_version table: it is damaged; restore it from a backup"
            )
        rows = db.execute("SELECT version, application FROM schema_version").fetchall()
        if len(rows) != 1 or rows[0]["application"] != APPLICATION_NAME:
            raise RecordsFileError(f"{where} has a malformed schema_version table: it is damaged; restore it from a backup")
        version = rows[0]["version"]
        if version in _MIGRATIONS:
            version = self._migrate(version)
            app_id, tables = self._identity()
        if version != SCHEMA_VERSION:
            raise RecordsFileError(
                f"{where} holds records of schema version {version}, but this mjpki reads only version {SCHEMA_VERSION}: "
                "open it with the mjpki release that wrote it, or migrate it"
            )
        missing = [t for t in _TABLES if t not in tables]
        if missing:
            raise RecordsFileError(f"{where} lacks the tables {', '.join(missing)}: it is damaged; restore it from a backup")
        dangling = db.execute("PRAGMA foreign_key_check").fetchall()
        if dangling:
            first = dangling[0]
            raise RecordsFileError(
                f"{where} has {len(dangling)} dangling references (first: table {first[0]} row {first[1]} -> {first[2]}): "
                "it is damaged; restore it from a backup"
            )
        stored_first = db.execute("SELECT first FROM serial_counter").fetchone()[0]
        if first_serial is not None and first_serial != stored_first:
            raise RecordsFileError(
                f"{where} was created with first_serial={stored_first}, not {first_serial}: omit first_serial when reopening records"
            )

    def _migrate(self, version: int) -> int:
        """Bring a file of an older known version up to SCHEMA_VERSION, one version per transaction; the version reached."""
        db = self._db
        while version in _MIGRATIONS:
            with self.transaction():  # BEGIN IMMEDIATE: another process opening the same file migrates it once, not twice
                now = db.execute("SELECT version FROM schema_version").fetchone()[0]
                if now == version:
                    for statement in _MIGRATIONS[version]:
                        db.execute(statement)
                    db.execute("UPDATE schema_version SET version = ?", (version + 1,))
            version = db.execute("SELECT version FROM schema_version").fetchone()[0]
        return int(version)

    def _identity(self) -> tuple[int, set[str]]:
        """The file's SQLite application_id and its tables (SQLite's own left out), read in one transaction: two separate
        reads could straddle another process's creation and see its tables without its application_id."""
        db = self._db
        reading = not db.in_transaction
        if reading:
            db.execute("BEGIN DEFERRED")  # a read transaction: no write lock, so a read-only file can be checked too
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = {
                row[0]
                for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE ? ESCAPE '!'", ("sqlite!_%",))
            }
        finally:
            if reading:
                db.execute("COMMIT")
        return app_id, tables

    def _create(self, first_serial: int | None) -> None:
        """Create the schema, the version row and the serial counter, in one transaction."""
        first = 1 if first_serial is None else first_serial
        with self.transaction():
            db = self._db
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (singleton, version, application) VALUES (1, ?, ?)",
                (SCHEMA_VERSION, APPLICATION_NAME),
            )
            db.execute("INSERT INTO serial_counter (singleton, first, next) VALUES (1, ?, ?)", (first, first))
            db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")  # a PRAGMA takes no parameters; a constant int

    # --- transactions -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Records]:
        """One atomic unit: commits on success, rolls back every write on an exception; nested, a savepoint."""
        db = self._db
        outer = self._depth == 0
        db.execute("BEGIN IMMEDIATE" if outer else "SAVEPOINT nested")
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if outer:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            else:
                db.execute("ROLLBACK TO nested")
                db.execute("RELEASE nested")
            raise
        self._depth -= 1
        if not outer:
            db.execute("RELEASE nested")
            return
        try:
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @property
    def in_transaction(self) -> bool:
        """True inside a transaction() block."""
        return self._depth > 0

    # --- persons ----------------------------------------------------------------------------------

    def add_person(self, *, person: PersonId, birth_date: date) -> PersonRecord:
        """Add a person with no current card certificates."""
        _text(person, what="person")
        if type(birth_date) is not date:
            raise TypeError(f"birth_date must be a datetime.date (not a datetime), got {birth_date!r}")
        with self.transaction():
            if self.get_person(person) is not None:
                raise DuplicateRecordError(f"person {person!r} is on record already: use get_person to read them")
            self._db.execute("INSERT INTO persons (id, birth_date) VALUES (?, ?)", (person, birth_date.isoformat()))
        return self.person(person)

    def get_person(self, person: PersonId) -> PersonRecord | None:
        """The person's record, or None."""
        row = self._db.execute("SELECT * FROM persons WHERE id = ?", (person,)).fetchone()
        return None if row is None else self._person_from(row)

    def person(self, person: PersonId) -> PersonRecord:
        """The person's record; UnknownRecordError if there is none."""
        record = self.get_person(person)
        if record is None:
            raise UnknownRecordError(f"no person {person!r} on record: add them with add_person first")
        return record

    def persons(self) -> tuple[PersonRecord, ...]:
        """Every person, by id."""
        return tuple(self._person_from(row) for row in self._db.execute("SELECT * FROM persons ORDER BY id"))

    def set_current_card(self, *, person: PersonId, kind: Kind, serial: Serial | None) -> PersonRecord:
        """Make a card certificate of this person and kind their current one (None: they have none)."""
        _enum(kind, Kind, what="kind")
        with self.transaction():
            self.person(person)
            if serial is not None:
                cert = self.certificate(serial)
                if cert.profile is not Profile.CARD or cert.kind is not kind or cert.person != person:
                    raise InvalidRecordError(
                        f"serial {serial} is a {cert.profile.value} {cert.kind.value} certificate of {cert.person!r}: the current "
                        f"card {kind.value} certificate of {person!r} must be a card {kind.value} certificate of theirs"
                    )
            column = "card_signing" if kind is Kind.SIGNING else "card_auth"
            self._db.execute(f"UPDATE persons SET {column} = ? WHERE id = ?", (serial, person))  # column: one of two constants
        return self.person(person)

    @staticmethod
    def _person_from(row: sqlite3.Row) -> PersonRecord:
        return PersonRecord(
            id=row["id"],
            birth_date=date.fromisoformat(row["birth_date"]),
            card_signing=row["card_signing"],
            card_auth=row["card_auth"],
        )

    # --- serials ----------------------------------------------------------------------------------

    def next_serial(self) -> Serial:
        """A fresh serial no certificate has used and the saved CA has not issued (CA-2); rolled back with its transaction."""
        with self.transaction():
            db = self._db
            counter = db.execute("SELECT next FROM serial_counter").fetchone()[0]
            top = db.execute(
                "SELECT max(coalesce((SELECT max(serial) FROM certificates), 0), coalesce((SELECT max(serial) FROM ca_issued), 0))"
            ).fetchone()[0]
            serial = max(counter, top + 1)
            if serial >= MAX_SERIAL:
                raise RecordsError(f"serials are exhausted (next would be {serial}): the store holds serials up to 2**63 - 1")
            db.execute("UPDATE serial_counter SET next = ?", (serial + 1,))
        return serial

    # --- certificates -----------------------------------------------------------------------------

    def add_card_cert(self, *, serial: Serial, person: PersonId, kind: Kind, issued_at: int, expiry: int, der: bytes) -> CertRecord:
        """Record a newly issued card certificate (active); the DER must carry this serial, kind and the card profile."""
        return self._add_cert(
            serial=serial, profile=Profile.CARD, person=person, kind=kind, issued_at=issued_at, expiry=expiry, der=der, phone=None
        )

    def add_phone_cert(
        self,
        *,
        serial: Serial,
        person: PersonId,
        kind: Kind,
        issued_at: int,
        expiry: int,
        der: bytes,
        se_id: SEId,
        card_serial: Serial,
        commitment: bytes,
        presented_r: bytes,
        push_token: str | None,
        follows: Iterable[Serial] | None = None,
    ) -> CertRecord:
        """Record a newly issued phone certificate (active), linked to the person's card signing certificate (LNK-2) and
        following the card certificates `follows` (by default that card signing certificate; ASM-PHONE-LINKAGE)."""
        _text(se_id, what="se_id")
        _serial(card_serial, what="card_serial")
        followed = frozenset({card_serial} if follows is None else (_serial(f, what="follows") for f in follows))
        _blob(commitment, what="commitment")
        _blob(presented_r, what="presented_r")
        if push_token is not None:
            _text(push_token, what="push_token")
        return self._add_cert(
            serial=serial,
            profile=Profile.PHONE,
            person=person,
            kind=kind,
            issued_at=issued_at,
            expiry=expiry,
            der=der,
            phone=(se_id, card_serial, commitment, presented_r, push_token),
            follows=followed,
        )

    def _add_cert(
        self,
        *,
        serial: Serial,
        profile: Profile,
        person: PersonId,
        kind: Kind,
        issued_at: int,
        expiry: int,
        der: bytes,
        phone: tuple[SEId, Serial, bytes, bytes, str | None] | None,
        follows: frozenset[Serial] = frozenset(),
    ) -> CertRecord:
        """Check and insert one certificate row (and a phone certificate's followed card certificates)."""
        _serial(serial)
        _text(person, what="person")
        _enum(kind, Kind, what="kind")
        _int(issued_at, what="issued_at")
        _int(expiry, what="expiry")
        _blob(der, what="der")
        if expiry <= issued_at:
            raise InvalidRecordError(f"certificate {serial}: expiry {expiry} must be later than issued_at {issued_at}")
        certificate = _parse_der(der, serial=serial)
        if certificate.serial_number != serial:
            raise InvalidRecordError(
                f"the DER given for serial {serial} is certificate serial {certificate.serial_number}: pass the DER of certificate {serial}"
            )
        try:
            der_kind, der_profile = kind_of(certificate), profile_of(certificate)
        except ValueError as exc:
            raise InvalidRecordError(f"certificate {serial}: {exc}") from exc
        if (der_kind, der_profile) != (kind, profile):
            raise InvalidRecordError(
                f"certificate {serial} is a {der_profile.value} {der_kind.value} certificate by its policy OID, "
                f"but was recorded as {profile.value} {kind.value}: record it with the matching add_*_cert and kind"
            )
        with self.transaction():
            self.person(person)
            fields: tuple[object, ...] = (None, None, None, None, None, None)
            if phone is not None:
                se_id, card_serial, commitment, presented_r, push_token = phone
                card = self.get_certificate(card_serial)
                if card is None or card.profile is not Profile.CARD or card.kind is not Kind.SIGNING or card.person != person:
                    what = "not on record" if card is None else f"a {card.profile.value} {card.kind.value} certificate of {card.person!r}"
                    raise InvalidRecordError(
                        f"phone certificate {serial} must link to a card signing certificate of {person!r} (LNK-2); "
                        f"card_serial {card_serial} is {what}"
                    )
                if push_token is not None:
                    self.push_token(push_token)
                fingerprint = key_fingerprint(certificate.public_key())
                fields = (se_id, card_serial, fingerprint, commitment, presented_r, push_token)
            try:
                self._db.execute(
                    "INSERT INTO certificates (serial, profile, kind, person, status, issued_at, expiry, der, "
                    "se_id, card_serial, key_fingerprint, commitment, presented_r, push_token) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (serial, profile.value, kind.value, person, CertStatus.ACTIVE.value, issued_at, expiry, der, *fields),
                )
            except sqlite3.IntegrityError as exc:
                if "certificates.serial" in str(exc):
                    raise DuplicateRecordError(
                        f"serial {serial} is taken already: serials are unique across card and phone certificates (CA-2); "
                        "allocate one with next_serial()"
                    ) from exc
                raise InvalidRecordError(f"the database refused certificate {serial}: {exc}") from exc
            self._db.execute("UPDATE serial_counter SET next = max(next, ?)", (min(serial + 1, MAX_SERIAL),))
            if phone is not None:
                self._set_follows(serial, person, follows)
        return self.certificate(serial)

    def _set_follows(self, serial: Serial, person: PersonId, follows: frozenset[Serial]) -> None:
        """Replace the card certificates phone certificate `serial` follows: card certificates of person, one per kind at most."""
        kinds: list[Kind] = []
        for card_serial in sorted(follows):
            card = self.get_certificate(card_serial)
            if card is None or card.profile is not Profile.CARD or card.person != person:
                what = "not on record" if card is None else f"a {card.profile.value} certificate of {card.person!r}"
                raise InvalidRecordError(
                    f"phone certificate {serial} can only follow card certificates of {person!r}; {card_serial} is {what}"
                )
            kinds.append(card.kind)
        if len(set(kinds)) != len(kinds):
            raise InvalidRecordError(f"phone certificate {serial} would follow two card certificates of one kind: {sorted(follows)}")
        self._db.execute("DELETE FROM phone_follows WHERE serial = ?", (serial,))
        self._db.executemany("INSERT INTO phone_follows (serial, card_serial) VALUES (?, ?)", [(serial, f) for f in sorted(follows)])

    def get_certificate(self, serial: Serial) -> CertRecord | None:
        """The certificate record with this serial, or None."""
        found = self._select_certs("serial = ?", [serial])
        return found[0] if found else None

    def certificate(self, serial: Serial) -> CertRecord:
        """The certificate record with this serial; UnknownRecordError if there is none."""
        record = self.get_certificate(serial)
        if record is None:
            raise UnknownRecordError(f"no certificate with serial {serial} on record: check the serial")
        return record

    def certificates(
        self,
        *,
        person: PersonId | None = None,
        profile: Profile | None = None,
        kind: Kind | None = None,
        status: CertStatus | None = None,
        card_serial: Serial | None = None,
        se_id: SEId | None = None,
    ) -> tuple[CertRecord, ...]:
        """The certificates matching every filter given (all of them with none), by serial."""
        clauses: list[str] = []
        params: list[object] = []
        for column, value, enum in (
            ("person", person, None),
            ("profile", profile, Profile),
            ("kind", kind, Kind),
            ("status", status, CertStatus),
            ("card_serial", card_serial, None),
            ("se_id", se_id, None),
        ):
            if value is not None:
                if enum is not None:
                    value = _enum(value, enum, what=column).value
                clauses.append(f"{column} = ?")  # column: a constant of this method
                params.append(value)
        return self._select_certs(" AND ".join(clauses) or "1", params)

    def _select_certs(self, where: str, params: list[object]) -> tuple[CertRecord, ...]:
        """Certificates (with their holds) under a WHERE clause built from constants, values as parameters."""
        db = self._db
        rows = db.execute(f"SELECT * FROM certificates WHERE {where} ORDER BY serial", params).fetchall()
        holds: dict[int, dict[HoldCause, int]] = {}
        for h in db.execute(
            f"SELECT serial, cause, since FROM holds WHERE serial IN (SELECT serial FROM certificates WHERE {where})", params
        ):
            holds.setdefault(h["serial"], {})[HoldCause(h["cause"])] = h["since"]
        follows: dict[int, set[int]] = {}
        for f in db.execute(
            f"SELECT serial, card_serial FROM phone_follows WHERE serial IN (SELECT serial FROM certificates WHERE {where})", params
        ):
            follows.setdefault(f["serial"], set()).add(f["card_serial"])
        return tuple(_cert_from(row, FrozenMap(holds.get(row["serial"], {})), frozenset(follows.get(row["serial"], ()))) for row in rows)

    def add_hold(self, *, serial: Serial, cause: HoldCause, at: int) -> CertRecord:
        """Put the certificate on hold for this cause (it becomes suspended); a cause already held keeps its first time."""
        _enum(cause, HoldCause, what="cause")
        _int(at, what="at")
        with self.transaction():
            cert = self._changeable(serial, f"put it on hold ({cause.value})")
            if cause not in cert.holds:
                self._db.execute("INSERT INTO holds (serial, cause, since) VALUES (?, ?, ?)", (serial, cause.value, at))
            self._db.execute("UPDATE certificates SET status = ? WHERE serial = ?", (CertStatus.SUSPENDED.value, serial))
        return self.certificate(serial)

    def remove_hold(self, *, serial: Serial, cause: HoldCause) -> CertRecord:
        """Lift one hold; the certificate is active again once no hold is left."""
        _enum(cause, HoldCause, what="cause")
        with self.transaction():
            cert = self._changeable(serial, f"lift its {cause.value} hold")
            if cause not in cert.holds:
                held = ", ".join(c.value for c in cert.holds) or "none"
                raise UnknownRecordError(f"certificate {serial} has no {cause.value} hold (its holds: {held}): nothing to lift")
            self._db.execute("DELETE FROM holds WHERE serial = ? AND cause = ?", (serial, cause.value))
            status = CertStatus.SUSPENDED if len(cert.holds) > 1 else CertStatus.ACTIVE
            self._db.execute("UPDATE certificates SET status = ? WHERE serial = ?", (status.value, serial))
        return self.certificate(serial)

    def revoke(self, *, serial: Serial, reason: RevocationReason, at: int) -> CertRecord:
        """Revoke the certificate at time at, for good (REV-4); its holds stay on record as they were."""
        _enum(reason, RevocationReason, what="reason")
        _int(at, what="at")
        with self.transaction():
            cert = self._changeable(serial, f"revoke it ({reason.value})")
            if at < cert.issued_at:
                raise InvalidRecordError(f"certificate {serial} was issued at {cert.issued_at}: it cannot be revoked earlier, at {at}")
            self._db.execute(
                "UPDATE certificates SET status = ?, revoked_at = ?, reason = ? WHERE serial = ?",
                (CertStatus.REVOKED.value, at, reason.value, serial),
            )
        return self.certificate(serial)

    def _changeable(self, serial: Serial, action: str) -> CertRecord:
        """The certificate, if it exists and is not revoked; RevokedError otherwise (REV-4)."""
        cert = self.certificate(serial)
        if cert.status is CertStatus.REVOKED:
            assert cert.reason is not None
            raise RevokedError(
                f"cannot {action}: certificate {serial} was revoked at {cert.revoked_at} ({cert.reason.value}) and revocation "
                "is final (REV-4); issue a new certificate instead"
            )
        return cert

    def crl_entries(self, *, kind: Kind, profile: Profile) -> tuple[CrlRecord, ...]:
        """The entries of the CRL of this kind and profile: its revoked and suspended certificates only (CA-4), by serial."""
        certs = self._select_certs(
            "kind = ? AND profile = ? AND status <> ?",
            [_enum(kind, Kind, what="kind").value, _enum(profile, Profile, what="profile").value, CertStatus.ACTIVE.value],
        )
        return tuple(entry for cert in certs if (entry := cert.crl_entry()) is not None)

    def published(self) -> frozenset[tuple[Profile, Serial, CertStatus]]:
        """What the CRLs and OCSP publish: (profile whose list it is on, serial, REVOKED or SUSPENDED)."""
        rows = self._db.execute("SELECT profile, serial, status FROM certificates WHERE status <> ?", (CertStatus.ACTIVE.value,))
        return frozenset((Profile(r["profile"]), r["serial"], CertStatus(r["status"])) for r in rows)

    def relink_phone_cert(self, *, serial: Serial, card_serial: Serial) -> None:
        """Link a live phone certificate to another card signing certificate of the same person (ASM-CARD-FOUND); if it
        followed a card signing certificate, it follows this one instead."""
        with self.transaction():
            cert = self.certificate(serial)
            card = self.certificate(card_serial)
            if cert.profile is not Profile.PHONE or cert.status is CertStatus.REVOKED:
                raise InvalidRecordError(
                    f"only a live phone certificate can be re-linked; {serial} is a {cert.status.value} {cert.profile.value} one"
                )
            if card.profile is not Profile.CARD or card.kind is not Kind.SIGNING or card.person != cert.person:
                raise InvalidRecordError(
                    f"phone certificate {serial} can only be linked to a card signing certificate of {cert.person} "
                    f"(LNK-2), not {card_serial}"
                )
            self._db.execute("UPDATE certificates SET card_serial = ? WHERE serial = ?", (card_serial, serial))
            kept = {f for f in cert.follows if self.certificate(f).kind is not Kind.SIGNING}
            signing = len(kept) < len(cert.follows)
            self._set_follows(serial, cert.person, frozenset(kept | ({card_serial} if signing else set())))

    # --- linkage ----------------------------------------------------------------------------------

    def set_linkage(self, *, card_serial: Serial, se_id: SEId) -> None:
        """Record the SE-ID where the phone key pair for this card signing certificate was generated (LNK-6)."""
        _text(se_id, what="se_id")
        with self.transaction():
            card = self.certificate(card_serial)
            if card.profile is not Profile.CARD or card.kind is not Kind.SIGNING:
                raise InvalidRecordError(
                    f"the linkage is keyed by card signing certificates (LNK-6); serial {card_serial} is a "
                    f"{card.profile.value} {card.kind.value} certificate"
                )
            self._db.execute(
                "INSERT INTO linkage (card_serial, se_id) VALUES (?, ?) ON CONFLICT (card_serial) DO UPDATE SET se_id = excluded.se_id",
                (card_serial, se_id),
            )

    def get_linkage(self, card_serial: Serial) -> SEId | None:
        """The SE-ID linked to this card signing certificate, or None."""
        row = self._db.execute("SELECT se_id FROM linkage WHERE card_serial = ?", (card_serial,)).fetchone()
        return None if row is None else row["se_id"]

    def linkage(self) -> FrozenMap[Serial, SEId]:
        """The whole linkage map: card signing serial -> SE-ID (LNK-6)."""
        return FrozenMap((r["card_serial"], r["se_id"]) for r in self._db.execute("SELECT card_serial, se_id FROM linkage"))

    # --- applications -----------------------------------------------------------------------------

    def put_application(
        self,
        *,
        person: PersonId,
        phone: PhoneId,
        se_id: SEId,
        kinds: Iterable[Kind],
        commitment: bytes,
        card_serial: Serial,
        push_token: str,
        push_due: int,
        notified: bool = False,
    ) -> ApplicationRecord:
        """Record the person's pending application, replacing any earlier one (one pending per person)."""
        _text(phone, what="phone")
        _text(se_id, what="se_id")
        wanted = frozenset(kinds)
        for kind in wanted:
            _enum(kind, Kind, what="each of kinds")
        if not wanted:
            raise InvalidRecordError("an application asks for at least one kind: pass kinds={Kind.SIGNING} and/or Kind.AUTH")
        _blob(commitment, what="commitment")
        _text(push_token, what="push_token")
        _int(push_due, what="push_due")
        if not isinstance(notified, bool):
            raise TypeError(f"notified must be a bool, got {notified!r}")
        with self.transaction():
            self.person(person)
            card = self.certificate(card_serial)
            if card.profile is not Profile.CARD or card.kind is not Kind.SIGNING or card.person != person:
                raise InvalidRecordError(
                    f"an application names the applicant's card signing certificate; serial {card_serial} is a "
                    f"{card.profile.value} {card.kind.value} certificate of {card.person!r}"
                )
            self.push_token(push_token)
            db = self._db
            db.execute("DELETE FROM applications WHERE person = ?", (person,))
            db.execute(
                "INSERT INTO applications (person, phone, se_id, commitment, card_serial, push_token, push_due, notified) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (person, phone, se_id, commitment, card_serial, push_token, push_due, int(notified)),
            )
            db.executemany("INSERT INTO application_kinds (person, kind) VALUES (?, ?)", [(person, k.value) for k in wanted])
        return self.application(person)

    def get_application(self, person: PersonId) -> ApplicationRecord | None:
        """The person's pending application, or None."""
        found = self._select_applications("person = ?", [person])
        return found[0] if found else None

    def application(self, person: PersonId) -> ApplicationRecord:
        """The person's pending application; UnknownRecordError if there is none."""
        record = self.get_application(person)
        if record is None:
            raise UnknownRecordError(f"{person!r} has no pending application: put one with put_application first")
        return record

    def applications(self) -> tuple[ApplicationRecord, ...]:
        """Every pending application, by person."""
        return self._select_applications("1", [])

    def due_applications(self, *, now: int) -> tuple[ApplicationRecord, ...]:
        """The applications not yet notified whose push is due at time now (ISS-7), by person."""
        return self._select_applications("notified = 0 AND push_due <= ?", [_int(now, what="now")])

    def mark_notified(self, *, person: PersonId) -> ApplicationRecord:
        """Record that the person's issuance push was delivered."""
        with self.transaction():
            self.application(person)
            self._db.execute("UPDATE applications SET notified = 1 WHERE person = ?", (person,))
        return self.application(person)

    def remove_application(self, *, person: PersonId) -> ApplicationRecord:
        """Remove the person's pending application (issued or abandoned) and return it."""
        with self.transaction():
            record = self.application(person)
            self._db.execute("DELETE FROM applications WHERE person = ?", (person,))
        return record

    def _select_applications(self, where: str, params: list[object]) -> tuple[ApplicationRecord, ...]:
        """Applications under a WHERE clause built from constants, values as parameters."""
        db = self._db
        rows = db.execute(f"SELECT * FROM applications WHERE {where} ORDER BY person", params).fetchall()
        kinds: dict[str, set[Kind]] = {}
        for k in db.execute(
            f"SELECT person, kind FROM application_kinds WHERE person IN (SELECT person FROM applications WHERE {where})", params
        ):
            kinds.setdefault(k["person"], set()).add(Kind(k["kind"]))
        return tuple(
            ApplicationRecord(
                person=r["person"],
                phone=r["phone"],
                se_id=r["se_id"],
                kinds=frozenset(kinds.get(r["person"], ())),
                commitment=r["commitment"],
                card_serial=r["card_serial"],
                push_token=r["push_token"],
                push_due=r["push_due"],
                notified=bool(r["notified"]),
            )
            for r in rows
        )

    # --- push tokens ------------------------------------------------------------------------------

    def register_push_token(self, *, token: str, phone: PhoneId, install: str) -> PushTokenRecord:
        """Register an app install's push token (valid); a token is registered once."""
        _text(token, what="token")
        _text(phone, what="phone")
        _text(install, what="install")
        with self.transaction():
            if (old := self.get_push_token(token)) is not None:
                raise DuplicateRecordError(
                    f"push token {token!r} is registered already (phone {old.phone!r}, install {old.install!r}): "
                    "a new app install brings a new token"
                )
            self._db.execute("INSERT INTO push_tokens (token, phone, install, valid) VALUES (?, ?, ?, 1)", (token, phone, install))
        return self.push_token(token)

    def invalidate_push_token(self, *, token: str) -> PushTokenRecord:
        """Mark a push token as no longer working (app removed, phone reset); harmless if it is invalid already."""
        with self.transaction():
            self.push_token(token)
            self._db.execute("UPDATE push_tokens SET valid = 0 WHERE token = ?", (token,))
        return self.push_token(token)

    def get_push_token(self, token: str) -> PushTokenRecord | None:
        """The push token's record, or None."""
        row = self._db.execute("SELECT * FROM push_tokens WHERE token = ?", (token,)).fetchone()
        return None if row is None else _token_from(row)

    def push_token(self, token: str) -> PushTokenRecord:
        """The push token's record; UnknownRecordError if it was never registered."""
        record = self.get_push_token(token)
        if record is None:
            raise UnknownRecordError(f"push token {token!r} is not registered: register it with register_push_token first")
        return record

    def push_tokens(self, *, phone: PhoneId | None = None) -> tuple[PushTokenRecord, ...]:
        """Every push token, or the phone's, by token."""
        if phone is None:
            rows = self._db.execute("SELECT * FROM push_tokens ORDER BY token")
        else:
            rows = self._db.execute("SELECT * FROM push_tokens WHERE phone = ? ORDER BY token", (phone,))
        return tuple(_token_from(r) for r in rows)

    # --- deletions --------------------------------------------------------------------------------

    def put_deletion(
        self, *, phone: PhoneId, person: PersonId, serials: Iterable[Serial], push_token: str | None, deadline: int
    ) -> DeletionRecord:
        """Record a remote deletion request for (phone, person), replacing any earlier one (MCH-2)."""
        _text(phone, what="phone")
        targets = frozenset(serials)
        if not targets:
            raise InvalidRecordError("a deletion removes at least one certificate: pass its serials")
        if push_token is not None:
            _text(push_token, what="push_token")
        _int(deadline, what="deadline")
        with self.transaction():
            self.person(person)
            for serial in sorted(targets):
                cert = self.certificate(serial)
                if cert.profile is not Profile.PHONE or cert.person != person:
                    raise InvalidRecordError(
                        f"a deletion for {person!r} removes only their phone certificates (DEL-1); serial {serial} is a "
                        f"{cert.profile.value} certificate of {cert.person!r}"
                    )
            if push_token is not None:
                self.push_token(push_token)
            db = self._db
            db.execute("DELETE FROM deletions WHERE phone = ? AND person = ?", (phone, person))
            db.execute(
                "INSERT INTO deletions (phone, person, push_token, deadline) VALUES (?, ?, ?, ?)", (phone, person, push_token, deadline)
            )
            db.executemany(
                "INSERT INTO deletion_serials (phone, person, serial) VALUES (?, ?, ?)", [(phone, person, s) for s in sorted(targets)]
            )
        return self.deletion(phone=phone, person=person)

    def get_deletion(self, *, phone: PhoneId, person: PersonId) -> DeletionRecord | None:
        """The pending deletion for (phone, person), or None."""
        found = self._select_deletions("phone = ? AND person = ?", [phone, person])
        return found[0] if found else None

    def deletion(self, *, phone: PhoneId, person: PersonId) -> DeletionRecord:
        """The pending deletion for (phone, person); UnknownRecordError if there is none."""
        record = self.get_deletion(phone=phone, person=person)
        if record is None:
            raise UnknownRecordError(f"no pending deletion for phone {phone!r} and person {person!r}")
        return record

    def deletions(self, *, phone: PhoneId | None = None) -> tuple[DeletionRecord, ...]:
        """Every pending deletion, or the phone's, by (phone, person)."""
        if phone is None:
            return self._select_deletions("1", [])
        return self._select_deletions("phone = ?", [phone])

    def remove_deletion(self, *, phone: PhoneId, person: PersonId) -> DeletionRecord:
        """Remove the pending deletion for (phone, person) (done or expired) and return it."""
        with self.transaction():
            record = self.deletion(phone=phone, person=person)
            self._db.execute("DELETE FROM deletions WHERE phone = ? AND person = ?", (phone, person))
        return record

    def _select_deletions(self, where: str, params: list[object]) -> tuple[DeletionRecord, ...]:
        """Deletions under a WHERE clause built from constants, values as parameters."""
        db = self._db
        rows = db.execute(f"SELECT * FROM deletions WHERE {where} ORDER BY phone, person", params).fetchall()
        serials: dict[tuple[str, str], set[int]] = {}
        for s in db.execute(
            "SELECT phone, person, serial FROM deletion_serials "
            f"WHERE (phone, person) IN (SELECT phone, person FROM deletions WHERE {where})",
            params,
        ):
            serials.setdefault((s["phone"], s["person"]), set()).add(s["serial"])
        return tuple(
            DeletionRecord(
                phone=r["phone"],
                person=r["person"],
                serials=frozenset(serials.get((r["phone"], r["person"]), ())),
                push_token=r["push_token"],
                deadline=r["deadline"],
            )
            for r in rows
        )

    # --- the CA -----------------------------------------------------------------------------------

    def save_ca(self, *, ca: JpkiCa, password: bytes | None = None) -> None:
        """Save both CAs' keys and certificates as PEM, where they publish, and the serials the CA has issued; a different CA,
        or the same one publishing elsewhere (its certificates name the saved URLs), is refused.

        The keys are encrypted (PKCS#8, cryptography's best available scheme) with `password`, else with $MJPKI_CA_PASSPHRASE
        when it is set; without either they are stored in clear (the file is 0600 all the same)."""
        if not isinstance(ca, JpkiCa):
            raise TypeError(f"ca must be a JpkiCa, got {type(ca).__name__}")
        password = password if password is not None else ca_passphrase()
        issued = sorted(ca.issued_serials)
        if issued and issued[-1] > MAX_SERIAL:
            raise InvalidRecordError(f"the CA has issued serial {issued[-1]}, beyond what the store holds (2**63 - 1)")
        pems = ca.to_pem(password=password)
        with self.transaction():
            db = self._db
            for kind, pem in sorted(pems.items(), key=lambda kv: kv[0].value):
                row = db.execute("SELECT cert_pem FROM ca WHERE kind = ?", (kind.value,)).fetchone()
                if row is not None and row["cert_pem"] != pem.cert_pem:
                    raise InvalidRecordError(
                        f"the records hold a different {kind.value} CA: the same CA key signs card and phone certificates "
                        "(CA-1), so it is never replaced here; use new records for a new CA"
                    )
                db.execute(
                    "INSERT INTO ca (kind, key_pem, cert_pem) VALUES (?, ?, ?) ON CONFLICT (kind) DO UPDATE SET key_pem = excluded.key_pem",
                    (kind.value, pem.key_pem, pem.cert_pem),
                )
            saved = self._ca_points()
            if saved is not None and saved != ca.points:
                raise InvalidRecordError(
                    f"the records hold this CA publishing at {saved.crl_base} and {saved.ocsp_base}, not {ca.points.crl_base} and "
                    f"{ca.points.ocsp_base}: the certificates it issued name the saved URLs (CA-4); serve them there"
                )
            db.execute(
                "INSERT OR IGNORE INTO ca_points (singleton, crl_base, ocsp_base) VALUES (1, ?, ?)",
                (ca.points.crl_base, ca.points.ocsp_base),
            )
            db.executemany("INSERT OR IGNORE INTO ca_issued (serial) VALUES (?)", [(s,) for s in issued])

    def load_ca(self, *, password: bytes | None = None) -> JpkiCa | None:
        """The saved CA, knowing every serial it issued or a certificate record uses (CA-2); None if none was saved.

        Encrypted keys are decrypted with `password`, else $MJPKI_CA_PASSPHRASE; keys saved in clear are encrypted now when a
        passphrase is given (records made before it was set)."""
        db = self._db
        rows = {Kind(r["kind"]): CaPem(key_pem=r["key_pem"], cert_pem=r["cert_pem"]) for r in db.execute("SELECT * FROM ca")}
        if not rows:
            return None
        if set(rows) != set(Kind):
            raise RecordsFileError(f"{self._where()} holds only the {', '.join(k.value for k in rows)} CA: it is damaged")
        password = password if password is not None else ca_passphrase()
        encrypted = {kind: bytes(pem.key_pem).lstrip().startswith(_ENCRYPTED_PEM) for kind, pem in rows.items()}
        if any(encrypted.values()) and password is None:
            raise RecordsError(
                f"the CA keys in {self._where()} are encrypted: set ${CA_PASSPHRASE_ENV} to the passphrase they were saved with"
            )
        issued = [r[0] for r in db.execute("SELECT serial FROM ca_issued UNION SELECT serial FROM certificates ORDER BY 1")]
        points = self._ca_points() or DEFAULT_POINTS  # none saved: a file migrated from version 2, which kept none
        try:
            ca = JpkiCa.from_pem(
                signing=rows[Kind.SIGNING],
                auth=rows[Kind.AUTH],
                issued_serials=issued,
                password=password if all(encrypted.values()) else None,
                points=points,
            )
        except (TypeError, ValueError) as exc:
            why = f"wrong passphrase (${CA_PASSPHRASE_ENV} or the password given)" if password is not None else exc
            raise RecordsError(f"cannot load the CA keys in {self._where()}: {why}") from None
        if password is not None and not all(encrypted.values()):
            self.save_ca(ca=ca, password=password)  # encrypt keys saved in clear, now that there is a passphrase
        return ca

    def _ca_points(self) -> PublicationPoints | None:
        """Where the saved CA publishes, or None if no points were saved."""
        row = self._db.execute("SELECT crl_base, ocsp_base FROM ca_points").fetchone()
        if row is None:
            return None
        try:
            return PublicationPoints(crl_base=row["crl_base"], ocsp_base=row["ocsp_base"])
        except ValueError as exc:
            raise RecordsFileError(f"{self._where()} holds malformed CA publication points ({exc}): it is damaged") from None

    # --- observation and snapshot -----------------------------------------------------------------

    def cert_views(self) -> tuple[CertView, ...]:
        """Every certificate as an Observation shows it, by serial."""
        return tuple(c.view() for c in self.certificates())

    def current_cards(self) -> FrozenMap[tuple[PersonId, Kind], Serial]:
        """(person, kind) -> the current card certificate serial, for the persons who have one."""
        return FrozenMap(((p.id, kind), serial) for p in self.persons() for kind in Kind if (serial := p.current(kind)) is not None)

    def observation(
        self, *, now: int, slots: Iterable[SlotView] = (), holders: Mapping[PhoneId, PersonId | None] | None = None
    ) -> Observation:
        """An Observation: the certificate part from these records, the SE slots and phone holders from the caller."""
        return Observation(
            now=_int(now, what="now"),
            certs=self.cert_views(),
            published=self.published(),
            linkage=self.linkage(),
            current_card=self.current_cards(),
            slots=tuple(slots),
            holders=FrozenMap(holders or {}),
        )

    def snapshot(self) -> dict[str, Any]:
        """Every row of every table as plain, JSON-able data (bytes in hex), deterministically ordered."""
        db = self._db
        out: dict[str, Any] = {}
        for table in sorted(_TABLES):
            columns = [r["name"] for r in db.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]
            order = ", ".join(str(i) for i in range(1, len(columns) + 1))
            rows = db.execute(f"SELECT * FROM {table} ORDER BY {order}")  # table: one of _TABLES
            out[table] = [{c: _plain(row[c]) for c in columns} for row in rows]
        out["application_id"] = db.execute("PRAGMA application_id").fetchone()[0]
        return out


def _parse_der(der: bytes, *, serial: int) -> x509.Certificate:
    """The certificate in der; InvalidRecordError if it is not one."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise InvalidRecordError(
            f"the DER given for serial {serial} is not an X.509 certificate ({exc}): pass the issued certificate's DER"
        ) from exc


def _cert_from(row: sqlite3.Row, holds: FrozenMap[HoldCause, int], follows: frozenset[Serial] = frozenset()) -> CertRecord:
    """A certificate row, its holds and (a phone certificate's) followed card certificates as a CertRecord."""
    return CertRecord(
        serial=row["serial"],
        profile=Profile(row["profile"]),
        kind=Kind(row["kind"]),
        person=row["person"],
        status=CertStatus(row["status"]),
        issued_at=row["issued_at"],
        expiry=row["expiry"],
        der=row["der"],
        holds=holds,
        revoked_at=row["revoked_at"],
        reason=None if row["reason"] is None else RevocationReason(row["reason"]),
        se_id=row["se_id"],
        card_serial=row["card_serial"],
        follows=follows,
        key_fingerprint=row["key_fingerprint"],
        commitment=row["commitment"],
        presented_r=row["presented_r"],
        push_token=row["push_token"],
    )


def _token_from(row: sqlite3.Row) -> PushTokenRecord:
    """A push token row as a PushTokenRecord."""
    return PushTokenRecord(token=row["token"], phone=row["phone"], install=row["install"], valid=bool(row["valid"]))
