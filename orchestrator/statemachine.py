"""The public facade: state machines, their executions, messages.

    from orchestrator import StateMachine

    sm = StateMachine.create("orders", definition)      # a new version if it changed
    execution = sm.start({"order": {...}}, name="order-1001")
    sm.history(execution.id)

Machine-scoped work lives here (start, start_async, execute_batch, execute_bulk,
list/count); work on one execution or one batch by id lives on the handles of
:class:`~orchestrator.client.Orchestrator`. The free functions at the end are
thin conveniences over a client (the shared one unless parts are given).

Just over 600 lines: every way to start an execution (start, start_async,
start_sync, batches, bulk) is machine-scoped and documented here; the batch
entry points are thin and the next split would take them to ``batch/``.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Unpack

from orchestrator import asl
from orchestrator.batch import (
    BatchOptions,
    BatchResult,
    Callback,
    ControlOptions,
    InputFormat,
    Mode,
    continue_batch,
    execute_batch,
    execute_bulk,
    stored_options,
)
from orchestrator.batch.leader import DEFAULT_LEADER_TIMEOUT
from orchestrator.client import Orchestrator, client_for
from orchestrator.distributed.labels import publish_labels
from orchestrator.distributed.publish import Publisher
from orchestrator.distributed.routing import priority_level
from orchestrator.errors import (
    ExecutionNotFound,
    InvalidName,
    MessageRefused,
    StateMachineNotFound,
    StateMachineTypeNotSupported,
)
from orchestrator.handlers import input_transformers
from orchestrator.settings import Settings

# The free functions live in shortcuts.py; imported here, where callers found them first.
from orchestrator.shortcuts import (
    archive_batch_failures,
    batch_failures,
    batch_machine,
    cancel_batch,
    describe_batch,
    pause_batch,
    purge_executions,
    redrive_batch_failures,
    repository_for,
    resume_batch,
    send_message,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
)
from orchestrator.store import (
    Execution,
    ExecutionFilter,
    HistoryEvent,
    Page,
    Repository,
    StateMachineInfo,
    Version,
)
from orchestrator.store.payloads import encode
from orchestrator.types import ExecutionStatus

if TYPE_CHECKING:
    from orchestrator.handles import BatchHandle
    from orchestrator.runtime import Runner


class StateMachine:
    """One version of a stored state machine, and the executions started from it.

    Build it with :meth:`create` or :meth:`load` (or ``Orchestrator.state_machine``).
    Its parts (store, runner, publisher) are those of its client: by default the
    shared client of the environment's settings (``ORCHESTRATOR_*``); explicit
    ``repository``/``settings``/``runner`` make a client over them.
    """

    def __init__(
        self,
        version: Version,
        *,
        repository: Repository | None = None,
        settings: Settings | None = None,
        runner: Runner | None = None,
        client: Orchestrator | None = None,
    ) -> None:
        if client is None:
            client = client_for(repository=repository, settings=settings, runner=runner)
        self.client = client
        self.version_record = version
        self.definition = asl.load(version.definition)

    @property
    def repository(self) -> Repository:
        """The store (the client's)."""
        return self.client.repository

    @property
    def settings(self) -> Settings:
        """The settings (the client's)."""
        return self.client.settings

    @property
    def runner(self) -> Runner:
        """Advances this machine's executions in this process (the client's runner)."""
        return self.client.runner

    @property
    def name(self) -> str:
        """The state machine's name."""
        return self.version_record.state_machine_name

    @property
    def version(self) -> int:
        """This version's number (1, 2, ...)."""
        return self.version_record.version

    @property
    def machine_type(self) -> str:
        """``STANDARD`` or ``EXPRESS`` (AWS's state machine type)."""
        return self.version_record.machine_type

    # -- definitions ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        definition: Any,
        *,
        repository: Repository | None = None,
        settings: Settings | None = None,
        client: Orchestrator | None = None,
        machine_type: str = "STANDARD",
    ) -> StateMachine:
        """Validate and store a definition; the same definition again makes no new version.

        ``machine_type`` is AWS's state machine type, fixed at creation: ``STANDARD``
        (every state in the history, exactly-once commits) or ``EXPRESS`` (only the
        final row, at least once; no ``.sync`` or ``.waitForTaskToken`` Tasks).

        Raises:
            InvalidName: ``name`` is not 1-80 characters without whitespace, control
                characters or any of ``<>{}[]?*"#%\\^|~`$&,;:/`` (AWS's rule).
            DefinitionInvalid: the definition has problems (each with its JSON pointer),
                or ``machine_type`` is neither STANDARD nor EXPRESS.
            StateMachineTypeNotSupported: the machine exists with another type.
        """
        check_name(name, "state machine name")
        client = client or client_for(repository=repository, settings=settings)
        limit = client.settings.definition_max_bytes
        if isinstance(definition, str):  # refuse a huge text before parsing it
            _check_definition_size(len(definition.encode("utf-8", "replace")), limit)
        raw, problems = asl.parse(definition, machine_type=machine_type)
        if problems or raw is None:
            raise asl.DefinitionInvalid(problems)
        _check_definition_size(len(encode(raw.raw, field="definition").encode()), limit)
        _, version, _ = client.repository.create_or_get_version(
            name, raw.raw, machine_type=machine_type
        )
        return cls(version, client=client)

    @classmethod
    def load(
        cls,
        name: str,
        version: int | None = None,
        *,
        repository: Repository | None = None,
        settings: Settings | None = None,
        client: Orchestrator | None = None,
    ) -> StateMachine:
        """Load a stored state machine (its newest version unless ``version`` is given).

        Raises:
            StateMachineNotFound: no such machine or version.
        """
        if "\x00" in name:  # PostgreSQL cannot even look for it; none could be stored
            raise StateMachineNotFound(name, version)
        client = client or client_for(repository=repository, settings=settings)
        return cls(client.repository.get_version(name, version), client=client)

    @staticmethod
    def list(*, repository: Repository | None = None) -> builtins.list[StateMachineInfo]:
        """Every stored state machine with its newest version number."""
        return client_for(repository=repository).state_machines()

    # -- starting ---------------------------------------------------------------

    def start(
        self,
        input: Any = None,
        *,
        name: str | None = None,
        source_execution_id: str | None = None,
        source_state_name: str | None = None,
        input_transformer: str | Callable[[Any], Any] | None = None,
        priority: str | int = "default",
    ) -> Execution:
        """Start an execution and run it in this process until it ends or parks.

        With ``source_execution_id`` the input is the source's final output (or the
        output of its state ``source_state_name``), passed through
        ``input_transformer`` (a callable, or the name of one registered with
        ``@input_transformer``); the link is stored.

        Names are unique per state machine: the same name with the same input
        returns the existing execution; a different input raises
        :class:`~orchestrator.errors.ExecutionAlreadyExists`.
        """
        execution, created = self._create(
            input,
            name,
            source_execution_id,
            source_state_name,
            input_transformer,
            priority,
            claim_as=self.runner.owner,
        )
        if not created:
            return execution
        return self.runner.advance_claimed(execution)

    def start_async(
        self,
        input: Any = None,
        *,
        name: str | None = None,
        priority: str | int = "default",
        source_execution_id: str | None = None,
        source_state_name: str | None = None,
        input_transformer: str | None = None,
        publisher: Publisher | None = None,
    ) -> Execution:
        """Store a PENDING execution and publish it to the queue of ``priority``.

        A worker (``celery -A orchestrator worker -Q critical,default,low``) runs it.
        Starting the same name again publishes nothing new (see :meth:`start`).
        """
        # An EXPRESS execution is stored RUNNING under a start ticket, and its message
        # carries the row: the worker runs it with no claim (Runner.advance_started).
        express = publisher is None and self.machine_type == "EXPRESS"
        ticket = self.client.start_ticket() if express else None
        execution, created = self._create(
            input,
            name,
            source_execution_id,
            source_state_name,
            input_transformer,
            priority,
            claim_as=ticket,
        )
        if created:
            with publish_labels(state_machine=self.name, batch_id=None):
                if ticket is not None:
                    self.client.publish_started(execution, priority)
                else:
                    (publisher or self.client.publisher)([execution.id], priority)
        return execution

    def start_sync(
        self,
        input: Any = None,
        *,
        name: str | None = None,
        priority: str | int = "default",
        on_worker: bool = False,
        timeout: float | None = None,
    ) -> Execution:
        """Run an EXPRESS execution to its end and return it (AWS's StartSyncExecution).

        The execution's ``status`` (SUCCEEDED, FAILED, TIMED_OUT), ``output``,
        ``error`` and ``cause`` are its outcome; it records no history. It runs in
        this process, or with ``on_worker=True`` on a Celery worker while this call
        waits for its end (at most ``timeout`` seconds, if given).

        Raises:
            StateMachineTypeNotSupported: the machine is STANDARD (AWS refuses
                StartSyncExecution on a STANDARD machine too).
            TimeoutError: ``on_worker`` and ``timeout`` passed before it ended.
        """
        if self.machine_type != "EXPRESS":
            raise StateMachineTypeNotSupported(
                f"start_sync runs EXPRESS state machines only; {self.name!r} is "
                f"{self.machine_type} (use start or start_async)"
            )
        if not on_worker:
            return self.start(input, name=name, priority=priority)
        execution = self.start_async(input, name=name, priority=priority)
        return self.client.execution(execution.id).wait(timeout)

    def _create(
        self,
        data: Any,
        name: str | None,
        source_id: str | None,
        state_name: str | None,
        transformer: str | Callable[[Any], Any] | None,
        priority: str | int,
        *,
        claim_as: str | None,
    ) -> tuple[Execution, bool]:
        if name is not None:
            check_name(name, "execution name")
        level = priority_level(priority)
        data = _transform(self._chained_input(data, source_id, state_name), transformer)
        return self.repository.create_execution(
            self.version_record,
            name=name,
            input=data,
            priority=level,
            source_execution_id=source_id,
            source_state_name=state_name,
            claim_as=claim_as,
            lease_seconds=self.settings.lease_seconds,
        )

    def _chained_input(self, data: Any, source_id: str | None, state_name: str | None) -> Any:
        if source_id is None:
            if state_name is not None:
                raise ValueError("source_state_name needs source_execution_id")
            return data
        source = self.repository.get_execution(source_id)
        if state_name is None:
            if source.status != ExecutionStatus.SUCCEEDED:
                raise ValueError(
                    f"source execution {source_id!r} is {source.status}, not SUCCEEDED: "
                    "it has no output to chain from"
                )
            return source.output
        outputs = self.repository.state_outputs(
            [source_id], state_name, event_type="StateSucceeded"
        )
        if source_id not in outputs:
            raise ValueError(f"source execution {source_id!r} has no finished state {state_name!r}")
        return outputs[source_id]

    def execute_batch(
        self,
        filter: ExecutionFilter,
        source_state_name: str | None = None,
        *,
        name_prefix: str,
        priority: str | int = "default",
        mode: Mode = "distributed",
        concurrency: int = 8,
        stop_on_error: bool = False,
        unique: bool = False,
        input_transformer: str | None = None,
        on_execution_start: Callback | None = None,
        on_execution_complete: Callback | None = None,
        publisher: Publisher | None = None,
        **control: Unpack[ControlOptions],
    ) -> BatchResult:
        """Start one execution of this machine per source execution that ``filter`` selects.

        Each new execution's input is its source's final output (or the output of
        the source's state ``source_state_name``), through ``input_transformer``
        (a registered name, so workers find it). Executions are named
        ``{name_prefix}-{source id}``: the same batch again starts nothing twice.
        With ``unique=True`` sources already linked to an execution of this machine
        are skipped. ``mode="distributed"`` publishes them to the Celery queue of
        ``priority``; ``mode="local"`` runs them here, ``concurrency`` at a time
        (``stop_on_error`` aborts the rest after a failure; the callbacks get each
        execution as it starts and ends). ``control`` takes the micro-batch and
        failure-guard options (``micro_batch_size``, ``failure_pause_threshold``,
        ...; see :class:`~orchestrator.batch.BatchOptions`).

        Returns:
            The batch's id and counts; ``.wait()`` and ``.progress()`` follow it.
        """
        options = BatchOptions(
            name_prefix=name_prefix,
            source_state_name=source_state_name,
            priority=priority,
            mode=mode,
            concurrency=concurrency,
            stop_on_error=stop_on_error,
            unique=unique,
            input_transformer=input_transformer,
            **control,
        )
        if mode == "distributed" and publisher is None:
            publisher = self.client.publisher
        return execute_batch(
            self,
            filter,
            options,
            publisher=publisher,
            on_execution_start=on_execution_start,
            on_execution_complete=on_execution_complete,
        )

    def execute_bulk(
        self,
        inputs: Iterable[Any] | str | os.PathLike[str],
        *,
        name_prefix: str,
        input_format: InputFormat = "auto",
        priority: str | int = "default",
        mode: Mode = "distributed",
        concurrency: int = 8,
        stop_on_error: bool = False,
        input_transformer: str | None = None,
        on_execution_start: Callback | None = None,
        on_execution_complete: Callback | None = None,
        publisher: Publisher | None = None,
        **control: Unpack[ControlOptions],
    ) -> BatchResult:
        """Start one execution of this machine per input, named ``{name_prefix}-{index}``.

        ``inputs`` is an iterable of JSON values, or the path of a JSON array or
        JSON-lines file, read as a stream (``input_format``: ``auto`` guesses
        from the suffix and the first character). A file is checked from end
        to end before anything is created. The same batch again starts nothing
        twice. ``mode``, ``priority`` and the callbacks are those of
        :meth:`execute_batch`; ``control`` takes the micro-batch and
        failure-guard options (see :class:`~orchestrator.batch.BatchOptions`).
        With micro-batches (or ``watch=True``) this call leads the batch until
        every execution has ended, waiting while the batch is paused.

        Raises:
            BulkInputError: an input is not storable JSON (it names the line or
                element, and says what had been created).
        """
        options = BatchOptions(
            name_prefix=name_prefix,
            priority=priority,
            mode=mode,
            concurrency=concurrency,
            stop_on_error=stop_on_error,
            input_transformer=input_transformer,
            **control,
        )
        if mode == "distributed" and publisher is None:
            publisher = self.client.publisher
        return execute_bulk(
            self,
            inputs,
            options,
            input_format=input_format,
            publisher=publisher,
            on_execution_start=on_execution_start,
            on_execution_complete=on_execution_complete,
        )

    def batch(self, batch_id: str) -> BatchHandle:
        """A handle on one batch (see ``Orchestrator.batch``)."""
        return self.client.batch(batch_id)

    def continue_batch(
        self,
        batch_id: str,
        *,
        inputs: Iterable[Any] | None = None,
        publisher: Publisher | None = None,
        leader_timeout: float = DEFAULT_LEADER_TIMEOUT,
        on_execution_start: Callback | None = None,
        on_execution_complete: Callback | None = None,
    ) -> BatchResult:
        """Lead a batch whose leader died, from its stored position (``batch.run.continue_batch``).

        ``inputs``: the same inputs again, for a batch that read a Python iterable.
        """
        if publisher is None and stored_options(self.repository.get_batch(batch_id)).mode == (
            "distributed"
        ):
            publisher = self.client.publisher
        return continue_batch(
            self,
            batch_id,
            inputs=inputs,
            publisher=publisher,
            leader_timeout=leader_timeout,
            on_execution_start=on_execution_start,
            on_execution_complete=on_execution_complete,
        )

    # -- reading ----------------------------------------------------------------

    def get_execution(self, execution_id: str) -> Execution:
        """One execution of this state machine.

        Raises:
            ExecutionNotFound: no execution of this machine has this id.
        """
        execution = self.repository.get_execution(execution_id)
        if execution.state_machine_id != self.version_record.state_machine_id:
            raise ExecutionNotFound(execution_id)
        return execution

    def _filter(self, flt: ExecutionFilter | None, fields: dict[str, Any]) -> ExecutionFilter:
        flt = flt or ExecutionFilter()
        return replace(flt, state_machine=self.name, **fields)

    def list_executions(self, flt: ExecutionFilter | None = None, **fields: Any) -> Page[Execution]:
        """One page of this machine's executions (see :class:`ExecutionFilter`)."""
        return self.repository.list_executions(self._filter(flt, fields))

    def count_executions(self, flt: ExecutionFilter | None = None, **fields: Any) -> int:
        """How many of this machine's executions match."""
        return self.repository.count_executions(self._filter(flt, fields))

    def history(self, execution_id: str) -> builtins.list[HistoryEvent]:
        """The execution's history, one row per finished state (or failed attempt)."""
        self.get_execution(execution_id)
        return self.repository.history(execution_id)

    # -- steering ----------------------------------------------------------------

    def stop(
        self, execution_id: str, *, error: str | None = None, cause: str | None = None
    ) -> bool:
        """Abort a running or waiting execution (ABORTED); False if it had already ended."""
        self.get_execution(execution_id)
        stopped = self.repository.stop_execution(execution_id, error=error, cause=cause)
        # A Distributed Map's children that have not ended go with their parent.
        self.repository.map_runs.abort_map_runs(execution_id)
        return stopped

    def redrive(self, execution_id: str) -> Execution:
        """Continue a FAILED, TIMED_OUT or ABORTED execution from where it stopped.

        Raises:
            ValueError: the execution has not ended in a redrivable status.
            StateMachineTypeNotSupported: it is an EXPRESS execution (AWS redrives
                STANDARD executions only: an EXPRESS one keeps nothing to go on from).
        """
        if self.get_execution(execution_id).execution_type == "EXPRESS":
            raise StateMachineTypeNotSupported(
                f"execution {execution_id!r} is EXPRESS: only STANDARD executions can be "
                "redriven (start it again)"
            )
        reopened = self.repository.redrive(execution_id)
        if reopened is None:
            status = self.repository.get_execution(execution_id).status
            raise ValueError(
                f"execution {execution_id!r} is {status}: only FAILED, "
                "TIMED_OUT or ABORTED executions can be redriven"
            )
        return self.runner.advance(execution_id) or self.repository.get_execution(execution_id)


