"""The state machine and batch of a published run, as kwargs Flower shows and searches.

A run message carries execution ids; its kwargs also name the machine and batch
the ids belong to when the publisher knows them (a start, a batch leader), so a
Flower row reads ``{'state_machine': 'orders', 'batch_id': '…'}``. The tasks accept
and ignore them: the database stays the truth. Set with :func:`publish_labels`
around a publish; a Celery ``before_task_publish`` receiver adds them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from celery.signals import before_task_publish

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


def _add_labels(sender: str | None = None, body: Any = None, **_: Any) -> None:
    labels = _labels.get()
    if not labels or sender not in LABELLED_TASKS:
        return
    # Protocol 2: body is (args, kwargs, embed), serialized after this receiver runs.
    if isinstance(body, (tuple, list)) and len(body) >= 2 and isinstance(body[1], dict):
        body[1].update(labels)


before_task_publish.connect(_add_labels, weak=False)

__all__ = ["LABELLED_TASKS", "publish_labels"]
