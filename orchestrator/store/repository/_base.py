"""The repository's foundation: the shared database (engine, dialect, transactions), helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row, Table, select
from sqlalchemy.exc import DBAPIError

from orchestrator.errors import ExecutionNotFound
from orchestrator.store import models as m
from orchestrator.store.dialect import Dialect, LeaseClock, Prepared, dialect_for
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


class Database:
    """The engine, its dialect and transactions: what every part of the repository shares.

    Args:
        engine: from :func:`orchestrator.store.engine.make_engine` (SQLite or PostgreSQL).
        payload_max_bytes: largest JSON payload accepted, in bytes.
        prepared_statements: whether the dialect's prepared statements are used
            (PostgreSQL; see ``Settings.database_prepared_statements``).

    Raises:
        ConfigurationError: the engine is neither PostgreSQL nor SQLite.
    """

    def __init__(
        self, engine: Engine, *, payload_max_bytes: int, prepared_statements: bool = True
    ) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect_for(engine)
        self.payload_max_bytes = payload_max_bytes
        self.prepared_statements = prepared_statements
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes (on SQLite it holds the write lock from BEGIN)."""
        with self._write_engine.begin() as conn:
            yield conn

    def transaction(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in a write transaction; once more if the server dropped the connection.

        A statement that fails because the connection died (a restarted server;
        SQLAlchemy then replaces every pooled connection) leaves nothing
        committed, so the whole transaction is run once more. A failure at
        COMMIT is not retried: it may have committed.
        """
        for attempt in (1, 2):
            committing = False
            try:
                with self.write() as conn:
                    result = work(conn)
                    committing = True
                return result
            except DBAPIError as error:
                if committing or attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def statement(
        self, statement: Executable, params: dict[str, Any], *, retry: bool
    ) -> Row[Any] | None:
        """Run one writing statement as a transaction of its own; return its first row.

        How is the dialect's choice (:meth:`Dialect.run_alone`). With ``retry``
        it may run once more if the server dropped the connection: only for
        statements whose second run is harmless even if the first committed.
        """
        return self.dialect.run_alone(self.engine, self.transaction, statement, params, retry=retry)

    def statement_rows(
        self, statement: Executable, params: dict[str, Any], *, retry: bool = False
    ) -> list[Row[Any]]:
        """Run one writing statement as a transaction of its own; return every row.

        One round trip on PostgreSQL (autocommit). With ``retry`` it may run once
        more if the server dropped the connection (see :meth:`statement`).
        """
        return self.dialect.run_alone_rows(
            self.engine, self.transaction, statement, params, retry=retry
        )

    def insert_one(self, columns: tuple[str, ...]) -> Prepared | None:
        """The prepared INSERT of one execution, or None (not prepared here: use SQLAlchemy's)."""
        return self.dialect.insert_one(columns) if self.prepared_statements else None

    def end_one(self, clock: LeaseClock) -> Prepared | None:
        """The prepared end of one EXPRESS execution, or None (use ``end_many``'s statement)."""
        return self.dialect.end_one(clock) if self.prepared_statements else None

    def prepared_rows(
        self, statement: Prepared, params: Sequence[Any], *, retry: bool = False
    ) -> list[Row[Any]]:
        """Run a prepared statement (PostgreSQL) as a transaction of its own; every row.

        ``retry`` as :meth:`statement`.
        """
        return self.dialect.prepared_rows(self.engine, statement, params, retry=retry)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection; its transaction (if any) is rolled back on exit.

        On PostgreSQL it reads in autocommit mode: no ROLLBACK round trip after
        the reads (see ``Dialect.reading``).
        """
        with self.dialect.reading(self.engine) as conn:
            yield conn


class Part:
    """Base of the repository's parts: each holds the shared :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db


def require_execution(conn: Connection, execution_id: str) -> None:
    """Raise ExecutionNotFound unless the execution exists."""
    found = conn.execute(select(EX.id).where(EX.id == execution_id)).first()
    if found is None:
        raise ExecutionNotFound(execution_id)


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
