"""Raw Celery on the local Redis: how fast no-op tasks are published and drained.

    .venv/bin/python bench/celery_baseline.py [--tasks 2000] [--redis-db 15]

These are the same-run baselines the orchestrator benchmarks divide by. With the
orchestrator app's own configuration (acks_late, prefetch 1, JSON, the weighted
queue cycle) it measures:

(a) publish: ``apply_async`` in a loop (a producer acquired from the pool per call);
    (a2) the same with one producer passed to every call;
(b) publish: the same calls through one producer inside kombu 5.7's
    ``Producer.batch()``, which buffers the Redis LPUSHes in a pipeline;
(c) drain: a prefork worker with 2 processes running no-op tasks, with task
    events off and on (``-E``, which Flower needs).

Drain timing excludes the worker's start: the tasks wait in a holding list while
the worker starts and warms up, and are moved under its queue with one RENAME
(BRPOP wakes on it); the clock stops when the queue and the unacked table are empty.
The Redis database is claimed with the tests' lock key, flushed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery, shared_task

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # bench/ is not a package

NOOP = "bench.noop"
QUEUE = "bench"
HOLD = "bench_hold"
WARMUP = 20


@shared_task(name=NOOP)
def noop() -> None:
    """Do nothing (the worker loads this module to register it)."""


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- publishing ---------------------------------------------------------------------


def publish_plain(app: Celery, n: int, queue: str) -> None:
    """(a) ``apply_async`` in a loop, as application code writes it."""
    task = app.tasks[NOOP]
    for _ in range(n):
        task.apply_async(queue=queue)


def publish_one_producer(app: Celery, n: int, queue: str) -> None:
    """(a2) ``apply_async`` with one producer for all calls."""
    task = app.tasks[NOOP]
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            task.apply_async(queue=queue, producer=producer)


def publish_batched(app: Celery, n: int, queue: str, *, batch_size: int = 1000) -> None:
    """(b) the same calls, pipelined by kombu's ``Producer.batch()``."""
    task = app.tasks[NOOP]
    with app.producer_or_acquire() as producer, producer.batch(max_size=batch_size):
        for _ in range(n):
            task.apply_async(queue=queue, producer=producer)


def measure_publish(app: Celery, client: redis.Redis, n: int) -> dict[str, float]:
    """Publish rates (tasks/s) of the three ways, each checked by counting the list."""
    rates = {}
    ways = {"a": publish_plain, "a2": publish_one_producer, "b": publish_batched}
    for label, publish in ways.items():
        client.delete(HOLD)
        seconds = _timed(lambda publish=publish: publish(app, n, HOLD))
        published = int(client.llen(HOLD))
        if published != n:
            raise RuntimeError(f"({label}) published {published} of {n} messages")
        rates[label] = n / seconds
    client.delete(HOLD)
    return rates


# -- draining -----------------------------------------------------------------------


def measure_drain(app: Celery, client: redis.Redis, n: int, *, events: bool) -> float:
    """Drain rate (tasks/s) of ``n`` no-op tasks by a fresh 2-process worker."""
    publish_batched(app, n, HOLD)
    publish_batched(app, WARMUP, QUEUE)
    log_path = Path(f"/tmp/celery-baseline-{os.getpid()}-{int(events)}.log")  # noqa: S108
    with _common.worker(
        broker_url=app.conf.broker_url,
        queues=[QUEUE],
        handler_modules="celery_baseline",
        events=events,
        log_path=log_path,
    ) as process:
        _common.wait_drained(client, QUEUE, process, timeout=60)  # started, forked, warm
        start = time.perf_counter()
        client.rename(HOLD, QUEUE)
        _common.wait_drained(client, QUEUE, process, timeout=120)
        seconds = time.perf_counter() - start
    log = log_path.read_text(errors="replace")
    if "ERROR" in log or "unregistered" in log:
        raise RuntimeError(f"the worker reported errors (see {log_path}):\n{log[-3000:]}")
    log_path.unlink(missing_ok=True)
    return n / seconds


# -- the run ------------------------------------------------------------------------


def run(tasks: int, db: int) -> dict[str, Any]:
    """Measure everything; return the figures."""
    from orchestrator.celery import create_app
    from orchestrator.settings import Settings

    url = f"redis://127.0.0.1:6379/{db}"
    with _common.claimed_db(db) as client:
        app = create_app(Settings(broker_url=url), set_as_current=False)
        try:
            publish = measure_publish(app, client, tasks)
            drain_off = measure_drain(app, client, tasks, events=False)
            drain_on = measure_drain(app, client, tasks, events=True)
        finally:
            app.close()
    return {"publish": publish, "drain_off": drain_off, "drain_on": drain_on}


def report(figures: dict[str, Any], tasks: int) -> None:
    """Print the figures and their ratios."""
    publish = figures["publish"]
    off, on = figures["drain_off"], figures["drain_on"]
    print(f"Celery baseline, {tasks} no-op tasks, local Redis, orchestrator app config")
    print(f"(a)  publish, apply_async loop            {publish['a']:9.0f} tasks/s   1.00x")
    print(
        f"(a2) publish, apply_async, one producer   {publish['a2']:9.0f} tasks/s  "
        f"{publish['a2'] / publish['a']:5.2f}x"
    )
    print(
        f"(b)  publish, Producer.batch() pipelined  {publish['b']:9.0f} tasks/s  "
        f"{publish['b'] / publish['a']:5.2f}x"
    )
    print(f"(c)  drain, prefork -c 2, events off      {off:9.0f} tasks/s   1.00x")
    print(f"(c)  drain, prefork -c 2, events on (-E)  {on:9.0f} tasks/s  {on / off:5.2f}x")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per measurement")
    parser.add_argument("--redis-db", type=int, default=15, help="Redis database to use")
    args = parser.parse_args(argv)
    report(run(args.tasks, args.redis_db), args.tasks)


if __name__ == "__main__":
    main()
