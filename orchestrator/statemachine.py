"""The public facade: state machines, their executions, messages.

    from orchestrator import StateMachine

    sm = StateMachine.create("orders", definition)      # a new version if it changed
    execution = sm.start({"order": {...}}, name="order-1001")
    sm.history(execution.id)

Everything here goes through the store's repository and the runtime's runner;
front ends (CLI, HTTP API) call only this module.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

from orchestrator import asl, batch_control
from orchestrator.asl.errors import OrchestratorError
from orchestrator.batch import (
    BatchOptions,
    BatchResult,
    Callback,
    ControlOptions,
    InputFormat,
    Mode,
    Publisher,
    continue_batch,
    execute_batch,
    execute_bulk,
    stored_options,
)
from orchestrator.batch_control import DEFAULT_LEADER_TIMEOUT, SteeringReport
from orchestrator.distributed.routing import priority_level
from orchestrator.errors import ExecutionNotFound, InvalidName, StateMachineNotFound
from orchestrator.handlers import input_transformers
from orchestrator.runtime import Runner
from orchestrator.settings import Settings, get_settings
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
from orchestrator.store.shared import repository_for
from orchestrator.types import ExecutionStatus


class MessageRefused(OrchestratorError):
    """A message matched no waiting execution (none waits, or its wait timed out)."""

    def __init__(self, key: str, value: Any, reason: str) -> None:
        super().__init__(f"message {key}={value!r} refused: {reason}")
        self.key, self.value, self.reason = key, value, reason


class StateMachine:
    """One version of a stored state machine, and the executions started from it.

    Build it with :meth:`create` or :meth:`load`; ``repository`` and ``settings``
    default to those of the environment (``ORCHESTRATOR_*``).
    """

    def __init__(
        self,
        version: Version,
        *,
        repository: Repository,
        settings: Settings,
        runner: Runner | None = None,
    ) -> None:
        self.version_record = version
        self.repository = repository
        self.settings = settings
        self.runner = runner or Runner(repository, settings=settings)
        self.definition = asl.load(version.definition)

    @property
    def name(self) -> str:
        """The state machine's name."""
        return self.version_record.state_machine_name

    @property
    def version(self) -> int:
        """This version's number (1, 2, ...)."""
        return self.version_record.version

    # -- definitions ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        definition: Any,
        *,
        repository: Repository | None = None,
        settings: Settings | None = None,
    ) -> StateMachine:
        """Validate and store a definition; the same definition again makes no new version.

        Raises:
            InvalidName: ``name`` is not 1-80 characters without whitespace, control
                characters or any of ``<>{}[]?*"#%\\^|~`$&,;:/`` (AWS's rule).
            DefinitionInvalid: the definition has problems (each with its JSON pointer).
        """
        check_name(name, "state machine name")
        settings = settings or get_settings()
        repository = repository or repository_for(settings)
        limit = settings.definition_max_bytes
        if isinstance(definition, str):  # refuse a huge text before parsing it
            _check_definition_size(len(definition.encode("utf-8", "replace")), limit)
        raw, problems = asl.parse(definition)
        if problems or raw is None:
            raise asl.DefinitionInvalid(problems)
        _check_definition_size(len(encode(raw.raw, field="definition").encode()), limit)
        _, version, _ = repository.create_or_get_version(name, raw.raw)
        return cls(version, repository=repository, settings=settings)

    @classmethod
    def load(
        cls,
        name: str,
        version: int | None = None,
        *,
        repository: Repository | None = None,
        settings: Settings | None = None,
    ) -> StateMachine:
        """Load a stored state machine (its newest version unless ``version`` is given).

        Raises:
            StateMachineNotFound: no such machine or version.
        """
        if "\x00" in name:  # PostgreSQL cannot even look for it; none could be stored
            raise StateMachineNotFound(name, version)
        settings = settings or get_settings()
        repository = repository or repository_for(settings)
        return cls(repository.get_version(name, version), repository=repository, settings=settings)

    @staticmethod
    def list(*, repository: Repository | None = None) -> builtins.list[StateMachineInfo]:
        """Every stored state machine with its newest version number."""
        return (repository or repository_for()).list_state_machines()

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
            claim=True,
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
        execution, created = self._create(
            input,
            name,
            source_execution_id,
            source_state_name,
            input_transformer,
            priority,
            claim=False,
        )
        if created:
            (publisher or _default_publisher(self.settings))([execution.id], priority)
        return execution

    def _create(
        self,
        data: Any,
        name: str | None,
        source_id: str | None,
        state_name: str | None,
        transformer: str | Callable[[Any], Any] | None,
        priority: str | int,
        *,
        claim: bool,
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
            claim_as=self.runner.owner if claim else None,
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
            publisher = _default_publisher(self.settings)
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
            publisher = _default_publisher(self.settings)
        return execute_bulk(
            self,
            inputs,
            options,
            input_format=input_format,
            publisher=publisher,
            on_execution_start=on_execution_start,
            on_execution_complete=on_execution_complete,
        )

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
        """Lead a batch whose leader died, from its stored position (see ``batch.continue_batch``).

        ``inputs``: the same inputs again, for a batch that read a Python iterable.
        """
        if publisher is None and stored_options(self.repository.get_batch(batch_id)).mode == (
            "distributed"
        ):
            publisher = _default_publisher(self.settings)
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
        return self.repository.stop_execution(execution_id, error=error, cause=cause)

    def redrive(self, execution_id: str) -> Execution:
        """Continue a FAILED, TIMED_OUT or ABORTED execution from where it stopped.

        Raises:
            ValueError: the execution has not ended in a redrivable status.
        """
        self.get_execution(execution_id)
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


def _default_publisher(settings: Settings) -> Publisher:
    from orchestrator.distributed.publish import publisher_for

    return publisher_for(settings)


def _transform(data: Any, transformer: str | Callable[[Any], Any] | None) -> Any:
    if transformer is None:
        return data
    fn = input_transformers.get(transformer) if isinstance(transformer, str) else transformer
    return fn(data)


def send_message(
    key: str,
    value: Any,
    data: Any = None,
    *,
    repository: Repository | None = None,
    settings: Settings | None = None,
    runner: Runner | None = None,
) -> list[str]:
    """Deliver a message to every execution waiting on (``key``, ``value``), once each.

    Each resumed execution is then advanced in this process by ``runner``.

    Returns:
        The ids of the executions the message resumed.

    Raises:
        MessageRefused: nothing waits for it; the reason says whether a wait timed out.
    """
    settings = settings or get_settings()
    repository = repository or repository_for(settings)
    consumed = repository.consume_correlations(key, value, message=data)
    if not consumed:
        raise MessageRefused(key, value, _refusal(repository, key, value))
    runner = runner or Runner(repository, settings=settings)
    ids = list(dict.fromkeys(c.execution_id for c in consumed))
    for execution_id in ids:
        runner.advance(execution_id)
    return ids


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


def purge_executions(
    older_than: timedelta,
    *,
    statuses: Sequence[ExecutionStatus | str] | None = None,
    chunk_size: int = 1000,
    repository: Repository | None = None,
    settings: Settings | None = None,
) -> int:
    """Delete executions that ended more than ``older_than`` ago, with their history.

    Running and waiting executions are never touched; ``statuses`` narrows the
    purge to some ended statuses. Deletes in chunks of ``chunk_size``.

    Returns:
        How many executions were deleted.
    """
    if older_than.total_seconds() < 0:
        raise ValueError("older_than must not be negative")
    repository = repository or repository_for(settings or get_settings())
    cutoff = datetime.now(UTC) - older_than
    chosen = [ExecutionStatus(str(s).upper()) for s in statuses] if statuses else None
    return repository.purge_ended(cutoff, statuses=chosen, chunk_size=chunk_size)


def batch_machine(
    batch_id: str, *, repository: Repository | None = None, settings: Settings | None = None
) -> StateMachine:
    """The state machine version a batch runs (to continue it).

    Raises:
        BatchNotFound: no batch has this id.
        ValueError: the batch predates batches recording their version.
    """
    settings = settings or get_settings()
    repository = repository or repository_for(settings)
    batch = repository.get_batch(batch_id)
    version_id = batch.options.get("version_id") if isinstance(batch.options, dict) else None
    if version_id is None:
        raise ValueError(f"batch {batch_id} does not record its version: it cannot be continued")
    version = repository.get_version_by_id(int(version_id))
    return StateMachine(version, repository=repository, settings=settings)


def pause_batch(
    batch_id: str, *, reason: str | None = None, repository: Repository | None = None
) -> SteeringReport:
    """Pause a batch: nothing more is published, unstarted executions are held.

    Safe to call twice and from any process (see :func:`orchestrator.batch_control.pause`).
    """
    return batch_control.pause(repository or repository_for(), batch_id, reason=reason)


def resume_batch(
    batch_id: str,
    *,
    arm_guard: bool | None = None,
    reason: str | None = None,
    lead: bool = False,
    inputs: Iterable[Any] | None = None,
    repository: Repository | None = None,
    settings: Settings | None = None,
    publisher: Publisher | None = None,
) -> SteeringReport:
    """Resume a paused batch where it stopped; the held executions are published again.

    A leader that is alive goes on by itself. If the leader died
    (``needs_leader`` in the report) and ``lead`` is True, this call becomes the
    batch's leader and returns once the batch is over (``inputs``: the same
    inputs again, for a batch that read a Python iterable).
    """
    settings = settings or get_settings()
    repository = repository or repository_for(settings)
    publisher = publisher or _default_publisher(settings)
    report = batch_control.resume(
        repository, batch_id, publisher=publisher, arm_guard=arm_guard, reason=reason
    )
    if not (lead and report.needs_leader):
        return report
    machine = batch_machine(batch_id, repository=repository, settings=settings)
    machine.continue_batch(batch_id, inputs=inputs, publisher=publisher)
    return batch_control.describe(repository, batch_id)


def cancel_batch(
    batch_id: str, *, reason: str | None = None, repository: Repository | None = None
) -> SteeringReport:
    """Cancel a batch: nothing more is created, unstarted executions end ABORTED.

    The report's ``started`` counts those that had started (they run to their end).
    """
    return batch_control.cancel(repository or repository_for(), batch_id, reason=reason)


def describe_batch(batch_id: str, *, repository: Repository | None = None) -> SteeringReport:
    """Where a batch stands: status, reason, guard, leader, executions by status."""
    return batch_control.describe(repository or repository_for(), batch_id)


def batch_failures(
    batch_id: str,
    *,
    archived: bool | None = False,
    limit: int = 100,
    cursor: str | None = None,
    repository: Repository | None = None,
) -> Page[Execution]:
    """One page of a batch's failed executions with their errors (archived: see the flag)."""
    return batch_control.failures(
        repository or repository_for(), batch_id, archived=archived, limit=limit, cursor=cursor
    )


def redrive_batch_failures(
    batch_id: str,
    *,
    local: bool = False,
    repository: Repository | None = None,
    settings: Settings | None = None,
    publisher: Publisher | None = None,
    runner: Runner | None = None,
) -> int:
    """Redrive every failure of a batch that is not archived; return how many.

    They are published to the workers, or (``local=True``) run in this process.
    """
    settings = settings or get_settings()
    repository = repository or repository_for(settings)
    if local:
        runner = runner or Runner(repository, settings=settings)
        return batch_control.redrive_failures(repository, batch_id, advance=runner.advance)
    publisher = publisher or _default_publisher(settings)
    return batch_control.redrive_failures(repository, batch_id, publisher=publisher)


def archive_batch_failures(batch_id: str, *, repository: Repository | None = None) -> int:
    """Archive a batch's failures so far (nothing is deleted); return how many."""
    return batch_control.archive_failures(repository or repository_for(), batch_id)


def _refusal(repository: Repository, key: str, value: Any) -> str:
    seen = repository.find_correlations(key, value)
    if not seen:
        return "no execution waits for this correlation"
    last = seen[-1]
    timed_out = last.timeout_at is not None and last.timeout_at <= datetime.now(UTC)
    if last.outcome == "TIMEOUT" or (not last.consumed and timed_out):
        return f"the wait of execution {last.execution_id} timed out at {last.timeout_at}"
    if last.outcome == "MESSAGE":
        return f"execution {last.execution_id} already received its message"
    return f"the wait of execution {last.execution_id} was cancelled (the execution ended)"


__all__ = [
    "MessageRefused",
    "StateMachine",
    "archive_batch_failures",
    "batch_failures",
    "batch_machine",
    "cancel_batch",
    "describe_batch",
    "pause_batch",
    "purge_executions",
    "redrive_batch_failures",
    "repository_for",
    "resume_batch",
    "send_message",
]
