"""`orchestrator tasks success|failure|heartbeat TOKEN`: answer a waiting Task from a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.handlers import HandlerContext, HandlerRegistry
from orchestrator.runtime import Runner
from orchestrator.settings import Settings, get_settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus

REPO_ROOT = Path(__file__).resolve().parents[2]

CALLBACK: dict[str, Any] = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "cli-tests.approve.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token"},
            "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.why", "Next": "Refused"}],
            "End": True,
        },
        "Refused": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture
def store(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repository]:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    get_settings.cache_clear()
    repository = Repository.from_settings(Settings(database_url=database_url))
    yield repository
    repository.close()
    get_settings.cache_clear()


def park(repository: Repository, database_url: str) -> tuple[str, str]:
    """Start the callback machine in this process: (execution id, its token)."""
    tokens: list[str] = []

    def approve(data: Any, ctx: HandlerContext) -> None:
        tokens.append(data["token"])

    handlers = HandlerRegistry()
    handlers.register("cli-tests.approve.waitForTaskToken", approve)
    settings = Settings(database_url=database_url)
    created = StateMachine.create("approvals", CALLBACK, repository=repository, settings=settings)
    machine = StateMachine(
        created.version_record,
        repository=repository,
        settings=settings,
        runner=Runner(repository, settings=settings, handlers=handlers),
    )
    execution = machine.start({"order": 1})
    assert execution.status == ExecutionStatus.WAITING
    return execution.id, tokens[0]


def test_another_process_answers_a_token_stored_earlier(
    store: Repository, database_url: str
) -> None:
    execution_id, token = park(store, database_url)
    env = {**os.environ, "ORCHESTRATOR_DATABASE_URL": database_url}

    done = subprocess.run(  # noqa: S603  # our interpreter, our arguments
        [sys.executable, "-m", "orchestrator", "tasks", "success", token, '{"ok": 1}'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"resumed execution {execution_id}"
    stored = store.get_execution(execution_id)
    assert (stored.status, stored.output) == (ExecutionStatus.SUCCEEDED, {"ok": 1})


def test_failure_and_heartbeat(store: Repository, database_url: str) -> None:
    execution_id, token = park(store, database_url)
    runner = CliRunner()

    beat = runner.invoke(app, ["tasks", "heartbeat", token])
    failed = runner.invoke(app, ["tasks", "failure", token, "-e", "Rejected", "-c", "no"])

    assert beat.exit_code == 0, beat.output
    assert failed.exit_code == 0, failed.output
    assert store.get_execution(execution_id).output == {
        "order": 1,
        "why": {"Error": "Rejected", "Cause": "no"},
    }


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tasks", "success", "no-such-token"], "TaskDoesNotExist: no task waits"),
        (["tasks", "heartbeat", "no-such-token"], "TaskDoesNotExist: no task waits"),
        (["tasks", "failure", "has spaces"], "InvalidToken: a task token holds printable"),
        (["tasks", "success", "tok", "{not json"], "OUTPUT is not valid JSON"),
    ],
)
def test_a_refused_answer_is_one_line_and_exit_2(
    store: Repository, args: list[str], says: str
) -> None:
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert says in lines[0]


def test_a_used_token_says_so(store: Repository, database_url: str) -> None:
    _, token = park(store, database_url)
    runner = CliRunner()
    assert runner.invoke(app, ["tasks", "success", token]).exit_code == 0

    again = runner.invoke(app, ["tasks", "success", token])

    assert again.exit_code == 2
    assert "InvalidToken: the token was already used" in again.output
