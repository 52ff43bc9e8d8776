"""One trace per execution across processes: the Celery message carries the caller's
trace context to a real worker, the worker stores it on the execution row, and the
advances that come later (an answered task token in another process, a recovery
the sweeper re-publishes to another worker after the first one died) join it.

The worker's spans are read from the file its exporter writes
(``tests/observability/trace_handlers.py``); the test process's from memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.client import Orchestrator
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine, send_task_success
from orchestrator.store import Repository
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import RedisDB, Worker, make_app, redis_db, start_worker  # noqa: F401
from tests.distributed.reliability_support import kill_group
from tests.observability.test_tracing import spans  # noqa: F401  # fixture
from tests.observability.trace_handlers import SPANS_ENV
from tests.support import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

CALLBACK: dict[str, Any] = {
    "StartAt": "Ask",
    "States": {
        "Ask": {
            "Type": "Task",
            "Resource": "observability.callback.waitForTaskToken",
            "Parameters": {"outbox.$": "$.outbox", "token.$": "$$.Task.Token"},
            "TimeoutSeconds": 120,
            "ResultPath": "$.answer",
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "End": True},
    },
}

HANGS: dict[str, Any] = {
    "StartAt": "Work",
    "States": {"Work": {"Type": "Task", "Resource": "observability.hang-once", "End": True}},
}


def worker_spans(path: Path, execution_id: str) -> list[dict[str, Any]]:
    """The worker's execution spans of one execution, in the order they ended."""
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [s for s in found if s["attributes"].get("orchestrator.execution_id") == execution_id]


def hex_ids(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def worker_env(database_url: str, spans_file: Path, **more: str) -> dict[str, str]:
    return {
        "ORCHESTRATOR_HANDLER_MODULES": "tests.observability.trace_handlers",
        "ORCHESTRATOR_DATABASE_URL": database_url,
        SPANS_ENV: str(spans_file),
        **more,
    }


def test_the_message_carries_the_trace_the_row_keeps_it_and_a_resume_elsewhere_joins_it(
    spans: InMemorySpanExporter,  # noqa: F811
    database_url: str,
    redis_db: RedisDB,  # noqa: F811
    start_worker: Callable[..., Worker],  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given a worker that exports its spans to a file
    spans_file = tmp_path / "spans.jsonl"
    start_worker(redis_db.url, env=worker_env(database_url, spans_file))
    settings = Settings(database_url=database_url, broker_url=redis_db.url)
    repository = Repository.from_settings(settings)
    try:
        machine = StateMachine.create("traced", CALLBACK, repository=repository, settings=settings)

        # When an execution is published inside a span of the caller's
        outbox = tmp_path / "token"
        with trace.get_tracer("tests").start_as_current_span("caller") as caller:
            started = machine.start_async({"outbox": str(outbox)})
        trace_id, caller_id = hex_ids(caller)
        wait_until(
            lambda: repository.get_execution(started.id).status == ExecutionStatus.WAITING,
            timeout=60,
            what="the execution to park on its token",
        )

        # Then the worker's advance is a child of the caller's span (the message carried it)
        wait_until(lambda: worker_spans(spans_file, started.id), timeout=30, what="its span")
        (first,) = [
            s for s in worker_spans(spans_file, started.id) if s["name"] == "execution traced"
        ]
        assert (first["trace_id"], first["parent_id"]) == (trace_id, caller_id)
        # And the row keeps that context
        stored = repository.get_execution(started.id).trace_context
        assert stored is not None
        assert stored["traceparent"].split("-")[1:3] == [trace_id, caller_id]

        # When the token is answered here, outside any span, the resume joins the same trace
        spans.clear()
        send_task_success(outbox.read_text(), "yes", repository=repository, settings=settings)
        assert repository.get_execution(started.id).status == ExecutionStatus.SUCCEEDED
        resumed = [s for s in spans.get_finished_spans() if s.name == "execution traced"]
        assert resumed
        for span in resumed:
            assert hex_ids(span)[0] == trace_id
            assert span.parent is not None
            assert f"{span.parent.span_id:016x}" == caller_id
    finally:
        repository.close()


def test_a_recovery_republished_by_the_sweeper_joins_the_stored_trace(
    spans: InMemorySpanExporter,  # noqa: F811
    database_url: str,
    redis_db: RedisDB,  # noqa: F811
    start_worker: Callable[..., Worker],  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given a worker with 2 s leases, and an execution published in a caller's span
    # whose handler hangs on its first call
    spans_file = tmp_path / "spans.jsonl"
    markers = tmp_path / "markers"
    markers.mkdir()
    env = worker_env(database_url, spans_file, ORCHESTRATOR_LEASE_SECONDS="2")
    first_worker = start_worker(redis_db.url, env=env)
    settings = Settings(database_url=database_url, broker_url=redis_db.url, lease_seconds=2)
    repository = Repository.from_settings(settings)
    try:
        machine = StateMachine.create("hangs", HANGS, repository=repository, settings=settings)
        with trace.get_tracer("tests").start_as_current_span("caller") as caller:
            started = machine.start_async({"markers": str(markers)})
        trace_id, caller_id = hex_ids(caller)
        wait_until(lambda: (markers / started.id).exists(), timeout=60, what="the first call")
        assert repository.get_execution(started.id).trace_context is not None

        # When that worker dies mid-state and the sweeper (here, outside any span)
        # re-publishes the execution to a new worker once its lease expired
        kill_group(first_worker)
        assert worker_spans(spans_file, started.id) == []  # the killed advance never ended
        start_worker(redis_db.url, env=env)
        client = Orchestrator(settings, repository=repository)

        def recovered() -> bool:
            client.sweep()
            return repository.get_execution(started.id).status == ExecutionStatus.SUCCEEDED

        wait_until(recovered, timeout=90, what="the recovery", interval=0.5)

        # Then the new worker's advance joins the trace stored on the row
        (second,) = [
            s for s in worker_spans(spans_file, started.id) if s["name"] == "execution hangs"
        ]
        assert (second["trace_id"], second["parent_id"]) == (trace_id, caller_id)
    finally:
        repository.close()
