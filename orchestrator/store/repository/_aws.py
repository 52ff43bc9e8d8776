"""What the AWS JSON API keeps about a state machine: role ARN, tags, published versions.

One row per state machine in ``aws_state_machines``; a machine created through
another front end has none until the AWS API first writes to it (its facts are
then the defaults: no role, no tags, nothing published). The machine's type is
the core's (``state_machines.type``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from orchestrator.store import models as m
from orchestrator.store.records import AwsMachine
from orchestrator.store.repository._base import Part, utc_now

A = m.AwsStateMachine


class AwsResources(Part):
    """The ``aws_state_machines`` rows."""

    def get_aws_machine(self, state_machine_id: int) -> AwsMachine | None:
        """The AWS facts of a state machine, or None if the AWS API never wrote any."""
        with self._db.engine.connect() as conn:
            row = conn.execute(select(A).where(A.state_machine_id == state_machine_id)).first()
        return None if row is None else _record(row)

    def put_aws_machine(
        self,
        state_machine_id: int,
        *,
        role_arn: str | None,
        tags: Mapping[str, str],
        now: datetime | None = None,
    ) -> AwsMachine:
        """Create (or revive after a delete) the AWS facts of a machine; tags are merged."""
        now = utc_now(now)
        with self._db.write() as conn:
            row, created = self._ensure(conn, state_machine_id, now, role_arn=role_arn, tags=tags)
            if not created:
                merged = {**({} if row.deleted_at else dict(row.tags or {})), **tags}
                values: dict[str, Any] = {"role_arn": role_arn, "tags": merged}
                if row.deleted_at is not None:
                    values.update(deleted_at=None, created_at=now, published=[])
                conn.execute(update(A).where(A.state_machine_id == state_machine_id).values(values))
            found = self._lock(conn, state_machine_id)
        assert found is not None
        return _record(found)

    def update_aws_machine(
        self,
        state_machine_id: int,
        *,
        role_arn: str | None = None,
        tags: Mapping[str, str] | None = None,
        untag: Sequence[str] = (),
        deleted_at: datetime | None = None,
        now: datetime | None = None,
    ) -> AwsMachine:
        """Change the role, add ``tags``, remove the keys ``untag``, or mark it deleted.

        A machine without a row gets one with the defaults first.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            row, _ = self._ensure(conn, state_machine_id, now)
            values: dict[str, Any] = {}
            if role_arn is not None:
                values["role_arn"] = role_arn
            if tags is not None or untag:
                merged = {**dict(row.tags or {}), **dict(tags or {})}
                values["tags"] = {k: v for k, v in merged.items() if k not in set(untag)}
            if deleted_at is not None:
                values["deleted_at"] = deleted_at
            if values:
                conn.execute(update(A).where(A.state_machine_id == state_machine_id).values(values))
            found = self._lock(conn, state_machine_id)
        assert found is not None
        return _record(found)

    def publish_aws_version(
        self,
        state_machine_id: int,
        version_id: int,
        *,
        description: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Publish ``version_id`` as the next AWS version number (or return it if it is the
        newest published one already, as AWS does for an unchanged revision).

        Returns:
            ``{"number", "version_id", "description", "created_at"}``.
        """
        now = utc_now(now)
        with self._db.write() as conn:
            row, _ = self._ensure(conn, state_machine_id, now)
            published = list(row.published or [])
            if published and published[-1]["version_id"] == version_id:
                return dict(published[-1])
            number = (published[-1]["number"] + 1) if published else 1
            entry = {
                "number": number,
                "version_id": version_id,
                "description": description,
                "created_at": now.isoformat(),
            }
            conn.execute(
                update(A)
                .where(A.state_machine_id == state_machine_id)
                .values(published=[*published, entry])
            )
        return entry

    def _ensure(
        self,
        conn: Connection,
        state_machine_id: int,
        now: datetime,
        *,
        role_arn: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[Row[Any], bool]:
        """The machine's row, locked, and whether it was created now (with these values).

        The INSERT skips a row that exists (or that a concurrent caller just made).
        """
        inserted = conn.execute(
            self._db.dialect.insert_ignoring(A, "state_machine_id").values(
                state_machine_id=state_machine_id,
                role_arn=role_arn,
                tags=dict(tags or {}),
                published=[],
                created_at=now,
            )
        )
        row = self._lock(conn, state_machine_id)
        assert row is not None
        return row, inserted.rowcount == 1

    def _lock(self, conn: Connection, state_machine_id: int) -> Row[Any] | None:
        # FOR UPDATE on PostgreSQL; SQLite's write transaction already holds the lock.
        query = select(A).where(A.state_machine_id == state_machine_id).with_for_update()
        return conn.execute(query).first()


def _record(row: Row[Any]) -> AwsMachine:
    return AwsMachine(
        state_machine_id=row.state_machine_id,
        role_arn=row.role_arn,
        tags=dict(row.tags or {}),
        published=tuple(row.published or ()),
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


__all__ = ["AwsResources"]
