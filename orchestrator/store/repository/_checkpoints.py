"""Checkpoints: one step of an execution committed in one transaction, if its owner holds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Integer, Row, Select, Update, bindparam, case, insert, update
from sqlalchemy.exc import DBAPIError

from orchestrator.store import payloads
from orchestrator.store.dialect import CALLER_CLOCK, LeaseClock, unindexed
from orchestrator.store.engine import json_dumps
from orchestrator.store.errors import LeaseLost
from orchestrator.store.records import Checkpoint, Execution, ExecutionEnd, NewHistoryEvent
from orchestrator.store.repository._base import (
    EXECUTION_COLUMNS,
    EXT,
    HISTORY_TABLE,
    Part,
    execution_record,
    utc_now,
)
from orchestrator.store.repository._waits import add_waits, cancel_waits
from orchestrator.types import TERMINAL_STATUSES, ExecutionStatus

#: Longest error name stored (AWS allows 256 characters).
ERROR_MAX_CHARS = 256

#: What a checkpoint returns: two columns, or every one (``checkpoint_execution``).
_SHORT = ("status", "last_seq")
_FULL = tuple(c.name for c in EXECUTION_COLUMNS)


class Checkpoints(Part):
    """Committing an execution's steps."""

    def checkpoint(
        self, execution_id: str, owner: str, step: Checkpoint, *, now: datetime | None = None
    ) -> ExecutionStatus:
        """Commit ``step`` of an execution in one transaction, if ``owner`` still holds it.

        Writes the new cursor, status and current state, appends the history
        (sequence numbers follow on), and adds the timers and correlations (a
        correlation with ``timeout_at`` gets its ``MESSAGE_TIMEOUT`` timer).
        The lease is kept only while the status stays RUNNING (extended by
        ``lease_seconds`` if given); any other status releases it. A terminal
        status stores the output, error and cause, sets ``ended_at`` and
        cancels the execution's open timers and correlations. ``claim_count``
        goes back to 0: the step made progress.

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
        clock = self._db.dialect.lease_clock(now)
        row = self._commit(execution_id, owner, step, utc_now(now), full=False, clock=clock)
        return ExecutionStatus(row.status)

    def checkpoint_execution(
        self, execution_id: str, owner: str, step: Checkpoint, *, now: datetime | None = None
    ) -> Execution:
        """:meth:`checkpoint`, returning the execution as stored by it (no second read).

        Raises:
            LeaseLost, PayloadTooLarge, PayloadInvalid: as :meth:`checkpoint`.
        """
        clock = self._db.dialect.lease_clock(now)
        return execution_record(
            self._commit(execution_id, owner, step, utc_now(now), full=True, clock=clock)
        )

    def check_checkpoint(self, step: Checkpoint) -> None:
        """Refuse a step whose payloads cannot be stored, before it is committed.

        What :meth:`checkpoint` checks first; :meth:`checkpoint_many` leaves it to
        its caller, so that one refused step is found while it can still be
        handled on its own, not in the middle of a group commit.

        Raises:
            PayloadTooLarge, PayloadInvalid: a payload cannot be stored.
        """
        self._check_payloads(step)

    def checkpoint_many(
        self, steps: Sequence[tuple[str, str, Checkpoint]], *, now: datetime | None = None
    ) -> list[Execution | None]:
        """Commit steps of several executions in one transaction (a group commit).

        Each ``(execution_id, owner, step)`` is written as :meth:`checkpoint_execution`
        writes it, under its own lease: a step whose owner lost the lease writes
        nothing and gets None, and the others still commit. One COMMIT for all is
        what makes it cheaper than one checkpoint each. The steps must have passed
        :meth:`check_checkpoint`. If one statement fails (anything but a dropped
        connection), the steps are committed one by one instead, so the others
        are not lost with it.

        Returns:
            For each step in order: the execution as stored, or None (lease lost).
        """
        if not steps:
            return []
        clock = self._db.dialect.lease_clock(now)
        statement = self._db.dialect.ended_many(clock)
        now = utc_now(now)
        if statement is not None and all(_plain_end(step) for _, _, step in steps):
            try:
                return self._ended_many(statement, steps, now)
            except DBAPIError as error:
                if error.connection_invalidated or len(steps) == 1:
                    raise
                return [
                    self._one_of_many(ex_id, owner, step, now, clock)
                    for ex_id, owner, step in steps
                ]

        def write(conn: Connection) -> list[Row[Any] | None]:
            return [
                self._write(conn, ex_id, owner, step, now, clock=clock)
                for ex_id, owner, step in steps
            ]

        try:
            rows = self._db.transaction(write)
        except DBAPIError as error:
            if error.connection_invalidated or len(steps) == 1:
                raise
            return [
                self._one_of_many(ex_id, owner, step, now, clock) for ex_id, owner, step in steps
            ]
        return [None if row is None else execution_record(row) for row in rows]

    def check_end(self, end: ExecutionEnd) -> str:
        """Refuse an EXPRESS end whose payloads cannot be stored; return its output as JSON.

        Raises:
            PayloadTooLarge, PayloadInvalid: the output or error cannot be stored.
        """
        payloads.check_text(end.error, field="error", max_chars=ERROR_MAX_CHARS)
        return payloads.encode(end.output, field="output", limit=self._db.payload_max_bytes)

    def end_many(
        self,
        ends: Sequence[ExecutionEnd],
        owner: str,
        *,
        claimed: Sequence[Execution],
        encoded: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> list[Execution | None]:
        """Store the final rows of EXPRESS executions ``owner`` holds: one statement.

        An EXPRESS execution has no history and no checkpoint but its end: status,
        output, error and cause, ``ended_at``; its lease is released. On PostgreSQL
        this is one ``UPDATE ... FROM jsonb_to_recordset`` (one round trip for the
        whole message), or for a single end a prepared single-row UPDATE
        (``Dialect.end_one``); on SQLite one UPDATE each, in one transaction.

        Args:
            ends: the final rows; each must have passed :meth:`check_end`.
            owner: the lease owner.
            claimed: each end's execution as ``owner`` claimed it (same order): the
                rows returned are these with the end applied, not read back.
            encoded: each end's output as :meth:`check_end` returned it (encoded
                once); default: encoded here.
            now: the time. Default: now (leases are then read by PostgreSQL's clock).

        Returns:
            For each end in order: the execution as stored, or None (lease lost:
            stopped, or taken over after this worker's lease ran out).
        """
        if not ends:
            return []
        clock = self._db.dialect.lease_clock(now)
        statement = self._db.dialect.end_many(clock)
        if statement is None:
            steps = [(end.execution_id, owner, _final_step(end)) for end in ends]
            return self.checkpoint_many(steps, now=now)
        texts = encoded if encoded is not None else [self.check_end(end) for end in ends]
        ended_at = utc_now(now)
        single = self._db.end_one(clock) if len(ends) == 1 else None
        if single is not None:
            end, text = ends[0], texts[0]
            params = (
                ExecutionStatus(end.status).value,
                None if text == "null" else text,  # SQL NULL, as jsonb_to_recordset reads it
                end.error,
                end.cause,
                ended_at,
                end.execution_id,
                owner,
            )
            stored = self._db.prepared_rows(single, params)
        else:
            stored = self._db.statement_rows(
                statement, self._end_params(ends, texts, owner, ended_at)
            )
        revisions = {row.id: row.revision for row in stored}
        return [
            None
            if end.execution_id not in revisions
            else replace(
                execution,
                status=ExecutionStatus(end.status),
                output=end.output,
                error=end.error,
                cause=end.cause,
                ended_at=ended_at,
                updated_at=ended_at,
                lease_owner=None,
                lease_expires_at=None,
                wake_pending=False,
                revision=revisions[end.execution_id],
                claim_count=0,
            )
            for end, execution in zip(ends, claimed, strict=True)
        ]

    @staticmethod
    def _end_params(
        ends: Sequence[ExecutionEnd], texts: Sequence[str], owner: str, ended_at: datetime
    ) -> dict[str, Any]:
        rows = ",".join(
            f'{{"id":{json_dumps(end.execution_id)},"status":{json_dumps(ExecutionStatus(end.status).value)},"output":{text},"error":{json_dumps(end.error)},"cause":{json_dumps(end.cause)}}}'
            for end, text in zip(ends, texts, strict=True)
        )
        return {
            "rows": f"[{rows}]",
            "ids": [end.execution_id for end in ends],
            "owner": owner,
            "now": ended_at,
        }

    def _ended_many(
        self, statement: Any, steps: Sequence[tuple[str, str, Checkpoint]], now: datetime
    ) -> list[Execution | None]:
        """Final checkpoints with their history in one statement (one round trip)."""
        rows, history = [], []
        for execution_id, owner, step in steps:
            rows.append(
                {
                    "id": execution_id,
                    "owner": owner,
                    "cursor": step.cursor,
                    "state": step.current_state,
                    "status": ExecutionStatus(step.status).value,
                    "nrows": len(step.history),
                    "output": step.output,
                    "error": step.error,
                    "cause": step.cause,
                }
            )
            for event in self._db.dialect.history_param(step.history, now):
                history.append({"id": execution_id, **event})
        params = {
            "rows": json_dumps(rows),
            "ids": [execution_id for execution_id, _, _ in steps],
            "history": json_dumps(history),
            "now": now,
        }
        stored = self._db.statement_rows(statement, params)
        by_id = {row.id: execution_record(row) for row in stored}
        return [by_id.get(execution_id) for execution_id, _, _ in steps]

    def _one_of_many(
        self, execution_id: str, owner: str, step: Checkpoint, now: datetime, clock: LeaseClock
    ) -> Execution | None:
        try:
            row = self._db.transaction(
                lambda conn: self._write(conn, execution_id, owner, step, now, clock=clock)
            )
        except DBAPIError as error:
            if error.connection_invalidated:
                raise
            # This step cannot be stored: its lease runs out and recovery takes it.
            return None
        return None if row is None else execution_record(row)

    def _commit(
        self,
        execution_id: str,
        owner: str,
        step: Checkpoint,
        now: datetime,
        *,
        full: bool,
        clock: LeaseClock = CALLER_CLOCK,
    ) -> Row[Any]:
        """Write ``step``; return the row stored (all columns if ``full``, else two).

        Without a ``now`` from the caller, the lease is checked and extended by
        PostgreSQL's clock (``clock``, see :class:`~orchestrator.store.dialect.LeaseClock`).
        """
        self._check_payloads(step)
        logged = self._logged(step, full, clock)
        if logged is not None:
            # One statement: UPDATE ... RETURNING feeding the history INSERT. Not
            # retried: a second run after a commit would append the history again.
            params = _params(execution_id, owner, step, ExecutionStatus(step.status), now)
            params["p_history"] = self._db.dialect.history_param(step.history, now)
            row = self._db.statement(logged, params, retry=False)
        else:
            row = self._db.transaction(
                lambda conn: self._write(
                    conn, execution_id, owner, step, now, full=full, clock=clock
                )
            )
        if row is None:
            raise LeaseLost(execution_id, owner)
        return row

    def _logged(
        self, step: Checkpoint, full: bool, clock: LeaseClock = CALLER_CLOCK
    ) -> Select[Any] | None:
        """The one-statement form of ``step``, if it has one (no waits to add or cancel)."""
        status = ExecutionStatus(step.status)
        ends = status in TERMINAL_STATUSES and step.may_have_waits
        if step.timers or step.correlations or ends:
            return None
        shape = _shape(status, step.lease_seconds)
        return self._db.dialect.logged_checkpoint(
            _update(shape, True, clock), _FULL if full else _SHORT
        )

    def _write(
        self,
        conn: Connection,
        execution_id: str,
        owner: str,
        step: Checkpoint,
        now: datetime,
        *,
        full: bool = True,
        clock: LeaseClock = CALLER_CLOCK,
    ) -> Row[Any] | None:
        """Write ``step`` in the transaction of ``conn``; None if the lease is lost."""
        status = ExecutionStatus(step.status)
        params = _params(execution_id, owner, step, status, now)
        logged = self._logged(step, full, clock)
        if logged is not None:
            params["p_history"] = self._db.dialect.history_param(step.history, now)
            return conn.execute(logged, params).first()
        shape = _shape(status, step.lease_seconds)
        row = conn.execute(_update(shape, full, clock), params).first()
        if row is None:
            return None
        history = step.history
        _insert_history(conn, execution_id, row.last_seq - len(history) + 1, history, now)
        add_waits(conn, execution_id, step.timers, step.correlations, now)
        if status in TERMINAL_STATUSES and step.may_have_waits:
            cancel_waits(conn, execution_id, now)
        return row

    def _check_payloads(self, step: Checkpoint) -> None:
        limit = self._db.payload_max_bytes
        payloads.encode(step.cursor, field="cursor")
        payloads.encode(step.output, field="output", limit=limit)
        payloads.check_text(step.error, field="error", max_chars=ERROR_MAX_CHARS)
        for i, event in enumerate(step.history):
            payloads.encode(event.input, field=f"history[{i}].input", limit=limit)
            payloads.encode(event.output, field=f"history[{i}].output", limit=limit)
            payloads.check_text(event.error, field=f"history[{i}].error", max_chars=ERROR_MAX_CHARS)
        for i, timer in enumerate(step.timers):
            payloads.encode(timer.payload, field=f"timers[{i}].payload", limit=limit)
        for i, corr in enumerate(step.correlations):
            payloads.canonical(corr.value, field=f"correlations[{i}].value")


def _plain_end(step: Checkpoint) -> bool:
    """A final checkpoint the one-statement group commit can write (no waits, no lease)."""
    return (
        ExecutionStatus(step.status) in TERMINAL_STATUSES
        and not step.timers
        and not step.correlations
        and not step.may_have_waits
        and step.lease_seconds is None
    )


def _final_step(end: ExecutionEnd) -> Checkpoint:
    """An EXPRESS end as a checkpoint (where one statement cannot end them all)."""
    return Checkpoint(
        cursor=None,
        status=end.status,
        output=end.output,
        error=end.error,
        cause=end.cause,
        may_have_waits=False,
    )


#: Which UPDATE a checkpoint needs (see ``_update``).
_Shape = str


def _shape(status: ExecutionStatus, lease_seconds: float | None) -> _Shape:
    if status == ExecutionStatus.RUNNING:
        return "running" if lease_seconds is None else "renewing"
    if status == ExecutionStatus.WAITING:
        return "waiting"
    return "ended" if status in TERMINAL_STATUSES else "released"


@cache
def _update(shape: _Shape, full: bool, clock: LeaseClock = CALLER_CLOCK) -> Update:
    """A checkpoint's UPDATE for one shape, built once (parameters ``p_*``).

    The lease is kept only while RUNNING (``renewing`` extends it); any other
    status releases it. Parking as WAITING stores PENDING if a wake-up arrived
    while the execution ran, so it is not slept through.
    """
    c = EXT.c
    values: dict[str, Any] = {
        "cursor": bindparam("p_cursor"),
        "current_state": bindparam("p_state"),
        "status": bindparam("p_status"),
        "revision": c.revision + 1,
        "updated_at": bindparam("p_now"),
        "last_seq": c.last_seq + bindparam("p_rows", type_=Integer),
        # Committed progress: the worker that claimed it did not die on this step.
        "claim_count": 0,
    }
    if shape == "renewing":
        values["lease_expires_at"] = clock.expires()
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
            unindexed(c.status) == ExecutionStatus.RUNNING,
            c.lease_owner == bindparam("p_owner"),
            c.lease_expires_at >= clock.now(),
        )
        .values(values)
        .returning(*returning)
    )


def _params(
    execution_id: str, owner: str, step: Checkpoint, status: ExecutionStatus, now: datetime
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "p_id": execution_id,
        "p_owner": owner,
        "p_now": now,
        "p_cursor": step.cursor,
        "p_state": step.current_state,
        "p_status": status,
        "p_rows": len(step.history),
    }
    if step.lease_seconds is not None:
        params["p_expires"] = now + timedelta(seconds=step.lease_seconds)
        params["p_lease"] = step.lease_seconds
    if status in TERMINAL_STATUSES:
        params.update(p_output=step.output, p_error=step.error, p_cause=step.cause)
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
            "assigned": e.assigned,
            "path": None if e.path is None else list(e.path),
            "started_at": e.started_at,
        }
        for i, e in enumerate(events)
    ]
    conn.execute(_HISTORY_INSERT, rows)


#: The history INSERT on the Core table (the ORM entity's bulk path costs more).
_HISTORY_INSERT = insert(HISTORY_TABLE)
