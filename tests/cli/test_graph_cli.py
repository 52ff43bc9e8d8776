"""`orchestrator graph MACHINE [--execution ID] --format svg|mermaid|dot`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import get_settings

MACHINE = {
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


@pytest.fixture
def runner(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    (tmp_path / "m.json").write_text(json.dumps(MACHINE))
    cli = CliRunner()
    assert cli.invoke(app, ["machines", "create", "checks", "m.json"]).exit_code == 0
    yield cli
    get_settings.cache_clear()


def test_a_definition_in_each_format(runner: CliRunner) -> None:
    mermaid = runner.invoke(app, ["graph", "checks", "--format", "mermaid"])
    assert mermaid.exit_code == 0, mermaid.output
    assert mermaid.output.startswith("flowchart TD\n")
    assert '-->|"Default"|' in mermaid.output
    dot = runner.invoke(app, ["graph", "checks", "--format", "dot"])
    assert dot.output.startswith("digraph statemachine {")
    svg = runner.invoke(app, ["graph", "checks", "--format", "svg"])
    assert svg.output.startswith("<svg ")
    assert 'data-state="Broken"' in svg.output


def test_an_execution_colours_its_failed_state(runner: CliRunner) -> None:
    started = runner.invoke(
        app, ["executions", "start", "checks", "--input", '{"ok": false}', "--json"]
    )
    printed = json.loads(started.output)
    execution_id = (printed[0] if isinstance(printed, list) else printed)["id"]
    out = runner.invoke(app, ["graph", "checks", "--execution", execution_id, "--format", "svg"])
    assert out.exit_code == 0, out.output
    assert 'class="state outcome-failed" data-state="Broken"' in out.output
    assert 'class="state outcome-not-reached" data-state="Done"' in out.output
    assert 'class="state outcome-succeeded" data-state="Check"' in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["graph", "nope"], "error: state machine 'nope' does not exist\n"),
        (["graph", "checks", "--format", "png"], "error: unknown --format 'png'"),
        (["graph", "checks", "--execution", "nope"], "error: execution 'nope' does not exist\n"),
    ],
)
def test_errors_are_one_line_and_exit_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith(message)
    assert result.output.count("\n") == 1
