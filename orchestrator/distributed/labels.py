"""The state machine and batch of a published run, as kwargs Flower shows and searches.

A run message carries execution ids; its kwargs also name the machine and batch
the ids belong to when the publisher knows them (a start, a batch leader), so a
Flower row reads ``{'state_machine': 'orders', 'batch_id': '…'}``. The tasks accept
and ignore them: the database stays the truth. Set with :func:`publish_labels`
around a publish; a Celery ``before_task_publish`` receiver adds them (to the
kwargs and to the ``kwargsrepr`` header that Flower and the worker's log show).

In the worker, a run task's labels and execution id are the log context
(:func:`orchestrator.logs.log_context`) from ``task_prerun`` to ``task_postrun``,
so Celery's own "succeeded" or "failed" line about the task carries them too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from celery.utils.saferepr import saferepr

from orchestrator.logs import log_context

#: The run tasks that take the labels (names as in :mod:`orchestrator.distributed.tasks`).
LABELLED_TASKS = frozenset({"orchestrator.run_execution", "orchestrator.run_executions"})

_labels: ContextVar[dict[str, str] | None] = ContextVar("orchestrator_publish_labels", default=None)


@contextlib.contextmanager
def publish_labels(*, state_machine: str | None, batch_id: str | None = None) -> Iterator[None]:
    """Run messages published inside carry these labels in their kwargs."""
    found = {"state_machine": state_machine, "batch_id": batch_id}
    token = _labels.set({k: v for k, v in found.items() if v is not None})
    try:
        yield
    finally:
        _labels.reset(token)


def _add_labels(sender: str | None = None, body: Any = None, headers: Any = None, **_: Any) -> None:
    labels = _labels.get()
    if not labels or sender not in LABELLED_TASKS:
        return
    # Protocol 2: body is (args, kwargs, embed), serialized after this receiver runs.
    if isinstance(body, (tuple, list)) and len(body) >= 2 and isinstance(body[1], dict):
        body[1].update(labels)
        # What Flower's task events and the worker's "received" line show is the
        # kwargsrepr header, written before this receiver ran: write it again.
        if isinstance(headers, dict) and "kwargsrepr" in headers:
            # Not the row a start carries (``publish_start``): its input, maybe long.
            shown = {k: v for k, v in body[1].items() if k != "start"}
            headers["kwargsrepr"] = saferepr(shown)


_task_contexts: dict[str, contextlib.AbstractContextManager[None]] = {}


def _enter_task_context(
    task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    """Lines a run task logs (its "succeeded"/"failed" line too) carry its execution,
    machine and batch (``orchestrator.logs``); left at ``task_postrun``."""
    if task_id is None or getattr(task, "name", None) not in LABELLED_TASKS:
        return
    labels = kwargs if isinstance(kwargs, dict) else {}
    first = args[0] if isinstance(args, (list, tuple)) and args else None
    context = log_context(
        execution_id=first if isinstance(first, str) else None,
        state_machine=labels.get("state_machine"),
        batch_id=labels.get("batch_id"),
    )
    context.__enter__()
    _task_contexts[task_id] = context


def _leave_task_context(task_id: str | None = None, **_: Any) -> None:
    context = _task_contexts.pop(task_id or "", None)
    if context is not None:
        context.__exit__(None, None, None)


before_task_publish.connect(_add_labels, weak=False)
task_prerun.connect(_enter_task_context, weak=False)
task_postrun.connect(_leave_task_context, weak=False)

__all__ = ["LABELLED_TASKS", "publish_labels"]
