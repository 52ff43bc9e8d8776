"""Running executions: leases, stop, redrive and recovery (checkpoints: ``_checkpoints``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Update, and_, bindparam, case, delete, false, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.store import payloads
from orchestrator.store.dialect import (
    CALLER_CLOCK,
    LeaseClock,
    commit_without_flush,
    unindexed,
)
from orchestrator.store.errors import LeaseLost
from orchestrator.store.records import Execution
from orchestrator.store.repository._base import (
    ACTIVE,
    EX,
    EXECUTION_COLUMNS,
    EXT,
    Part,
    execution_record,
    require_execution,
    utc_now,
)
from orchestrator.store.repository._checkpoints import ERROR_MAX_CHARS
from orchestrator.store.repository._waits import cancel_waits
from orchestrator.types import (
    REDRIVABLE_STATUSES,
    START_TICKET_PREFIX,
    TERMINAL_STATUSES,
    ExecutionStatus,
)


class Runs(Part):
    """Leases, stopping, redriving, recovery."""

    def claim(
        self,
        execution_id: str,
        owner: str,
        *,
        lease_seconds: float,
        now: datetime | None = None,
        ticket: str | None = None,
    ) -> Execution | None:
        """Take the lease on a PENDING or RUNNING execution and mark it RUNNING.

        Succeeds only if nobody else holds a live lease (no owner, the owner is
        ``owner``, or the lease expired). Atomic across processes. A claim that
        takes the execution over adds one to ``claim_count`` (see ``checkpoint``).

        With ``ticket`` (the start ticket the execution's message carries), a live
        lease held by that ticket is taken over too, and counts as a take-over: a
        redelivered start whose first worker died.

        Without ``now``, PostgreSQL's clock decides whether a lease expired and
        when the new one does (:class:`~orchestrator.store.dialect.LeaseClock`).

        Returns:
            The claimed execution, or None (held by another, WAITING, ended or missing).
        """
        clock = self._db.dialect.lease_clock(now)
        now = utc_now(now)
        params = {
            "p_id": execution_id,
            "p_owner": owner,
            "p_now": now,
            "p_expires": now + timedelta(seconds=lease_seconds),
            "p_lease": lease_seconds,
        }
        # Claiming again for the same owner is harmless, so a retry is safe.
        statement = _claim_statement(clock)
        if ticket is not None:
            statement, params["p_ticket"] = _ticket_claim_statement(clock), ticket
        row = self._db.statement(statement, params, retry=True)
        return None if row is None else execution_record(row)

    def claim_many(
        self,
        execution_ids: Sequence[str],
        owner: str,
        *,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> dict[str, Execution]:
        """:meth:`claim` several executions in one ``UPDATE ... RETURNING`` (a group claim).

        Each execution is claimed on its own terms (its own lease, same conditions
        as :meth:`claim`); those held by another worker, parked, ended or missing
        are simply not returned. Claiming again for the same owner is harmless, so
        the statement is retried once if the server dropped the connection.

        Without ``now``, PostgreSQL's clock decides (see :meth:`claim`).

        Returns:
            The claimed executions by id (in no particular order).
        """
        if not execution_ids:
            return {}
        clock = self._db.dialect.lease_clock(now)
        now = utc_now(now)
        params = {
            "p_ids": list(dict.fromkeys(execution_ids)),
            "p_owner": owner,
            "p_now": now,
            "p_expires": now + timedelta(seconds=lease_seconds),
            "p_lease": lease_seconds,
        }
        # One round trip on PostgreSQL (autocommit), not UPDATE then COMMIT.
        rows = self._db.statement_rows(_claim_many_statement(clock), params, retry=True)
        return {row.id: execution_record(row) for row in rows}

    def renew_lease(
        self,
        execution_id: str,
        owner: str,
        *,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> datetime:
        """Extend ``owner``'s live lease to ``now + lease_seconds``.

        Without ``now``, PostgreSQL's clock decides (see :meth:`claim`).

        Returns:
            The new expiry.

        Raises:
            LeaseLost: ``owner`` does not hold a live lease on a RUNNING execution.
        """
        clock = self._db.dialect.lease_clock(now)
        now = utc_now(now)
        expires = now + timedelta(seconds=lease_seconds)
        params = {"p_now": now, "p_expires": expires, "p_lease": lease_seconds}
        with self._db.write() as conn:
            row = conn.execute(
                update(EX)
                .where(*_held_by(execution_id, owner, clock.now()))
                .values(lease_expires_at=clock.expires())
                .returning(EX.lease_expires_at),
                params,
            ).first()
            if row is None:
                raise LeaseLost(execution_id, owner)
        stored: datetime = row.lease_expires_at
        return stored if clock.server else expires

    def release(self, execution_id: str, owner: str) -> bool:
        """Give up ``owner``'s lease without changing the status.

        A RUNNING execution released this way is picked up by the recovery
        sweep (``expired_leases``) after its grace period.

        Returns:
            Whether ``owner`` held the lease.
        """
        with self._db.write() as conn:
            result = conn.execute(
                update(EX)
                .where(EX.id == execution_id, EX.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )
            return result.rowcount == 1

    def set_trace_context(self, execution_id: str, carrier: dict[str, str]) -> bool:
        """Store the execution's trace context, unless it has one (the first one stays).

        Returns:
            Whether it was stored.
        """
        with self._db.write() as conn:
            result = conn.execute(
                update(EX)
                .where(EX.id == execution_id, EX.trace_context.is_(None))
                .values(trace_context=carrier)
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
        with self._db.read() as conn:
            return [execution_record(row) for row in conn.execute(query)]

    def take_stalled(
        self,
        now: datetime | None = None,
        *,
        grace_seconds: float,
        limit: int = 500,
        pending_priorities: Collection[int] | None = None,
        expired_grace_seconds: float | None = None,
    ) -> list[tuple[str, int]]:
        """Take executions to re-publish: active, unchanged for ``grace_seconds``, unleased.

        That is a PENDING execution whose message was lost (or is still queued), or
        a RUNNING one whose worker died (lease expired). Taking one marks it
        updated now, so each is re-published at most once per grace period, and
        concurrent sweepers take different rows (``SKIP LOCKED`` on PostgreSQL).
        ``pending_priorities`` limits the PENDING ones to those priority levels
        (the sweeper passes the levels whose queue is empty: a PENDING execution
        behind a long queue is waiting, not lost); None takes every level.

        With ``expired_grace_seconds``, a RUNNING execution whose lease has
        expired is taken as soon as it has not changed (nor been taken) for that
        long, instead of ``grace_seconds``: a live worker renews its leases every
        third of the lease, so an expired one means the worker is gone (the
        sweeper passes the lease length, so a killed worker's executions run
        again about one lease after their last renewal).

        Returns:
            (execution id, priority) of each execution taken.
        """
        now = utc_now(now)
        stale = now - timedelta(seconds=grace_seconds)
        lost = _lost_leases(now, expired_grace_seconds)
        status: ColumnElement[bool] = EX.status.in_(ACTIVE)
        if pending_priorities is not None:
            # A start ticket's lease is a message still queued, as PENDING is: it is
            # taken only once its queue is empty (or after the grace period).
            quiet = EX.priority.in_(sorted(set(pending_priorities)) or [-1])
            ticketed = _ticketed()
            status = or_(
                and_(EX.status == ExecutionStatus.RUNNING, ~ticketed),
                and_(or_(EX.status == ExecutionStatus.PENDING, ticketed), quiet),
            )
            lost = and_(lost, or_(~ticketed, quiet))
        candidates = (
            select(EX.id)
            .where(
                or_(
                    and_(
                        status,
                        EX.updated_at < stale,
                        or_(EX.lease_owner.is_(None), EX.lease_expires_at < now),
                    ),
                    lost,
                )
            )
            .order_by(EX.updated_at, EX.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._db.write() as conn:
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
            with self._db.write() as conn:
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
        with self._db.write() as conn:
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
            require_execution(conn, execution_id)
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
        with self._db.write() as conn:
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
                    claim_count=0,  # a redrive grants the failed step its attempts again
                )
                .returning(*EXECUTION_COLUMNS)
            ).first()
            if row is None:
                require_execution(conn, execution_id)
                return None
        return execution_record(row)


def _ticketed() -> ColumnElement[bool]:
    """The lease is a start ticket's (its message may still be queued)."""
    return func.coalesce(EX.lease_owner, "").startswith(START_TICKET_PREFIX, autoescape=True)


def _lost_leases(now: datetime, grace_seconds: float | None) -> ColumnElement[bool]:
    """RUNNING, lease expired, unchanged for ``grace_seconds`` (never, if None)."""
    if grace_seconds is None:
        return false()
    return and_(
        EX.status == ExecutionStatus.RUNNING,
        EX.lease_expires_at < now,
        EX.updated_at < now - timedelta(seconds=grace_seconds),
    )


def _held_by(
    execution_id: str, owner: str, now: datetime | ColumnElement[Any]
) -> list[ColumnElement[bool]]:
    """Conditions: ``owner`` holds a live lease on this RUNNING execution."""
    return [
        EX.id == execution_id,
        unindexed(EX.status) == ExecutionStatus.RUNNING,
        EX.lease_owner == owner,
        EX.lease_expires_at >= now,
    ]


@cache
def _claim_statement(clock: LeaseClock = CALLER_CLOCK) -> Update:
    """The claim's UPDATE, built once per clock (parameters ``p_*``; the engine caches its SQL)."""
    return _claim_where(EXT.c.id == bindparam("p_id"), clock)


@cache
def _ticket_claim_statement(clock: LeaseClock = CALLER_CLOCK) -> Update:
    """:func:`_claim_statement` that also takes over the lease of start ticket ``p_ticket``."""
    return _claim_where(EXT.c.id == bindparam("p_id"), clock, ticket=True)


@cache
def _claim_many_statement(clock: LeaseClock = CALLER_CLOCK) -> Update:
    """The group claim's UPDATE: :func:`_claim_statement` over a list ``p_ids``."""
    return _claim_where(EXT.c.id.in_(bindparam("p_ids", expanding=True)), clock)


def _claim_where(chosen: ColumnElement[bool], clock: LeaseClock, *, ticket: bool = False) -> Update:
    c = EXT.c
    takeover = [c.lease_owner == bindparam("p_ticket")] if ticket else []
    return (
        update(EXT)
        .where(
            chosen,
            unindexed(c.status).in_(ACTIVE),
            # A claim lost in a PostgreSQL crash is as if it never happened: the
            # worker's later commits are fenced by its lease and fail.
            commit_without_flush(),
            or_(
                c.lease_owner.is_(None),
                c.lease_owner == bindparam("p_owner"),
                c.lease_expires_at < clock.now(),
                *takeover,
            ),
        )
        .values(
            status=ExecutionStatus.RUNNING,
            lease_owner=bindparam("p_owner"),
            lease_expires_at=clock.expires(),
            updated_at=bindparam("p_now"),
            # A take-over counts (checkpoints reset it); claiming again under one's
            # own live lease does not, so the retried statement counts once.
            claim_count=case(
                (
                    and_(
                        c.lease_owner == bindparam("p_owner"),
                        c.lease_expires_at >= clock.now(),
                    ),
                    c.claim_count,
                ),
                else_=c.claim_count + 1,
            ),
        )
        .returning(*EXECUTION_COLUMNS)
    )
