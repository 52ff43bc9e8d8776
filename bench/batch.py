"""execute_batch at the broker's speed? Enqueue rate, completion rate and memory (issue 5).

    .venv/bin/python bench/batch.py [--parts 1,2,3] [--sources 20000]
        [--executions 5000] [--noop-tasks 20000] [--rss-sources 200000]
        [--redis-db 14] [--postgres-url URL]

The defaults finish in about four minutes on 2 cores. The issue's sizes,
``--executions 20000 --rss-sources 1000000``, take about twelve: parts 2 and 3
are rates and a peak that do not depend on the size once past the warm-up
(part 3's peak stays flat from 200,000 to 1,000,000 sources).

Everything runs against the local PostgreSQL and Redis, on a database this script
creates and drops (``orchestrator_bench_batch_<pid>``) and a Redis database it
claims with the tests' lock key (flushed before and after). Each figure is set
beside a baseline measured in the same run, as a ratio:

1. Enqueue: ``StateMachine.execute_batch`` (mode distributed, the default
   publisher) over ``--sources`` finished source executions -- reading the
   sources page by page, inserting one execution row each, publishing one
   ``orchestrator.run_execution`` message each, recording the batch -- against
   plain ``apply_async`` of as many no-op tasks in a loop. Goal >= 3x.
2. Completion: ``--executions`` executions of a 3-state machine (Pass, Task with
   a no-op handler, Succeed; history persisted) drained by one prefork worker
   with 2 processes, against ``--noop-tasks`` no-op Celery tasks drained by the
   same worker process, with task events off and on (``-E``). Goal >= 0.5x.
   As in ``celery_baseline.py``, the messages wait in a holding list while the
   worker starts and warms up and are moved under its queue with one RENAME;
   the clock stops when the queue and Redis's unacked table are empty.
3. Memory: peak RSS (``ru_maxrss``) of a child process that only runs
   ``execute_batch`` over ``--rss-sources`` source executions (inserted with one
   ``INSERT ... SELECT generate_series``). It publishes for real, with the
   default publisher, to the bench's Redis database; this process deletes the
   queue every 0.2 s meanwhile, so Redis does not hold a million messages.
   Goal < 256 MB.

The worker imports this module (``ORCHESTRATOR_HANDLER_MODULES=batch``) for the
no-op handler, and ``celery_baseline`` for the no-op Celery task.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg2
import redis
from celery import Celery

from orchestrator.handlers import handler

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # run as a script, or imported by a worker
    sys.path.insert(0, str(BENCH_DIR))

import _common  # noqa: E402  # bench/ is not a package
import celery_baseline  # noqa: E402

REPO_ROOT = _common.REPO_ROOT
DEFAULT_POSTGRES_URL = _common.DEFAULT_POSTGRES_URL
#: Source machines, one per part, so each batch selects exactly its own sources.
ENQUEUE_SOURCES = "bench-source-enqueue"
DRAIN_SOURCES = "bench-source-drain"
RSS_SOURCES = "bench-source-rss"
MACHINE_NAME = "bench-batch"
NOOP_RESOURCE = "bench-noop"
MACHINE: dict[str, Any] = _common.three_states(NOOP_RESOURCE)
SOURCE_DEFINITION: dict[str, Any] = {
    "StartAt": "Emit",
    "States": {"Emit": {"Type": "Pass", "End": True}},
}
#: Where held orchestrator messages wait for the RENAME under ``default``.
HOLD_DEFAULT = "bench_hold_default"
WARMUP = 20
MB = 1024 * 1024


@handler(NOOP_RESOURCE)
def noop_handler(data: Any) -> Any:
    """The Task state's handler: nothing to do."""
    return {"ok": True}


# -- set-up ---------------------------------------------------------------------------


