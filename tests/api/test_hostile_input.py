"""Hostile input over HTTP: lone surrogates, bad names, executions that never end."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from orchestrator.settings import Settings
from tests.hostile.definitions import self_looping_pass

from .conftest import WAIT_FOR_PAYMENT, create_machine

#: A lone surrogate as JSON text: valid JSON, not valid Unicode.
SURROGATE = '"\\ud800"'


def post_raw(client: TestClient, path: str, body: str) -> object:
    """POST a JSON body written by hand (json= cannot send a lone surrogate)."""
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


def test_a_lone_surrogate_in_an_execution_input_is_a_clear_422(client: TestClient) -> None:
    create_machine(client, "surrogates")
    body = f'{{"state_machine": "surrogates", "mode": "sync", "input": {{"a": {SURROGATE}}}}}'

    response = post_raw(client, "/executions", body)

    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    answer = response.json()  # type: ignore[attr-defined]
    assert answer["error"] == "PayloadInvalid"
    assert answer["detail"] == "input: strings may not contain a lone surrogate (U+D800)"


def test_a_lone_surrogate_in_a_definition_is_a_clear_422(client: TestClient) -> None:
    state = f'{{"Type": "Pass", "Result": {SURROGATE}, "End": true}}'
    definition = f'{{"StartAt": "P", "States": {{"P": {state}}}}}'
    body = f'{{"name": "surrogate-result", "definition": {definition}}}'

    response = post_raw(client, "/state-machines", body)

    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert "lone surrogate" in response.text  # type: ignore[attr-defined]


def test_a_lone_surrogate_in_a_message_is_a_clear_422(client: TestClient) -> None:
    create_machine(client, "payments", WAIT_FOR_PAYMENT)
    started = client.post(
        "/executions",
        json={"state_machine": "payments", "mode": "sync", "input": {"order": "o-1"}},
    )
    assert started.json()["status"] == "WAITING"

    for body in (
        f'{{"key": "order", "value": "o-1", "data": {{"x": {SURROGATE}}}}}',
        f'{{"key": "order", "value": {SURROGATE}, "data": null}}',
    ):
        response = post_raw(client, "/messages", body)
        assert response.status_code == 422, response.text  # type: ignore[attr-defined]
        assert "lone surrogate" in response.json()["detail"]  # type: ignore[attr-defined]


def test_an_error_that_quotes_a_lone_surrogate_is_still_answered(client: TestClient) -> None:
    # An unknown field named by a lone surrogate: the 422 quotes it back
    body = f'{{"state_machine": "x", {SURROGATE}: 1}}'

    response = post_raw(client, "/executions", body)

    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.json()["error"] == "RequestInvalid"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["with space", "tab\there", "semi;colon", "x" * 81, "nul\x00"])
def test_an_execution_name_aws_would_refuse_is_a_422(client: TestClient, name: str) -> None:
    create_machine(client, "named")

    response = client.post(
        "/executions", json={"state_machine": "named", "mode": "sync", "name": name}
    )

    assert response.status_code == 422, response.text
    assert "name" in response.json()["detail"]


def test_a_synchronous_start_of_a_self_looping_pass_returns_failed(
    api_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(api_settings.model_copy(update={"max_events_per_execution": 500}))
    loop = self_looping_pass()
    create_machine(client, "runaway", loop)

    response = client.post("/executions", json={"state_machine": "runaway", "mode": "sync"})

    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["status"], answer["error"]) == ("FAILED", "States.Runtime")


def test_an_error_body_quoting_a_lone_surrogate_still_renders() -> None:
    # An error sentence may quote client text; "\ud800" cannot be UTF-8 encoded
    from orchestrator.api.errors import error_response

    response = error_response(404, "StateMachineNotFound", "state machine '\ud800' does not exist")

    assert response.status_code == 404
    assert b"\\ud800" in response.body
