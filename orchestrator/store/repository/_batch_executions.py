"""A batch's executions: counted by status, unstarted, and failed ones listed, archived, redriven.

Failures are listed in the order they ended (keyset on ``(ended_at, id)``);
archiving records a cutoff on the batch row, so nothing is deleted: archived
failures are still listed with ``archived=True`` and are never redriven.
Executions a cancel aborted are not failures of the batch.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, and_, case, false, func, literal, or_, select, true, tuple_
from sqlalchemy import update as sql_update
from sqlalchemy.sql.elements import ColumnElement

from orchestrator.store import models as m
from orchestrator.store.records import Batch, Execution, Page
from orchestrator.store.repository._base import (
    EX,
    EXECUTION_COLUMNS,
    Part,
    execution_record,
    utc_now,
)
from orchestrator.store.repository._batches import (
    BATCH_CANCELLED,
    FAILED_STATUSES,
    B,
    _batch,
    _batch_columns,
    _read_batch,
    _unstarted,
    hold_owner,
)
from orchestrator.types import ExecutionStatus

#: Ids per ``IN (...)`` list (SQLite allows 32,766 bound parameters per statement).
_IDS_PER_QUERY = 1000


class BatchExecutions(Part):
    """A batch's executions: counted, unstarted, failed (listed, archived, redriven)."""

    def batch_execution_counts(self, batch_id: str) -> dict[str, int]:
        """Count a batch's executions by status, and by what steering did to them.

        Returns:
            status name -> count, plus ``held`` (held by a pause), ``unstarted``
            (PENDING, never claimed, not held) and ``cancelled`` (aborted by a cancel).
        """
        held = EX.lease_owner == hold_owner(batch_id)
        query = (
            select(
                EX.status,
                func.count(),
                func.sum(case((held, 1), else_=0)),
                func.sum(case((and_(*_unstarted(batch_id), EX.lease_owner.is_(None)), 1), else_=0)),
                func.sum(case((EX.error == BATCH_CANCELLED, 1), else_=0)),
            )
            .where(EX.batch_id == batch_id)
            .group_by(EX.status)
        )
        out = {"held": 0, "unstarted": 0, "cancelled": 0}
        with self._db.read() as conn:
            for status, count, n_held, n_unstarted, n_cancelled in conn.execute(query):
                out[str(ExecutionStatus(status))] = int(count)
                out["held"] += int(n_held or 0)
                out["unstarted"] += int(n_unstarted or 0)
                out["cancelled"] += int(n_cancelled or 0)
        return out

    def status_counts_of(self, execution_ids: Sequence[str]) -> dict[ExecutionStatus, int]:
        """Count the given executions by status (``IN`` lists of 1,000 ids)."""
        counts: dict[ExecutionStatus, int] = {}
        with self._db.read() as conn:
            for start in range(0, len(execution_ids), _IDS_PER_QUERY):
                chunk = execution_ids[start : start + _IDS_PER_QUERY]
                query = select(EX.status, func.count()).where(EX.id.in_(chunk)).group_by(EX.status)
                for status, count in conn.execute(query):
                    key = ExecutionStatus(status)
                    counts[key] = counts.get(key, 0) + int(count)
        return counts

    def unstarted_executions(
        self, batch_id: str, *, created_since: datetime | None = None, limit: int = 10_000
    ) -> list[tuple[str, int]]:
        """(id, priority) of the batch's executions no worker has claimed (not held).

        ``created_since`` keeps those created at or after that time. Default: all.
        """
        query = select(EX.id, EX.priority).where(*_unstarted(batch_id), EX.lease_owner.is_(None))
        if created_since is not None:
            query = query.where(EX.started_at >= created_since)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(EX.started_at, EX.id).limit(limit)).all()
        return [(r.id, int(r.priority)) for r in rows]

    # -- failures ----------------------------------------------------------------

    def batch_failures(
        self,
        batch_id: str,
        *,
        archived: bool | None = False,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """One page of the batch's failed executions, in the order they ended.

        Failed: FAILED, TIMED_OUT or ABORTED, except those a cancel aborted
        before they started. ``archived``: False (default) lists those not
        archived, True the archived ones, None both. Pass ``next_cursor`` back
        as ``cursor`` for the next page.

        Raises:
            BatchNotFound: no batch has this id.
            ValueError: a bad ``limit`` or ``cursor``.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._db.read() as conn:
            batch = _read_batch(conn, batch_id)
            query = select(*EXECUTION_COLUMNS).where(*_failed(batch, archived))
            if cursor is not None:
                query = query.where(_after_ended(cursor))
            query = query.order_by(EX.ended_at, EX.id).limit(limit + 1)
            rows = conn.execute(query).all()
        items = [execution_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items=tuple(items), next_cursor=_ended_cursor(items[-1]) if more else None)

    def archive_batch_failures(
        self, batch_id: str, *, now: datetime | None = None
    ) -> tuple[Batch, int]:
        """Archive the batch's failures so far: they leave the default failure listing.

        Nothing is deleted: the batch records the end time of the latest failure
        archived, and every failure that ended at or before it counts as
        archived. A failure that is redriven and fails again ends later, so it
        is listed again.

        Returns:
            The batch, and how many failures this call archived.

        Raises:
            BatchNotFound: no batch has this id.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            batch = _read_batch(conn, batch_id, lock=True)
            count, latest = conn.execute(
                select(func.count(), func.max(EX.ended_at)).where(*_failed(batch, False))
            ).one()
            if not count:
                return batch, 0
            row = conn.execute(
                sql_update(B)
                .where(B.id == batch_id)
                .values(failures_archived_at=latest, updated_at=now)
                .values(archived_count=B.archived_count + int(count))
                .returning(*_batch_columns())
            ).one()
        return _batch(row), int(count)

    def redrive_batch_failures(
        self, batch_id: str, *, now: datetime | None = None
    ) -> list[tuple[str, int]]:
        """Reopen every failure of the batch that is not archived as PENDING, cursors kept.

        The same as ``redrive`` for each of them, in one statement.

        Returns:
            (execution id, priority) of each execution reopened, to be published.

        Raises:
            BatchNotFound: no batch has this id.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            batch = _read_batch(conn, batch_id)
            rows = conn.execute(
                sql_update(EX)
                .where(*_failed(batch, False))
                .values(status=ExecutionStatus.PENDING, output=None, error=None, cause=None)
                .values(ended_at=None, updated_at=now, redrive_count=EX.redrive_count + 1)
                .returning(EX.id, EX.priority)
            ).all()
        return [(r.id, int(r.priority)) for r in rows]


def _failed(batch: Batch, archived: bool | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        EX.batch_id == batch.id,
        EX.status.in_(FAILED_STATUSES),
        or_(EX.error.is_(None), EX.error != BATCH_CANCELLED),
    ]
    cutoff = batch.failures_archived_at
    if archived is None:
        return conditions
    if cutoff is None:
        return [*conditions, false() if archived else true()]
    bound = literal(cutoff, m.UTCDateTime())
    conditions.append(EX.ended_at <= bound if archived else EX.ended_at > bound)
    return conditions


def _ended_cursor(last: Execution) -> str:
    assert last.ended_at is not None
    raw = json.dumps([last.ended_at.isoformat(), last.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after_ended(token: str) -> ColumnElement[bool]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        ended, execution_id = json.loads(raw)
        ended_at = datetime.fromisoformat(ended)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"invalid page cursor {token!r}") from exc
    if ended_at.tzinfo is None or not isinstance(execution_id, str):
        raise ValueError(f"invalid page cursor {token!r}")
    bound = tuple_(literal(ended_at, m.UTCDateTime()), literal(execution_id, String(36)))
    return tuple_(EX.ended_at, EX.id) > bound
