"""SQLAlchemy 2 tables of the store (DESIGN.md, "Data model").

The tables change only through a migration in ``migrations/versions``;
``tests/store/test_migrations.py`` proves the two agree. Nothing outside
:mod:`orchestrator.store.repository` queries them.

Conventions: timestamps are timezone-aware UTC (:class:`UTCDateTime`), JSON is
``JSONB`` on PostgreSQL and ``JSON`` (text) on SQLite (:data:`JSONType`), and
enums are stored as their string values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum as PyEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from orchestrator.types import (
    BatchStatus,
    CorrelationOutcome,
    ExecutionStatus,
    TaskTokenStatus,
    TimerKind,
)

#: JSON column type: JSONB on PostgreSQL, JSON (stored as text) elsewhere. Python
#: ``None`` is stored as SQL NULL.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

#: Integer primary key that is BIGINT on PostgreSQL and SQLite's rowid alias there.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

#: Constraint names Alembic can find again (SQLite batch migrations need them).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is
    stored as naive UTC text (which sorts correctly) and read back as UTC. A
    naive datetime is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive on SQLite); refuse naive datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(enum_class: type[PyEnum]) -> Enum:
    # Stored as VARCHAR holding the member's value; no native PostgreSQL enum,
    # so adding a member needs no ALTER TYPE.
    return Enum(
        enum_class,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with the naming convention and UTC timestamps."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


class StateMachine(Base):
    """A named state machine; its definitions are its versions."""

    __tablename__ = "state_machines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime]
    #: ``STANDARD`` or ``EXPRESS`` (AWS's state machine type); fixed at creation.
    type: Mapped[str] = mapped_column(String(16), server_default=text("'STANDARD'"))


class StateMachineVersion(Base):
    """One immutable definition of a state machine, numbered 1, 2, 3, ..."""

    __tablename__ = "state_machine_versions"
    __table_args__ = (
        UniqueConstraint("state_machine_id", "version"),
        UniqueConstraint("state_machine_id", "definition_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_machine_id: Mapped[int] = mapped_column(ForeignKey("state_machines.id"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[Any] = mapped_column(JSONType, nullable=False)
    #: SHA-256 of the canonical JSON of ``definition``: the dedupe key.
    definition_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Batch(Base):
    """One ``execute_batch`` call: what it selected, how, and how far it got."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state_machine_id: Mapped[int] = mapped_column(ForeignKey("state_machines.id"), index=True)
    filter: Mapped[Any] = mapped_column(JSONType, nullable=False)
    options: Mapped[Any] = mapped_column(JSONType, nullable=False)
    status: Mapped[BatchStatus] = mapped_column(_enum(BatchStatus))
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    published_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    #: Where the leader stands in its inputs, so another process can go on from
    #: there: ``{"index", "cursor", "slice_started_at", "exhausted"}`` (JSON).
    position: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: The process leading the batch, and when it last showed it is alive.
    leader: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    #: Why the status last changed (who paused it, which threshold tripped).
    status_reason: Mapped[str | None] = mapped_column(Text)
    #: The failure guard: its moving average, how many ended executions it has
    #: seen, whether it may still pause the batch, and its last warning.
    failure_rate: Mapped[float | None] = mapped_column(Float)
    guard_observed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    guard_armed: Mapped[bool] = mapped_column(Boolean, server_default=true())
    warning: Mapped[str | None] = mapped_column(Text)
    #: Failed executions that ended at or before this time are archived.
    failures_archived_at: Mapped[datetime | None]
    archived_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))


def _linked(name: str, *columns: str) -> Index:
    """An index of rows whose first column (an optional link) is set."""
    where = text(f"{columns[0]} IS NOT NULL")
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


