"""Publishing, in one place: execution ids to their priority's queue, and the queues' depths.

Every publish in the package goes through :data:`Publisher` (a function of
execution ids and a priority); the client builds the Celery one with
:func:`celery_publisher`. The queue depths the sweeper and the HTTP API show are
read by :func:`queue_depth` only.

Publish only after the execution rows are committed: if the process dies in
between, the rows stay PENDING and the sweeper publishes them.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from orchestrator.distributed.config import RUN_EXECUTION_TASK, RUN_EXECUTIONS_TASK
from orchestrator.distributed.routing import QUEUES, queue_for
from orchestrator.runtime.tracing import message_headers
from orchestrator.settings import Settings

#: Publishes execution ids to the queue of a priority (a name or 0-9); returns how many.
Publisher = Callable[[Sequence[str], str | int], int]
#: Reads how many messages wait in each queue; None when the broker cannot say.
Depths = Callable[[], "dict[str, int] | None"]

log = logging.getLogger("orchestrator.publish")

#: Most execution ids one ``run_executions`` message may carry.
MAX_EXECUTIONS_PER_MESSAGE: Final = 100

#: Below this many ids per message, a bulk publish sends one message per
#: execution: small batches keep every worker process busy.
MIN_MESSAGES_PER_PUBLISH: Final = 64

#: Redis commands buffered per pipeline when publishing many runs.
PUBLISH_BATCH_SIZE: Final = 1000

#: Longest input and output (JSON characters) of a row a start message carries;
#: a larger one is read from the database by the worker that takes the message.
START_ROW_MAX_CHARS: Final = 64 * 1024


def celery_publisher(app: Any, settings: Settings) -> Publisher:
    """A publisher over ``app``: ``settings.executions_per_message`` ids to a message.

    Pipelined on Redis (see :func:`publish_runs`).
    """

    def publish(execution_ids: Sequence[str], priority: str | int) -> int:
        return int(
            publish_runs(app, execution_ids, priority, per_message=settings.executions_per_message)
        )

    return publish


def publish_by_priority(publish: Publisher, items: Iterable[tuple[str, int]]) -> int:
    """Publish (execution id, priority) pairs, one bulk publish per priority."""
    groups: dict[int, list[str]] = defaultdict(list)
    for execution_id, priority in items:
        groups[priority].append(execution_id)
    return sum(publish(ids, priority) for priority, ids in groups.items())


def publish_runs(
    app: Any,
    execution_ids: Sequence[str],
    priority: str | int = "default",
    *,
    batch_size: int = PUBLISH_BATCH_SIZE,
    per_message: int = 1,
) -> int:
    """Publish ``execution_ids`` to the queue of ``priority``, pipelined on Redis.

    With ``per_message`` 1 each execution is one ``run_execution`` message; above
    1 the ids go as ``run_executions`` messages of up to ``per_message`` ids
    (see :func:`ids_per_message`), which is what makes bulk starts and drains
    cheap: Celery's cost is per message. Routing stays per priority, and
    retries and recovery per execution. One producer; on Redis kombu's
    ``Producer.batch()`` pipelines the pushes; other transports publish one by
    one. Publish after the rows are committed: a crash in between leaves
    PENDING rows, which the sweeper re-publishes.

    Args:
        app: the Celery app to publish with.
        execution_ids: executions to run.
        priority: queue name or 0-9 (see :func:`~.routing.queue_for`).
        batch_size: Redis commands per pipeline round trip. Default 1000.
        per_message: most ids per message. Default 1.

    Returns:
        How many executions were published.

    Raises:
        ValueError: a bad priority or ``per_message``, before anything is published.
        kombu.exceptions.BatchPublishError: Redis failed mid-batch; delivery of
            that batch is uncertain (the sweeper covers it).
    """
    queue = queue_for(priority)
    if not 1 <= per_message <= MAX_EXECUTIONS_PER_MESSAGE:
        raise ValueError(
            f"per_message must be 1 to {MAX_EXECUTIONS_PER_MESSAGE}, not {per_message}"
        )
    if not execution_ids:
        return 0
    size = ids_per_message(len(execution_ids), per_message)
    # The publisher's trace context, if any (runtime/tracing.py): the worker's
    # advance spans join it unless the execution row already holds one.
    headers = message_headers() or None
    with app.producer_or_acquire() as producer, producer.batch(max_size=batch_size):
        if size == 1:
            single = app.tasks[RUN_EXECUTION_TASK]
            for execution_id in execution_ids:
                single.apply_async((execution_id,), queue=queue, producer=producer, headers=headers)
        else:
            several = app.tasks[RUN_EXECUTIONS_TASK]
            for start in range(0, len(execution_ids), size):
                chunk = list(execution_ids[start : start + size])
                several.apply_async((chunk,), queue=queue, producer=producer, headers=headers)
    return len(execution_ids)


def publish_start(
    app: Any, execution_id: str, priority: str | int, *, ticket: str, row: str | None
) -> None:
    """Publish an EXPRESS execution started under a start ticket, with its row.

    One ``run_execution`` message whose kwargs carry the ticket and, unless it is
    None, the row as stored (``execution_json``): the worker that takes it runs
    the execution from that row and ends it under the ticket's lease, with no
    claim first (``Runner.advance_started``). Publish after the row is committed.

    Raises:
        ValueError: a bad priority, before anything is published.
    """
    queue = queue_for(priority)
    kwargs: dict[str, Any] = {"ticket": ticket}
    if row is not None:
        kwargs["start"] = row
    # A single start is latency: ``send_task`` rather than ``apply_async`` (which
    # first binds the arguments to the task's signature), the reprs Flower and the
    # worker's log show given (Celery would walk the row character by character to
    # write them), and on Redis no declaration of the queue (a Redis queue is a list
    # that the push creates; kombu's cached declaration still costs a copy of the
    # queue and its exchange per message).
    app.send_task(
        RUN_EXECUTION_TASK,
        (execution_id,),
        kwargs,
        queue=queue,
        headers=message_headers() or None,
        argsrepr=repr((execution_id,)),
        kwargsrepr=repr({"ticket": ticket}),
        **({"declare": []} if _on_redis(app) else {}),
    )


def _on_redis(app: Any) -> bool:
    """Whether ``app``'s broker is Redis (where a queue needs no declaring)."""
    url = str(app.conf.broker_url or "")
    return url.partition("://")[0].lower() in ("redis", "rediss")


