"""Steering a batch while it runs: pause, resume, cancel, and its failed executions.

Each call is a plain repository call that any process can make, any number of
times; the batch's leader (:mod:`orchestrator.batch.leader`) acts on the status
it reads back from the batch row:

- :func:`pause` marks the batch PAUSED and holds its executions that have not
  started (a worker cannot claim them); the leader publishes nothing more.
- :func:`resume` marks it RUNNING again (COMPLETED if everything was already
  published), releases the held executions and publishes them again (their
  messages were dropped while they were held). A leader that is alive goes on
  by itself; if the leader died, :func:`resume` says so (``needs_leader``), and
  ``continue_batch`` (in :mod:`orchestrator.batch`) takes the lead from the
  position stored on the batch row.
- :func:`cancel` marks it CANCELLED and aborts every execution no worker has
  claimed yet (error ``BatchCancelled``); those that had started run to their end.
- :func:`failures` lists failed executions with their errors,
  :func:`redrive_failures` redrives them, :func:`archive_failures` archives them
  (nothing is deleted).

The failure guard that pauses a batch by itself is :mod:`orchestrator.batch.guard`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.batch.guard import GuardSettings, GuardState, Verdict
from orchestrator.batch.leader import (
    DEFAULT_LEADER_TIMEOUT,
    Leader,
    Slice,
    leader_alive,
)
from orchestrator.distributed.publish import Publisher, publish_by_priority
from orchestrator.errors import LeadLost
from orchestrator.store import Batch, Execution, Page, Repository
from orchestrator.types import BatchStatus, ExecutionStatus

log = logging.getLogger("orchestrator.batch")

# -- steering from anywhere -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SteeringReport:
    """What a pause, resume or cancel did, and where the batch stands.

    Attributes:
        batch: the batch after the call.
        changed: whether this call changed the batch's status.
        held: executions this call held (pause).
        released: held executions this call released (resume).
        published: released executions published again (resume, distributed).
        aborted: unstarted executions this call aborted (cancel).
        counts: the batch's executions by status, plus ``held``, ``unstarted``
            and ``cancelled`` (see ``Repository.batch_execution_counts``).
        started: executions that had started (claimed by a worker at some point).
        leader_alive: whether the batch's leader beat within the leader timeout.
        needs_leader: the batch should go on but no leader is alive: call
            ``continue_batch`` (``orchestrator batch resume`` does).
    """

    batch: Batch
    changed: bool
    held: int = 0
    released: int = 0
    published: int = 0
    aborted: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    started: int = 0
    leader_alive: bool = False
    needs_leader: bool = False


def pause(repository: Repository, batch_id: str, *, reason: str | None = None) -> SteeringReport:
    """Pause a batch: nothing more is published, unstarted executions are held.

    Safe to call twice (the second call holds nothing more) and from any process.
    A CANCELLED or FAILED batch is left as it is (``changed`` is False).

    Raises:
        BatchNotFound: no batch has this id.
    """
    before = repository.get_batch(batch_id).status
    batch, held = repository.pause_batch(batch_id, reason=_clean(reason, "paused by request"))
    if held:
        log.info(
            "batch %s paused, %d executions held", batch_id, held, extra=_extra("pause", batch_id)
        )
    return _report(repository, batch, changed=batch.status != before, held=held)


def resume(
    repository: Repository,
    batch_id: str,
    *,
    publisher: Publisher | None = None,
    arm_guard: bool | None = None,
    reason: str | None = None,
    leader_timeout: float = DEFAULT_LEADER_TIMEOUT,
) -> SteeringReport:
    """Resume a paused batch where it stopped.

    The held executions are released; a distributed batch's are published again
    with ``publisher`` (without one they wait for the recovery sweep). The
    failure guard starts afresh; ``arm_guard=False`` keeps it from pausing the
    batch again (True arms it again; default unchanged). A leader that is alive
    goes on by itself; otherwise ``needs_leader`` is True and ``continue_batch``
    must take the lead. Safe to call twice and from any process; resuming a
    FAILED batch lets a new leader try again from its stored position.

    Raises:
        BatchNotFound: no batch has this id.
        ValueError: the batch was cancelled.
    """
    before = repository.get_batch(batch_id).status
    batch, released = repository.resume_batch(
        batch_id, reason=_clean(reason, "resumed by request"), arm_guard=arm_guard
    )
    published = 0
    if released and publisher is not None and _mode(batch) == "distributed":
        published = publish_by_priority(publisher, released)
    log.info(
        "batch %s resumed: %d released, %d published",
        batch_id,
        len(released),
        published,
        extra=_extra("resume", batch_id),
    )
    report = _report(
        repository,
        batch,
        changed=batch.status != before,
        released=len(released),
        published=published,
        leader_timeout=leader_timeout,
    )
    exhausted = isinstance(batch.position, dict) and bool(batch.position.get("exhausted"))
    needs = batch.status == BatchStatus.RUNNING and not exhausted and not report.leader_alive
    return _replace(report, needs_leader=needs)


def cancel(repository: Repository, batch_id: str, *, reason: str | None = None) -> SteeringReport:
    """Cancel a batch: nothing more is created, unstarted executions end ABORTED.

    An execution no worker has claimed yet (held or queued) is aborted with the
    error ``BatchCancelled``; the report's ``started`` counts those that had
    started, which run to their end. Safe to call twice and from any process.

    Raises:
        BatchNotFound: no batch has this id.
    """
    before = repository.get_batch(batch_id).status
    text = _clean(reason, f"batch {batch_id} was cancelled before this execution started")
    batch, aborted = repository.cancel_batch(batch_id, reason=text)
    log.info(
        "batch %s cancelled, %d unstarted executions aborted",
        batch_id,
        aborted,
        extra=_extra("cancel", batch_id),
    )
    return _report(repository, batch, changed=batch.status != before, aborted=aborted)


def describe(
    repository: Repository, batch_id: str, *, leader_timeout: float = DEFAULT_LEADER_TIMEOUT
) -> SteeringReport:
    """Where a batch stands (what ``orchestrator batch show`` prints); changes nothing.

    Raises:
        BatchNotFound: no batch has this id.
    """
    batch = repository.get_batch(batch_id)
    report = _report(repository, batch, changed=False, leader_timeout=leader_timeout)
    exhausted = isinstance(batch.position, dict) and bool(batch.position.get("exhausted"))
    needs = batch.status == BatchStatus.RUNNING and not exhausted and not report.leader_alive
    return _replace(report, needs_leader=needs)


def failures(
    repository: Repository,
    batch_id: str,
    *,
    archived: bool | None = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Execution]:
    """One page of the batch's failed executions (with ``error`` and ``cause``), oldest first.

    ``archived``: False (default) the failures not archived, True the archived
    ones, None all. Executions a cancel aborted before they started are not
    failures (``describe`` counts them as ``cancelled``).

    Raises:
        BatchNotFound: no batch has this id.
    """
    return repository.batch_failures(batch_id, archived=archived, limit=limit, cursor=cursor)


def redrive_failures(
    repository: Repository,
    batch_id: str,
    *,
    publisher: Publisher | None = None,
    advance: Callable[[str], Any] | None = None,
) -> int:
    """Redrive every failure of the batch that is not archived, from where it stopped.

    The executions are reopened (PENDING, cursor kept) in one statement, then
    published with ``publisher`` or advanced one by one in this process with
    ``advance`` (an execution id -> anything). Without either, the recovery
    sweep publishes them after its grace period.

    Returns:
        How many executions were redriven.

    Raises:
        BatchNotFound: no batch has this id.
    """
    reopened = repository.redrive_batch_failures(batch_id)
    if publisher is not None:
        publish_by_priority(publisher, reopened)
    elif advance is not None:
        for execution_id, _ in reopened:
            advance(execution_id)
    log.info(
        "batch %s: %d failures redriven",
        batch_id,
        len(reopened),
        extra=_extra("redrive", batch_id),
    )
    return len(reopened)


def archive_failures(repository: Repository, batch_id: str) -> int:
    """Archive the batch's failures so far; nothing is deleted (see ``failures``).

    Returns:
        How many failures this call archived (0 when called again).

    Raises:
        BatchNotFound: no batch has this id.
    """
    _, archived = repository.archive_batch_failures(batch_id)
    return archived


def _report(
    repository: Repository,
    batch: Batch,
    *,
    changed: bool,
    leader_timeout: float = DEFAULT_LEADER_TIMEOUT,
    held: int = 0,
    released: int = 0,
    published: int = 0,
    aborted: int = 0,
) -> SteeringReport:
    counts = repository.batch_execution_counts(batch.id)
    total = sum(n for key, n in counts.items() if key in ExecutionStatus.__members__)
    started = total - counts["cancelled"] - counts["held"] - counts["unstarted"]
    return SteeringReport(
        batch=batch,
        changed=changed,
        counts=counts,
        started=started,
        leader_alive=leader_alive(batch, timeout=leader_timeout),
        held=held,
        released=released,
        published=published,
        aborted=aborted,
    )


def _replace(report: SteeringReport, **changes: Any) -> SteeringReport:
    from dataclasses import replace

    return replace(report, **changes)


def _mode(batch: Batch) -> str:
    options = batch.options if isinstance(batch.options, dict) else {}
    return str(options.get("mode", "distributed"))


def _clean(reason: str | None, default: str) -> str:
    # PostgreSQL text cannot hold NUL; a reason is for people, so it is kept short.
    return (reason or default).replace("\x00", "")[:2000]


def _extra(action: str, batch_id: str) -> dict[str, Any]:
    return {"action": f"batch_{action}", "batch_id": batch_id}


__all__ = [
    "DEFAULT_LEADER_TIMEOUT",
    "GuardSettings",
    "GuardState",
    "LeadLost",
    "Leader",
    "Publisher",
    "Slice",
    "SteeringReport",
    "Verdict",
    "archive_failures",
    "cancel",
    "describe",
    "failures",
    "leader_alive",
    "pause",
    "redrive_failures",
    "resume",
]
