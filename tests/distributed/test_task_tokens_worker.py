"""A ``.waitForTaskToken`` Task on a real Celery worker: it parks and frees the worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine, send_task_success
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus
from tests.support import wait_until

from .conftest import RedisDB, Worker

CALLBACK: dict[str, Any] = {
    "StartAt": "Ask",
    "States": {
        "Ask": {
            "Type": "Task",
            "Resource": "tests.callback.waitForTaskToken",
            "Parameters": {"outbox.$": "$.outbox", "token.$": "$$.Task.Token"},
            "TimeoutSeconds": 120,
            "ResultPath": "$.answer",
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "End": True},
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_callback_task_parks_on_a_worker_and_the_answer_finishes_it(
    database_url: str,
    redis_db: RedisDB,
    start_worker: Callable[..., Worker],
    tmp_path: Path,
) -> None:
    # Given one solo worker (one execution at a time) with the callback handler
    settings = Settings(database_url=database_url, broker_url=redis_db.url)
    start_worker(
        redis_db.url,
        env={
            "ORCHESTRATOR_HANDLER_MODULES": "tests.distributed.token_handlers",
            "ORCHESTRATOR_DATABASE_URL": database_url,
        },
    )
    repository = Repository.from_settings(settings)
    try:
        machine = StateMachine.create(
            "callbacks", CALLBACK, repository=repository, settings=settings
        )
        # When two executions are published, each parks in turn: the first frees the worker
        outboxes = [tmp_path / f"token-{i}" for i in range(2)]
        started = [machine.start_async({"outbox": str(box)}) for box in outboxes]
        for execution in started:
            wait_until(
                lambda e=execution: (
                    repository.get_execution(e.id).status == ExecutionStatus.WAITING
                ),
                timeout=60,
                what="the execution to park on its token",
            )
        tokens = [box.read_text() for box in outboxes]

        # Then answering each token (here, another process than the worker) finishes it
        for execution, token, verdict in zip(started, tokens, ("yes", "no"), strict=True):
            send_task_success(token, verdict, repository=repository, settings=settings)
            done = repository.get_execution(execution.id)
            assert done.status == ExecutionStatus.SUCCEEDED
            assert done.output["answer"] == verdict
    finally:
        repository.close()
