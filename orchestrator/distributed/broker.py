"""What the client reads from the broker for people (``/stats``, ``/health``).

Reachability, queue depths, and the workers that answer a ping.

Everything goes through the Celery app's own connection (kombu), so it works on
Redis and on RabbitMQ alike: a passive ``queue_declare`` reports a queue's
depth on both (kombu's Redis transport sums its priority lists), and a
broadcast ``ping`` lists the workers. Every call is bounded by a short timeout:
a dead broker makes ``/stats`` and ``/health`` slower by at most that, never hang.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from orchestrator.distributed.publish import queue_depth
from orchestrator.distributed.routing import QUEUES

#: Seconds to wait for the broker to accept a connection.
CONNECT_TIMEOUT: Final = 2.0

#: Seconds to collect the workers' answers to a ping.
PING_TIMEOUT: Final = 0.5


@dataclass(frozen=True, kw_only=True)
class BrokerReport:
    """What the broker says.

    Attributes:
        reachable: whether it accepted a connection.
        error: why not (one line), when it did not.
        queues: messages waiting per queue (None: unknown).
        workers: the workers that answered a ping.
    """

    reachable: bool
    error: str | None = None
    queues: dict[str, int | None] = field(default_factory=dict)
    workers: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _connected(celery_app: Any, timeout: float) -> Iterator[Any]:
    """A connection for reading, established within ``timeout`` seconds or raising."""
    with celery_app.connection_for_read(
        connect_timeout=timeout,
        transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        yield conn


def check_broker(celery_app: Any, *, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Return None if the broker accepts a connection, else why not (one line)."""
    try:
        with _connected(celery_app, timeout) as conn:
            conn.default_channel  # noqa: B018  # opens a channel: the broker really answers
    except Exception as exc:  # any failure means "unreachable"; the reason is reported
        return one_line(exc)
    return None


def broker_stats(
    celery_app: Any,
    *,
    queues: Sequence[str] = QUEUES,
    timeout: float = CONNECT_TIMEOUT,
    ping_timeout: float = PING_TIMEOUT,
) -> BrokerReport:
    """Queue depths and the workers that answered a ping within ``ping_timeout`` seconds."""
    try:
        with _connected(celery_app, timeout) as conn:
            depths = {queue: queue_depth(conn, queue) for queue in queues}
        workers = ping_workers(celery_app, ping_timeout)
    except Exception as exc:  # the broker's failure is what the caller reports
        return BrokerReport(reachable=False, error=one_line(exc), queues=dict.fromkeys(queues))
    return BrokerReport(reachable=True, queues=depths, workers=workers)


def broker_depths(
    celery_app: Any, *, queues: Sequence[str] = QUEUES, timeout: float = CONNECT_TIMEOUT
) -> dict[str, int | None] | None:
    """The depth of each of ``queues`` (None per unreadable queue), or None if the broker
    cannot be reached within ``timeout`` seconds. No worker ping: cheap enough per scrape."""
    try:
        with _connected(celery_app, timeout) as conn:
            return {queue: queue_depth(conn, queue) for queue in queues}
    except Exception:  # an unreachable broker: /health says why
        return None


def ping_workers(celery_app: Any, timeout: float = PING_TIMEOUT) -> list[str]:
    """Names of the workers that answer a broadcast ping within ``timeout`` seconds.

    On the app's connection pool: closing a connection that carried a broadcast
    reply costs half a second on Redis, a pooled one stays open. Call it once the
    broker has answered (a pooled connection retries a dead broker for seconds).
    """
    replies = celery_app.control.inspect(timeout=timeout).ping() or {}
    return sorted(replies)


def one_line(exc: BaseException) -> str:
    """An error as one short line: its class and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"[:300]


__all__ = [
    "CONNECT_TIMEOUT",
    "broker_depths",
    "PING_TIMEOUT",
    "BrokerReport",
    "broker_stats",
    "check_broker",
    "one_line",
    "ping_workers",
]
