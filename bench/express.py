"""STANDARD and EXPRESS completion against raw Celery no-op tasks, same worker, same run.

    .venv/bin/python bench/express.py [--executions 20000] [--noop-tasks 20000]
        [--runs 3] [--events] [--hog] [--redis-db 13] [--postgres-url URL]

Each run drains, with one prefork worker ``-c 2`` (task events off, or on with
``--events``):

1. half of ``--noop-tasks`` raw Celery no-op tasks (the baseline, one task a
   message), the other half after 3.; the baseline is the mean of the two rates,
   so a load that changes during the run weighs on both sides alike;
2. ``--executions`` STANDARD executions of the 3-state machine (Pass, Task with a
   no-op handler, Succeed; every state in the history), 10 a ``run_executions``
   message (``executions_per_message``, the default);
3. as many EXPRESS executions of the same machine (only the final row stored).

The executions are created up front with one bulk insert and their messages wait
in holding lists while the worker starts and warms up; each drain starts with one
RENAME under the queue the worker reads, and stops when the queue and Redis's
unacked table are empty and (for executions) the database says every one of them
SUCCEEDED. Printed: each rate, and each ratio to the no-op drain of the same run;
with ``--runs`` > 1 the median ratio. ``--hog`` keeps a process spinning on core 0
throughout (the "under contention" figure). Goals (issue 16): STANDARD >= 1.0x
(>= 0.8x under the hog), EXPRESS >= 2.0x.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
import redis

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import _common  # noqa: E402  # bench/ is not a package
import batch  # noqa: E402
import celery_baseline  # noqa: E402

HOLD = {"STANDARD": "bench_hold_standard", "EXPRESS": "bench_hold_express"}
#: The no-op tasks, half drained before the executions and half after.
NOOP_HOLDS = ("bench_hold_noop_before", "bench_hold_noop_after")
MACHINES = {"STANDARD": "bench-standard", "EXPRESS": "bench-express"}
WARMUP = 20


def create(settings: Any, machine_type: str, n: int, run: int) -> tuple[Any, list[str]]:
    """The machine of ``machine_type`` and ``n`` PENDING executions of it."""
    from orchestrator.client import Orchestrator
    from orchestrator.store import NewExecution

    client = Orchestrator.shared(settings)
    sm = client.create_state_machine(
        MACHINES[machine_type], batch.MACHINE, machine_type=machine_type
    )
    rows = [NewExecution(name=f"r{run}-{i}", input={"i": i}) for i in range(n)]
    created = client.repository.create_executions_bulk(sm.version_record, rows).created
    return sm, list(created.values())


def succeeded(dsn: str, machine_id: int, run: int) -> int:
    """Executions of this run of the machine that SUCCEEDED."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM executions WHERE state_machine_id = %s "
                "AND status = 'SUCCEEDED' AND name LIKE %s",
                (machine_id, f"r{run}-%"),
            )
            return int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()


def drain_executions(
    client: redis.Redis, process: Any, dsn: str, sm: Any, n: int, run: int, machine_type: str
) -> float:
    """Executions/s: from the RENAME until the database says all of them SUCCEEDED."""
    started = time.perf_counter()
    _common.timed_drain(client, HOLD[machine_type], "default", process, n)
    machine_id = sm.version_record.state_machine_id
    deadline = time.monotonic() + 300
    while succeeded(dsn, machine_id, run) < n:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{machine_type}: not every execution succeeded")
        time.sleep(0.01)
    return n / (time.perf_counter() - started)


