"""The review queue's store: uploads and their review state, closed profiles, reviewers, the audit trail, hash banks.

Persisted through SQLAlchemy 2.x: SQLite by default (``sqlite:///path/review.db``), PostgreSQL in
production (``postgresql+psycopg://user@host/db``; a bare ``postgresql://`` is read as psycopg 3,
the driver modops installs). Tables, all prefixed ``modops_``:

    modops_meta          key -> value; holds ``schema_version`` (:data:`SCHEMA_VERSION`). An older
                         database is migrated at open, in one transaction; a newer one is refused
                         with a message, never half-read.
    modops_uploads       one row per upload: who, what (sha256, image path), the policy's decision,
                         reasons (JSON list of dicts) and scores (JSON {name: float}), the current
                         ``status``, the last reviewer. Indexed on (status, created_at) for the queue
                         and on uploader_id for profile actions.
    modops_profiles      closed profiles (a row means closed).
    modops_reviewers     name, role, SHA-256 of the API token (never the token), active flag.
    modops_audit         every action: who, when, what, upload/uploader, before and after (JSON), note.
    modops_bank_entries  (bank, key) -> binary hash code and the scheme that made it (method/size);
                         the app rebuilds its in-memory index from them.

Statuses (:data:`UPLOAD_STATUSES`): ``allowed`` (public), ``pending_review`` (hidden until a reviewer
decides), ``blocked``, ``discarded``, ``removed``. Only ``allowed`` content is ever public
(:attr:`UploadRecord.visible`). Reviewer actions (:data:`TRANSITIONS`):

    approve  pending_review                               -> allowed
    remove   pending_review | allowed | blocked           -> removed
    restore  pending_review | blocked | removed | discarded -> allowed   (a false flag)

and closing a profile moves every upload of that uploader to ``removed``; a closed profile's
uploads cannot be approved or restored.

Concurrency: every write runs in one transaction that first takes the write lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE`` on the rows it changes), and the status
change itself is a conditional ``UPDATE ... WHERE status = <status read>`` whose row count is
checked, so two reviewers acting on the same upload at once cannot both succeed: the second sees
the first one's result and gets :class:`InvalidTransition`.

Time: every timestamp is timezone-aware UTC in and out (SQLite stores naive UTC; it is tagged on
read). Naive datetimes passed in are refused rather than guessed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ACTIONS",
    "BANKS",
    "ROLES",
    "SCHEMA_VERSION",
    "TRANSITIONS",
    "UPLOAD_STATUSES",
    "Action",
    "AuditRecord",
    "Bank",
    "DuplicateReviewer",
    "DuplicateUpload",
    "InvalidTransition",
    "ReviewStore",
    "Reviewer",
    "Role",
    "StoreError",
    "UnknownReviewer",
    "UnknownUpload",
    "UploadRecord",
    "UploadStatus",
    "hash_token",
]

UploadStatus = Literal["allowed", "pending_review", "blocked", "discarded", "removed"]
Action = Literal["approve", "remove", "restore"]
Role = Literal["reviewer", "admin"]
Bank = Literal["allow", "spam"]

UPLOAD_STATUSES: tuple[str, ...] = get_args(UploadStatus)
ACTIONS: tuple[str, ...] = get_args(Action)
ROLES: tuple[str, ...] = get_args(Role)
BANKS: tuple[str, ...] = get_args(Bank)

# action -> (statuses it applies to, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({"pending_review"}), "allowed"),
    "remove": (frozenset({"pending_review", "allowed", "blocked"}), "removed"),
    "restore": (frozenset({"pending_review", "blocked", "removed", "discarded"}), "allowed"),
}

# Bump together with a migration (:data:`_MIGRATIONS`); a newer database is refused at open.
SCHEMA_VERSION = 2
_SCHEMA_KEY = "schema_version"
# Any constant works: it only serialises concurrent first-time table creation on one PostgreSQL database.
_PG_INIT_LOCK = 0x6D6F646F7073  # "modops"
_SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_CONNECT_TIMEOUT_S = 10
# Execution option marking the engine whose transactions write (SQLite then begins IMMEDIATE).
_WRITE_OPTION = "modops_write"

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- errors


class StoreError(Exception):
    """Base of the store's errors; the message says how to fix the problem."""