def insert_sources(database_url: str, source_machine: str, count: int) -> float:
    """Insert ``count`` SUCCEEDED executions of ``source_machine`` in one statement.

    Returns:
        The seconds it took.
    """
    from orchestrator.settings import Settings
    from orchestrator.statemachine import StateMachine
    from orchestrator.store import Repository

    settings = Settings(database_url=database_url)
    repo = Repository.from_settings(settings)
    try:
        version = StateMachine.create(
            source_machine, SOURCE_DEFINITION, repository=repo, settings=settings
        ).version_record
    finally:
        repo.close()
    started = time.perf_counter()
    conn = psycopg2.connect(_common.libpq(database_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                """
                INSERT INTO executions (
                    id, state_machine_id, version_id, name, status, input, output,
                    priority, started_at, updated_at, ended_at,
                    revision, last_seq, wake_pending, redrive_count)
                SELECT gen_random_uuid()::text, %(machine)s, %(version)s, 'source-' || g,
                    'SUCCEEDED', jsonb_build_object('n', g), jsonb_build_object('n', g),
                    5, now() - interval '1 hour', now() - interval '1 hour', now(),
                    1, 1, false, 0
                FROM generate_series(1, %(count)s) AS g
                """,
                {"machine": version.state_machine_id, "version": version.id, "count": count},
            )
            cur.execute("ANALYZE executions")
    finally:
        conn.close()
    return time.perf_counter() - started


def source_filter(source_machine: str) -> Any:
    """Every finished execution of ``source_machine``."""
    from orchestrator.store import ExecutionFilter
    from orchestrator.types import ExecutionStatus

    return ExecutionFilter(state_machine=source_machine, status=ExecutionStatus.SUCCEEDED)


def machine(settings: Any) -> Any:
    """The 3-state machine under test, on ``settings``'s database."""
    from orchestrator.client import Orchestrator

    return Orchestrator.shared(settings).create_state_machine(MACHINE_NAME, MACHINE)


# -- 1. enqueue --------------------------------------------------------------------------


def measure_enqueue(settings: Any, client: redis.Redis, app: Celery, n: int) -> dict[str, float]:
    """execute_batch (default publisher) vs an apply_async loop, both ``n`` messages."""
    from orchestrator.client import Orchestrator
    from orchestrator.distributed.config import RUN_EXECUTION_TASK

    insert_sources(settings.database_url, ENQUEUE_SOURCES, n)
    celery_baseline.publish_plain(app, 100, celery_baseline.HOLD)  # warm the connection
    client.delete(celery_baseline.HOLD)
    started = time.perf_counter()
    celery_baseline.publish_plain(app, n, celery_baseline.HOLD)
    plain = n / (time.perf_counter() - started)
    if client.llen(celery_baseline.HOLD) != n:
        raise SystemExit("the apply_async loop lost messages")
    client.delete(celery_baseline.HOLD)
    started = time.perf_counter()
    celery_baseline.publish_batched(app, n, celery_baseline.HOLD)
    batched = n / (time.perf_counter() - started)
    client.delete(celery_baseline.HOLD)

    sm = machine(settings)
    shared = Orchestrator.shared(settings)
    shared.celery_app.tasks[RUN_EXECUTION_TASK].apply_async(("warm",), queue=HOLD_DEFAULT)
    client.delete(HOLD_DEFAULT)
    publish = shared.publisher  # the default publisher, timed to see its share
    publish_seconds = 0.0

    def timed(ids: Sequence[str], priority: Any) -> int:
        nonlocal publish_seconds
        t0 = time.perf_counter()
        try:
            return publish(ids, priority)
        finally:
            publish_seconds += time.perf_counter() - t0

    started = time.perf_counter()
    result = sm.execute_batch(
        source_filter(ENQUEUE_SOURCES), name_prefix="enqueue", publisher=timed
    )
    elapsed = time.perf_counter() - started
    queued = int(client.llen("default"))
    least = n // settings.executions_per_message
    if (result.created, result.published) != (n, n) or not least <= queued <= n:
        raise SystemExit(f"execute_batch: {result} but {queued} messages queued")
    client.delete("default")
    return {
        "messages": queued,
        "plain": plain,
        "batched": batched,
        "execute_batch": n / elapsed,
        "elapsed": elapsed,
        "publish_seconds": publish_seconds,
    }


# -- 2. completion -----------------------------------------------------------------------


def worker(settings: Any, *, events: bool, log_path: Path) -> Any:
    """One prefork worker, 2 processes, on ``bench`` and the orchestrator's three queues."""
    return _common.worker(
        broker_url=settings.broker_url,
        database_url=settings.database_url,
        queues=[celery_baseline.QUEUE, "critical", "default", "low"],
        handler_modules="celery_baseline,batch",
        events=events,
        log_path=log_path,
        name="bench-batch",
    )


def _wait_succeeded(sm: Any, batch_id: str, n: int, process: subprocess.Popen[bytes]) -> None:
    from orchestrator.store import ExecutionFilter
    from orchestrator.types import ExecutionStatus

    done = ExecutionFilter(batch_id=batch_id, status=ExecutionStatus.SUCCEEDED)
    deadline = time.monotonic() + 120
    while sm.count_executions(done) < n and time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the worker exited with {process.returncode}")
        time.sleep(0.02)


def measure_completion(
    settings: Any, client: redis.Redis, app: Celery, *, executions: int, noops: int, events: bool
) -> dict[str, float]:
    """Drain rates of no-op tasks and of executions, on one worker process."""
    from orchestrator.store import ExecutionFilter
    from orchestrator.types import ExecutionStatus

    sm = machine(settings)
    label = "on" if events else "off"
    if not events:
        insert_sources(settings.database_url, DRAIN_SOURCES, executions)
    batch = sm.execute_batch(
        source_filter(DRAIN_SOURCES),
        name_prefix=f"drain-{label}",
        publisher=_common.held_publisher(app, settings.executions_per_message, HOLD_DEFAULT),
    )
    if batch.created != executions:
        raise SystemExit(f"expected {executions} executions, the batch created {batch.created}")
    celery_baseline.publish_batched(app, noops, celery_baseline.HOLD)
    log_path = Path(f"/tmp/bench-batch-{os.getpid()}-{label}.log")  # noqa: S108
    with worker(settings, events=events, log_path=log_path) as process:
        celery_baseline.publish_batched(app, WARMUP, celery_baseline.QUEUE)
        for i in range(WARMUP):
            sm.start_async({"n": -i}, name=f"warm-{label}-{i}")
        _common.wait_drained(client, "default", process, timeout=60)
        _common.wait_drained(client, celery_baseline.QUEUE, process, timeout=60)
        noop_rate = _common.timed_drain(
            client, celery_baseline.HOLD, celery_baseline.QUEUE, process, noops
        )
        started = time.perf_counter()
        _common.timed_drain(client, HOLD_DEFAULT, "default", process, executions)
        # The queue and Redis's unacked table can both look empty for a moment
        # while the worker holds the last message it popped: the clock stops
        # when the database says every execution succeeded.
        _wait_succeeded(sm, batch.batch_id, executions, process)
        execution_rate = executions / (time.perf_counter() - started)
    succeeded = sm.count_executions(
        ExecutionFilter(batch_id=batch.batch_id, status=ExecutionStatus.SUCCEEDED)
    )
    log = log_path.read_text(errors="replace")
    if succeeded != executions or "ERROR" in log:
        raise SystemExit(f"{succeeded} of {executions} succeeded; see {log_path}:\n{log[-3000:]}")
    log_path.unlink(missing_ok=True)
    return {"noop": noop_rate, "executions": execution_rate}


# -- 3. memory ---------------------------------------------------------------------------


def child_batch(database_url: str, broker_url: str) -> None:
    """In the child process: run only the batch, print its figures as JSON."""
    from orchestrator.settings import Settings

    settings = Settings(database_url=database_url, broker_url=broker_url)
    sm = machine(settings)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = sm.execute_batch(source_filter(RSS_SOURCES), name_prefix="rss")
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "before_kib": before,
                "peak_kib": peak,
                "elapsed": elapsed,
                "created": result.created,
                "published": result.published,
            }
        )
    )


