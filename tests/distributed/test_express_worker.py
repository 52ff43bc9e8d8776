"""EXPRESS executions on real Celery workers: ``start_sync``, and a SIGKILLed worker.

Real PostgreSQL, real Redis, real ``celery -A orchestrator worker`` subprocesses.
An EXPRESS execution commits nothing until its end, so a worker killed mid-run
leaves it RUNNING; recovery (the real sweeper, called here) publishes it again and
it runs again from its start: at least once, every execution ends.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import NewExecution, Repository
from orchestrator.types import TERMINAL_STATUSES, ExecutionStatus
from tests.support import wait_until

from .conftest import RedisDB, Worker

HANDLERS = "tests.distributed.express_handlers"

THREE_STATES: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": 1, "ResultPath": "$.prepared", "Next": "Work"},
        "Work": {
            "Type": "Task",
            "Resource": "tests.express.work",
            "ResultPath": "$.work",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}

#: Short leases and grace, so that recovery after the kill takes seconds.
TUNABLES: dict[str, Any] = {
    "lease_seconds": 2,
    "recovery_grace_seconds": 1,
    "executions_per_message": 5,
}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def client(postgres_url: str, redis_db: RedisDB) -> Iterator[Orchestrator]:
    """A client on the test's database and Redis, with the short leases."""
    settings = Settings(database_url=postgres_url, broker_url=redis_db.url, **TUNABLES)
    repository = Repository.from_settings(settings)
    orchestrator = Orchestrator(settings, repository=repository)
    yield orchestrator
    orchestrator.celery_app.close()
    repository.close()


def start(start_worker: Callable[..., Worker], client: Orchestrator) -> Worker:
    """A prefork worker, two processes, with the test's handlers and tunables."""
    env = {
        "ORCHESTRATOR_DATABASE_URL": client.settings.database_url,
        "ORCHESTRATOR_HANDLER_MODULES": HANDLERS,
        **{f"ORCHESTRATOR_{name.upper()}": str(value) for name, value in TUNABLES.items()},
    }
    return start_worker(client.settings.broker_url, pool="prefork", concurrency=2, env=env)


def calls(ledger: Path) -> Counter[str]:
    """How often the handler ran for each execution."""
    if not ledger.exists():
        return Counter()
    return Counter(line.split()[0] for line in ledger.read_text().splitlines() if line)


def test_start_sync_through_a_worker_returns_the_outcome(
    client: Orchestrator, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    start(start_worker, client)
    machine = client.create_state_machine("sync", THREE_STATES, machine_type="EXPRESS")
    ledger = tmp_path / "ledger"

    done = machine.start_sync({"i": 21, "ledger": str(ledger)}, on_worker=True, timeout=60)

    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output["work"] == {"n": 42}
    assert client.execution(done.id).history() == []
    assert calls(ledger) == {done.id: 1}


def test_every_express_execution_ends_after_its_worker_is_killed(
    client: Orchestrator, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given twenty EXPRESS executions, five to a message, each Task taking 0.3 s
    worker = start(start_worker, client)
    machine = client.create_state_machine("killed", THREE_STATES, machine_type="EXPRESS")
    ledger = tmp_path / "ledger"
    rows = [
        NewExecution(name=f"k-{i}", input={"i": i, "ledger": str(ledger), "sleep": 0.3})
        for i in range(20)
    ]
    ids = list(
        client.repository.create_executions_bulk(machine.version_record, rows).created.values()
    )
    client.publisher(ids, "default")

    # When the worker is SIGKILLed while its first messages run
    wait_until(lambda: sum(calls(ledger).values()) >= 4, timeout=60, what="four handler calls")
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)
    cut_short = {
        execution_id
        for execution_id in calls(ledger)
        if client.repository.get_execution(execution_id).status not in TERMINAL_STATUSES
    }

    # And a new worker starts while the sweeper re-publishes what the dead one held
    start(start_worker, client)

    def all_ended() -> bool:
        client.sweep()
        counts = client.repository.status_counts(machine._filter(None, {}))
        return sum(n for s, n in counts.items() if s in TERMINAL_STATUSES) == len(ids)

    wait_until(all_ended, timeout=150, what="every execution to end", interval=0.5)

    # Then every execution succeeded with its final row only; those cut short ran again
    assert cut_short, "the kill came after every started execution had ended"
    ran = calls(ledger)
    for execution_id in ids:
        stored = client.repository.get_execution(execution_id)
        assert stored.status == ExecutionStatus.SUCCEEDED, stored
        assert stored.output["work"] == {"n": 2 * stored.input["i"]}
        assert client.repository.history(execution_id) == []
        assert ran[execution_id] >= 1
    assert all(ran[execution_id] >= 2 for execution_id in cut_short)