def _check_definition_size(size: int, limit: int) -> None:
    """Refuse a definition larger than ``definition_max_bytes`` (AWS: 1 MiB)."""
    if size > limit:
        raise asl.DefinitionInvalid(
            [
                asl.Problem(
                    path="",
                    message=f"the definition is {size} bytes, more than the limit of {limit} "
                    "(ORCHESTRATOR_DEFINITION_MAX_BYTES)",
                )
            ]
        )


def _transform(data: Any, transformer: str | Callable[[Any], Any] | None) -> Any:
    if transformer is None:
        return data
    fn = input_transformers.get(transformer) if isinstance(transformer, str) else transformer
    return fn(data)


#: Characters AWS refuses in state machine names (besides whitespace and controls).
_NAME_SPECIALS = frozenset('<>{}[]?*"#%\\^|~`$&,;:/')

#: Longest state machine name AWS accepts.
MAX_NAME_LENGTH = 80


def check_name(name: object, what: str) -> None:
    """Refuse a name AWS would refuse, saying what is wrong with it.

    Raises:
        InvalidName: not a string of 1-80 characters, or one holding whitespace,
            a control character or one of AWS's special characters.
    """
    if not isinstance(name, str):
        raise InvalidName(f"{what} must be a string, not {type(name).__name__}")
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidName(f"{what} must be 1 to {MAX_NAME_LENGTH} characters, not {len(name)}")
    for index, char in enumerate(name):
        if char.isspace() or not char.isprintable() or char in _NAME_SPECIALS:
            raise InvalidName(
                f"{what} {name!r} may not contain {char!r} (at {index}): no whitespace, "
                f"control characters or any of {''.join(sorted(_NAME_SPECIALS))}"
            )


__all__ = [
    "MessageRefused",
    "StateMachine",
    "archive_batch_failures",
    "batch_failures",
    "batch_machine",
    "cancel_batch",
    "check_name",
    "describe_batch",
    "pause_batch",
    "purge_executions",
    "redrive_batch_failures",
    "repository_for",
    "resume_batch",
    "send_message",
    "send_task_failure",
    "send_task_heartbeat",
    "send_task_success",
]
