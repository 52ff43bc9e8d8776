"""orchestrator: Amazon States Language state machines on PostgreSQL and Celery."""

from orchestrator.errors import (
    DefinitionInvalid,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    HandlerNotFound,
    OrchestratorError,
    StateMachineNotFound,
    StatesError,
)
from orchestrator.handlers import HandlerContext, handler, input_transformer
from orchestrator.statemachine import (
    MessageRefused,
    StateMachine,
    archive_batch_failures,
    batch_failures,
    cancel_batch,
    pause_batch,
    purge_executions,
    redrive_batch_failures,
    resume_batch,
    send_message,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
)
from orchestrator.store import ExecutionFilter

__version__ = "0.1.0"

__all__ = [
    "DefinitionInvalid",
    "ExecutionAlreadyExists",
    "ExecutionFilter",
    "ExecutionNotFound",
    "HandlerContext",
    "HandlerNotFound",
    "MessageRefused",
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
    "send_message",
    "send_task_failure",
    "send_task_heartbeat",
    "send_task_success",
]
