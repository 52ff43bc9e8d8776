"""State machines and their immutable, deduplicated versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, func, insert, select

from orchestrator.errors import StateMachineNotFound, StateMachineTypeNotSupported
from orchestrator.store import models as m
from orchestrator.store import payloads
from orchestrator.store.records import StateMachineInfo, Version
from orchestrator.store.repository._base import Part, utc_now


class Definitions(Part):
    """State machines and their versions."""

    def create_or_get_version(
        self,
        name: str,
        definition: Any,
        *,
        machine_type: str = "STANDARD",
        now: datetime | None = None,
    ) -> tuple[StateMachineInfo, Version, bool]:
        """Store ``definition`` as the next version of ``name``, unless it is stored already.

        Creates the state machine on first use, of ``machine_type`` (``STANDARD``
        or ``EXPRESS``; a machine's type never changes, as on AWS). The same
        definition (equal as JSON) returns the version that holds it.

        Returns:
            The machine, the version, and whether the version was created now.

        Raises:
            StateMachineTypeNotSupported: the machine exists with another type.
        """
        text = payloads.canonical(definition, field="definition")
        definition_hash = payloads.digest(text)
        now = utc_now(now)
        with self._db.write() as conn:
            machine_id, created_at, stored_type = self._lock_machine(conn, name, now, machine_type)
            if stored_type != machine_type:
                raise StateMachineTypeNotSupported(
                    f"state machine {name!r} is {stored_type}; its type cannot become "
                    f"{machine_type} (create a machine of another name)"
                )
            row = conn.execute(
                _version_query().where(
                    m.StateMachineVersion.state_machine_id == machine_id,
                    m.StateMachineVersion.definition_hash == definition_hash,
                )
            ).first()
            created = row is None
            if row is None:
                row = self._insert_version(conn, machine_id, definition, definition_hash, now)
            latest = self._latest_version_number(conn, machine_id)
        info = StateMachineInfo(
            id=machine_id, name=name, created_at=created_at, latest_version=latest
        )
        return info, _version(row), created

    def _lock_machine(
        self, conn: Connection, name: str, now: datetime, machine_type: str
    ) -> tuple[int, datetime, str]:
        conn.execute(
            self._db.dialect.insert_ignoring(m.StateMachine, "name").values(
                name=name, created_at=now, type=machine_type
            )
        )
        # The row lock serialises concurrent version numbering for this machine
        # on PostgreSQL; SQLite's write lock already does.
        row = conn.execute(
            select(m.StateMachine.id, m.StateMachine.created_at, m.StateMachine.type)
            .where(m.StateMachine.name == name)
            .with_for_update()
        ).one()
        return row.id, row.created_at, row.type

    def _insert_version(
        self, conn: Connection, machine_id: int, definition: Any, digest: str, now: datetime
    ) -> Row[Any]:
        number = self._latest_version_number(conn, machine_id) + 1
        version_id = conn.execute(
            insert(m.StateMachineVersion)
            .values(
                state_machine_id=machine_id,
                version=number,
                definition=definition,
                definition_hash=digest,
                created_at=now,
            )
            .returning(m.StateMachineVersion.id)
        ).scalar_one()
        return conn.execute(_version_query().where(m.StateMachineVersion.id == version_id)).one()

    @staticmethod
    def _latest_version_number(conn: Connection, machine_id: int) -> int:
        latest = conn.execute(
            select(func.max(m.StateMachineVersion.version)).where(
                m.StateMachineVersion.state_machine_id == machine_id
            )
        ).scalar_one()
        return int(latest or 0)

    def get_version(self, name: str, version: int | None = None) -> Version:
        """Return version ``version`` of state machine ``name`` (the latest if None).

        Raises:
            StateMachineNotFound: no such machine or version.
        """
        query = _version_query().where(m.StateMachine.name == name)
        if version is None:
            query = query.order_by(m.StateMachineVersion.version.desc()).limit(1)
        else:
            query = query.where(m.StateMachineVersion.version == version)
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise StateMachineNotFound(name, version)
        return _version(row)

    def get_version_by_id(self, version_id: int) -> Version:
        """Return the version with this id (an execution's ``version_id``).

        Raises:
            StateMachineNotFound: no version has this id.
        """
        with self._db.read() as conn:
            row = conn.execute(
                _version_query().where(m.StateMachineVersion.id == version_id)
            ).first()
        if row is None:
            raise StateMachineNotFound(f"#version-id {version_id}")
        return _version(row)

    def list_state_machines(self) -> list[StateMachineInfo]:
        """Return every state machine with its latest version number, by name."""
        query = (
            select(
                m.StateMachine.id,
                m.StateMachine.name,
                m.StateMachine.created_at,
                func.coalesce(func.max(m.StateMachineVersion.version), 0).label("latest_version"),
            )
            .outerjoin(m.StateMachineVersion)
            .group_by(m.StateMachine.id, m.StateMachine.name, m.StateMachine.created_at)
            .order_by(m.StateMachine.name)
        )
        with self._db.read() as conn:
            return [StateMachineInfo(**row._mapping) for row in conn.execute(query)]


def _version_query() -> Select[Any]:
    v = m.StateMachineVersion
    return select(
        v.id,
        v.state_machine_id,
        m.StateMachine.name.label("state_machine_name"),
        v.version,
        v.definition,
        v.definition_hash,
        v.created_at,
        m.StateMachine.type.label("machine_type"),
    ).join(m.StateMachine, m.StateMachine.id == v.state_machine_id)


def _version(row: Row[Any]) -> Version:
    return Version(**row._mapping)