def measure_rss(settings: Any, client: redis.Redis, sources: int) -> dict[str, Any]:
    """Peak RSS of a child that runs execute_batch over ``sources`` sources."""
    insert_seconds = insert_sources(settings.database_url, RSS_SOURCES, sources)
    stop = threading.Event()

    def discard() -> None:  # Redis keeps only what was published in the last 0.2 s
        while not stop.wait(0.2):
            client.delete("default")

    trimmer = threading.Thread(target=discard, daemon=True)
    trimmer.start()
    try:
        child = subprocess.run(  # noqa: S603  # our interpreter, this script
            [sys.executable, __file__, "--child-batch", settings.database_url, settings.broker_url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        stop.set()
        trimmer.join()
        client.delete("default")
    if child.returncode != 0:
        raise SystemExit(f"the batch child failed:\n{child.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    if figures["created"] != sources or figures["published"] != sources:
        raise SystemExit(f"the batch child created/published {figures}, not {sources}")
    return {**figures, "insert_seconds": insert_seconds}


# -- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    """Measure the parts asked for and print them as they come."""
    from orchestrator.celery import create_app
    from orchestrator.settings import Settings

    parts = {int(p) for p in args.parts.split(",")}
    broker_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    with (
        _common.bench_database(args.postgres_url) as database_url,
        _common.claimed_db(args.redis_db) as client,
    ):
        settings = Settings(database_url=database_url, broker_url=broker_url)
        app = create_app(settings, set_as_current=False)
        try:
            if 1 in parts:
                report_enqueue(measure_enqueue(settings, client, app, args.sources), args.sources)
            if 2 in parts:
                report_completion(settings, client, app, args)
            if 3 in parts:
                report_rss(measure_rss(settings, client, args.rss_sources), args.rss_sources)
        finally:
            app.close()


def report_enqueue(figures: dict[str, float], n: int) -> None:
    """Print part 1."""
    plain, rate = figures["plain"], figures["execute_batch"]
    db_seconds = figures["elapsed"] - figures["publish_seconds"]
    print(f"\n1. enqueue, {n} sources (database rows included)")
    print(f"   baseline apply_async loop          {plain:9,.0f} msg/s   1.00x")
    print(
        f"   (ref) Producer.batch() pipelined   {figures['batched']:9,.0f} msg/s  "
        f"{figures['batched'] / plain:5.2f}x"
    )
    print(
        f"   execute_batch, distributed         {rate:9,.0f} exec/s {rate / plain:5.2f}x"
        f"   (goal >= 3x: {'met' if rate / plain >= 3 else 'NOT met'})"
    )
    print(
        f"   of its {figures['elapsed']:.2f} s: publishing {figures['publish_seconds']:.2f} s, "
        f"reading sources + inserting rows + batch bookkeeping {db_seconds:.2f} s; "
        f"{figures['messages']:,.0f} messages (ORCHESTRATOR_EXECUTIONS_PER_MESSAGE)"
    )


def report_completion(settings: Any, client: redis.Redis, app: Celery, args: Any) -> None:
    """Measure and print part 2, events off then on."""
    print(f"\n2. completion, one prefork worker -c 2, {args.executions} executions of a 3-state")
    print("   machine (Pass, Task no-op, Succeed; history persisted) vs no-op Celery tasks")
    for events in (False, True):
        figures = measure_completion(
            settings,
            client,
            app,
            executions=args.executions,
            noops=args.noop_tasks,
            events=events,
        )
        ratio = figures["executions"] / figures["noop"]
        label = "events on (-E)" if events else "events off    "
        print(
            f"   {label}  no-op {figures['noop']:7,.0f} tasks/s   executions "
            f"{figures['executions']:7,.0f}/s   {ratio:5.2f}x"
            f"   (goal >= 0.5x: {'met' if ratio >= 0.5 else 'NOT met'})"
        )
        # Two pool processes: each message holds one for 2 / rate seconds.
        print(
            f"   {'':14}  = {2000 / figures['noop']:.2f} ms of a pool process per no-op task, "
            f"{2000 / figures['executions']:.2f} ms per execution"
        )


def report_rss(figures: dict[str, Any], n: int) -> None:
    """Print part 3."""
    peak = figures["peak_kib"] * 1024 / MB
    before = figures["before_kib"] * 1024 / MB
    print(f"\n3. memory, execute_batch over {n:,} sources in a child process")
    print(
        "   sources inserted with INSERT ... SELECT generate_series in "
        f"{figures['insert_seconds']:.1f} s"
    )
    print(
        f"   batch: {figures['created']:,} created and published in {figures['elapsed']:.1f} s "
        f"({figures['created'] / figures['elapsed']:,.0f} exec/s), real publisher, queue "
        "deleted every 0.2 s"
    )
    print(
        f"   peak RSS {peak:.1f} MB (after imports and set-up, before the batch: {before:.1f} MB)"
        f"   (goal < 256 MB: {'met' if peak < 256 else 'NOT met'})"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    parser.add_argument("--sources", type=int, default=20_000, help="part 1 batch size")
    parser.add_argument("--executions", type=int, default=5_000, help="part 2 executions")
    parser.add_argument("--noop-tasks", type=int, default=20_000, help="part 2 baseline tasks")
    parser.add_argument("--rss-sources", type=int, default=200_000, help="part 3 batch size")
    parser.add_argument("--redis-db", type=int, default=14, help="Redis database to use")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server to use")
    parser.add_argument("--child-batch", nargs=2, metavar=("DATABASE_URL", "BROKER_URL"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.child_batch:
        child_batch(*args.child_batch)
        return
    started = time.perf_counter()
    run(args)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
