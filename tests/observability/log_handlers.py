"""A handler that logs (for the JSON-log tests, in-process and in a CLI subprocess)."""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.handlers import handler

log = logging.getLogger("tests.observability.handler")

RESOURCE = "observability.log-something"

MACHINE: dict[str, Any] = {
    "StartAt": "Speak",
    "States": {"Speak": {"Type": "Task", "Resource": RESOURCE, "End": True}},
}


@handler(RESOURCE)
def log_something(data: Any) -> Any:
    """Log one line, return the input."""
    log.info("the handler speaks", extra={"action": "speak"})
    return data
