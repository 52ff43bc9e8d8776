"""Loaded INTO worker subprocesses (``ORCHESTRATOR_HANDLER_MODULES``) by the tracing tests.

On import it gives the worker an OpenTelemetry tracer provider whose finished
spans are appended, one JSON object a line, to the file ``$ORCHESTRATOR_TEST_SPANS``
names (the in-memory exporter's records cannot cross the process boundary).

Handlers:

- ``observability.callback.waitForTaskToken``: writes its task token to the file its input names;
- ``observability.hang-once``: the first call of an execution (a marker file per
  execution in the input's ``markers`` folder) hangs, so the test can kill the
  worker mid-state; later calls return at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from orchestrator.handlers import HandlerContext, handler

SPANS_ENV = "ORCHESTRATOR_TEST_SPANS"


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """What a test reads of a span: names, ids in hex, attributes, links."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "attributes": dict(span.attributes or {}),
        "links": [f"{link.context.trace_id:032x}" for link in span.links],
        "pid": os.getpid(),
    }


class FileExporter(SpanExporter):
    """Appends each finished span as a JSON line to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(span_record(span)) + "\n")
        return SpanExportResult.SUCCESS


if os.environ.get(SPANS_ENV):
    _provider = TracerProvider()
    _provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ[SPANS_ENV])))
    trace.set_tracer_provider(_provider)


@handler("observability.callback.waitForTaskToken")
def callback(data: Any, ctx: HandlerContext) -> None:
    """Hand the token out through a file."""
    Path(data["outbox"]).write_text(data["token"])


@handler("observability.hang-once")
def hang_once(data: Any, ctx: HandlerContext) -> Any:
    """Hang on the first call of an execution (until the worker is killed)."""
    marker = Path(data["markers"]) / ctx.execution_id
    if not marker.exists():
        marker.write_text("called")
        time.sleep(600)
    return {"done": True}
