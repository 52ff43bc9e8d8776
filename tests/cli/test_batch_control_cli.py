"""`orchestrator batch start --inputs|show|pause|resume|cancel|failed|redrive|archive`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.handlers import registry
from orchestrator.settings import get_settings
from tests.batch.work import MACHINE, RESOURCE


@pytest.fixture
def cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., str]]:
    """Run the CLI on the test's database, in tmp_path, with a handler module there."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cli_handlers", raising=False)
    get_settings.cache_clear()
    (tmp_path / "cli_handlers.py").write_text(
        "from orchestrator.handlers import registry\n"
        "from tests.batch.work import RESOURCE, work\n"
        "registry.register(RESOURCE, work, replace=True)\n"
    )
    (tmp_path / "machine.json").write_text(json.dumps(MACHINE))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("machines", "create", "bulk", "machine.json")
    yield run
    registry.unregister(RESOURCE)
    get_settings.cache_clear()


def test_a_bulk_batch_is_started_shown_steered_and_its_failures_handled(
    cli: Callable[..., str], tmp_path: Path
) -> None:
    inputs = tmp_path / "orders.jsonl"
    inputs.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(30)))

    started = cli(
        "batch", "start", "bulk", "--name-prefix", "orders", "--inputs", str(inputs),
        "--mode", "local", "--no-guard", "--micro-batch-size", "10", "-H", "cli_handlers",
        "--no-follow",
    )  # fmt: skip
    assert "30 sources, 30 created, 0 skipped, 0 published (COMPLETED)" in started
    batch_id = started.split()[1].rstrip(":")

    shown = json.loads(cli("batch", "show", batch_id, "--json"))
    assert (shown["status"], shown["FAILED"], shown["SUCCEEDED"]) == ("COMPLETED", 12, 18)
    assert shown["position"]["exhausted"] is True
    failed = json.loads(cli("batch", "failed", batch_id, "--json"))
    assert len(failed) == 12
    assert {f["error"] for f in failed} == {"ValueError"}
    assert "PAUSED (paused by request)" in cli("batch", "pause", batch_id)
    assert "COMPLETED" in cli("batch", "resume", batch_id, "--disarm-guard")
    assert "archived 12" in cli("batch", "archive", batch_id)
    assert "redrove 0" in cli("batch", "redrive", batch_id, "--local", "-H", "cli_handlers")
    assert "CANCELLED" in cli("batch", "cancel", batch_id)
    assert len(json.loads(cli("batch", "failed", batch_id, "--archived", "--json"))) == 12


def test_a_malformed_inputs_file_is_one_line_and_creates_nothing(
    cli: Callable[..., str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n": 1}\n{"n": \n')
    result = CliRunner().invoke(
        app, ["batch", "start", "bulk", "--name-prefix", "b", "--inputs", str(bad)]
    )
    assert result.exit_code == 2
    assert "line 2" in result.output
    assert "nothing was created" in result.output
