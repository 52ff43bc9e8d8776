"""Advancing executions: leases, checkpoints, stop, redrive and recovery."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Interval,
    Row,
    Select,
    Update,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.store import payloads
from orchestrator.store.errors import LeaseLost
from orchestrator.store.records import Execution, NewCorrelation, NewHistoryEvent, NewTimer
from orchestrator.store.repository._base import (
    ACTIVE,
    EX,
    EXECUTION_COLUMNS,
    EXT,
    HISTORY_TABLE,
    RepositoryBase,
    execution_record,
    utc_now,
)
from orchestrator.store.repository._waits import add_waits, cancel_waits
from orchestrator.types import REDRIVABLE_STATUSES, TERMINAL_STATUSES, ExecutionStatus

#: Longest error name stored (AWS allows 256 characters).
ERROR_MAX_CHARS = 256


@dataclass(frozen=True, kw_only=True)
class _Ending:
    """What a checkpoint writes when the status is terminal."""

    output: Any
    error: str | None
    cause: str | None


@dataclass(frozen=True, kw_only=True)
class _Step:
    """What one checkpoint writes."""

    status: ExecutionStatus
    cursor: Any
    current_state: str | None
    history: Sequence[NewHistoryEvent]
    ending: _Ending
    timers: Sequence[NewTimer]
    correlations: Sequence[NewCorrelation]
    lease_seconds: float | None
    may_have_waits: bool


class RunsMixin(RepositoryBase):
    """Leases, checkpoints, stopping, redriving, recovery."""

    def claim(
        self,
        execution_id: str,
        owner: str,
        *,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> Execution | None:
        """Take the lease on a PENDING or RUNNING execution and mark it RUNNING.

        Succeeds only if nobody else holds a live lease (no owner, the owner is
        ``owner``, or the lease expired). Atomic across processes.

        Without ``now``, PostgreSQL's clock decides whether a lease expired and
        when the new one does (see :func:`_lease_clock`).

        Returns:
            The claimed execution, or None (held by another, WAITING, ended or missing).
        """
        db_clock = self._db_clock(now)
        now = utc_now(now)
        params = {
            "p_id": execution_id,
            "p_owner": owner,
            "p_now": now,
            "p_expires": now + timedelta(seconds=lease_seconds),
            "p_lease": lease_seconds,
        }
        # Claiming again for the same owner is harmless, so a retry is safe.
        row = self._statement(_claim_statement(db_clock), params, retry=True)
        return None if row is None else execution_record(row)

    def renew_lease(
        self,
        execution_id: str,
        owner: str,
        *,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> datetime:
        """Extend ``owner``'s live lease to ``now + lease_seconds``.

        Without ``now``, PostgreSQL's clock decides (see :func:`_lease_clock`).

        Returns:
            The new expiry.

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on a RUNNING execution.
        """
        db_clock = self._db_clock(now)
        clock_now, expires = _lease_clock(db_clock)
        now = utc_now(now)
        params = {"p_now": now, "p_expires": now + timedelta(seconds=lease_seconds)}
        with self._write() as conn:
            row = conn.execute(
                update(EX)
                .where(*_held_by(execution_id, owner, clock_now))
                .values(lease_expires_at=expires)
                .returning(EX.lease_expires_at),
                {**params, "p_lease": lease_seconds},
            ).first()
            if row is None:
                raise LeaseLost(execution_id, owner)
        expiry: datetime = row.lease_expires_at if db_clock else params["p_expires"]
        return expiry

    def _db_clock(self, now: datetime | None) -> bool:
        """Whether lease times come from the database's clock: no ``now`` given, PostgreSQL.

        SQLite lives in the caller's process, so its clock is the caller's anyway.
        """
        return now is None and self._dialect == "postgresql"

    def release(self, execution_id: str, owner: str) -> bool:
        """Give up ``owner``'s lease without changing the status.

        A RUNNING execution released this way is picked up by the recovery
        sweep (``expired_leases``) after its grace period.

        Returns:
            Whether ``owner`` held the lease.
        """
        with self._write() as conn:
            result = conn.execute(
                update(EX)
                .where(EX.id == execution_id, EX.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            return result.rowcount == 1

    def expired_leases(
        self,
        now: datetime | None = None,
        *,
        limit: int = 100,
        pending_grace_seconds: float = 60.0,
    ) -> list[Execution]:
        """Return executions that should be advancing but nobody is: for the recovery sweep.

        That is PENDING or RUNNING executions whose lease expired, and those
        without a lease that have not changed for ``pending_grace_seconds``
        (a start whose message was lost, a released lease). Oldest first.
        """
        now = utc_now(now)
        stale = now - timedelta(seconds=pending_grace_seconds)
        query = (
            select(*EXECUTION_COLUMNS)
            .where(
                EX.status.in_(ACTIVE),
                or_(
                    EX.lease_expires_at < now,
                    and_(EX.lease_owner.is_(None), EX.updated_at < stale),
                ),
            )
            .order_by(EX.updated_at, EX.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [execution_record(row) for row in conn.execute(query)]

    def take_stalled(
        self,
        now: datetime | None = None,
        *,
        grace_seconds: float,
        limit: int = 500,
        pending_priorities: Collection[int] | None = None,
    ) -> list[tuple[str, int]]:
        """Take executions to re-publish: active, unchanged for ``grace_seconds``, unleased.

        That is a PENDING execution whose message was lost (or is still queued), or
        a RUNNING one whose worker died (lease expired). Taking one marks it
        updated now, so each is re-published at most once per grace period, and
        concurrent sweepers take different rows (``SKIP LOCKED`` on PostgreSQL).
        ``pending_priorities`` limits the PENDING ones to those priority levels
        (the sweeper passes the levels whose queue is empty: a PENDING execution
        behind a long queue is waiting, not lost); None takes every level.

        Returns:
            (execution id, priority) of each execution taken.
        """
        now = utc_now(now)
        stale = now - timedelta(seconds=grace_seconds)
        status: ColumnElement[bool] = EX.status.in_(ACTIVE)
        if pending_priorities is not None:
            status = or_(
                EX.status == ExecutionStatus.RUNNING,
                and_(
                    EX.status == ExecutionStatus.PENDING,
                    EX.priority.in_(sorted(set(pending_priorities)) or [-1]),
                ),
            )
        candidates = (
            select(EX.id)
            .where(
                status,
                EX.updated_at < stale,
                or_(EX.lease_owner.is_(None), EX.lease_expires_at < now),
            )
            .order_by(EX.updated_at, EX.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            ids = list(conn.execute(candidates).scalars())
            if not ids:
                return []
            rows = conn.execute(
                update(EX)
                .where(EX.id.in_(ids))
                .values(updated_at=now)
                .returning(EX.id, EX.priority)
            ).all()
        return [(row.id, int(row.priority)) for row in rows]

    def purge_ended(
        self,
        older_than: datetime,
        *,
        statuses: Sequence[ExecutionStatus] | None = None,
        chunk_size: int = 1000,
        limit: int | None = None,
    ) -> int:
        """Delete ended executions (and, by cascade, their history and waits), in chunks.

        Only executions in a terminal status that ended before ``older_than`` go;
        PENDING, RUNNING and WAITING ones are never touched. Each chunk is its own
        short transaction, so a purge of millions never holds a long lock.
        Executions chained from a purged one keep their row (their link is cleared).

        Returns:
            How many executions were deleted.
        """
        chosen = [ExecutionStatus(s) for s in statuses] if statuses else list(TERMINAL_STATUSES)
        if not set(chosen) <= TERMINAL_STATUSES:
            raise ValueError(
                "only ended executions (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) can be purged"
            )
        deleted = 0
        while limit is None or deleted < limit:
            take = chunk_size if limit is None else min(chunk_size, limit - deleted)
            with self._write() as conn:
                ids = list(
                    conn.execute(
                        select(EX.id)
                        .where(EX.status.in_(chosen), EX.ended_at < older_than)
                        .order_by(EX.ended_at)
                        .limit(take)
                        .with_for_update(skip_locked=True)
                    ).scalars()
                )
                if not ids:
                    break
                conn.execute(delete(EX).where(EX.id.in_(ids), EX.status.in_(chosen)))
            deleted += len(ids)
        return deleted

    # -- checkpoints ---------------------------------------------------------

    def checkpoint(
        self,
        execution_id: str,
        owner: str,
        *,
        cursor: Any,
        status: ExecutionStatus,
        current_state: str | None = None,
        history: Sequence[NewHistoryEvent] = (),
        output: Any = None,
        error: str | None = None,
        cause: str | None = None,
        timers: Sequence[NewTimer] = (),
        correlations: Sequence[NewCorrelation] = (),
        lease_seconds: float | None = None,
        may_have_waits: bool = True,
        now: datetime | None = None,
    ) -> ExecutionStatus:
        """Commit one step of an execution in one transaction, if ``owner`` still holds it.

        Writes the new cursor, status and current state, appends ``history``
        (sequence numbers follow on), and adds ``timers`` and ``correlations``
        (a correlation with ``timeout_at`` gets its ``MESSAGE_TIMEOUT`` timer).
        The lease is kept only while the status stays RUNNING (extended by
        ``lease_seconds`` if given); any other status releases it. A terminal
        status stores ``output``, ``error`` and ``cause``, sets ``ended_at`` and
        cancels the execution's open timers and correlations.

        Parking as WAITING while a timer or message already arrived (see
        ``claim_due_timers``/``consume_correlations``) stores PENDING instead,
        so the wake-up is not lost; the returned status says which.

        Returns:
            The status stored.

        Raises:
            LeaseLost: ``owner`` no longer holds a live lease on this RUNNING
                execution; nothing was written.
            PayloadTooLarge, PayloadInvalid: a payload cannot be stored;
                nothing was written.
        """
        step = _Step(
            status=ExecutionStatus(status),
            cursor=cursor,
            current_state=current_state,
            history=history,
            ending=_Ending(output=output, error=error, cause=cause),
            timers=timers,
            correlations=correlations,
            lease_seconds=lease_seconds,
            may_have_waits=may_have_waits,
        )
        row = self._checkpoint(
            execution_id, owner, step, utc_now(now), full=False, db_clock=self._db_clock(now)
        )
        return ExecutionStatus(row.status)

    def checkpoint_execution(
        self,
        execution_id: str,
        owner: str,
        *,
        cursor: Any,
        status: ExecutionStatus,
        current_state: str | None = None,
        history: Sequence[NewHistoryEvent] = (),
        output: Any = None,
        error: str | None = None,
        cause: str | None = None,
        timers: Sequence[NewTimer] = (),
        correlations: Sequence[NewCorrelation] = (),
        lease_seconds: float | None = None,
        may_have_waits: bool = True,
        now: datetime | None = None,
    ) -> Execution:
        """:meth:`checkpoint`, returning the execution as stored by it (no second read).

        Raises:
            LeaseLost, PayloadTooLarge, PayloadInvalid: as :meth:`checkpoint`.
        """
        step = _Step(
            status=ExecutionStatus(status),
            cursor=cursor,
            current_state=current_state,
            history=history,
            ending=_Ending(output=output, error=error, cause=cause),
            timers=timers,
            correlations=correlations,
            lease_seconds=lease_seconds,
            may_have_waits=may_have_waits,
        )
        return execution_record(
            self._checkpoint(
                execution_id, owner, step, utc_now(now), full=True, db_clock=self._db_clock(now)
            )
        )

    def _checkpoint(
        self,
        execution_id: str,
        owner: str,
        step: _Step,
        now: datetime,
        *,
        full: bool,
        db_clock: bool = False,
    ) -> Row[Any]:
        """Write ``step``; return the row stored (all columns if ``full``, else two)."""
        history = step.history
        self._check_checkpoint_payloads(
            step.cursor, history, step.ending, step.timers, step.correlations
        )
        statement = _checkpoint_statement(_shape(step), full, db_clock)
        params = _checkpoint_params(execution_id, owner, step, now)
        if self._dialect == "postgresql" and not _touches_waits(step):
            # One statement: UPDATE ... RETURNING feeding the history INSERT. Not
            # retried: a second run after a commit would append the history again.
            params["p_history"] = _history_rows(history, now)
            row = self._statement(
                _logged_checkpoint_statement(_shape(step), full, db_clock), params, retry=False
            )
            if row is None:
                raise LeaseLost(execution_id, owner)
            return row

        def write(conn: Connection) -> Row[Any]:
            row = conn.execute(statement, params).first()
            if row is None:
                raise LeaseLost(execution_id, owner)
            first_seq = row.last_seq - len(history) + 1
            _insert_history(conn, execution_id, first_seq, history, now)
            add_waits(conn, execution_id, step.timers, step.correlations, now)
            if step.status in TERMINAL_STATUSES and step.may_have_waits:
                cancel_waits(conn, execution_id, now)
            return row

        return self._transaction(write)

    def _check_checkpoint_payloads(
        self,
        cursor: Any,
        history: Sequence[NewHistoryEvent],
        ending: _Ending,
        timers: Sequence[NewTimer],
        correlations: Sequence[NewCorrelation],
    ) -> None:
        limit = self.payload_max_bytes
        payloads.encode(cursor, field="cursor")
        payloads.encode(ending.output, field="output", limit=limit)
        payloads.check_text(ending.error, field="error", max_chars=ERROR_MAX_CHARS)
        for i, event in enumerate(history):
            payloads.encode(event.input, field=f"history[{i}].input", limit=limit)
            payloads.encode(event.output, field=f"history[{i}].output", limit=limit)
            payloads.check_text(event.error, field=f"history[{i}].error", max_chars=ERROR_MAX_CHARS)
        for i, timer in enumerate(timers):
            payloads.encode(timer.payload, field=f"timers[{i}].payload", limit=limit)
        for i, corr in enumerate(correlations):
            payloads.canonical(corr.value, field=f"correlations[{i}].value")

    # -- stopping and redriving ----------------------------------------------

    def stop_execution(
        self,
        execution_id: str,
        *,
        error: str | None = None,
        cause: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Mark a running or waiting execution ABORTED and take its lease away.

        A worker still advancing it gets :class:`LeaseLost` at its next
        checkpoint. Its open timers and correlations are cancelled.

        Returns:
            True if it was stopped now, False if it had already ended.

        Raises:
            ExecutionNotFound: no execution has this id.
        """
        now = utc_now(now)
        payloads.check_text(error, field="error", max_chars=ERROR_MAX_CHARS)
        with self._write() as conn:
            result = conn.execute(
                update(EX)
                .where(EX.id == execution_id, EX.status.not_in(TERMINAL_STATUSES))
                .values(
                    status=ExecutionStatus.ABORTED,
                    error=error,
                    cause=cause,
                    ended_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    wake_pending=False,
                )
            )
            if result.rowcount == 1:
                cancel_waits(conn, execution_id, now)
                return True
            self._require_execution(conn, execution_id)
        return False

    def redrive(self, execution_id: str, *, now: datetime | None = None) -> Execution | None:
        """Reopen a FAILED, TIMED_OUT or ABORTED execution as PENDING, cursor kept.

        The runtime then continues from the stored cursor (AWS's RedriveExecution).

        Returns:
            The reopened execution, or None if its status cannot be redriven.

        Raises:
            ExecutionNotFound: no execution has this id.
        """
        now = utc_now(now)
        with self._write() as conn:
            row = conn.execute(
                update(EX)
                .where(EX.id == execution_id, EX.status.in_(REDRIVABLE_STATUSES))
                .values(
                    status=ExecutionStatus.PENDING,
                    output=None,
                    error=None,
                    cause=None,
                    ended_at=None,
                    updated_at=now,
                    redrive_count=EX.redrive_count + 1,
                )
                .returning(*EXECUTION_COLUMNS)
            ).first()
            if row is None:
                self._require_execution(conn, execution_id)
                return None
        return execution_record(row)