class Execution(Base):
    """One run of a pinned state machine version, with its checkpoint and lease."""

    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("state_machine_id", "name"),
        Index("ix_executions_machine_status_started", "state_machine_id", "status", "started_at"),
        Index("ix_executions_machine_started", "state_machine_id", "started_at", "id"),
        Index("ix_executions_status_lease", "status", "lease_expires_at"),
        # The optional links are indexed only where set (migration 0011).
        _linked("ix_executions_map_run_item", "map_run_id", "item_index"),
        _linked("ix_executions_batch_id", "batch_id"),
        _linked("ix_executions_source_execution_id", "source_execution_id"),
        _linked("ix_executions_parent_execution_id", "parent_execution_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state_machine_id: Mapped[int] = mapped_column(ForeignKey("state_machines.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("state_machine_versions.id"))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[ExecutionStatus] = mapped_column(_enum(ExecutionStatus))
    input: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(String(256))
    cause: Mapped[str | None] = mapped_column(Text)
    #: The interpreter's checkpoint; opaque to the store.
    cursor: Mapped[Any] = mapped_column(JSONType, nullable=True)
    current_state: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"))
    source_execution_id: Mapped[str | None] = mapped_column(
        ForeignKey("executions.id", ondelete="SET NULL")
    )
    source_state_name: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    #: Bumped by every checkpoint: an optimistic-concurrency token.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    #: Sequence number of the last history row.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    #: A timer or message arrived while the execution was not WAITING.
    wake_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    redrive_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Claims since the last checkpoint: how often a worker took the execution up and
    #: died before committing anything (the runner fails it past
    #: ``ORCHESTRATOR_MAX_STEP_ATTEMPTS``). A server default, so raw inserts get 0.
    claim_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: ``STANDARD`` (history, exactly-once commits) or ``EXPRESS`` (only the final
    #: row, at-least-once): copied from the machine at start, or chosen by a
    #: Distributed Map for its children, so the runner picks its path per execution.
    execution_type: Mapped[str] = mapped_column(String(16), server_default=text("'STANDARD'"))
    #: The execution's OpenTelemetry trace context (W3C ``traceparent``/``tracestate``),
    #: the parent of every advance's span; set once, by the first traced advance.
    trace_context: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: A Distributed Map's child: its parent execution, its Map Run and item (batch) index.
    parent_execution_id: Mapped[str | None] = mapped_column(String(36))
    map_run_id: Mapped[str | None] = mapped_column(String(36))
    item_index: Mapped[int | None] = mapped_column(Integer)


class MapRun(Base):
    """One entry into a Distributed Map state: its children, counts and progress.

    The ``*_count`` columns per status are exact once the run's pending deltas
    (``map_run_deltas``, written by a trigger on ``executions`` in the child's own
    transaction) are folded in; the repository folds them under the row's lock.
    """

    __tablename__ = "map_runs"
    __table_args__ = (UniqueConstraint("parent_execution_id", "dispatch_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    parent_execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    #: Frame path and dispatch token of the Map state (``0/2:17``): one Map Run each.
    dispatch_key: Mapped[str] = mapped_column(String(255))
    #: Frame path and state name (``0/2:Fan out``): finds the run a redrive reopens.
    state_key: Mapped[str] = mapped_column(String(255))
    state_name: Mapped[str] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(255))
    #: The children's version: the ItemProcessor stored as a derived state machine.
    version_id: Mapped[int] = mapped_column(ForeignKey("state_machine_versions.id"))
    execution_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=0)
    tolerated_failure_percentage: Mapped[float | None] = mapped_column(Float)
    tolerated_failure_count: Mapped[int | None] = mapped_column(Integer)
    #: Children (items or batches) the reader found; known before any is created.
    total: Mapped[int] = mapped_column(Integer, default=0)
    #: Children created so far (the reader's position: the next item index).
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Children made claimable (not held back by MaxConcurrency).
    released_count: Mapped[int] = mapped_column(Integer, default=0)
    feeding_done: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    running_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    succeeded_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    timed_out_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    aborted_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: The ResultWriter (resource, parameters, writer config) as evaluated, or null.
    result_writer: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: The parent's redrive count when this run was opened (a redrive reopens it once).
    parent_redrive_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(256))
    cause: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]


class MapRunDelta(Base):
    """One child's change of status, counted for its Map Run (written by a trigger).

    Append-only, so a child's transaction never waits for the Map Run row: the
    repository sums and deletes these into ``map_runs`` under that row's lock.
    """

    __tablename__ = "map_run_deltas"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    map_run_id: Mapped[str] = mapped_column(String(36), index=True)
    pending: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    timed_out: Mapped[int] = mapped_column(Integer)
    aborted: Mapped[int] = mapped_column(Integer)


