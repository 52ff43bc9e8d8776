"""The top-level functions: thin conveniences over a client.

    from orchestrator import pause_batch, send_message

    send_message("order", "o-1", {"paid": True})
    pause_batch(batch_id, reason="night freeze")

Each builds (or takes) a client with :func:`~orchestrator.client.client_for`: the
shared client of the environment's settings, or one over the explicit parts
given, and calls it. New code can hold an :class:`~orchestrator.client.Orchestrator`
and use its handles directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.batch.control import SteeringReport
from orchestrator.client import Orchestrator, client_for
from orchestrator.distributed.publish import Publisher
from orchestrator.settings import Settings
from orchestrator.store import Execution, Page, Repository
from orchestrator.types import ExecutionStatus

if TYPE_CHECKING:
    from orchestrator.runtime import Runner
    from orchestrator.statemachine import StateMachine


def send_message(
    key: str,
    value: Any,
    data: Any = None,
    *,
    repository: Repository | None = None,
    settings: Settings | None = None,
    runner: Runner | None = None,
) -> list[str]:
    """Deliver a message to every execution waiting on (``key``, ``value``), once each.

    Each resumed execution is then advanced in this process (see
    ``Orchestrator.send_message``).

    Returns:
        The ids of the executions the message resumed.

    Raises:
        MessageRefused: nothing waits for it; the reason says whether a wait timed out.
    """
    client = client_for(repository=repository, settings=settings, runner=runner)
    return client.send_message(key, value, data)


def purge_executions(
    older_than: timedelta,
    *,
    statuses: Sequence[ExecutionStatus | str] | None = None,
    chunk_size: int = 1000,
    repository: Repository | None = None,
    settings: Settings | None = None,
) -> int:
    """Delete executions that ended more than ``older_than`` ago, with their history.

    See ``Orchestrator.purge``. Returns how many executions were deleted.
    """
    client = client_for(repository=repository, settings=settings)
    return client.purge(older_than, statuses=statuses, chunk_size=chunk_size)


def repository_for(settings: Settings | None = None) -> Repository:
    """The repository of the shared client of ``settings`` (default: the environment's)."""
    return Orchestrator.shared(settings).repository


def batch_machine(
    batch_id: str, *, repository: Repository | None = None, settings: Settings | None = None
) -> StateMachine:
    """The state machine version a batch runs (to continue it); see ``BatchHandle.machine``."""
    return client_for(repository=repository, settings=settings).batch(batch_id).machine()


def pause_batch(
    batch_id: str, *, reason: str | None = None, repository: Repository | None = None
) -> SteeringReport:
    """Pause a batch: nothing more is published, unstarted executions are held.

    Safe to call twice and from any process (see ``BatchHandle.pause``).
    """
    return client_for(repository=repository).batch(batch_id).pause(reason=reason)


def resume_batch(
    batch_id: str,
    *,
    arm_guard: bool | None = None,
    reason: str | None = None,
    lead: bool = False,
    inputs: Iterable[Any] | None = None,
    repository: Repository | None = None,
    settings: Settings | None = None,
    publisher: Publisher | None = None,
) -> SteeringReport:
    """Resume a paused batch where it stopped; the held executions are published again.

    See ``BatchHandle.resume`` (``lead``: lead the batch here if its leader died).
    """
    client = client_for(repository=repository, settings=settings, publisher=publisher)
    handle = client.batch(batch_id)
    return handle.resume(arm_guard=arm_guard, reason=reason, lead=lead, inputs=inputs)


def cancel_batch(
    batch_id: str, *, reason: str | None = None, repository: Repository | None = None
) -> SteeringReport:
    """Cancel a batch: nothing more is created, unstarted executions end ABORTED.

    The report's ``started`` counts those that had started (they run to their end).
    """
    return client_for(repository=repository).batch(batch_id).cancel(reason=reason)


def describe_batch(batch_id: str, *, repository: Repository | None = None) -> SteeringReport:
    """Where a batch stands: status, reason, guard, leader, executions by status."""
    return client_for(repository=repository).batch(batch_id).describe()


def batch_failures(
    batch_id: str,
    *,
    archived: bool | None = False,
    limit: int = 100,
    cursor: str | None = None,
    repository: Repository | None = None,
) -> Page[Execution]:
    """One page of a batch's failed executions with their errors (archived: see the flag)."""
    handle = client_for(repository=repository).batch(batch_id)
    return handle.failures(archived=archived, limit=limit, cursor=cursor)


def redrive_batch_failures(
    batch_id: str,
    *,
    local: bool = False,
    repository: Repository | None = None,
    settings: Settings | None = None,
    publisher: Publisher | None = None,
    runner: Runner | None = None,
) -> int:
    """Redrive every failure of a batch that is not archived; return how many.

    They are published to the workers, or (``local=True``) run in this process.
    """
    client = client_for(
        repository=repository, settings=settings, publisher=publisher, runner=runner
    )
    return client.batch(batch_id).redrive(local=local)


def archive_batch_failures(batch_id: str, *, repository: Repository | None = None) -> int:
    """Archive a batch's failures so far (nothing is deleted); return how many."""
    return client_for(repository=repository).batch(batch_id).archive()


__all__ = [
    "archive_batch_failures",
    "batch_failures",
    "batch_machine",
    "cancel_batch",
    "describe_batch",
    "pause_batch",
    "purge_executions",
    "redrive_batch_failures",
    "repository_for",
    "resume_batch",
    "send_message",
]
