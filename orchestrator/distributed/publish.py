"""Bulk publishing for starts and batches: execution ids to their priority's queue."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.settings import Settings

Publish = Callable[[Sequence[str], str | int], int]

_apps: dict[str, Any] = {}
_lock = threading.Lock()


def app_for(settings: Settings) -> Any:
    """A Celery app for these settings, made once per distinct settings."""
    from orchestrator.celery import create_app

    key = settings.model_dump_json()
    with _lock:
        if key not in _apps:
            _apps[key] = create_app(settings, set_as_current=False)
        return _apps[key]


def publisher_for(settings: Settings) -> Publish:
    """A function that publishes execution ids, ``executions_per_message`` to a message.

    Pipelined on Redis (see :func:`~orchestrator.distributed.tasks.publish_runs`).

    Publish only after the execution rows are committed: if the process dies in
    between, the rows stay PENDING and the sweeper publishes them.
    """
    from orchestrator.distributed.tasks import publish_runs

    app = app_for(settings)

    def publish(execution_ids: Sequence[str], priority: str | int) -> int:
        return int(
            publish_runs(app, execution_ids, priority, per_message=settings.executions_per_message)
        )

    return publish
