"""The ASL interpreter: parse, validate, step. It decides; the runtime does.

    >>> from orchestrator import asl
    >>> asl.validate({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})
    []

Everything here is pure: no I/O, no sleeping, time and randomness only as
passed in; it imports nothing of orchestrator but its own modules, ``errors``
and ``types`` (``tests/test_layers.py`` checks it). To run a definition in this
process use ``orchestrator.run`` (:mod:`orchestrator.runtime.local`).
"""

from orchestrator.asl.errors import DefinitionInvalid, Problem, StatesError
from orchestrator.asl.interpreter import (
    Command,
    Continue,
    Event,
    Failed,
    HistoryEvent,
    Idle,
    MessageReceived,
    RunMap,
    RunTask,
    StepResult,
    Succeeded,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WaitForMessage,
    WaitUntil,
    execution_context,
    fail_root,
    frames,
    redrive,
    reissue,
    result_of,
    start,
    step,
)
from orchestrator.asl.model import Definition
from orchestrator.asl.validate import load, parse, validate

__all__ = [
    "Command",
    "Continue",
    "Definition",
    "DefinitionInvalid",
    "Event",
    "Failed",
    "HistoryEvent",
    "Idle",
    "MessageReceived",
    "Problem",
    "RunMap",
    "RunTask",
    "StatesError",
    "StepResult",
    "Succeeded",
    "TaskFailed",
    "TaskSucceeded",
    "TimerFired",
    "WaitForMessage",
    "WaitUntil",
    "execution_context",
    "fail_root",
    "frames",
    "load",
    "parse",
    "redrive",
    "reissue",
    "result_of",
    "start",
    "step",
    "validate",
]
