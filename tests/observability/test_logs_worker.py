"""JSON logs on a real Celery worker (prefork): every line about an execution names it,
its machine and its batch; lines logged inside a state name the state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter, Repository
from tests.distributed.conftest import RedisDB, Worker, make_app, redis_db, start_worker  # noqa: F401
from tests.observability.log_handlers import MACHINE
from tests.support import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a worker's log (its start-up banner is plain text)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_each_line_about_an_execution_names_it_its_machine_state_and_batch(
    database_url: str,
    redis_db: RedisDB,  # noqa: F811
    start_worker: Callable[..., Worker],  # noqa: F811
) -> None:
    # Given a prefork worker writing JSON logs
    worker = start_worker(
        redis_db.url,
        pool="prefork",
        concurrency=1,
        env={
            "ORCHESTRATOR_DATABASE_URL": database_url,
            "ORCHESTRATOR_HANDLER_MODULES": "tests.observability.log_handlers",
            "ORCHESTRATOR_LOG_FORMAT": "json",
        },
    )
    settings = Settings(database_url=database_url, broker_url=redis_db.url)
    repository = Repository.from_settings(settings)
    try:
        # When a distributed batch of three executions runs there
        machine = StateMachine.create("speaker", MACHINE, repository=repository, settings=settings)
        inputs = [{"n": n} for n in range(3)]
        batch_id = machine.execute_bulk(inputs, name_prefix="logs", poll_interval=0.05).batch_id
        flt = ExecutionFilter(batch_id=batch_id)
        wait_until(
            lambda: all(e.ended_at for e in repository.iter_executions(flt)),
            timeout=60,
            what="the batch's executions to end",
        )
        ids = {e.id for e in repository.iter_executions(flt)}
    finally:
        repository.close()
    worker.stop()
    lines = json_lines(worker.log())

    # Then every line that mentions an execution carries its id, machine and batch
    assert len(ids) == 3
    for execution_id in ids:
        about = [
            line
            for line in lines
            if execution_id in line["message"] or line.get("execution_id") == execution_id
        ]
        assert len(about) >= 3, about  # received, the handler's line, succeeded
        for line in about:
            fields = (line["execution_id"], line["state_machine"], line["batch_id"])
            assert fields == (execution_id, "speaker", batch_id), line
            assert "state" in line
        # And the handler's line, logged inside the state, names the state
        (spoken,) = [line for line in about if line["message"] == "the handler speaks"]
        assert spoken["state"] == "Speak"