def _lease_clock(db_clock: bool) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The (now, new expiry) of a lease statement: the database's clock, or parameters.

    With ``db_clock`` (PostgreSQL), ``now()`` and ``now() + p_lease seconds``: every
    host then reads leases by one clock, and a statement delayed in flight writes a
    lease that starts when it commits, not when the worker sent it. Otherwise the
    caller's ``p_now`` and ``p_expires``.
    """
    if not db_clock:
        return bindparam("p_now"), bindparam("p_expires")
    second = literal_column("interval '1 second'", Interval)
    return func.now(), func.now() + bindparam("p_lease", type_=Float) * second


def _held_by(
    execution_id: str, owner: str, now: datetime | ColumnElement[Any]
) -> list[ColumnElement[bool]]:
    """Conditions: ``owner`` holds a live lease on this RUNNING execution."""
    return [
        EX.id == execution_id,
        EX.status == ExecutionStatus.RUNNING,
        EX.lease_owner == owner,
        EX.lease_expires_at >= now,
    ]


#: Which UPDATE a checkpoint needs (see ``_checkpoint_statement``).
_Shape = str


def _shape(step: _Step) -> _Shape:
    if step.status == ExecutionStatus.RUNNING:
        return "running" if step.lease_seconds is None else "renewing"
    if step.status == ExecutionStatus.WAITING:
        return "waiting"
    return "ended" if step.status in TERMINAL_STATUSES else "released"


@cache
def _claim_statement(db_clock: bool = False) -> Update:
    """The claim's UPDATE, built once (parameters ``p_*``; the engine caches its SQL)."""
    c = EXT.c
    now, expires = _lease_clock(db_clock)
    return (
        update(EXT)
        .where(
            c.id == bindparam("p_id"),
            c.status.in_(ACTIVE),
            or_(
                c.lease_owner.is_(None),
                c.lease_owner == bindparam("p_owner"),
                c.lease_expires_at < now,
            ),
        )
        .values(
            status=ExecutionStatus.RUNNING,
            lease_owner=bindparam("p_owner"),
            lease_expires_at=expires,
            updated_at=bindparam("p_now"),
        )
        .returning(*EXECUTION_COLUMNS)
    )


