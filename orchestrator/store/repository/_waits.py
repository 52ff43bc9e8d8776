# Over 600 lines on purpose: timers, message correlations and task tokens are one aggregate (what
# a parked execution waits for) and share the wake-up path.
"""Parked executions: timers, message correlations and task tokens, each consumed once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, case, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.store import models as m
from orchestrator.store import payloads
from orchestrator.store.errors import InvalidToken, LeaseLost, TaskDoesNotExist, TaskTimedOut
from orchestrator.store.records import (
    Correlation,
    NewCorrelation,
    NewTaskToken,
    NewTimer,
    TaskToken,
    Timer,
)
from orchestrator.store.repository._base import EX, Part, utc_now
from orchestrator.types import (
    TERMINAL_STATUSES,
    CorrelationOutcome,
    ExecutionStatus,
    TaskTokenStatus,
    TimerKind,
)

#: Longest task token accepted (AWS: 1,024 characters).
TOKEN_MAX_CHARS = 1024


class Waits(Part):
    """Timers and message correlations."""

    def claim_due_timers(self, now: datetime | None = None, *, limit: int = 100) -> list[Timer]:
        """Fire up to ``limit`` due timers and wake their executions.

        Several sweepers may run at once: on PostgreSQL each takes different
        rows (``FOR UPDATE SKIP LOCKED``); SQLite runs them one after another.
        A ``MESSAGE_TIMEOUT`` timer wakes its execution only if it consumes the
        correlation first (outcome TIMEOUT); a message that came first wins.
        Waking makes a WAITING execution PENDING; a PENDING or RUNNING one is
        marked so that its next park does not sleep.

        Returns:
            The timers fired now whose execution became PENDING and should be
            published to a worker. All due timers taken are marked fired.
        """
        now = utc_now(now)
        t = m.Timer
        with self._db.write() as conn:
            ids = (
                conn.execute(
                    select(t.id)
                    .where(t.fired.is_(False), t.due_at <= now)
                    .order_by(t.due_at, t.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            fired = [
                _timer(row)
                for row in conn.execute(
                    update(t)
                    .where(t.id.in_(ids))
                    .values(fired=True, fired_at=now)
                    .returning(*_timer_columns())
                )
            ]
            woken = wake(conn, self._timer_targets(conn, fired, now), now)
        return sorted((f for f in fired if f.execution_id in woken), key=lambda f: f.due_at)

    @staticmethod
    def _timer_targets(conn: Connection, fired: list[Timer], now: datetime) -> set[str]:
        tied = (TimerKind.MESSAGE_TIMEOUT, TimerKind.TASK_TOKEN)
        targets = {f.execution_id for f in fired if f.kind not in tied}
        deadlines = [f.id for f in fired if f.kind == TimerKind.TASK_TOKEN]
        if deadlines:
            targets.update(_expire_tokens(conn, deadlines, now))
        timeouts = [f.correlation_id for f in fired if f.kind == TimerKind.MESSAGE_TIMEOUT]
        if timeouts:
            c = m.MessageCorrelation
            targets.update(
                conn.execute(
                    update(c)
                    .where(c.id.in_(timeouts), c.consumed.is_(False))
                    .values(consumed=True, consumed_at=now, outcome=CorrelationOutcome.TIMEOUT)
                    .returning(c.execution_id)
                ).scalars()
            )
        return targets

    def execution_timers(self, execution_id: str) -> list[Timer]:
        """Return the execution's timers, fired or not, by due time."""
        t = m.Timer
        query = (
            select(*_timer_columns()).where(t.execution_id == execution_id).order_by(t.due_at, t.id)
        )
        with self._db.read() as conn:
            return [_timer(row) for row in conn.execute(query)]

    # -- message correlations ------------------------------------------------

    def consume_correlations(
        self, key: str, value: Any, *, message: Any = None, now: datetime | None = None
    ) -> list[Correlation]:
        """Deliver a message to every open correlation on (``key``, ``value``), once each.

        A correlation is consumed at most once, whoever races for it: the
        UPDATE only takes rows still unconsumed and not timed out, and the
        rows it returns are this call's. Their executions are woken (see
        ``claim_due_timers``) and their timeout timers disarmed.

        Returns:
            The correlations this call consumed (empty if none was open; see
            ``find_correlations`` to tell "timed out" from "never existed").

        Raises:
            PayloadTooLarge, PayloadInvalid: ``message`` or ``value`` cannot be stored.
        """
        now = utc_now(now)
        text = payloads.canonical(value)
        payloads.encode(message, field="message", limit=self._db.payload_max_bytes)
        c = m.MessageCorrelation
        with self._db.write() as conn:
            rows = conn.execute(
                update(c)
                .where(
                    *_correlation_match(key, text),
                    c.consumed.is_(False),
                    or_(c.timeout_at.is_(None), c.timeout_at > now),
                )
                .values(
                    consumed=True,
                    consumed_at=now,
                    outcome=CorrelationOutcome.MESSAGE,
                    message=message,
                )
                .returning(*_correlation_columns())
            ).all()
            consumed = sorted((_correlation(row) for row in rows), key=lambda corr: corr.id)
            if consumed:
                _disarm_timers(conn, [corr.id for corr in consumed], now)
                wake(conn, {corr.execution_id for corr in consumed}, now)
        return consumed

    def find_correlations(self, key: str, value: Any) -> list[Correlation]:
        """Return every correlation on (``key``, ``value``), consumed or not, oldest first."""
        c = m.MessageCorrelation
        query = (
            select(*_correlation_columns())
            .where(*_correlation_match(key, payloads.canonical(value)))
            .order_by(c.id)
        )
        with self._db.read() as conn:
            return [_correlation(row) for row in conn.execute(query)]

    def execution_correlations(self, execution_id: str) -> list[Correlation]:
        """Return the execution's correlations, oldest first (the runtime reads the message)."""
        c = m.MessageCorrelation
        query = select(*_correlation_columns()).where(c.execution_id == execution_id).order_by(c.id)
        with self._db.read() as conn:
            return [_correlation(row) for row in conn.execute(query)]

    # -- task tokens ---------------------------------------------------------

    def add_task_token(
        self, execution_id: str, owner: str, token: NewTaskToken, *, now: datetime | None = None
    ) -> TaskToken:
        """Register a task token (its SHA-256) and its deadline timer, if ``owner`` holds it.

        Called before the handler gets the token, so that an answer sent at once
        finds it. The timer fires at the next deadline: ``timeout_at`` or, sooner,
        ``heartbeat_seconds`` after the start (each heartbeat moves it). The same
        token registered again (a Task re-issued after a crash) returns the row
        stored the first time.

        Raises:
            LeaseLost: ``owner`` does not hold this RUNNING execution; nothing was written.
            InvalidToken: the token is not 1 to 1,024 printable ASCII characters.
        """
        now = utc_now(now)
        digest = token_digest(token.token)
        payloads.encode(token.payload, field="task token payload")
        t = m.TaskToken
        with self._db.write() as conn:
            held = conn.execute(
                select(EX.id)
                .where(
                    EX.id == execution_id,
                    EX.status == ExecutionStatus.RUNNING,
                    EX.lease_owner == owner,
                )
                .with_for_update()
            ).first()
            if held is None:
                raise LeaseLost(execution_id, owner)
            found = conn.execute(select(*_token_columns()).where(t.token_hash == digest)).first()
            if found is not None and found.status != TaskTokenStatus.CANCELLED:
                return _token(found)
            due = _deadline(token.timeout_at, token.heartbeat_seconds, now)
            timer_id = None
            if due is not None:
                row = _timer_row(execution_id, TimerKind.TASK_TOKEN, due, token.payload, None, now)
                timer_id = conn.execute(
                    insert(m.Timer).values(row).returning(m.Timer.id)
                ).scalar_one()
            if found is not None:  # cancelled when its execution stopped; a redrive reopens it
                return _token(
                    conn.execute(
                        update(t)
                        .where(t.id == found.id)
                        .values(
                            status=TaskTokenStatus.WAITING,
                            created_at=now,
                            heartbeat_at=None,
                            timeout_at=token.timeout_at,
                            timer_id=timer_id,
                            called_at=None,
                            completed_at=None,
                        )
                        .returning(*_token_columns())
                    ).one()
                )
            stored = conn.execute(
                insert(t)
                .values(
                    token_hash=digest,
                    execution_id=execution_id,
                    state_name=token.state_name,
                    attempt=token.attempt,
                    status=TaskTokenStatus.WAITING,
                    payload=token.payload,
                    created_at=now,
                    heartbeat_at=None,
                    timeout_at=token.timeout_at,
                    heartbeat_seconds=token.heartbeat_seconds,
                    timer_id=timer_id,
                )
                .returning(*_token_columns())
            ).one()
        return _token(stored)

    def complete_task_token(
        self,
        token: str,
        status: TaskTokenStatus,
        *,
        output: Any = None,
        error: str | None = None,
        cause: str | None = None,
        now: datetime | None = None,
    ) -> TaskToken:
        """Use a waiting token once: SUCCEEDED with ``output`` or FAILED with ``error``/``cause``.

        Its deadline timer is disarmed and its execution woken (see
        ``claim_due_timers``): WAITING becomes PENDING, a RUNNING one is flagged
        so that its next park does not sleep through the answer.

        Returns:
            The token as stored now.

        Raises:
            InvalidToken: malformed, or already used.
            TaskDoesNotExist: unknown, or its execution ended or moved on.
            TaskTimedOut: its TimeoutSeconds or HeartbeatSeconds passed.
            PayloadTooLarge, PayloadInvalid: ``output`` cannot be stored.
        """
        if status not in (TaskTokenStatus.SUCCEEDED, TaskTokenStatus.FAILED):
            raise ValueError(f"a task token is completed as SUCCEEDED or FAILED, not {status}")
        now = utc_now(now)
        digest = token_digest(token)
        payloads.encode(output, field="output", limit=self._db.payload_max_bytes)
        payloads.check_text(error, field="error", max_chars=256)
        t = m.TaskToken
        with self._db.write() as conn:
            found = _waiting_token(conn, digest, now)
            stored = conn.execute(
                update(t)
                .where(t.id == found.id, t.status == TaskTokenStatus.WAITING)
                .values(status=status, completed_at=now, output=output, error=error, cause=cause)
                .returning(*_token_columns())
            ).one()
            if found.timer_id is not None:
                timer = m.Timer
                conn.execute(
                    update(timer)
                    .where(timer.id == found.timer_id, timer.fired.is_(False))
                    .values(fired=True, fired_at=now)
                )
            wake(conn, {found.execution_id}, now)
        return _token(stored)

    def heartbeat_task_token(self, token: str, *, now: datetime | None = None) -> TaskToken:
        """Record a heartbeat: the missed-heartbeat deadline moves to now + HeartbeatSeconds.

        Returns:
            The token as stored now.

        Raises:
            InvalidToken, TaskDoesNotExist, TaskTimedOut: as ``complete_task_token``.
        """
        now = utc_now(now)
        digest = token_digest(token)
        t = m.TaskToken
        with self._db.write() as conn:
            found = _waiting_token(conn, digest, now)
            stored = conn.execute(
                update(t)
                .where(t.id == found.id)
                .values(heartbeat_at=now)
                .returning(*_token_columns())
            ).one()
            due = _deadline(found.timeout_at, found.heartbeat_seconds, now)
            if found.timer_id is not None and due is not None:
                timer = m.Timer
                conn.execute(
                    update(timer)
                    .where(timer.id == found.timer_id, timer.fired.is_(False))
                    .values(due_at=due)
                )
        return _token(stored)

    def task_token_called(
        self, token_id: int, *, failed: bool = False, now: datetime | None = None
    ) -> None:
        """Record that the handler given the token returned, so a resume does not call it again.

        ``failed``: it raised, so the Task failed at once and the token is cancelled
        (an answer with it is refused: its Task no longer waits).
        """
        now = utc_now(now)
        t = m.TaskToken
        values: dict[str, Any] = {"called_at": now}
        if failed:
            values.update(status=TaskTokenStatus.CANCELLED, completed_at=now)
        waiting = (t.id == token_id, t.status == TaskTokenStatus.WAITING)
        with self._db.write() as conn:
            conn.execute(update(t).where(*waiting).values(values))

    def find_task_token(self, token: str) -> TaskToken | None:
        """The stored row of a token, in whatever state, or None if it is unknown."""
        query = select(*_token_columns()).where(m.TaskToken.token_hash == token_digest(token))
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _token(row)

    def execution_task_tokens(self, execution_id: str) -> list[TaskToken]:
        """Return the execution's task tokens, oldest first (the runtime reads the outcomes)."""
        t = m.TaskToken
        query = select(*_token_columns()).where(t.execution_id == execution_id).order_by(t.id)
        with self._db.read() as conn:
            return [_token(row) for row in conn.execute(query)]


