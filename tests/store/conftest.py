"""Fixtures and helpers for the repository suite (which runs on both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.settings import Settings
from orchestrator.store import NewCorrelation, NewTimer, Repository, Version
from orchestrator.store.records import Execution
from orchestrator.types import ExecutionStatus

#: A fixed "now" for tests that pass the time explicitly.
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

DEFINITION: dict[str, Any] = {
    "StartAt": "Hello",
    "States": {"Hello": {"Type": "Pass", "Result": "world", "End": True}},
}


def seconds(n: float) -> timedelta:
    """``timedelta(seconds=n)``, for readable time arithmetic."""
    return timedelta(seconds=n)


@pytest.fixture
def pg_repo(postgres_url: str) -> Iterator[Repository]:
    """A repository on PostgreSQL only (for what only PostgreSQL shows: plans, WAL)."""
    repository = Repository.from_settings(Settings(database_url=postgres_url))
    yield repository
    repository.close()


@pytest.fixture
def version(repo: Repository) -> Version:
    """Version 1 of state machine ``orders``."""
    _, stored, _ = repo.create_or_get_version("orders", DEFINITION, now=T0)
    return stored


def start(repo: Repository, version: Version, name: str, **kwargs: Any) -> Execution:
    """Create a PENDING execution named ``name`` at T0 (unless ``now`` is given)."""
    kwargs.setdefault("now", T0)
    execution, _ = repo.create_execution(version, name=name, **kwargs)
    return execution


def park(
    repo: Repository,
    version: Version,
    name: str,
    *,
    timers: tuple[NewTimer, ...] = (),
    correlations: tuple[NewCorrelation, ...] = (),
    now: datetime = T0,
) -> Execution:
    """Start an execution and park it WAITING on ``timers`` and ``correlations``."""
    execution = start(repo, version, name, now=now)
    assert repo.claim(execution.id, "parker", lease_seconds=60, now=now)
    status = repo.checkpoint(
        execution.id,
        "parker",
        cursor={"waiting": True},
        status=ExecutionStatus.WAITING,
        timers=timers,
        correlations=correlations,
        now=now,
    )
    assert status == ExecutionStatus.WAITING
    return repo.get_execution(execution.id)


@pytest.fixture
def postgres_repo(postgres_url: str) -> Iterator[Repository]:
    """A repository on a fresh PostgreSQL database, for PostgreSQL-only behaviour."""
    repository = Repository.from_settings(Settings(database_url=postgres_url))
    yield repository
    repository.close()
