"""The test suite's PostgreSQL pool hands out clean databases only.

Databases are reused between tests (``DROP DATABASE`` costs a checkpoint), so
the pool must never pass one test's rows, schema changes or settings on.
"""

from __future__ import annotations

import psycopg2
import pytest

from tests.conftest import DatabasePool, PostgresServer

_INSERT = "INSERT INTO state_machines (name, created_at) VALUES ('{}', now())"


def _run(server: PostgresServer, name: str, statement: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(server.url(name))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


@pytest.fixture
def pool(postgres_server: PostgresServer, postgres_template: str) -> DatabasePool:
    pool = DatabasePool(postgres_server, postgres_template)
    yield pool  # type: ignore[misc]
    pool.close()


def test_a_database_comes_back_empty_with_its_sequences_restarted(
    pool: DatabasePool, postgres_server: PostgresServer
) -> None:
    name = pool.acquire()
    _run(postgres_server, name, _INSERT.format("left-over"))
    held = psycopg2.connect(postgres_server.url(name))  # a leftover connection mid-transaction
    held.cursor().execute("SELECT * FROM state_machines FOR UPDATE")
    pool.release(name)
    again = pool.acquire()
    assert again != name  # a new name: nothing cached by URL carries over
    assert _run(postgres_server, again, "SELECT count(*) FROM state_machines") == [(0,)]
    _run(postgres_server, again, _INSERT.format("next"))
    assert _run(postgres_server, again, "SELECT id FROM state_machines") == [(1,)]
    assert pool.reused == 1
    pool.release(again)
    held.close()


@pytest.mark.parametrize(
    "change",
    [
        "CREATE TABLE extra (id int)",
        "ALTER TABLE state_machines ADD COLUMN extra int",
        "DROP INDEX IF EXISTS ix_executions_batch_id",
        "UPDATE orchestrator_alembic_version SET version_num = '0001'",
        "ALTER DATABASE {name} SET work_mem = '8MB'",
    ],
)
def test_a_database_whose_schema_or_settings_changed_is_dropped_not_reused(
    pool: DatabasePool, postgres_server: PostgresServer, change: str
) -> None:
    name = pool.acquire()
    _run(postgres_server, name, change.format(name=name))
    pool.release(name)
    fresh = pool.acquire()
    assert pool.reused == 0
    pool.release(fresh)  # back to the pool, whose close drops it (it leaked before)


def test_a_table_grown_large_is_truncated_so_dead_rows_do_not_pile_up(
    pool: DatabasePool, postgres_server: PostgresServer
) -> None:
    name = pool.acquire()
    _run(
        postgres_server,
        name,
        "INSERT INTO state_machines (name, created_at) "
        "SELECT 'm' || i, now() FROM generate_series(1, 20000) AS i",
    )
    _run(postgres_server, name, _INSERT.format("small"))
    pool.release(name)
    again = pool.acquire()
    assert _run(postgres_server, again, "SELECT count(*) FROM state_machines") == [(0,)]
    size = "SELECT pg_relation_size('state_machines') / 8192"
    assert _run(postgres_server, again, size) == [(0,)]
    _run(postgres_server, again, _INSERT.format("next"))
    assert _run(postgres_server, again, "SELECT id FROM state_machines") == [(1,)]
    pool.release(again)
