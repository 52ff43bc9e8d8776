"""OpenTelemetry (the ``otel`` extra): a span per advance of an execution and per state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository
from tests.api import handlers  # noqa: F401  # registers api-tests.fail-once

MACHINE: dict[str, Any] = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Flaky"},
        "Flaky": {"Type": "Task", "Resource": "api-tests.fail-once", "End": True},
    },
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A tracer provider exporting to memory, for this test only.

    OpenTelemetry sets its global provider once per process; the fixture puts
    the unset state back afterwards (as OpenTelemetry's own tests do), so later
    tests run untraced, as a process without the SDK configured does.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_tracer_provider()
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    _reset_tracer_provider()


def _reset_tracer_provider() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


def test_an_execution_and_its_states_are_spans(
    spans: InMemorySpanExporter, sqlite_url: str
) -> None:
    settings = Settings(database_url=sqlite_url)
    repo = Repository.from_settings(settings)
    try:
        machine = StateMachine.create("traced", MACHINE, repository=repo, settings=settings)
        failed = machine.start({"n": 1})
    finally:
        repo.close()
    assert failed.status.value == "FAILED"

    finished = spans.get_finished_spans()
    executions = [s for s in finished if s.name == "execution traced"]
    assert executions
    first = executions[0]
    assert first.attributes is not None
    assert first.attributes["orchestrator.execution_id"] == failed.id
    states = [s for s in finished if s.name.startswith("state ")]
    prepare = next(s for s in states if s.name == "state Prepare")
    flaky = next(s for s in states if s.name == "state Flaky")
    # Children of the execution's span, in its trace.
    for child in (prepare, flaky):
        assert child.parent is not None
        assert child.parent.span_id == first.context.span_id
        assert child.context.trace_id == first.context.trace_id
    assert flaky.status.status_code is StatusCode.ERROR
    assert flaky.attributes is not None
    assert flaky.attributes["orchestrator.error"] == "Flaky.Failed"
    assert prepare.status.status_code is not StatusCode.ERROR
    assert prepare.start_time is not None
    assert prepare.end_time is not None
    assert prepare.start_time <= prepare.end_time


def test_without_a_tracer_provider_no_span_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider configured: no tracer, and an execution's span costs nothing."""
    from orchestrator.runtime import tracing

    _reset_tracer_provider()
    built: list[str] = []
    monkeypatch.setattr(
        trace.ProxyTracerProvider, "get_tracer", lambda self, *a, **k: built.append("tracer")
    )
    assert tracing._tracer() is None
    with tracing.execution_span(execution_id="e", machine="m", batch_id=None) as carrier:
        assert carrier is None
    assert built == []


def test_a_provider_set_later_is_used(spans: InMemorySpanExporter) -> None:
    from orchestrator.runtime import tracing

    with tracing.execution_span(execution_id="e", machine="m", batch_id=None):
        pass
    assert [span.name for span in spans.get_finished_spans()] == ["execution m"]