class UnknownUpload(StoreError, LookupError):
    """No upload with that id."""


class UnknownReviewer(StoreError, LookupError):
    """No reviewer with that name."""


class InvalidTransition(StoreError, ValueError):
    """The action does not apply to the upload's current status (or it changed concurrently)."""


class DuplicateReviewer(StoreError, ValueError):
    """A reviewer with that name exists already (active or not)."""


class DuplicateUpload(StoreError, ValueError):
    """An upload with that id exists already."""


# ------------------------------------------------------------------------------------- public records


@dataclass(frozen=True)
class UploadRecord:
    """One upload as stored. Timestamps are timezone-aware UTC; ``scores`` maps score name -> float."""

    id: str
    uploader_id: str
    business_category: str
    sha256: str
    image_path: str
    status: UploadStatus
    decision: UploadStatus
    reasons: list[dict]
    scores: dict[str, float]
    model_version: str | None
    created_at: datetime
    updated_at: datetime
    reviewed_by: str | None

    @property
    def visible(self) -> bool:
        """Whether the public may see it: only ``allowed`` content, never pending, blocked or removed."""
        return self.status == "allowed"


@dataclass(frozen=True)
class Reviewer:
    """A reviewer account (the token is never part of it)."""

    id: int
    name: str
    role: Role
    created_at: datetime
    active: bool


@dataclass(frozen=True)
class AuditRecord:
    """One audited action. ``action`` is a review action, ``close_profile``, ``add_reviewer`` or
    ``deactivate_reviewer``; ``before``/``after`` are the changed fields (e.g. ``{"status": ...}``)."""

    id: int
    at: datetime
    reviewer: str
    action: str
    upload_id: str | None
    uploader_id: str | None
    before: dict
    after: dict
    note: str


def hash_token(token: str) -> str:
    """SHA-256 hex digest (64 chars) of an API token, the only form in which tokens are stored.

    A fast hash is the right tool here, unlike for passwords: tokens are 256-bit random values
    (``secrets.token_urlsafe(32)``), so there is nothing to brute-force or look up in a dictionary,
    and a slow KDF would only slow down every authenticated request.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------- schema


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC; tagged again on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Base(DeclarativeBase):
    pass


class _Meta(_Base):
    __tablename__ = "modops_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class _Upload(_Base):
    __tablename__ = "modops_uploads"
    __table_args__ = (
        Index("ix_modops_uploads_status_created", "status", "created_at"),
        Index("ix_modops_uploads_uploader", "uploader_id"),
        Index("ix_modops_uploads_sha256", "sha256"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    uploader_id: Mapped[str] = mapped_column(String(255))
    business_category: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    image_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    model_version: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(255))


class _Profile(_Base):
    __tablename__ = "modops_profiles"
    uploader_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_by: Mapped[str] = mapped_column(String(255))
    note: Mapped[str] = mapped_column(Text, default="")


class _Reviewer(_Base):
    __tablename__ = "modops_reviewers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class _Audit(_Base):
    __tablename__ = "modops_audit"
    __table_args__ = (
        Index("ix_modops_audit_upload", "upload_id"),
        Index("ix_modops_audit_uploader", "uploader_id"),
        Index("ix_modops_audit_at", "at"),
    )
    # BIGINT on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewer: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("modops_uploads.id"))
    uploader_id: Mapped[str | None] = mapped_column(String(255))
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")


class _BankEntry(_Base):
    __tablename__ = "modops_bank_entries"
    bank: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    code: Mapped[bytes] = mapped_column(LargeBinary)
    # "method/hash_size" that made the code (e.g. "phash_stable/16"); NULL for entries written
    # before schema version 2, which did not record it. Codes of different schemes never compare.
    scheme: Mapped[str | None] = mapped_column(String(64))
    # No foreign key: banks may be seeded with images that never were uploads in this database.
    upload_id: Mapped[str | None] = mapped_column(String(64))
    added_by: Mapped[str | None] = mapped_column(String(255))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _migrate_1_to_2(conn: Connection) -> None:
    # Version 1 did not record which hash scheme made a bank code: NULL marks those codes as
    # unknown, and the service re-hashes them from their upload's picture before using them.
    conn.execute(text("ALTER TABLE modops_bank_entries ADD COLUMN scheme VARCHAR(64)"))


#: ``from_version -> step`` bringing a database from that version to the next, run at open.
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_1_to_2}


# ------------------------------------------------------------------------------------------- helpers


def _as_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one, e.g. datetime.now(UTC)")
    return value.astimezone(UTC)


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else _as_utc(now)


def _choice(value: str, allowed: Sequence[str], *, what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return value


def _clean_json(value: Any, *, what: str) -> Any:
    """A plain-JSON copy of ``value`` (so numpy scalars and NaN fail here, with a message, not in the driver)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be plain JSON (str, int, finite float, bool, None, list, dict): {exc}") from exc


