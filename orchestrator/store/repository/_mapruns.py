"""Map Runs: a Distributed Map's run row, its children, and settling it.

A Map Run's counts per status are kept by a trigger on ``executions`` (see
migration ``0008_map_runs``), so they change in the same transaction as the child.
Children that MaxConcurrency holds back are PENDING under a hold lease (owner
``map-hold:<run id>``, expiry far away), as a paused batch holds its executions:
no worker can claim them and the sweeper leaves them alone. :meth:`settle_map_run`
decides, on the locked run row, whether the run ended and how many to let go.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, or_, select, update

from orchestrator.store import models as m
from orchestrator.store import payloads
from orchestrator.store.records import (
    MapChild,
    MapRun,
    MapRunDecision,
    MapRunSettlement,
    NewMapRun,
)
from orchestrator.store.repository._base import EX, Part, utc_now
from orchestrator.store.repository._waits import wake
from orchestrator.types import (
    REDRIVABLE_STATUSES,
    TERMINAL_STATUSES,
    ExecutionStatus,
    MapRunStatus,
)

MR = m.MapRun
MD = m.MapRunDelta
#: The delta columns, and the Map Run counters they fold into.
_DELTAS = ("pending", "running", "succeeded", "failed", "timed_out", "aborted")
RUNNING, SUCCEEDED, ABORTED = MapRunStatus.RUNNING, MapRunStatus.SUCCEEDED, MapRunStatus.ABORTED
#: Until when a held child's lease runs (never, in practice).
HOLD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)
_HOLD_PREFIX = "map-hold:"


def hold_owner(map_run_id: str) -> str:
    """The lease owner under which MaxConcurrency holds a run's children back."""
    return f"{_HOLD_PREFIX}{map_run_id}"


def child_name(map_run_id: str, index: int) -> str:
    """A child's execution name: unique per run and item, so creating it twice is harmless."""
    return f"{map_run_id}:{index}"


