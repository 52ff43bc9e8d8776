"""Batches: one execution per source execution (``execute_batch``) or input (``execute_bulk``).

A batch is led by the process that starts it (see :mod:`orchestrator.batch_leader`):
it reads its inputs as a stream, never all in memory, and turns them into
*slices*. Each slice is one bulk INSERT of executions with idempotent names
(``{name_prefix}-{source id}`` for ``execute_batch``, ``{name_prefix}-{index}``
for ``execute_bulk``, so running the same batch again starts nothing twice),
then one bulk publish to the workers (or, with ``mode="local"``, a bounded pool
of threads in this process). Slices are ``page_size`` executions long and go out
one after another; with ``micro_batch_size=N`` they are N long and the next one
is created only once every execution of the previous one has ended (or
``micro_batch_timeout`` passed), so a huge batch never floods the broker and
the failure guard can pause it early. The ``batches`` row keeps the counts and
the leader's position; :class:`BatchResult` follows the batch to its end.

``execute_bulk`` reads a Python iterable, or a JSON array or JSON-lines file
(:mod:`orchestrator.bulk_inputs`). A file is checked from end to end before
anything is created, so a malformed file creates nothing; the error names the
line (and, in an array, the element).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from orchestrator.batch_leader import (
    DEFAULT_LEADER_TIMEOUT,
    LEADING,
    Dispatch,
    Leader,
    Priority,
    Publisher,
    Slice,
    guard_settings,
)
from orchestrator.bulk_inputs import (
    InputFormat,
    check_inputs,
    check_payload,
    detect_format,
    max_chars,
    read_inputs,
)
from orchestrator.distributed.labels import publish_labels
from orchestrator.distributed.routing import priority_level
from orchestrator.errors import BulkInputError, LeadLost
from orchestrator.handlers import input_transformers
from orchestrator.store import (
    Batch,
    Execution,
    ExecutionFilter,
    NewExecution,
    Repository,
)
from orchestrator.types import (
    BATCH_HOLD_OWNER_PREFIX,
    TERMINAL_STATUSES,
    BatchStatus,
    ExecutionStatus,
)

if TYPE_CHECKING:
    from orchestrator.statemachine import StateMachine

log = logging.getLogger("orchestrator.batch")

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


@dataclass(frozen=True, kw_only=True)
class BatchProgress:
    """Where a batch stands: counts of its executions by status.

    Attributes:
        total: executions the batch created.
        by_status: status -> count.
        finished: executions that ended (any terminal status).
        failed: executions that ended FAILED, TIMED_OUT or ABORTED.
        done: True when every created execution has ended and creation is over.
    """

    total: int
    by_status: dict[str, int]
    finished: int
    failed: int
    done: bool


@dataclass(kw_only=True)
class BatchResult:
    """What a batch started, and a handle to follow it.

    Attributes:
        batch_id: the ``batches`` row.
        sources: sources (or inputs) read.
        created: executions created now.
        skipped: sources skipped (their execution existed, or they had no output).
        published: executions handed to workers (distributed mode).
        results: in local mode, (source id, execution id, status) per execution run.
        status: the batch's status when the leader stopped leading it.
    """

    batch_id: str
    sources: int = 0
    created: int = 0
    skipped: int = 0
    published: int = 0
    results: list[tuple[str, str, str]] = field(default_factory=list)
    status: BatchStatus = BatchStatus.RUNNING
    repository: Repository | None = field(default=None, repr=False)

    def progress(self) -> BatchProgress:
        """Count the batch's executions by status (one query)."""
        assert self.repository is not None
        counts = self.repository.status_counts(ExecutionFilter(batch_id=self.batch_id))
        batch = self.repository.get_batch(self.batch_id)
        total = sum(counts.values())
        finished = sum(n for s, n in counts.items() if s in TERMINAL_STATUSES)
        failed = finished - counts.get(ExecutionStatus.SUCCEEDED, 0)
        creating = batch.status in LEADING
        return BatchProgress(
            total=total,
            by_status={str(s): n for s, n in counts.items()},
            finished=finished,
            failed=failed,
            done=not creating and finished == total,
        )

    def wait(self, timeout: float | None = None, *, poll: float = 0.5) -> BatchProgress:
        """Block until every execution of the batch has ended.

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the message has the counts).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.progress()
            if progress.done:
                return progress
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"batch {self.batch_id}: {progress.finished} of {progress.total} "
                    f"executions ended after {timeout} s"
                )
            time.sleep(poll)


class _Stopped(Exception):
    """stop_on_error: an execution failed, so the batch starts nothing more."""


@dataclass(frozen=True, kw_only=True)
class _Callbacks:
    on_start: Callback | None = None
    on_complete: Callback | None = None


# -- entry points ----------------------------------------------------------------------


def execute_batch(
    machine: StateMachine,
    flt: ExecutionFilter,
    options: BatchOptions,
    *,
    publisher: Publisher | None = None,
    on_execution_start: Callback | None = None,
    on_execution_complete: Callback | None = None,
) -> BatchResult:
    """Run a batch over source executions (see :meth:`StateMachine.execute_batch`)."""
    check_options(options, publisher)
    repo = machine.repository
    flt = _source_filter(flt, machine.name, options, datetime.now(UTC))
    owner = _owner()
    batch = repo.create_batch(
        machine.version_record.state_machine_id,
        filter=_jsonable(flt),
        options=_stored(options, machine),
        leader=owner,
        position={"index": 0},
    )
    slices = _source_slices(repo, options, flt, batch.id, _slice_size(options, machine), {})
    callbacks = _Callbacks(on_start=on_execution_start, on_complete=on_execution_complete)
    return _lead(machine, batch, options, slices, publisher, callbacks, owner=owner)


def execute_bulk(
    machine: StateMachine,
    inputs: Iterable[Any] | str | os.PathLike[str],
    options: BatchOptions,
    *,
    input_format: InputFormat = "auto",
    publisher: Publisher | None = None,
    on_execution_start: Callback | None = None,
    on_execution_complete: Callback | None = None,
) -> BatchResult:
    """Start one execution per input (see :meth:`StateMachine.execute_bulk`).

    ``inputs`` is an iterable of JSON values, or the path of a JSON array or
    JSON-lines file (``input_format``: ``auto`` reads a file whose first
    character is ``[`` as an array, and ``.jsonl``/``.ndjson`` files as lines).

    Raises:
        BulkInputError: an input is not a storable JSON value. A file is checked
            before anything is created; an iterable is checked as it is read,
            so the slices before the bad input were created (the error says how
            many) and the batch is FAILED.
    """
    check_options(options, publisher)
    repo = machine.repository
    limit = repo.payload_max_bytes
    items: Iterator[tuple[int, str, Any]]
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs).resolve()
        fmt = detect_format(path, input_format)
        count = check_inputs(path, input_format=fmt, payload_limit=limit)
        source: dict[str, Any] = {"inputs": "file", "path": str(path), "format": fmt}
        source["count"] = count
        items = read_inputs(path, input_format=fmt, max_chars=max_chars(limit))
    else:
        source, items = {"inputs": "iterable"}, _numbered(inputs)
    owner = _owner()
    batch = repo.create_batch(
        machine.version_record.state_machine_id,
        filter=source,
        options=_stored(options, machine),
        leader=owner,
        position={"index": 0},
    )
    check = source["inputs"] == "iterable" or options.input_transformer is not None
    slices = _input_slices(items, options, batch.id, _slice_size(options, machine), check, limit)
    callbacks = _Callbacks(on_start=on_execution_start, on_complete=on_execution_complete)
    return _lead(machine, batch, options, slices, publisher, callbacks, owner=owner)


def continue_batch(
    machine: StateMachine,
    batch_id: str,
    *,
    inputs: Iterable[Any] | None = None,
    publisher: Publisher | None = None,
    leader_timeout: float = DEFAULT_LEADER_TIMEOUT,
    on_execution_start: Callback | None = None,
    on_execution_complete: Callback | None = None,
) -> BatchResult:
    """Take the lead of a batch whose leader died, and go on from its stored position.

    What can be continued: a batch over source executions (the stored filter
    and keyset position are read again), a batch over a file (read again from
    the stored index, so the file must still be there, unchanged), and a batch
    over an iterable if ``inputs`` gives the same inputs again (the first
    ``position["index"]`` are skipped). Executions that were created but never
    published (the leader died in between) are published first; those of the
    last slice that were published already are published once more, which is
    harmless (a worker claims each execution once). With micro-batches, every
    execution the batch has must end before the next slice goes out.

    Raises:
        BatchNotFound: no batch has this id.
        ValueError: the batch is not RUNNING or PAUSED, its leader is alive, it
            runs another version than ``machine``, or it needs ``inputs``.
    """
    repo = machine.repository
    batch = repo.get_batch(batch_id)
    options = stored_options(batch)
    _check_version(batch, machine)
    check_options(options, publisher)
    # The position moves only while a leader is alive, and the lead is taken only
    # from a dead one: what is read now is where the new leader starts.
    position = dict(batch.position or {})
    slices = _slices_from(machine, batch, options, position, inputs)
    owner = _owner()
    stale = datetime.now(UTC) - timedelta(seconds=leader_timeout)
    taken = repo.take_batch_lead(batch_id, owner, stale_before=stale)
    if taken is None:
        batch = repo.get_batch(batch_id)
        raise ValueError(
            f"batch {batch_id} is {batch.status}"
            + (" and its leader is alive" if batch.status in LEADING else "")
            + ": there is nothing to continue"
        )
    since = position.get("slice_started_at")
    orphans = repo.unstarted_executions(
        batch_id,
        created_since=datetime.fromisoformat(since) if since else None,
        limit=max(10_000, 3 * _slice_size(options, machine)),
    )
    callbacks = _Callbacks(on_start=on_execution_start, on_complete=on_execution_complete)
    return _lead(machine, taken, options, slices, publisher, callbacks, owner=owner, adopt=orphans)


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


# -- the leader's run -----------------------------------------------------------------


def _lead(
    machine: StateMachine,
    batch: Batch,
    options: BatchOptions,
    slices: Iterator[Slice],
    publisher: Publisher | None,
    callbacks: _Callbacks,
    *,
    owner: str,
    adopt: list[tuple[str, int]] | None = None,
) -> BatchResult:
    repo = machine.repository
    result = BatchResult(batch_id=batch.id, repository=repo)
    local = _LocalRun(machine, options, callbacks, result)
    dispatch: Dispatch = local.run
    if options.mode == "distributed":
        assert publisher is not None
        dispatch = _publishing(publisher, options.priority, machine.name, batch.id)
    leader = Leader(repo, machine.version_record, batch, owner, options, dispatch, result)
    local.look = leader.look
    try:
        if adopt:
            leader.adopt([execution_id for execution_id, _ in adopt])
        result.status = leader.lead(slices, settle_first=adopt is not None)
    except _Stopped:
        local.abort_rest()
        _fail(repo, batch.id, owner, "stop_on_error")
        result.status = BatchStatus.FAILED
    except LeadLost:
        log.warning("batch %s: another process took the lead; stopping here", batch.id)
        result.status = repo.get_batch(batch.id).status
    except BulkInputError as exc:
        failed = BulkInputError(exc.source, exc.location, exc.reason, created=result.created)
        _fail(repo, batch.id, owner, str(failed))
        raise failed from None
    except Exception as exc:
        _fail(repo, batch.id, owner, str(exc) or type(exc).__name__)
        raise
    finally:
        _step_down(repo, batch.id, owner)
    return result


def _step_down(repo: Repository, batch_id: str, owner: str) -> None:
    # Whatever stopped the leader, it leads no more: a resume may hand the batch
    # to a new leader at once. (A killed process cannot; its beats just stop.)
    try:
        repo.release_batch_lead(batch_id, owner)
    except Exception:  # the database may be what failed: then the beats just stop
        log.warning("batch %s: could not release the lead", batch_id, exc_info=True)


def _fail(repo: Repository, batch_id: str, owner: str, error: str) -> None:
    repo.finish_batch(
        batch_id, owner, status=BatchStatus.FAILED, from_statuses=LEADING, error=error[:2000]
    )


def _publishing(publisher: Publisher, priority: Priority, machine: str, batch_id: str) -> Dispatch:
    def publish(ids: list[str]) -> int:
        with publish_labels(state_machine=machine, batch_id=batch_id):
            return publisher(ids, priority)

    return publish


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _stored(options: BatchOptions, machine: StateMachine) -> dict[str, Any]:
    return {**asdict(options), "version_id": machine.version_record.id}


def _check_version(batch: Batch, machine: StateMachine) -> None:
    stored = batch.options.get("version_id") if isinstance(batch.options, dict) else None
    if batch.state_machine_id != machine.version_record.state_machine_id or (
        stored is not None and stored != machine.version_record.id
    ):
        raise ValueError(
            f"batch {batch.id} runs another state machine or version than "
            f"{machine.name} version {machine.version}"
        )


def _slice_size(options: BatchOptions, machine: StateMachine) -> int:
    return options.micro_batch_size or machine.settings.page_size


def _slices_from(
    machine: StateMachine,
    batch: Batch,
    options: BatchOptions,
    position: dict[str, Any],
    inputs: Iterable[Any] | None,
) -> Iterator[Slice]:
    """The slices still to come of a batch being continued."""
    size, repo = _slice_size(options, machine), machine.repository
    start = int(position.get("index", 0))
    source = batch.filter if isinstance(batch.filter, dict) else {}
    limit = repo.payload_max_bytes
    if source.get("inputs") == "file":
        path, fmt = Path(source["path"]), source["format"]
        items = read_inputs(path, input_format=fmt, max_chars=max_chars(limit))
        later = itertools.dropwhile(lambda item: item[0] < start, items)
        return _input_slices(later, options, batch.id, size, True, limit)
    if source.get("inputs") == "iterable":
        if inputs is None:
            raise ValueError(
                f"batch {batch.id} read its inputs from a Python iterable: pass the same "
                "inputs again (inputs=...) to continue it"
            )
        rest = itertools.islice(_numbered(inputs), start, None)
        return _input_slices(rest, options, batch.id, size, True, limit)
    flt = _filter_from(source)
    return _source_slices(repo, options, flt, batch.id, size, position)


# -- execute_batch: sources ----------------------------------------------------------


def _source_filter(
    flt: ExecutionFilter, machine: str, options: BatchOptions, started: datetime
) -> ExecutionFilter:
    # Sources must not include executions this batch creates (same machine, same
    # status filter): only those started before the batch are read.
    before = flt.started_before if flt.started_before is not None else started
    return replace(
        flt,
        started_before=min(before, started),
        unlinked_to=machine if options.unique else flt.unlinked_to,
        cursor=None,
    )


def _jsonable(flt: ExecutionFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(flt).items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple | list | frozenset | set):
            value = sorted(str(v) for v in value)
        out[key] = value
    return out


def _filter_from(stored: dict[str, Any]) -> ExecutionFilter:
    """The filter a batch stored (see ``_jsonable``), to read its sources again."""
    names = {f.name for f in fields(ExecutionFilter)} - {"limit", "cursor", "descending"}
    values: dict[str, Any] = {k: v for k, v in stored.items() if k in names}
    for key in ("started_after", "started_before"):
        if isinstance(values.get(key), str):
            values[key] = datetime.fromisoformat(values[key])
    status = values.get("status")
    if isinstance(status, list):
        values["status"] = tuple(ExecutionStatus(s) for s in status)
    return ExecutionFilter(**values)


def _source_slices(
    repo: Repository,
    options: BatchOptions,
    flt: ExecutionFilter,
    batch_id: str,
    size: int,
    position: dict[str, Any],
) -> Iterator[Slice]:
    """Pages of sources as slices; the position is the keyset cursor after each."""
    if position.get("read_all"):
        return
    cursor, index = position.get("cursor"), int(position.get("index", 0))
    while True:
        page = repo.list_executions(replace(flt, limit=size, cursor=cursor))
        if not page.items:
            return
        rows, missing = _new_executions(repo, options, list(page.items), batch_id)
        index, cursor = index + len(page.items), page.next_cursor
        if missing:
            log.info(
                "sources without output skipped", extra={"action": "batch_skip", "count": missing}
            )
        after = {"index": index, "cursor": cursor, "read_all": cursor is None}
        yield Slice(rows=rows, read=len(page.items), missing=missing, position=after)
        if cursor is None:
            return


def _new_executions(
    repo: Repository, options: BatchOptions, sources: list[Execution], batch_id: str
) -> tuple[list[NewExecution], int]:
    """One NewExecution per source that has the output to chain from."""
    if options.source_state_name is not None:
        outputs = repo.state_outputs(
            [s.id for s in sources], options.source_state_name, event_type="StateSucceeded"
        )
    else:
        outputs = {s.id: s.output for s in sources if s.status == ExecutionStatus.SUCCEEDED}
    transform = _transformer(options)
    rows = [
        NewExecution(
            name=f"{options.name_prefix}-{source.id}",
            input=transform(outputs[source.id]) if transform else outputs[source.id],
            priority=priority_level(options.priority),
            batch_id=batch_id,
            source_execution_id=source.id,
            source_state_name=options.source_state_name,
        )
        for source in sources
        if source.id in outputs
    ]
    return rows, len(sources) - len(rows)


def _transformer(options: BatchOptions) -> Callable[[Any], Any] | None:
    name = options.input_transformer
    return input_transformers.get(name) if name else None


# -- execute_bulk: inputs --------------------------------------------------------------


def _numbered(inputs: Iterable[Any]) -> Iterator[tuple[int, str, Any]]:
    for index, value in enumerate(inputs):
        yield index, f"element {index}", value


def _input_slices(
    items: Iterable[tuple[int, str, Any]],
    options: BatchOptions,
    batch_id: str,
    size: int,
    check: bool,
    limit: int,
) -> Iterator[Slice]:
    """Numbered inputs as slices of ``size`` executions named ``{name_prefix}-{index}``."""
    transform, level = _transformer(options), priority_level(options.priority)
    rows: list[NewExecution] = []
    after = 0
    for index, where, value in items:
        data = transform(value) if transform else value
        if check:
            check_payload(data, where, limit)
        name = f"{options.name_prefix}-{index}"
        rows.append(NewExecution(name=name, input=data, priority=level, batch_id=batch_id))
        after = index + 1
        if len(rows) >= size:
            yield Slice(rows=rows, read=len(rows), missing=0, position={"index": after})
            rows = []
    if rows:
        yield Slice(rows=rows, read=len(rows), missing=0, position={"index": after})


# -- local mode ------------------------------------------------------------------------


class _LocalRun:
    """mode="local": run created executions in this process, ``concurrency`` at a time.

    Between executions it asks the leader where the batch stands (``look``): while
    the batch is PAUSED it starts nothing, once it is CANCELLED it starts nothing
    more. An execution a pause held before it could be claimed is run once the
    batch is resumed.
    """

    def __init__(
        self,
        machine: StateMachine,
        options: BatchOptions,
        callbacks: _Callbacks,
        result: BatchResult,
    ) -> None:
        self.machine, self.options, self.result = machine, options, result
        self.callbacks = callbacks
        self.unstarted: deque[str] = deque()
        self.look: Callable[[], BatchStatus] = lambda: BatchStatus.RUNNING

    def run(self, ids: list[str]) -> int:
        self.unstarted = deque(ids)
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            running: set[Future[tuple[str, Execution | None]]] = set()
            while self.unstarted or running:
                status = self.look()
                if status == BatchStatus.CANCELLED:
                    self.unstarted.clear()  # the cancel aborted them
                elif status != BatchStatus.PAUSED:
                    while self.unstarted and len(running) < self.options.concurrency:
                        running.add(pool.submit(self.one, self.unstarted.popleft()))
                if not running:
                    if self.unstarted:
                        time.sleep(self.options.poll_interval)
                    continue
                finished, running = wait(
                    running, timeout=self.options.poll_interval, return_when=FIRST_COMPLETED
                )
                for future in finished:
                    self.after(*future.result())
        return 0

    def one(self, execution_id: str) -> tuple[str, Execution | None]:
        if self.callbacks.on_start is not None:
            self.callbacks.on_start(self.machine.repository.get_execution(execution_id))
        return execution_id, self.machine.runner.advance(execution_id)

    def after(self, execution_id: str, execution: Execution | None) -> None:
        if execution is None:
            if self._held(execution_id):
                self.unstarted.appendleft(execution_id)  # paused before it was claimed
            return
        source = execution.source_execution_id or ""
        self.result.results.append((source, execution.id, str(execution.status)))
        if self.callbacks.on_complete is not None:
            self.callbacks.on_complete(execution)
        failed = execution.status in TERMINAL_STATUSES - {ExecutionStatus.SUCCEEDED}
        if self.options.stop_on_error and failed:
            raise _Stopped

    def _held(self, execution_id: str) -> bool:
        """Whether an execution this run could not claim is still ours to start.

        A pause holds it (PENDING with a hold owner); a resume that came between
        the failed claim and this look has already released it (PENDING, no
        owner). Either way it goes back in the queue, or it would never run.
        """
        row = self.machine.repository.get_execution(execution_id)
        owner = row.lease_owner or ""
        return row.status == ExecutionStatus.PENDING and (
            not owner or owner.startswith(BATCH_HOLD_OWNER_PREFIX)
        )

    def abort_rest(self) -> None:
        """Abort executions created but never started (stop_on_error)."""
        for execution_id in self.unstarted:
            self.machine.repository.stop_execution(
                execution_id, error="BatchStopped", cause="an earlier execution of the batch failed"
            )
        self.unstarted = deque()


__all__ = [
    "BatchOptions",
    "BatchProgress",
    "BatchResult",
    "BulkInputError",
    "Callback",
    "ControlOptions",
    "InputFormat",
    "Mode",
    "Priority",
    "Publisher",
    "check_inputs",
    "check_options",
    "continue_batch",
    "detect_format",
    "execute_batch",
    "execute_bulk",
    "read_inputs",
    "stored_options",
]
