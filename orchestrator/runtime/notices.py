"""Wake-up notices: a worker that ends executions says so on Redis, and waiters block on it.

After a worker has *committed* the ends of executions, it publishes
``PUBLISH orchestrator:ended:<execution_id> <status>`` for each, all the ends of
one message in one pipelined round trip (:func:`publish_ends`).
``ExecutionHandle.wait`` subscribes to its execution's channel before it reads
the row, and then blocks until a notice (or, as a fallback, ``poll`` seconds)
before reading the row again (:func:`subscribe`). The database stays the truth:
a notice only wakes a waiter, which reads the row; an end that published nothing
(a stop, a sweeper's timeout, a run in another process without notices) is seen
by the fallback read within ``poll`` seconds.

Notices go to ``ORCHESTRATOR_NOTICE_URL`` if set (``""`` turns them off), else
to the broker when it is Redis (``redis://``, ``rediss://``); a RabbitMQ broker
or an SQLite store has none, and ``wait`` polls as it always did.

Best effort on both sides: a PUBLISH that fails (Redis away) is logged now and
then and forgotten, never failing nor retrying an execution; notices to that URL
then pause for :data:`QUIET_SECONDS`. A waiter whose subscription fails polls.

One Redis client (and connection pool) per URL and process, built on first use,
so a Celery prefork child builds its own after the fork; a waiting thread keeps
one subscriber connection of that pool, reused by its next waits.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from types import TracebackType
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.settings import Settings
from orchestrator.store import Execution
from orchestrator.store.records import execution_from_json, execution_json

log = logging.getLogger("orchestrator.notices")

#: The channel of an execution is this prefix and its id.
CHANNEL_PREFIX = "orchestrator:ended:"

#: After a failure to reach Redis, no notices to that URL for this many seconds.
QUIET_SECONDS = 5.0

#: Seconds to connect, send or read before a notice gives up (Redis away).
SOCKET_SECONDS = 1.0

#: Longest input and output (JSON characters) an EXPRESS end's notice carries.
DETAIL_MAX_CHARS = 64 * 1024

#: Seconds a waiter first waits for a notice before it reads the row (see ``first_look``).
FIRST_LOOK_SECONDS = 0.02

#: The notice of a kept end (an EXPRESS execution started under a ticket) is also
#: stored under :func:`kept_key` for this many seconds, for a waiter that subscribes
#: only after the end (:meth:`NoticeWait.kept`).
KEEP_SECONDS = 10

#: Seconds a waiter waits for Redis to confirm its subscription.
_CONFIRM_SECONDS = 1.0

#: Polling without notices: read every millisecond for this long, then back off.
_FAST_SECONDS = 0.05


class _Dialected(Protocol):
    """A repository (only its engine's dialect name is read)."""

    @property
    def engine(self) -> Any: ...


def channel(execution_id: str) -> str:
    """The Redis channel an execution's end is announced on."""
    return CHANNEL_PREFIX + execution_id


def kept_key(execution_id: str) -> str:
    """The Redis key a kept end's notice is stored under, for :data:`KEEP_SECONDS`."""
    return KEPT_PREFIX + execution_id


#: The key of a kept end is this prefix and the execution's id.
KEPT_PREFIX = "orchestrator:ended-row:"


def notice_url(settings: Settings, repository: _Dialected | None = None) -> str | None:
    """Where notices go, or None when there are none.

    ``ORCHESTRATOR_NOTICE_URL`` if set (``""``: none); else the broker's URL when
    the broker is Redis. None with an SQLite store (no worker shares it).
    """
    if repository is not None and repository.engine.dialect.name == "sqlite":
        return None
    if settings.notice_url is not None:
        return settings.notice_url or None
    scheme = settings.broker_url.partition("://")[0].lower()
    return settings.broker_url if scheme in ("redis", "rediss") else None


# -- one client per URL and process -------------------------------------------------


class _Clients:
    """This process's Redis clients by URL, and the URLs that failed lately."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_url: dict[str, redis.Redis] = {}
        self.quiet_until: dict[str, float] = {}


_lock = threading.Lock()
_clients = _Clients()


def _forget_parent() -> None:
    """In a forked child: new lock, no clients (the parent's sockets are not ours)."""
    global _lock, _clients
    _lock = threading.Lock()
    _clients = _Clients()


os.register_at_fork(after_in_child=_forget_parent)


def _process() -> _Clients:
    """This process's clients (a forked child starts afresh: no socket is shared)."""
    global _clients
    if _clients.pid != os.getpid():
        with _lock:
            if _clients.pid != os.getpid():
                _clients = _Clients()
    return _clients


def client(url: str) -> redis.Redis:
    """The process's client on ``url`` (built on first use; connection-pooled)."""
    clients = _process()
    found = clients.by_url.get(url)
    if found is None:
        with _lock:
            found = clients.by_url.get(url)
            if found is None:
                found = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=SOCKET_SECONDS,
                    socket_timeout=SOCKET_SECONDS,
                    retry=Retry(NoBackoff(), 0),
                    health_check_interval=0,
                    client_name=f"orchestrator-notices-{os.getpid()}",
                )
                clients.by_url[url] = found
    return found


def _quiet(url: str) -> bool:
    """Whether notices to ``url`` are paused after a failure."""
    until = _process().quiet_until.get(url)
    return until is not None and time.monotonic() < until


def _failed(url: str, what: str, exc: BaseException) -> None:
    """Pause notices to ``url``; one warning per pause, so at most one per QUIET_SECONDS."""
    _process().quiet_until[url] = time.monotonic() + QUIET_SECONDS
    log.warning(
        "%s on Redis failed (%s: %s); no wake-up notices for %.0f s, waiters poll",
        what,
        type(exc).__name__,
        exc,
        QUIET_SECONDS,
        extra={"action": "notices.unavailable"},
    )


# -- the worker's side --------------------------------------------------------------


def publish_ends(
    settings: Settings,
    repository: _Dialected | None,
    executions: Iterable[Execution | None],
    *,
    details: Mapping[str, str] | None = None,
    keep: Collection[str] = (),
) -> int:
    """Announce the ends of committed executions, in one round trip; never raises.

    Call it after the commit that stored the ends. Rows that are None or not
    ended are skipped. A notice is the status, or, where ``details`` has the
    execution, that text (an EXPRESS end: see :func:`express_end`). The notices of
    the executions in ``keep`` that have a detail are also stored for
    :data:`KEEP_SECONDS` (:func:`kept_key`): set before the PUBLISH, so a waiter
    that subscribed too late for it finds the row there (:meth:`NoticeWait.kept`).

    Returns:
        How many notices were sent (0 when notices are off, paused or failed).
    """
    ended = [(e.id, str(e.status)) for e in executions if e is not None and e.status.is_terminal]
    if not ended:
        return 0
    url = notice_url(settings, repository)
    if url is None or _quiet(url):
        return 0
    found = details or {}
    try:
        pipe = client(url).pipeline(transaction=False)
        for execution_id, status in ended:
            said = found.get(execution_id, status)
            if execution_id in keep and execution_id in found:
                pipe.set(kept_key(execution_id), said, ex=KEEP_SECONDS)
            pipe.publish(channel(execution_id), said)
        pipe.execute()
    except Exception as exc:  # Redis away, a bad URL: the ends are committed anyway
        _failed(url, "PUBLISH", exc)
        return 0
    return len(ended)


def express_end(stored: Execution, output_json: str) -> str | None:
    """The notice of a committed EXPRESS end: the whole row as stored, as JSON.

    A waiter returns it as it is (:func:`ended_row`), without reading the row: it
    is the row the end committed, announced after the commit. None (the notice is
    then the status alone, and the waiter reads the row) when the input and output
    together are longer than :data:`DETAIL_MAX_CHARS`.

    Args:
        stored: the row as the end stored it.
        output_json: its output, already encoded as JSON.
    """
    if len(output_json) > DETAIL_MAX_CHARS or stored.ended_at is None:
        return None
    input_json = json.dumps(stored.input, separators=(",", ":"), ensure_ascii=False)
    if len(input_json) + len(output_json) > DETAIL_MAX_CHARS:
        return None
    return execution_json(stored, input_json=input_json, output_json=output_json)


def ended_row(execution_id: str, notice: bytes | str) -> Execution | None:
    """The row an EXPRESS end's notice carries, if it is one and about ``execution_id``.

    None when the notice is only a status or cannot be read: the waiter then reads
    the row.
    """
    try:
        found = execution_from_json(notice)
    except ValueError:
        return None
    return found if found.id == execution_id and found.status.is_terminal else None


# -- the waiter's side --------------------------------------------------------------


class NoticeWait:
    """What a waiter sleeps on between two reads of the row.

    With notices: until a notice on the execution's channel, or ``timeout``.
    Without (off, or Redis failed): the polling back-off, every millisecond for
    the first 50 ms and then ever less often, ``timeout`` at most.
    """

    def __init__(self, url: str | None, execution_id: str) -> None:
        self.url, self.execution_id, self.channel = url, execution_id, channel(execution_id)
        self.subscriber: _Subscriber | None = None
        self._started = time.monotonic()
        self._pause = 0.001

    @property
    def listening(self) -> bool:
        """Whether notices wake this waiter (else it polls)."""
        return self.subscriber is not None

    def __enter__(self) -> NoticeWait:
        if self.url is None or _quiet(self.url):
            return self
        try:
            self.subscriber = _Subscriber.take(self.url)
            self.subscriber.subscribe(self.channel)
        except Exception as exc:
            self._drop(exc, "SUBSCRIBE")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.subscriber is None:
            return
        if exc is not None and not isinstance(exc, Exception):
            # Interrupted (KeyboardInterrupt, a time limit), maybe in the middle of a
            # reply: the connection is closed rather than kept for the next wait.
            self.subscriber.close()
            self.subscriber = None
            return
        try:
            self.subscriber.unsubscribe(self.channel)
        except Exception as error:
            self._drop(error, "UNSUBSCRIBE")
        else:
            self.subscriber.give_back()
            self.subscriber = None

    def kept(self) -> bytes | None:
        """The kept notice of the execution's end, if it ended and was kept; else None.

        Ask once subscribed: an end kept after this read is then announced to this
        wait (the worker stores the notice before it publishes it).
        """
        if self.subscriber is None or self.url is None:
            return None
        try:
            found = client(self.url).get(kept_key(self.execution_id))
        except Exception as exc:
            self._drop(exc, "GET")
            return None
        return found if isinstance(found, bytes) else None

    def wait(self, timeout: float) -> bytes | None:
        """Sleep until a notice came (its text) or ``timeout`` seconds passed (None)."""
        if self.subscriber is not None:
            try:
                return self.subscriber.receive(self.channel, timeout)
            except Exception as exc:
                self._drop(exc, "waiting for a notice")
                return None
        time.sleep(min(self._pause, timeout))
        if time.monotonic() - self._started > _FAST_SECONDS:
            self._pause = min(self._pause * 1.5, max(timeout, 0.001))
        return None

    def _drop(self, exc: BaseException, what: str) -> None:
        assert self.url is not None
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None
        _failed(self.url, what, exc)
        self._started = time.monotonic()  # poll fast again, as at a start


def subscribe(
    settings: Settings, execution_id: str, repository: _Dialected | None = None
) -> NoticeWait:
    """A context manager: subscribed to the execution's channel inside (when notices are on).

    Read the row inside it, so no end committed after the read can be missed.
    """
    return NoticeWait(notice_url(settings, repository), execution_id)


_local = threading.local()


class _Subscriber:
    """A thread's subscriber connection, kept between its waits (one channel at a time)."""

    def __init__(self, url: str) -> None:
        self.url, self.pid = url, os.getpid()
        self.pubsub = client(url).pubsub()

    @classmethod
    def take(cls, url: str) -> _Subscriber:
        """This thread's subscriber on ``url`` (made on first use, or after a fork)."""
        kept: _Subscriber | None = getattr(_local, "subscriber", None)
        _local.subscriber = None
        if kept is not None and kept.url == url and kept.pid == os.getpid():
            return kept
        if kept is not None and kept.pid == os.getpid():
            kept.close()
        return cls(url)

    def give_back(self) -> None:
        """Keep this subscriber (subscribed to nothing) for the thread's next wait."""
        old: _Subscriber | None = getattr(_local, "subscriber", None)
        _local.subscriber = self
        if old is not None and old is not self:
            old.close()

    def subscribe(self, name: str) -> None:
        """SUBSCRIBE, and return once Redis has confirmed it (earlier replies are dropped)."""
        self.pubsub.subscribe(name)
        deadline = time.monotonic() + _CONFIRM_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Redis did not confirm the subscription to {name}")
            message = self.pubsub.get_message(timeout=left)
            if message is not None and _is(message, "subscribe", name):
                return

    def receive(self, name: str, timeout: float) -> bytes | None:
        """The text of a notice on ``name`` that came within ``timeout`` seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            message = self.pubsub.get_message(timeout=left)
            if message is not None and _is(message, "message", name):
                data = message.get("data")
                return data if isinstance(data, bytes) else str(data).encode()

    def unsubscribe(self, name: str) -> None:
        """UNSUBSCRIBE, without waiting: its reply, and any late notice of ``name``,
        are read and dropped by the next :meth:`subscribe` (a round trip saved)."""
        self.pubsub.unsubscribe(name)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Close the connection (in a forked child, only this process's copy of it)."""
        try:
            self.pubsub.close()
        except Exception:
            log.debug("closing a notice subscriber failed", exc_info=True)


def _is(message: dict[str, Any], kind: str, name: str) -> bool:
    found = message.get("channel")
    if isinstance(found, bytes):
        found = found.decode()
    return bool(message.get("type") == kind and found == name)


__all__ = [
    "CHANNEL_PREFIX",
    "DETAIL_MAX_CHARS",
    "KEEP_SECONDS",
    "KEPT_PREFIX",
    "NoticeWait",
    "QUIET_SECONDS",
    "channel",
    "client",
    "ended_row",
    "express_end",
    "kept_key",
    "notice_url",
    "publish_ends",
    "subscribe",
]
