"""History shows what each state assigned (issue 13): the API, the client and the CLI.

Runs on PostgreSQL (the checkpoint writes history in one statement) and on SQLite
(two statements), through the stored runner.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import get_settings
from tests.api.conftest import create_machine, start

COUNTER: dict[str, Any] = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Assign": {"count": 0, "who": "$.name"}, "Next": "Check"},
        "Check": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$count",
                    "NumericEquals": 0,
                    "Assign": {"count": 1},
                    "Next": "Done",
                }
            ],
            "Default": "Done",
        },
        "Done": {"Type": "Pass", "Parameters": {"count.$": "$count"}, "End": True},
    },
}


def test_each_history_row_shows_the_variables_its_state_assigned(client: TestClient) -> None:
    create_machine(client, "counter", COUNTER)
    started = start(client, "counter", {"name": "ann"})

    events = client.get(f"/executions/{started['id']}/history").json()["items"]

    assert started["output"] == {"count": 1}
    shown = [(e["state_name"], e["assigned"]) for e in events if e["state_name"]]
    assert shown == [
        ("Init", {"count": 0, "who": "$.name"}),  # a plain string: no ".$" key
        ("Check", {"count": 1}),
        ("Done", None),
    ]


def test_the_cli_history_shows_assigned(
    client: TestClient, api_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_machine(client, "counter", COUNTER)
    started = start(client, "counter", {"name": "ann"})
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", api_settings.database_url)
    get_settings.cache_clear()
    try:
        as_json = CliRunner().invoke(app, ["executions", "history", started["id"], "--json"])
        table = CliRunner().invoke(app, ["executions", "history", started["id"]])
    finally:
        get_settings.cache_clear()

    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    assert [r["assigned"] for r in rows if r["state_name"] == "Check"] == [{"count": 1}]
    assert table.exit_code == 0, table.output
    assert "assigned" in table.output
