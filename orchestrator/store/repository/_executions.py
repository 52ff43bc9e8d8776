"""Creating executions (idempotent, in bulk) and reading them (keyset-paged)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import JSON, Select, and_, func, select

from orchestrator.errors import ExecutionAlreadyExists, ExecutionNotFound
from orchestrator.store import models as m
from orchestrator.store import payloads
from orchestrator.store.engine import json_dumps
from orchestrator.store.records import (
    BulkCreateResult,
    Execution,
    ExecutionFilter,
    HistoryEvent,
    NewExecution,
    Page,
    Version,
)
from orchestrator.store.repository._base import (
    DEFAULT_CHUNK_SIZE,
    EX,
    EXECUTION_COLUMNS,
    EXT,
    Database,
    Part,
    check_name,
    execution_record,
    utc_now,
)
from orchestrator.store.repository._paging import (
    after_cursor,
    encode_page_cursor,
    machine_conditions,
    page_order,
    row_conditions,
)
from orchestrator.types import ExecutionStatus

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


class Executions(Part):
    """Creating and reading executions, and their history."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        #: INSERT ... ON CONFLICT DO NOTHING RETURNING id of one execution, built once:
        #: the record is built from the values inserted, not read back (RETURNING
        #: every column cost a third of a start: the row's JSON sent back and decoded).
        self._create_insert = db.dialect.insert_ignoring(EXT, "state_machine_id", "name").returning(
            EXT.c.id
        )

    def create_execution(
        self,
        version: Version,
        *,
        name: str | None = None,
        input: Any = None,
        execution_id: str | None = None,
        priority: int = 0,
        batch_id: str | None = None,
        source_execution_id: str | None = None,
        source_state_name: str | None = None,
        claim_as: str | None = None,
        lease_seconds: float = 60.0,
        execution_type: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Execution, bool]:
        """Create a PENDING execution of ``version``, idempotent on its name.

        The name is unique per state machine (default: the new execution id).
        The same name with an equal input returns the existing execution; a
        different input raises. (AWS refuses a same-input start too once the
        first execution has closed; here the existing one is returned, so a
        repeated batch starts nothing twice.)

        With ``claim_as``, a new execution is created RUNNING under that
        owner's lease of ``lease_seconds`` (default 60): an in-process start
        saves the separate claim transaction. An existing execution is
        returned as it is, unclaimed.

        ``execution_type`` (``STANDARD`` or ``EXPRESS``) defaults to the
        machine's type; a Distributed Map picks its children's.

        Returns:
            The execution and whether it was created now.

        Raises:
            ExecutionAlreadyExists: the name exists with a different input.
            PayloadTooLarge: ``input`` is above ``payload_max_bytes``.
            PayloadInvalid: ``input`` is not storable JSON.
        """
        new_id = execution_id or str(uuid.uuid4())
        new = NewExecution(
            name=name or new_id,
            input=input,
            id=new_id,
            priority=priority,
            batch_id=batch_id,
            source_execution_id=source_execution_id,
            source_state_name=source_state_name,
            execution_type=execution_type,
        )
        now = utc_now(now)
        text = payloads.encode(new.input, field="input", limit=self._db.payload_max_bytes)
        row = self._row_values(version, new, now)
        if claim_as is not None:
            row.update(
                status=ExecutionStatus.RUNNING,
                lease_owner=claim_as,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                claim_count=1,  # as if claimed (see ``Runs.claim``)
            )
        if self._created(row, text):
            # As a read would return it: the input as JSON gives it back (lists, not tuples).
            return Execution(**{**row, "input": json.loads(text)}), True
        with self._db.read() as conn:
            existing = execution_record(
                conn.execute(
                    select(*EXECUTION_COLUMNS).where(
                        EX.state_machine_id == version.state_machine_id, EX.name == new.name
                    )
                ).one()
            )
        if execution_id is None and existing.id == new_id:
            # A fresh id can only exist if the first try committed before its
            # connection dropped (see ``Database.statement``): this call created it.
            return existing, True
        if payloads.canonical(existing.input) != payloads.canonical(input):
            raise ExecutionAlreadyExists(new.name)
        return existing, False

    def _created(self, row: dict[str, Any], input_json: str) -> bool:
        """Insert the new row unless its name exists; whether it was inserted.

        On PostgreSQL a prepared statement, given the input as the JSON already
        encoded (see ``Prepared``); elsewhere SQLAlchemy's INSERT.
        """
        prepared = self._db.insert_one(tuple(row))
        if prepared is None:
            return self._db.statement(self._create_insert, row, retry=True) is not None
        values = [
            # SQL NULL for no input (none_as_null), as SQLAlchemy binds it
            (None if value is None else input_json)
            if name == "input"
            else _driver_value(name, value)
            for name, value in row.items()
        ]
        return bool(self._db.prepared_rows(prepared, values, retry=True))

    def create_executions_bulk(
        self,
        version: Version,
        rows: Iterable[NewExecution],
        *,
        now: datetime | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> BulkCreateResult:
        """Create PENDING executions of ``version``, skipping names that exist.

        One transaction; one ``INSERT ... ON CONFLICT DO NOTHING RETURNING``
        statement per ``chunk_size`` rows. Every input is checked before
        anything is written. A name repeated within ``rows`` is created once.

        Returns:
            Which names were created (with their ids) and which were skipped.

        Raises:
            PayloadTooLarge, PayloadInvalid: an input cannot be stored;
                nothing was written.
        """
        now = utc_now(now)
        values, skipped = self._bulk_rows(version, rows, now)
        if not values:
            return BulkCreateResult(created={}, skipped=tuple(skipped))
        with self._db.write() as conn:
            created = self._db.dialect.insert_executions(conn, version, values, now, chunk_size)
        skipped.extend(v["name"] for v in values if v["name"] not in created)
        return BulkCreateResult(created=created, skipped=tuple(skipped))

    def _bulk_rows(
        self, version: Version, rows: Iterable[NewExecution], now: datetime
    ) -> tuple[list[dict[str, Any]], list[str]]:
        values: list[dict[str, Any]] = []
        seen: set[str] = set()
        duplicates: list[str] = []
        for index, new in enumerate(rows):
            if new.name in seen:
                duplicates.append(new.name)
                continue
            seen.add(new.name)
            values.append(self._execution_row(version, new, now, field=f"rows[{index}].input"))
        return values, duplicates

    def _execution_row(
        self, version: Version, new: NewExecution, now: datetime, *, field: str
    ) -> dict[str, Any]:
        payloads.encode(new.input, field=field, limit=self._db.payload_max_bytes)
        return self._row_values(version, new, now)

    @staticmethod
    def _row_values(version: Version, new: NewExecution, now: datetime) -> dict[str, Any]:
        """The new row's columns (the input as given; check it first)."""
        check_name(new.name)
        return {
            "id": new.id or str(uuid.uuid4()),
            "state_machine_id": version.state_machine_id,
            "version_id": version.id,
            "name": new.name,
            "status": ExecutionStatus.PENDING,
            "input": new.input,
            "output": None,
            "error": None,
            "cause": None,
            "cursor": None,
            "current_state": None,
            "priority": new.priority,
            "batch_id": new.batch_id,
            "source_execution_id": new.source_execution_id,
            "source_state_name": new.source_state_name,
            "started_at": now,
            "updated_at": now,
            "ended_at": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "revision": 0,
            "last_seq": 0,
            "wake_pending": False,
            "redrive_count": 0,
            "execution_type": _execution_type(new.execution_type or version.machine_type),
        }

    # -- reading executions --------------------------------------------------

    def get_execution(self, execution_id: str) -> Execution:
        """Return the execution with this id.

        Raises:
            ExecutionNotFound: no execution has this id.
        """
        with self._db.read() as conn:
            row = conn.execute(select(*EXECUTION_COLUMNS).where(EX.id == execution_id)).first()
        if row is None:
            raise ExecutionNotFound(execution_id)
        return execution_record(row)

    def list_executions(self, flt: ExecutionFilter) -> Page[Execution]:
        """Return one page of executions matching ``flt``, ordered by start time then id.

        Keyset paging: pass ``page.next_cursor`` as ``flt.cursor`` for the next
        page; rows inserted meanwhile never shift a page.
        """
        if flt.limit < 1:
            raise ValueError("limit must be at least 1")
        query = self._filtered(select(*EXECUTION_COLUMNS), flt)
        query = query.where(*after_cursor(flt)).order_by(*page_order(flt.descending))
        with self._db.read() as conn:
            rows = conn.execute(query.limit(flt.limit + 1)).all()
        items = [execution_record(row) for row in rows[: flt.limit]]
        more = len(rows) > flt.limit
        next_cursor = encode_page_cursor(items[-1]) if more else None
        return Page(items=tuple(items), next_cursor=next_cursor)

    def iter_executions(
        self, flt: ExecutionFilter, *, page_size: int = 1000
    ) -> Iterator[Execution]:
        """Yield every execution matching ``flt``, reading ``page_size`` rows at a time.

        Each page is its own short read, so streaming millions of rows holds
        neither a transaction nor more than one page in memory. ``flt.limit``
        is ignored; ``flt.cursor`` is where the stream starts.
        """
        cursor = flt.cursor
        while True:
            page = self.list_executions(replace(flt, limit=page_size, cursor=cursor))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count_executions(self, flt: ExecutionFilter) -> int:
        """Return how many executions match ``flt`` (``limit`` and ``cursor`` ignored)."""
        query = self._filtered(select(func.count()).select_from(EX), flt)
        with self._db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def status_counts(self, flt: ExecutionFilter) -> dict[ExecutionStatus, int]:
        """Return how many executions matching ``flt`` have each status (one GROUP BY)."""
        query = self._filtered(select(EX.status, func.count()).select_from(EX), flt)
        with self._db.read() as conn:
            rows = conn.execute(query.group_by(EX.status)).all()
        return {ExecutionStatus(status): int(count) for status, count in rows}

    def _filtered(self, query: _Query, flt: ExecutionFilter) -> _Query:
        return query.where(*machine_conditions(flt), *row_conditions(flt))

    def history(
        self, execution_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[HistoryEvent]:
        """Return the execution's history events in order.

        Args:
            execution_id: the execution.
            after_seq: only events after this sequence number. Default 0 (all).
            limit: at most this many events. Default: no limit.
        """
        h = m.HistoryEvent
        query = (
            select(*_history_columns())
            .where(h.execution_id == execution_id, h.seq > after_seq)
            .order_by(h.seq)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [HistoryEvent(**row._mapping) for row in conn.execute(query)]

    def state_outputs(
        self, execution_ids: Sequence[str], state_name: str, *, event_type: str
    ) -> dict[str, Any]:
        """Return, per execution, the output of its latest ``event_type`` event of ``state_name``.

        One query for a whole page of chaining sources. Executions without such
        an event are absent from the result.
        """
        h = m.HistoryEvent
        latest = (
            select(h.execution_id, func.max(h.seq).label("seq"))
            .where(
                h.execution_id.in_(execution_ids),
                h.state_name == state_name,
                h.event_type == event_type,
            )
            .group_by(h.execution_id)
            .subquery()
        )
        query = select(h.execution_id, h.output).join(
            latest, and_(h.execution_id == latest.c.execution_id, h.seq == latest.c.seq)
        )
        with self._db.read() as conn:
            return {row.execution_id: row.output for row in conn.execute(query)}


def _history_columns() -> list[Any]:
    h = m.HistoryEvent
    return [c for c in h.__table__.c if c.name != "id"]


#: The execution types (AWS's): STANDARD keeps history; EXPRESS only its final row.
EXECUTION_TYPES = ("STANDARD", "EXPRESS")


def _execution_type(value: str) -> str:
    if value not in EXECUTION_TYPES:
        raise ValueError(f"execution_type must be STANDARD or EXPRESS, not {value!r}")
    return value


def _driver_value(name: str, value: Any) -> Any:
    """A column value as the driver takes it (what the column's SQLAlchemy type would bind)."""
    if value is None:
        return None
    if isinstance(EXT.c[name].type, JSON):
        return json_dumps(value)
    return value.value if isinstance(value, Enum) else value
