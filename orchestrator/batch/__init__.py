"""Batches: one execution per source execution (``execute_batch``) or input (``execute_bulk``).

One responsibility per module:

- :mod:`.options`: :class:`BatchOptions`, checked before anything is written.
- :mod:`.sources`: source executions page by page, or numbered inputs, as slices.
- :mod:`.inputs`: reading and checking a JSON array or JSON-lines file.
- :mod:`.leader`: the leader that creates slices, publishes them and watches them.
- :mod:`.guard`: the failure-rate guard (pure).
- :mod:`.control`: pause, resume, cancel, failures, from any process.
- :mod:`.local`: ``mode="local"``, the executions run in this process.
- :mod:`.run`: the entry points ``execute_batch``, ``execute_bulk``, ``continue_batch``.
- :mod:`.result`: :class:`BatchResult` and :class:`BatchProgress`.

Users start batches with ``StateMachine.execute_batch``/``execute_bulk`` and
steer them with ``Orchestrator.batch(id)``.
"""

from orchestrator.batch.inputs import InputFormat, check_inputs, detect_format, read_inputs
from orchestrator.batch.leader import Priority
from orchestrator.batch.options import (
    BatchOptions,
    Callback,
    ControlOptions,
    Machine,
    Mode,
    check_options,
    stored_options,
)
from orchestrator.batch.result import BatchProgress, BatchResult, batch_progress, wait_for_batch
from orchestrator.batch.run import continue_batch, execute_batch, execute_bulk
from orchestrator.distributed.publish import Publisher
from orchestrator.errors import BulkInputError

__all__ = [
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "BulkInputError",
    "Callback",
    "ControlOptions",
    "InputFormat",
    "Machine",
    "Mode",
    "Priority",
    "Publisher",
    "batch_progress",
    "check_inputs",
    "check_options",
    "continue_batch",
    "detect_format",
    "execute_batch",
    "execute_bulk",
    "read_inputs",
    "stored_options",
    "wait_for_batch",
]
