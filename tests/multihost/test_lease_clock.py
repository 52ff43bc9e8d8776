"""Lease times come from PostgreSQL's clock, so hosts whose clocks disagree share leases safely.

Issue 17: ``lease_expires_at`` was computed from the worker's clock before the
statement was sent. A worker whose clock runs ahead then sees every live lease
as expired and takes it; one whose statement sits in a partitioned link writes a
lease that expired before it committed. Here a worker's clock is set an hour
ahead (the store's ``utc_now``, which reads the host's clock) and must neither
take a live lease nor write one by its own clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from orchestrator.handlers import HandlerRegistry
from orchestrator.runtime.runner import Runner
from orchestrator.settings import Settings
from orchestrator.store import Repository
from orchestrator.store.repository import _runs
from orchestrator.types import ExecutionStatus

LEASE = 30.0
SKEW = timedelta(hours=1)
MACHINE = {"StartAt": "Only", "States": {"Only": {"Type": "Pass", "End": True}}}


@pytest.fixture
def repo(postgres_url: str) -> Iterator[Repository]:
    """A repository on the test's PostgreSQL database."""
    repository = Repository.from_settings(Settings(database_url=postgres_url))
    yield repository
    repository.close()


def database_now(url: str) -> datetime:
    """PostgreSQL's clock."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT now()")
            value: datetime = cur.fetchone()[0]
            return value
    finally:
        conn.close()


def clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's clock runs an hour ahead of the database's."""
    real = _runs.utc_now

    def ahead(now: datetime | None) -> datetime:
        return real(now) if now is not None else datetime.now(UTC) + SKEW

    monkeypatch.setattr(_runs, "utc_now", ahead)


def near(value: datetime | None, expected: datetime, *, within: float = 5.0) -> bool:
    return value is not None and abs((value - expected).total_seconds()) < within


def test_a_host_whose_clock_runs_ahead_takes_no_live_lease(
    repo: Repository, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, version, _ = repo.create_or_get_version("clocks", MACHINE)
    execution, _ = repo.create_execution(version, name="one")
    assert repo.claim(execution.id, "a", lease_seconds=LEASE) is not None

    clock_ahead(monkeypatch)
    assert repo.claim(execution.id, "b", lease_seconds=LEASE) is None
    runner = Runner(repo, settings=Settings(database_url=postgres_url), handlers=HandlerRegistry())
    assert runner.advance(execution.id) is None
    assert repo.get_execution(execution.id).lease_owner == "a"


def test_leases_are_written_by_the_database_clock(
    repo: Repository, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, version, _ = repo.create_or_get_version("clocks", MACHINE)
    execution, _ = repo.create_execution(version, name="one")
    clock_ahead(monkeypatch)

    claimed = repo.claim(execution.id, "a", lease_seconds=LEASE)
    assert claimed is not None
    expected = database_now(postgres_url) + timedelta(seconds=LEASE)
    assert near(claimed.lease_expires_at, expected), claimed.lease_expires_at

    assert near(repo.renew_lease(execution.id, "a", lease_seconds=LEASE), expected)
    repo.checkpoint(
        execution.id, "a", cursor={}, status=ExecutionStatus.RUNNING, lease_seconds=LEASE
    )
    assert near(repo.get_execution(execution.id).lease_expires_at, expected)


def test_a_given_now_is_still_the_clock(repo: Repository) -> None:
    # Tests and tools that pass ``now`` keep their clock (here: a day in the past).
    _, version, _ = repo.create_or_get_version("clocks", MACHINE)
    execution, _ = repo.create_execution(version, name="one")
    then = datetime.now(UTC) - timedelta(days=1)
    claimed = repo.claim(execution.id, "a", lease_seconds=LEASE, now=then)
    assert claimed is not None
    assert near(claimed.lease_expires_at, then + timedelta(seconds=LEASE))
