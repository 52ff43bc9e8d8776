"""`orchestrator machines create --type EXPRESS` and `executions start --sync`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import get_settings

PASS = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}


@pytest.fixture
def definition(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The test's database for the CLI, and a definition file."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    get_settings.cache_clear()
    path = tmp_path / "pass.json"
    path.write_text(json.dumps(PASS))
    yield str(path)
    get_settings.cache_clear()


def test_an_express_machine_started_sync_prints_its_outcome(definition: str) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["machines", "create", "quick", definition, "--type", "express"])
    assert created.exit_code == 0, created.output

    done = runner.invoke(app, ["executions", "start", "quick", "--sync", "--json"])

    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert (body["status"], body["output"], body["execution_type"]) == (
        "SUCCEEDED",
        {"ok": 1},
        "EXPRESS",
    )


def test_start_sync_of_a_standard_machine_is_one_line_and_exit_2(definition: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["machines", "create", "slow", definition]).exit_code == 0

    refused = runner.invoke(app, ["executions", "start", "slow", "--sync"])
    retyped = runner.invoke(app, ["machines", "create", "slow", definition, "--type", "EXPRESS"])

    for result, says in ((refused, "EXPRESS state machines only"), (retyped, "cannot become")):
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1
        assert says in lines[0]
        assert "'slow' is STANDARD" in lines[0]
