"""The runtime: advances stored executions (claim, step, checkpoint, park, recover),
and runs a definition in this process without storing it (:mod:`.local`).

Exports are loaded lazily (PEP 562): ``orchestrator.runtime.local`` and
``orchestrator.runtime.clock`` import without the database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.runtime.clock import Clock, SystemClock
    from orchestrator.runtime.local import ExecutionResult, run
    from orchestrator.runtime.runner import Runner, default_owner

_EXPORTS = {
    "Clock": "orchestrator.runtime.clock",
    "ExecutionResult": "orchestrator.runtime.local",
    "Runner": "orchestrator.runtime.runner",
    "SystemClock": "orchestrator.runtime.clock",
    "default_owner": "orchestrator.runtime.runner",
    "run": "orchestrator.runtime.local",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = ["Clock", "ExecutionResult", "Runner", "SystemClock", "default_owner", "run"]
