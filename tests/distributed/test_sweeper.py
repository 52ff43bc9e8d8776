"""The sweeper re-publishes lost work, not work that is merely queued (real PostgreSQL, Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from orchestrator.celery import create_app
from orchestrator.distributed.publish import Depths, queue_depths
from orchestrator.distributed.sweeper import quiet_levels, sweep
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import NewExecution, Repository
from orchestrator.types import START_TICKET_PREFIX
from tests.distributed.conftest import RedisDB

PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


class Recorder:
    """A publisher that records what it was asked to publish."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def __call__(self, ids: Sequence[str], priority: str | int) -> int:
        self.published.extend(ids)
        return len(ids)


@pytest.fixture
def stalled(postgres_url: str, redis_db: RedisDB) -> Iterator[tuple[Settings, Repository, dict]]:
    """Executions unchanged for an hour: PENDING at default and low, one RUNNING, lease gone."""
    settings = Settings(database_url=postgres_url, broker_url=redis_db.url)
    repo = Repository.from_settings(settings)
    version = StateMachine.create("swept", PASS, repository=repo, settings=settings).version_record
    rows = [
        NewExecution(name="pending-default", input={}, priority=5),
        NewExecution(name="pending-low", input={}, priority=1),
        NewExecution(name="running-lost", input={}, priority=5),
    ]
    ids = dict(repo.create_executions_bulk(version, rows).created)
    with repo.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE executions SET status = 'RUNNING', lease_owner = 'dead-worker', "
                "lease_expires_at = :expired WHERE id = :id"
            ),
            {"id": ids["running-lost"], "expired": "2000-01-01T00:00:00+00:00"},
        )
    yield settings, repo, ids
    repo.close()


def _age(repo: Repository) -> None:
    with repo.engine.begin() as conn:
        conn.execute(text("UPDATE executions SET updated_at = '2000-01-01T00:00:00+00:00'"))


def test_pending_executions_behind_a_queue_are_left_to_it_and_lost_ones_come_back(
    stalled: tuple[Settings, Repository, dict], redis_db: RedisDB
) -> None:
    settings, repo, ids = stalled
    _age(repo)
    # Given messages still waiting in the default queue (the low queue is empty)
    redis_db.client.rpush("default", b"a message ahead")
    recorder = Recorder()

    # When the sweeper runs
    done = sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(settings))

    # Then the RUNNING execution whose worker died, and the PENDING one on the empty
    # queue, are published again; the PENDING one behind the default queue is not
    assert sorted(recorder.published) == sorted([ids["running-lost"], ids["pending-low"]])
    assert done == {"woken": 0, "stalled": 2}

    # When the default queue has drained and the sweeper runs again
    redis_db.client.delete("default")
    _age(repo)
    recorder.published.clear()
    sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(settings))

    # Then the PENDING execution whose message never came is published again too
    assert ids["pending-default"] in recorder.published


def test_when_the_broker_cannot_say_the_grace_period_alone_decides(
    stalled: tuple[Settings, Repository, dict],
) -> None:
    settings, repo, ids = stalled
    _age(repo)
    recorder = Recorder()
    down = Settings(database_url=settings.database_url, broker_url="redis://127.0.0.1:1/0")
    sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(down))
    assert sorted(recorder.published) == sorted(ids.values())


def test_quiet_levels_are_those_of_empty_queues() -> None:
    assert quiet_levels(None) is None
    assert quiet_levels({"critical": 0, "default": 3, "low": 0}) == [0, 1, 2, 7, 8, 9]
    assert quiet_levels({"critical": 1, "default": 1, "low": 1}) == []


def depths_for(settings: Settings) -> Depths:
    """The queue depths of ``settings``' broker, as the client reads them."""
    app = create_app(settings, set_as_current=False)
    return lambda: queue_depths(app)


def test_a_dead_workers_execution_comes_back_one_lease_after_it_expired_not_a_grace_later(
    stalled: tuple[Settings, Repository, dict], redis_db: RedisDB
) -> None:
    settings, repo, ids = stalled
    # Given the defaults (lease 60 s, grace 300 s), every execution unchanged for
    # 90 s, and a live worker holding another execution, with a long queue ahead
    assert (settings.lease_seconds, settings.recovery_grace_seconds) == (60.0, 300.0)
    with repo.engine.begin() as conn:
        conn.execute(
            text("UPDATE executions SET updated_at = :then"),
            {"then": datetime.now(UTC) - timedelta(seconds=90)},
        )
    assert repo.claim(ids["pending-low"], "live-worker", lease_seconds=60) is not None
    redis_db.client.rpush("default", b"a message ahead")
    recorder = Recorder()

    # When the sweeper runs
    sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(settings))

    # Then only the RUNNING execution whose lease expired is published again (90 s
    # is past its lease, not past the grace period the PENDING ones wait for)
    assert recorder.published == [ids["running-lost"]]

    # And the next sweep does not publish it again: it was taken a moment ago
    recorder.published.clear()
    sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(settings))
    assert recorder.published == []


def test_a_start_tickets_lease_is_a_queued_message_not_a_dead_worker(
    stalled: tuple[Settings, Repository, dict], redis_db: RedisDB
) -> None:
    settings, repo, ids = stalled
    # Given an EXPRESS start whose message waits behind a long queue: RUNNING under
    # its start ticket, the ticket's lease run out, unchanged for 90 s (past a lease)
    version = StateMachine.create(
        "express-swept", PASS, repository=repo, settings=settings, machine_type="EXPRESS"
    ).version_record
    ticket = f"{START_TICKET_PREFIX}{uuid.uuid4().hex}"
    queued, _ = repo.create_execution(version, input={}, priority=5, claim_as=ticket)
    with repo.engine.begin() as conn:
        conn.execute(
            text("UPDATE executions SET updated_at = :then, lease_expires_at = :then"),
            {"then": datetime.now(UTC) - timedelta(seconds=90)},
        )
    redis_db.client.rpush("default", b"a message ahead")
    recorder = Recorder()

    # When the sweeper runs
    sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(settings))

    # Then the dead worker's execution comes back, the queued start does not
    assert recorder.published == [ids["running-lost"]]

    # When its queue has drained (the message is lost, or its worker died)
    redis_db.client.delete("default")
    recorder.published.clear()
    sweep(settings=settings, repository=repo, publish=recorder, depths=depths_for(settings))

    # Then it is published again
    assert recorder.published == [queued.id]
