"""JSON logs: each line one object with execution id, machine, state and batch id."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.logs import (
    FIELDS,
    ContextFilter,
    JsonFormatter,
    TaskLineFilter,
    configure_logging,
    log_context,
)
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository
from tests.observability.log_handlers import MACHINE

ROOT = Path(__file__).resolve().parents[2]


class Lines(logging.Handler):
    """Keeps what a JSON handler would write."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def test_a_line_has_the_fields_the_context_and_extra_give(lines: Lines) -> None:
    log = logging.getLogger("tests.observability.unit")
    with log_context(execution_id="e-1", state_machine="m", batch_id="b-1"):
        log.info("hello %s", "there", extra={"state": "S", "action": "greet"})
    log.info("outside")
    inside, outside = lines.lines
    assert inside["message"] == "hello there"
    assert {k: inside[k] for k in FIELDS} == {
        "execution_id": "e-1", "state_machine": "m", "state": "S", "batch_id": "b-1",
    }  # fmt: skip
    assert inside["action"] == "greet"
    assert inside["level"] == "INFO"
    assert {k: outside[k] for k in FIELDS} == dict.fromkeys(FIELDS)


def test_a_handler_logs_with_its_execution_machine_and_state(lines: Lines, sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url)
    repo = Repository.from_settings(settings)
    try:
        machine = StateMachine.create("speaker", MACHINE, repository=repo, settings=settings)
        execution = machine.start({"n": 1})
    finally:
        repo.close()
    (line,) = [x for x in lines.lines if x["message"] == "the handler speaks"]
    assert line["execution_id"] == execution.id
    assert line["state_machine"] == "speaker"
    assert line["state"] == "Speak"
    assert line["batch_id"] is None


def test_the_cli_writes_json_lines(sqlite_url: str, tmp_path: Path) -> None:
    # The machine is created here (a second CLI process would cost a second's start-up).
    settings = Settings(database_url=sqlite_url)
    repo = Repository.from_settings(settings)
    try:
        StateMachine.create("speaker", MACHINE, repository=repo, settings=settings)
    finally:
        repo.close()
    env = {
        "ORCHESTRATOR_DATABASE_URL": sqlite_url,
        "ORCHESTRATOR_LOG_FORMAT": "json",
        "ORCHESTRATOR_HANDLER_MODULES": "tests.observability.log_handlers",
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(  # our own interpreter and arguments
        [sys.executable, "-m", "orchestrator", "executions", "start", "speaker", "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    spoken = [r for r in records if r["message"] == "the handler speaks"]
    assert len(spoken) == 1
    assert spoken[0]["state_machine"] == "speaker"
    assert spoken[0]["state"] == "Speak"
    assert spoken[0]["execution_id"]


def test_text_logs_are_left_alone(sqlite_url: str) -> None:
    assert configure_logging(Settings(database_url=sqlite_url)) is False


def test_celerys_lines_about_a_run_message_name_its_executions_machine_and_batch() -> None:
    def line(**data: str) -> dict[str, object]:
        record = logging.LogRecord("celery", logging.INFO, "", 0, "Task received", None, None)
        record.data = data
        handler = Lines()
        handler.addFilter(TaskLineFilter())
        assert handler.filter(record)
        handler.emit(record)
        return handler.lines[0]

    several = line(
        name="orchestrator.run_executions",
        args="(['e-1', 'e-2'],)",
        kwargs="{'state_machine': 'm', 'batch_id': 'b-1'}",
    )
    assert (several["execution_ids"], several["state_machine"], several["batch_id"]) == (
        ["e-1", "e-2"], "m", "b-1",
    )  # fmt: skip
    done = line(
        name="orchestrator.run_execution", return_value="{'execution_id': 'e-3', 'state': 'S'}"
    )
    assert (done["execution_id"], done["state"]) == ("e-3", "S")
    # A truncated repr, code, or another task's line: nothing is added, nothing breaks
    cut = line(name="orchestrator.run_execution", args="('e-4', ...", kwargs="__import__('os')")
    assert (cut["execution_id"], cut["state_machine"]) == (None, None)
    other = line(name="other.task", args="('e-5',)")
    assert other["execution_id"] is None