def _clean_scores(scores: dict[str, float]) -> dict[str, float]:
    clean = {str(name): float(value) for name, value in scores.items()}
    bad = sorted(name for name, value in clean.items() if not math.isfinite(value))
    if bad:
        raise ValueError(f"scores must be finite floats; not finite: {', '.join(bad)}")
    return clean


def _upload_record(row: _Upload) -> UploadRecord:
    return UploadRecord(
        id=row.id,
        uploader_id=row.uploader_id,
        business_category=row.business_category,
        sha256=row.sha256,
        image_path=row.image_path,
        status=row.status,  # type: ignore[arg-type]
        decision=row.decision,  # type: ignore[arg-type]
        reasons=list(row.reasons),
        scores=dict(row.scores),
        model_version=row.model_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        reviewed_by=row.reviewed_by,
    )


def _reviewer_record(row: _Reviewer) -> Reviewer:
    return Reviewer(id=row.id, name=row.name, role=row.role, created_at=row.created_at, active=row.active)  # type: ignore[arg-type]


def _audit_record(row: _Audit) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        reviewer=row.reviewer,
        action=row.action,
        upload_id=row.upload_id,
        uploader_id=row.uploader_id,
        before=dict(row.before),
        after=dict(row.after),
        note=row.note,
    )


def _refusal(action: str, status: str, *, upload_id: str) -> InvalidTransition:
    sources, target = TRANSITIONS[action]
    hint = {
        "approve": "use restore for blocked, removed or discarded content",
        "remove": "it is already hidden" if status in ("removed", "discarded") else "",
        "restore": "it is already allowed" if status == "allowed" else "",
    }[action]
    message = (
        f"cannot {action} an upload that is {status} (upload {upload_id}); {action} applies to "
        f"{', '.join(sorted(sources))} uploads only and makes them {target}"
    )
    return InvalidTransition(f"{message}; {hint}" if hint else message)


# ---------------------------------------------------------------------------------------------- engine


def _parse_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        # The text may hold a password, so it is not echoed.
        raise StoreError(
            "cannot parse the review database URL; use e.g. sqlite:///path/review.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from exc
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; modops installs psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url.database)


def _make_sqlite_parent(url: URL, shown: str) -> None:
    database = url.database or ""
    if _sqlite_memory(url) or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder of the review database {shown}: {exc}; pick a writable path"
        ) from exc


def _engine_kwargs(url: URL) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "sqlite":
        # check_same_thread=False: FastAPI runs handlers in a thread pool and the pool hands
        # connections across threads (each used by one thread at a time).
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S}}
        if _sqlite_memory(url):
            kwargs["poolclass"] = StaticPool  # one shared connection, else every connection is a new empty DB
        return kwargs
    kwargs = {"pool_pre_ping": True}
    if backend == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": _PG_CONNECT_TIMEOUT_S}
    return kwargs


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL and foreign keys on each connection; SQLAlchemy (not sqlite3) emits BEGIN.

    sqlite3's legacy transaction control never begins a transaction for SELECT, so a read followed
    by a write is not atomic. Following SQLAlchemy's documented recipe, the driver's own BEGIN is
    switched off and the engine's ``begin`` event emits it: ``BEGIN IMMEDIATE`` (take the write lock
    now, waiting up to the busy timeout) on the writing engine, a plain deferred ``BEGIN`` for reads.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _connect_error(exc: sa_exc.DBAPIError, url: URL, *, shown: str) -> StoreError:
    reason = " ".join(str(exc.orig if exc.orig is not None else exc).split())
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return StoreError(
        f"cannot use the review database at {shown} ({reason}); check that the server runs and accepts "
        "this user, that the database exists, and that the URL (or the setting that gave it) is right"
    )


