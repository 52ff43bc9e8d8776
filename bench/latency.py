"""Start-to-end latency of single executions on an idle worker, against a raw Celery round trip.

    .venv/bin/python bench/latency.py [--samples 300] [--runs 3] [--hog] [--redis-db 11]
        [--postgres-url URL]

One idle prefork worker ``-c 2``. One at a time, ``--samples`` times each, in each
of ``--runs`` runs (the same workers and database throughout):

- raw Celery: ``apply_async`` of a task that pushes its result to a Redis list,
  and a blocking pop of that list (the orchestrator's app has no result backend:
  business results live in the database; a list on the same Redis is the
  cheapest way back, so the baseline is if anything flattering);
- Celery result: what a Celery user gets for a round trip with a result: a task
  of a plain Celery app with Redis as its result backend (JSON), run by a second
  idle worker ``-c 2`` (``-A latency:worker_app``), and ``AsyncResult.get()``;
- EXPRESS: ``StateMachine.start_async`` of the 3-state machine (Pass, Task with a
  no-op handler, Succeed), then ``ExecutionHandle.wait()`` (woken by the worker's
  notice on Redis, ``orchestrator/runtime/notices.py``): what
  ``start_sync(on_worker=True)`` does;
- EXPRESS claimed: the same, published by id only (an explicit publisher): the
  row is stored PENDING and the worker claims it before running it, as every
  start did before start tickets (``Runner.advance_started``), for comparison;
- EXPRESS polled: the same, waited on by a client with notices off
  (``notice_url=""``: the database read every millisecond), for comparison;
- STANDARD: the same with a STANDARD machine (history stored).

Printed for each run: p50, p99 and mean of each in milliseconds, the CPU this
(client) process spent per sample (start, wait), each p50 less raw Celery's, and
EXPRESS's less Celery result's; then the median over the runs of EXPRESS's p50 less
Celery result's and less raw Celery's (goal: within 2 ms of a Celery round trip with
a result; judged against both). The kinds are interleaved sample by sample, in a new
random order each round, so a change of load, and whatever the previous sample left
running, hits them alike; the runs follow one another, so a slow minute of the
machine weighs on one run, not on the median.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery, current_app, shared_task

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import _common  # noqa: E402  # bench/ is not a package
import batch  # noqa: E402
import celery_baseline  # noqa: E402

ECHO = "bench.echo"
#: Celery's own round trip with a result: a task of an app with a Redis result
#: backend, run by a second idle worker, and ``AsyncResult.get()``.
RESULT_TASK = "bench.echo_result"
RESULT_QUEUE = "bench_results"
WARMUP = 20
#: Seed of the order the kinds are taken in each round.
SEED = 16
_replies: dict[str, redis.Redis] = {}


@shared_task(name=ECHO)
def echo(reply_to: str) -> None:
    """Push a result where the caller waits for it (runs in the worker)."""
    url = str(current_app.conf.broker_url)
    if url not in _replies:
        _replies[url] = redis.Redis.from_url(url)
    _replies[url].rpush(reply_to, "ok")


def _echo_result() -> str:
    return "ok"


def results_app(url: str) -> Celery:
    """A plain Celery app whose result backend is the Redis at ``url`` (JSON only)."""
    app = Celery("bench_latency_results", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=RESULT_QUEUE,
        worker_hijack_root_logger=False,
    )
    app.task(name=RESULT_TASK)(_echo_result)
    return app


#: What the second worker loads (``celery -A latency:worker_app``).
worker_app = results_app(os.environ.get("BENCH_RESULTS_URL", "redis://127.0.0.1:6379/11"))


def result_round_trip(app: Celery) -> float:
    """Seconds from ``apply_async`` until ``AsyncResult.get()`` has the result."""
    started = time.perf_counter()
    if app.tasks[RESULT_TASK].apply_async(queue=RESULT_QUEUE).get(timeout=30) != "ok":
        raise SystemExit("raw Celery with a result backend: wrong result")
    return time.perf_counter() - started


def raw_round_trip(app: Any, client: redis.Redis) -> float:
    """Seconds from ``apply_async`` until the result is back."""
    reply_to = f"bench-reply-{uuid.uuid4().hex}"
    started = time.perf_counter()
    app.tasks[ECHO].apply_async((reply_to,), queue=celery_baseline.QUEUE)
    if client.blpop([reply_to], timeout=30) is None:
        raise SystemExit("raw Celery: no result within 30 s")
    return time.perf_counter() - started


def execution_round_trip(sm: Any, waiter: Any = None, publisher: Any = None) -> Callable[[], float]:
    """Seconds from ``start_async`` until ``wait`` sees the execution ended.

    ``waiter``: the client that waits (default: the machine's). ``publisher``: the
    one to start with (default the client's own: an EXPRESS start takes a ticket).
    """
    waiter = waiter or sm.client

    def once() -> float:
        started = time.perf_counter()
        execution = sm.start_async({"i": 1}, publisher=publisher)
        done = waiter.execution(execution.id).wait(30)
        elapsed = time.perf_counter() - started
        if str(done.status) != "SUCCEEDED":
            raise SystemExit(f"{done.id} ended {done.status}: {done.error} {done.cause}")
        return elapsed

    return once


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile, in milliseconds."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
    return ordered[index] * 1000


#: One run: the samples of each kind (seconds), and this process's CPU seconds per kind.
Run = tuple[dict[str, list[float]], dict[str, float]]


def measure(settings: Any, client: redis.Redis, app: Any, samples: int, runs: int) -> list[Run]:
    """``runs`` runs of interleaved samples of each kind."""
    from orchestrator.client import Orchestrator

    orchestrator = Orchestrator.shared(settings)
    with_results = results_app(str(settings.broker_url))
    kinds: dict[str, Callable[[], float]] = {
        "raw Celery": lambda: raw_round_trip(app, client),
        "Celery result": lambda: result_round_trip(with_results),
    }
    for machine_type in ("EXPRESS", "STANDARD"):
        sm = orchestrator.create_state_machine(
            f"bench-latency-{machine_type.lower()}", batch.MACHINE, machine_type=machine_type
        )
        kinds[machine_type] = execution_round_trip(sm)
        if machine_type == "EXPRESS":
            # The same with no start ticket: stored PENDING, claimed by the worker.
            kinds["EXPRESS claimed"] = execution_round_trip(sm, publisher=orchestrator.publisher)
            # The same, waited on by polling the database (no wake-up notices).
            polled = Orchestrator(settings.model_copy(update={"notice_url": ""}))
            kinds["EXPRESS polled"] = execution_round_trip(sm, polled)
    log_path = Path(f"/tmp/bench-latency-{os.getpid()}.log")  # noqa: S108
    found: list[Run] = []
    with (
        _common.worker(
            broker_url=settings.broker_url,
            database_url=settings.database_url,
            queues=[celery_baseline.QUEUE, "critical", "default", "low"],
            handler_modules="batch,latency",
            log_path=log_path,
            name="bench-latency",
        ),
        _common.worker(
            broker_url=settings.broker_url,
            queues=[RESULT_QUEUE],
            handler_modules="",
            log_path=log_path.with_suffix(".results.log"),
            name="bench-results",
            app="latency:worker_app",
            env={"BENCH_RESULTS_URL": str(settings.broker_url)},
        ),
    ):
        for _ in range(WARMUP):
            for once in kinds.values():
                once()
        # Each round takes the kinds in a new random order: what a sample follows
        # (the last one's worker still acknowledging, say) is alike for every kind.
        order, shuffle = list(kinds.items()), random.Random(SEED).shuffle
        for _ in range(runs):
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            cpu: dict[str, float] = dict.fromkeys(kinds, 0.0)
            for _ in range(samples):
                shuffle(order)
                for kind, once in order:
                    used = time.process_time()
                    times[kind].append(once())
                    cpu[kind] += time.process_time() - used
            found.append((times, cpu))
    log = log_path.read_text(errors="replace")
    if "ERROR" in log:
        raise SystemExit(f"the worker reported errors (see {log_path}):\n{log[-3000:]}")
    log_path.unlink(missing_ok=True)
    log_path.with_suffix(".results.log").unlink(missing_ok=True)
    with_results.close()
    return found


def report(runs: list[Run]) -> None:
    """Print each run, then the median differences over the runs and the verdict."""
    against_result, against_raw = [], []
    for number, (found, cpu) in enumerate(runs, start=1):
        print(f"run {number} of {len(runs)}:")
        report_run(found, cpu)
        express = percentile(found["EXPRESS"], 50)
        against_result.append(express - percentile(found["Celery result"], 50))
        against_raw.append(express - percentile(found["raw Celery"], 50))
    result, raw = statistics.median(against_result), statistics.median(against_raw)
    print(
        f"median of {len(runs)} runs: EXPRESS p50 {result:+.2f} ms vs Celery result "
        f"(goal <= +2 ms: {'met' if result <= 2 else 'NOT met'}), {raw:+.2f} ms vs raw Celery "
        f"({'met' if raw <= 2 else 'NOT met'}); each run: "
        + ", ".join(
            f"{a:+.2f} / {b:+.2f}" for a, b in zip(against_result, against_raw, strict=True)
        )
    )


def report_run(found: dict[str, list[float]], cpu: dict[str, float]) -> None:
    """Print one run's p50/p99, the client's CPU per sample, and the p50 differences."""
    raw = percentile(found["raw Celery"], 50)
    celery = percentile(found["Celery result"], 50)
    for kind, values in found.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        extra = "" if kind.endswith("Celery") else f"   p50 {p50 - raw:+6.2f} ms vs raw Celery"
        if kind == "EXPRESS":
            # The goal: within 2 ms of a Celery round trip with a result.
            # Judged against both: Celery's own (result backend) and the floor.
            extra += (
                f", {p50 - celery:+6.2f} ms vs Celery result (goal <= +2 ms: "
                f"{'met' if p50 - celery <= 2 else 'NOT met'} vs Celery result, "
                f"{'met' if p50 - raw <= 2 else 'NOT met'} vs raw Celery)"
            )
        print(
            f"   {kind:15}  p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   "
            f"mean {statistics.fmean(values) * 1000:7.2f} ms   "
            f"client CPU {cpu[kind] / len(values) * 1000:5.2f} ms{extra}"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, measure, print."""
    from orchestrator.celery import create_app
    from orchestrator.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="runs, one after another")
    parser.add_argument("--hog", action="store_true", help="a CPU hog on core 0 throughout")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--postgres-url", default=_common.DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    broker_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    with (
        _common.bench_database(args.postgres_url, "latency") as database_url,
        _common.claimed_db(args.redis_db) as client,
        _common.cpu_hog(args.hog),
    ):
        settings = Settings(database_url=database_url, broker_url=broker_url)
        app = create_app(settings, set_as_current=False)
        print(
            f"latency, start to end of single executions on an idle worker -c 2, {args.runs} "
            f"runs of {args.samples} samples each"
            f"{', CPU hog on core 0' if args.hog else ''} ({_common.load_average()})"
        )
        try:
            report(measure(settings, client, app, args.samples, args.runs))
        finally:
            app.close()


if __name__ == "__main__":
    main()