@cache
def _checkpoint_statement(shape: _Shape, full: bool, db_clock: bool = False) -> Update:
    """A checkpoint's UPDATE for one shape, built once (parameters ``p_*``).

    The lease is kept only while RUNNING (``renewing`` extends it); any other
    status releases it. Parking as WAITING stores PENDING if a wake-up arrived
    while the execution ran, so it is not slept through.
    """
    c = EXT.c
    now, expires = _lease_clock(db_clock)
    values: dict[str, Any] = {
        "cursor": bindparam("p_cursor"),
        "current_state": bindparam("p_state"),
        "status": bindparam("p_status"),
        "revision": c.revision + 1,
        "updated_at": bindparam("p_now"),
        "last_seq": c.last_seq + bindparam("p_rows", type_=Integer),
    }
    if shape == "renewing":
        values["lease_expires_at"] = expires
    elif shape != "running":
        values.update(lease_owner=None, lease_expires_at=None, wake_pending=False)
    if shape == "waiting":
        values["status"] = case(
            (c.wake_pending, ExecutionStatus.PENDING.value),
            else_=ExecutionStatus.WAITING.value,
        )
    elif shape == "ended":
        values.update(
            output=bindparam("p_output"),
            error=bindparam("p_error"),
            cause=bindparam("p_cause"),
            ended_at=bindparam("p_now"),
        )
    returning = EXECUTION_COLUMNS if full else (c.status, c.last_seq)
    return (
        update(EXT)
        .where(
            c.id == bindparam("p_id"),
            c.status == ExecutionStatus.RUNNING,
            c.lease_owner == bindparam("p_owner"),
            c.lease_expires_at >= now,
        )
        .values(values)
        .returning(*returning)
    )


