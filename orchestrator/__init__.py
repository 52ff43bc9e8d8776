"""orchestrator: Amazon States Language state machines on PostgreSQL and Celery.

    from orchestrator import Orchestrator, StateMachine, handler, run

The names below are loaded on first use (PEP 562), so ``import orchestrator.asl``
(the pure interpreter) or ``celery -A orchestrator`` does not load the database
layer. ``tests/test_public_api.py`` pins ``__all__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.client import Orchestrator
    from orchestrator.errors import (
        BatchNotFound,
        DefinitionInvalid,
        ExecutionAlreadyExists,
        ExecutionNotFound,
        HandlerNotFound,
        MessageRefused,
        OrchestratorError,
        StateMachineNotFound,
        StatesError,
    )
    from orchestrator.handlers import HandlerContext, handler, input_transformer
    from orchestrator.handles import BatchHandle, ExecutionHandle
    from orchestrator.runtime.local import ExecutionResult, run
    from orchestrator.shortcuts import (
        archive_batch_failures,
        batch_failures,
        cancel_batch,
        pause_batch,
        purge_executions,
        redrive_batch_failures,
        resume_batch,
        send_message,
    )
    from orchestrator.statemachine import StateMachine
    from orchestrator.store import ExecutionFilter

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "BatchHandle": "orchestrator.handles",
    "BatchNotFound": "orchestrator.errors",
    "DefinitionInvalid": "orchestrator.errors",
    "ExecutionAlreadyExists": "orchestrator.errors",
    "ExecutionFilter": "orchestrator.store",
    "ExecutionHandle": "orchestrator.handles",
    "ExecutionNotFound": "orchestrator.errors",
    "ExecutionResult": "orchestrator.runtime.local",
    "HandlerContext": "orchestrator.handlers",
    "HandlerNotFound": "orchestrator.errors",
    "MessageRefused": "orchestrator.errors",
    "Orchestrator": "orchestrator.client",
    "OrchestratorError": "orchestrator.errors",
    "StateMachine": "orchestrator.statemachine",
    "StateMachineNotFound": "orchestrator.errors",
    "StatesError": "orchestrator.errors",
    "archive_batch_failures": "orchestrator.shortcuts",
    "batch_failures": "orchestrator.shortcuts",
    "cancel_batch": "orchestrator.shortcuts",
    "handler": "orchestrator.handlers",
    "input_transformer": "orchestrator.handlers",
    "pause_batch": "orchestrator.shortcuts",
    "purge_executions": "orchestrator.shortcuts",
    "redrive_batch_failures": "orchestrator.shortcuts",
    "resume_batch": "orchestrator.shortcuts",
    "run": "orchestrator.runtime.local",
    "send_message": "orchestrator.shortcuts",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "BatchHandle",
    "BatchNotFound",
    "DefinitionInvalid",
    "ExecutionAlreadyExists",
    "ExecutionFilter",
    "ExecutionHandle",
    "ExecutionNotFound",
    "ExecutionResult",
    "HandlerContext",
    "HandlerNotFound",
    "MessageRefused",
    "Orchestrator",
    "OrchestratorError",
    "StateMachine",
    "StateMachineNotFound",
    "StatesError",
    "__version__",
    "archive_batch_failures",
    "batch_failures",
    "cancel_batch",
    "handler",
    "input_transformer",
    "pause_batch",
    "purge_executions",
    "redrive_batch_failures",
    "resume_batch",
    "run",
    "send_message",
]
