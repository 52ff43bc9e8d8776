"""Fixtures of the HTTP API suite: the app on a fresh database (PostgreSQL and SQLite).

Each test gets its own database (``database_url``, once per backend) and its own
Redis database as the broker (``redis_db``), and talks to the app in-process
through Starlette's ``TestClient``, which re-raises any server error: a 500 fails
the test where it happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.api import handlers  # noqa: F401  # registers the api-tests.* resources
from tests.distributed.conftest import RedisDB, redis_db, start_worker  # noqa: F401  # fixtures

#: A broker URL nothing listens on.
DEAD_BROKER = "redis://127.0.0.1:1/0"

PASS: dict[str, Any] = {
    "StartAt": "Hello",
    "States": {"Hello": {"Type": "Pass", "Result": {"greeting": "hello"}, "End": True}},
}

DOUBLE: dict[str, Any] = {
    "StartAt": "Double",
    "States": {"Double": {"Type": "Task", "Resource": "api-tests.double", "End": True}},
}

FLAKY: dict[str, Any] = {
    "StartAt": "Flaky",
    "States": {"Flaky": {"Type": "Task", "Resource": "api-tests.fail-once", "End": True}},
}

WAIT_FOR_PAYMENT: dict[str, Any] = {
    "StartAt": "AwaitPayment",
    "States": {
        "AwaitPayment": {
            "Type": "Message",
            "CorrelationKey": "order",
            "CorrelationValuePath": "$.order",
            "ResultPath": "$.payment",
            "End": True,
        }
    },
}


@pytest.fixture
def api_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """Settings on the test's database and Redis database (``redis_db``)."""
    broker: RedisDB = request.getfixturevalue("redis_db")
    return Settings(database_url=database_url, broker_url=broker.url)


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build clients on apps of given settings; repositories are closed at teardown."""
    repositories: list[Repository] = []
    clients: list[TestClient] = []

    def make(settings: Settings, **client_options: Any) -> TestClient:
        repository = Repository.from_settings(settings)
        repositories.append(repository)
        client = TestClient(
            create_app(client=Orchestrator(settings, repository=repository)), **client_options
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for repository in repositories:
        repository.close()


@pytest.fixture
def client(api_settings: Settings, make_client: Callable[..., TestClient]) -> TestClient:
    """A client of the API on the test's database and broker, without a token."""
    return make_client(api_settings)


@pytest.fixture
def app(client: TestClient) -> FastAPI:
    """The app behind ``client``."""
    served: FastAPI = client.app  # type: ignore[assignment]
    return served


def create_machine(client: TestClient, name: str, definition: Any = PASS) -> dict[str, Any]:
    """POST a state machine; assert it was stored."""
    response = client.post("/state-machines", json={"name": name, "definition": definition})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def start(client: TestClient, machine: str, payload: Any = None, **fields: Any) -> dict[str, Any]:
    """POST a synchronous execution; assert it was accepted."""
    body = {"state_machine": machine, "input": payload, "mode": "sync", **fields}
    response = client.post("/executions", json=body)
    assert response.status_code == 201, response.text
    started: dict[str, Any] = response.json()
    return started


def pointers(response: Any) -> set[str]:
    """The JSON pointers of an error response's problems."""
    return {p["pointer"] for p in response.json()["problems"]}
