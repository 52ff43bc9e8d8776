"""The client: the one place where the parts of orchestrator are built and held.

    from orchestrator import Orchestrator

    client = Orchestrator()                       # from ORCHESTRATOR_* settings
    sm = client.create_state_machine("orders", definition)
    execution = sm.start({"order": 1})
    client.execution(execution.id).history()
    client.batch(batch_id).pause(reason="night freeze")

Front ends (the CLI, the HTTP API, the demo) and the worker's task entry points
each hold one client. Tests build one from explicit parts
(``Orchestrator(settings, repository=..., publisher=..., clock=...)``); a part
not given is the one of the shared client of the same settings, built on first
use, so a process keeps one database pool and one Celery app per settings.
That shared-client table is the only process-wide cache of the package.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.asl.errors import TASK_FAILED

# The public types a front end needs come from here, so that it imports the
# client only (tests/test_layers.py): records, reports and the handles.
from orchestrator.batch.control import SteeringReport
from orchestrator.batch.result import BatchProgress, BatchResult
from orchestrator.distributed.broker import BrokerReport
from orchestrator.distributed.publish import Depths, Publisher
from orchestrator.errors import MessageRefused, StateMachineNotFound
from orchestrator.handles import BatchHandle, ExecutionHandle, MapRunHandle
from orchestrator.settings import Settings, get_settings
from orchestrator.store import (
    AwsMachine,
    Batch,
    Execution,
    ExecutionFilter,
    HistoryEvent,
    MapChild,
    MapRun,
    Page,
    Repository,
    StateMachineInfo,
    TaskToken,
    Version,
)
from orchestrator.store.records import execution_json
from orchestrator.types import START_TICKET_PREFIX, ExecutionStatus, TaskTokenStatus

if TYPE_CHECKING:
    from orchestrator.runtime import Runner
    from orchestrator.runtime.clock import Clock
    from orchestrator.statemachine import StateMachine


class Orchestrator:
    """The composition root: settings, the store, the runner, the publisher, the clock.

    Args:
        settings: database, broker, limits; default :func:`get_settings`.
        repository: the store; default the shared one of ``settings`` (an
            SQLite database is migrated on first use).
        publisher: publishes execution ids to the workers; default a Celery
            publisher for ``settings``.
        clock: where the runner reads the time and sleeps; default the system clock.
        runner: advances executions in this process; default one built from
            the parts above.
        depths: reads the queue depths (the sweeper); default from the broker.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        repository: Repository | None = None,
        publisher: Publisher | None = None,
        clock: Clock | None = None,
        runner: Runner | None = None,
        depths: Depths | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._repository = repository
        self._publisher = publisher
        #: Whether the publisher is the client's own Celery one (start tickets need it).
        self._celery_publishes = publisher is None
        self._clock = clock
        self._runner = runner
        self._depths = depths
        self._celery_app: Any = None
        self._lock = threading.RLock()

    @classmethod
    def shared(cls, settings: Settings | None = None) -> Orchestrator:
        """The process's client for ``settings`` (default :func:`get_settings`), built once."""
        settings = settings or get_settings()
        key = settings.model_dump_json()
        with _shared_lock:
            found = _shared.get(key)
            if found is None:
                found = _shared[key] = cls(settings)
            return found

    def _fallback(self) -> Orchestrator | None:
        """The shared client whose parts this one borrows (None if this is it)."""
        shared = Orchestrator.shared(self.settings)
        return None if shared is self else shared

    # -- parts -------------------------------------------------------------------

    @property
    def repository(self) -> Repository:
        """The store (built on first use)."""
        with self._lock:
            if self._repository is None:
                other = self._fallback()
                self._repository = other.repository if other else _connect(self.settings)
            return self._repository

    @property
    def runner(self) -> Runner:
        """Advances executions in this process, on this client's store and clock."""
        with self._lock:
            if self._runner is None:
                from orchestrator.runtime import Runner

                self._runner = Runner(self.repository, settings=self.settings, clock=self._clock)
            return self._runner

    @property
    def celery_app(self) -> Any:
        """The Celery app of these settings (built on first use)."""
        with self._lock:
            if self._celery_app is None:
                other = self._fallback()
                if other is not None:
                    self._celery_app = other.celery_app
                else:
                    from orchestrator.celery import create_app

                    self._celery_app = create_app(self.settings, set_as_current=False)
            return self._celery_app

    @property
    def publisher(self) -> Publisher:
        """Publishes execution ids to their priority's queue (see ``distributed.publish``)."""
        with self._lock:
            if self._publisher is None:
                from orchestrator.distributed.publish import celery_publisher

                self._publisher = celery_publisher(self.celery_app, self.settings)
            return self._publisher

    def start_ticket(self) -> str | None:
        """A new start ticket if this client publishes with Celery, else None.

        An EXPRESS execution started for a worker is stored under it, and its
        message carries it with the row (:meth:`publish_started`). A client given
        another publisher publishes ids only, so it takes no ticket.
        """
        if not self._celery_publishes:
            return None
        return f"{START_TICKET_PREFIX}{uuid.uuid4().hex}"

    def publish_started(self, execution: Execution, priority: str | int) -> None:
        """Publish an execution stored under a start ticket, with its row.

        The row goes in the message unless its input is longer than
        ``START_ROW_MAX_CHARS``; the worker then claims it from the ticket.
        """
        from orchestrator.distributed.publish import START_ROW_MAX_CHARS, publish_start

        ticket = execution.lease_owner
        if ticket is None:
            raise ValueError(f"execution {execution.id} was not started under a ticket")
        row: str | None = execution_json(execution)
        if len(row or "") > START_ROW_MAX_CHARS:
            row = None
        publish_start(self.celery_app, execution.id, priority, ticket=ticket, row=row)

    @property
    def depths(self) -> Depths:
        """Reads how many messages wait in each queue (None when the broker cannot say)."""
        with self._lock:
            if self._depths is None:
                from orchestrator.distributed.publish import queue_depths

                app = self.celery_app
                self._depths = lambda: queue_depths(app)
            return self._depths

    # -- state machines ------------------------------------------------------------

    def create_state_machine(
        self, name: str, definition: Any, *, machine_type: str = "STANDARD"
    ) -> StateMachine:
        """Validate and store a definition (a new version only if it changed).

        ``machine_type``: ``STANDARD`` or ``EXPRESS`` (fixed at creation, as on AWS).

        Raises:
            InvalidName: a name AWS would refuse.
            DefinitionInvalid: the definition has problems (each with its JSON pointer).
            StateMachineTypeNotSupported: the machine exists with another type.
        """
        from orchestrator.statemachine import StateMachine

        return StateMachine.create(name, definition, client=self, machine_type=machine_type)

    def state_machine(self, name: str, version: int | None = None) -> StateMachine:
        """A stored state machine, its newest version unless ``version`` is given.

        Raises:
            StateMachineNotFound: no such machine or version.
        """
        from orchestrator.statemachine import StateMachine

        return StateMachine.load(name, version, client=self)

    def bind(self, version: Version) -> StateMachine:
        """The state machine of a version record, on this client."""
        from orchestrator.statemachine import StateMachine

        return StateMachine(version, client=self)

    def find_version(self, name: str, version: int | None = None) -> Version:
        """The record of a state machine version (its newest unless ``version`` is given).

        Raises:
            StateMachineNotFound: no such machine or version.
        """
        if "\x00" in name:  # PostgreSQL cannot even look for it; none could be stored
            raise StateMachineNotFound(name, version)
        return self.repository.get_version(name, version)

    def version(self, version_id: int) -> Version:
        """A stored version by its id."""
        return self.repository.get_version_by_id(version_id)

    def state_machines(self) -> builtins.list[StateMachineInfo]:
        """Every stored state machine with its newest version number."""
        return self.repository.list_state_machines()

    # -- what the AWS API keeps (orchestrator/aws) ---------------------------------------

    def aws_machine(self, state_machine_id: int) -> AwsMachine | None:
        """The AWS facts of a machine (role, tags, published versions), or None."""
        return self.repository.aws.get_aws_machine(state_machine_id)

    def put_aws_machine(
        self, state_machine_id: int, *, role_arn: str | None, tags: dict[str, str]
    ) -> AwsMachine:
        """Record (or revive after a delete) the AWS facts of a machine; tags are merged."""
        return self.repository.aws.put_aws_machine(state_machine_id, role_arn=role_arn, tags=tags)

    def update_aws_machine(self, state_machine_id: int, **changes: Any) -> AwsMachine:
        """Change the role, tag, untag or mark deleted (``AwsResources.update_aws_machine``)."""
        return self.repository.aws.update_aws_machine(state_machine_id, **changes)

    def publish_aws_version(
        self, state_machine_id: int, version_id: int, description: str | None
    ) -> dict[str, Any]:
        """Publish a stored version as the machine's next AWS version number."""
        return self.repository.aws.publish_aws_version(
            state_machine_id, version_id, description=description
        )

    # -- executions ------------------------------------------------------------------

    def execution(self, execution_id: str) -> ExecutionHandle:
        """A handle on one execution (nothing is read until it is asked)."""
        return ExecutionHandle(self, execution_id)

    def executions(self, flt: ExecutionFilter) -> Page[Execution]:
        """One page of the executions ``flt`` selects."""
        return self.repository.list_executions(flt)

    def count_executions(self, flt: ExecutionFilter) -> int:
        """How many executions ``flt`` selects."""
        return self.repository.count_executions(flt)

    def count_by_status(self, flt: ExecutionFilter) -> dict[ExecutionStatus, int]:
        """How many executions ``flt`` selects, per status."""
        return dict(self.repository.status_counts(flt))

    def send_message(self, key: str, value: Any, data: Any = None) -> builtins.list[str]:
        """Deliver a message to every execution waiting on (``key``, ``value``), once each.

        Each resumed execution is then advanced in this process.

        Returns:
            The ids of the executions the message resumed.

        Raises:
            MessageRefused: nothing waits for it; the reason says whether a wait timed out.
        """
        consumed = self.repository.consume_correlations(key, value, message=data)
        if not consumed:
            raise MessageRefused(key, value, self._refusal(key, value))
        ids = builtins.list(dict.fromkeys(c.execution_id for c in consumed))
        for execution_id in ids:
            self.runner.advance(execution_id)
        return ids

    def send_task_success(self, token: str, output: Any = None) -> str:
        """Answer a ``.waitForTaskToken`` Task: its result is ``output`` (AWS SendTaskSuccess).

        The token is used once; its execution is then advanced in this process, as
        :meth:`send_message` does.

        Returns:
            The id of the execution the answer resumed.

        Raises:
            InvalidToken: malformed, or already used.
            TaskDoesNotExist: unknown, or its execution ended.
            TaskTimedOut: its TimeoutSeconds or HeartbeatSeconds passed.
            PayloadTooLarge, PayloadInvalid: ``output`` cannot be stored.
        """
        used = self.repository.complete_task_token(token, TaskTokenStatus.SUCCEEDED, output=output)
        self.runner.advance(used.execution_id)
        return used.execution_id

    def send_task_failure(
        self, token: str, error: str | None = None, cause: str | None = None
    ) -> str:
        """Fail a ``.waitForTaskToken`` Task with ``error``/``cause`` (AWS SendTaskFailure).

        The state's Retry and Catch apply to ``error`` as to any Task error; without
        one the error is ``States.TaskFailed``.

        Returns:
            The id of the execution the answer resumed.

        Raises:
            InvalidToken, TaskDoesNotExist, TaskTimedOut: as :meth:`send_task_success`.
        """
        used = self.repository.complete_task_token(
            token, TaskTokenStatus.FAILED, error=error or TASK_FAILED, cause=cause or ""
        )
        self.runner.advance(used.execution_id)
        return used.execution_id

    def send_task_heartbeat(self, token: str) -> str:
        """Tell a waiting Task that its work goes on (AWS SendTaskHeartbeat).

        Its ``HeartbeatSeconds`` deadline starts again from now.

        Returns:
            The id of the execution the token belongs to.

        Raises:
            InvalidToken, TaskDoesNotExist, TaskTimedOut: as :meth:`send_task_success`.
        """
        return self.repository.heartbeat_task_token(token).execution_id

    def task_tokens(self, execution_id: str) -> builtins.list[TaskToken]:
        """The task tokens an execution's ``.waitForTaskToken`` Tasks handed out, oldest
        first: state, attempt, status and deadlines (records of the token's hash; the
        token itself is never stored)."""
        return builtins.list(self.repository.execution_task_tokens(execution_id))

    def _refusal(self, key: str, value: Any) -> str:
        seen = self.repository.find_correlations(key, value)
        if not seen:
            return "no execution waits for this correlation"
        last = seen[-1]
        timed_out = last.timeout_at is not None and last.timeout_at <= datetime.now(UTC)
        if last.outcome == "TIMEOUT" or (not last.consumed and timed_out):
            return f"the wait of execution {last.execution_id} timed out at {last.timeout_at}"
        if last.outcome == "MESSAGE":
            return f"execution {last.execution_id} already received its message"
        return f"the wait of execution {last.execution_id} was cancelled (the execution ended)"

    def purge(
        self,
        older_than: timedelta,
        *,
        statuses: Sequence[ExecutionStatus | str] | None = None,
        chunk_size: int = 1000,
    ) -> int:
        """Delete executions that ended more than ``older_than`` ago, with their history.

        Running and waiting executions are never touched; ``statuses`` narrows the
        purge to some ended statuses. Deletes in chunks of ``chunk_size``.

        Returns:
            How many executions were deleted.
        """
        if older_than.total_seconds() < 0:
            raise ValueError("older_than must not be negative")
        cutoff = datetime.now(UTC) - older_than
        chosen = [ExecutionStatus(str(s).upper()) for s in statuses] if statuses else None
        return self.repository.purge_ended(cutoff, statuses=chosen, chunk_size=chunk_size)

    def recover(self, *, limit: int = 100) -> builtins.list[str]:
        """Resume, in this process, executions whose worker died (lease expired)."""
        return self.runner.recover(limit=limit)

    def fire_due_timers(self) -> builtins.list[str]:
        """Fire due timers and advance, in this process, the executions they wake."""
        return self.runner.fire_due_timers()

    def sweep(self, *, limit: int = 500) -> dict[str, Any]:
        """Fire due timers and re-publish stalled executions (what beat runs)."""
        from orchestrator.distributed.sweeper import sweep
        from orchestrator.runtime.maprun import settle_running

        done = sweep(
            settings=self.settings,
            repository=self.repository,
            publish=self.publisher,
            depths=self.depths,
            limit=limit,
        )
        done["map_runs_ended"] = settle_running(self.runner, self.publisher)
        return done

    # -- batches -------------------------------------------------------------------------

    def batch(self, batch_id: str) -> BatchHandle:
        """A handle on one batch (nothing is read until it is asked)."""
        return BatchHandle(self, batch_id)

    def batches(self, *, state_machine: str | None = None, limit: int = 20) -> builtins.list[Batch]:
        """The newest batches, optionally of one state machine."""
        return self.repository.list_batches(state_machine=state_machine, limit=limit)

    def batch_counts(self, batch_id: str) -> dict[str, int]:
        """How many of a batch's executions are in each status (status name to count)."""
        return self.repository.batch_execution_counts(batch_id)

    def describe_batch(self, batch_id: str) -> SteeringReport:
        """Where a batch stands (see :meth:`BatchHandle.describe`)."""
        return self.batch(batch_id).describe()

    # -- map runs -------------------------------------------------------------------------

    def map_run(self, map_run_id: str) -> MapRunHandle:
        """A handle on one Map Run of a Distributed Map (nothing is read until asked)."""
        return MapRunHandle(self, map_run_id)

    def map_runs(
        self,
        *,
        execution_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> builtins.list[MapRun]:
        """Map Runs, newest first: of one parent execution and/or in one status."""
        return self.repository.map_runs.list_map_runs(
            parent_execution_id=execution_id, status=status, limit=limit
        )

    # -- the broker -----------------------------------------------------------------------

    def broker_report(self, *, ping_timeout: float | None = None) -> BrokerReport:
        """Queue depths and the workers that answer a ping (bounded by short timeouts)."""
        from orchestrator.distributed import broker

        timeout = broker.PING_TIMEOUT if ping_timeout is None else ping_timeout
        return broker.broker_stats(self.celery_app, ping_timeout=timeout)

    def queue_depths(self) -> dict[str, int | None] | None:
        """Messages waiting in each queue (None for an unreadable queue), or None if
        the broker cannot be reached. Asks no worker, so it is cheap enough per scrape."""
        from orchestrator.distributed import broker

        return broker.broker_depths(self.celery_app)

    def broker_error(self) -> str | None:
        """None if the broker accepts a connection, else why not (one line)."""
        from orchestrator.distributed import broker

        return broker.check_broker(self.celery_app)

    # -- metrics ---------------------------------------------------------------------------

    def count_expired_leases(self, *, limit: int = 1000) -> int:
        """Executions whose lease has expired (awaiting recovery), counted up to ``limit``."""
        return len(self.repository.expired_leases(datetime.now(UTC), limit=limit))

    def enable_metrics(self) -> None:
        """Set up the runtime's metrics for this process: multiprocess mode when
        ``ORCHESTRATOR_METRICS_DIR`` is set (call before anything records a series)."""
        from orchestrator.runtime.metrics import enable_multiprocess

        enable_multiprocess(self.settings.metrics_dir)

    def runtime_metrics(self) -> bytes:
        """The runtime's series in Prometheus text: summed over every process sharing
        ``ORCHESTRATOR_METRICS_DIR`` (multiprocess mode), else this process's."""
        from orchestrator.runtime.metrics import exposition

        return exposition(self.settings.metrics_dir)

    # -- the database ----------------------------------------------------------------------

    def upgrade_database(self) -> None:
        """Apply the database migrations (creates the tables on a new database)."""
        from orchestrator.store.migrations import upgrade

        upgrade(self.settings.database_url)

    def database_url(self) -> str:
        """The database URL with its password hidden (for messages)."""
        from sqlalchemy.engine import make_url

        return make_url(self.settings.database_url).render_as_string(hide_password=True)


_shared_lock = threading.Lock()
_shared: dict[str, Orchestrator] = {}


def _connect(settings: Settings) -> Repository:
    """A repository for ``settings`` (an SQLite database is migrated first)."""
    from orchestrator.store import Repository
    from orchestrator.store.migrations import upgrade

    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url)  # the embedded default needs no separate set-up step
    return Repository.from_settings(settings)


def client_for(
    *,
    repository: Repository | None = None,
    settings: Settings | None = None,
    publisher: Publisher | None = None,
    runner: Runner | None = None,
) -> Orchestrator:
    """The shared client, or one over the explicit parts given (the free functions' way in)."""
    if repository is None and publisher is None and runner is None:
        return Orchestrator.shared(settings)
    return Orchestrator(settings, repository=repository, publisher=publisher, runner=runner)


__all__ = [
    "AwsMachine",
    "Batch",
    "BatchHandle",
    "BatchProgress",
    "BatchResult",
    "BrokerReport",
    "Execution",
    "ExecutionFilter",
    "ExecutionHandle",
    "HistoryEvent",
    "MapChild",
    "MapRun",
    "MapRunHandle",
    "MessageRefused",
    "Orchestrator",
    "Page",
    "StateMachineInfo",
    "SteeringReport",
    "TaskToken",
    "Version",
    "client_for",
]