def ids_per_message(count: int, per_message: int) -> int:
    """Ids per message for a publish of ``count``: at most ``per_message``, and
    few enough that the publish still makes :data:`MIN_MESSAGES_PER_PUBLISH`
    messages (or one id each), so a small batch spreads over every worker."""
    return max(1, min(per_message, count // MIN_MESSAGES_PER_PUBLISH))


def queue_depth(conn: Any, queue: str) -> int | None:
    """Messages waiting in ``queue`` (0 if the broker does not know it, None if unreadable).

    A passive ``queue_declare`` (kombu answers it for Redis lists and RabbitMQ
    queues alike), on a fresh channel per queue: RabbitMQ closes a channel on a
    failed passive declare.
    """
    channel = conn.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except conn.channel_errors:
        return 0  # never declared, or empty on Redis (kombu drops an empty list's key)
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def queue_depths(app: Any) -> dict[str, int] | None:
    """The depth of the critical/default/low queues on ``app``'s broker.

    Returns None, and logs why, when the broker cannot be asked (the sweeper
    then falls back to its grace period).
    """
    try:
        with app.connection_for_read() as conn:
            return {queue: queue_depth(conn, queue) or 0 for queue in QUEUES}
    except Exception as exc:  # the broker is down: the caller falls back to the grace period
        log.warning("could not read the queue depths from the broker: %s", exc)
        return None


__all__ = [
    "MAX_EXECUTIONS_PER_MESSAGE",
    "MIN_MESSAGES_PER_PUBLISH",
    "PUBLISH_BATCH_SIZE",
    "START_ROW_MAX_CHARS",
    "Depths",
    "Publisher",
    "celery_publisher",
    "ids_per_message",
    "publish_by_priority",
    "publish_runs",
    "publish_start",
    "queue_depth",
    "queue_depths",
]
