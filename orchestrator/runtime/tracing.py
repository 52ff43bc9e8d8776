"""OpenTelemetry spans (optional extra ``otel``): one per advance of an execution, one per state.

Without ``opentelemetry-api`` installed this does nothing. With it, the process's
tracer provider (configured by the application: exporter, sampler) receives a span
``execution <machine>`` for each advance of an execution, with a child span
``state <name>`` for each state that finished during it, timed by the interpreter's
own entered/exited times.

One trace per execution, across processes. The trace context (W3C
``traceparent``/``tracestate``, a small dict of strings: a *carrier*) travels two ways:

- in the run message: :func:`current_carrier` is what the publisher puts in the
  message's :data:`TRACE_HEADER` header (``distributed/publish.py``), and the
  worker's task hands it to :func:`message_context`;
- on the execution row (``executions.trace_context``): the first traced advance
  stores the context its span joined, and every later advance (a wake-up, a
  requeue, a recovery re-published by the sweeper, whose message carries no
  context of its own) joins the stored one.

The parent of an advance's span is, first found: the stored context, the
message's, the caller's current span (an in-process run). Without any, the
span starts a trace and its own context is stored. A message context that is not
the stored one (say, the API request that sent a task token) becomes a link.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from orchestrator.asl import HistoryEvent

#: Interpreter event statuses that end a state's span with an error status.
_ERRORS = frozenset({"failed", "caught", "retrying"})

#: The Celery message header that carries the publisher's trace context.
TRACE_HEADER: Final = "orchestrator_trace"

#: Longest value accepted in a carrier (a ``traceparent`` is 55 characters).
_MAX_VALUE: Final = 512

#: A trace context as W3C propagation headers (``traceparent``, ``tracestate``).
Carrier = dict[str, str]

_message: ContextVar[Carrier | None] = ContextVar("orchestrator_message_trace", default=None)


#: The last tracer handed out, with the provider it came from.
_cached: tuple[Any, Any] | None = None


def _tracer() -> Any | None:
    """The orchestrator's tracer, or None when no tracer provider is configured.

    Without a provider (OpenTelemetry not installed, or installed and never set
    up), a span would be a non-recording one: building it and its context costs
    about 25 microseconds an execution for nothing, so no span is made at all.
    """
    global _cached
    try:
        from opentelemetry import trace
    except ImportError:  # the optional extra is not installed
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer("orchestrator")
    _cached = (provider, tracer)
    return tracer


def as_carrier(value: object) -> Carrier | None:
    """``value`` if it is a carrier with a ``traceparent`` (from a message or a row), else None."""
    if not isinstance(value, Mapping) or "traceparent" not in value:
        return None
    if not all(
        isinstance(k, str) and isinstance(v, str) and len(v) <= _MAX_VALUE for k, v in value.items()
    ):
        return None
    return dict(value)


def current_carrier() -> Carrier | None:
    """The trace context of the current span, or None (no OpenTelemetry, no valid span)."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return None
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: Carrier = {}
    propagate.inject(carrier)
    return as_carrier(carrier)


def message_headers() -> dict[str, Carrier]:
    """Headers for a run message published now: the current trace context, if any."""
    carrier = current_carrier()
    return {TRACE_HEADER: carrier} if carrier else {}


@contextlib.contextmanager
def message_context(carrier: object) -> Iterator[None]:
    """Inside, ``carrier`` (a run message's :data:`TRACE_HEADER`) is the message's context."""
    token = _message.set(as_carrier(carrier))
    try:
        yield
    finally:
        _message.reset(token)


@contextlib.contextmanager
def execution_span(
    *,
    execution_id: str,
    machine: str,
    batch_id: str | None,
    stored: object = None,
) -> Iterator[Carrier | None]:
    """A span around one advance of an execution (the current span inside).

    Args:
        execution_id: the execution.
        machine: its state machine's name.
        batch_id: its batch, if any.
        stored: the row's ``trace_context`` (None when it has none yet).

    Yields:
        The carrier to store on the row (only when it has none and the span is
        recorded), else None.
    """
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import Link, get_current_span

    kept = as_carrier(stored)
    message = _message.get()
    base = kept or message or current_carrier()
    links = []
    if kept and message and message.get("traceparent") != kept.get("traceparent"):
        links.append(Link(get_current_span(propagate.extract(message)).get_span_context()))
    attributes = {"orchestrator.execution_id": execution_id, "orchestrator.state_machine": machine}
    if batch_id:
        attributes["orchestrator.batch_id"] = batch_id
    with tracer.start_as_current_span(
        f"execution {machine}",
        context=propagate.extract(base) if base else None,
        attributes=attributes,
        links=links,
    ) as span:
        recorded = span.get_span_context().is_valid
        yield None if kept or not recorded else (base or current_carrier())


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


__all__ = [
    "TRACE_HEADER",
    "Carrier",
    "as_carrier",
    "current_carrier",
    "execution_span",
    "message_context",
    "message_headers",
    "state_spans",
]
