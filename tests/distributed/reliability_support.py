"""Helpers of the reliability tests: a real cluster on the test's own database and Redis DB.

A :class:`Cluster` is one test's world: a fresh PostgreSQL database (with a
``ledger`` table the handlers write to), a private Redis database, the
three-state machine under test, source executions for its batches, worker
subprocesses running the real runtime (``tests.distributed.reliability_handlers``)
and optionally ``celery beat`` driving the real sweeper.

Everything the tests read back is read with short-lived psycopg2 connections,
so a restarted PostgreSQL costs a reconnect, never the test's own engine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from celery import Celery
from sqlalchemy import text
from sqlalchemy.engine import make_url

from orchestrator.batch import BatchResult
from orchestrator.distributed.publish import publish_runs
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter, NewExecution, Repository
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import REPO_ROOT, RedisDB, Worker, worker_environment

HANDLERS = "tests.distributed.reliability_handlers"
SOURCE_MACHINE = "reliability-source"
MACHINE_NAME = "reliability"

#: Two Task states with side effects, then the end: three history rows per execution.
MACHINE: dict[str, Any] = {
    "Comment": "Two recorded effects per execution (reliability tests)",
    "StartAt": "Reserve",
    "States": {
        "Reserve": {
            "Type": "Task",
            "Resource": "reliability.effect",
            "ResultPath": "$.reserve",
            "Next": "Charge",
        },
        "Charge": {
            "Type": "Task",
            "Resource": "reliability.effect",
            "ResultPath": "$.charge",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
TASK_STATES = ("Reserve", "Charge")
STATES = (*TASK_STATES, "Done")

SOURCE_DEFINITION: dict[str, Any] = {
    "StartAt": "Emit",
    "States": {"Emit": {"Type": "Pass", "End": True}},
}

LEDGER_DDL = """
CREATE TABLE ledger (
    idempotency_key text PRIMARY KEY,
    execution_id text NOT NULL,
    state_name text NOT NULL,
    calls integer NOT NULL,
    pids integer[] NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

TERMINAL = {str(s) for s in ExecutionStatus if s.is_terminal}


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq connection string."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own; return its rows."""
    conn = psycopg2.connect(dsn, connect_timeout=2)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def process_group(pgid: int) -> list[int]:
    """PIDs of the live processes in process group ``pgid`` (read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return sorted(members)


@dataclass(frozen=True, kw_only=True)
class LedgerReport:
    """What the handlers recorded for one batch.

    Attributes:
        effects: distinct (execution, state) pairs that had their effect.
        keys: distinct idempotency keys presented.
        repeated: (execution id, state, calls, pids) of every key presented more than once.
        split: (execution id, state) pairs that saw more than one key.
    """

    effects: int
    keys: int
    repeated: list[tuple[str, str, int, list[int]]]
    split: list[tuple[str, str]]


@dataclass(kw_only=True)
class Cluster:
    """One test's database, Redis DB, machine, workers and beat."""

    settings: Settings
    repo: Repository
    redis_db: RedisDB
    app: Celery
    start_worker: Callable[..., Worker]
    tmp_path: Path
    worker_env: dict[str, str]
    machine: StateMachine = field(init=False)
    source_machine: StateMachine = field(init=False)
    workers: list[Worker] = field(default_factory=list)
    beats: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dsn = libpq_dsn(self.settings.database_url)
        query(self.dsn, LEDGER_DDL)
        self.machine = StateMachine.create(
            MACHINE_NAME, MACHINE, repository=self.repo, settings=self.settings
        )
        self.source_machine = StateMachine.create(
            SOURCE_MACHINE, SOURCE_DEFINITION, repository=self.repo, settings=self.settings
        )

    # -- setting up -------------------------------------------------------------

    def add_sources(self, count: int) -> None:
        """Store ``count`` SUCCEEDED source executions, output ``{"n": i}``."""
        rows = [NewExecution(name=f"source-{i}", input={"n": i}) for i in range(count)]
        self.repo.create_executions_bulk(self.source_machine.version_record, rows)
        # The batch chains from finished sources; running 2,000 Pass machines
        # would only slow the set-up, so they are marked finished in SQL.
        with self.repo.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE executions SET status = 'SUCCEEDED', output = input, "
                    "ended_at = updated_at WHERE state_machine_id = :machine"
                ),
                {"machine": self.source_machine.version_record.state_machine_id},
            )

    def publish(self, execution_ids: Any, priority: str | int) -> int:
        """The batch's publisher: the test's app on the test's Redis DB."""
        return int(
            publish_runs(
                self.app, execution_ids, priority, per_message=self.settings.executions_per_message
            )
        )

    def run_batch(self, name_prefix: str = "batch") -> BatchResult:
        """``execute_batch`` over every source, distributed, priority ``default``."""
        return self.machine.execute_batch(
            ExecutionFilter(state_machine=SOURCE_MACHINE, status=ExecutionStatus.SUCCEEDED),
            name_prefix=name_prefix,
            priority="default",
            publisher=self.publish,
        )

    def start_workers(
        self, count: int, *, pool: str = "prefork", concurrency: int = 2
    ) -> list[Worker]:
        """Start ``count`` workers on all three queues; wait until all are ready."""
        started = [
            self.start_worker(
                self.redis_db.url,
                pool=pool,
                concurrency=concurrency,
                env=self.worker_env,
                wait=False,
            )
            for _ in range(count)
        ]
        for worker in started:
            worker.wait_ready()
        self.workers.extend(started)
        return started

    def start_beat(self) -> Worker:
        """Start ``celery beat`` (it schedules ``orchestrator.sweep``); stopped at teardown."""
        log_path = self.tmp_path / f"beat-{len(self.beats)}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "orchestrator", "beat", "-l", "INFO",
            "-s", str(self.tmp_path / f"beat-schedule-{uuid.uuid4().hex[:6]}"),
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603  # our own interpreter and arguments
                command,
                cwd=REPO_ROOT,
                env=worker_environment(self.redis_db.url, self.worker_env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        beat = Worker(process, log_path, "beat")
        self.beats.append(beat)
        deadline = time.monotonic() + 30
        while "beat: Starting" not in beat.log():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"celery beat did not start:\n{beat.log()[-3000:]}")
            time.sleep(0.05)
        return beat

    def plan_pause(self, state: str, *, nth: int, seconds: float) -> None:
        """Make the ``nth`` call of ``state``'s handler (all workers) pause ``seconds``."""
        self.redis_db.client.set("pause_plan", f"{state}|{nth}|{seconds}")

    def wait_paused(self, *, timeout: float = 30) -> tuple[int, str]:
        """Wait for a handler to pause (see ``reliability_handlers``): its PID and execution."""
        deadline = time.monotonic() + timeout
        while (popped := self.redis_db.client.lpop("paused")) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no handler paused within {timeout}s\n{self.logs_tail()}")
            time.sleep(0.02)
        pid, execution_id = popped.decode().split("|")
        return int(pid), execution_id

    def worker_of(self, pid: int) -> Worker:
        """The worker whose process group holds process ``pid``."""
        for worker in self.workers:
            if pid in process_group(worker.process.pid):
                return worker
        raise AssertionError(f"no worker runs process {pid}")

    def pids_of(self, worker: Worker) -> list[int]:
        """The live processes of ``worker`` (main process and pool children)."""
        return process_group(worker.process.pid)

    def count_status(self, batch_id: str, status: str) -> int:
        """How many executions of the batch are in ``status`` now."""
        rows = query(
            self.dsn,
            "SELECT count(*) FROM executions WHERE batch_id = %s AND status = %s",
            (batch_id, status),
        )
        return int(rows[0][0])

    def sweeper_log(self) -> str:
        """What the workers logged (the sweeper runs in them)."""
        return "".join(worker.log() for worker in self.workers)

    def stop(self) -> None:
        """Stop beat, then all workers at once: SIGTERM, and SIGKILL what is left after 5 s.

        The tests are over when this runs, so nothing is gained by waiting out a
        slow warm shutdown: billiard's pool children wait up to 30 s for the
        main process to read their last results (``_ensure_messages_consumed``),
        which a busy worker's shutdown sometimes never does.
        """
        for process in self.beats:
            process.stop()
        running = [w for w in self.workers if w.process.poll() is None]
        for worker in running:
            worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for worker in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            if worker.process.poll() is None:
                kill_group(worker)

    # -- reading back -------------------------------------------------------------

    def status_counts(self, batch_id: str) -> dict[str, int]:
        """The batch's executions by status."""
        rows = query(
            self.dsn,
            "SELECT status, count(*) FROM executions WHERE batch_id = %s GROUP BY status",
            (batch_id,),
        )
        return {str(status): int(n) for status, n in rows}

    def succeeded(self, batch_id: str) -> int:
        """How many of the batch's executions SUCCEEDED (0 while the database is down)."""
        try:
            return self.status_counts(batch_id).get("SUCCEEDED", 0)
        except psycopg2.OperationalError:
            return 0

    def wait_ended(self, batch_id: str, total: int, *, timeout: float) -> dict[str, int]:
        """Wait until all ``total`` executions of the batch ended; return the counts.

        Database errors (a restarting server) are waited out, within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg2.OperationalError):
                counts = self.status_counts(batch_id)
                if sum(n for s, n in counts.items() if s in TERMINAL) >= total:
                    return counts
            time.sleep(0.2)
        raise AssertionError(
            f"batch {batch_id}: not all {total} executions ended within {timeout}s: {counts}\n"
            + self.logs_tail()
        )

    def wait_succeeded(self, batch_id: str, at_least: int, *, timeout: float) -> None:
        """Wait until at least ``at_least`` executions of the batch SUCCEEDED."""
        deadline = time.monotonic() + timeout
        while self.succeeded(batch_id) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {at_least} succeeded within {timeout}s")
            time.sleep(0.02)

    def ledger(self, batch_id: str) -> LedgerReport:
        """What the handlers recorded for the batch's executions."""
        of_batch = "FROM ledger l JOIN executions e ON e.id = l.execution_id WHERE e.batch_id = %s"
        (effects, keys), *_ = query(
            self.dsn,
            "SELECT count(DISTINCT (l.execution_id, l.state_name)), count(*) " + of_batch,
            (batch_id,),
        )
        repeated = query(
            self.dsn,
            "SELECT l.execution_id, l.state_name, l.calls, l.pids "
            + of_batch
            + " AND l.calls > 1 ORDER BY 1, 2",
            (batch_id,),
        )
        split = query(
            self.dsn,
            "SELECT l.execution_id, l.state_name "
            + of_batch
            + " GROUP BY 1, 2 HAVING count(*) > 1",
            (batch_id,),
        )
        return LedgerReport(
            effects=int(effects),
            keys=int(keys),
            repeated=[(str(e), str(s), int(c), list(p)) for e, s, c, p in repeated],
            split=[(str(e), str(s)) for e, s in split],
        )

    def history_anomalies(self, batch_id: str) -> list[tuple[str, str | None, str, int]]:
        """History rows of the batch that are not exactly one StateSucceeded per state."""
        return [
            (str(e), s, str(t), int(n))
            for e, s, t, n in query(
                self.dsn,
                "SELECT h.execution_id, h.state_name, h.event_type, count(*) FROM history h "
                "JOIN executions e ON e.id = h.execution_id WHERE e.batch_id = %s "
                "GROUP BY 1, 2, 3 HAVING count(*) <> 1 OR h.event_type <> 'StateSucceeded' "
                "OR h.state_name NOT IN %s",
                (batch_id, STATES),
            )
        ]

    def history_rows(self, batch_id: str) -> int:
        """History rows of the batch's executions."""
        (n,), *_ = query(
            self.dsn,
            "SELECT count(*) FROM history h JOIN executions e ON e.id = h.execution_id "
            "WHERE e.batch_id = %s",
            (batch_id,),
        )
        return int(n)

    def committed_states(self, execution_id: str) -> list[str]:
        """The states in the execution's history so far, in order."""
        rows = query(
            self.dsn,
            "SELECT state_name FROM history WHERE execution_id = %s ORDER BY seq",
            (execution_id,),
        )
        return [str(state) for (state,) in rows]

    def calls(self, execution_id: str) -> dict[str, int]:
        """State name -> handler calls recorded for one execution."""
        rows = query(
            self.dsn,
            "SELECT state_name, sum(calls) FROM ledger WHERE execution_id = %s GROUP BY 1",
            (execution_id,),
        )
        return {str(state): int(n) for state, n in rows}

    def effects_by(self, pids: Iterable[int]) -> int:
        """Ledger rows whose first call came from one of ``pids``."""
        (n,), *_ = query(
            self.dsn, "SELECT count(*) FROM ledger WHERE pids[1] = ANY(%s)", (list(pids),)
        )
        return int(n)

    def execution_count(self) -> int:
        """Executions of the machine under test (all batches)."""
        (n,), *_ = query(
            self.dsn,
            "SELECT count(*) FROM executions WHERE state_machine_id = %s",
            (self.machine.version_record.state_machine_id,),
        )
        return int(n)

    def logs_tail(self, chars: int = 3000) -> str:
        """The end of every worker's and beat's log, for failure messages."""
        return "\n".join(
            f"--- {w.name} ---\n{w.log()[-chars:]}" for w in [*self.workers, *self.beats]
        )


def kill_group(worker: Worker) -> list[int]:
    """SIGKILL a worker's whole process group (main process and pool children).

    Returns:
        The PIDs that were in the group.
    """
    members = process_group(worker.process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    return members
