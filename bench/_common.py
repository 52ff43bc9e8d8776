"""What the bench scripts share (one copy each): databases, Redis, workers, drains, a hog.

Not a script. ``bench/`` is not a package: each script puts this directory on
``sys.path`` and imports ``_common``; worker subprocesses get it on ``PYTHONPATH``.

- ``bench_database``: a fresh migrated PostgreSQL database, dropped afterwards;
  ``admin`` runs one statement on the server, ``libpq`` turns a URL into a DSN.
- ``claimed_db``: a Redis database taken with the tests' lock key, flushed before and after.
- ``worker``: a ``celery -A orchestrator worker`` subprocess in its own session,
  stopped by PID (SIGTERM, then SIGKILL to its group).
- ``wait_drained`` / ``timed_drain``: a queue and Redis's unacked table empty.
- ``three_states``: the 3-state machine the benches run (Pass, Task, Succeed).
- ``cpu_hog``: a busy process pinned to one core, for the "under contention" figures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg2
import redis
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCK_KEY = "orchestrator:test-lock"


# -- PostgreSQL ------------------------------------------------------------------------


def libpq(url: str | URL) -> str:
    """A SQLAlchemy URL as a libpq DSN (for psycopg2 and pgbench)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def admin(server: URL, statement: sql.Composable) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on ``server``."""
    conn = psycopg2.connect(libpq(server))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextlib.contextmanager
def bench_database(server: URL | str, tag: str = "batch") -> Iterator[str]:
    """A fresh migrated database on ``server``, dropped on the way out; yields its URL."""
    from orchestrator.store.migrations import upgrade

    server = make_url(server)
    name = sql.Identifier(f"orchestrator_bench_{tag}_{os.getpid()}")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name)
    admin(server, drop)
    admin(server, sql.SQL("CREATE DATABASE {}").format(name))
    url = server.set(database=name.strings[0]).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        admin(server, drop)


# -- Redis -----------------------------------------------------------------------------


@contextlib.contextmanager
def claimed_db(number: int) -> Iterator[redis.Redis]:
    """Take database ``number`` (refusing one a test holds), flushed before and after."""
    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{number}")
    if not client.set(LOCK_KEY, "bench", nx=True, ex=600):
        client.close()
        raise SystemExit(f"Redis database {number} is in use (lock {LOCK_KEY!r}); pick another")
    client.flushdb()
    client.set(LOCK_KEY, "bench", ex=600)
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


# -- workers ---------------------------------------------------------------------------


@contextlib.contextmanager
def worker(
    *,
    broker_url: str,
    queues: Sequence[str],
    handler_modules: str,
    log_path: Path,
    database_url: str | None = None,
    events: bool = False,
    heartbeat: bool = False,
    concurrency: int = 2,
    name: str = "bench",
    env: Mapping[str, str] | None = None,
    append: bool = False,
    app: str = "orchestrator",
) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork ``celery -A orchestrator worker`` (or ``-A app``) in its own session.

    It is stopped on the way out.

    Its environment is ours minus ``ORCHESTRATOR_*``, plus the broker, the database,
    the handler modules (imported from ``bench/``) and ``env``.
    """
    command = [
        sys.executable, "-m", "celery", "-A", app, "worker",
        "-Q", ",".join(queues), "-P", "prefork", "-c", str(concurrency), "-l", "WARNING",
        "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    if not heartbeat:
        command.append("--without-heartbeat")
    if events:
        command.append("-E")
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    environment.update(
        ORCHESTRATOR_BROKER_URL=broker_url,
        ORCHESTRATOR_HANDLER_MODULES=handler_modules,
        PYTHONPATH=os.pathsep.join([str(BENCH_DIR), str(REPO_ROOT)]),
    )
    if database_url is not None:
        environment["ORCHESTRATOR_DATABASE_URL"] = database_url
    environment.update(env or {})
    with log_path.open("ab" if append else "wb") as log:
        process = subprocess.Popen(  # noqa: S603  # our interpreter, our arguments
            command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (warm shutdown), then SIGKILL to the process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def wait_drained(
    client: redis.Redis, queue: str, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Until ``queue`` and Redis's unacked table are empty (the worker must stay up)."""
    deadline = time.monotonic() + timeout
    while True:
        waiting, unacked = client.pipeline().llen(queue).hlen("unacked").execute()
        if int(waiting) == 0 and int(unacked) == 0:
            return
        if process.poll() is not None:
            raise SystemExit(f"the worker exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker did not drain {queue!r} within {timeout}s")
        time.sleep(0.002)


def timed_drain(
    client: redis.Redis, hold: str, queue: str, process: subprocess.Popen[bytes], n: int
) -> float:
    """Move the held messages under ``queue`` (one RENAME) and time the drain: items/s."""
    started = time.perf_counter()
    client.rename(hold, queue)
    wait_drained(client, queue, process, timeout=max(120.0, n / 20))
    return n / (time.perf_counter() - started)


def held_publisher(app: Any, per_message: int, hold: str) -> Callable[[Sequence[str], Any], int]:
    """The orchestrator's publishing (``per_message`` ids a message), into the list ``hold``.

    The messages wait there while a worker starts and warms up; ``timed_drain``
    moves them under the queue the worker reads.
    """
    from orchestrator.distributed.config import RUN_EXECUTION_TASK, RUN_EXECUTIONS_TASK
    from orchestrator.distributed.publish import ids_per_message

    def publish(execution_ids: Sequence[str], priority: Any) -> int:
        size = ids_per_message(len(execution_ids), per_message)
        with app.producer_or_acquire() as producer, producer.batch(max_size=1000):
            if size == 1:
                task = app.tasks[RUN_EXECUTION_TASK]
                for execution_id in execution_ids:
                    task.apply_async((execution_id,), queue=hold, producer=producer)
            else:
                many = app.tasks[RUN_EXECUTIONS_TASK]
                for start in range(0, len(execution_ids), size):
                    chunk = list(execution_ids[start : start + size])
                    many.apply_async((chunk,), queue=hold, producer=producer)
        return len(execution_ids)

    return publish


# -- what runs -------------------------------------------------------------------------


def three_states(resource: str) -> dict[str, Any]:
    """The benches' 3-state machine: Pass, a Task on ``resource``, Succeed."""
    return {
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Result": 1, "ResultPath": "$.prepared", "Next": "Work"},
            "Work": {"Type": "Task", "Resource": resource, "ResultPath": "$.work", "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    }


def _spin() -> None:  # pragma: no cover - runs in the hog process
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {0})
    while True:
        pass


@contextlib.contextmanager
def cpu_hog(enabled: bool = True) -> Iterator[None]:
    """A process spinning on core 0 while inside (nothing if not ``enabled``)."""
    if not enabled:
        yield
        return
    hog = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    hog.start()
    try:
        yield
    finally:
        hog.terminate()
        hog.join(5)


def median(values: Sequence[float]) -> float:
    """The median (of 3 runs, usually)."""
    return float(statistics.median(values))


def load_average() -> str:
    """The 1/5/15-minute load average, to print beside figures."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores"
