"""What differs between PostgreSQL and SQLite, in one place.

The repository writes portable SQLAlchemy statements; where the two backends
need different SQL or a different way to run it, it asks its :class:`Dialect`
(picked once from the engine by :func:`dialect_for`) instead of testing the
backend's name. The differences:

- ``INSERT ... ON CONFLICT DO NOTHING`` comes from each backend's own insert
  construct (:meth:`Dialect.insert_ignoring`).
- A statement that is a transaction of its own runs in autocommit mode on
  PostgreSQL (one round trip instead of three); SQLite wraps it in a write
  transaction, which takes the write lock at BEGIN (:meth:`Dialect.run_alone`).
- A checkpoint without timers or correlations is one statement on PostgreSQL
  (the UPDATE feeds the history INSERT in a CTE); SQLite runs the two in a
  transaction (:meth:`Dialect.logged_checkpoint`).
- A bulk create sends, on PostgreSQL, each chunk as one JSON parameter read by
  ``jsonb_to_recordset``; SQLite uses SQLAlchemy's multi-row VALUES
  (:meth:`Dialect.insert_executions`).
- Lease statements called without a ``now`` read PostgreSQL's clock; SQLite runs
  in the caller's process, so the caller's clock is its clock
  (:meth:`Dialect.lease_clock`).

Column types (JSONB, naive UTC times on SQLite) are the models' concern
(:mod:`orchestrator.store.models`), and engine and pool set-up the engine's
(:mod:`orchestrator.store.engine`).
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Executable,
    Float,
    Insert,
    Integer,
    Interval,
    Row,
    Select,
    Table,
    TextualSelect,
    TypeDecorator,
    Update,
    bindparam,
    column,
    func,
    insert,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.errors import ConfigurationError
from orchestrator.store import models as m
from orchestrator.store.engine import json_dumps
from orchestrator.store.records import NewHistoryEvent, Version
from orchestrator.types import ExecutionStatus

_T = TypeVar("_T")

#: Runs ``work`` in a write transaction (retried once if the connection died).
Transaction = Callable[[Callable[[Connection], _T]], _T]

_EXECUTIONS: Table = m.Execution.__table__  # type: ignore[assignment]
_HISTORY: Table = m.HistoryEvent.__table__  # type: ignore[assignment]

#: History columns a checkpoint writes from its events (besides execution_id, seq).
HISTORY_FIELDS = (
    "event_type",
    "state_name",
    "state_type",
    "input",
    "output",
    "error",
    "cause",
    "attempt",
    "entered_at",
    "recorded_at",
    "assigned",
    "path",
    "started_at",
)


class _CommitWithoutFlush(ColumnElement[bool]):
    """See :func:`commit_without_flush` (rendered per backend)."""

    inherit_cache = True
    type = Boolean()
    #: No state: every instance has the same cache key, so statements that hold one
    #: stay in SQLAlchemy's compiled cache (without it each was compiled every time).
    _traverse_internals = []  # noqa: RUF012  # as SQLAlchemy declares it


@compiles(_CommitWithoutFlush, "postgresql")
def _commit_without_flush_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"


@compiles(_CommitWithoutFlush)
def _commit_without_flush_other(element: Any, compiler: Any, **kw: Any) -> str:
    return "1 = 1"


#: The same, for statements written as text (PostgreSQL only).
COMMIT_WITHOUT_FLUSH_SQL = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"


def commit_without_flush() -> ColumnElement[bool]:
    """A condition that is always true and lets the statement's commit skip the WAL flush.

    On PostgreSQL it sets ``synchronous_commit`` off for the statement's own
    (autocommitted) transaction only: the commit returns without waiting for the
    WAL to reach the disk (an ``fsync``, 0.25 ms on a quiet machine here and over
    1 ms on a busy one). The write is visible at once and durable within
    ``wal_writer_delay`` (200 ms by default); a PostgreSQL crash (not a restart,
    which flushes) in between loses it. Used only where losing the write is
    harmless (see docs/architecture.md): claims, which any later durable commit of
    the same session flushes too and which a lost claim only undoes, and the ends
    of EXPRESS executions, which run at least once. On SQLite it is ``1 = 1``.
    """
    return _CommitWithoutFlush()


def unindexed(column: Any) -> ColumnElement[Any]:
    """``column || ''``: the same value, which no index can serve.

    Statements that pick executions by id also test their status. Right after a
    bulk insert, before autovacuum's ANALYZE has run, PostgreSQL's statistics say
    the table holds almost no PENDING or RUNNING rows, and the planner reads
    ``ix_executions_status_lease`` instead of the primary key: a claim of ten
    executions then read every PENDING row (5,000 rows filtered out for 10, 2 ms
    instead of 0.4 ms, measured with EXPLAIN ANALYZE). Written this way, the status
    is only a filter and the primary key is the one index such a statement can use.
    """
    found: ColumnElement[Any] = column.op("||")(literal_column("''"))
    return found


@dataclass(frozen=True)
class LeaseClock:
    """Where a lease statement reads the time: the caller's parameters, or the server's clock.

    The caller's: ``p_now`` and ``p_expires``. The server's (PostgreSQL): ``now()``
    and ``now() + p_lease seconds``, so every host reads leases by one clock, and a
    statement delayed in flight writes a lease that starts when it commits.
    Hashable, so statement builders can cache one statement per clock.
    """

    server: bool = False

    def now(self) -> ColumnElement[Any]:
        """The time a lease is compared with."""
        return func.now() if self.server else bindparam("p_now")

    def expires(self) -> ColumnElement[Any]:
        """The new expiry of a lease taken or renewed now."""
        if not self.server:
            return bindparam("p_expires")
        second = literal_column("interval '1 second'", Interval)
        return func.now() + bindparam("p_lease", type_=Float) * second


CALLER_CLOCK = LeaseClock()


@dataclass(frozen=True)
class Prepared:
    """A statement PostgreSQL parses and plans once per connection (``PREPARE``/``EXECUTE``).

    For the statements of a single EXPRESS start and end, the two a start-to-end
    latency is made of: parsing and planning them anew each time cost PostgreSQL as
    much as running them (0.18 ms of the end's 0.44 ms, measured with psycopg2 on
    this machine). psycopg2 has no prepared statements of its own, so they are
    prepared in SQL, by name, on each pooled connection that runs them; a
    connection that forgot them (``DISCARD ALL``, a pooler that moved the session)
    prepares them again (see ``PostgresDialect.prepared_rows``).

    Attributes:
        name: the statement's name in the session (a constant: no value is ever
            formatted into the SQL).
        types: PostgreSQL types of the parameters ``$1`` .. ``$n``.
        body: the statement, with ``$1`` .. ``$n`` where the values go.
    """

    name: str
    types: tuple[str, ...]
    body: str

    @property
    def prepare_sql(self) -> str:
        """``PREPARE name (types) AS body``."""
        return f"PREPARE {self.name} ({', '.join(self.types)}) AS {self.body}"

    @property
    def execute_sql(self) -> str:
        """``EXECUTE name (%s, ...)``: the values bound by the driver."""
        return f"EXECUTE {self.name} ({', '.join(['%s'] * len(self.types))})"


class Dialect(ABC):
    """The backend-specific part of the repository (one instance per repository)."""

    #: SQLAlchemy's name of the backend.
    name: ClassVar[str]

    def lease_clock(self, now: datetime | None) -> LeaseClock:
        """The clock of a lease statement: the caller's (``now`` given, or no server clock)."""
        return CALLER_CLOCK

    @abstractmethod
    def insert_ignoring(self, table: type[m.Base] | Table, *conflict: str) -> Insert:
        """INSERT that skips rows conflicting on the ``conflict`` columns."""

    @abstractmethod
    def run_alone(
        self,
        engine: Engine,
        transaction: Transaction[Row[Any] | None],
        statement: Executable,
        params: dict[str, Any],
        *,
        retry: bool,
    ) -> Row[Any] | None:
        """Run one writing statement as a transaction of its own; return its first row.

        With ``retry`` it may run once more if the server dropped the connection:
        only for statements whose second run is harmless even if the first committed.
        """

    def run_alone_rows(
        self,
        engine: Engine,
        transaction: Transaction[list[Row[Any]]],
        statement: Executable,
        params: dict[str, Any],
        *,
        retry: bool = False,
    ) -> list[Row[Any]]:
        """:meth:`run_alone` returning every row (here: a transaction, retried before COMMIT)."""
        return transaction(lambda conn: list(conn.execute(statement, params).all()))

    @abstractmethod
    def logged_checkpoint(self, stored: Update, columns: tuple[str, ...]) -> Select[Any] | None:
        """The checkpoint UPDATE ``stored`` and its history INSERT as one statement.

        ``stored`` returns every execution column; the statement returns
        ``columns`` of them. None if the backend cannot do it in one statement; the caller then runs
        the two in a transaction. The statement takes ``p_history`` (see
        :meth:`history_param`) besides the UPDATE's parameters.
        """

    @abstractmethod
    def insert_executions(
        self,
        conn: Connection,
        version: Version,
        rows: list[dict[str, Any]],
        now: datetime,
        chunk_size: int,
    ) -> dict[str, str]:
        """Insert PENDING execution rows, skipping names that exist; return name -> id created."""

    @contextlib.contextmanager
    def reading(self, engine: Engine) -> Iterator[Connection]:
        """A connection for reads (see ``Database.read``)."""
        with engine.connect() as conn:
            yield conn

    def end_many(self, clock: LeaseClock) -> TextualSelect | None:
        """One statement that ends several EXPRESS executions, or None (one UPDATE each).

        It takes ``rows`` (a JSON array of ``{"id", "status", "output", "error",
        "cause"}``, the outputs already JSON), ``owner`` and ``now``, and returns every
        execution column of the rows it ended (those whose lease ``owner`` still holds).
        """
        return None

    def end_one(self, clock: LeaseClock) -> Prepared | None:
        """A prepared statement that ends one EXPRESS execution, or None (use :meth:`end_many`).

        Its parameters: status, output (JSON text; None for SQL NULL), error, cause,
        now (with the caller's clock also the time leases are compared with), id and
        owner; it returns the id and revision of the row it ended (none if ``owner``
        lost the lease).
        """
        return None

    def insert_one(self, columns: tuple[str, ...]) -> Prepared | None:
        """A prepared ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` of one execution
        with ``columns`` (in that order), or None (use the SQLAlchemy statement)."""
        return None

    def prepared_rows(
        self, engine: Engine, statement: Prepared, params: Sequence[Any], *, retry: bool
    ) -> list[Row[Any]]:
        """Run a :class:`Prepared` statement as a transaction of its own; every row."""
        raise NotImplementedError(f"{self.name} has no prepared statements")

    def ended_many(self, clock: LeaseClock) -> TextualSelect | None:
        """One statement ending several executions with their history, or None.

        It takes ``rows`` (a JSON array of ``{"id", "owner", "cursor", "state",
        "status", "nrows", "output", "error", "cause"}``), ``history`` (a JSON array
        of :meth:`history_param` rows, each with the ``id`` of its execution) and
        ``now``; it returns every execution column of the rows it ended (those
        whose lease their owner still holds) and appends their history.
        """
        return None

    @staticmethod
    def history_param(events: Sequence[NewHistoryEvent], now: datetime) -> list[dict[str, Any]]:
        """``p_history`` of :meth:`logged_checkpoint`: the events as JSON rows."""
        return [
            {
                "n": i,
                "event_type": e.event_type,
                "state_name": e.state_name,
                "state_type": e.state_type,
                "input": e.input,
                "output": e.output,
                "error": e.error,
                "cause": e.cause,
                "attempt": e.attempt,
                "entered_at": None if e.entered_at is None else e.entered_at.isoformat(),
                "recorded_at": (e.recorded_at or now).isoformat(),
                "assigned": e.assigned,
                "path": None if e.path is None else list(e.path),
                "started_at": None if e.started_at is None else e.started_at.isoformat(),
            }
            for i, e in enumerate(events, start=1)
        ]


