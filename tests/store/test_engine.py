"""Engines: SQLite set up for several processes, PostgreSQL through psycopg2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from orchestrator.settings import Settings
from orchestrator.store import ExecutionFilter, Repository, make_engine, make_session_factory
from orchestrator.store import engine as engine_module

from .conftest import DEFINITION


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_writing_sessions_take_the_sqlite_write_lock_at_begin(tmp_path: Path) -> None:
    # A second writer must wait at BEGIN, not fail later when it upgrades a read lock
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_seconds=0.1)
    writers = make_session_factory(engine, write=True)
    try:
        with writers() as first, writers() as second:
            first.execute(text("SELECT 1"))
            with pytest.raises(Exception, match="database is locked"):
                second.execute(text("SELECT 1"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["postgresql://u@localhost/db", "postgres://u@localhost/db"])
def test_a_postgres_url_without_a_driver_uses_psycopg2(url: str) -> None:
    engine = make_engine(url)
    try:
        assert engine.dialect.driver == "psycopg2"
    finally:
        engine.dispose()


# -- PostgreSQL connections that the server dropped ------------------------------------


def _drop_connections(url: str) -> int:
    """Terminate every other session on the database of ``url`` (a server restart's effect)."""
    conn = psycopg2.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


def test_a_write_on_a_connection_the_server_dropped_runs_again_on_a_fresh_one(
    postgres_url: str,
) -> None:
    # Given a repository whose pooled connection the server has dropped
    repo = Repository.from_settings(Settings(database_url=postgres_url))
    try:
        _, version, _ = repo.create_or_get_version("orders", DEFINITION)
        assert _drop_connections(postgres_url) >= 1

        # When it creates and claims an execution, Then both succeed (no error reaches us)
        execution, created = repo.create_execution(version, name="after-drop")
        claimed = repo.claim(execution.id, "me", lease_seconds=60)

        assert created
        assert claimed is not None
        assert claimed.lease_owner == "me"
        assert repo.count_executions(ExecutionFilter(state_machine="orders")) == 1
    finally:
        repo.close()


def test_a_pooled_connection_idle_for_a_while_is_pinged_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a repository whose connections count as idle at once, dropped by the server
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)
    repo = Repository.from_settings(Settings(database_url=postgres_url))
    try:
        repo.create_or_get_version("orders", DEFINITION)
        assert _drop_connections(postgres_url) >= 1

        # When it reads, Then the ping found the dead connection and a fresh one answers
        assert repo.count_executions(ExecutionFilter(state_machine="orders")) == 0
    finally:
        repo.close()


EXECUTION_INSERTS = ("INSERT INTO executions", "EXECUTE orchestrator_insert_execution")


def test_a_create_whose_connection_dropped_after_it_committed_still_reports_it_created(
    postgres_url: str,
) -> None:
    # Given a repository whose first execution INSERT commits, then loses its connection
    repo = Repository.from_settings(Settings(database_url=postgres_url))
    dropped: list[str] = []

    def drop_after_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # (a single create is a prepared statement on PostgreSQL: EXECUTE of the INSERT)
        if not dropped and statement.startswith(EXECUTION_INSERTS):
            dropped.append(statement)
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

    try:
        _, version, _ = repo.create_or_get_version("orders", DEFINITION)
        event.listen(repo.engine, "after_cursor_execute", drop_after_insert)

        # When it creates a claimed execution
        execution, created = repo.create_execution(version, name="once", claim_as="me")

        # Then the retry finds the row the first try committed, and reports it created
        assert dropped
        assert created
        assert execution.name == "once"
        assert execution.lease_owner == "me"
        assert repo.count_executions(ExecutionFilter(state_machine="orders")) == 1
    finally:
        event.remove(repo.engine, "after_cursor_execute", drop_after_insert)
        repo.close()


def test_connections_go_back_to_the_pool_out_of_autocommit_mode(postgres_url: str) -> None:
    # Given a repository that records each connection's autocommit flag at checkin
    repo = Repository.from_settings(Settings(database_url=postgres_url))
    flags: list[bool] = []

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        flags.append(bool(dbapi_connection.autocommit))

    event.listen(repo.engine, "checkin", on_checkin)
    try:
        # When one-statement writes (autocommit) and transactions alternate
        _, version, _ = repo.create_or_get_version("orders", DEFINITION)
        execution, _ = repo.create_execution(version, name="one", claim_as="me")
        repo.release(execution.id, "me")
        assert repo.claim(execution.id, "me", lease_seconds=60) is not None

        # Then every connection went back to the pool in transaction mode
        assert len(flags) >= 4
        assert not any(flags)
    finally:
        event.remove(repo.engine, "checkin", on_checkin)
        repo.close()