def token_digest(token: str) -> str:
    """The SHA-256 under which a token is stored.

    Raises:
        InvalidToken: not 1 to 1,024 printable ASCII characters without spaces.
    """
    if not isinstance(token, str) or not 0 < len(token) <= TOKEN_MAX_CHARS:
        raise InvalidToken(f"a task token is 1 to {TOKEN_MAX_CHARS} characters")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise InvalidToken("a task token holds printable ASCII characters only, no spaces")
    return payloads.digest(token)


def _deadline(
    timeout_at: datetime | None, heartbeat_seconds: float | None, since: datetime
) -> datetime | None:
    """The next deadline of a token: its timeout, or sooner its next heartbeat."""
    beat = None if heartbeat_seconds is None else since + timedelta(seconds=heartbeat_seconds)
    if beat is None or (timeout_at is not None and timeout_at <= beat):
        return timeout_at
    return beat


def _waiting_token(conn: Connection, digest: str, now: datetime) -> TaskToken:
    """The token's row, locked, if it still waits; else the refusal that says why."""
    t = m.TaskToken
    row = conn.execute(
        select(*_token_columns()).where(t.token_hash == digest).with_for_update()
    ).first()
    if row is None:
        raise TaskDoesNotExist("no task waits for this token: it is unknown")
    found = _token(row)
    where = f"state '{found.state_name}' of execution {found.execution_id}"
    if found.status in (TaskTokenStatus.SUCCEEDED, TaskTokenStatus.FAILED):
        raise InvalidToken(
            f"the token was already used: {where} {found.status.lower()} at {found.completed_at}"
        )
    status = conn.execute(select(EX.status).where(EX.id == found.execution_id)).scalar_one()
    if ExecutionStatus(status) in TERMINAL_STATUSES and found.status not in _EXPIRED:
        raise TaskDoesNotExist(
            f"the token belongs to execution {found.execution_id}, which is {status}"
        )
    if found.status == TaskTokenStatus.CANCELLED:
        raise TaskDoesNotExist(f"{where} no longer waits for this token")
    _refuse_expired(found, where, now)
    return found


