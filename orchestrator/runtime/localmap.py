"""A Distributed Map under ``orchestrator.run``: children run in memory, in this process.

Nothing is stored: each item (or batch) runs the ItemProcessor through the same
in-memory driver, on a thread pool as wide as MaxConcurrency allows (at most
``max_workers``). Items come from the state input or the ItemReader
(``runtime/mapitems.py``); the tolerated failure, the result array or the
ResultWriter's files behave as with stored children.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.asl import errors as asl_errors
from orchestrator.asl.errors import StatesError
from orchestrator.asl.interpreter import Event, RunMap, TaskFailed, TaskSucceeded
from orchestrator.runtime import mapitems
from orchestrator.settings import Settings, get_settings

EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"


@dataclass(slots=True)
class ChildOutcome:
    """How one in-memory child ended."""

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


#: Runs the ItemProcessor on one input (with an execution name) to its end.
RunChild = Callable[[Any, str], ChildOutcome]


def run_map_in_memory(
    command: RunMap, run_child: RunChild, *, max_workers: int, settings: Settings | None = None
) -> Event:
    """Run a Distributed Map's children here; return the Map's outcome as an event."""
    settings = settings or get_settings()
    run_id = str(uuid.uuid4())
    try:
        inputs = list(_inputs(command, settings))
    except StatesError as exc:
        return TaskFailed(path=command.path, token=command.token, error=exc.name, cause=exc.cause)
    width = max(1, min(max_workers, command.max_concurrency or max_workers))
    outcomes: dict[int, ChildOutcome] = {}
    failed = False
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="map-local") as pool:
        todo = iter(enumerate(inputs))
        running: dict[Future[ChildOutcome], int] = {}
        while True:
            while not failed and len(running) < width:
                nxt = next(todo, None)
                if nxt is None:
                    break
                index, data = nxt
                running[pool.submit(run_child, data, f"{run_id}:{index}")] = index
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                outcomes[running.pop(future)] = future.result()
            failed = failed or _exceeded(command, outcomes, len(inputs))
    return _result(command, settings, run_id, inputs, outcomes, failed)


def _inputs(command: RunMap, settings: Settings) -> Iterator[Any]:
    mapitems.count_children(command, settings)  # a malformed object fails before any child
    return mapitems.child_inputs(command, settings)


def _exceeded(command: RunMap, outcomes: dict[int, ChildOutcome], total: int) -> bool:
    failures = sum(1 for o in outcomes.values() if o.status != "SUCCEEDED")
    count, percent = command.tolerated_failure_count, command.tolerated_failure_percentage
    if count is None and percent is None:
        return failures > 0
    over_count = count is not None and failures > count
    over_percent = percent is not None and total > 0 and failures * 100.0 / total > percent
    return over_count or over_percent


def _result(
    command: RunMap,
    settings: Settings,
    run_id: str,
    inputs: list[Any],
    outcomes: dict[int, ChildOutcome],
    failed: bool,
) -> Event:
    writer = command.writer or {}
    output: Any
    try:
        if writer.get("Resource"):
            output = mapitems.write_results(
                settings, writer, run_id, lambda: _entries(run_id, inputs, outcomes)
            )
        else:
            transformation = writer.get("WriterConfig", {}).get("Transformation", "COMPACT")
            output = [
                value
                for index in range(len(inputs))
                if index in outcomes
                for value in _values(outcomes[index], transformation)
            ]
            size = len(json.dumps(output, separators=(",", ":")).encode())
            if not failed and size > settings.payload_max_bytes:
                raise StatesError(
                    asl_errors.DATA_LIMIT_EXCEEDED,
                    f"The Map Run's result is {size} bytes, more than the payload limit",
                )
    except StatesError as exc:
        return TaskFailed(path=command.path, token=command.token, error=exc.name, cause=exc.cause)
    if failed:
        return TaskFailed(
            path=command.path,
            token=command.token,
            error=asl_errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
            cause=EXCEEDED_CAUSE,
        )
    return TaskSucceeded(path=command.path, token=command.token, output=output)


def _values(outcome: ChildOutcome, transformation: str) -> list[Any]:
    if outcome.status != "SUCCEEDED":  # a tolerated failure, as an inline Map holds it
        return [{"Error": outcome.error, "Cause": outcome.cause}]
    return mapitems.transform(outcome.output, transformation)


def _entries(
    run_id: str, inputs: list[Any], outcomes: dict[int, ChildOutcome]
) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    for index, data in enumerate(inputs):
        outcome = outcomes.get(index, ChildOutcome(status="PENDING"))
        entry: dict[str, Any] = {
            "ExecutionArn": f"{run_id}:{index}",
            "Name": f"{run_id}:{index}",
            "Input": json.dumps(data),
            "InputDetails": {"Included": True},
            "StartDate": now,
            "Status": outcome.status,
        }
        if outcome.status == "SUCCEEDED":
            entry["Output"] = json.dumps(outcome.output)
            entry["OutputDetails"] = {"Included": True}
        elif outcome.error is not None:
            entry.update(Error=outcome.error, Cause=outcome.cause)
        yield entry


__all__ = ["ChildOutcome", "run_map_in_memory"]
