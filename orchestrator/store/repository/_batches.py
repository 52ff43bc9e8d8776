"""Batches: what a batch reads, how far its leader got, and steering its executions.

A batch has one *leader*, the process that creates and publishes its executions;
it proves it is alive by beating (``lead_batch``), and another process can take
the lead once the beats stop (``take_batch_lead``). Pause, resume and cancel are
one transaction each, callable from any process, and safe to repeat.

Holding: a paused batch keeps its executions that have not started from
starting by holding their lease itself (owner ``batch-hold:<batch id>``, expiry
:data:`HOLD_UNTIL`). A worker's claim then fails as it does for an execution that
another worker holds, and the recovery sweep leaves it alone (its lease has not
expired); resuming releases the hold. "Not started" means PENDING with no
checkpoint yet (``revision`` 0) and no lease: no worker has claimed it.

Races with the leader: pause and cancel change the batch row *first*, then the
executions, in one transaction. The leader creates a slice of executions, then
updates the batch row (``lead_batch``) and publishes only if the status it got
back is RUNNING. On PostgreSQL the batch row's lock orders the two: either the
leader saw the pause (and publishes nothing), or the pause's UPDATE of the
executions started after the slice was committed (and holds it). SQLite runs
writers one at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    insert,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.store import models as m
from orchestrator.store import payloads
from orchestrator.store.errors import BatchNotFound
from orchestrator.store.records import Batch
from orchestrator.store.repository._base import (
    EX,
    Part,
    utc_now,
)
from orchestrator.types import (
    BATCH_CANCELLED_ERROR,
    BATCH_HOLD_OWNER_PREFIX,
    BatchStatus,
    ExecutionStatus,
)

B = m.Batch

#: Lease expiry of an execution held by a paused batch: never, in practice.
HOLD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)

BATCH_CANCELLED = BATCH_CANCELLED_ERROR

#: Statuses of a failed execution, as a batch's failures are listed.
FAILED_STATUSES = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED)

#: A batch the leader still works on.
_LEADING = (BatchStatus.RUNNING, BatchStatus.PAUSED)


def hold_owner(batch_id: str) -> str:
    """The lease owner under which a paused batch holds its unstarted executions."""
    return f"{BATCH_HOLD_OWNER_PREFIX}{batch_id}"


class Batches(Part):
    """Batch records, their leader, and steering their executions."""

    def create_batch(
        self,
        state_machine_id: int,
        *,
        filter: Any,
        options: Any,
        batch_id: str | None = None,
        leader: str | None = None,
        position: Any = None,
        now: datetime | None = None,
    ) -> Batch:
        """Record a new RUNNING batch of ``state_machine_id`` with its filter and options (JSON).

        ``leader`` (default none) makes the caller its leader, beating from now.
        """
        now = utc_now(now)
        payloads.encode(filter, field="filter")
        payloads.encode(options, field="options")
        payloads.encode(position, field="position")
        with self._db.write() as conn:
            row = conn.execute(
                insert(B)
                .values(
                    id=batch_id or str(uuid.uuid4()),
                    state_machine_id=state_machine_id,
                    filter=filter,
                    options=options,
                    status=BatchStatus.RUNNING,
                    source_count=0,
                    created_count=0,
                    skipped_count=0,
                    published_count=0,
                    started_at=now,
                    updated_at=now,
                    position=position,
                    leader=leader,
                    heartbeat_at=now if leader else None,
                    guard_observed=0,
                    guard_armed=True,
                    archived_count=0,
                )
                .returning(*_batch_columns())
            ).one()
        return _batch(row)

    def record_batch_progress(
        self,
        batch_id: str,
        *,
        sources: int = 0,
        created: int = 0,
        skipped: int = 0,
        published: int = 0,
        status: BatchStatus | None = None,
        error: str | None = None,
        now: datetime | None = None,
    ) -> Batch:
        """Add to a batch's counts (increments, safe under concurrency), optionally ending it.

        Args:
            batch_id: the batch.
            sources: sources read. Default 0.
            created: executions created. Default 0.
            skipped: sources skipped (name existed, or already linked). Default 0.
            published: executions handed to workers. Default 0.
            status: new status; any but RUNNING and PAUSED also sets ``ended_at``.
                Default: unchanged.
            error: why it failed. Default: unchanged.
            now: the time. Default: now.

        Raises:
            BatchNotFound: no batch has this id.
        """
        now = utc_now(now)
        values = _counts(sources, created, skipped, published, now)
        if status is not None:
            values["status"] = status
            values["ended_at"] = None if status in _LEADING else now
        if error is not None:
            values["error"] = error
        with self._db.write() as conn:
            row = conn.execute(
                sql_update(B).where(B.id == batch_id).values(values).returning(*_batch_columns())
            ).first()
        if row is None:
            raise BatchNotFound(batch_id)
        return _batch(row)

    def get_batch(self, batch_id: str) -> Batch:
        """Return the batch with this id.

        Raises:
            BatchNotFound: no batch has this id.
        """
        with self._db.read() as conn:
            row = conn.execute(select(*_batch_columns()).where(B.id == batch_id)).first()
        if row is None:
            raise BatchNotFound(batch_id)
        return _batch(row)

    def list_batches(self, *, state_machine: str | None = None, limit: int = 50) -> list[Batch]:
        """The newest ``limit`` batches (of one state machine, by name, if given)."""
        query = select(*_batch_columns()).order_by(B.started_at.desc(), B.id.desc()).limit(limit)
        if state_machine is not None:
            query = query.join(m.StateMachine, m.StateMachine.id == B.state_machine_id).where(
                m.StateMachine.name == state_machine
            )
        with self._db.read() as conn:
            return [_batch(row) for row in conn.execute(query)]

    # -- the leader ------------------------------------------------------------

    def lead_batch(
        self,
        batch_id: str,
        leader: str,
        *,
        sources: int = 0,
        created: int = 0,
        skipped: int = 0,
        published: int = 0,
        position: Any = None,
        guard: tuple[int, float | None, int] | None = None,
        warning: str | None = None,
        now: datetime | None = None,
    ) -> Batch | None:
        """The leader's beat: add to the counts, store its position, read the batch back.

        Only while ``leader`` still leads the batch. The returned status is what
        the leader acts on (see the module docstring for why this UPDATE, and
        not a plain read, is the point the leader synchronises on).

        Args:
            batch_id: the batch.
            leader: the caller.
            sources, created, skipped, published: increments. Default 0.
            position: the new position (JSON). Default: unchanged.
            guard: ``(observed before, new failure rate, observed now)``: written
                only if the stored count is still ``observed before``, so a resume
                that reset the guard meanwhile wins. Default: unchanged.
            warning: the guard's new warning. Default: unchanged.
            now: the time. Default: now.

        Returns:
            The batch, or None if another process leads it now.
        """
        now = utc_now(now)
        values = _counts(sources, created, skipped, published, now)
        values["heartbeat_at"] = now
        if position is not None:
            payloads.encode(position, field="position")
            values["position"] = position
        if guard is not None:
            before, rate, observed = guard
            unchanged = B.guard_observed == before
            values["failure_rate"] = case((unchanged, rate), else_=B.failure_rate)
            values["guard_observed"] = case((unchanged, observed), else_=B.guard_observed)
        if warning is not None:
            values["warning"] = warning
        with self._db.write() as conn:
            row = conn.execute(
                sql_update(B)
                .where(B.id == batch_id, B.leader == leader)
                .values(values)
                .returning(*_batch_columns())
            ).first()
        return None if row is None else _batch(row)

    def take_batch_lead(
        self, batch_id: str, leader: str, *, stale_before: datetime, now: datetime | None = None
    ) -> Batch | None:
        """Become the leader of a RUNNING or PAUSED batch whose leader stopped beating.

        The lead is taken if nobody leads, ``leader`` already does, or the last
        beat is older than ``stale_before``. A previous leader that was only slow
        finds out at its next beat (``lead_batch`` returns None) and stops.

        Returns:
            The batch, or None if it is not RUNNING/PAUSED or its leader is alive.

        Raises:
            BatchNotFound: no batch has this id.
        """
        now = utc_now(now)
        alive = and_(B.leader.is_not(None), B.leader != leader, B.heartbeat_at >= stale_before)
        with self._db.write() as conn:
            row = conn.execute(
                sql_update(B)
                .where(B.id == batch_id, B.status.in_(_LEADING), ~alive)
                .values(leader=leader, heartbeat_at=now, updated_at=now)
                .returning(*_batch_columns())
            ).first()
            if row is None:
                _require_batch(conn, batch_id)
        return None if row is None else _batch(row)

    def release_batch_lead(self, batch_id: str, leader: str) -> bool:
        """The leader stops leading (it ended, failed or was interrupted): anyone may take over.

        Returns:
            Whether ``leader`` was leading the batch.
        """
        with self._db.write() as conn:
            result = conn.execute(
                sql_update(B).where(B.id == batch_id, B.leader == leader).values(leader=None)
            )
        return bool(result.rowcount)

    def finish_batch(
        self,
        batch_id: str,
        leader: str,
        *,
        status: BatchStatus,
        from_statuses: Collection[BatchStatus],
        reason: str | None = None,
        error: str | None = None,
        now: datetime | None = None,
    ) -> Batch | None:
        """The leader ends its batch: ``status`` if the batch is in one of ``from_statuses``.

        Returns:
            The batch, or None if it was in another status (the leader leaves it
            as a pause or a cancel left it) or another process leads it.
        """
        now = utc_now(now)
        values: dict[str, Any] = {"status": status, "updated_at": now, "heartbeat_at": now}
        values["ended_at"] = None if status in _LEADING else now
        if reason is not None:
            values["status_reason"] = reason
        if error is not None:
            values["error"] = error
        with self._db.write() as conn:
            row = conn.execute(
                sql_update(B)
                .where(B.id == batch_id, B.leader == leader, B.status.in_(list(from_statuses)))
                .values(values)
                .returning(*_batch_columns())
            ).first()
        return None if row is None else _batch(row)

    # -- pause, resume, cancel -------------------------------------------------

    def pause_batch(
        self,
        batch_id: str,
        *,
        reason: str,
        guard_observed: int | None = None,
        now: datetime | None = None,
    ) -> tuple[Batch, int]:
        """Pause a RUNNING or COMPLETED batch and hold its executions that have not started.

        Pausing a paused batch holds what is unstarted and not held yet (nothing,
        usually); a CANCELLED or FAILED batch is left as it is. ``guard_observed``
        (the failure guard pausing) pauses only if the guard is armed and still
        at that count, so a resume that reset or disarmed it meanwhile wins.

        Returns:
            The batch, and how many executions this call held.

        Raises:
            BatchNotFound: no batch has this id.
        """
        now = utc_now(now)
        pausable = (BatchStatus.RUNNING, BatchStatus.COMPLETED)
        conditions = [B.id == batch_id, B.status.in_(pausable)]
        if guard_observed is not None:
            conditions += [B.guard_observed == guard_observed, B.guard_armed.is_(True)]
        with self._db.write() as conn:
            row = conn.execute(
                sql_update(B)
                .where(*conditions)
                .values(status=BatchStatus.PAUSED, status_reason=reason, updated_at=now)
                .values(ended_at=None)
                .returning(*_batch_columns())
            ).first()
            batch = _batch(row) if row is not None else _read_batch(conn, batch_id)
            if batch.status != BatchStatus.PAUSED:
                return batch, 0
            return batch, _hold(conn, batch_id)

    def hold_unstarted(self, batch_id: str) -> int:
        """Hold the batch's unstarted executions if (and only if) it is PAUSED.

        What the leader calls when it finds its batch paused between creating a
        slice and publishing it; unlike ``pause_batch`` it never pauses a batch
        that was resumed meanwhile.

        Returns:
            How many executions this call held.

        Raises:
            BatchNotFound: no batch has this id.
        """
        with self._db.write() as conn:
            batch = _read_batch(conn, batch_id, lock=True)
            return _hold(conn, batch_id) if batch.status == BatchStatus.PAUSED else 0

    def resume_batch(
        self,
        batch_id: str,
        *,
        reason: str,
        arm_guard: bool | None = None,
        now: datetime | None = None,
    ) -> tuple[Batch, list[tuple[str, int]]]:
        """Resume a PAUSED (or FAILED) batch and release the executions it held.

        The status becomes COMPLETED if the leader had already created every
        execution (``position["exhausted"]``), RUNNING otherwise. The failure
        guard starts afresh (its average and count are reset); ``arm_guard``
        arms or disarms it (default: unchanged). Resuming a RUNNING or COMPLETED
        batch changes nothing but ``arm_guard`` and releases any leftover hold.

        Returns:
            The batch, and (execution id, priority) of every execution released
            now, to be published again (their messages were dropped while held).

        Raises:
            BatchNotFound: no batch has this id.
            ValueError: the batch was cancelled.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            batch = _read_batch(conn, batch_id, lock=True)
            if batch.status == BatchStatus.CANCELLED:
                raise ValueError(f"batch {batch_id} was cancelled; it cannot be resumed")
            values: dict[str, Any] = {"updated_at": now}
            if arm_guard is not None:
                values["guard_armed"] = arm_guard
            if batch.status in (BatchStatus.PAUSED, BatchStatus.FAILED):
                values.update(_resumed(batch, reason, now))
            row = conn.execute(
                sql_update(B).where(B.id == batch_id).values(values).returning(*_batch_columns())
            ).one()
            released = conn.execute(
                sql_update(EX)
                .where(EX.batch_id == batch_id, EX.lease_owner == hold_owner(batch_id))
                .values(lease_owner=None, lease_expires_at=None, updated_at=now)
                .returning(EX.id, EX.priority)
            ).all()
        return _batch(row), [(r.id, int(r.priority)) for r in released]

    def cancel_batch(
        self, batch_id: str, *, reason: str, now: datetime | None = None
    ) -> tuple[Batch, int]:
        """Cancel a batch: no more executions, and the unstarted ones ABORTED.

        Each execution that no worker has claimed yet (held or not) ends ABORTED
        with the error :data:`BATCH_CANCELLED` and ``reason`` as its cause.
        Cancelling again aborts nothing more (unless something was created since).

        Returns:
            The batch, and how many executions this call aborted.

        Raises:
            BatchNotFound: no batch has this id.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            row = conn.execute(
                sql_update(B)
                .where(B.id == batch_id, B.status != BatchStatus.CANCELLED)
                .values(status=BatchStatus.CANCELLED, status_reason=reason)
                .values(updated_at=now, ended_at=now)
                .returning(*_batch_columns())
            ).first()
            batch = _batch(row) if row is not None else _read_batch(conn, batch_id)
            aborted = conn.execute(
                sql_update(EX)
                .where(
                    *_unstarted(batch_id),
                    or_(EX.lease_owner.is_(None), EX.lease_owner == hold_owner(batch_id)),
                )
                .values(status=ExecutionStatus.ABORTED, error=BATCH_CANCELLED, cause=reason)
                .values(ended_at=now, updated_at=now, lease_owner=None, lease_expires_at=None)
            ).rowcount
        return batch, int(aborted)


def _batch_columns() -> list[Any]:
    return list(B.__table__.c)


def _batch(row: Any) -> Batch:
    return Batch(**row._mapping)


def _read_batch(conn: Connection, batch_id: str, *, lock: bool = False) -> Batch:
    query = select(*_batch_columns()).where(B.id == batch_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise BatchNotFound(batch_id)
    return _batch(row)


def _require_batch(conn: Connection, batch_id: str) -> None:
    if conn.execute(select(B.id).where(B.id == batch_id)).first() is None:
        raise BatchNotFound(batch_id)


def _counts(
    sources: int, created: int, skipped: int, published: int, now: datetime
) -> dict[str, Any]:
    return {
        "source_count": B.source_count + sources,
        "created_count": B.created_count + created,
        "skipped_count": B.skipped_count + skipped,
        "published_count": B.published_count + published,
        "updated_at": now,
    }


def _resumed(batch: Batch, reason: str, now: datetime) -> dict[str, Any]:
    """What resuming a paused batch writes: its status back, the guard afresh."""
    exhausted = isinstance(batch.position, dict) and bool(batch.position.get("exhausted"))
    status = BatchStatus.COMPLETED if exhausted else BatchStatus.RUNNING
    return {
        "status": status,
        "status_reason": reason,
        "ended_at": now if exhausted else None,
        "error": None,
        "failure_rate": None,
        "guard_observed": 0,
    }


def _hold(conn: Connection, batch_id: str) -> int:
    """Hold the batch's unstarted executions that nobody holds (see the module docstring)."""
    return int(
        conn.execute(
            sql_update(EX)
            .where(*_unstarted(batch_id), EX.lease_owner.is_(None))
            .values(lease_owner=hold_owner(batch_id), lease_expires_at=HOLD_UNTIL)
        ).rowcount
    )


def _unstarted(batch_id: str) -> list[ColumnElement[bool]]:
    """Executions of the batch that no worker has claimed: PENDING, no checkpoint."""
    return [EX.batch_id == batch_id, EX.status == ExecutionStatus.PENDING, EX.revision == 0]
