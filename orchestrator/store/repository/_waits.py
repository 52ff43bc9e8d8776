"""Parked executions: timers and message correlations, each consumed once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.store import models as m
from orchestrator.store import payloads
from orchestrator.store.records import Correlation, NewCorrelation, NewTimer, Timer
from orchestrator.store.repository._base import EX, Part, utc_now
from orchestrator.types import CorrelationOutcome, ExecutionStatus, TimerKind


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
        targets = {f.execution_id for f in fired if f.kind != TimerKind.MESSAGE_TIMEOUT}
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


def _unlocked(query: Select[int]) -> Select[int]:
    """Only rows no other transaction holds (PostgreSQL; SQLite has one writer).

    A timer or correlation locked by a concurrent sweeper or message is being
    consumed by it; waiting for it could deadlock (they lock timer, then
    correlation, then execution; we hold the execution or the correlation).
    """
    return query.with_for_update(skip_locked=True)
