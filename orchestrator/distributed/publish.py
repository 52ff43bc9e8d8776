"""Bulk publishing for starts and batches: execution ids to their priority's queue."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.settings import Settings

Publish = Callable[[Sequence[str], str | int], int]
#: Reads how many messages wait in each queue; None when the broker cannot say.
Depths = Callable[[], "dict[str, int] | None"]

log = logging.getLogger("orchestrator.publish")

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


def depths_for(settings: Settings) -> Depths:
    """A function that reads the depth of the critical/default/low queues on the broker.

    A passive ``queue_declare`` per queue (kombu answers it for Redis lists and
    RabbitMQ queues alike); a queue the broker does not know counts as empty.
    Returns None, and logs why, when the broker cannot be asked.
    """
    from orchestrator.distributed.routing import QUEUES

    app = app_for(settings)

    def depths() -> dict[str, int] | None:
        found: dict[str, int] = {}
        try:
            with app.connection_for_read() as conn:
                for queue in QUEUES:
                    channel = conn.channel()
                    try:
                        found[queue] = int(channel.queue_declare(queue, passive=True)[1])
                    except conn.channel_errors:
                        found[queue] = 0  # never declared, or emptied and gone (Redis)
                    finally:
                        with contextlib.suppress(*conn.connection_errors, *conn.channel_errors):
                            channel.close()
        except Exception as exc:  # the broker is down: the caller falls back to the grace period
            log.warning("could not read the queue depths from the broker: %s", exc)
            return None
        return found

    return depths
