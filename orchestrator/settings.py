"""Settings: the one module that reads the environment (prefix ``ORCHESTRATOR_``).

Build ``Settings(...)`` explicitly where you can (tests do); ``get_settings()``
reads the environment once and caches the result, and
``get_settings.cache_clear()`` forgets it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything orchestrator can be configured with.

    Each field reads ``ORCHESTRATOR_<FIELD NAME>`` (case-insensitive).
    """

    model_config = SettingsConfigDict(
        env_prefix="ORCHESTRATOR_", extra="ignore", frozen=True, case_sensitive=False
    )

    database_url: str = "sqlite:///orchestrator.db"
    """SQLAlchemy URL of the store. Default ``sqlite:///orchestrator.db`` (a file in
    the working directory); ``postgresql://user@host/db`` in production (psycopg2)."""

    database_prepared_statements: bool = True
    """PostgreSQL: prepare the statements of a single start and of a single EXPRESS
    end once per connection (``PREPARE``/``EXECUTE``) instead of having the server
    parse and plan them each time. Default on. Turn it off behind a pooler in
    transaction mode (PgBouncer's ``pool_mode = transaction``), which hands each
    transaction to another server session that has not prepared them."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    """Celery broker URL. Default ``redis://127.0.0.1:6379/0`` (loopback)."""

    notice_url: str | None = None
    """Redis URL of the wake-up notices a worker publishes when it ends executions,
    which ``ExecutionHandle.wait`` (and ``start_sync(on_worker=True)``) block on
    instead of polling the database. Default none: the broker's URL when it is
    Redis (``redis://``, ``rediss://``), no notices otherwise (RabbitMQ); ``""``
    turns them off (waits then poll)."""

    handler_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Modules imported at start-up to register Task handlers. Default none. The
    environment gives them comma-separated, ``ORCHESTRATOR_HANDLER_MODULES=a.b,c``,
    or as a JSON list."""

    payload_max_bytes: PositiveInt = 262_144
    """Largest JSON payload (input, output, state data), in bytes of compact UTF-8
    JSON. Default 262144 (256 KiB, AWS's limit); larger gives States.DataLimitExceeded."""

    lease_seconds: PositiveFloat = 60.0
    """How long a worker's claim on an execution lasts unless renewed, in seconds.
    Default 60. A lease expired by this much is recovered by another worker."""

    park_threshold_seconds: float = Field(default=5.0, ge=0)
    """Waits and retry back-offs longer than this park the execution with a timer
    instead of sleeping in the worker, in seconds. Default 5."""

    page_size: PositiveInt = 1000
    """Rows per page when streaming executions (listing, batches), and rows per
    bulk INSERT. Default 1000."""

    recovery_grace_seconds: float = Field(default=300.0, gt=0)
    """An execution that should be advancing (PENDING, or RUNNING with its lease
    expired) but has not changed for this long is re-published by the sweeper, in
    seconds. Default 300: long enough not to duplicate messages that are merely
    queued behind a large batch, short enough to recover a lost message or a
    killed worker within minutes."""

    task_time_limit: float = Field(default=1800.0, gt=0)
    """Celery hard time limit of one task, in seconds. Default 1800."""

    task_soft_time_limit: float = Field(default=1740.0, gt=0)
    """Celery soft time limit, in seconds. Default 1740 (a minute before the hard one)."""

    broker_visibility_timeout: float = Field(default=3600.0, gt=0)
    """Redis: seconds before an unacknowledged message is delivered again. Default
    3600; must exceed ``task_time_limit``."""

    queue_weights: dict[str, int] = Field(
        default_factory=lambda: {"critical": 6, "default": 3, "low": 1}
    )
    """Share of each queue under saturation (Redis). Default critical 6, default 3, low 1."""

    task_events: bool = False
    """Send Celery task events (Flower needs them). Default off (they cost a third of
    the drain rate)."""

    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    """Seconds between two runs of the sweeper (timers, recovery). Default 5."""

    executions_per_message: int = Field(default=10, ge=1, le=100)
    """Most executions one task message carries when many are published at once
    (batches, the sweeper). Default 10: Celery's cost is per message, so this is
    what lets a batch start and drain near the broker's speed; each execution
    keeps its own lease, retries and recovery. 1 sends one message per execution.
    A publish of fewer than 64 x this many spreads them thinner, so small batches
    still reach every worker process."""

    retention_days: PositiveFloat | None = None
    """Ended executions older than this many days are purged, with their history,
    by the ``orchestrator.purge`` beat entry. Default none: nothing is purged
    automatically (``orchestrator executions purge`` does it on demand)."""

    purge_interval_seconds: float = Field(default=3600.0, gt=0)
    """Seconds between two beat-scheduled purges when ``retention_days`` is set.
    Default 3600."""

    celery_overrides: dict[str, Any] = Field(default_factory=dict)
    """Raw Celery settings applied last (JSON in the environment). Default none."""

    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    """Extra kombu transport options (JSON in the environment), merged over the
    ones the configuration sets. Default none. A ``sentinel://`` broker URL needs
    ``{"master_name": "..."}``; ``sentinel_kwargs`` (e.g. a Sentinel password) and
    ``socket_timeout`` go here too."""

    broker_quorum_queues: bool = False
    """RabbitMQ: declare ``critical``, ``default`` and ``low`` as quorum queues
    (replicated; Celery then turns off global QoS and uses native delayed delivery
    for countdowns). Default off (classic queues). Only for ``amqp://`` brokers."""

    api_host: str = "127.0.0.1"
    """Address the HTTP API listens on. Default ``127.0.0.1`` (loopback only)."""

    api_port: int = Field(default=8000, ge=1, le=65535)
    """Port the HTTP API listens on. Default 8000."""

    api_token: SecretStr | None = None
    """Bearer token the HTTP API requires. Default none (no token)."""

    aws_region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    """Region in the ARNs of the AWS JSON API (``orchestrator/aws``), and the region a
    SigV4 signature must be scoped to. Default ``us-east-1``."""

    aws_account_id: str = Field(default="123456789012", pattern=r"^[0-9]{12}$")
    """Account id in the ARNs of the AWS JSON API. Default ``123456789012``."""

    aws_access_key_id: str | None = None
    """With ``aws_secret_access_key``: the AWS JSON API accepts only requests signed
    (SigV4) with this key pair, and the bearer token does not apply to it. Default
    none: the AWS API follows ``api_token``, like every other route."""

    aws_secret_access_key: SecretStr | None = None
    """The secret of ``aws_access_key_id``. Default none."""

    flower_url: str | None = None
    """Flower's address (``http://127.0.0.1:5555``); the console links to it. Default none."""

    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line from the worker, the API and the CLI, each with
    the execution id, machine, state and batch id. Default ``text`` (logging as configured)."""

    metrics_dir: str | None = None
    """Directory for Prometheus multiprocess metrics (``PROMETHEUS_MULTIPROC_DIR``), shared
    by workers and the API on one host; the API's ``/metrics`` adds them up. Default none:
    each process reports only itself."""

    api_docs: bool = True
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json``. Default on. They need no
    token even when one is set: they hold no data, only the interface the source
    publishes anyway, and Swagger UI must read the schema before a user can enter
    the token. Turn them off to expose nothing at all to an anonymous client."""

    max_events_per_execution: int = Field(default=25_000, ge=1)
    """Most history events (states run) one execution may make, AWS's limit. Default
    25000; past it the execution fails with States.Runtime, so a state machine that
    loops on itself cannot run for ever nor fill the disk."""

    expression_timeout_ms: int = Field(default=1000, ge=1)
    """Wall time one JSONata expression may take, in milliseconds. Default 1000; past
    it the state fails with States.QueryEvaluationError, so an expensive expression
    cannot hold a worker for ever."""

    max_map_items: int = Field(default=131_072, ge=1)
    """Most items one inline Map state may hold (its checkpoint keeps them all).
    Default 131072, more than a 256 KiB payload can carry (131071 one-digit
    numbers); past it the Map state
    fails with States.Runtime, naming the state and the count."""

    map_object_store: str = "s3://"
    """Where a Distributed Map's ItemReader and ResultWriter find ``Bucket``/``Key``:
    the object's URL is this prefix, the bucket, ``/`` and the key. Default ``s3://``;
    ``file:///srv/buckets/`` reads and writes local directories (one per bucket)."""

    s3_endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, moto) for ``s3://`` objects; None: AWS's.
    Credentials come from the usual AWS variables or files (boto's chain)."""

    map_children_per_chunk: int = Field(default=500, ge=1, le=10_000)
    """Children of a Distributed Map created (and published) per transaction."""

    max_step_attempts: int = Field(default=5, ge=1)
    """Most times one step of an execution is taken up by a worker that dies before
    committing anything (SIGKILL, out of memory, a hard time limit). Default 5; the
    next recovery fails the execution with States.Runtime instead of running the
    step again, so a handler that kills its worker is not retried for ever. Any
    committed step starts the count again."""

    definition_max_bytes: PositiveInt = 1_048_576
    """Largest state machine definition, in bytes of UTF-8 JSON. Default 1048576
    (1 MiB, AWS's limit); larger is refused as DefinitionInvalid."""

    @field_validator("handler_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, str):
            return json.loads(value)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings read from the environment, cached.

    Call ``get_settings.cache_clear()`` to read the environment again.
    """
    return Settings()


__all__ = ["Settings", "get_settings"]
