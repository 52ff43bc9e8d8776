"""The repository: the only code that writes SQL.

Each public method is one use case and one short transaction. Methods take
plain values and return frozen records (:mod:`orchestrator.store.records`); no
session or connection leaves this package. Races are settled by the database,
not by the caller: claims, checkpoints, message consumption and timer firing
are conditional UPDATEs whose affected rows say who won, so they hold across
processes on PostgreSQL (READ COMMITTED re-checks the condition after a
concurrent update) and on SQLite (writers take the lock at BEGIN).

Times: every method that depends on the clock takes ``now`` (timezone-aware,
default: the current UTC time), so the runtime's clock and tests decide.

One repository per aggregate, each in its own private module, all sharing one
:class:`~orchestrator.store.repository._base.Database` (engine, transactions and
the :class:`~orchestrator.store.dialect.Dialect` that holds every difference
between PostgreSQL and SQLite):

- :class:`Definitions` (``_definitions``): state machines, versions;
- :class:`Executions` (``_executions``; filters and keyset paging in
  ``_paging``): create, read, list, history;
- :class:`Runs` (``_runs``): leases, stop, redrive, recovery;
  :class:`Checkpoints` (``_checkpoints``): committing steps;
- :class:`Waits` (``_waits``): timers, message correlations, task tokens;
- :class:`MapRuns` (``_mapruns``): Distributed Map runs and their children
  (reached as ``repo.map_runs``);
- :class:`Batches` (``_batches``): batch rows, the leader, steering;
  :class:`BatchExecutions` (``_batch_executions``): a batch's executions.

:class:`Repository` is the facade over them: it has every method of every part
under the part's name and signature (each a :class:`_Delegate`, so the two
cannot drift), and the parts as attributes (``repo.runs.claim``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from sqlalchemy import Engine

from orchestrator.store.engine import make_engine
from orchestrator.store.records import Checkpoint, Execution
from orchestrator.store.repository._aws import AwsResources
from orchestrator.store.repository._base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PAYLOAD_MAX_BYTES,
    Database,
)
from orchestrator.store.repository._batch_executions import BatchExecutions
from orchestrator.store.repository._batches import Batches
from orchestrator.store.repository._checkpoints import Checkpoints
from orchestrator.store.repository._definitions import Definitions
from orchestrator.store.repository._executions import Executions
from orchestrator.store.repository._mapruns import MapRuns
from orchestrator.store.repository._runs import Runs
from orchestrator.store.repository._waits import Waits
from orchestrator.types import ExecutionStatus

if TYPE_CHECKING:
    from orchestrator.settings import Settings

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Delegate(Generic[_P, _R]):
    """A facade method that is a part's method: ``repo.claim`` is ``repo.runs.claim``.

    The signature (for mypy too) and the docstring are the part's. The bound
    method is cached on the instance at first use, so later calls cost no more
    than calling the part.
    """

    def __init__(self, part: str, method: Callable[Concatenate[Any, _P], _R]) -> None:
        self._part = part
        self._method = method
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self._method.__name__:
            raise TypeError(f"{owner.__name__}.{name} delegates to {self._method.__name__}")

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[Concatenate[Any, _P], _R]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> Callable[_P, _R]: ...
    def __get__(self, obj: object | None, owner: type) -> Callable[..., _R]:
        if obj is None:
            return self._method
        bound: Callable[_P, _R] = getattr(getattr(obj, self._part), self._method.__name__)
        obj.__dict__[self._method.__name__] = bound
        return bound


class Repository:
    """Use-case methods over the store's tables: the facade over the per-aggregate parts.

    Args:
        engine: from :func:`orchestrator.store.engine.make_engine` (SQLite or
            PostgreSQL). The repository does not dispose of it unless it made it.
        payload_max_bytes: largest JSON payload accepted, in bytes. Default 262144.

    Raises:
        ConfigurationError: the engine is neither PostgreSQL nor SQLite.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        payload_max_bytes: int = DEFAULT_PAYLOAD_MAX_BYTES,
        prepared_statements: bool = True,
    ) -> None:
        db = Database(
            engine, payload_max_bytes=payload_max_bytes, prepared_statements=prepared_statements
        )
        self._db = db
        self._owns_engine = False
        self.definitions = Definitions(db)
        self.executions = Executions(db)
        self.runs = Runs(db)
        self.checkpoints = Checkpoints(db)
        self.waits = Waits(db)
        self.batches = Batches(db)
        self.batch_executions = BatchExecutions(db)
        #: What the AWS API keeps beyond definitions (type, role, tags, published versions).
        self.aws = AwsResources(db)
        #: Distributed Map runs and their children (used through this attribute).
        self.map_runs = MapRuns(db)

    @classmethod
    def from_settings(cls, settings: Settings) -> Repository:
        """Open the database of ``settings.database_url``; ``close()`` disposes of it."""
        # A transaction idle for a whole lease has lost its client (a network cut
        # mid-transaction): the server ends it, so its row locks do not outlive it.
        engine = make_engine(settings.database_url, idle_transaction_seconds=settings.lease_seconds)
        repo = cls(
            engine,
            payload_max_bytes=settings.payload_max_bytes,
            prepared_statements=settings.database_prepared_statements,
        )
        repo._owns_engine = True
        return repo

    @property
    def engine(self) -> Engine:
        """The engine this repository runs on."""
        return self._db.engine

    @property
    def payload_max_bytes(self) -> int:
        """Largest JSON payload accepted, in bytes."""
        return self._db.payload_max_bytes

    @payload_max_bytes.setter
    def payload_max_bytes(self, value: int) -> None:
        self._db.payload_max_bytes = value

    def close(self) -> None:
        """Dispose of the engine if this repository created it."""
        if self._owns_engine:
            self._db.engine.dispose()

    # -- definitions -------------------------------------------------------------
    create_or_get_version = _Delegate("definitions", Definitions.create_or_get_version)
    get_version = _Delegate("definitions", Definitions.get_version)
    get_version_by_id = _Delegate("definitions", Definitions.get_version_by_id)
    list_state_machines = _Delegate("definitions", Definitions.list_state_machines)

    # -- executions --------------------------------------------------------------
    create_execution = _Delegate("executions", Executions.create_execution)
    create_executions_bulk = _Delegate("executions", Executions.create_executions_bulk)
    get_execution = _Delegate("executions", Executions.get_execution)
    list_executions = _Delegate("executions", Executions.list_executions)
    iter_executions = _Delegate("executions", Executions.iter_executions)
    count_executions = _Delegate("executions", Executions.count_executions)
    status_counts = _Delegate("executions", Executions.status_counts)
    history = _Delegate("executions", Executions.history)
    state_outputs = _Delegate("executions", Executions.state_outputs)

    # -- runs --------------------------------------------------------------------
    claim = _Delegate("runs", Runs.claim)
    claim_many = _Delegate("runs", Runs.claim_many)
    renew_lease = _Delegate("runs", Runs.renew_lease)
    release = _Delegate("runs", Runs.release)
    set_trace_context = _Delegate("runs", Runs.set_trace_context)
    expired_leases = _Delegate("runs", Runs.expired_leases)
    take_stalled = _Delegate("runs", Runs.take_stalled)
    purge_ended = _Delegate("runs", Runs.purge_ended)
    stop_execution = _Delegate("runs", Runs.stop_execution)
    redrive = _Delegate("runs", Runs.redrive)

    # -- checkpoints -------------------------------------------------------------

    def checkpoint(
        self,
        execution_id: str,
        owner: str,
        step: Checkpoint | None = None,
        *,
        now: datetime | None = None,
        **fields: Any,
    ) -> ExecutionStatus:
        """Commit one step of an execution, if ``owner`` still holds it (see ``Checkpoints``).

        Args:
            execution_id: the execution.
            owner: the lease owner.
            step: what to commit.
            now: the time. Default: now.
            **fields: instead of ``step``, its fields as keywords (the form
                before :class:`Checkpoint`; ``Checkpoint(**fields)`` checks them).
        """
        return self.checkpoints.checkpoint(execution_id, owner, _step(step, fields), now=now)

    def checkpoint_execution(
        self,
        execution_id: str,
        owner: str,
        step: Checkpoint | None = None,
        *,
        now: datetime | None = None,
        **fields: Any,
    ) -> Execution:
        """:meth:`checkpoint`, returning the execution as stored by it (no second read)."""
        return self.checkpoints.checkpoint_execution(
            execution_id, owner, _step(step, fields), now=now
        )

    check_checkpoint = _Delegate("checkpoints", Checkpoints.check_checkpoint)
    checkpoint_many = _Delegate("checkpoints", Checkpoints.checkpoint_many)
    check_end = _Delegate("checkpoints", Checkpoints.check_end)
    end_many = _Delegate("checkpoints", Checkpoints.end_many)

    # -- waits -------------------------------------------------------------------
    claim_due_timers = _Delegate("waits", Waits.claim_due_timers)
    execution_timers = _Delegate("waits", Waits.execution_timers)
    consume_correlations = _Delegate("waits", Waits.consume_correlations)
    find_correlations = _Delegate("waits", Waits.find_correlations)
    execution_correlations = _Delegate("waits", Waits.execution_correlations)
    add_task_token = _Delegate("waits", Waits.add_task_token)
    complete_task_token = _Delegate("waits", Waits.complete_task_token)
    heartbeat_task_token = _Delegate("waits", Waits.heartbeat_task_token)
    task_token_called = _Delegate("waits", Waits.task_token_called)
    find_task_token = _Delegate("waits", Waits.find_task_token)
    execution_task_tokens = _Delegate("waits", Waits.execution_task_tokens)

    # -- batches -----------------------------------------------------------------
    create_batch = _Delegate("batches", Batches.create_batch)
    record_batch_progress = _Delegate("batches", Batches.record_batch_progress)
    get_batch = _Delegate("batches", Batches.get_batch)
    list_batches = _Delegate("batches", Batches.list_batches)
    lead_batch = _Delegate("batches", Batches.lead_batch)
    take_batch_lead = _Delegate("batches", Batches.take_batch_lead)
    release_batch_lead = _Delegate("batches", Batches.release_batch_lead)
    finish_batch = _Delegate("batches", Batches.finish_batch)
    pause_batch = _Delegate("batches", Batches.pause_batch)
    hold_unstarted = _Delegate("batches", Batches.hold_unstarted)
    resume_batch = _Delegate("batches", Batches.resume_batch)
    cancel_batch = _Delegate("batches", Batches.cancel_batch)
    batch_execution_counts = _Delegate("batch_executions", BatchExecutions.batch_execution_counts)
    status_counts_of = _Delegate("batch_executions", BatchExecutions.status_counts_of)
    unstarted_executions = _Delegate("batch_executions", BatchExecutions.unstarted_executions)
    batch_failures = _Delegate("batch_executions", BatchExecutions.batch_failures)
    archive_batch_failures = _Delegate("batch_executions", BatchExecutions.archive_batch_failures)
    redrive_batch_failures = _Delegate("batch_executions", BatchExecutions.redrive_batch_failures)


def _step(step: Checkpoint | None, fields: dict[str, Any]) -> Checkpoint:
    """``step``, or one built from its fields given as keywords (not both)."""
    if step is None:
        return Checkpoint(**fields)
    if fields:
        raise TypeError(f"pass a Checkpoint or its fields, not both (got {sorted(fields)})")
    return step


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PAYLOAD_MAX_BYTES",
    "BatchExecutions",
    "Batches",
    "Checkpoints",
    "Definitions",
    "Executions",
    "MapRuns",
    "Repository",
    "Runs",
    "Waits",
]