def one_run(settings: Any, client: redis.Redis, app: Any, args: Any, run: int) -> dict[str, float]:
    """One run: no-op, STANDARD and EXPRESS drains by one fresh worker."""
    dsn = _common.libpq(settings.database_url)
    per_message = settings.executions_per_message
    made = {t: create(settings, t, args.executions, run) for t in ("STANDARD", "EXPRESS")}
    for machine_type, (_, ids) in made.items():
        _common.held_publisher(app, per_message, HOLD[machine_type])(ids, "default")
    half = args.noop_tasks // 2
    for hold in NOOP_HOLDS:
        celery_baseline.publish_batched(app, half, hold)
    log_path = Path(f"/tmp/bench-express-{os.getpid()}-{run}.log")  # noqa: S108
    with batch.worker(settings, events=args.events, log_path=log_path) as process:
        celery_baseline.publish_batched(app, WARMUP, celery_baseline.QUEUE)
        for machine_type, (sm, _) in made.items():
            for i in range(WARMUP):
                sm.start_async({"i": -i}, name=f"warm{run}-{machine_type}-{i}")
        _common.wait_drained(client, "default", process, timeout=120)
        _common.wait_drained(client, celery_baseline.QUEUE, process, timeout=120)
        queue = celery_baseline.QUEUE
        before = _common.timed_drain(client, NOOP_HOLDS[0], queue, process, half)
        figures = {
            machine_type: drain_executions(
                client, process, dsn, sm, args.executions, run, machine_type
            )
            for machine_type, (sm, _) in made.items()
        }
        after = _common.timed_drain(client, NOOP_HOLDS[1], queue, process, half)
        figures["noop"] = (before + after) / 2
    log = log_path.read_text(errors="replace")
    if "ERROR" in log:
        raise SystemExit(f"the worker reported errors (see {log_path}):\n{log[-3000:]}")
    log_path.unlink(missing_ok=True)
    return figures


def report_run(run: int, figures: dict[str, float]) -> None:
    """Print one run's rates and ratios."""
    noop = figures["noop"]
    print(
        f"   run {run + 1}: no-op {noop:7,.0f} tasks/s   STANDARD {figures['STANDARD']:7,.0f}/s "
        f"{figures['STANDARD'] / noop:5.2f}x   EXPRESS {figures['EXPRESS']:7,.0f}/s "
        f"{figures['EXPRESS'] / noop:5.2f}x   ({_common.load_average()})"
    )


def report(runs: list[dict[str, float]], args: Any) -> None:
    """Print the medians against the goals."""
    standard = _common.median([r["STANDARD"] / r["noop"] for r in runs])
    express = _common.median([r["EXPRESS"] / r["noop"] for r in runs])
    goal = 0.8 if args.hog else 1.0
    what = f"median of {len(runs)}" if len(runs) > 1 else "one run"
    print(
        f"   {what}: STANDARD {standard:.2f}x (goal >= {goal}x: "
        f"{'met' if standard >= goal else 'NOT met'}), EXPRESS {express:.2f}x "
        f"(goal >= 2.0x: {'met' if express >= 2.0 else 'NOT met'})"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, measure, print."""
    from orchestrator.celery import create_app
    from orchestrator.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--noop-tasks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", action="store_true", help="worker with -E")
    parser.add_argument("--hog", action="store_true", help="a CPU hog on core 0 throughout")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--postgres-url", default=_common.DEFAULT_POSTGRES_URL)
    args = parser.parse_args(argv)
    broker_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    print(
        f"completion, one prefork worker -c 2, events {'on' if args.events else 'off'}"
        f"{', CPU hog on core 0' if args.hog else ''}: {args.executions} executions of the "
        f"3-state machine per type vs {args.noop_tasks} raw Celery no-op tasks"
    )
    with (
        _common.bench_database(args.postgres_url, "express") as database_url,
        _common.claimed_db(args.redis_db) as client,
        _common.cpu_hog(args.hog),
    ):
        settings = Settings(database_url=database_url, broker_url=broker_url)
        app = create_app(settings, set_as_current=False)
        try:
            runs = []
            for run in range(args.runs):
                runs.append(one_run(settings, client, app, args, run))
                report_run(run, runs[-1])
            report(runs, args)
        finally:
            app.close()


if __name__ == "__main__":
    main()