class MapRuns(Part):
    """Map Runs and their children."""

    def open_map_run(self, new: NewMapRun, *, now: datetime | None = None) -> MapRun:
        """Create the Map Run of one dispatch of a Map state, or return the one that exists.

        Idempotent on (parent, ``dispatch_key``): a Map state re-issued after a
        crash finds its run.
        """
        now = utc_now(now)
        payloads.encode(new.result_writer, field="result_writer")
        values = {
            "id": str(uuid.uuid4()),
            "parent_execution_id": new.parent_execution_id,
            "dispatch_key": new.dispatch_key,
            "state_key": new.state_key,
            "state_name": new.state_name,
            "label": new.label,
            "version_id": new.version_id,
            "execution_type": new.execution_type,
            "status": RUNNING,
            "priority": new.priority,
            "max_concurrency": new.max_concurrency,
            "tolerated_failure_percentage": new.tolerated_failure_percentage,
            "tolerated_failure_count": new.tolerated_failure_count,
            "total": new.total,
            "created_count": 0,
            "released_count": 0,
            "feeding_done": False,
            "result_writer": new.result_writer,
            "parent_redrive_count": new.parent_redrive_count,
            "started_at": now,
            "updated_at": now,
        }
        insert_ = self._db.dialect.insert_ignoring(MR, "parent_execution_id", "dispatch_key")
        with self._db.write() as conn:
            conn.execute(insert_.values(values))
            row = conn.execute(
                _select().where(
                    MR.parent_execution_id == new.parent_execution_id,
                    MR.dispatch_key == new.dispatch_key,
                )
            ).one()
        return _record(row)

    def get_map_run(self, map_run_id: str) -> MapRun | None:
        """One Map Run, or None."""
        with self._db.read() as conn:
            row = conn.execute(_select().where(MR.id == map_run_id)).first()
            return None if row is None else _counted(conn, [_record(row)])[0]

    def find_map_run(self, parent_execution_id: str, dispatch_key: str) -> MapRun | None:
        """The Map Run of one dispatch of a Map state, or None."""
        with self._db.read() as conn:
            row = conn.execute(
                _select().where(
                    MR.parent_execution_id == parent_execution_id,
                    MR.dispatch_key == dispatch_key,
                )
            ).first()
            return None if row is None else _counted(conn, [_record(row)])[0]

    def last_map_run(self, parent_execution_id: str, state_key: str) -> MapRun | None:
        """The newest Map Run a parent opened at one Map state (a redrive reopens it)."""
        with self._db.read() as conn:
            row = conn.execute(
                _select()
                .where(MR.parent_execution_id == parent_execution_id, MR.state_key == state_key)
                .order_by(MR.started_at.desc(), MR.id.desc())
                .limit(1)
            ).first()
            return None if row is None else _counted(conn, [_record(row)])[0]

    def list_map_runs(
        self,
        *,
        parent_execution_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[MapRun]:
        """Map Runs, newest first, of one parent and/or of one status."""
        query = _select().order_by(MR.started_at.desc(), MR.id.desc()).limit(limit)
        if parent_execution_id is not None:
            query = query.where(MR.parent_execution_id == parent_execution_id)
        if status is not None:
            query = query.where(MR.status == status)
        with self._db.read() as conn:
            return _counted(conn, [_record(row) for row in conn.execute(query)])

    def add_map_children(
        self,
        map_run_id: str,
        inputs: Sequence[tuple[int, Any]],
        *,
        state_machine_id: int,
        now: datetime | None = None,
    ) -> list[str]:
        """Create children (item index, input) of a Map Run in one transaction.

        The run's position (``created_count``) moves on in the same transaction,
        so a reader that resumes after a crash starts after the last committed
        chunk. Children beyond the run's MaxConcurrency are held. A child that
        exists already (same name) is skipped.

        Returns:
            The ids of the children created and released (to publish).

        Raises:
            PayloadTooLarge, PayloadInvalid: an input cannot be stored; nothing written.
        """
        now = utc_now(now)
        limit = self._db.payload_max_bytes
        for index, data in inputs:
            payloads.encode(data, field=f"items[{index}]", limit=limit)
        with self._db.write() as conn:
            run = _locked(conn, map_run_id)
            room = len(inputs)
            if run.max_concurrency:
                room = max(0, run.max_concurrency - (run.released_count - run.ended))
            rows = [
                _child_row(run, state_machine_id, index, data, now, held=i >= room)
                for i, (index, data) in enumerate(inputs)
            ]
            created = self._insert_children(conn, rows)
            released = [r["id"] for r in rows if r["id"] in created and r["lease_owner"] is None]
            conn.execute(
                update(MR)
                .where(MR.id == map_run_id)
                .values(
                    # The position: after the last item of the chunk (a second feeder
                    # that took over the parent re-adds nothing and moves nothing back).
                    created_count=max(run.created_count, inputs[-1][0] + 1)
                    if inputs
                    else run.created_count,
                    pending_count=MR.pending_count + len(created),
                    released_count=MR.released_count + len(released),
                    updated_at=now,
                )
            )
        return released

    def _insert_children(self, conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
        if not rows:
            return set()
        statement = self._db.dialect.insert_ignoring(EX, "state_machine_id", "name")
        found = conn.execute(statement.returning(EX.id), rows).scalars()
        return set(found)

    def finish_feeding(self, map_run_id: str, *, now: datetime | None = None) -> MapRun:
        """Mark that every child exists; return the run as it stands."""
        with self._db.write() as conn:
            row = conn.execute(
                update(MR)
                .where(MR.id == map_run_id)
                .values(feeding_done=True, updated_at=utc_now(now))
                .returning(*_columns())
            ).one()
        return _record(row)

    def settle_map_run(
        self,
        map_run_id: str,
        decide: Callable[[MapRun], MapRunDecision],
        *,
        now: datetime | None = None,
    ) -> MapRunSettlement:
        """Decide on the locked run row whether it ended and what to release; do it.

        Ending FAILED aborts the children that have not started (held or
        PENDING with no lease). Ending wakes the parent. Released children
        lose their hold and are returned, to publish.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            run = _locked(conn, map_run_id)
            if run.status != RUNNING:
                return MapRunSettlement(map_run=run, released=[], ended_now=False)
            decision = decide(run)
            released: list[str] = []
            if decision.status is not None:
                if decision.status != SUCCEEDED:
                    _abort_unstarted(conn, map_run_id, now)
                conn.execute(
                    update(MR)
                    .where(MR.id == map_run_id)
                    .values(
                        status=decision.status,
                        error=decision.error,
                        cause=decision.cause,
                        stopped_at=now,
                        updated_at=now,
                    )
                )
                wake(conn, {run.parent_execution_id}, now)
            elif decision.release > 0:
                released = _release(conn, map_run_id, decision.release, now)
                conn.execute(
                    update(MR)
                    .where(MR.id == map_run_id)
                    .values(released_count=MR.released_count + len(released), updated_at=now)
                )
            run = _locked(conn, map_run_id)
            priority = conn.execute(
                select(EX.priority).where(EX.id == run.parent_execution_id)
            ).scalar_one()
        return MapRunSettlement(
            map_run=run,
            released=released,
            ended_now=decision.status is not None,
            parent_priority=int(priority),
        )

    def abort_map_runs(self, parent_execution_id: str, *, now: datetime | None = None) -> int:
        """Abort a parent's running Map Runs and every child of them that has not ended.

        Returns:
            How many children were aborted.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            ids = list(
                conn.execute(
                    select(MR.id).where(
                        MR.parent_execution_id == parent_execution_id, MR.status == RUNNING
                    )
                ).scalars()
            )
            if not ids:
                return 0
            conn.execute(
                update(MR)
                .where(MR.id.in_(ids))
                .values(status=ABORTED, stopped_at=now, updated_at=now, feeding_done=True)
            )
            aborted = conn.execute(
                update(EX)
                .where(EX.map_run_id.in_(ids), EX.status.not_in(list(TERMINAL_STATUSES)))
                .values(
                    status=ExecutionStatus.ABORTED,
                    error="States.Aborted",
                    cause="the parent execution was stopped",
                    ended_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
        return int(aborted.rowcount or 0)

    def reopen_map_run(
        self,
        map_run_id: str,
        *,
        dispatch_key: str,
        parent_redrive_count: int,
        now: datetime | None = None,
    ) -> MapRun:
        """Reopen an ended Map Run for a redrive of its parent: its failed, timed out
        and aborted children become PENDING again (cursor kept, as a redrive does),
        held back if the run has a MaxConcurrency; the others keep their results.
        """
        now = utc_now(now)
        hold = {}
        with self._db.write() as conn:
            run = _locked(conn, map_run_id)
            if run.max_concurrency:
                hold = {"lease_owner": hold_owner(map_run_id), "lease_expires_at": HOLD_UNTIL}
            reopened = conn.execute(
                update(EX)
                .where(EX.map_run_id == map_run_id, EX.status.in_(list(REDRIVABLE_STATUSES)))
                .values(
                    status=ExecutionStatus.PENDING,
                    output=None,
                    error=None,
                    cause=None,
                    ended_at=None,
                    updated_at=now,
                    redrive_count=EX.redrive_count + 1,
                    claim_count=0,
                    **hold,
                )
            )
            count = int(reopened.rowcount or 0)
            released = run.released_count - count if run.max_concurrency else run.released_count
            row = conn.execute(
                update(MR)
                .where(MR.id == map_run_id)
                .values(
                    status=RUNNING,
                    dispatch_key=dispatch_key,
                    parent_redrive_count=parent_redrive_count,
                    released_count=released,
                    error=None,
                    cause=None,
                    stopped_at=None,
                    updated_at=now,
                )
                .returning(*_columns())
            ).one()
        return _record(row)

    def claimable_children(self, map_run_id: str, *, limit: int = 1000) -> list[str]:
        """Children of a run that are PENDING and not held (to publish again)."""
        with self._db.read() as conn:
            return list(
                conn.execute(
                    select(EX.id)
                    .where(
                        EX.map_run_id == map_run_id,
                        EX.status == ExecutionStatus.PENDING,
                        or_(EX.lease_owner.is_(None), EX.lease_owner != hold_owner(map_run_id)),
                    )
                    .order_by(EX.item_index)
                    .limit(limit)
                ).scalars()
            )

    def map_children(
        self, map_run_id: str, *, after: int = -1, limit: int = 1000
    ) -> list[MapChild]:
        """A page of a run's children in item order (keyset: ``item_index > after``)."""
        with self._db.read() as conn:
            rows = conn.execute(
                select(*_child_columns())
                .where(EX.map_run_id == map_run_id, EX.item_index > after)
                .order_by(EX.item_index)
                .limit(limit)
            )
            return [MapChild(**row._mapping) for row in rows]


def _locked(conn: Connection, map_run_id: str) -> MapRun:
    """Lock a run's row, fold its pending deltas into its counts, and return it."""
    conn.execute(select(MR.id).where(MR.id == map_run_id).with_for_update()).one()
    columns = [getattr(MD, name) for name in _DELTAS]
    gone = conn.execute(delete(MD).where(MD.map_run_id == map_run_id).returning(*columns)).all()
    if gone:
        sums = {name: sum(int(row[i]) for row in gone) for i, name in enumerate(_DELTAS)}
        counters = {f"{name}_count": getattr(MR, f"{name}_count") + n for name, n in sums.items()}
        conn.execute(update(MR).where(MR.id == map_run_id).values(counters))
    return _record(conn.execute(_select().where(MR.id == map_run_id)).one())


def _counted(conn: Connection, runs: list[MapRun]) -> list[MapRun]:
    """Runs with the deltas not folded yet added to their counts (a read, no lock)."""
    if not runs:
        return runs
    sums = conn.execute(
        select(MD.map_run_id, *(func.sum(getattr(MD, name)) for name in _DELTAS))
        .where(MD.map_run_id.in_([run.id for run in runs]))
        .group_by(MD.map_run_id)
    ).all()
    found = {row[0]: row[1:] for row in sums}
    out = []
    for run in runs:
        extra = found.get(run.id)
        if extra is None:
            out.append(run)
            continue
        changes = {
            f"{name}_count": getattr(run, f"{name}_count") + int(extra[i] or 0)
            for i, name in enumerate(_DELTAS)
        }
        out.append(dataclasses.replace(run, **changes))
    return out


def _child_row(
    run: MapRun, state_machine_id: int, index: int, data: Any, now: datetime, *, held: bool
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "state_machine_id": state_machine_id,
        "version_id": run.version_id,
        "name": child_name(run.id, index),
        "status": ExecutionStatus.PENDING,
        "input": data,
        "output": None,
        "error": None,
        "cause": None,
        "cursor": None,
        "current_state": None,
        "priority": run.priority,
        "batch_id": None,
        "source_execution_id": None,
        "source_state_name": None,
        "started_at": now,
        "updated_at": now,
        "ended_at": None,
        "lease_owner": hold_owner(run.id) if held else None,
        "lease_expires_at": HOLD_UNTIL if held else None,
        "revision": 0,
        "last_seq": 0,
        "wake_pending": False,
        "redrive_count": 0,
        "claim_count": 0,
        "execution_type": run.execution_type,
        "parent_execution_id": run.parent_execution_id,
        "map_run_id": run.id,
        "item_index": index,
    }


def _abort_unstarted(conn: Connection, map_run_id: str, now: datetime) -> None:
    conn.execute(
        update(EX)
        .where(
            EX.map_run_id == map_run_id,
            EX.status == ExecutionStatus.PENDING,
            or_(EX.lease_owner.is_(None), EX.lease_owner == hold_owner(map_run_id)),
        )
        .values(
            status=ExecutionStatus.ABORTED,
            error="States.Aborted",
            cause="the Map Run failed before this child started",
            ended_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )


def _release(conn: Connection, map_run_id: str, count: int, now: datetime) -> list[str]:
    held = (
        select(EX.id)
        .where(
            EX.map_run_id == map_run_id,
            EX.status == ExecutionStatus.PENDING,
            EX.lease_owner == hold_owner(map_run_id),
        )
        .order_by(EX.item_index)
        .limit(count)
    )
    ids = list(conn.execute(held).scalars())
    if ids:
        conn.execute(
            update(EX)
            .where(and_(EX.id.in_(ids), EX.lease_owner == hold_owner(map_run_id)))
            .values(lease_owner=None, lease_expires_at=None, updated_at=now)
        )
    return ids


def _columns() -> list[Any]:
    return list(MR.__table__.c)


def _select() -> Any:
    return select(*_columns())


def _child_columns() -> list[Any]:
    return [
        EX.id,
        EX.name,
        EX.item_index,
        EX.status,
        EX.input,
        EX.output,
        EX.error,
        EX.cause,
        EX.redrive_count,
        EX.started_at,
        EX.ended_at,
    ]


def _record(row: Row[Any]) -> MapRun:
    return MapRun(**row._mapping)


def count_children(conn: Connection, map_run_id: str) -> int:
    """How many children a run has (tests and checks)."""
    return int(conn.execute(select(func.count()).where(EX.map_run_id == map_run_id)).scalar_one())


__all__ = ["MapRuns", "child_name", "hold_owner"]
