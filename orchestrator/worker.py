"""What the Celery tasks run in a worker process, over the worker's one client.

``orchestrator.distributed.tasks`` names these entry points by module and
function and imports them when a task first runs, so the task module (and the
app ``celery -A orchestrator`` loads) imports without the database layer, and
the distributed layer never imports the client above it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from orchestrator.client import Orchestrator
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.store import Execution
from orchestrator.store.records import execution_from_json

log = logging.getLogger("orchestrator.worker")


def worker_client(settings: Settings | None = None) -> Orchestrator:
    """This worker process's client (the shared one of its settings)."""
    return Orchestrator.shared(settings)


def worker_runner() -> Runner:
    """The worker's runner; a Distributed Map it advances publishes its children."""
    client = worker_client()
    runner = client.runner
    if runner.map_runs.publisher is None:
        runner.map_runs.publisher = client.publisher
    return runner


def advance_from_task(
    execution_id: str,
    event: dict[str, Any] | None = None,
    *,
    ticket: str | None = None,
    start: str | None = None,
    redelivered: bool = False,
) -> dict[str, Any]:
    """What ``orchestrator.run_execution`` runs: advance one execution, report briefly.

    ``event`` is accepted for compatibility and ignored: what woke an execution
    (a fired timer, a consumed message) is read from the database, which is the
    source of truth, not from the message.

    ``ticket`` and ``start``: an EXPRESS execution started under a start ticket,
    and its row as stored (``Runner.advance_started``); a row that cannot be read
    is ignored (the execution is then claimed from the ticket).
    """
    runner = worker_runner()
    if ticket is not None:
        execution = runner.advance_started(
            execution_id, ticket, _started_row(execution_id, start), redelivered=redelivered
        )
    else:
        execution = runner.advance(execution_id)
    if execution is None:
        return runner.not_claimed(execution_id)
    return _summary(execution)


def advance_many_from_task(
    execution_ids: Sequence[str], transient: Callable[[BaseException], bool]
) -> tuple[dict[str, int], list[str], BaseException | None]:
    """What ``orchestrator.run_executions`` runs: advance a message's executions as a group.

    Returns:
        Executions by the status they were left in (a small summary for Flower;
        ``NOT_CLAIMED`` and ``ERROR`` included), the ids to retry and why.
    """
    runner = worker_runner()
    outcome = runner.advance_many(execution_ids, transient=transient)
    summary: dict[str, int] = {}
    for execution_id in execution_ids:
        if execution_id in outcome.retry:
            continue
        if execution_id in outcome.errors:
            status = "ERROR"
        else:
            execution = outcome.executions.get(execution_id)
            if execution is None:
                status = str(runner.not_claimed(execution_id)["status"])
            else:
                status = str(execution.status)
        summary[status] = summary.get(status, 0) + 1
    return summary, outcome.retry, outcome.cause


def _started_row(execution_id: str, start: str | None) -> Execution | None:
    if start is None:
        return None
    try:
        return execution_from_json(start)
    except ValueError as exc:
        log.warning(
            "the start message of %s carries an unreadable row (%s); claiming it instead",
            execution_id,
            exc,
            extra={"action": "run_execution.start_row", "execution_id": execution_id},
        )
        return None


def _summary(execution: Execution) -> dict[str, Any]:
    return {
        "execution_id": execution.id,
        "status": str(execution.status),
        "state": execution.current_state,
    }


def sweep() -> dict[str, Any]:
    """What ``orchestrator.sweep`` runs: fire due timers, re-publish stalled executions."""
    return worker_client().sweep()


def purge(older_than_days: float, statuses: list[str] | None = None) -> dict[str, Any]:
    """What ``orchestrator.purge`` runs: delete executions that ended long enough ago.

    Running and waiting executions are never touched; deletes go in chunks of
    ``page_size``. Returns what was done (for Flower).
    """
    client = worker_client()
    deleted = client.purge(
        timedelta(days=older_than_days),
        statuses=statuses,
        chunk_size=client.settings.page_size,
    )
    log.info(
        "purge deleted %d executions that ended more than %s days ago",
        deleted,
        older_than_days,
        extra={"action": "purge", "deleted": deleted, "older_than_days": older_than_days},
    )
    return {"deleted": deleted, "older_than_days": older_than_days}


__all__ = [
    "advance_from_task",
    "advance_many_from_task",
    "purge",
    "sweep",
    "worker_client",
    "worker_runner",
]
