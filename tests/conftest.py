"""Shared fixtures: a clean environment, and fresh databases on real services.

PostgreSQL: a template database is migrated once per session; every test gets
a database of its own, a ``CREATE DATABASE ... TEMPLATE`` copy. When the test
ends the copy is emptied (its other connections ended, every table emptied)
and reused by a later test, if its schema still matches the template's;
otherwise it is dropped in the background. ``DROP DATABASE`` waits for a
checkpoint (one to several seconds here), so reusing saves most of the suite's
database time. Names are random, so parallel runs do not collide.
``--postgres-url`` points at the server (any database on it; it is used for
``CREATE DATABASE``). SQLite: the migrated template file is
copied per test into ``tmp_path``.

Without a PostgreSQL server the PostgreSQL tests are skipped locally and fail
in CI (``CI`` set), so CI never passes by skipping.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy.engine import make_url

from orchestrator.settings import Settings, get_settings
from orchestrator.store import Repository
from orchestrator.store.migrations import upgrade

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help=f"PostgreSQL server for the store tests (default {DEFAULT_POSTGRES_URL})",
    )
    parser.addoption(
        "--run-restarts",
        action="store_true",
        help="run the tests marked restarts_service (they restart a shared server); CI runs them",
    )


#: Worker processes of the quick tier (pytest-xdist), one per core of the 2-core test machine.
QUICK_TIER_WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run the quick tier (``-m "not slow"`` over the whole suite) on two xdist workers.

    Only that exact use: a run given paths, ``-k``, ``--lf`` or ``--sw``, a run with
    ``-n`` (``-n 0`` to stay in one process), a run that includes the slow tests (what
    CI runs), ``--pdb`` or ``--collect-only`` keep pytest's one process. Each worker
    has its own template database and pool; Redis databases are claimed under a lock,
    so workers share safely.
    """
    if (
        getattr(config.option, "numprocesses", 0) is not None  # xdist missing, or -n given
        or hasattr(config, "workerinput")
        or config.args_source is not pytest.Config.ArgsSource.TESTPATHS
        or "not slow" not in (config.option.markexpr or "")
        or config.option.keyword
        or config.getoption("lf", False)
        or config.getoption("stepwise", False)
        or config.option.usepdb
        or config.option.collectonly
        or (os.cpu_count() or 1) < QUICK_TIER_WORKERS
    ):
        return
    config.option.numprocesses = QUICK_TIER_WORKERS
    # Each worker imports every module again: let them read the bytecode (and
    # pytest's rewritten test modules) that this process writes, rather than compile
    # all again, when the environment says not to write any (PYTHONDONTWRITEBYTECODE).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    if config.option.dist == "no":
        config.option.dist = "worksteal"  # an idle worker takes from the busy one's queue


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests that restart a shared service unless CI is set or --run-restarts given.

    Restarting PostgreSQL cuts off every other suite on the machine, so a developer
    opts in; CI (its own machine) always runs them.
    """
    if os.environ.get("CI") or config.getoption("--run-restarts"):
        return
    skip = pytest.mark.skip(reason="restarts a shared service: pass --run-restarts (CI runs it)")
    for item in items:
        if "restarts_service" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's ORCHESTRATOR_* settings or a cached Settings."""
    for key in list(os.environ):
        if key.upper().startswith("ORCHESTRATOR_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- PostgreSQL ---------------------------------------------------------------


class PostgresServer:
    """Creates and drops databases on one server, through libpq (psycopg2)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._base = parsed.set(drivername="postgresql")
        # DROP DATABASE waits for a checkpoint (about 1 s here); concurrent drops
        # share checkpoints, so a few run in the background while tests go on.
        self._droppers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dropdb")
        self._pending: list[Future[None]] = []

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return self._base.set(database=database).render_as_string(hide_password=False)

    def check(self) -> None:
        """Raise ``psycopg2.OperationalError`` if the server is unreachable."""
        self._execute(sql.SQL("SELECT 1"))

    def create(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given); return its URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        self._execute(statement)
        return self.url(name)

    def rename(self, name: str, new_name: str) -> None:
        """Rename database ``name`` (nobody may be connected to it)."""
        self._execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(new_name)
            )
        )

    def drop_later(self, name: str) -> None:
        """Drop database ``name`` in the background."""
        self._pending.append(self._droppers.submit(self.drop_now, name))

    def drop_now(self, name: str) -> None:
        """Drop database ``name``, disconnecting whoever is still connected."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def close(self) -> None:
        """Finish the background drops (raising the first error of any)."""
        self._droppers.shutdown(wait=True)
        for future in self._pending:
            future.result()

    def _execute(self, statement: sql.Composable) -> None:
        conn = psycopg2.connect(self.url(self._base.database or "postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The PostgreSQL server of ``--postgres-url``."""
    server = PostgresServer(request.config.getoption("--postgres-url"))
    try:
        server.check()
    except psycopg2.OperationalError as exc:
        server.close()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield server
    server.close()


class DatabasePool:
    """Migrated databases handed to one test at a time, emptied between tests.

    A database comes back to the pool only if, once emptied, it is the same as
    the template: same schema fingerprint (tables, columns, indexes, triggers,
    functions, the migration revision) and no per-database settings. Anything
    else (a test that migrated down, altered a table or set a parameter) is
    dropped, so no test sees another's leftovers.
    """

    _FINGERPRINT = sql.SQL(
        """
        SELECT md5(string_agg(item, '|' ORDER BY item)) FROM (
          SELECT 'column:' || c.relname || '.' || a.attname || ':'
                 || format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull
                 || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS item
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND a.attnum > 0 AND NOT a.attisdropped
          UNION ALL
          SELECT 'index:' || indexdef FROM pg_indexes WHERE schemaname = 'public'
          UNION ALL
          SELECT 'trigger:' || tgname FROM pg_trigger WHERE NOT tgisinternal
          UNION ALL
          SELECT 'function:' || proname FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
          UNION ALL
          SELECT 'revision:' || version_num FROM orchestrator_alembic_version
          UNION ALL
          SELECT 'setting:' || array_to_string(s.setconfig, ',') FROM pg_db_role_setting s
            JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()
        ) AS schema_items
        """
    )

    #: Tables of more heap pages than this are truncated rather than deleted from.
    _TRUNCATE_PAGES = 64

    def __init__(self, server: PostgresServer, template: str) -> None:
        self._server = server
        self._template = template
        self._free: list[str] = []
        self.reused = 0
        self._expected = self._fingerprint(template)

    def acquire(self) -> str:
        """A clean migrated database's name (reused or newly copied)."""
        if self._free:
            self.reused += 1
            return self._free.pop()
        name = _unique("orch_test")
        self._server.create(name, template=self._template)
        return name

    def release(self, name: str) -> None:
        """Empty ``name`` for the next test, or drop it if it no longer matches.

        A reused database gets a new name, so the next test's URL is new too:
        whatever a process cached by URL (a shared client, its definitions by
        id) cannot leak into the next test.
        """
        try:
            if self._empty(name):
                fresh = _unique("orch_test")
                self._server.rename(name, fresh)
                self._free.append(fresh)
                return
        except psycopg2.Error:
            pass
        self._server.drop_later(name)

    def close(self) -> None:
        """Drop the pooled databases."""
        while self._free:
            self._server.drop_later(self._free.pop())

    def _connect(self, name: str) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(self._server.url(name))
        conn.autocommit = True
        return conn

    def _fingerprint(self, name: str) -> str:
        conn = self._connect(name)
        try:
            with conn.cursor() as cur:
                cur.execute(self._FINGERPRINT)
                row = cur.fetchone()
                return str(row[0]) if row else ""
        finally:
            conn.close()

    def _empty(self, name: str) -> bool:
        conn = self._connect(name)
        try:
            with conn.cursor() as cur:
                # Refuse new connections while emptying, and end the test's leftovers
                # (a worker subprocess's pool, an abandoned transaction holding locks).
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                cur.execute(self._FINGERPRINT)
                row = cur.fetchone()
                if row is None or row[0] != self._expected:
                    return False
                # Emptied in one transaction that locks every table as TRUNCATE would,
                # so a leftover writer cannot slip a row in. Small tables are emptied
                # with DELETE: TRUNCATE gives every table new files (about 40 ms for
                # the schema, DELETE of a test's few rows about 2 ms). A table past
                # _TRUNCATE_PAGES is truncated, so dead rows never pile up in a reused
                # database. Triggers and foreign keys are off (replica role) while
                # emptying; every table is emptied, so no reference dangles.
                cur.execute(
                    "SELECT tablename, pg_relation_size(format('%I', tablename)) / 8192 "
                    "FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'orchestrator_alembic_version'"
                )
                tables = cur.fetchall()
                if tables:
                    every = sql.SQL(", ").join(sql.Identifier(t) for t, _ in tables)
                    big = [t for t, pages in tables if pages > self._TRUNCATE_PAGES]
                    cur.execute("BEGIN")
                    cur.execute("SET LOCAL session_replication_role = replica")
                    cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(every))
                    for table, pages in tables:
                        if pages <= self._TRUNCATE_PAGES:
                            cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
                    if big:
                        cur.execute(
                            sql.SQL("TRUNCATE {}").format(
                                sql.SQL(", ").join(sql.Identifier(t) for t in big)
                            )
                        )
                    # As RESTART IDENTITY, for the sequences that were used only.
                    cur.execute(
                        "SELECT setval(format('%I.%I', schemaname, sequencename), "
                        "start_value, false) FROM pg_sequences "
                        "WHERE schemaname = 'public' AND last_value IS NOT NULL"
                    )
                    cur.execute("COMMIT")
                # A backend that raced in before the TRUNCATE's lock is ended too.
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                row = cur.fetchone()
                return row is not None and row[0] == 0
        finally:
            conn.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """Name of a database migrated to head, to copy per test."""
    name = _unique("orch_tpl")
    upgrade(postgres_server.create(name))
    yield name
    postgres_server.drop_now(name)


@pytest.fixture(scope="session")
def postgres_pool(
    postgres_server: PostgresServer, postgres_template: str
) -> Iterator[DatabasePool]:
    """Migrated databases reused from test to test (emptied in between)."""
    pool = DatabasePool(postgres_server, postgres_template)
    yield pool
    pool.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, postgres_pool: DatabasePool) -> Iterator[str]:
    """URL of a clean, migrated PostgreSQL database for this test only."""
    name = postgres_pool.acquire()
    yield postgres_server.url(name)
    postgres_pool.release(name)


@pytest.fixture
def empty_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh PostgreSQL database with no tables."""
    name = _unique("orch_empty")
    yield postgres_server.create(name, template="template0")
    postgres_server.drop_later(name)


# -- SQLite -------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, to copy per test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """URL of a fresh, migrated SQLite file for this test only."""
    path = tmp_path / "orchestrator.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file with no tables."""
    return f"sqlite:///{tmp_path / 'empty.db'}"


# -- either backend -----------------------------------------------------------


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database, once on PostgreSQL and once on SQLite."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(params=["postgres", "sqlite"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A fresh empty database, once on PostgreSQL and once on SQLite."""
    return str(request.getfixturevalue(f"empty_{request.param}_url"))


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for the test's database, built explicitly (not from the environment)."""
    return Settings(database_url=database_url)


@pytest.fixture
def repo(settings: Settings) -> Iterator[Repository]:
    """A repository on the test's fresh database."""
    repository = Repository.from_settings(settings)
    yield repository
    repository.close()
