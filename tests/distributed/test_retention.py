"""Retention run by Celery beat: ``orchestrator.purge`` on a real worker and database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from celery import Celery

from orchestrator.distributed.config import (
    PURGE_ENTRY,
    PURGE_TASK,
    CeleryOptions,
    celery_config,
)
from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from orchestrator.store import NewExecution
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import RedisDB
from tests.distributed.reliability_support import Cluster, query
from tests.distributed.test_reliability import make_cluster as make_cluster  # the fixture
from tests.support import wait_until

pytestmark = pytest.mark.slow  # real worker and beat processes


def test_without_retention_beat_schedules_no_purge() -> None:
    assert PURGE_ENTRY not in celery_config(Settings())["beat_schedule"]


def test_retention_days_schedule_a_purge_on_the_low_queue() -> None:
    config = celery_config(Settings(retention_days=30, purge_interval_seconds=600))
    entry = config["beat_schedule"][PURGE_ENTRY]
    assert entry["task"] == PURGE_TASK
    assert entry["schedule"] == 600
    assert entry["kwargs"] == {"older_than_days": 30}
    assert entry["options"] == {"queue": "low", "expires": 600}


def test_a_retention_that_cannot_work_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="retention_days"):
        CeleryOptions(retention_days=0)


@pytest.fixture
def aged(make_cluster: Callable[..., Cluster]) -> tuple[Cluster, dict[str, str]]:
    """A cluster that keeps one day, and executions that ended 3 days ago, or not at all."""
    cluster = make_cluster(retention_days=1, purge_interval_seconds=1)
    rows = [NewExecution(name=name, input={}) for name in ("old-ok", "old-failed", "new", "live")]
    created = cluster.repo.create_executions_bulk(cluster.source_machine.version_record, rows)
    ids = dict(created.created)
    ages: dict[str, tuple[str, str]] = {
        "old-ok": ("SUCCEEDED", "3 days"),
        "old-failed": ("FAILED", "3 days"),
        "new": ("SUCCEEDED", "1 hour"),
        "live": ("RUNNING", "3 days"),
    }
    for name, (status, age) in ages.items():
        ended = "NULL" if status == "RUNNING" else f"now() - interval '{age}'"
        query(
            cluster.dsn,
            f"UPDATE executions SET status = %s, started_at = now() - interval '{age}', "  # noqa: S608  # test constants
            f"ended_at = {ended} WHERE id = %s",
            (status, ids[name]),
        )
    return cluster, ids


def test_beat_purges_what_ended_before_the_retention_and_keeps_the_rest(
    aged: tuple[Cluster, dict[str, str]], redis_db: RedisDB
) -> None:
    # Given a worker and beat, with retention 1 day and a purge every second
    cluster, ids = aged
    (worker,) = cluster.start_workers(1, pool="solo", concurrency=1)
    cluster.start_beat()

    # When beat's purge has run
    def remaining() -> set[str]:
        return {row[0] for row in query(cluster.dsn, "SELECT name FROM executions")}

    wait_until(lambda: "old-ok" not in remaining(), timeout=30, what="the purge")

    # Then what ended 3 days ago is gone, what ended an hour ago or runs is intact
    assert remaining() == {"new", "live"}
    assert cluster.repo.get_execution(ids["live"]).status == ExecutionStatus.RUNNING
    assert "purge deleted 2 executions" in worker.log()


def test_the_purge_task_takes_statuses_and_refuses_a_bad_age(
    aged: tuple[Cluster, dict[str, str]], app: Celery, redis_db: RedisDB
) -> None:
    cluster, _ = aged
    (worker,) = cluster.start_workers(1, pool="solo", concurrency=1)
    app.send_task(PURGE_TASK, kwargs={"older_than_days": "soon"}, queue="low")
    app.send_task(PURGE_TASK, kwargs={"older_than_days": 2, "statuses": ["FAILED"]}, queue="low")

    def names() -> set[str]:
        return {row[0] for row in query(cluster.dsn, "SELECT name FROM executions")}

    wait_until(lambda: "old-failed" not in names(), timeout=30, what="the purge of FAILED")
    assert names() == {"old-ok", "new", "live"}
    log = worker.log()
    assert "older_than_days must be a number, not 'soon'" in log