class HistoryEvent(Base):
    """One state event of an execution, in order (``seq`` is unique per execution)."""

    __tablename__ = "history"
    __table_args__ = (UniqueConstraint("execution_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    state_name: Mapped[str | None] = mapped_column(String(255))
    state_type: Mapped[str | None] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(64))
    input: Mapped[Any] = mapped_column(JSONType, nullable=True)
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(String(256))
    cause: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    entered_at: Mapped[datetime | None]
    recorded_at: Mapped[datetime]
    #: The workflow variables the state assigned (name -> value), or null.
    assigned: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: Where the state ran: the branch or iteration index at each Parallel/Map level
    #: (``[]`` at the top; null in rows written before 0009_aws_api).
    path: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: When a Task attempt's handler was called (null for other states, or unknown).
    started_at: Mapped[datetime | None]


class MessageCorrelation(Base):
    """A parked ``Message`` state waiting for (key, value); consumed exactly once."""

    __tablename__ = "message_correlations"
    __table_args__ = (Index("ix_message_correlations_key_value", "correlation_key", "value_hash"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    state_name: Mapped[str] = mapped_column(String(255))
    correlation_key: Mapped[str] = mapped_column(String(255))
    #: Canonical JSON text of the value, so equal JSON values compare equal.
    correlation_value: Mapped[str] = mapped_column(Text)
    #: SHA-256 of ``correlation_value``: keeps the index small for long values.
    value_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    timeout_at: Mapped[datetime | None]
    consumed: Mapped[bool] = mapped_column(Boolean, default=False)
    consumed_at: Mapped[datetime | None]
    outcome: Mapped[CorrelationOutcome | None] = mapped_column(_enum(CorrelationOutcome))
    message: Mapped[Any] = mapped_column(JSONType, nullable=True)
    #: What the runtime wants back with the message (which frame, which token).
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)


class Timer(Base):
    """A point in time a parked execution waits for."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_fired_due_at", "fired", "due_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    correlation_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_correlations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[TimerKind] = mapped_column(_enum(TimerKind))
    due_at: Mapped[datetime]
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    fired: Mapped[bool] = mapped_column(Boolean, default=False)
    fired_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class TaskToken(Base):
    """A task token of a ``.waitForTaskToken`` Task: single use, stored as a hash.

    The token itself never reaches this table: ``token_hash`` is its SHA-256, so
    a read of the table (a backup, a log of statements) yields nothing that
    completes a task, and the lookup compares hashes, not secrets.
    """

    __tablename__ = "task_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: SHA-256 (hex) of the token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), index=True
    )
    state_name: Mapped[str] = mapped_column(String(255))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[TaskTokenStatus] = mapped_column(_enum(TaskTokenStatus))
    #: What the runtime wants back with the outcome (which frame, which dispatch).
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime | None]
    #: The Task's TimeoutSeconds as a time (None: no timeout).
    timeout_at: Mapped[datetime | None]
    heartbeat_seconds: Mapped[float | None] = mapped_column(Float)
    #: The timer that fires at the next deadline (timeout or missed heartbeat).
    timer_id: Mapped[int | None] = mapped_column(
        ForeignKey("timers.id", ondelete="SET NULL"), index=True
    )
    #: When the handler that got the token returned (a crash before it: call it again).
    called_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(String(256))
    cause: Mapped[str | None] = mapped_column(Text)


class AwsStateMachine(Base):
    """What the AWS API keeps about a state machine beyond its definitions.

    Its role ARN and tags (its type is ``state_machines.type``), the versions published through
    ``PublishStateMachineVersion`` (``published``: a JSON list of ``{"number",
    "version_id", "description", "created_at"}``), and when it was deleted.
    """

    __tablename__ = "aws_state_machines"

    state_machine_id: Mapped[int] = mapped_column(
        ForeignKey("state_machines.id", ondelete="CASCADE"), primary_key=True
    )
    role_arn: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[Any] = mapped_column(JSONType, nullable=True)
    published: Mapped[Any] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


__all__ = [
    "AwsStateMachine",
    "JSONType",
    "Base",
    "MapRun",
    "MapRunDelta",
    "Batch",
    "Execution",
    "HistoryEvent",
    "MessageCorrelation",
    "StateMachine",
    "StateMachineVersion",
    "TaskToken",
    "Timer",
    "UTCDateTime",
]
