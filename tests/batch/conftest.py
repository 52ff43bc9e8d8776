"""Fixtures of the batch tests.

- ``local``: a batch world on a fresh database, once on PostgreSQL and once on
  SQLite; executions run in the test process (``mode="local"``) on a handler
  registry of the test's own.
- ``cluster``: a fresh PostgreSQL database, a private Redis database and real
  ``celery -A orchestrator worker`` subprocesses running the real runtime with
  ``tests.batch.handlers``; batches are published to them (``mode="distributed"``).

A leader that is paused waits until it is resumed or cancelled, so the tests run
leaders in threads; at teardown every batch still led is cancelled, which ends
its leader, and the threads are joined.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from orchestrator.batch import BatchOptions, BatchResult, execute_bulk
from orchestrator.batch import control as batch_control
from orchestrator.distributed.publish import publish_runs
from orchestrator.handlers import HandlerRegistry
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Execution, ExecutionFilter, Repository
from orchestrator.types import BatchStatus
from tests.batch.work import MACHINE, RESOURCE, work
from tests.distributed.conftest import (  # noqa: F401  # fixtures used by ``cluster``
    RedisDB,
    Worker,
    make_app,
    redis_db,
    start_worker,
)

#: The options every test's batches start from: quick looks, so tests are quick.
FAST = {"poll_interval": 0.05}


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class World:
    """One test's store, machine and leader threads (shared by both fixtures)."""

    settings: Settings
    repo: Repository
    machine: StateMachine
    mode: str
    leaders: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="leader")
    )
    publisher: Callable[[Any, Any], int] | None = None

    def options(self, **changes: Any) -> BatchOptions:
        """Batch options for this world's mode, with the tests' quick polling."""
        values: dict[str, Any] = {"name_prefix": "bulk", "mode": self.mode, **FAST, **changes}
        return BatchOptions(**values)

    def bulk(self, inputs: Any, **options: Any) -> BatchResult:
        """``execute_bulk`` in this thread."""
        fmt = options.pop("input_format", "auto")
        return execute_bulk(
            self.machine,
            inputs,
            self.options(**options),
            input_format=fmt,
            publisher=self.publisher,
        )

    def bulk_in_background(self, inputs: Any, **options: Any) -> Future[BatchResult]:
        """``execute_bulk`` in a leader thread."""
        return self.leaders.submit(self.bulk, inputs, **options)

    def only_batch(self) -> str:
        """The id of the one batch this test started (waits for it to exist)."""
        found: list[str] = []

        def exists() -> bool:
            with self.repo.engine.connect() as conn:
                found[:] = [r[0] for r in conn.execute(text("SELECT id FROM batches"))]
            return len(found) == 1

        wait_for(exists, timeout=10, what="the batch row")
        return found[0]

    def executions(self, batch_id: str) -> list[Execution]:
        """Every execution of the batch."""
        return list(self.repo.iter_executions(ExecutionFilter(batch_id=batch_id)))

    def status(self, batch_id: str) -> BatchStatus:
        """The batch's status now."""
        return self.repo.get_batch(batch_id).status

    def close(self) -> None:
        """Cancel what is still led (it ends the leaders), join the leader threads."""
        with self.repo.engine.connect() as conn:
            led = text("SELECT id FROM batches WHERE status IN ('RUNNING', 'PAUSED')")
            ids = [row[0] for row in conn.execute(led)]
        for batch_id in ids:
            batch_control.cancel(self.repo, batch_id, reason="test teardown")
        self.leaders.shutdown(wait=True)


@pytest.fixture
def local(database_url: str) -> Iterator[World]:
    """Local mode on a fresh database (PostgreSQL and SQLite), ``batch.work`` registered."""
    settings = Settings(database_url=database_url, lease_seconds=5.0)
    repo = Repository.from_settings(settings)
    handlers = HandlerRegistry()
    handlers.register(RESOURCE, work)
    created = StateMachine.create("bulk", MACHINE, repository=repo, settings=settings)
    machine = StateMachine(
        created.version_record,
        repository=repo,
        settings=settings,
        runner=Runner(repo, settings=settings, handlers=handlers),
    )
    world = World(settings=settings, repo=repo, machine=machine, mode="local")
    yield world
    world.close()
    repo.close()


@dataclass
class Cluster(World):
    """A world whose executions run on worker subprocesses."""

    app: Celery | None = None
    redis: RedisDB | None = None
    launch: Callable[..., Worker] | None = None
    workers: list[Worker] = field(default_factory=list)

    def publish(self, execution_ids: Any, priority: Any) -> int:
        """The batches' publisher: the test's Celery app on the test's Redis DB."""
        return int(
            publish_runs(
                self.app, execution_ids, priority, per_message=self.settings.executions_per_message
            )
        )

    def start_workers(self, count: int = 1, *, concurrency: int = 2) -> None:
        """Start ``count`` prefork workers running the real runtime on the test's database."""
        assert self.launch is not None
        assert self.redis is not None
        env = {
            "ORCHESTRATOR_DATABASE_URL": self.settings.database_url,
            "ORCHESTRATOR_HANDLER_MODULES": "tests.batch.handlers",
        }
        started = [
            self.launch(
                self.redis.url, pool="prefork", concurrency=concurrency, env=env, wait=False
            )
            for _ in range(count)
        ]
        for worker in started:
            worker.wait_ready()
        self.workers.extend(started)


@pytest.fixture
def cluster(
    postgres_url: str,
    redis_db: RedisDB,  # noqa: F811
    make_app: Callable[[str], Celery],  # noqa: F811
    start_worker: Callable[..., Worker],  # noqa: F811
) -> Iterator[Cluster]:
    """A fresh PostgreSQL database and Redis DB, the ``bulk`` machine, no workers yet."""
    settings = Settings(database_url=postgres_url, broker_url=redis_db.url)
    repo = Repository.from_settings(settings)
    machine = StateMachine.create("bulk", MACHINE, repository=repo, settings=settings)
    world = Cluster(
        settings=settings,
        repo=repo,
        machine=machine,
        mode="distributed",
        app=make_app(redis_db.url),
        redis=redis_db,
        launch=start_worker,
    )
    world.publisher = world.publish
    yield world
    world.close()
    repo.close()
