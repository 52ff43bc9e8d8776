"""Enumerations shared by the store, the runtime and the front ends.

They are stored as their string values, so renaming a member is a migration.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    """Where an execution stands, as AWS Step Functions names it (plus ``WAITING``).

    ``PENDING``: created or woken, waiting for a worker to claim it.
    ``RUNNING``: claimed by a worker that holds its lease.
    ``WAITING``: parked on a timer or a message correlation; no worker holds it.
    The other four are terminal.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"

    @property
    def is_terminal(self) -> bool:
        """True for a status an execution never leaves (except by redrive)."""
        return self in TERMINAL_STATUSES


#: Statuses an execution never leaves on its own.
TERMINAL_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.ABORTED,
    }
)

#: Statuses from which AWS's RedriveExecution may continue an execution.
REDRIVABLE_STATUSES = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED}
)


class BatchStatus(StrEnum):
    """Where a batch (``execute_batch``, ``execute_bulk``) stands.

    The status says what the *leader* (the process creating and publishing the
    batch's executions) does; the executions' own statuses say how far they got.
    """

    RUNNING = "RUNNING"
    """The leader creates and publishes executions (or watches them, between slices)."""
    PAUSED = "PAUSED"
    """Nothing more is published, and executions that have not started are held."""
    COMPLETED = "COMPLETED"
    """Every input has its execution, published; some may still be running."""
    CANCELLED = "CANCELLED"
    """Stopped for good: nothing more is created, unstarted executions were aborted."""
    FAILED = "FAILED"
    """The leader gave up on an error (the batch's ``error`` says which)."""


#: Error name of an execution aborted because its batch was cancelled before it started.
BATCH_CANCELLED_ERROR = "BatchCancelled"

#: Lease owner prefix under which a paused batch holds its unstarted executions
#: (the owner is the prefix followed by the batch id).
BATCH_HOLD_OWNER_PREFIX = "batch-hold:"

#: Lease owner prefix of start tickets: an EXPRESS execution started for a worker
#: is stored RUNNING under a ticket (the prefix and a random hex), and the message
#: that carries the ticket lets whichever worker takes it end the execution under
#: that lease without claiming it first (``Runner.advance_started``). ``@`` is in
#: no host name, so no worker's owner name (``host:random``) starts with it.
START_TICKET_PREFIX = "@start:"


def is_start_ticket(owner: object) -> bool:
    """Whether a lease owner is a start ticket."""
    return isinstance(owner, str) and owner.startswith(START_TICKET_PREFIX)


class TimerKind(StrEnum):
    """Why a parked execution waits for a point in time."""

    WAIT = "WAIT"
    """A ``Wait`` state longer than the park threshold."""
    RETRY = "RETRY"
    """A retry back-off longer than the park threshold."""
    MESSAGE_TIMEOUT = "MESSAGE_TIMEOUT"
    """A ``Message`` state's ``TimeoutSeconds``; tied to one correlation row."""
    TASK_TOKEN = "TASK_TOKEN"  # noqa: S105 - a timer kind, not a secret
    """The next deadline of a waiting task token: its ``TimeoutSeconds`` or, sooner,
    its ``HeartbeatSeconds`` since the last heartbeat; tied to one task token row."""


class CorrelationOutcome(StrEnum):
    """How a message correlation was consumed (each is consumed exactly once)."""

    MESSAGE = "MESSAGE"
    """A matching message arrived in time; its data is on the row."""
    TIMEOUT = "TIMEOUT"
    """``TimeoutSeconds`` passed first; a later message is refused."""
    CANCELLED = "CANCELLED"
    """The execution ended (stopped, failed, ...) while it waited."""


class TaskTokenStatus(StrEnum):
    """Where a task token of a ``.waitForTaskToken`` Task stands; it ends once."""

    WAITING = "WAITING"
    """Issued; waits for SendTaskSuccess/Failure (heartbeats keep it alive)."""
    SUCCEEDED = "SUCCEEDED"
    """``send_task_success`` used it; the output is on the row."""
    FAILED = "FAILED"
    """``send_task_failure`` used it; the error and cause are on the row."""
    TIMED_OUT = "TIMED_OUT"
    """Its ``TimeoutSeconds`` passed first (States.Timeout)."""
    NO_HEARTBEAT = "NO_HEARTBEAT"
    """No heartbeat came within ``HeartbeatSeconds`` (States.HeartbeatTimeout)."""
    CANCELLED = "CANCELLED"
    """The execution ended (stopped, failed, ...) or moved on while it waited."""


class MapRunStatus(StrEnum):
    """Where a Distributed Map's Map Run stands (AWS's MapRun statuses)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"


__all__ = [
    "BATCH_CANCELLED_ERROR",
    "BATCH_HOLD_OWNER_PREFIX",
    "REDRIVABLE_STATUSES",
    "START_TICKET_PREFIX",
    "TERMINAL_STATUSES",
    "BatchStatus",
    "CorrelationOutcome",
    "ExecutionStatus",
    "MapRunStatus",
    "TaskTokenStatus",
    "TimerKind",
    "is_start_ticket",
]
