"""The console over HTTP (no browser): the token guard, the pages, the JSON and SVG it reads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.console.auth import COOKIE, session_value
from orchestrator.api.console.series import failure_rate
from orchestrator.settings import Settings
from tests.api import handlers
from tests.api.conftest import create_machine, make_client, start  # noqa: F401  # fixtures
from tests.api.test_tasks import CALLBACK
from tests.console.conftest import TOKEN

CHECK: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "BooleanEquals": True, "Next": "Done"}],
            "Default": "Broken",
        },
        "Broken": {"Type": "Fail", "Error": "NotOk", "Cause": "ok was false"},
        "Done": {"Type": "Succeed"},
    },
}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def guarded(sqlite_url: str, make_client: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    """The API on SQLite with a token (no broker needed: executions run in-process)."""
    return make_client(Settings(database_url=sqlite_url, api_token=TOKEN))


def test_without_a_session_only_the_login_form_is_served(guarded: TestClient) -> None:
    page = guarded.get("/console/", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/console/login")
    assert guarded.get("/console/static/console.js").status_code == 401
    assert guarded.get("/console/api/config").status_code == 401
    assert guarded.get("/console/api/batches").status_code == 401
    assert guarded.get("/console/api/machines/x/graph.svg").status_code == 401
    login = guarded.get("/console/login")
    assert login.status_code == 200
    assert 'id="login-form"' in login.text
    # The form's own script and the stylesheet hold no data.
    assert guarded.get("/console/static/login.js").status_code == 200
    assert guarded.get("/console/static/console.css").status_code == 200


def test_a_wrong_token_is_refused_and_the_right_one_opens_a_session(guarded: TestClient) -> None:
    assert guarded.post("/console/login", json={"token": "nope"}).status_code == 401
    assert COOKIE not in guarded.cookies
    response = guarded.post("/console/login", json={"token": TOKEN})
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert "Max-Age" not in cookie  # a session cookie: gone with the browser session
    assert TOKEN not in cookie
    assert guarded.cookies[COOKIE] == session_value(TOKEN)
    page = guarded.get("/console/")
    assert page.status_code == 200
    assert '<script src="/console/static/console.js">' in page.text
    assert guarded.get("/console/static/console.js").status_code == 200
    # The cookie opens the console, not the API: that needs the bearer header.
    assert guarded.get("/executions").status_code == 401
    guarded.post("/console/logout")
    assert guarded.get("/console/static/console.js").status_code == 401


def test_a_session_for_another_token_is_refused(guarded: TestClient) -> None:
    guarded.cookies.set(COOKIE, session_value("an old token"), path="/console")
    assert guarded.get("/console/static/console.js").status_code == 401


def test_without_a_token_the_console_is_open(
    sqlite_url: str,
    make_client: Callable[..., TestClient],  # noqa: F811
) -> None:
    client = make_client(Settings(database_url=sqlite_url))
    assert client.get("/console/").status_code == 200
    assert client.get("/console/static/console.js").status_code == 200
    assert client.get("/console/static/nope.js").status_code == 404


def test_the_graph_of_a_failed_execution_shows_its_failed_state(guarded: TestClient) -> None:
    guarded.headers.update(BEARER)
    create_machine(guarded, "checks", CHECK)
    failed = start(guarded, "checks", {"ok": False})
    assert failed["status"] == "FAILED"
    svg = guarded.get(f"/console/api/executions/{failed['id']}/graph.svg")
    assert svg.headers["content-type"] == "image/svg+xml"
    assert 'class="state outcome-failed" data-state="Broken"' in svg.text
    assert 'class="state outcome-succeeded" data-state="Check"' in svg.text
    assert 'class="state outcome-not-reached" data-state="Done"' in svg.text
    bare = guarded.get("/console/api/machines/checks/graph.svg", params={"version": 1})
    assert 'class="state outcome-none" data-state="Broken"' in bare.text
    assert guarded.get("/console/api/machines/nope/graph.svg").status_code == 404


def test_counts_follow_the_filters(guarded: TestClient) -> None:
    guarded.headers.update(BEARER)
    create_machine(guarded, "checks", CHECK)
    for n in range(3):
        start(guarded, "checks", {"ok": n == 0}, name=f"run-{n}")
    start(guarded, "checks", {"ok": True}, name="other")
    every = guarded.get("/console/api/counts", params={"state_machine": "checks"}).json()
    assert every == {"total": 4, "by_status": {"SUCCEEDED": 2, "FAILED": 2}}
    prefixed = guarded.get("/console/api/counts", params={"name_prefix": "run-"}).json()
    assert prefixed == {"total": 3, "by_status": {"SUCCEEDED": 1, "FAILED": 2}}
    failed = guarded.get(
        "/console/api/counts", params={"status": "FAILED", "name_prefix": "run-"}
    ).json()
    assert failed["total"] == 2
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert guarded.get("/console/api/counts", params={"started_after": later}).json()["total"] == 0


def test_chained_executions_are_listed(guarded: TestClient) -> None:
    guarded.headers.update(BEARER)
    create_machine(guarded, "checks", CHECK)
    source = start(guarded, "checks", {"ok": True})
    child = start(guarded, "checks", {"ok": True}, source_execution_id=source["id"])
    chained = guarded.get(f"/console/api/executions/{source['id']}/chained").json()
    assert [c["id"] for c in chained["items"]] == [child["id"]]


def test_an_executions_task_tokens_are_listed_without_the_token(guarded: TestClient) -> None:
    # Given an execution waiting on a .waitForTaskToken Task
    guarded.headers.update(BEARER)
    create_machine(guarded, "approvals", CALLBACK)
    waiting = start(guarded, "approvals", {"order": 1})
    assert waiting["status"] == "WAITING"
    token = handlers.tokens[waiting["id"]]
    path = f"/console/api/executions/{waiting['id']}/task-tokens"

    # Then its token is listed as waiting, by its hash's start, never by itself
    (listed,) = guarded.get(path).json()["items"]
    assert (listed["state"], listed["attempt"], listed["status"]) == ("Approve", 0, "WAITING")
    assert listed["heartbeat_seconds"] == 60
    assert listed["hash"] == hashlib.sha256(token.encode()).hexdigest()[:12]
    assert token not in guarded.get(path).text

    # And once the console's form answers it (POST /tasks/failure), it is listed as failed
    answer = guarded.post("/tasks/failure", json={"token": token, "error": "Rejected"})
    assert answer.status_code == 200
    (ended,) = guarded.get(path).json()["items"]
    assert (ended["status"], ended["error"]) == ("FAILED", "Rejected")
    assert ended["completed_at"] is not None
    assert guarded.get("/console/api/executions/nope/task-tokens").status_code == 404
    assert guarded.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_failure_rate_buckets() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ends = [(t0 + timedelta(seconds=s), status) for s, status in [
        (0, "SUCCEEDED"), (1, "FAILED"), (9, "FAILED"), (10, "TIMED_OUT"), (5, "SUCCEEDED"),
    ]]  # fmt: skip
    buckets = failure_rate(ends, buckets=2)
    assert [(b.ended, b.failed) for b in buckets] == [(2, 1), (3, 2)]
    assert buckets[0].rate == 0.5
    assert (buckets[0].start, buckets[1].end) == (t0, t0 + timedelta(seconds=10))
    assert failure_rate([], buckets=5) == []
    same = failure_rate([(t0, "FAILED"), (t0, "SUCCEEDED")], buckets=3)
    assert [b.ended for b in same] == [2, 0, 0]