@cache
def _logged_checkpoint_statement(shape: _Shape, full: bool, db_clock: bool = False) -> Select[Any]:
    """PostgreSQL: the checkpoint's UPDATE and its history INSERT as one statement.

    ``WITH stored AS (UPDATE ... RETURNING ...), logged AS (INSERT INTO history
    SELECT ... FROM stored JOIN jsonb_to_recordset(:p_history)) SELECT ... FROM
    stored``: no row is logged when the UPDATE matched none (the lease is lost).
    """
    stored = _checkpoint_statement(shape, True, db_clock).cte("stored")
    rows = (
        func.jsonb_to_recordset(bindparam("p_history", type_=JSONB))
        .table_valued(
            column("n", Integer),
            *(column(name, HISTORY_TABLE.c[name].type) for name in _HISTORY_FIELDS),
        )
        .render_derived("h", with_types=True)
    )
    source = select(
        stored.c.id,
        stored.c.last_seq - bindparam("p_rows", type_=Integer) + rows.c.n,
        *(rows.c[name] for name in _HISTORY_FIELDS),
    ).select_from(stored.join(rows, true()))
    logged = insert(HISTORY_TABLE).from_select(["execution_id", "seq", *_HISTORY_FIELDS], source)
    columns = EXECUTION_COLUMNS if full else (EXT.c.status, EXT.c.last_seq)
    return select(*(stored.c[c.name] for c in columns)).add_cte(logged.cte("logged"))


