"""The store: SQLAlchemy models, the repository (the only code that writes SQL)
and the Alembic migrations.

Everything above this layer talks to :class:`Repository` and gets frozen
records back.
"""

from orchestrator.store.engine import make_engine, make_session_factory
from orchestrator.store.errors import (
    BatchNotFound,
    LeaseLost,
    PayloadInvalid,
    PayloadRejected,
    PayloadTooLarge,
)
from orchestrator.store.records import (
    Batch,
    BulkCreateResult,
    Checkpoint,
    Correlation,
    Execution,
    ExecutionEnd,
    ExecutionFilter,
    HistoryEvent,
    MapChild,
    MapRun,
    MapRunDecision,
    MapRunSettlement,
    NewCorrelation,
    NewExecution,
    NewHistoryEvent,
    NewMapRun,
    NewTaskToken,
    NewTimer,
    Page,
    StateMachineInfo,
    TaskToken,
    Timer,
    Version,
)
from orchestrator.store.repository import Repository

__all__ = [
    "Batch",
    "BatchNotFound",
    "BulkCreateResult",
    "Checkpoint",
    "Correlation",
    "Execution",
    "ExecutionEnd",
    "ExecutionFilter",
    "HistoryEvent",
    "LeaseLost",
    "MapChild",
    "MapRun",
    "MapRunDecision",
    "MapRunSettlement",
    "NewCorrelation",
    "NewExecution",
    "NewHistoryEvent",
    "NewMapRun",
    "NewTaskToken",
    "NewTimer",
    "Page",
    "PayloadInvalid",
    "PayloadRejected",
    "PayloadTooLarge",
    "Repository",
    "StateMachineInfo",
    "TaskToken",
    "Timer",
    "Version",
    "make_engine",
    "make_session_factory",
]