class PostgresDialect(Dialect):
    """PostgreSQL through psycopg2."""

    name = "postgresql"

    def lease_clock(self, now: datetime | None) -> LeaseClock:
        """The server's clock unless the caller gave ``now`` (a test's clock, a tool's)."""
        return CALLER_CLOCK if now is not None else _SERVER_CLOCK

    def insert_ignoring(self, table: type[m.Base] | Table, *conflict: str) -> Insert:
        """``INSERT ... ON CONFLICT (conflict) DO NOTHING``."""
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))

    def run_alone(
        self,
        engine: Engine,
        transaction: Transaction[Row[Any] | None],
        statement: Executable,
        params: dict[str, Any],
        *,
        retry: bool,
    ) -> Row[Any] | None:
        """In autocommit mode: one round trip (a dropped connection hides whether it committed)."""
        rows = _alone(engine, lambda conn: _autocommitted_rows(conn, statement, params), retry)
        return rows[0] if rows else None

    def run_alone_rows(
        self,
        engine: Engine,
        transaction: Transaction[list[Row[Any]]],
        statement: Executable,
        params: dict[str, Any],
        *,
        retry: bool = False,
    ) -> list[Row[Any]]:
        """In autocommit mode, every row: one round trip (see :meth:`run_alone` for ``retry``)."""
        return _alone(engine, lambda conn: _autocommitted_rows(conn, statement, params), retry)

    def logged_checkpoint(self, stored: Update, columns: tuple[str, ...]) -> Select[Any] | None:
        """``WITH stored AS (UPDATE ...), logged AS (INSERT ... FROM stored) SELECT ...``."""
        return _logged_checkpoint(stored, columns)

    @contextlib.contextmanager
    def reading(self, engine: Engine) -> Iterator[Connection]:
        """In autocommit mode: a read is its statements, with no ROLLBACK round trip after.

        Under READ COMMITTED (the default, and ours) each statement takes its own
        snapshot inside a transaction too, so the reads see what they saw before.
        """
        with engine.connect() as conn, _autocommit(conn):
            yield conn
            conn.rollback()  # ends SQLAlchemy's transaction; the driver sends nothing

    def end_many(self, clock: LeaseClock) -> TextualSelect | None:
        """``UPDATE executions ... FROM jsonb_to_recordset(:rows)``: one round trip."""
        return _end_many(clock.server)

    def end_one(self, clock: LeaseClock) -> Prepared | None:
        """A single-row ``UPDATE executions ... WHERE id = $6``, prepared."""
        return _end_one(clock.server)

    def insert_one(self, columns: tuple[str, ...]) -> Prepared | None:
        """``INSERT INTO executions (columns) VALUES ($1, ...)``, prepared."""
        return _insert_one(columns)

    def prepared_rows(
        self, engine: Engine, statement: Prepared, params: Sequence[Any], *, retry: bool
    ) -> list[Row[Any]]:
        """In autocommit mode: one round trip (after the first ``PREPARE`` of a connection).

        ``retry`` as :meth:`run_alone`. A connection on which the statement is not
        prepared any more (SQLSTATE 26000) prepares it again, once.
        """
        values = tuple(params)
        return _alone(engine, lambda conn: _prepared_rows(conn, statement, values), retry)

    def ended_many(self, clock: LeaseClock) -> TextualSelect | None:
        """``WITH stored AS (UPDATE ... FROM rows), logged AS (INSERT history)``: one round trip."""
        return _ended_many(clock.server)

    def insert_executions(
        self,
        conn: Connection,
        version: Version,
        rows: list[dict[str, Any]],
        now: datetime,
        chunk_size: int,
    ) -> dict[str, str]:
        """Each chunk is one INSERT ... SELECT FROM jsonb_to_recordset.

        The rows travel as one JSON parameter holding only what differs between
        them; the constants are bound once. Against SQLAlchemy's multi-row VALUES
        (25 parameters a row, each rendered into the SQL by psycopg2) this halves
        the time a bulk start spends in the database call.
        """
        created: dict[str, str] = {}
        fields = (
            "id",
            "name",
            "input",
            "priority",
            "batch_id",
            "source_execution_id",
            "execution_type",
        )
        for start in range(0, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            data = [{f: v[f] for f in fields} | {"state": v["source_state_name"]} for v in chunk]
            result = conn.execute(
                _BULK_INSERT,
                {
                    "rows": json_dumps(data),
                    "machine": version.state_machine_id,
                    "version": version.id,
                    "status": ExecutionStatus.PENDING.value,
                    "now": now,
                },
            )
            created.update((r.name, r.id) for r in result)
        return created


class SqliteDialect(Dialect):
    """SQLite (one writer at a time; the write lock is taken at BEGIN)."""

    name = "sqlite"

    def insert_ignoring(self, table: type[m.Base] | Table, *conflict: str) -> Insert:
        """``INSERT ... ON CONFLICT (conflict) DO NOTHING``."""
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))

    def run_alone(
        self,
        engine: Engine,
        transaction: Transaction[Row[Any] | None],
        statement: Executable,
        params: dict[str, Any],
        *,
        retry: bool,
    ) -> Row[Any] | None:
        """In a write transaction (``transaction`` retries only before COMMIT, always safe)."""
        return transaction(lambda conn: conn.execute(statement, params).first())

    def logged_checkpoint(self, stored: Update, columns: tuple[str, ...]) -> Select[Any] | None:
        """None: SQLite has no data-modifying CTE."""
        return None

    def insert_executions(
        self,
        conn: Connection,
        version: Version,
        rows: list[dict[str, Any]],
        now: datetime,
        chunk_size: int,
    ) -> dict[str, str]:
        """executemany + RETURNING: one multi-row INSERT per chunk, compiled once (cached)."""
        statement = (
            self.insert_ignoring(_EXECUTIONS, "state_machine_id", "name")
            .returning(_EXECUTIONS.c.id, _EXECUTIONS.c.name)
            .execution_options(insertmanyvalues_page_size=chunk_size)
        )
        return {r.name: r.id for r in conn.execute(statement, rows)}