_EXPIRED = (TaskTokenStatus.TIMED_OUT, TaskTokenStatus.NO_HEARTBEAT)


def _refuse_expired(found: TaskToken, where: str, now: datetime) -> None:
    """Raise TaskTimedOut for a token whose deadline passed (fired by the sweeper or not)."""
    if found.status == TaskTokenStatus.NO_HEARTBEAT or _heartbeat_missed(found, now):
        raise TaskTimedOut(
            f"{where} timed out: no heartbeat within {found.heartbeat_seconds:g} seconds"
        )
    if found.status == TaskTokenStatus.TIMED_OUT or (
        found.timeout_at is not None and found.timeout_at <= now
    ):
        raise TaskTimedOut(f"{where} timed out at {found.timeout_at} (TimeoutSeconds)")


def _heartbeat_missed(found: TaskToken, now: datetime) -> bool:
    if found.heartbeat_seconds is None or found.status != TaskTokenStatus.WAITING:
        return False
    last = found.heartbeat_at or found.created_at
    return last + timedelta(seconds=found.heartbeat_seconds) <= now


def _expire_tokens(conn: Connection, timer_ids: list[int], now: datetime) -> set[str]:
    """End the waiting tokens of fired deadline timers; return their executions."""
    t = m.TaskToken
    timed_out = and_(t.timeout_at.is_not(None), t.timeout_at <= now)
    return set(
        conn.execute(
            update(t)
            .where(t.timer_id.in_(timer_ids), t.status == TaskTokenStatus.WAITING)
            .values(
                status=case(
                    (timed_out, TaskTokenStatus.TIMED_OUT.value),
                    else_=TaskTokenStatus.NO_HEARTBEAT.value,
                ),
                completed_at=now,
            )
            .returning(t.execution_id)
        ).scalars()
    )


