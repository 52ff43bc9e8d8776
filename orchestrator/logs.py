"""JSON logs: one object per line, each with the execution, machine, state and batch.

``ORCHESTRATOR_LOG_FORMAT=json`` turns it on in the worker, the API and the CLI.
The runtime puts the execution it advances (id, machine, batch) in a context
variable; every record logged meanwhile, by our code or a handler's, carries those
fields, and ``extra=`` fields given at the call (``state``, ``action``...) win.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from orchestrator.settings import Settings

#: Fields every JSON line has (null when unknown).
FIELDS: Final = ("execution_id", "state_machine", "state", "batch_id")

#: Celery's run tasks, whose own lines (received, succeeded, failed) name a message.
RUN_TASKS: Final = frozenset({"orchestrator.run_execution", "orchestrator.run_executions"})
#: Longest repr of a task's args, kwargs or result read back from a Celery line.
_MAX_REPR: Final = 20_000

_context: ContextVar[dict[str, Any] | None] = ContextVar("orchestrator_log_context", default=None)

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records logged inside carry ``fields`` (unless the call's ``extra=`` sets them)."""
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Give each record the context's fields it lacks, and None for the rest of FIELDS."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields; never drops a record."""
        context = _context.get() or {}
        for name in {*FIELDS, *context}:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


class TaskLineFilter(logging.Filter):
    """Celery's lines about a run message get its execution, machine, batch and state.

    Celery logs "received" (in the worker's main process, outside any context)
    and "succeeded" with an ``extra`` ``data`` of the task's name and the reprs
    of its args, kwargs (where the publisher's labels are) and result; those are
    read back as Python literals (``ast.literal_eval``, bounded in size; never
    evaluated as code). Fields already set stay; a message of several ids gives
    ``execution_ids``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields; never drops a record."""
        data = getattr(record, "data", None)
        if not isinstance(data, dict) or data.get("name") not in RUN_TASKS:
            return True
        found: dict[str, Any] = {}
        kwargs, args = _literal(data.get("kwargs")), _literal(data.get("args"))
        result = _literal(data.get("return_value"))
        if isinstance(kwargs, dict):
            found["state_machine"] = kwargs.get("state_machine")
            found["batch_id"] = kwargs.get("batch_id")
        if isinstance(args, tuple | list) and args:
            found["execution_ids" if isinstance(args[0], list) else "execution_id"] = args[0]
        if isinstance(result, dict):
            found.setdefault("execution_id", result.get("execution_id"))
            found["state"] = result.get("state")
        for name, value in found.items():
            if value is not None and getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _literal(text: object) -> Any:
    if not isinstance(text, str) or len(text) > _MAX_REPR:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None  # a truncated repr, or one that is not a literal


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, FIELDS, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line (no newline)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({name: getattr(record, name, None) for name in FIELDS})
        line.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and key not in line
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def make_json(handler: logging.Handler) -> None:
    """Make ``handler`` write JSON lines with the context's fields."""
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(TaskLineFilter())


def configure_logging(settings: Settings, *, level: int = logging.INFO) -> bool:
    """With ``log_format`` json, send the root logger's records to stderr as JSON lines.

    Returns:
        Whether JSON logging was set up (False: the process's own logging is left alone).
    """
    if settings.log_format != "json":
        return False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    make_json(handler)
    root.addHandler(handler)
    root.setLevel(level)
    return True


__all__ = [
    "FIELDS",
    "ContextFilter",
    "JsonFormatter",
    "TaskLineFilter",
    "configure_logging",
    "log_context",
    "make_json",
]
