"""Map Runs in the console over HTTP: the routes the Map Run page and execution page read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.handlers import registry
from tests.api.conftest import create_machine, make_client, start  # noqa: F401  # fixtures
from tests.console.test_console_http import BEARER, guarded  # noqa: F401  # fixtures
from tests.dmap.work import FAILING, RESOURCE, machine, work


@pytest.fixture
def mapped(guarded: TestClient) -> Iterator[tuple[TestClient, dict[str, Any]]]:  # noqa: F811
    """A finished Distributed Map of 4 items (item 1 fails, tolerated) run in the API process."""
    registry.register(RESOURCE, work)
    try:
        guarded.headers.update(BEARER)
        create_machine(guarded, "fan", machine(Label="fan", ToleratedFailureCount=1))
        items = [{"n": n, "fail": n == 1} for n in range(4)]
        parent = start(guarded, "fan", items)
        assert parent["status"] == "SUCCEEDED", parent
        yield guarded, parent
    finally:
        registry.unregister(RESOURCE)


def test_the_failure_rate_of_a_map_run_counts_its_ended_children(
    mapped: tuple[TestClient, dict[str, Any]],
) -> None:
    client, parent = mapped
    (run,) = client.get("/mapruns", params={"execution_id": parent["id"]}).json()["items"]
    rate = client.get(f"/console/api/mapruns/{run['id']}/failure-rate", params={"buckets": 3})
    assert rate.status_code == 200
    buckets = rate.json()["buckets"]
    assert len(buckets) == 3
    assert sum(b["ended"] for b in buckets) == 4
    assert sum(b["failed"] for b in buckets) == 1
    assert client.get("/console/api/mapruns/nope/failure-rate").status_code == 404


def test_an_execution_links_to_its_map_runs_and_a_child_to_its_map_run_and_parent(
    mapped: tuple[TestClient, dict[str, Any]],
) -> None:
    client, parent = mapped
    links = client.get(f"/console/api/executions/{parent['id']}/map").json()
    assert links["map_run"] is None
    (own,) = links["map_runs"]
    assert (own["label"], own["state_name"], own["status"]) == ("fan", "Fan", "SUCCEEDED")
    assert (own["counts"]["succeeded"], own["counts"]["failed"], own["counts"]["total"]) == (
        3, 1, 4,
    )  # fmt: skip
    children = client.get(f"/mapruns/{own['id']}").json()["children"]
    child = children[2]
    back = client.get(f"/console/api/executions/{child['id']}/map").json()
    assert back == {
        "map_run": {"id": own["id"], "parent_execution_id": parent["id"], "item_index": 2},
        "map_runs": [],
    }
    assert client.get("/console/api/executions/nope/map").status_code == 404


def test_the_map_run_routes_need_a_session(
    mapped: tuple[TestClient, dict[str, Any]],
) -> None:
    client, parent = mapped
    (run,) = client.get("/mapruns").json()["items"]
    client.headers.pop("Authorization")
    assert client.get(f"/console/api/mapruns/{run['id']}/failure-rate").status_code == 401
    assert client.get(f"/console/api/executions/{parent['id']}/map").status_code == 401
    assert client.get("/mapruns").status_code == 401
    # The page and its nav know Map Runs (the script's routes are tested in the browser).
    client.headers.update(BEARER)
    assert 'href="#/mapruns"' in client.get("/console/").text


def test_the_map_run_pages_redrive_button_call_reruns_the_failed_children(
    guarded: TestClient,  # noqa: F811
) -> None:
    # Given a Map Run that failed on item 2 (the API runs its children in its process)
    registry.register(RESOURCE, work)
    FAILING.add(2)
    try:
        guarded.headers.update(BEARER)
        create_machine(guarded, "redo", machine(MaxConcurrency=1))
        parent = start(guarded, "redo", [{"n": n} for n in range(4)])
        assert parent["status"] == "FAILED"
        (run,) = guarded.get("/mapruns").json()["items"]
        assert run["counts"]["failed"] == 1

        # When the cause is fixed and the button's call redrives the parent
        FAILING.discard(2)
        assert guarded.post(f"/executions/{run['execution_id']}/redrive").status_code == 200

        # Then the same Map Run succeeded with every child
        again = guarded.get(f"/mapruns/{run['id']}").json()
        assert (again["status"], again["counts"]["succeeded"]) == ("SUCCEEDED", 4)
        links = guarded.get(f"/console/api/executions/{parent['id']}/map").json()
        assert [m["id"] for m in links["map_runs"]] == [run["id"]]
    finally:
        FAILING.discard(2)
        registry.unregister(RESOURCE)
