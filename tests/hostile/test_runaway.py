"""A state machine that loops on itself ends FAILED at the default event limit (25,000),
on every path: a synchronous ``POST /executions`` and a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import RedisDB, Worker
from tests.distributed.conftest import redis_db as redis_db  # the fixture
from tests.distributed.conftest import start_worker as start_worker  # the fixture
from tests.hostile.definitions import self_looping_pass

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LOOP: dict[str, Any] = self_looping_pass()


def test_a_synchronous_start_of_a_self_looping_pass_returns_failed(
    postgres_url: str, redis_db: RedisDB
) -> None:
    settings = Settings(database_url=postgres_url, broker_url=redis_db.url)
    assert settings.max_events_per_execution == 25_000
    repository = Repository.from_settings(settings)
    with TestClient(create_app(client=Orchestrator(settings, repository=repository))) as client:
        created = client.post("/state-machines", json={"name": "loop", "definition": LOOP})
        assert created.status_code == 201, created.text

        response = client.post("/executions", json={"state_machine": "loop", "mode": "sync"})

    repository.close()
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["status"], answer["error"]) == ("FAILED", "States.Runtime")
    assert "limit of 25,000 history events" in answer["cause"]


def test_a_worker_ends_a_self_looping_execution_failed(
    postgres_url: str, redis_db: RedisDB, start_worker: Callable[..., Worker]
) -> None:
    settings = Settings(database_url=postgres_url, broker_url=redis_db.url)
    repository = Repository.from_settings(settings)
    machine = StateMachine.create("loop", LOOP, repository=repository, settings=settings)
    start_worker(
        redis_db.url,
        env={"ORCHESTRATOR_DATABASE_URL": postgres_url, "ORCHESTRATOR_HANDLER_MODULES": ""},
    )

    started = machine.start_async({})

    deadline = time.monotonic() + 240
    while (execution := repository.get_execution(started.id)).status in (
        ExecutionStatus.PENDING,
        ExecutionStatus.RUNNING,
    ):
        assert time.monotonic() < deadline, "the looping execution never ended"
        time.sleep(0.5)
    repository.close()
    assert (execution.status, execution.error) == (ExecutionStatus.FAILED, "States.Runtime")
