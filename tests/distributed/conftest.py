"""Fixtures for the Celery tests: a private Redis DB per test and real worker subprocesses.

``redis_db`` claims a database 1-15 nobody else holds (a ``SET NX`` lock key in
that database, so parallel runs and the benchmark do not collide), flushes it
before and after the test. ``start_worker`` runs ``python -m celery -A
orchestrator worker`` as a subprocess in its own session, waits for its
``ready.`` line, and stops it by PID at teardown (SIGTERM, then SIGKILL to its
process group after a timeout), whatever the test's outcome.

Without Redis the tests are skipped locally and fail in CI (``CI`` set).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from orchestrator.celery import create_app
from orchestrator.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = "redis://127.0.0.1:6379"
WORKER_TASKS = "tests.distributed.worker_tasks"
LOCK_KEY = "orchestrator:test-lock"
LOCK_SECONDS = 600
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# -- Redis --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RedisDB:
    """One claimed Redis database: its URL and a client on it."""

    number: int
    url: str
    client: redis.Redis

    def strings(self, key: str) -> list[str]:
        """The list at ``key``, decoded."""
        return [item.decode() for item in self.client.lrange(key, 0, -1)]

    def relock(self, token: str) -> None:
        """Re-take the lock after a test flushed the database."""
        self.client.set(LOCK_KEY, token, ex=LOCK_SECONDS)


def _claim(token: str) -> RedisDB | None:
    for number in range(1, 16):
        url = f"{REDIS_SERVER}/{number}"
        client = redis.Redis.from_url(url)
        if client.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS):
            client.flushdb()
            client.set(LOCK_KEY, token, ex=LOCK_SECONDS)
            return RedisDB(number=number, url=url, client=client)
        client.close()
    return None


@pytest.fixture
def redis_db() -> Iterator[RedisDB]:
    """A Redis database (1-15) for this test only, empty at start, flushed at the end."""
    probe = redis.Redis.from_url(f"{REDIS_SERVER}/0")
    try:
        probe.ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable: {exc}")
    finally:
        probe.close()
    db = _claim(uuid.uuid4().hex)
    if db is None:
        pytest.fail("no free Redis database among 1-15 (all hold a test lock)")
    yield db
    db.client.flushdb()
    db.client.close()


# -- publisher app --------------------------------------------------------------


@pytest.fixture
def make_app() -> Iterator[Callable[[str], Celery]]:
    """Build orchestrator apps on a broker URL (not made current); closed at teardown."""
    apps: list[Celery] = []

    def make(broker_url: str) -> Celery:
        app = create_app(Settings(broker_url=broker_url), set_as_current=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(redis_db: RedisDB, make_app: Callable[[str], Celery]) -> Celery:
    """An orchestrator app publishing to the test's Redis database."""
    return make_app(redis_db.url)


# -- worker subprocesses -------------------------------------------------------


class Worker:
    """A ``celery -A orchestrator worker`` subprocess and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, name: str) -> None:
        self.process = process
        self.log_path = log_path
        self.name = name

    def log(self) -> str:
        """Everything the worker wrote so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait for the worker's ``ready.`` line; fail with its log if it exits first."""
        deadline = time.monotonic() + timeout
        while f"{self.name} ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker {self.name} did not start:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (warm shutdown); SIGKILL its process group if it outlives ``timeout``."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        # Pool children left behind by a killed parent share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def worker_command(
    name: str,
    *,
    queues: Sequence[str],
    pool: str,
    concurrency: int,
    events: bool,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line of a test worker (no mingle/gossip/heartbeat: faster start)."""
    command = [
        sys.executable, "-m", "celery", "-A", "orchestrator", "worker",
        "-Q", ",".join(queues), "-n", name, "-P", pool, "-c", str(concurrency),
        "-l", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]  # fmt: skip
    if events:
        command.append("-E")
    return [*command, *extra_args]


def worker_environment(broker_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The worker's environment: ours minus ORCHESTRATOR_*, plus its broker and test tasks."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    env.update(
        ORCHESTRATOR_BROKER_URL=broker_url,
        ORCHESTRATOR_HANDLER_MODULES=WORKER_TASKS,
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start worker subprocesses; every one is stopped at teardown."""
    workers: list[Worker] = []

    def start(
        broker_url: str,
        *,
        queues: Sequence[str] = ("critical", "default", "low"),
        pool: str = "solo",
        concurrency: int = 1,
        events: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> Worker:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        log_path = tmp_path / f"worker-{len(workers)}.log"
        command = worker_command(
            name,
            queues=queues,
            pool=pool,
            concurrency=concurrency,
            events=events,
            extra_args=extra_args,
        )
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603  # our own interpreter and arguments
                command,
                cwd=REPO_ROOT,
                env=worker_environment(broker_url, env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log_path, name.replace("%h", os.uname().nodename))
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def prerun_attempts(db: RedisDB, task_id: str) -> list[int]:
    """The ``retries`` value of every attempt the worker made at ``task_id``."""
    return [
        int(entry.split("|")[2]) for entry in db.strings("prerun") if entry.split("|")[1] == task_id
    ]


def queue_depths(db: RedisDB, queues: Sequence[str] = ("critical", "default", "low")) -> int:
    """Messages waiting in ``queues`` plus messages delivered but not acknowledged."""
    waiting = sum(int(db.client.llen(queue)) for queue in queues)
    return waiting + int(db.client.hlen("unacked"))
