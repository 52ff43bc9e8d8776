"""Engines and session factories from a database URL.

SQLite (the embedded default) is set up so that several processes can share
one file: WAL journal, a busy timeout, foreign keys on, and transactions that
write start with ``BEGIN IMMEDIATE``. A deferred transaction that reads first
and writes later can fail at once with ``database is locked`` when another
process wrote in between (the busy timeout does not apply to that upgrade);
taking the write lock up front makes writers queue instead.

PostgreSQL goes through psycopg2 (also for a bare ``postgresql://`` URL, which
SQLAlchemy 2.1 would give to psycopg 3). A pooled connection is pinged before
use only when it sat idle for ``IDLE_PING_SECONDS`` (``pool_pre_ping`` pinged on
every checkout: a round trip per transaction). A connection that a restarted
server dropped while busy fails its next statement instead; SQLAlchemy then
replaces every connection of the pool, and the repository's hot writes retry such
a failure once on a fresh connection (``RepositoryBase._transaction``). A client
that vanishes in the middle of a transaction (a network cut between an UPDATE and
its COMMIT) is the server's to notice: each connection asks it to end a
transaction left idle for ``idle_transaction_seconds`` (the lease, from
``Repository.from_settings``), so the rows it locked do not stay locked for hours.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

#: Execution option that marks an engine (and its sessions) as one that writes.
WRITE_OPTION = "orchestrator_write"

#: Default SQLite busy timeout, in seconds: how long a writer waits for the lock.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

#: A pooled PostgreSQL connection idle for longer than this, in seconds, is
#: pinged before it is handed out (the server may have restarted meanwhile).
#: Connections reused back to back, as a busy worker's are, skip the round trip;
#: any pause longer than this pays it, so only a restart in the last second
#: before a reuse reaches the caller as an error.
IDLE_PING_SECONDS = 1.0

#: How JSON columns are serialised: compact, UTF-8, and strict (no NaN/Infinity,
#: which neither PostgreSQL nor other JSON readers accept).
json_dumps = partial(json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def make_engine(
    url: str,
    *,
    echo: bool = False,
    busy_timeout_seconds: float = SQLITE_BUSY_TIMEOUT_SECONDS,
    idle_transaction_seconds: float | None = None,
) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///orchestrator.db`` or
            ``postgresql://postgres@127.0.0.1/orchestrator``.
        echo: log every statement (debugging). Default off.
        busy_timeout_seconds: SQLite only: how long a writer waits for another
            process's write lock, in seconds. Default 30.
        idle_transaction_seconds: PostgreSQL only: the server ends (rolls back) a
            transaction of this engine's that sat idle this long, in seconds
            (``idle_in_transaction_session_timeout``; a shorter one already set on
            the server is kept). Default None: the server's setting.

    Returns:
        The engine. Dispose of it (``engine.dispose()``) when done.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo, busy_timeout_seconds=busy_timeout_seconds)
    engine = create_engine(_with_driver(parsed), echo=echo, json_serializer=json_dumps)
    _ping_when_idle(engine, IDLE_PING_SECONDS)
    if idle_transaction_seconds is not None and engine.dialect.name == "postgresql":
        _end_orphaned_transactions(engine, idle_transaction_seconds)
    return engine


#: Lowers ``idle_in_transaction_session_timeout`` for this session to ``%(ms)s``
#: unless the server (or role, or URL) already has it at that or shorter.
_IDLE_TRANSACTION_TIMEOUT_SQL = (
    "SELECT set_config('idle_in_transaction_session_timeout', %(ms)s::text, false) "
    "FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout' "
    "AND (setting::bigint = 0 OR setting::bigint > %(ms)s)"
)


def _end_orphaned_transactions(engine: Engine, seconds: float) -> None:
    """Have the server end a transaction of ``engine``'s left idle for ``seconds``.

    A client cut off from the server between two statements of a transaction (the
    group claim's UPDATE and its COMMIT, say) gives its connection up after its own
    timeouts, but the server learns of it only when TCP keepalive gives up, hours
    by default. Meanwhile the backend holds the transaction's row locks: the
    sweeper's ``SKIP LOCKED`` hides those executions and every other claim of them
    waits (issue 17, ``tests/store/test_vanished_client.py``). The orchestrator's
    own transactions are never idle for more than moments, so one idle for a whole
    lease has lost its client (or its client is stopped, and its leases are gone).
    """
    ms = max(1, round(seconds * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(_IDLE_TRANSACTION_TIMEOUT_SQL, {"ms": ms})
        finally:
            cursor.close()
            dbapi_connection.autocommit = autocommit


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout if it was idle for ``idle_seconds``.

    A failed ping raises ``DisconnectionError``, on which the pool discards the
    connection and checks out (or opens) another.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(str(error)) from error


def _with_driver(url: URL) -> URL:
    # SQLAlchemy 2.1 maps a bare "postgresql://" to psycopg 3; the project ships
    # psycopg2, so a URL without a driver gets it.
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg2")
    return url


def make_session_factory(engine: Engine, *, write: bool = False) -> sessionmaker[Session]:
    """Create a session factory bound to ``engine``.

    Args:
        engine: from :func:`make_engine`.
        write: sessions that will write (SQLite then takes the write lock at
            ``BEGIN``). Default False.

    Returns:
        A factory whose sessions keep objects usable after commit.
    """
    bind = engine.execution_options(**{WRITE_OPTION: True}) if write else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def _sqlite_engine(url: URL, *, echo: bool, busy_timeout_seconds: float) -> Engine:
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=json_dumps,
        # sqlite3's ``timeout`` is SQLite's busy timeout.
        connect_args={"timeout": busy_timeout_seconds},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is
        # ours (see the "begin" hook) and PRAGMAs run outside a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


__all__ = ["IDLE_PING_SECONDS", "WRITE_OPTION", "json_dumps", "make_engine", "make_session_factory"]
