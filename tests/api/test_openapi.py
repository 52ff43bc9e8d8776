"""The OpenAPI document: every operation is documented, and schemathesis finds no 500.

The schemathesis run generates requests from the document (valid ones and, in
its negative mode, invalid ones) against the app on a fresh PostgreSQL database
(the stricter backend: NUL characters, column lengths, integer ranges) seeded
with a few machines and executions, with a real Redis as the broker. Every
response must be no 5xx, carry a documented status code and content type, and
match the documented schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.api import create_app
from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.api.conftest import DOUBLE, PASS, WAIT_FOR_PAYMENT, create_machine, start
from tests.distributed.conftest import RedisDB

pytestmark = pytest.mark.slow  # fuzzes every operation (schemathesis)

#: Examples per operation and mode; ~15 operations stay well under a minute.
MAX_EXAMPLES = 25


def test_every_operation_has_a_summary_a_response_model_and_its_errors(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            ok = [c for c in operation["responses"] if c.startswith("2")]
            assert ok, where
            assert "schema" in operation["responses"][ok[0]]["content"]["application/json"], where
            if path != "/health":
                assert {"401", "422", "503"} <= set(operation["responses"]), where


def _seed(client: TestClient) -> None:
    create_machine(client, "greeter", PASS)
    create_machine(client, "doubler", DOUBLE)
    create_machine(client, "waiter", WAIT_FOR_PAYMENT)
    source = start(client, "doubler", {"n": 1}, name="seed-1")
    start(client, "waiter", {"order": "o-1"}, name="seed-wait")
    start(client, "doubler", source_execution_id=source["id"], name="seed-chained")


@pytest.fixture
def live_app(postgres_url: str, redis_db: RedisDB, make_client: Callable[..., TestClient]) -> Any:
    """The app on a fresh, seeded PostgreSQL database (one per operation under test)."""
    client = make_client(Settings(database_url=postgres_url, broker_url=redis_db.url))
    _seed(client)
    client.app.state.context.ping_timeout = 0.05  # type: ignore[attr-defined]  # /stats: no workers here
    return client.app


def _document_app() -> Any:
    """An app that only serves the OpenAPI document (its store is never opened)."""
    settings = Settings(database_url="sqlite://")
    return create_app(client=Orchestrator(settings, repository=Repository.from_settings(settings)))


# Loaded from an app built at import, then every case is sent to the test's
# ``live_app``: schemathesis's fixture-based loader (``from_fixture``) fails
# under pytest 9 (it sets ``Function._nodeid``, which pytest 9 no longer has).
schema = schemathesis.openapi.from_asgi("/openapi.json", _document_app())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        # One database per operation, shared by its examples on purpose: state builds up.
        HealthCheck.function_scoped_fixture,
    ],
)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case, live_app: Any) -> None:
    case.call_and_validate(
        app=live_app,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
