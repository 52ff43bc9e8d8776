"""How a batch runs: :class:`BatchOptions`, checked before anything is written and
stored on the batch row; and :class:`Machine`, what a batch needs of its state machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

from orchestrator.batch.leader import Priority, guard_settings
from orchestrator.distributed.publish import Publisher
from orchestrator.distributed.routing import priority_level
from orchestrator.handlers import input_transformers
from orchestrator.settings import Settings
from orchestrator.store import Batch, Execution, Repository, Version

if TYPE_CHECKING:
    from orchestrator.runtime import Runner

Mode = Literal["distributed", "local"]
Callback = Callable[[Execution], None]


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a batch runs (stored with it).

    Attributes:
        name_prefix: executions are named ``{name_prefix}-{source id or index}``.
        source_state_name: ``execute_batch``: input from this state's output.
            Default: the source's final output.
        priority: queue name or 0-9. Default ``default``.
        mode: ``distributed`` publishes to the workers, ``local`` runs here.
            Default distributed.
        concurrency: local mode: executions at a time. Default 8.
        stop_on_error: local mode: abort the rest after a failure. Default False.
        unique: ``execute_batch``: skip sources already linked to an execution
            of this machine. Default False.
        input_transformer: registered name of a function applied to each input.
            Default none.
        micro_batch_size: publish slices of this many executions, each once the
            previous one ended. Default none: slices of ``page_size``, back to back.
        micro_batch_timeout: seconds to wait for a slice before the next goes
            out anyway (its stragglers then overlap the next slice). Default
            none: as long as it takes. Paused time does not count.
        watch: distributed, no micro-batches: stay until every execution has
            ended, so the failure guard watches them too. Default False.
        failure_warn_threshold: the guard warns at this failure rate (logged and
            stored on the batch). Default 0.1; None: never.
        failure_pause_threshold: the guard pauses the batch at this failure rate.
            Default 0.25; None: never.
        failure_smoothing: weight of each ended execution in the moving
            average; it mostly reflects the last ``~1/failure_smoothing``
            executions. Default 0.05.
        failure_min_finished: ended executions before the guard judges. Default 20.
        poll_interval: seconds between two looks of the leader (counts, beat,
            pause/cancel) while it waits. Default 0.5.
    """

    name_prefix: str
    source_state_name: str | None = None
    priority: Priority = "default"
    mode: Mode = "distributed"
    concurrency: int = 8
    stop_on_error: bool = False
    unique: bool = False
    input_transformer: str | None = None
    micro_batch_size: int | None = None
    micro_batch_timeout: float | None = None
    watch: bool = False
    failure_warn_threshold: float | None = 0.1
    failure_pause_threshold: float | None = 0.25
    failure_smoothing: float = 0.05
    failure_min_finished: int = 20
    poll_interval: float = 0.5


class ControlOptions(TypedDict, total=False):
    """The micro-batch and failure-guard fields of :class:`BatchOptions`, as keyword arguments.

    The facade takes them as ``**control: Unpack[ControlOptions]``; their
    defaults and meaning are those of :class:`BatchOptions`.
    """

    micro_batch_size: int | None
    micro_batch_timeout: float | None
    watch: bool
    failure_warn_threshold: float | None
    failure_pause_threshold: float | None
    failure_smoothing: float
    failure_min_finished: int
    poll_interval: float


class Machine(Protocol):
    """What a batch needs of the state machine version it starts executions of.

    :class:`~orchestrator.statemachine.StateMachine` is one; the batch code
    does not import it, so the facade can import the batch code.
    """

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def version_record(self) -> Version: ...
    @property
    def repository(self) -> Repository: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def runner(self) -> Runner: ...


def check_options(options: BatchOptions, publisher: Publisher | None) -> None:
    """Refuse options that cannot work, before anything is written.

    Raises:
        ValueError: which option, and why.
    """
    if not options.name_prefix or not isinstance(options.name_prefix, str):
        raise ValueError("name_prefix must be a non-empty string")
    if options.mode not in ("distributed", "local"):
        raise ValueError(f"mode must be 'distributed' or 'local', not {options.mode!r}")
    priority_level(options.priority)  # a bad priority fails before anything is written
    if options.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if options.mode == "distributed" and publisher is None:
        raise ValueError("distributed mode needs a publisher (the Celery app)")
    if options.input_transformer is not None:
        input_transformers.get(options.input_transformer)  # fail early on a bad name
    if options.micro_batch_size is not None and options.micro_batch_size < 1:
        raise ValueError("micro_batch_size must be at least 1")
    timeout = options.micro_batch_timeout
    if timeout is not None and timeout < 0:
        raise ValueError("micro_batch_timeout must not be negative")
    if options.poll_interval <= 0:
        raise ValueError("poll_interval must be positive")
    guard_settings(options).check()


def stored_options(batch: Batch) -> BatchOptions:
    """The options a batch was started with, from its row."""
    stored = batch.options if isinstance(batch.options, dict) else {}
    known = {f.name for f in fields(BatchOptions)}
    return BatchOptions(**{k: v for k, v in stored.items() if k in known})


__all__ = [
    "BatchOptions",
    "Callback",
    "ControlOptions",
    "Machine",
    "Mode",
    "check_options",
    "stored_options",
]
