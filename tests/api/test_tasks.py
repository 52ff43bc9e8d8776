"""POST /tasks/success|failure|heartbeat: answer a .waitForTaskToken Task, or say why not."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api import handlers
from tests.api.conftest import create_machine, pointers, start

CALLBACK: dict[str, Any] = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "api-tests.callback.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token"},
            "HeartbeatSeconds": 60,
            "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Refused"}],
            "ResultPath": "$.approval",
            "End": True,
        },
        "Refused": {"Type": "Pass", "End": True},
    },
}


def waiting(client: TestClient) -> tuple[str, str]:
    """A started execution parked on its callback: (execution id, token)."""
    create_machine(client, "approvals", CALLBACK)
    execution = start(client, "approvals", {"order": 1})
    assert execution["status"] == "WAITING"
    return execution["id"], handlers.tokens[execution["id"]]


def test_success_resumes_the_execution_with_the_output(client: TestClient) -> None:
    execution_id, token = waiting(client)

    beat = client.post("/tasks/heartbeat", json={"token": token})
    response = client.post("/tasks/success", json={"token": token, "output": {"ok": True}})

    assert beat.json() == {"execution_id": execution_id}
    assert response.status_code == 200
    assert response.json() == {"execution_id": execution_id}
    execution = client.get(f"/executions/{execution_id}").json()
    assert execution["status"] == "SUCCEEDED"
    assert execution["output"] == {"order": 1, "approval": {"ok": True}}


def test_failure_is_caught_by_the_states_catch(client: TestClient) -> None:
    execution_id, token = waiting(client)

    response = client.post(
        "/tasks/failure", json={"token": token, "error": "Rejected", "cause": "no budget"}
    )

    assert response.status_code == 200
    execution = client.get(f"/executions/{execution_id}").json()
    assert execution["output"] == {"order": 1, "why": {"Error": "Rejected", "Cause": "no budget"}}


def test_a_used_token_is_a_400_and_an_unknown_one_a_404(client: TestClient) -> None:
    _, token = waiting(client)
    client.post("/tasks/success", json={"token": token})

    again = client.post("/tasks/success", json={"token": token})
    unknown = client.post("/tasks/heartbeat", json={"token": "nobody-has-this-token"})

    assert (again.status_code, again.json()["error"]) == (400, "InvalidToken")
    assert "already used" in again.json()["detail"]
    assert (unknown.status_code, unknown.json()["error"]) == (404, "TaskDoesNotExist")


def test_the_token_of_a_stopped_execution_is_a_404(client: TestClient) -> None:
    execution_id, token = waiting(client)
    client.post(f"/executions/{execution_id}/stop", json={})

    response = client.post("/tasks/success", json={"token": token})

    assert response.status_code == 404
    assert "ABORTED" in response.json()["detail"]


def test_a_body_without_a_token_is_a_422(client: TestClient) -> None:
    response = client.post("/tasks/failure", json={"error": "E"})

    assert response.status_code == 422
    assert pointers(response) == {"/body/token"}