#: History columns a checkpoint writes from its events (besides execution_id, seq).
_HISTORY_FIELDS = (
    "event_type",
    "state_name",
    "state_type",
    "input",
    "output",
    "error",
    "cause",
    "attempt",
    "entered_at",
    "recorded_at",
)


def _touches_waits(step: _Step) -> bool:
    """Whether the checkpoint adds timers or correlations, or must cancel open ones."""
    ending = step.status in TERMINAL_STATUSES and step.may_have_waits
    return bool(step.timers or step.correlations or ending)


def _history_rows(events: Sequence[NewHistoryEvent], now: datetime) -> list[dict[str, Any]]:
    """The events as the JSON array ``jsonb_to_recordset`` reads (times as ISO 8601)."""
    return [
        {
            "n": i,
            "event_type": e.event_type,
            "state_name": e.state_name,
            "state_type": e.state_type,
            "input": e.input,
            "output": e.output,
            "error": e.error,
            "cause": e.cause,
            "attempt": e.attempt,
            "entered_at": None if e.entered_at is None else e.entered_at.isoformat(),
            "recorded_at": (e.recorded_at or now).isoformat(),
        }
        for i, e in enumerate(events, start=1)
    ]


def _checkpoint_params(execution_id: str, owner: str, step: _Step, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {
        "p_id": execution_id,
        "p_owner": owner,
        "p_now": now,
        "p_cursor": step.cursor,
        "p_state": step.current_state,
        "p_status": step.status,
        "p_rows": len(step.history),
    }
    if step.lease_seconds is not None:
        params["p_expires"] = now + timedelta(seconds=step.lease_seconds)
        params["p_lease"] = step.lease_seconds
    if step.status in TERMINAL_STATUSES:
        ending = step.ending
        params.update(p_output=ending.output, p_error=ending.error, p_cause=ending.cause)
    return params


def _insert_history(
    conn: Connection,
    execution_id: str,
    first_seq: int,
    events: Sequence[NewHistoryEvent],
    now: datetime,
) -> None:
    if not events:
        return
    rows = [
        {
            "execution_id": execution_id,
            "seq": first_seq + i,
            "event_type": e.event_type,
            "state_name": e.state_name,
            "state_type": e.state_type,
            "input": e.input,
            "output": e.output,
            "error": e.error,
            "cause": e.cause,
            "attempt": e.attempt,
            "entered_at": e.entered_at,
            "recorded_at": e.recorded_at or now,
        }
        for i, e in enumerate(events)
    ]
    conn.execute(_HISTORY_INSERT, rows)


#: The history INSERT on the Core table (the ORM entity's bulk path costs more).
_HISTORY_INSERT = insert(HISTORY_TABLE)
