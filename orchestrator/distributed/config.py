"""The Celery configuration, built from :class:`~orchestrator.settings.Settings`.

``celery_config(settings)`` returns the dict ``orchestrator.celery`` loads into
the app. What it fixes and why (DESIGN.md, "Celery conventions"):

- Queues ``critical``, ``default`` and ``low`` as kombu ``Queue``s, ``default``
  the default; publishing by queue name uses the anonymous exchange, so a
  flushed Redis (binding tables gone) still routes every message.
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged
  only after its task returned, and a pool child that dies puts it back.
- ``worker_prefetch_multiplier=1``: a worker reserves one message per process,
  so the queue weights act on what runs next and nothing waits behind a slow task.
- JSON only, both ways (no pickle: a message is data, never code).
- A broker visibility timeout longer than the hard time limit, otherwise Redis
  hands a still-running task to a second worker.
- Redis consumes the three queues by weight (:mod:`.consumer`).
- No result backend: business results live in the database.
- A beat entry runs ``orchestrator.sweep`` every few seconds; with
  ``retention_days`` set, another runs ``orchestrator.purge`` every
  ``purge_interval_seconds`` (on ``low``).

The tunables are the fields of :class:`CeleryOptions`, each with its default;
each is read from the Settings field of the same name once Settings declares
it (see :func:`options_from_settings`), so a deployment overrides it through
``ORCHESTRATOR_<NAME>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import kombu.entity

from orchestrator.distributed.consumer import DEFAULT_WEIGHTS, queue_order_strategy
from orchestrator.distributed.routing import DEFAULT_QUEUE, QUEUES
from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings

T = TypeVar("T")

# kombu's constructors are untyped; keep the Any to these two names.
_Exchange: Any = kombu.entity.Exchange
_Queue: Any = kombu.entity.Queue

#: Celery task names of the runs: one execution, or several per message.
RUN_EXECUTION_TASK: Final = "orchestrator.run_execution"
RUN_EXECUTIONS_TASK: Final = "orchestrator.run_executions"
#: Celery task name of the sweeper, and its beat entry.
SWEEP_TASK: Final = "orchestrator.sweep"
SWEEP_ENTRY: Final = "orchestrator-sweep"
#: Celery task name of the retention purge, and its beat entry.
PURGE_TASK: Final = "orchestrator.purge"
PURGE_ENTRY: Final = "orchestrator-purge"

#: URL schemes served by kombu's Redis transport.
REDIS_SCHEMES: Final = frozenset({"redis", "rediss", "redis+socket", "sentinel"})
#: URL schemes served by kombu's AMQP (RabbitMQ) transports.
AMQP_SCHEMES: Final = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class CeleryOptions:
    """The tunable part of the Celery configuration; every field has a default."""

    task_time_limit: float = 1800.0
    """Hard time limit of a task, in seconds; the pool child is killed after it.
    Default 1800 (30 min): an execution advances state after state in one task
    but parks (and frees the worker) on every wait longer than a few seconds."""

    task_soft_time_limit: float = 1740.0
    """Soft time limit, in seconds: ``SoftTimeLimitExceeded`` is raised in the
    task so the runtime can checkpoint and hand the execution back. Default 1740
    (one minute before the hard limit)."""

    broker_visibility_timeout: float = 3600.0
    """Redis: seconds before an unacknowledged message is delivered again.
    Default 3600. Must exceed ``task_time_limit`` (checked)."""

    queue_weights: Mapping[str, int] = dataclasses.field(default_factory=lambda: DEFAULT_WEIGHTS)
    """Queue name -> share of pops under saturation (Redis). Default critical 6,
    default 3, low 1."""

    task_events: bool = False
    """Send task events (``-E``; Flower needs them). Default off: they cost about
    a third of the drain rate."""

    sweep_interval_seconds: float = 5.0
    """Seconds between two beat-scheduled ``orchestrator.sweep`` runs. Default 5."""

    retention_days: float | None = None
    """Days after which ended executions are purged by beat. Default none (no entry)."""

    purge_interval_seconds: float = 3600.0
    """Seconds between two beat-scheduled purges. Default 3600."""

    celery_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Raw Celery settings applied last, for what no option covers. Default none."""

    broker_transport_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Extra transport options merged over ours (e.g. a Sentinel ``master_name``)."""

    broker_quorum_queues: bool = False
    """RabbitMQ: declare the three queues as quorum queues. Default off."""

    def __post_init__(self) -> None:
        """Reject limits that would let Redis deliver a running task twice."""
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ConfigurationError(
                f"task_soft_time_limit ({self.task_soft_time_limit}s) must be below "
                f"task_time_limit ({self.task_time_limit}s)"
            )
        if self.broker_visibility_timeout <= self.task_time_limit:
            raise ConfigurationError(
                f"broker_visibility_timeout ({self.broker_visibility_timeout}s) must exceed "
                f"task_time_limit ({self.task_time_limit}s), or Redis redelivers running tasks"
            )
        if self.sweep_interval_seconds <= 0:
            raise ConfigurationError("sweep_interval_seconds must be positive")
        if self.retention_days is not None and self.retention_days <= 0:
            raise ConfigurationError("retention_days must be positive (or unset)")
        if self.purge_interval_seconds <= 0:
            raise ConfigurationError("purge_interval_seconds must be positive")


def options_from_settings(settings: Settings) -> CeleryOptions:
    """Read :class:`CeleryOptions` from the Settings fields of the same names.

    A field Settings does not (yet) declare keeps the option's default.
    """
    defaults = CeleryOptions()
    values = {
        field.name: _setting(settings, field.name, getattr(defaults, field.name))
        for field in dataclasses.fields(CeleryOptions)
    }
    return CeleryOptions(**values)


def _setting(settings: Settings, name: str, default: T) -> T:
    value: T = getattr(settings, name, default)
    return default if value is None else value


def celery_config(settings: Settings, options: CeleryOptions | None = None) -> dict[str, Any]:
    """Return the Celery settings dict for ``settings``.

    Args:
        settings: where the broker URL comes from.
        options: the tunables; default :func:`options_from_settings`.
    """
    opts = options_from_settings(settings) if options is None else options
    check_broker(settings.broker_url, opts)
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options(settings.broker_url, opts),
        **_queue_config(quorum=opts.broker_quorum_queues),
        **_delivery_config(opts),
        **_serializer_config(),
        **_result_config(),
        **_event_config(opts.task_events),
        "beat_schedule": beat_schedule(
            opts.sweep_interval_seconds,
            retention_days=opts.retention_days,
            purge_interval_seconds=opts.purge_interval_seconds,
        ),
        "enable_utc": True,
        "timezone": "UTC",
    }
    config.update(opts.celery_overrides)
    return config


def check_broker(broker_url: str, options: CeleryOptions) -> None:
    """Refuse broker settings that cannot work together.

    Raises:
        ConfigurationError: a ``sentinel://`` URL without a ``master_name`` transport
            option, or quorum queues on a broker that is not RabbitMQ.
    """
    scheme = urlsplit(broker_url.split(";", 1)[0]).scheme
    if scheme == "sentinel" and not options.broker_transport_options.get("master_name"):
        raise ConfigurationError(
            "broker_url is a sentinel:// URL but broker_transport_options has no "
            'master_name; set ORCHESTRATOR_BROKER_TRANSPORT_OPTIONS=\'{"master_name": "..."}\''
        )
    if options.broker_quorum_queues and scheme not in AMQP_SCHEMES:
        raise ConfigurationError(
            f"broker_quorum_queues needs a RabbitMQ (amqp://) broker_url, not {scheme}://"
        )


def transport_options(broker_url: str, options: CeleryOptions) -> dict[str, Any]:
    """Broker transport options: ours, then ``broker_transport_options`` over them.

    Ours are the visibility timeout and the weighted order, on Redis only: py-amqp
    hands unknown options to its connection, so other transports get only the
    user's.
    """
    extra = dict(options.broker_transport_options)
    if urlsplit(broker_url.split(";", 1)[0]).scheme not in REDIS_SCHEMES:
        return extra
    return {
        "visibility_timeout": options.broker_visibility_timeout,
        "queue_order_strategy": queue_order_strategy(options.queue_weights),
        **extra,
    }


def task_queues(*, quorum: bool = False) -> tuple[kombu.entity.Queue, ...]:
    """The three queues, each on its own direct exchange (Celery's convention).

    With ``quorum``, each is declared ``x-queue-type: quorum`` (RabbitMQ), which
    Celery detects (``worker_detect_quorum_queues``): it then turns global QoS off,
    so a countdown (a retry's back-off) can no longer wait in the worker's prefetch
    and goes through native delayed delivery instead, which Celery applies only to
    queues on a non-direct exchange: the exchanges are then ``topic`` (the routing
    key, the queue's name, still matches only its own queue).
    """
    arguments = {"x-queue-type": "quorum"} if quorum else None
    kind = "topic" if quorum else "direct"
    return tuple(
        _Queue(name, _Exchange(name, type=kind), routing_key=name, queue_arguments=arguments)
        for name in QUEUES
    )


def beat_schedule(
    interval_seconds: float,
    *,
    retention_days: float | None = None,
    purge_interval_seconds: float = 3600.0,
) -> dict[str, dict[str, Any]]:
    """The beat entries: the sweeper, and the retention purge if ``retention_days`` is set.

    The sweeper goes to ``critical`` so load never delays it; the purge, which
    deletes in chunks and is never urgent, to ``low``. Each run expires after one
    interval: while no worker is up, runs do not pile up.
    """
    schedule: dict[str, dict[str, Any]] = {
        SWEEP_ENTRY: {
            "task": SWEEP_TASK,
            "schedule": interval_seconds,
            "options": {"queue": "critical", "expires": interval_seconds},
        }
    }
    if retention_days is not None:
        schedule[PURGE_ENTRY] = {
            "task": PURGE_TASK,
            "schedule": purge_interval_seconds,
            "kwargs": {"older_than_days": retention_days},
            "options": {"queue": "low", "expires": purge_interval_seconds},
        }
    return schedule


def _queue_config(*, quorum: bool = False) -> dict[str, Any]:
    return {
        "task_queues": task_queues(quorum=quorum),
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_exchange": DEFAULT_QUEUE,
        "task_default_exchange_type": "direct",
        "task_default_routing_key": DEFAULT_QUEUE,
    }


def _delivery_config(options: CeleryOptions) -> dict[str, Any]:
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": options.task_time_limit,
        "task_soft_time_limit": options.task_soft_time_limit,
        # A task still running when the broker connection drops keeps running:
        # its lease keeps a redelivered copy harmless, and killing it would only
        # delay the execution until the lease expires. Explicit, because Celery 6
        # flips the default.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }


def _serializer_config() -> dict[str, Any]:
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
    }


def _result_config() -> dict[str, Any]:
    return {"result_backend": None, "task_ignore_result": True}


def _event_config(enabled: bool) -> dict[str, Any]:
    return {"worker_send_task_events": enabled, "task_send_sent_event": enabled}


__all__ = [
    "AMQP_SCHEMES",
    "PURGE_ENTRY",
    "PURGE_TASK",
    "REDIS_SCHEMES",
    "SWEEP_ENTRY",
    "SWEEP_TASK",
    "CeleryOptions",
    "beat_schedule",
    "celery_config",
    "check_broker",
    "options_from_settings",
    "task_queues",
    "transport_options",
]
