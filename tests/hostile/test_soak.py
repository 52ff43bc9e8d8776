"""Soak: 10,000 executions of random valid definitions through a real worker.

A prefork worker (2 processes) on a fresh PostgreSQL database and its own Redis
database runs them, published as batches. The worker's memory (the resident
set of the worker and its pool processes, summed) is measured once 1,000
executions ran (warm: imports, caches and pools filled) and again at the end; it
must stay flat within a generous bound, and nothing may be left RUNNING,
PENDING or WAITING.

Figures are printed (run with ``-s`` to see them): RSS warm and at the end, and
the time taken. About 60-150 s on a shared 2-CPU host.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter, Repository
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import RedisDB, Worker
from tests.distributed.conftest import redis_db as redis_db  # the fixture
from tests.distributed.conftest import start_worker as start_worker  # the fixture
from tests.hostile.definitions import input_of, random_definition

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TOTAL = 10_000
WARM_UP = 1_000
MACHINES = 8
SEED = 20261206

#: Growth of the worker's memory allowed between warm and the end: generous, since
#: allocators keep freed memory; a leak of even 1 KiB per execution would pass it.
ALLOWED_GROWTH = 1.25
ALLOWED_EXTRA_BYTES = 48 * 1024 * 1024

UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)


def rss_bytes(pid: int) -> int:
    """The resident set of a process and all its descendants, in bytes (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue  # it just exited
        total += next(
            int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")
        )
        todo.extend(int(child) for child in children)
    return total


def run_until_ended(
    repo: Repository,
    machines: list[StateMachine],
    numbers: range,
    *,
    prefix: str,
    timeout: float,
) -> None:
    """Start one execution per number (spread over the machines) and wait for all to end."""
    for index, machine in enumerate(machines):
        inputs = [input_of(n) for n in numbers if n % len(machines) == index]
        machine.execute_bulk(
            inputs,
            name_prefix=f"{prefix}-{index}",
            failure_warn_threshold=None,
            failure_pause_threshold=None,
        )
    deadline = time.monotonic() + timeout
    while repo.count_executions(ExecutionFilter(status=UNFINISHED)):
        if time.monotonic() > deadline:
            left = repo.count_executions(ExecutionFilter(status=UNFINISHED))
            pytest.fail(f"{left} executions still unfinished after {timeout}s")
        time.sleep(0.5)


def test_10000_random_executions_leave_nothing_running_and_the_worker_flat(
    postgres_url: str,
    redis_db: RedisDB,
    start_worker: Callable[..., Worker],
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(database_url=postgres_url, broker_url=redis_db.url)
    repo = Repository.from_settings(settings)
    rng = random.Random(SEED)
    machines = [
        StateMachine.create(f"soak-{i}", random_definition(rng), repository=repo, settings=settings)
        for i in range(MACHINES)
    ]
    worker = start_worker(
        redis_db.url,
        pool="prefork",
        concurrency=2,
        # The real runtime: no test tasks (their fake runner would replace it), no handlers.
        env={"ORCHESTRATOR_DATABASE_URL": postgres_url, "ORCHESTRATOR_HANDLER_MODULES": ""},
    )
    started = time.monotonic()

    run_until_ended(repo, machines, range(WARM_UP), prefix="warm", timeout=240)
    warm = rss_bytes(worker.process.pid)
    run_until_ended(repo, machines, range(WARM_UP, TOTAL), prefix="soak", timeout=480)
    end = rss_bytes(worker.process.pid)
    took = time.monotonic() - started

    counts: dict[Any, int] = {
        status: repo.count_executions(ExecutionFilter(status=status)) for status in ExecutionStatus
    }
    repo.close()
    with capsys.disabled():
        print(
            f"\nsoak: {TOTAL} executions in {took:.1f} s ({TOTAL / took:.0f}/s); worker RSS "
            f"warm {warm / 2**20:.1f} MiB, end {end / 2**20:.1f} MiB; "
            + ", ".join(f"{s}={n}" for s, n in counts.items() if n)
        )
    assert sum(counts.values()) == TOTAL
    assert all(counts[status] == 0 for status in UNFINISHED), counts
    assert counts[ExecutionStatus.SUCCEEDED] > 0
    assert end <= warm * ALLOWED_GROWTH + ALLOWED_EXTRA_BYTES, (warm, end)
