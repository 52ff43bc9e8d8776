"""Recovery time after a worker dies, with the shipped defaults (issue 16).

    .venv/bin/python bench/recovery.py [--executions 400] [--kill-after 5]
        [--redis-db 12] [--postgres-url URL]

One prefork worker (``-c 2``) drains ``--executions`` executions of a 3-state
machine whose Task sleeps 0.2 s, published as ``run_executions`` messages of
``executions_per_message`` (10) ids. After ``--kill-after`` seconds (and once it holds
executions) the whole
worker (its session) gets SIGKILL; a second worker starts at once. This process
runs ``orchestrator.sweep`` every ``sweep_interval_seconds`` (5 s), as beat would.
Settings are the defaults: lease 60 s, recovery grace 300 s, Redis visibility
timeout 3600 s.

Printed: the time from the kill until the last execution the dead worker held
(RUNNING under its lease at the kill) was claimed again, against the goal of 2x
the lease; how many executions the sweeper re-published (each more than the ones
held is a duplicate); and that every execution SUCCEEDED with each state once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2

from orchestrator.handlers import handler

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import _common  # noqa: E402  # bench/ is not a package

SLOW_RESOURCE = "bench-slow"
MACHINE: dict[str, Any] = _common.three_states(SLOW_RESOURCE)


@handler(SLOW_RESOURCE)
def slow_handler(data: Any) -> Any:
    """The Task state's handler: 0.2 s of work."""
    time.sleep(0.2)
    return {"ok": True}


def worker(settings: Any, log_path: Path) -> Any:
    """One prefork worker, 2 processes, on the orchestrator's queues, default settings."""
    return _common.worker(
        broker_url=settings.broker_url,
        database_url=settings.database_url,
        queues=["critical", "default", "low"],
        handler_modules="recovery",
        heartbeat=True,
        log_path=log_path,
        name="bench-recovery",
        append=True,
    )


def held_at(dsn: str) -> dict[str, str]:
    """RUNNING executions and their lease owners, now."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id, lease_owner FROM executions WHERE status = 'RUNNING'")
            return dict(cur.fetchall())
    finally:
        conn.close()


def wait_held(dsn: str) -> dict[str, str]:
    """The RUNNING executions, once there are some (a loaded machine starts workers slowly)."""
    held = held_at(dsn)
    while not held:
        time.sleep(0.1)
        held = held_at(dsn)
    return held


def taken_over(dsn: str, held: dict[str, str]) -> int:
    """How many of ``held`` another owner has claimed since (or that ended)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM executions WHERE id = ANY(%s) "
                "AND (status <> 'RUNNING' OR lease_owner IS DISTINCT FROM "
                "(%s::jsonb ->> id))",
                (list(held), json.dumps(held)),
            )
            return int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()


def run(args: argparse.Namespace) -> None:
    """Measure and print."""
    from orchestrator.celery import create_app
    from orchestrator.client import Orchestrator
    from orchestrator.distributed.publish import publish_runs
    from orchestrator.settings import Settings
    from orchestrator.statemachine import StateMachine
    from orchestrator.store import NewExecution, Repository

    broker_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    with (
        _common.bench_database(args.postgres_url, "recovery") as database_url,
        _common.claimed_db(args.redis_db),
    ):
        settings = Settings(database_url=database_url, broker_url=broker_url)
        dsn = _common.libpq(database_url)
        app = create_app(settings, set_as_current=False)
        repo = Repository.from_settings(settings)
        version = StateMachine.create(
            "bench-recovery", MACHINE, repository=repo, settings=settings
        ).version_record
        rows = [NewExecution(name=f"r-{i}", input={"i": i}) for i in range(args.executions)]
        ids = list(repo.create_executions_bulk(version, rows).created.values())
        swept: list[int] = []
        stop = threading.Event()
        client = Orchestrator(settings)

        def beat() -> None:
            while not stop.wait(settings.sweep_interval_seconds):
                swept.append(int(client.sweep()["stalled"]))

        log_path = Path(f"/tmp/bench-recovery-{os.getpid()}.log")  # noqa: S108
        sweeper = threading.Thread(target=beat, daemon=True)
        sweeper.start()
        try:
            with worker(settings, log_path) as first:
                publish_runs(app, ids, per_message=settings.executions_per_message)
                time.sleep(args.kill_after)
                held = wait_held(dsn)
                os.killpg(first.pid, signal.SIGKILL)
                killed = time.monotonic()
                first.wait(10)
            with worker(settings, log_path):
                last = 0.0
                while taken_over(dsn, held) < len(held):
                    if time.monotonic() - killed > 600:
                        raise SystemExit("not recovered within 600 s")
                    time.sleep(0.2)
                last = time.monotonic() - killed
                deadline = time.monotonic() + 600
                while _unfinished(dsn) and time.monotonic() < deadline:
                    time.sleep(0.5)
        finally:
            stop.set()
            sweeper.join()
        report(settings, dsn, held, last, sum(swept), args.executions)
        repo.close()
        app.close()


def _unfinished(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM executions WHERE status <> 'SUCCEEDED'")
            return int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()


def report(
    settings: Any, dsn: str, held: dict[str, str], last: float, published: int, n: int
) -> None:
    """Print the figures and check every execution ended once."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM executions GROUP BY status")
            statuses = dict(cur.fetchall())
            cur.execute(
                "SELECT count(*) FROM (SELECT execution_id, state_name FROM history "
                "WHERE event_type = 'StateSucceeded' GROUP BY 1, 2 HAVING count(*) > 1) d"
            )
            doubled = int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()
    goal = 2 * settings.lease_seconds
    print(
        f"\nrecovery, defaults (lease {settings.lease_seconds:.0f} s, grace "
        f"{settings.recovery_grace_seconds:.0f} s, sweep every "
        f"{settings.sweep_interval_seconds:.0f} s, visibility "
        f"{settings.broker_visibility_timeout:.0f} s), {n} executions"
    )
    print(f"   held by the killed worker: {len(held)} executions")
    print(
        f"   kill -> last of them claimed again: {last:6.1f} s   (goal <= {goal:.0f} s: "
        f"{'met' if last <= goal else 'NOT met'})"
    )
    print(
        f"   re-published by the sweeper: {published} (duplicates: {max(0, published - len(held))})"
    )
    print(f"   statuses at the end: {statuses}; states recorded twice: {doubled}")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=400)
    parser.add_argument("--kill-after", type=float, default=5.0)
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--postgres-url", default=_common.DEFAULT_POSTGRES_URL)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
