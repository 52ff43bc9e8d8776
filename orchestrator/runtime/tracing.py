"""OpenTelemetry spans (optional extra ``otel``): one per advance of an execution, one per state.

Without ``opentelemetry-api`` installed this does nothing. With it, the process's
tracer provider (configured by the application: exporter, sampler) receives a span
``execution <machine>`` for each advance of an execution, with a child span
``state <name>`` for each state that finished during it, timed by the interpreter's
own entered/exited times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.asl import HistoryEvent

#: Interpreter event statuses that end a state's span with an error status.
_ERRORS = frozenset({"failed", "caught", "retrying"})


def _tracer() -> Any | None:
    try:
        from opentelemetry import trace
    except ImportError:  # the optional extra is not installed
        return None
    return trace.get_tracer("orchestrator")


@contextlib.contextmanager
def execution_span(*, execution_id: str, machine: str, batch_id: str | None) -> Iterator[None]:
    """A span around one advance of an execution (the current span inside)."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    attributes = {"orchestrator.execution_id": execution_id, "orchestrator.state_machine": machine}
    if batch_id:
        attributes["orchestrator.batch_id"] = batch_id
    with tracer.start_as_current_span(f"execution {machine}", attributes=attributes):
        yield


def state_spans(events: Iterable[HistoryEvent]) -> None:
    """One finished span per state event, children of the current (execution) span."""
    tracer = _tracer()
    if tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    for event in events:
        span = tracer.start_span(
            f"state {event.state}",
            start_time=int(event.entered_at * 1e9),
            attributes={
                "orchestrator.state": event.state,
                "orchestrator.state_type": event.type,
                "orchestrator.outcome": event.status,
                "orchestrator.attempt": event.attempt,
            },
        )
        if event.status in _ERRORS and event.error:
            span.set_status(Status(StatusCode.ERROR, event.error))
            span.set_attribute("orchestrator.error", event.error)
        span.end(end_time=int(max(event.exited_at, event.entered_at) * 1e9))


__all__ = ["execution_span", "state_spans"]