def _token_columns() -> list[Any]:
    return list(m.TaskToken.__table__.c)


def _token(row: Row[Any]) -> TaskToken:
    fields = dict(row._mapping)
    fields["status"] = TaskTokenStatus(fields["status"])
    return TaskToken(**fields)


def _timer_columns() -> list[Any]:
    return list(m.Timer.__table__.c)


def _timer(row: Row[Any]) -> Timer:
    return Timer(**row._mapping)


def _correlation_columns() -> list[Any]:
    c = m.MessageCorrelation
    return [
        c.id,
        c.execution_id,
        c.state_name,
        c.correlation_key.label("key"),
        c.correlation_value.label("value"),
        c.created_at,
        c.timeout_at,
        c.consumed,
        c.consumed_at,
        c.outcome,
        c.message,
        c.payload,
    ]


def _correlation(row: Row[Any]) -> Correlation:
    fields = dict(row._mapping)
    fields["value"] = json.loads(fields["value"])
    return Correlation(**fields)


def _correlation_match(key: str, canonical_value: str) -> list[ColumnElement[bool]]:
    c = m.MessageCorrelation
    return [
        c.correlation_key == key,
        c.value_hash == payloads.digest(canonical_value),
        c.correlation_value == canonical_value,
    ]


def _correlation_row(execution_id: str, corr: NewCorrelation, now: datetime) -> dict[str, Any]:
    text = payloads.canonical(corr.value)
    return {
        "execution_id": execution_id,
        "state_name": corr.state_name,
        "correlation_key": corr.key,
        "correlation_value": text,
        "value_hash": payloads.digest(text),
        "created_at": now,
        "timeout_at": corr.timeout_at,
        "consumed": False,
        "consumed_at": None,
        "outcome": None,
        "message": None,
        "payload": corr.payload,
    }


