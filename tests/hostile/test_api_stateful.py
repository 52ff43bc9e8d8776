"""A stateful schemathesis run over the HTTP API, served by a real uvicorn on loopback.

Schemathesis chains operations through the links it infers (a created state
machine's name into a start, an execution's id into its history, a stop, a
redrive, ...) and sends what the schema allows and beyond. Over real HTTP, not
in-process: a response that fails while rendering makes uvicorn drop the
connection, which only a real client sees. Passing means: no 500, no request
hung past its timeout, no connection dropped.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error

from orchestrator.api import create_app
from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.api.conftest import PASS, WAIT_FOR_PAYMENT
from tests.distributed.conftest import RedisDB
from tests.distributed.conftest import redis_db as redis_db  # the fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

#: Scenarios, and steps in each: bounded so the run takes a minute or two.
SCENARIOS = 40
STEPS = 8
#: A request slower than this counts as hung (a synchronous start of a looping
#: machine must end at the event limit well before).
REQUEST_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(postgres_url: str, redis_db: RedisDB) -> Iterator[str]:
    """The API on a fresh PostgreSQL database, served by uvicorn in a thread; its base URL."""
    settings = Settings(
        database_url=postgres_url, broker_url=redis_db.url, max_events_per_execution=2000
    )
    repository = Repository.from_settings(settings)
    app = create_app(client=Orchestrator(settings, repository=repository))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    _seed(base)
    yield base
    served.should_exit = True
    thread.join(30)
    repository.close()


def _seed(base: str) -> None:
    """Machines the generated requests can name (the links then find more)."""
    import json
    import urllib.request

    for name, definition in (("hostile-pass", PASS), ("hostile-wait", WAIT_FOR_PAYMENT)):
        body = json.dumps({"name": name, "definition": definition}).encode()
        request = urllib.request.Request(  # noqa: S310  # our loopback server
            f"{base}/state-machines", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 201


def test_no_scenario_gets_a_500_a_hung_request_or_a_dropped_connection(server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"timeout": REQUEST_TIMEOUT}  # a hung request raises, failing the run

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kw: Any
        ) -> None:
            case.validate_response(response, checks=[not_a_server_error], transport_kwargs=kw)

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/executions", '{"state_machine": "hostile-pass", "mode": "sync", "input": "\\ud800"}'),
        ("/executions", '{"state_machine": "hostile-pass", "\\ud800": 1}'),
        ("/executions", '{"state_machine": "hostile-pass", "name": "\\ud800"}'),
        ("/state-machines", '{"name": "s", "definition": {"StartAt": "\\ud800", "States": {}}}'),
        ("/messages", '{"key": "order", "value": "\\ud800"}'),
    ],
)
def test_a_lone_surrogate_gets_an_answer_and_the_connection_stays_open(
    server: str, path: str, body: str
) -> None:
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(server)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        headers = {"content-type": "application/json"}
        connection.request("POST", path, body=body.encode(), headers=headers)
        answer = connection.getresponse()
        status, text = answer.status, answer.read().decode()
        # The same connection still serves the next request (uvicorn did not drop it)
        connection.request("GET", "/health")
        after = connection.getresponse()
        after.read()
    finally:
        connection.close()

    assert 400 <= status < 500, text
    assert after.status == 200
