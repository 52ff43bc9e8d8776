"""Where a batch's executions come from: source executions read page by page
(``execute_batch``), or numbered inputs (``execute_bulk``), turned into slices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields, replace
from datetime import datetime
from typing import Any

from orchestrator.batch.inputs import check_payload
from orchestrator.batch.leader import Slice
from orchestrator.batch.options import BatchOptions
from orchestrator.distributed.routing import priority_level
from orchestrator.handlers import input_transformers
from orchestrator.store import Execution, ExecutionFilter, NewExecution, Repository
from orchestrator.types import ExecutionStatus

log = logging.getLogger("orchestrator.batch")

# -- execute_batch: sources ----------------------------------------------------------


def source_filter(
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


def jsonable(flt: ExecutionFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(flt).items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple | list | frozenset | set):
            value = sorted(str(v) for v in value)
        out[key] = value
    return out


def filter_from(stored: dict[str, Any]) -> ExecutionFilter:
    """The filter a batch stored (see ``jsonable``), to read its sources again."""
    names = {f.name for f in fields(ExecutionFilter)} - {"limit", "cursor", "descending"}
    values: dict[str, Any] = {k: v for k, v in stored.items() if k in names}
    for key in ("started_after", "started_before"):
        if isinstance(values.get(key), str):
            values[key] = datetime.fromisoformat(values[key])
    status = values.get("status")
    if isinstance(status, list):
        values["status"] = tuple(ExecutionStatus(s) for s in status)
    return ExecutionFilter(**values)


def source_slices(
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
    transform = transformer(options)
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


def transformer(options: BatchOptions) -> Callable[[Any], Any] | None:
    name = options.input_transformer
    return input_transformers.get(name) if name else None


# -- execute_bulk: inputs --------------------------------------------------------------


def numbered(inputs: Iterable[Any]) -> Iterator[tuple[int, str, Any]]:
    for index, value in enumerate(inputs):
        yield index, f"element {index}", value


def input_slices(
    items: Iterable[tuple[int, str, Any]],
    options: BatchOptions,
    batch_id: str,
    size: int,
    check: bool,
    limit: int,
) -> Iterator[Slice]:
    """Numbered inputs as slices of ``size`` executions named ``{name_prefix}-{index}``."""
    transform, level = transformer(options), priority_level(options.priority)
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


__all__ = [
    "filter_from",
    "input_slices",
    "jsonable",
    "numbered",
    "source_filter",
    "source_slices",
    "transformer",
]