# ------------------------------------------------------------------------------------------------ store

_T = TypeVar("_T")


class ReviewStore:
    """The review queue and everything reviewers do, in one SQL database (see the module docstring).

    Thread-safe: each call opens its own session and transaction; records returned are frozen
    dataclasses detached from any session.
    """

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        """Open (and on first use create) the store at ``url``; a SQLite file's parent folders are created.

        Raises:
            StoreError: the URL cannot be parsed or reached (message names it, password masked), or
                the database holds another schema version.
        """
        parsed = _parse_url(url)
        self.url_shown = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite":
            _make_sqlite_parent(parsed, self.url_shown)
        try:
            self._engine = create_engine(parsed, echo=echo, **_engine_kwargs(parsed))
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise StoreError(
                f"cannot open the review database {self.url_shown}: {exc}; use sqlite:///path/review.db "
                "or postgresql+psycopg://user:password@host:5432/dbname"
            ) from exc
        if self._engine.dialect.name == "sqlite":
            _install_sqlite_hooks(self._engine)
        self._write_engine = self._engine.execution_options(**{_WRITE_OPTION: True})
        self._read = sessionmaker(self._engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # An in-memory SQLite database lives in one shared connection: threads take turns on it.
        memory = parsed.get_backend_name() == "sqlite" and _sqlite_memory(parsed)
        self._turn: AbstractContextManager[Any] = threading.Lock() if memory else nullcontext()
        try:
            self._init_schema()
        except sa_exc.DBAPIError as exc:
            self._engine.dispose()
            raise _connect_error(exc, parsed, shown=self.url_shown) from exc
        except StoreError:
            self._engine.dispose()
            raise

    # ---- lifecycle

    def close(self) -> None:
        """Release every pooled connection (the store must not be used afterwards)."""
        self._engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ReviewStore({self.url_shown!r})"

    def _init_schema(self) -> None:
        with self._write_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_INIT_LOCK})
            _Base.metadata.create_all(conn)
            found = conn.execute(select(_Meta.value).where(_Meta.key == _SCHEMA_KEY)).scalar_one_or_none()
            if found is None:
                conn.execute(_Meta.__table__.insert().values(key=_SCHEMA_KEY, value=str(SCHEMA_VERSION)))
                return
            version = int(found) if found.isdigit() else -1
            if version not in _MIGRATIONS and version != SCHEMA_VERSION:
                raise StoreError(
                    f"the review database at {self.url_shown} has schema version {found}, this modops "
                    f"reads version {SCHEMA_VERSION}; use the modops release that wrote it, or a fresh database"
                )
            while version != SCHEMA_VERSION:  # each step runs in this one transaction: all or nothing
                _MIGRATIONS[version](conn)
                version += 1
                logger.warning("migrated the review database at %s to schema version %d", self.url_shown, version)
            conn.execute(update(_Meta).where(_Meta.key == _SCHEMA_KEY).values(value=str(SCHEMA_VERSION)))

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._turn, self._write() as session, session.begin():
            yield session

    def _reading(self, query: Callable[[Session], _T]) -> _T:
        with self._turn, self._read() as session, session.begin():
            return query(session)

    # ---- uploads

    def add_upload(
        self,
        *,
        uploader_id: str,
        business_category: str,
        sha256: str,
        image_path: str,
        decision: UploadStatus,
        reasons: list[dict],
        scores: dict[str, float],
        model_version: str | None,
        upload_id: str | None = None,
        now: datetime | None = None,
    ) -> UploadRecord:
        """Store a new upload whose status starts as the policy's ``decision``.

        ``upload_id`` defaults to ``uuid4().hex``. The store does not check the uploader's profile:
        the caller asks :meth:`profile_closed` first.

        Raises:
            ValueError: unknown decision, naive ``now``, non-JSON reasons, non-finite scores.
            DuplicateUpload: ``upload_id`` exists already.
        """
        _choice(decision, UPLOAD_STATUSES, what="decision")
        when = _now(now)
        row = _Upload(
            id=upload_id or uuid.uuid4().hex,
            uploader_id=uploader_id,
            business_category=business_category,
            sha256=sha256,
            image_path=str(image_path),
            status=decision,
            decision=decision,
            reasons=_clean_json(list(reasons), what="reasons"),
            scores=_clean_scores(scores),
            model_version=model_version,
            created_at=when,
            updated_at=when,
            reviewed_by=None,
        )
        record = _upload_record(row)
        try:
            with self._writing() as session:
                if session.get(_Upload, row.id) is not None:
                    raise DuplicateUpload(f"upload id {row.id!r} exists already; pass a new id or none")
                session.add(row)
        except sa_exc.IntegrityError as exc:
            raise DuplicateUpload(f"upload id {row.id!r} exists already; pass a new id or none") from exc
        return record

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        """The upload with that id, or None."""

        def query(session: Session) -> UploadRecord | None:
            row = session.get(_Upload, upload_id)
            return None if row is None else _upload_record(row)

        return self._reading(query)

    def queue(self, *, limit: int = 50, offset: int = 0) -> list[UploadRecord]:
        """Uploads awaiting review (``pending_review``), oldest first; at most ``limit`` after ``offset``."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        stmt = (
            select(_Upload)
            .where(_Upload.status == "pending_review")
            .order_by(_Upload.created_at, _Upload.id)
            .limit(limit)
            .offset(offset)
        )
        return self._reading(lambda s: [_upload_record(row) for row in s.scalars(stmt)])

    def with_status(self, status: str, *, limit: int = 50, offset: int = 0) -> list[UploadRecord]:
        """Uploads in ``status`` (see :data:`UPLOAD_STATUSES`): the queue oldest first, others newest first."""
        _choice(status, UPLOAD_STATUSES, what="status")
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        # The queue is worked oldest first; decided uploads are looked up most recent first.
        order = (
            (_Upload.created_at, _Upload.id)
            if status == "pending_review"
            else (_Upload.updated_at.desc(), _Upload.id.desc())
        )
        stmt = select(_Upload).where(_Upload.status == status).order_by(*order).limit(limit).offset(offset)
        return self._reading(lambda s: [_upload_record(row) for row in s.scalars(stmt)])

    def queue_size(self) -> int:
        """How many uploads await review."""
        stmt = select(func.count()).select_from(_Upload).where(_Upload.status == "pending_review")
        return self._reading(lambda s: int(s.execute(stmt).scalar_one()))

    def uploads_of(self, uploader_id: str) -> list[UploadRecord]:
        """Every upload of that uploader, whatever its status, oldest first."""
        stmt = select(_Upload).where(_Upload.uploader_id == uploader_id).order_by(_Upload.created_at, _Upload.id)
        return self._reading(lambda s: [_upload_record(row) for row in s.scalars(stmt)])

    # ---- reviews

    def apply_review(
        self, upload_id: str, *, action: Action, reviewer: Reviewer, note: str = "", now: datetime | None = None
    ) -> UploadRecord:
        """Apply a reviewer's ``action`` (see :data:`TRANSITIONS`) and audit it, in one transaction.

        Raises:
            ValueError: unknown action or naive ``now``.
            UnknownUpload: no such upload.
            InvalidTransition: the action does not apply to the upload's status (including when another
                reviewer changed it first), or it would bring back content of a closed profile.
        """
        _choice(action, ACTIONS, what="action")
        sources, target = TRANSITIONS[action]
        when = _now(now)
        with self._writing() as session:
            row = session.scalars(select(_Upload).where(_Upload.id == upload_id).with_for_update()).one_or_none()
            if row is None:
                raise UnknownUpload(f"no upload with id {upload_id!r}; list the queue for current ids")
            before = row.status
            if before not in sources:
                raise _refusal(action, before, upload_id=upload_id)
            if target == "allowed" and session.get(_Profile, row.uploader_id) is not None:
                raise InvalidTransition(
                    f"cannot {action} upload {upload_id}: its uploader {row.uploader_id!r} has a closed profile, "
                    "whose content stays removed"
                )
            self._set_status(session, row, before=before, after=target, by=reviewer.name, when=when)
            session.add(
                self._audit_row(reviewer.name, action, row=row, before=before, after=target, note=note, when=when)
            )
            return replace(_upload_record(row), status=target, updated_at=when, reviewed_by=reviewer.name)

    @staticmethod
    def _set_status(session: Session, row: _Upload, *, before: str, after: str, by: str, when: datetime) -> None:
        """Conditional UPDATE: succeeds only if the status is still ``before`` (the lost-update guard)."""
        result = session.execute(
            update(_Upload)
            .where(_Upload.id == row.id, _Upload.status == before)
            .values(status=after, updated_at=when, reviewed_by=by)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidTransition(
                f"upload {row.id} changed while it was being reviewed (it was {before}); reload it and decide again"
            )

    @staticmethod
    def _audit_row(
        who: str, action: str, *, row: _Upload, before: str, after: str, note: str, when: datetime
    ) -> _Audit:
        return _Audit(
            at=when,
            reviewer=who,
            action=action,
            upload_id=row.id,
            uploader_id=row.uploader_id,
            before={"status": before},
            after={"status": after},
            note=note,
        )

    # ---- profiles

    def close_profile(
        self, uploader_id: str, *, reviewer: Reviewer, note: str = "", now: datetime | None = None
    ) -> list[UploadRecord]:
        """Close a profile: mark it closed and move every upload of that uploader that is not yet
        ``removed`` to ``removed`` (so it leaves the queue and is never public).

        Audited as one ``close_profile`` row per changed upload (with its upload_id, before/after
        status) plus one ``close_profile`` row for the profile (upload_id None, before/after
        ``{"closed": ...}``). Idempotent: closing a closed profile with nothing left to remove
        changes nothing and returns [].

        Returns:
            The uploads that changed, as they are now, oldest first.
        """
        when = _now(now)
        try:
            return self._close_profile_once(uploader_id, reviewer.name, note, when)
        except sa_exc.IntegrityError:
            # Another reviewer closed the profile at the same moment; once more, now seeing it closed.
            return self._close_profile_once(uploader_id, reviewer.name, note, when)

    def _close_profile_once(self, uploader_id: str, who: str, note: str, when: datetime) -> list[UploadRecord]:
        with self._writing() as session:
            # Lock every upload of the uploader, removed ones too, so a concurrent restore waits for
            # this transaction and then sees the profile closed.
            rows = session.scalars(
                select(_Upload)
                .where(_Upload.uploader_id == uploader_id)
                .order_by(_Upload.created_at, _Upload.id)
                .with_for_update()
            ).all()
            was_closed = session.get(_Profile, uploader_id) is not None
            changed = []
            for row in rows:
                if row.status == "removed":
                    continue
                before = row.status
                self._set_status(session, row, before=before, after="removed", by=who, when=when)
                session.add(
                    self._audit_row(who, "close_profile", row=row, before=before, after="removed", note=note, when=when)
                )
                changed.append(replace(_upload_record(row), status="removed", updated_at=when, reviewed_by=who))
            if not was_closed:
                session.add(_Profile(uploader_id=uploader_id, closed_at=when, closed_by=who, note=note))
                session.add(
                    _Audit(
                        at=when,
                        reviewer=who,
                        action="close_profile",
                        upload_id=None,
                        uploader_id=uploader_id,
                        before={"closed": False},
                        after={"closed": True, "removed": len(changed)},
                        note=note,
                    )
                )
            return changed

    def profile_closed(self, uploader_id: str) -> bool:
        """Whether that uploader's profile is closed (its uploads must then be refused)."""
        return self._reading(lambda s: s.get(_Profile, uploader_id) is not None)

    # ---- reviewers

    def add_reviewer(self, name: str, *, role: Role, by: str = "cli") -> tuple[Reviewer, str]:
        """Create a reviewer; returns it and its API token, in plaintext this once only.

        Only the token's SHA-256 is stored (see :func:`hash_token`). Audited as ``add_reviewer`` by ``by``.

        Raises:
            ValueError: unknown role or empty name.
            DuplicateReviewer: the name is taken (by an active or a deactivated reviewer).
        """
        _choice(role, ROLES, what="role")
        if not name or not name.strip() or name != name.strip():
            raise ValueError(f"reviewer name {name!r} must be non-empty, without surrounding spaces")
        token = secrets.token_urlsafe(32)
        when = datetime.now(UTC)
        taken = f"a reviewer named {name!r} exists already; pick another name (names stay taken after deactivation)"
        try:
            with self._writing() as session:
                if session.scalars(select(_Reviewer.id).where(_Reviewer.name == name)).first() is not None:
                    raise DuplicateReviewer(taken)
                row = _Reviewer(name=name, role=role, token_sha256=hash_token(token), created_at=when, active=True)
                session.add(row)
                session.add(
                    self._account_audit(
                        by, "add_reviewer", name=name, before={}, after={"role": role, "active": True}, when=when
                    )
                )
                session.flush()  # assigns row.id
                reviewer = _reviewer_record(row)
        except sa_exc.IntegrityError as exc:
            raise DuplicateReviewer(taken) from exc
        return reviewer, token

    @staticmethod
    def _account_audit(by: str, action: str, *, name: str, before: dict, after: dict, when: datetime) -> _Audit:
        return _Audit(
            at=when,
            reviewer=by,
            action=action,
            upload_id=None,
            uploader_id=None,
            before={"reviewer": name, **before},
            after={"reviewer": name, **after},
            note="",
        )

    def authenticate(self, token: str) -> Reviewer | None:
        """The active reviewer holding ``token``, or None (empty, unknown or deactivated)."""
        if not isinstance(token, str) or not token:
            return None
        # Looked up by hash: a timing difference could at most reveal a prefix of a hash, not of a token.
        stmt = select(_Reviewer).where(_Reviewer.token_sha256 == hash_token(token), _Reviewer.active.is_(True))

        def query(session: Session) -> Reviewer | None:
            row = session.scalars(stmt).one_or_none()
            return None if row is None else _reviewer_record(row)

        return self._reading(query)

    def deactivate_reviewer(self, name: str, *, by: str) -> None:
        """Deactivate a reviewer (its token stops working); audited. A no-op if already inactive.

        Raises:
            UnknownReviewer: no reviewer with that name.
        """
        with self._writing() as session:
            row = session.scalars(select(_Reviewer).where(_Reviewer.name == name).with_for_update()).one_or_none()
            if row is None:
                raise UnknownReviewer(f"no reviewer named {name!r}; list them with reviewers()")
            if not row.active:
                return
            row.active = False
            when = datetime.now(UTC)
            session.add(
                self._account_audit(
                    by, "deactivate_reviewer", name=name, before={"active": True}, after={"active": False}, when=when
                )
            )

    def reviewers(self) -> list[Reviewer]:
        """Every reviewer, active or not, in creation order."""
        stmt = select(_Reviewer).order_by(_Reviewer.id)
        return self._reading(lambda s: [_reviewer_record(row) for row in s.scalars(stmt)])

    # ---- audit

    def audit_log(
        self, *, limit: int = 100, upload_id: str | None = None, uploader_id: str | None = None
    ) -> list[AuditRecord]:
        """Audited actions, newest first, optionally only those about one upload or one uploader."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        stmt = select(_Audit).order_by(_Audit.at.desc(), _Audit.id.desc()).limit(limit)
        if upload_id is not None:
            stmt = stmt.where(_Audit.upload_id == upload_id)
        if uploader_id is not None:
            stmt = stmt.where(_Audit.uploader_id == uploader_id)
        return self._reading(lambda s: [_audit_record(row) for row in s.scalars(stmt)])

    # ---- hash banks

    def add_bank_entry(
        self,
        bank: Bank,
        *,
        key: str,
        code: bytes,
        scheme: str | None,
        upload_id: str | None,
        added_by: str | None,
        now: datetime | None = None,
    ) -> None:
        """Put ``key -> code`` (a binary hash code, e.g. 32 bytes for a 256-bit phash) in ``bank``.

        ``scheme`` names what made the code (``"method/hash_size"``, e.g. ``"phash_stable/16"``);
        :meth:`bank_entries` returns only the codes of the scheme asked for. Idempotent on
        (bank, key): an existing entry gets the new code, scheme, upload_id, added_by and time.
        """
        _choice(bank, BANKS, what="bank")
        values = {
            "bank": bank,
            "key": key,
            "code": bytes(code),
            "scheme": scheme,
            "upload_id": upload_id,
            "added_by": added_by,
            "added_at": _now(now),
        }
        with self._writing() as session:
            dialect = self._engine.dialect.name
            if dialect in ("postgresql", "sqlite"):
                if dialect == "postgresql":
                    from sqlalchemy.dialects.postgresql import insert
                else:
                    from sqlalchemy.dialects.sqlite import insert
                stmt = insert(_BankEntry).values(**values)
                replaced = ("code", "scheme", "upload_id", "added_by", "added_at")
                updates = {name: stmt.excluded[name] for name in replaced}
                session.execute(stmt.on_conflict_do_update(index_elements=["bank", "key"], set_=updates))
            else:
                session.merge(_BankEntry(**values))

    def rehash_bank_entry(self, bank: Bank, key: str, *, code: bytes, scheme: str) -> bool:
        """Replace the code of an existing entry by one of ``scheme``, keeping who added it and when.

        Returns:
            True if the entry was there (and now holds ``code``), False if it was not.
        """
        _choice(bank, BANKS, what="bank")
        stmt = (
            update(_BankEntry)
            .where(_BankEntry.bank == bank, _BankEntry.key == key)
            .values(code=bytes(code), scheme=scheme)
        )
        with self._writing() as session:
            return session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]

    def remove_bank_entry(self, bank: Bank, key: str) -> bool:
        """Remove ``key`` from ``bank``; True if it was there."""
        _choice(bank, BANKS, what="bank")
        with self._writing() as session:
            result = session.execute(delete(_BankEntry).where(_BankEntry.bank == bank, _BankEntry.key == key))
            return result.rowcount == 1  # type: ignore[attr-defined]

    def bank_entries(self, bank: Bank, *, scheme: str) -> list[tuple[str, bytes]]:
        """Every (key, code) of ``bank`` whose code was made by ``scheme``, sorted by key."""
        _choice(bank, BANKS, what="bank")
        stmt = (
            select(_BankEntry.key, _BankEntry.code)
            .where(_BankEntry.bank == bank, _BankEntry.scheme == scheme)
            .order_by(_BankEntry.key)
        )
        return self._reading(lambda s: [(key, bytes(code)) for key, code in s.execute(stmt)])

    def foreign_bank_entries(self, bank: Bank, *, scheme: str) -> list[tuple[str, str | None, str | None]]:
        """``(key, upload_id, scheme)`` of each entry of ``bank`` made by another scheme or an unrecorded one.

        Their codes do not compare with ``scheme``'s: re-hash them (:meth:`rehash_bank_entry`).
        """
        _choice(bank, BANKS, what="bank")
        stmt = (
            select(_BankEntry.key, _BankEntry.upload_id, _BankEntry.scheme)
            .where(_BankEntry.bank == bank, (_BankEntry.scheme != scheme) | _BankEntry.scheme.is_(None))
            .order_by(_BankEntry.key)
        )
        return self._reading(lambda s: [(key, upload_id, found) for key, upload_id, found in s.execute(stmt)])
