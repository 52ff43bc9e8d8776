"""GET /stats and GET /health: counts, queue depths, workers, reachability."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from orchestrator.settings import Settings
from tests.api.conftest import DEAD_BROKER, DOUBLE, WAIT_FOR_PAYMENT, create_machine, start
from tests.distributed.conftest import RedisDB, Worker

#: A PostgreSQL URL nothing listens on.
DEAD_DATABASE = "postgresql://postgres@127.0.0.1:1/nowhere"


def test_stats_count_executions_per_status_and_machine_and_queue_depths(
    client: TestClient,
) -> None:
    create_machine(client, "doubler", DOUBLE)
    create_machine(client, "waiter", WAIT_FOR_PAYMENT)
    start(client, "doubler", {"n": 1})
    start(client, "doubler", {"n": 2})
    start(client, "waiter", {"order": "o-1"})
    client.post("/executions", json={"state_machine": "doubler", "input": {"n": 3}})

    response = client.get("/stats")

    assert response.status_code == 200
    stats = response.json()
    assert stats["executions"]["total"] == 4
    assert stats["executions"]["by_status"] == {"SUCCEEDED": 2, "WAITING": 1, "PENDING": 1}
    assert stats["executions"]["by_state_machine"] == {
        "doubler": {"SUCCEEDED": 2, "PENDING": 1},
        "waiter": {"WAITING": 1},
    }
    assert stats["broker"]["reachable"] is True
    assert stats["broker"]["queues"] == {"critical": 0, "default": 1, "low": 0}
    assert stats["broker"]["workers"] == []


@pytest.mark.slow
def test_stats_list_the_workers_that_answer_a_ping(
    postgres_url: str,
    redis_db: RedisDB,
    make_client: Callable[..., TestClient],
    start_worker: Callable[..., Worker],
) -> None:
    # Given a worker on the broker (the database plays no part: PostgreSQL only)
    client = make_client(Settings(database_url=postgres_url, broker_url=redis_db.url))
    worker = start_worker(redis_db.url)

    stats = client.get("/stats").json()

    assert stats["broker"]["workers"] == [worker.name]


def test_stats_report_an_unreachable_broker_instead_of_failing(
    database_url: str, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(Settings(database_url=database_url, broker_url=DEAD_BROKER))

    response = client.get("/stats")

    assert response.status_code == 200
    broker = response.json()["broker"]
    assert broker["reachable"] is False
    assert "Connection refused" in broker["error"]
    assert broker["queues"] == {"critical": None, "default": None, "low": None}


def test_health_is_ok_when_the_database_and_the_broker_answer(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": {"ok": True, "error": None},
        "broker": {"ok": True, "error": None},
    }


def test_health_is_503_naming_an_unreachable_broker(
    database_url: str, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(Settings(database_url=database_url, broker_url=DEAD_BROKER))

    response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is False
    assert body["broker"]["error"] == "OperationalError"  # public route: the kind only


def test_an_unreachable_database_is_503_everywhere(
    redis_db: RedisDB, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(Settings(database_url=DEAD_DATABASE, broker_url=redis_db.url))

    health = client.get("/health")
    machines = client.get("/state-machines")
    execution = client.get("/executions/some-id")

    assert health.status_code == 503
    assert health.json()["database"] == {"ok": False, "error": "OperationalError"}
    assert health.json()["broker"]["ok"] is True
    assert machines.status_code == execution.status_code == 503
    assert machines.json() == {
        "error": "ServiceUnavailable",
        "detail": "the database is unreachable; try again",
        "problems": [],
    }


def test_an_async_start_with_the_broker_down_is_a_503_and_the_row_waits_for_the_sweeper(
    database_url: str, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(Settings(database_url=database_url, broker_url=DEAD_BROKER))
    create_machine(client, "doubler", DOUBLE)

    response = client.post(
        "/executions", json={"state_machine": "doubler", "input": {"n": 1}, "name": "n-1"}
    )

    assert response.status_code == 503
    assert response.json()["detail"] == "the broker is unreachable; try again"
    # The execution was stored before publishing: the sweeper publishes it later
    pending = client.get("/executions", params={"name_prefix": "n-1"}).json()["items"]
    assert [e["status"] for e in pending] == ["PENDING"]
