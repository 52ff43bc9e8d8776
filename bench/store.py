"""Stored executions on PostgreSQL: executions/s and SQL per execution, beside pgbench.

    .venv/bin/python bench/store.py [--executions 500] [--postgres-url URL]

Runs a 5-state machine (Pass, Task with a no-op handler, Choice, Pass, Succeed)
in-process through ``StateMachine.start`` on a fresh database it creates and
drops (``orchestrator_bench_<pid>``), counting SQL statements
(``before_cursor_execute``), transactions (``begin``) and commits (``commit``) on
the repository's engine. The baseline, measured in the same run on a separate
throwaway database, is pgbench's simple-update TPS with one client
(``pgbench -i``, then ``pgbench -N -c 1 -T 10``).

Goals (issue 4): executions/s >= pgbench TPS / (states + 1), that is a ratio >= 1;
and at most one (write) transaction per state.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg2 import sql
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from orchestrator.handlers import HandlerRegistry
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter, Repository
from orchestrator.store.migrations import upgrade
from orchestrator.types import ExecutionStatus

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_POSTGRES_URL, admin  # bench/ is not a package

STATES = 5
WARMUP = 20

MACHINE: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": 1, "ResultPath": "$.prepared", "Next": "Work"},
        "Work": {"Type": "Task", "Resource": "noop", "ResultPath": "$.work", "Next": "Route"},
        "Route": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.prepared", "NumericEquals": 1, "Next": "Finish"}],
            "Default": "Finish",
        },
        "Finish": {"Type": "Pass", "Result": "done", "ResultPath": "$.status", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


# -- databases ------------------------------------------------------------------


@contextmanager
def throwaway_database(server: URL, name: str) -> Iterator[URL]:
    """Create database ``name`` on ``server``; drop it on the way out."""
    admin(server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin(server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name)
    finally:
        admin(
            server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# -- the orchestrator side --------------------------------------------------------


class SqlCounter:
    """Counts statements, transactions and commits on an engine (and its option copies)."""

    def __init__(self, repo: Repository) -> None:
        self.counts: Counter[str] = Counter()
        self.sql_seconds = 0.0
        self._started = 0.0
        engine = repo.engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "begin", lambda conn: self.counts.update(["transactions"]))
        event.listen(engine, "commit", lambda conn: self.counts.update(["commits"]))

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.counts["statements"] += 1
        self.counts[statement.lstrip().split(None, 1)[0].upper()] += 1
        self._started = time.perf_counter()

    def _after(self, *args: Any) -> None:
        # Time from the driver's execute call to its return: round trip plus server work.
        self.sql_seconds += time.perf_counter() - self._started


def run_executions(url: URL, executions: int) -> dict[str, Any]:
    """Run ``executions`` executions in-process; return the rate and SQL counts."""
    database_url = url.render_as_string(hide_password=False)
    upgrade(database_url)
    settings = Settings(database_url=database_url)
    repo = Repository.from_settings(settings)
    try:
        handlers = HandlerRegistry()
        handlers.register("noop", lambda data: {"ok": True})
        created = StateMachine.create("bench", MACHINE, repository=repo, settings=settings)
        runner = Runner(repo, settings=settings, handlers=handlers)
        machine = StateMachine(
            created.version_record, repository=repo, settings=settings, runner=runner
        )
        for i in range(WARMUP):
            machine.start({"i": -i})
        counter = SqlCounter(repo)
        started = time.perf_counter()
        for i in range(executions):
            machine.start({"i": i})
        elapsed = time.perf_counter() - started
        counts = dict(counter.counts)
        sql_seconds = counter.sql_seconds
        succeeded = repo.count_executions(
            ExecutionFilter(state_machine="bench", status=ExecutionStatus.SUCCEEDED)
        )
    finally:
        repo.close()
    if succeeded != executions + WARMUP:
        raise SystemExit(f"only {succeeded} of {executions + WARMUP} executions succeeded")
    return {
        "per_second": executions / elapsed,
        "elapsed": elapsed,
        "counts": counts,
        "sql_seconds": sql_seconds,
    }


# -- the pgbench baseline ----------------------------------------------------------


def pgbench_tps(url: URL, seconds: int) -> float:
    """pgbench's simple-update TPS with one client on database ``url``."""
    binary = shutil.which("pgbench")
    if binary is None:
        raise SystemExit("pgbench not found on PATH")
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    database = url.database or ""
    subprocess.run(  # noqa: S603  # pgbench from PATH, our arguments
        [binary, *args, "-i", "-q", database], check=True, capture_output=True, env=env
    )
    result = subprocess.run(  # noqa: S603
        [binary, *args, "-N", "-c", "1", "-T", str(seconds), database],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    found = re.search(r"tps = ([0-9.]+)", result.stdout)
    if found is None:
        raise SystemExit(f"no 'tps =' in pgbench's output:\n{result.stdout}")
    return float(found.group(1))


# -- report ----------------------------------------------------------------------


def report(executions: int, run: dict[str, Any], tps: float) -> None:
    counts: dict[str, int] = run["counts"]
    per = {key: value / executions for key, value in counts.items()}
    rate = run["per_second"]
    budget = tps / (STATES + 1)
    kinds = ", ".join(
        f"{kind} {per[kind]:.1f}"
        for kind in sorted(per)
        if kind not in ("statements", "transactions", "commits")
    )
    print(f"machine: {STATES} states (Pass, Task no-op, Choice, Pass, Succeed), in-process")
    print(f"executions: {executions} in {run['elapsed']:.2f} s = {rate:,.1f} executions/s")
    print(f"SQL statements per execution: {per.get('statements', 0):.1f} ({kinds})")
    print(
        f"time in statements: {1000 * run['sql_seconds'] / executions:.2f} ms of "
        f"{1000 * run['elapsed'] / executions:.2f} ms per execution "
        "(the rest: Python, commits, connection checkout)"
    )
    print(
        f"transactions per execution: {per.get('transactions', 0):.1f} "
        f"(commits {per.get('commits', 0):.1f}) for {STATES} states "
        f"-> {per.get('commits', 0) / STATES:.2f} commits per state (goal <= 1)"
    )
    print(f"baseline: pgbench -N -c 1 simple-update TPS = {tps:,.1f}")
    print(
        f"ratio: executions/s / (TPS / (states + 1)) = {rate:,.1f} / {budget:,.1f} "
        f"= {rate / budget:.2f} (goal >= 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=500, help="measured executions")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server to use")
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="pgbench -T")
    args = parser.parse_args()
    server = make_url(args.postgres_url)
    pid = os.getpid()
    with throwaway_database(server, f"orchestrator_bench_{pid}") as url:
        run = run_executions(url, args.executions)
    with throwaway_database(server, f"orchestrator_pgbench_{pid}") as url:
        tps = pgbench_tps(url, args.pgbench_seconds)
    report(args.executions, run, tps)


if __name__ == "__main__":
    main()