def _timer_row(
    execution_id: str,
    kind: TimerKind,
    due_at: datetime,
    payload: Any,
    correlation_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "correlation_id": correlation_id,
        "kind": kind,
        "due_at": due_at,
        "payload": payload,
        "fired": False,
        "fired_at": None,
        "created_at": now,
    }


def add_waits(
    conn: Connection,
    execution_id: str,
    timers: Sequence[NewTimer],
    correlations: Sequence[NewCorrelation],
    now: datetime,
) -> None:
    rows = [_timer_row(execution_id, t.kind, t.due_at, t.payload, None, now) for t in timers]
    for corr in correlations:
        corr_id = conn.execute(
            insert(m.MessageCorrelation)
            .values(_correlation_row(execution_id, corr, now))
            .returning(m.MessageCorrelation.id)
        ).scalar_one()
        if corr.timeout_at is not None:
            kind = TimerKind.MESSAGE_TIMEOUT
            rows.append(_timer_row(execution_id, kind, corr.timeout_at, corr.payload, corr_id, now))
    if rows:
        conn.execute(insert(m.Timer), rows)


def wake(conn: Connection, execution_ids: set[str], now: datetime) -> set[str]:
    """Wake executions; return those that went from WAITING to PENDING."""
    if not execution_ids:
        return set()
    ids = sorted(execution_ids)
    # First flag the ones a worker is running, so that parking them again does
    # not sleep through this wake-up (a PENDING one reads its waits when it is
    # claimed). Order matters: the next statement makes rows PENDING.
    running = ExecutionStatus.RUNNING
    conn.execute(update(EX).where(EX.id.in_(ids), EX.status == running).values(wake_pending=True))
    return set(
        conn.execute(
            update(EX)
            .where(EX.id.in_(ids), EX.status == ExecutionStatus.WAITING)
            .values(status=ExecutionStatus.PENDING, updated_at=now)
            .returning(EX.id)
        ).scalars()
    )


def _disarm_timers(conn: Connection, correlation_ids: list[int], now: datetime) -> None:
    t = m.Timer
    armed = select(t.id).where(t.correlation_id.in_(correlation_ids), t.fired.is_(False))
    conn.execute(update(t).where(t.id.in_(_unlocked(armed))).values(fired=True, fired_at=now))


def cancel_waits(conn: Connection, execution_id: str, now: datetime) -> None:
    """Cancel an ended execution's open correlations and unfired timers."""
    c, t = m.MessageCorrelation, m.Timer
    open_ids = _unlocked(select(c.id).where(c.execution_id == execution_id, c.consumed.is_(False)))
    conn.execute(
        update(c)
        .where(c.id.in_(open_ids))
        .values(consumed=True, consumed_at=now, outcome=CorrelationOutcome.CANCELLED)
    )
    unfired = _unlocked(select(t.id).where(t.execution_id == execution_id, t.fired.is_(False)))
    conn.execute(update(t).where(t.id.in_(unfired)).values(fired=True, fired_at=now))
    k = m.TaskToken
    waiting = select(k.id).where(
        k.execution_id == execution_id, k.status == TaskTokenStatus.WAITING
    )
    conn.execute(
        update(k)
        .where(k.id.in_(_unlocked(waiting)))
        .values(status=TaskTokenStatus.CANCELLED, completed_at=now)
    )


def _unlocked(query: Select[int]) -> Select[int]:
    """Only rows no other transaction holds (PostgreSQL; SQLite has one writer).

    A timer or correlation locked by a concurrent sweeper or message is being
    consumed by it; waiting for it could deadlock (they lock timer, then
    correlation, then execution; we hold the execution or the correlation).
    """
    return query.with_for_update(skip_locked=True)
