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
from unittest.mock import ANY

import pytest

from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import NewExecution, Repository
from orchestrator.types import TERMINAL_STATUSES, ExecutionStatus, is_start_ticket
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


def start(start_worker: Callable[..., Worker], client: Orchestrator, **tunables: Any) -> Worker:
    """A prefork worker, two processes, with the test's handlers and tunables."""
    env = {
        "ORCHESTRATOR_DATABASE_URL": client.settings.database_url,
        "ORCHESTRATOR_HANDLER_MODULES": HANDLERS,
        **{
            f"ORCHESTRATOR_{name.upper()}": str(value)
            for name, value in {**TUNABLES, **tunables}.items()
        },
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


def ledger_lines(ledger: Path) -> list[list[str]]:
    """The ledger's calls: execution id, pid of the pool process, lease owner seen."""
    if not ledger.exists():
        return []
    return [line.split() for line in ledger.read_text().splitlines() if line]


def test_a_started_express_execution_runs_under_its_start_ticket_with_no_claim(
    client: Orchestrator, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given a worker, and an EXPRESS machine
    start(start_worker, client)
    machine = client.create_state_machine("ticketed", THREE_STATES, machine_type="EXPRESS")
    ledger = tmp_path / "ledger"

    # When an execution is started for a worker and waited on
    started = machine.start_async({"i": 4, "ledger": str(ledger), "owner": True})
    done = client.execution(started.id).wait(60)

    # Then it was stored RUNNING under a start ticket, and the worker ran it under
    # that lease (no claim of its own), once, ending it with its final row only
    assert started.status == ExecutionStatus.RUNNING
    assert is_start_ticket(started.lease_owner)
    assert ledger_lines(ledger) == [[started.id, ANY, str(started.lease_owner)]]
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output["work"] == {"n": 8}
    assert done.lease_owner is None
    assert client.execution(done.id).history() == []


def test_a_started_express_execution_whose_pool_process_died_runs_again_at_once(
    client: Orchestrator, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given a worker running a started EXPRESS execution (a Task of 1 s), with a
    # lease of a minute
    start(start_worker, client, lease_seconds=60)
    minute = Orchestrator(client.settings.model_copy(update={"lease_seconds": 60}))
    machine = minute.create_state_machine("redelivered", THREE_STATES, machine_type="EXPRESS")
    ledger = tmp_path / "ledger"
    started = machine.start_async({"i": 5, "ledger": str(ledger), "sleep": 1, "owner": True})
    wait_until(lambda: len(ledger_lines(ledger)) == 1, timeout=60, what="the first call")

    # When the pool process running it is SIGKILLed (Celery puts the message back,
    # marked redelivered), long before the ticket's lease runs out
    os.kill(int(ledger_lines(ledger)[0][1]), signal.SIGKILL)
    done = client.execution(started.id).wait(60)
    minute.celery_app.close()

    # Then the next pool process claimed it from the ticket (no sweeper, no wait for
    # the lease) and ran it again from the start under its own lease
    first, second = ledger_lines(ledger)
    assert first[2] == started.lease_owner
    assert not is_start_ticket(second[2])
    assert done.status == ExecutionStatus.SUCCEEDED
    assert done.output["work"] == {"n": 10}


def test_started_express_executions_end_after_their_worker_is_killed(
    client: Orchestrator, start_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given four started EXPRESS executions on a worker, each Task taking 0.5 s
    worker = start(start_worker, client)
    machine = client.create_state_machine("ticket-kill", THREE_STATES, machine_type="EXPRESS")
    ledger = tmp_path / "ledger"
    ids = [machine.start_async({"i": i, "ledger": str(ledger), "sleep": 0.5}).id for i in range(4)]

    # When the whole worker is SIGKILLed while the first two run (their messages
    # stay unacknowledged in Redis for the visibility timeout, an hour)
    wait_until(lambda: sum(calls(ledger).values()) >= 2, timeout=60, what="two handler calls")
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)

    # And a new worker starts while the sweeper re-publishes what the dead one held
    start(start_worker, client)

    def all_ended() -> bool:
        client.sweep()
        return all(client.repository.get_execution(i).status in TERMINAL_STATUSES for i in ids)

    wait_until(all_ended, timeout=150, what="every execution to end", interval=0.5)

    # Then each one succeeded
    for execution_id in ids:
        stored = client.repository.get_execution(execution_id)
        assert stored.status == ExecutionStatus.SUCCEEDED, stored
        assert stored.output["work"] == {"n": 2 * stored.input["i"]}
