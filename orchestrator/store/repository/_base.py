"""The repository's foundation: engine, transactions, and helpers every part uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Insert, Row, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from orchestrator.errors import ConfigurationError, ExecutionNotFound
from orchestrator.store import models as m
from orchestrator.store.engine import WRITE_OPTION
from orchestrator.store.records import Execution
from orchestrator.types import ExecutionStatus

#: Default payload limit, in bytes (AWS's 256 KiB).
DEFAULT_PAYLOAD_MAX_BYTES = 262_144

#: Default rows per INSERT statement in ``create_executions_bulk``; SQLite
#: allows 32,766 bound parameters per statement and an execution has 24 columns.
DEFAULT_CHUNK_SIZE = 500

EX = m.Execution
#: The executions table (Core statements built on it skip the ORM's bookkeeping).
EXT: Table = m.Execution.__table__  # type: ignore[assignment]
EXECUTION_COLUMNS = tuple(EXT.c)
HISTORY_TABLE: Table = m.HistoryEvent.__table__  # type: ignore[assignment]

_T = TypeVar("_T")
#: Statuses in which a worker may hold (or take) the lease.
ACTIVE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


class RepositoryBase:
    """Engine and transactions shared by the repository's parts (see ``Repository``)."""

    def __init__(
        self, engine: Engine, *, payload_max_bytes: int = DEFAULT_PAYLOAD_MAX_BYTES
    ) -> None:
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ConfigurationError(f"unsupported database {dialect!r}: use PostgreSQL or SQLite")
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._dialect = dialect
        self._owns_engine = False
        self._create_insert: Insert | None = None
        self.payload_max_bytes = payload_max_bytes

    @property
    def engine(self) -> Engine:
        """The engine this repository runs on."""
        return self._engine

    def close(self) -> None:
        """Dispose of the engine if this repository created it."""
        if self._owns_engine:
            self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that writes (on SQLite it holds the write lock from BEGIN)."""
        with self._write_engine.begin() as conn:
            yield conn

    def _transaction(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in a write transaction; once more if the server dropped the connection.

        A statement that fails because the connection died (a restarted server;
        SQLAlchemy then replaces every pooled connection) leaves nothing
        committed, so the whole transaction is run once more. A failure at
        COMMIT is not retried: it may have committed.
        """
        for attempt in (1, 2):
            committing = False
            try:
                with self._write() as conn:
                    result = work(conn)
                    committing = True
                return result
            except DBAPIError as error:
                if committing or attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _statement(
        self, statement: Executable, params: dict[str, Any], *, retry: bool
    ) -> Row[Any] | None:
        """Run one writing statement as a transaction of its own; return its first row.

        On PostgreSQL the statement runs in autocommit mode (one round trip). With
        ``retry`` it runs once more if the server dropped the connection: only
        for statements whose second run is harmless even if the first committed
        (in autocommit mode a dropped connection does not say whether it did).
        """
        if self._dialect != "postgresql":
            return self._transaction(lambda conn: conn.execute(statement, params).first())
        for attempt in (1, 2):
            try:
                with self._engine.connect() as conn:
                    return _autocommitted(conn, statement, params)
            except DBAPIError as error:
                if not retry or attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only connection; its transaction is rolled back on exit."""
        with self._engine.connect() as conn:
            yield conn

    def _insert_ignoring(self, model: type[m.Base] | Table, *conflict: str) -> Insert:
        """INSERT that skips rows conflicting on the ``conflict`` columns."""
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return dialect_insert(model).on_conflict_do_nothing(index_elements=list(conflict))

    @staticmethod
    def _require_execution(conn: Connection, execution_id: str) -> None:
        """Raise ExecutionNotFound unless the execution exists."""
        found = conn.execute(select(EX.id).where(EX.id == execution_id)).first()
        if found is None:
            raise ExecutionNotFound(execution_id)


def _autocommitted(
    conn: Connection, statement: Executable, params: dict[str, Any]
) -> Row[Any] | None:
    """Run one statement on a psycopg2 connection switched to autocommit meanwhile.

    The driver's own flag, not SQLAlchemy's AUTOCOMMIT isolation level: that one
    costs a round trip to restore the level at every checkin.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.autocommit = True
    try:
        row = conn.execute(statement, params).first()
        # A no-op for the driver (the statement committed itself), but it ends
        # the connection's transaction as every write here does.
        conn.commit()
        return row
    finally:
        if not conn.invalidated:
            try:
                raw.autocommit = False
            except Exception:  # a broken connection: never hand it out again
                conn.invalidate()


def utc_now(now: datetime | None) -> datetime:
    """Return ``now``, or the current UTC time if None; refuse a naive datetime."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a timezone-aware one")
    return now


def check_name(name: str) -> None:
    """Refuse an execution name the column cannot hold (same rule on every backend)."""
    if not name or len(name) > 255:
        raise ValueError(f"execution name must be 1 to 255 characters, got {len(name)}")


def execution_record(row: Row[Any]) -> Execution:
    """Build the record from a row of all execution columns."""
    return Execution(**row._mapping)
