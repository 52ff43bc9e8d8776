"""AWS JSON 1.0 at POST / of the app, in process (quick tier: SQLite, no worker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.aws import BUILT_ACTIONS, CONTENT_TYPE
from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.store import Repository

DEAD_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def api(sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=sqlite_url, broker_url=DEAD_BROKER)
    repository = Repository.from_settings(settings)
    with TestClient(create_app(client=Orchestrator(settings, repository=repository))) as client:
        yield client
    repository.close()


def call(api: TestClient, action: str, body: Any = None, raw: bytes | None = None) -> Any:
    return api.post(
        "/",
        content=raw if raw is not None else json.dumps(body or {}).encode(),
        headers={"X-Amz-Target": f"AWSStepFunctions.{action}", "Content-Type": CONTENT_TYPE},
    )


def test_the_built_actions_include_the_core_ones() -> None:
    assert {"CreateStateMachine", "StartExecution", "GetExecutionHistory"} <= set(BUILT_ACTIONS)


def test_actions_answer_in_aws_json(api: TestClient) -> None:
    response = call(api, "ListStateMachines")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.json() == {"stateMachines": []}


@pytest.mark.parametrize(
    ("action", "raw", "code"),
    [
        ("DescribeActivity", b"{}", "UnknownOperationException"),
        ("ListStateMachines", b"{not json", "SerializationException"),
        ("ListStateMachines", b"[1, 2]", "ValidationException"),
        ("DescribeStateMachine", b"{}", "ValidationException"),
        ("DescribeStateMachine", b'{"stateMachineArn": "nope"}', "InvalidArn"),
        ("GetExecutionHistory", b'{"executionArn": 7}', "ValidationException"),
    ],
)
def test_bad_requests_get_aws_error_shapes(
    api: TestClient, action: str, raw: bytes, code: str
) -> None:
    response = call(api, action, raw=raw)
    assert response.status_code == 400
    assert response.json()["__type"] == code
    assert response.json()["message"]
    assert response.headers["x-amzn-errortype"] == code


def test_a_target_of_another_service_is_unknown(api: TestClient) -> None:
    response = api.post("/", content=b"{}", headers={"X-Amz-Target": "DynamoDB_20120810.Scan"})
    assert response.json()["__type"] == "UnknownOperationException"


def test_validate_names_every_problem_with_its_location(api: TestClient) -> None:
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "C": {}}}
    body = call(api, "ValidateStateMachineDefinition", {"definition": json.dumps(definition)})
    found = body.json()
    assert found["result"] == "FAIL"
    assert {d["location"] for d in found["diagnostics"]} >= {"/States/A/Next", "/States/C"}
