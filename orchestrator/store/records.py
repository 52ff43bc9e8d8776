"""What the repository takes and returns: frozen, keyword-only dataclasses.

Records are plain data read in one transaction; they hold no session and never
load anything lazily. ``New*`` classes describe rows to add.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

from orchestrator.types import (
    BatchStatus,
    CorrelationOutcome,
    ExecutionStatus,
    TaskTokenStatus,
    TimerKind,
)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class StateMachineInfo:
    """A state machine and its newest version number."""

    id: int
    name: str
    created_at: datetime
    latest_version: int


@dataclass(frozen=True, kw_only=True)
class AwsMachine:
    """What the AWS API keeps about a state machine (see ``models.AwsStateMachine``).

    ``published``: the versions published through the AWS API, oldest first, each
    ``{"number", "version_id", "description", "created_at"}``.
    """

    state_machine_id: int
    role_arn: str | None
    tags: dict[str, str]
    published: tuple[dict[str, Any], ...]
    created_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Version:
    """One immutable definition of a state machine."""

    id: int
    state_machine_id: int
    state_machine_name: str
    version: int
    definition: Any
    definition_hash: str
    created_at: datetime
    #: The machine's type: ``STANDARD`` or ``EXPRESS``.
    machine_type: str = "STANDARD"


@dataclass(frozen=True, kw_only=True)
class Execution:
    """An execution as last committed.

    ``cursor`` is the interpreter's checkpoint; the store never looks inside.
    ``revision`` grows by one with every checkpoint.
    """

    id: str
    state_machine_id: int
    version_id: int
    name: str
    status: ExecutionStatus
    input: Any
    output: Any
    error: str | None
    cause: str | None
    cursor: Any
    current_state: str | None
    priority: int
    batch_id: str | None
    source_execution_id: str | None
    source_state_name: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    revision: int
    last_seq: int
    wake_pending: bool
    redrive_count: int
    #: Claims since the last checkpoint (each a worker that took it up and has not
    #: committed since); 0 once a step commits.
    claim_count: int = 0
    #: ``STANDARD`` or ``EXPRESS`` (no history rows, only the final row).
    execution_type: str = "STANDARD"
    #: The OpenTelemetry trace context every advance's span joins (W3C headers), or None.
    trace_context: dict[str, str] | None = None
    #: A Distributed Map's child: its parent, its Map Run and its item (batch) index.
    parent_execution_id: str | None = None
    map_run_id: str | None = None
    item_index: int | None = None


def execution_json(
    execution: Execution, *, input_json: str | None = None, output_json: str | None = None
) -> str:
    """The row as one JSON object (dates in ISO 8601): what a message or notice carries.

    ``input_json`` and ``output_json`` are the input and output already encoded, if
    they are (not encoded again).
    :func:`execution_from_json` reads it back.
    """
    row: dict[str, Any] = {}
    for item in fields(Execution):
        if item.name in ("input", "output"):
            continue
        value = getattr(execution, item.name)
        row[item.name] = value.isoformat() if isinstance(value, datetime) else value
    row["status"] = str(execution.status)
    head = json.dumps(row, separators=(",", ":"), ensure_ascii=False)
    if input_json is None:
        input_json = json.dumps(execution.input, separators=(",", ":"), ensure_ascii=False)
    if output_json is None:
        output_json = json.dumps(execution.output, separators=(",", ":"), ensure_ascii=False)
    return f'{head[:-1]},"input":{input_json},"output":{output_json}}}'


_DATES = frozenset(item.name for item in fields(Execution) if "datetime" in str(item.type))


def execution_from_json(text: bytes | str) -> Execution:
    """The row :func:`execution_json` wrote.

    Raises:
        ValueError: ``text`` is not such a row (not JSON, a field missing, unknown
            or of the wrong kind).
    """
    try:
        row = json.loads(text)
        if not isinstance(row, dict):
            raise ValueError(f"an execution row is a JSON object, not {type(row).__name__}")
        for name in _DATES:
            if row.get(name) is not None:
                row[name] = datetime.fromisoformat(str(row[name]))
        row["status"] = ExecutionStatus(str(row["status"]))
        return Execution(**row)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not an execution row: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class NewExecution:
    """An execution to create (see ``Repository.create_executions_bulk``).

    Attributes:
        name: unique per state machine; the idempotency key of the start.
        input: the execution input (JSON). Default null.
        id: the execution id. Default: a new UUID4 string.
        priority: picks the queue; higher is more urgent. Default 0.
        batch_id: the batch that started it. Default none.
        source_execution_id: the execution it was chained from. Default none.
        source_state_name: the source's state whose output is the input.
            Default none (the source's final output).
        execution_type: ``STANDARD`` or ``EXPRESS``. Default none: the machine's type.
    """

    name: str
    input: Any = None
    id: str | None = None
    priority: int = 0
    batch_id: str | None = None
    source_execution_id: str | None = None
    source_state_name: str | None = None
    execution_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class BulkCreateResult:
    """What ``create_executions_bulk`` did.

    Attributes:
        created: name -> id of each execution created now.
        skipped: names that already existed (nothing was written for them).
    """

    created: Mapping[str, str]
    skipped: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class NewHistoryEvent:
    """A history row to append in a checkpoint; ``seq`` is assigned by the store.

    Attributes:
        event_type: what happened, as the runtime names it (e.g. ``StateExited``).
        state_name: the state, or None for an execution-level event.
        state_type: ``Task``, ``Pass``, ... Default none.
        input: state input (JSON). Default null.
        output: state output (JSON). Default null.
        error: ASL error name. Default none.
        cause: error cause. Default none.
        attempt: retry attempt, 0 for the first try. Default 0.
        entered_at: when the state was entered. Default none.
        recorded_at: when the event happened. Default: the checkpoint's ``now``.
        assigned: the workflow variables the state assigned (name -> value). Default none.
        path: where the state ran: the branch or iteration index at each
            Parallel/Map level (``()`` at the top). Default none.
        started_at: when a Task attempt's handler was called. Default none.
    """

    event_type: str
    state_name: str | None = None
    state_type: str | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    attempt: int = 0
    entered_at: datetime | None = None
    recorded_at: datetime | None = None
    assigned: dict[str, Any] | None = None
    path: tuple[int, ...] | None = None
    started_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """One step of an execution to commit (see ``Repository.checkpoint``).

    Attributes:
        cursor: the interpreter's new checkpoint (JSON).
        status: the new status.
        current_state: the state the execution stands on. Default none.
        history: events to append. Default none.
        output: the execution output, stored if ``status`` is terminal. Default null.
        error: the error name, stored if ``status`` is terminal. Default none.
        cause: the error cause, stored if ``status`` is terminal. Default none.
        timers: timers to add. Default none.
        correlations: message correlations to add. Default none.
        lease_seconds: while RUNNING, extend the lease to now plus this. Default:
            the lease is kept as it is.
        may_have_waits: False promises the execution never added a timer or a
            correlation, so ending it need not cancel any. Default True.
    """

    cursor: Any
    status: ExecutionStatus
    current_state: str | None = None
    history: Sequence[NewHistoryEvent] = ()
    output: Any = None
    error: str | None = None
    cause: str | None = None
    timers: Sequence[NewTimer] = ()
    correlations: Sequence[NewCorrelation] = ()
    lease_seconds: float | None = None
    may_have_waits: bool = True


@dataclass(frozen=True, kw_only=True)
class ExecutionEnd:
    """The final row of an EXPRESS execution (see ``Repository.end_many``).

    Attributes:
        execution_id: the execution.
        status: SUCCEEDED, FAILED or TIMED_OUT.
        output: the output (SUCCEEDED). Default null.
        error, cause: the ASL error (FAILED, TIMED_OUT). Default none.
    """

    execution_id: str
    status: ExecutionStatus
    output: Any = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class HistoryEvent:
    """One stored history row."""

    execution_id: str
    seq: int
    event_type: str
    state_name: str | None
    state_type: str | None
    input: Any
    output: Any
    error: str | None
    cause: str | None
    attempt: int
    entered_at: datetime | None
    recorded_at: datetime
    #: The workflow variables the state assigned (name -> value), or None.
    assigned: dict[str, Any] | None = None
    #: Branch or iteration index at each Parallel/Map level (None: not recorded).
    path: Any = None
    #: When a Task attempt's handler was called (None: another state, or not recorded).
    started_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class NewTimer:
    """A timer to add when parking: wake the execution at ``due_at``.

    Attributes:
        kind: why it waits.
        due_at: when it is due (timezone-aware).
        payload: anything the runtime wants back (JSON). Default null.
    """

    kind: TimerKind
    due_at: datetime
    payload: Any = None


@dataclass(frozen=True, kw_only=True)
class Timer:
    """A stored timer."""

    id: int
    execution_id: str
    correlation_id: int | None
    kind: TimerKind
    due_at: datetime
    payload: Any
    fired: bool
    fired_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class NewCorrelation:
    """A message correlation to add when a ``Message`` state parks.

    Attributes:
        state_name: the ``Message`` state.
        key: correlation key.
        value: correlation value (JSON); matched by JSON equality.
        timeout_at: when the state times out; the store adds a
            ``MESSAGE_TIMEOUT`` timer for it (with the same payload). Default none
            (waits forever).
        payload: anything the runtime wants back with the message (JSON). Default null.
    """

    state_name: str
    key: str
    value: Any
    timeout_at: datetime | None = None
    payload: Any = None


@dataclass(frozen=True, kw_only=True)
class Correlation:
    """A stored message correlation."""

    id: int
    execution_id: str
    state_name: str
    key: str
    value: Any
    created_at: datetime
    timeout_at: datetime | None
    consumed: bool
    consumed_at: datetime | None
    outcome: CorrelationOutcome | None
    message: Any
    payload: Any = None


@dataclass(frozen=True, kw_only=True)
class NewTaskToken:
    """A task token to register before its handler is called (``.waitForTaskToken``).

    Attributes:
        token: the token itself; only its SHA-256 is stored.
        state_name: the Task state.
        attempt: the retry attempt, 0 for the first try. Default 0.
        timeout_at: the Task's TimeoutSeconds as a time. Default none (no timeout).
        heartbeat_seconds: the Task's HeartbeatSeconds. Default none (no heartbeat needed).
        payload: anything the runtime wants back with the outcome (JSON). Default null.
    """

    token: str
    state_name: str
    attempt: int = 0
    timeout_at: datetime | None = None
    heartbeat_seconds: float | None = None
    payload: Any = None


@dataclass(frozen=True, kw_only=True)
class TaskToken:
    """A stored task token (its hash, never the token) and how it ended."""

    id: int
    token_hash: str
    execution_id: str
    state_name: str
    attempt: int
    status: TaskTokenStatus
    payload: Any
    created_at: datetime
    heartbeat_at: datetime | None
    timeout_at: datetime | None
    heartbeat_seconds: float | None
    timer_id: int | None
    called_at: datetime | None
    completed_at: datetime | None
    output: Any
    error: str | None
    cause: str | None


@dataclass(frozen=True, kw_only=True)
class Batch:
    """A stored batch (``execute_batch``, ``execute_bulk``): its counts and its control.

    Attributes:
        filter: what it reads (an execution filter, or where its inputs come from).
        options: how it runs (``BatchOptions`` as JSON).
        position: where the leader stands in its inputs (JSON), or None.
        leader: the process leading it; ``heartbeat_at`` when that process last beat.
        status_reason: why the status last changed.
        failure_rate: the failure guard's moving average (None before it saw any).
        guard_observed: ended executions the guard has folded in.
        guard_armed: whether the guard may still pause the batch.
        warning: the guard's last warning (soft threshold), or None.
        failures_archived_at: failures that ended at or before this are archived.
        archived_count: how many failures have been archived.
    """

    id: str
    state_machine_id: int
    filter: Any
    options: Any
    status: BatchStatus
    source_count: int
    created_count: int
    skipped_count: int
    published_count: int
    error: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    position: Any = None
    leader: str | None = None
    heartbeat_at: datetime | None = None
    status_reason: str | None = None
    failure_rate: float | None = None
    guard_observed: int = 0
    guard_armed: bool = True
    warning: str | None = None
    failures_archived_at: datetime | None = None
    archived_count: int = 0


@dataclass(frozen=True, kw_only=True)
class ExecutionFilter:
    """Which executions to list or count; every field narrows the selection.

    Attributes:
        state_machine: state machine name. Default: all machines.
        version: version number (with ``state_machine``). Default: all versions.
        status: one status or several. Default: any.
        started_after: started at or after this time. Default: no bound.
        started_before: started strictly before this time. Default: no bound.
        name_prefix: the name starts with this text. Default: any name.
        batch_id: started by this batch. Default: any.
        source_execution_id: chained from this execution. Default: any.
        unlinked_to: only executions that no execution of this state machine
            (by name) has as its source yet. Default: no such condition.
        limit: page size. Default 100.
        cursor: ``next_cursor`` of the previous page. Default: the first page.
        descending: newest first. Default False (oldest first).
    """

    state_machine: str | None = None
    version: int | None = None
    status: ExecutionStatus | Collection[ExecutionStatus] | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    name_prefix: str | None = None
    batch_id: str | None = None
    source_execution_id: str | None = None
    unlinked_to: str | None = None
    limit: int = 100
    cursor: str | None = None
    descending: bool = False

    def statuses(self) -> tuple[ExecutionStatus, ...]:
        """Return the status condition as a tuple (empty: any status)."""
        if self.status is None:
            return ()
        if isinstance(self.status, str):
            return (ExecutionStatus(self.status),)
        return tuple(ExecutionStatus(s) for s in self.status)


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    """One page of a keyset-paged listing.

    Attributes:
        items: the rows of this page, in order.
        next_cursor: pass as ``ExecutionFilter.cursor`` for the next page; None
            when this is the last page.
    """

    items: Sequence[T] = field(default_factory=tuple)
    next_cursor: str | None = None


__all__ = [
    "AwsMachine",
    "Batch",
    "BulkCreateResult",
    "Checkpoint",
    "Correlation",
    "Execution",
    "ExecutionFilter",
    "execution_from_json",
    "execution_json",
    "HistoryEvent",
    "NewCorrelation",
    "NewExecution",
    "NewHistoryEvent",
    "NewTaskToken",
    "NewTimer",
    "Page",
    "StateMachineInfo",
    "TaskToken",
    "Timer",
    "Version",
]


@dataclass(frozen=True, kw_only=True)
class MapRun:
    """One entry into a Distributed Map state (AWS's Map Run), as last committed.

    ``*_count`` are the children per status (RUNNING and WAITING both count as
    running); ``total`` is how many children the reader found, ``created_count``
    how many exist, ``released_count`` how many MaxConcurrency let go.
    """

    id: str
    parent_execution_id: str
    dispatch_key: str
    state_key: str
    state_name: str
    label: str | None
    version_id: int
    execution_type: str
    status: str
    priority: int
    max_concurrency: int
    tolerated_failure_percentage: float | None
    tolerated_failure_count: int | None
    total: int
    created_count: int
    released_count: int
    feeding_done: bool
    pending_count: int
    running_count: int
    succeeded_count: int
    failed_count: int
    timed_out_count: int
    aborted_count: int
    result_writer: Any
    parent_redrive_count: int
    error: str | None
    cause: str | None
    started_at: datetime
    updated_at: datetime
    stopped_at: datetime | None

    @property
    def ended(self) -> int:
        """Children that ended, in any way."""
        return self.succeeded_count + self.failed_count + self.timed_out_count + self.aborted_count

    @property
    def failures(self) -> int:
        """Children that ended without succeeding (what the tolerated failure counts)."""
        return self.failed_count + self.timed_out_count + self.aborted_count

    def counts(self) -> dict[str, int]:
        """The counts as AWS's DescribeMapRun names them."""
        return {
            "pending": self.pending_count,
            "running": self.running_count,
            "succeeded": self.succeeded_count,
            "failed": self.failed_count,
            "timedOut": self.timed_out_count,
            "aborted": self.aborted_count,
            "total": self.total,
        }


@dataclass(frozen=True, kw_only=True)
class NewMapRun:
    """A Map Run to open (see ``Repository.open_map_run``)."""

    parent_execution_id: str
    dispatch_key: str
    state_key: str
    state_name: str
    label: str | None
    version_id: int
    execution_type: str = "STANDARD"
    priority: int = 0
    max_concurrency: int = 0
    tolerated_failure_percentage: float | None = None
    tolerated_failure_count: int | None = None
    total: int = 0
    result_writer: Any = None
    parent_redrive_count: int = 0


@dataclass(frozen=True, kw_only=True)
class MapChild:
    """One child of a Map Run as its result needs it (ordered by ``item_index``)."""

    id: str
    name: str
    item_index: int
    status: ExecutionStatus
    input: Any
    output: Any
    error: str | None
    cause: str | None
    redrive_count: int
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class MapRunSettlement:
    """What :meth:`Repository.settle_map_run` did."""

    map_run: MapRun
    released: list[str]
    #: The parent was woken (the run ended just now).
    ended_now: bool
    #: The parent's id and priority (to publish it when it was woken).
    parent_priority: int = 0


@dataclass(frozen=True, kw_only=True)
class MapRunDecision:
    """What to do with a Map Run, decided (by the runtime) on its locked row.

    ``status``: end the run so (``SUCCEEDED``/``FAILED``), or None to go on;
    ``release``: how many held children to let go (MaxConcurrency).
    """

    status: str | None = None
    error: str | None = None
    cause: str | None = None
    release: int = 0
