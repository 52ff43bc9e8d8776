"""Batches: one execution per source execution (``execute_batch``) or input (``execute_bulk``).

A batch is led by the process that starts it (see :mod:`orchestrator.batch.leader`):
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
(:mod:`orchestrator.batch.inputs`). A file is checked from end to end before
anything is created, so a malformed file creates nothing; the error names the
line (and, in an array, the element).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.batch.inputs import (
    InputFormat,
    check_inputs,
    detect_format,
    max_chars,
    read_inputs,
)
from orchestrator.batch.leader import (
    DEFAULT_LEADER_TIMEOUT,
    LEADING,
    Dispatch,
    Leader,
    Priority,
    Slice,
)
from orchestrator.batch.local import Callbacks, LocalRun, Stopped
from orchestrator.batch.options import (
    BatchOptions,
    Callback,
    Machine,
    check_options,
    stored_options,
)
from orchestrator.batch.result import BatchResult
from orchestrator.batch.sources import (
    filter_from,
    input_slices,
    jsonable,
    numbered,
    source_filter,
    source_slices,
)
from orchestrator.distributed.labels import publish_labels
from orchestrator.distributed.publish import Publisher
from orchestrator.errors import BulkInputError, LeadLost
from orchestrator.store import Batch, ExecutionFilter, Repository
from orchestrator.types import BatchStatus

log = logging.getLogger("orchestrator.batch")

# -- entry points ----------------------------------------------------------------------


def execute_batch(
    machine: Machine,
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
    flt = source_filter(flt, machine.name, options, datetime.now(UTC))
    owner = _owner()
    batch = repo.create_batch(
        machine.version_record.state_machine_id,
        filter=jsonable(flt),
        options=_stored(options, machine),
        leader=owner,
        position={"index": 0},
    )
    slices = source_slices(repo, options, flt, batch.id, _slice_size(options, machine), {})
    callbacks = Callbacks(on_start=on_execution_start, on_complete=on_execution_complete)
    return _lead(machine, batch, options, slices, publisher, callbacks, owner=owner)


def execute_bulk(
    machine: Machine,
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
        source, items = {"inputs": "iterable"}, numbered(inputs)
    owner = _owner()
    batch = repo.create_batch(
        machine.version_record.state_machine_id,
        filter=source,
        options=_stored(options, machine),
        leader=owner,
        position={"index": 0},
    )
    check = source["inputs"] == "iterable" or options.input_transformer is not None
    slices = input_slices(items, options, batch.id, _slice_size(options, machine), check, limit)
    callbacks = Callbacks(on_start=on_execution_start, on_complete=on_execution_complete)
    return _lead(machine, batch, options, slices, publisher, callbacks, owner=owner)


def continue_batch(
    machine: Machine,
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
    callbacks = Callbacks(on_start=on_execution_start, on_complete=on_execution_complete)
    return _lead(machine, taken, options, slices, publisher, callbacks, owner=owner, adopt=orphans)


# -- the leader's run -----------------------------------------------------------------


def _lead(
    machine: Machine,
    batch: Batch,
    options: BatchOptions,
    slices: Iterator[Slice],
    publisher: Publisher | None,
    callbacks: Callbacks,
    *,
    owner: str,
    adopt: list[tuple[str, int]] | None = None,
) -> BatchResult:
    repo = machine.repository
    result = BatchResult(batch_id=batch.id, repository=repo)
    local = LocalRun(machine, options, callbacks, result)
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
    except Stopped:
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
        # Flower shows which machine and batch each run message is for.
        with publish_labels(state_machine=machine, batch_id=batch_id):
            return publisher(ids, priority)

    return publish


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _stored(options: BatchOptions, machine: Machine) -> dict[str, Any]:
    return {**asdict(options), "version_id": machine.version_record.id}


def _check_version(batch: Batch, machine: Machine) -> None:
    stored = batch.options.get("version_id") if isinstance(batch.options, dict) else None
    if batch.state_machine_id != machine.version_record.state_machine_id or (
        stored is not None and stored != machine.version_record.id
    ):
        raise ValueError(
            f"batch {batch.id} runs another state machine or version than "
            f"{machine.name} version {machine.version}"
        )


def _slice_size(options: BatchOptions, machine: Machine) -> int:
    return options.micro_batch_size or machine.settings.page_size


def _slices_from(
    machine: Machine,
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
        return input_slices(later, options, batch.id, size, True, limit)
    if source.get("inputs") == "iterable":
        if inputs is None:
            raise ValueError(
                f"batch {batch.id} read its inputs from a Python iterable: pass the same "
                "inputs again (inputs=...) to continue it"
            )
        rest = itertools.islice(numbered(inputs), start, None)
        return input_slices(rest, options, batch.id, size, True, limit)
    flt = filter_from(source)
    return source_slices(repo, options, flt, batch.id, size, position)


__all__ = ["continue_batch", "execute_batch", "execute_bulk"]