_SERVER_CLOCK = LeaseClock(server=True)

_DIALECTS: dict[str, Dialect] = {d.name: d for d in (PostgresDialect(), SqliteDialect())}


def dialect_for(engine: Engine) -> Dialect:
    """The dialect of ``engine``'s backend.

    Raises:
        ConfigurationError: neither PostgreSQL nor SQLite.
    """
    name = engine.dialect.name
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ConfigurationError(
            f"unsupported database {name!r}: use PostgreSQL or SQLite"
        ) from None


def _alone(engine: Engine, work: Callable[[Connection], _T], retry: bool) -> _T:
    """``work`` on a pooled connection; with ``retry``, once more if the server dropped it."""
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                return work(conn)
        except DBAPIError as error:
            if not retry or attempt == 2 or not error.connection_invalidated:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _autocommit(conn: Connection) -> Iterator[None]:
    """The psycopg2 connection under ``conn`` in autocommit mode meanwhile.

    The driver's own flag, not SQLAlchemy's AUTOCOMMIT isolation level: that one
    costs a round trip to restore the level at every checkin.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.autocommit = True
    try:
        yield
    finally:
        if not conn.invalidated:
            try:
                raw.autocommit = False
            except Exception:  # a broken connection: never hand it out again
                conn.invalidate()


def _autocommitted_rows(
    conn: Connection, statement: Executable, params: dict[str, Any]
) -> list[Row[Any]]:
    """Run one statement on a psycopg2 connection switched to autocommit meanwhile."""
    with _autocommit(conn):
        rows = list(conn.execute(statement, params).all())
        # A no-op for the driver (the statement committed itself), but it ends
        # the connection's transaction as every write here does.
        conn.commit()
        return rows


#: Compiles column types to PostgreSQL's names of them (a prepared statement's parameters).
_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]
#: Where a pooled connection remembers the statements prepared on it.
_PREPARED_KEY = "orchestrator.prepared"
#: SQLSTATEs: no prepared statement of that name; one exists already.
_NOT_PREPARED, _ALREADY_PREPARED = "26000", "42P05"


def _prepared_rows(
    conn: Connection, statement: Prepared, params: tuple[Any, ...]
) -> list[Row[Any]]:
    """Run ``statement`` on a psycopg2 connection switched to autocommit meanwhile."""
    known: set[str] = conn.connection.info.setdefault(_PREPARED_KEY, set())
    with _autocommit(conn):
        for attempt in (1, 2):
            if statement.name not in known:
                _prepare(conn, statement)
                known.add(statement.name)
            try:
                result = conn.exec_driver_sql(statement.execute_sql, params)
            except DBAPIError as error:
                # Forgotten by the session (DISCARD ALL; a pooler that moved it): again.
                if attempt == 2 or _sqlstate(error) != _NOT_PREPARED:
                    raise
                conn.rollback()
                known.discard(statement.name)
                continue
            rows = list(result.all()) if result.returns_rows else []
            conn.commit()  # as in _autocommitted_rows: ends SQLAlchemy's transaction
            return rows
    raise AssertionError("unreachable")  # pragma: no cover


def _prepare(conn: Connection, statement: Prepared) -> None:
    try:
        conn.exec_driver_sql(statement.prepare_sql)
    except DBAPIError as error:
        if _sqlstate(error) != _ALREADY_PREPARED:
            raise
        conn.rollback()


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _named(prefix: str, types: tuple[str, ...], body: str) -> Prepared:
    """Named by a digest of its text: a name is one statement, in every process and version.

    So a session that has the name prepared already (42P05: one that a pooler in
    session mode handed on, say) has this very statement, not another version's.
    """
    digest = hashlib.blake2s(f"{types}{body}".encode(), digest_size=6).hexdigest()
    return Prepared(name=f"{prefix}_{digest}", types=types, body=body)


@cache
def _end_one(server_clock: bool) -> Prepared:
    """The single-row form of :func:`_end_many`: no JSON set to join, a plan kept."""
    now = "now()" if server_clock else "$5"
    return _named(
        "orchestrator_end_one",
        ("text", "text", "text", "text", "timestamptz", "text", "text"),
        f"""
        UPDATE executions SET
            status = $1, output = CAST($2 AS jsonb), error = $3, cause = $4,
            ended_at = $5, updated_at = $5, lease_owner = NULL, lease_expires_at = NULL,
            wake_pending = false, revision = revision + 1, claim_count = 0
        WHERE id = $6 AND (status || '') = 'RUNNING'
            AND lease_owner = $7 AND lease_expires_at >= {now}
            AND {COMMIT_WITHOUT_FLUSH_SQL}
        RETURNING id, revision
        """,  # noqa: S608  # only constant SQL is formatted in; the values are bound
    )


@cache
def _insert_one(columns: tuple[str, ...]) -> Prepared:
    """One statement per set of columns (a few at most: a start with or without a claim)."""
    unknown = [name for name in columns if name not in _EXECUTIONS.c]
    if unknown:
        raise ValueError(f"not columns of executions: {unknown}")
    types = tuple(str(_EXECUTIONS.c[name].type.compile(dialect=_POSTGRESQL)) for name in columns)
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return _named(
        "orchestrator_insert_execution",
        types,
        f"""
        INSERT INTO executions ({", ".join(columns)}) VALUES ({values})
        ON CONFLICT (state_machine_id, name) DO NOTHING
        RETURNING id
        """,  # noqa: S608  # column names checked against the table; the values are bound
    )


@cache
def _logged_checkpoint(stored_update: Update, columns: tuple[str, ...]) -> Select[Any]:
    """Built once per UPDATE (the caller's are cached too, so the engine caches the SQL).

    No row is logged when the UPDATE matched none (the lease is lost).
    """
    stored = stored_update.cte("stored")
    rows = (
        func.jsonb_to_recordset(bindparam("p_history", type_=JSONB))
        .table_valued(
            column("n", Integer),
            *(column(name, _HISTORY.c[name].type) for name in HISTORY_FIELDS),
        )
        .render_derived("h", with_types=True)
    )
    source = select(
        stored.c.id,
        stored.c.last_seq - bindparam("p_rows", type_=Integer) + rows.c.n,
        *(rows.c[name] for name in HISTORY_FIELDS),
    ).select_from(stored.join(rows, true()))
    logged = insert(_HISTORY).from_select(["execution_id", "seq", *HISTORY_FIELDS], source)
    return select(*(stored.c[name] for name in columns)).add_cte(logged.cte("logged"))


@cache
def _end_many(server_clock: bool) -> TextualSelect:
    """Built once per clock; the lease test reads PostgreSQL's clock or ``:now``.

    It returns only the ids and revisions of the rows it ended: the caller holds the
    rest of each row (it claimed them), so nothing is read back and decoded again.
    """
    now = "now()" if server_clock else ":now"
    sql = f"""
    UPDATE executions AS e SET
        status = r.status, output = r.output, error = r.error, cause = r.cause,
        ended_at = :now, updated_at = :now, lease_owner = NULL, lease_expires_at = NULL,
        wake_pending = false, revision = e.revision + 1, claim_count = 0
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        id text, status text, output jsonb, error text, cause text)
    WHERE e.id = ANY(:ids) AND e.id = r.id AND (e.status || '') = 'RUNNING'
        AND e.lease_owner = :owner AND e.lease_expires_at >= {now}
        AND {COMMIT_WITHOUT_FLUSH_SQL}
    RETURNING e.id, e.revision
    """  # noqa: S608  # only constant SQL is formatted in; the values are bound
    return (
        text(sql)
        .bindparams(bindparam("now", type_=_EXECUTIONS.c.updated_at.type))
        .columns(_EXECUTIONS.c.id, _EXECUTIONS.c.revision)
    )


def _record_type(name: str) -> str:
    """The PostgreSQL type ``jsonb_to_recordset`` reads a history field as (from the model)."""
    kind = _HISTORY.c[name].type
    if isinstance(kind, JSON):
        return "jsonb"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, TypeDecorator | DateTime):
        return "timestamptz"
    return "text"


@cache
def _ended_many(server_clock: bool) -> TextualSelect:
    """Built once per clock: a group commit of final checkpoints as one statement."""
    now = "now()" if server_clock else ":now"
    columns = [c.name for c in _EXECUTIONS.c]
    returning = ", ".join(f"e.{name}" for name in columns)
    history = ", ".join(HISTORY_FIELDS)
    types = ", ".join(f"{name} {_record_type(name)}" for name in HISTORY_FIELDS)
    sql = f"""
    WITH r AS (
        SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            id text, owner text, cursor jsonb, state text, status text, nrows integer,
            output jsonb, error text, cause text)
    ), stored AS (
        UPDATE executions AS e SET
            cursor = r.cursor, current_state = r.state, status = r.status,
            revision = e.revision + 1, updated_at = :now, last_seq = e.last_seq + r.nrows,
            claim_count = 0, lease_owner = NULL, lease_expires_at = NULL, wake_pending = false,
            output = r.output, error = r.error, cause = r.cause, ended_at = :now
        FROM r
        WHERE e.id = ANY(:ids) AND e.id = r.id AND (e.status || '') = 'RUNNING'
            AND e.lease_owner = r.owner AND e.lease_expires_at >= {now}
        RETURNING {returning}
    ), logged AS (
        INSERT INTO history (execution_id, seq, {history})
        SELECT s.id, s.last_seq - r.nrows + h.n, {", ".join(f"h.{n}" for n in HISTORY_FIELDS)}
        FROM stored AS s
        JOIN r ON r.id = s.id
        JOIN jsonb_to_recordset(CAST(:history AS jsonb)) AS h(id text, n integer, {types})
            ON h.id = s.id
    )
    SELECT {", ".join(columns)} FROM stored
    """  # noqa: S608  # only constant SQL is formatted in; the values are bound
    return (
        text(sql)
        .bindparams(bindparam("now", type_=_EXECUTIONS.c.updated_at.type))
        .columns(*_EXECUTIONS.c)
    )


#: PostgreSQL bulk create (see ``PostgresDialect.insert_executions``).
_BULK_INSERT = text(
    """
    INSERT INTO executions (
        id, state_machine_id, version_id, name, status, input, priority, batch_id,
        source_execution_id, source_state_name, started_at, updated_at,
        revision, last_seq, wake_pending, redrive_count, execution_type)
    SELECT r.id, :machine, :version, r.name, :status, r.input, r.priority, r.batch_id,
        r.source_execution_id, r.state, :now, :now, 0, 0, false, 0, r.execution_type
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        id text, name text, input jsonb, priority integer, batch_id text,
        source_execution_id text, state text, execution_type text)
    ON CONFLICT (state_machine_id, name) DO NOTHING
    RETURNING id, name
    """
)

__all__ = [
    "COMMIT_WITHOUT_FLUSH_SQL",
    "Dialect",
    "PostgresDialect",
    "Prepared",
    "SqliteDialect",
    "commit_without_flush",
    "dialect_for",
    "unindexed",
]
