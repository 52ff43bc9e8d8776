"""Map Runs from the CLI (``orchestrator mapruns list|show``) and HTTP (``/mapruns``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator import Orchestrator
from orchestrator.api import create_app
from orchestrator.cli import app as cli
from orchestrator.handlers import registry
from orchestrator.settings import Settings
from tests.dmap.work import RESOURCE, machine, work


@pytest.fixture
def finished(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, str]]:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", sqlite_url)
    settings = Settings(database_url=sqlite_url)
    registry.register(RESOURCE, work)
    try:
        client = Orchestrator(settings)
        done = client.create_state_machine("fe", machine(Label="fan")).start([1, 2, 3])
        (run,) = client.map_runs(execution_id=done.id)
        yield settings, run.id
    finally:
        registry.unregister(RESOURCE)


def test_cli_lists_and_shows_map_runs(finished: tuple[Settings, str]) -> None:
    _, run_id = finished
    listed = CliRunner().invoke(cli, ["mapruns", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["id"], row["status"], row["total"], row["succeeded"]) == (
        run_id, "SUCCEEDED", 3, 3,
    )  # fmt: skip
    shown = CliRunner().invoke(cli, ["mapruns", "show", run_id])
    assert shown.exit_code == 0, shown.output
    assert "label: fan" in shown.output
    missing = CliRunner().invoke(cli, ["mapruns", "show", "nope"])
    assert missing.exit_code == 2
    assert "map run 'nope' does not exist" in missing.output


def test_http_lists_and_shows_map_runs(finished: tuple[Settings, str]) -> None:
    settings, run_id = finished
    http = TestClient(create_app(settings))
    listed = http.get("/mapruns")
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [run_id]
    shown = http.get(f"/mapruns/{run_id}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["counts"]["succeeded"] == 3
    assert [c["item_index"] for c in body["children"]] == [0, 1, 2]
    assert http.get("/mapruns/nope").status_code == 404
