"""GetExecutionHistory: the stored history mapped onto AWS's event types.

The store keeps one row per finished state (or failed attempt), with the time
the state was entered, its input, output, error and attempt. Each row becomes
the events AWS shows for it, in AWS's order:

- an entry (``<Type>StateEntered``, plus ``ParallelStateStarted`` /
  ``MapStateStarted``), placed just before the first event of the state's own work;
- each attempt of a Task: ``TaskScheduled``/``TaskStarted`` (or
  ``LambdaFunctionScheduled``/``LambdaFunctionStarted``) at the time the runner
  called its handler (``history.started_at``; for a callback answered later, when
  its token was registered), then ``TaskSucceeded``/``TaskFailed``;
- its end (``TaskSucceeded``/``TaskFailed``, ``<Type>StateExited``,
  ``ParallelStateSucceeded``/``MapStateSucceeded``, ``...Failed``);
- rows of one state with the same path and entry time are one entry and its retries;
- a Parallel or Map state opens before the first event of a state inside it
  (the definition says which states are inside which, the row's ``path`` which
  branch or iteration it ran in); a Map iteration starts before its first state
  and succeeds at an end state (``MapIteration*``, with the index from the path;
  rows stored before paths were count the iterations in order instead);
- a Task parked on its task token has no row yet: its token (state, attempt,
  creation time) gives its entry, ``TaskScheduled`` and ``TaskStarted``;
- ``ExecutionStarted`` and ``ExecutionSucceeded``/``Failed``/``Aborted``/
  ``TimedOut`` come from the execution row.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.aws.context import Aws, action, dump, epoch, page_size, text
from orchestrator.aws.errors import AwsError
from orchestrator.aws.executions import find
from orchestrator.client import Execution, HistoryEvent, TaskToken
from orchestrator.types import ExecutionStatus, TaskTokenStatus

_ENDED = {
    ExecutionStatus.SUCCEEDED: "ExecutionSucceeded",
    ExecutionStatus.FAILED: "ExecutionFailed",
    ExecutionStatus.ABORTED: "ExecutionAborted",
    ExecutionStatus.TIMED_OUT: "ExecutionTimedOut",
}
_CONTAINERS = ("Parallel", "Map")


@dataclass
class StateInfo:
    """What the definition says about one state name."""

    type: str
    resource: str | None = None
    #: Enclosing Parallel/Map states, outermost first.
    containers: tuple[str, ...] = ()
    #: For a Map state: its processor's StartAt and end states.
    starts: str | None = None
    ends: frozenset[str] = frozenset()
    timeout: int | None = None
    heartbeat: int | None = None
    #: For a Map state: its ItemsPath (JSONPath) or Items.
    items_path: str | None = None


def describe_states(definition: Any, containers: tuple[str, ...] = ()) -> dict[str, StateInfo]:
    """Every state name of a definition (nested ones too) with its facts."""
    found: dict[str, StateInfo] = {}
    for name, raw in (definition.get("States") or {}).items():
        if not isinstance(raw, dict):
            continue
        info = StateInfo(
            type=str(raw.get("Type", "Task")),
            resource=raw.get("Resource") if isinstance(raw.get("Resource"), str) else None,
            containers=containers,
            timeout=raw.get("TimeoutSeconds")
            if isinstance(raw.get("TimeoutSeconds"), int)
            else None,
            heartbeat=raw.get("HeartbeatSeconds")
            if isinstance(raw.get("HeartbeatSeconds"), int)
            else None,
        )
        if isinstance(raw.get("ItemsPath"), str):
            info.items_path = raw["ItemsPath"]
        found.setdefault(name, info)
        inner = (*containers, name)
        for branch in raw.get("Branches") or ():
            if isinstance(branch, dict):
                _merge(found, describe_states(branch, inner))
        processor = raw.get("ItemProcessor") or raw.get("Iterator")
        if isinstance(processor, dict):
            info.starts = processor.get("StartAt")
            info.ends = _end_states(processor)
            _merge(found, describe_states(processor, inner))
    return found


def _merge(into: dict[str, StateInfo], more: dict[str, StateInfo]) -> None:
    for name, info in more.items():
        into.setdefault(name, info)


def _end_states(machine: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        name
        for name, raw in (machine.get("States") or {}).items()
        if isinstance(raw, dict) and (raw.get("End") is True or raw.get("Type") == "Succeed")
    )


def _resource(resource: str | None) -> tuple[str, str, bool]:
    """(resourceType, resource, is a plain Lambda function ARN) as AWS reports them."""
    if resource is None:
        return "unknown", "unknown", False
    if resource.startswith("arn:") and ":lambda:" in resource and ":function:" in resource:
        return "lambda", resource, True
    parts = resource.split(":")
    if resource.startswith("arn:") and len(parts) >= 7 and parts[2] == "states" and not parts[4]:
        return parts[5], ":".join(parts[6:]), False
    return "orchestrator", resource, False


@dataclass
class _Builder:
    """Turns stored rows into AWS events, in order."""

    execution: Execution
    states: dict[str, StateInfo]
    role_arn: str | None
    region: str
    data: bool
    #: The execution's task tokens (a Task parked on one has no row yet).
    tokens: list[TaskToken] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Parallel/Map entries opened before their own row came.
    pending: set[_Key] = field(default_factory=set)
    #: Entries whose last row was a failed attempt that will be retried.
    #: (when the failed attempt ended, for rows that do not say when the next started).
    retrying: dict[_Key, datetime] = field(default_factory=dict)
    #: Map iterations started: (the Map entry, the iteration index).
    started: set[tuple[_Key, int]] = field(default_factory=set)
    #: Rows without a recorded path (before 0009_aws_api): iterations counted per Map.
    counted: dict[str, int] = field(default_factory=dict)
    #: The rows, the positions of each state name's rows, and the row being mapped.
    rows: list[HistoryEvent] = field(default_factory=list)
    by_name: dict[str, list[int]] = field(default_factory=dict)
    position: int = 0

    def add(self, kind: str, when: datetime | None, details: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {
            "timestamp": epoch(when or self.execution.started_at),
            "type": kind,
            "id": len(self.events) + 1,
            "previousEventId": len(self.events),
        }
        if details is not None:
            key = kind[0].lower() + kind[1:]
            event[_DETAIL_KEYS.get(kind, key + "EventDetails")] = details
        self.events.append(event)

    def payload(self, name: str, value: Any) -> dict[str, Any]:
        if not self.data:
            return {}
        return {name: dump(value), f"{name}Details": {"truncated": False}}

    def build(self, rows: list[HistoryEvent]) -> list[dict[str, Any]]:
        ex = self.execution
        self.add(
            "ExecutionStarted",
            ex.started_at,
            {
                **self.payload("input", ex.input),
                **({"roleArn": self.role_arn} if self.role_arn else {}),
            },
        )
        self.by_name = {}
        for index, row in enumerate(rows):
            self.by_name.setdefault(row.state_name or "", []).append(index)
        self.rows = rows
        for index, row in enumerate(rows):
            self.position = index
            self.row(row)
        self.waiting()
        self.finish()
        return self.events

    def waiting(self) -> None:
        """A Task parked on its token (first attempt): entered, scheduled and started.

        A retry that waits has its entry already: only its attempt is added.
        """
        for token in self.tokens:
            if token.status != TaskTokenStatus.WAITING:
                continue
            retried = next((k for k in self.retrying if k[0] == token.state_name), None)
            if token.attempt and retried is None:
                continue
            if retried is not None:
                del self.retrying[retried]
            info = self.states.get(token.state_name) or StateInfo(type="Task")
            if retried is None:
                self.add("TaskStateEntered", token.created_at, {"name": token.state_name})
            kind, resource, _ = _resource(info.resource)
            scheduled = {"resourceType": kind, "resource": resource, "region": self.region}
            self.add("TaskScheduled", token.created_at, {**scheduled, "parameters": "{}"})
            self.add("TaskStarted", token.created_at, {"resourceType": kind, "resource": resource})

    def info(self, row: HistoryEvent) -> StateInfo:
        name = row.state_name or ""
        found = self.states.get(name)
        return found or StateInfo(type=row.state_type or "Task")

    def row(self, row: HistoryEvent) -> None:
        if row.state_name is None:
            return
        info = self.info(row)
        key = _key(row)
        if key in self.retrying:
            failed_at = self.retrying.pop(key)
            self.schedule(row, info, self.attempt_started(row) or failed_at)
        elif key in self.pending:
            self.pending.discard(key)
        else:
            self.open_containers(row, info)
            self.enter(row, info)
        self.close(row, info)
        if row.event_type == "StateRetrying":
            self.retrying[key] = row.recorded_at

    def open_containers(self, row: HistoryEvent, info: StateInfo) -> None:
        """Enter the Parallel/Map states around ``row`` (outermost first) and its iterations."""
        path = _path(row)
        for level, outer in enumerate(info.containers):
            parent = self.parent(outer, None if path is None else path[:level])
            if parent is None:
                continue
            key = _key(parent)
            if key not in self.pending:
                self.pending.add(key)
                self.enter(parent, self.states[outer])
            owner = self.states[outer]
            if owner.type == "Map":
                self.iteration_start(row, key, level, owner)

    def parent(self, name: str, where: tuple[int, ...] | None) -> HistoryEvent | None:
        """The first row after the current one of the container ``name`` at ``where``."""
        indexes = self.by_name.get(name, [])
        for index in indexes[bisect.bisect_right(indexes, self.position) :]:
            found = self.rows[index]
            if where is None or _path(found) == where:
                return found
        return None

    def iteration_start(
        self, row: HistoryEvent, map_key: _Key, level: int, owner: StateInfo
    ) -> None:
        path = _path(row)
        if path is not None and len(path) > level:
            index = path[level]
        elif (
            row.state_name == owner.starts
            and len(row_containers := self.info(row).containers) == level + 1
        ):
            index = self.counted.get(row_containers[-1], 0)
            self.counted[row_containers[-1]] = index + 1
        else:
            return
        if (map_key, index) not in self.started:
            self.started.add((map_key, index))
            self.add("MapIterationStarted", row.entered_at, {"name": map_key[0], "index": index})

    def enter(self, row: HistoryEvent, info: StateInfo) -> None:
        entered = {"name": row.state_name, **self.payload("input", row.input)}
        self.add(f"{info.type}StateEntered", row.entered_at, entered)
        if info.type == "Parallel":
            self.add("ParallelStateStarted", row.entered_at)
        elif info.type == "Map":
            length = _items_length(row.input, info.items_path)
            self.add(
                "MapStateStarted", row.entered_at, {"length": length} if length is not None else {}
            )
        elif info.type == "Task":
            self.schedule(row, info, self.attempt_started(row) or row.entered_at)

    def attempt_started(self, row: HistoryEvent) -> datetime | None:
        """When the attempt's handler was called: recorded on the row by the runner, or
        (a callback answered in a later advance) when its task token was registered."""
        if row.started_at is not None:
            return row.started_at
        for token in self.tokens:
            if token.state_name == row.state_name and token.attempt == row.attempt:
                return token.created_at
        return None

    def schedule(self, row: HistoryEvent, info: StateInfo, when: datetime | None) -> None:
        kind, resource, is_lambda = _resource(info.resource)
        if is_lambda:
            self.add(
                "LambdaFunctionScheduled",
                when,
                {"resource": resource, **self.payload("input", row.input)}
                | ({"timeoutInSeconds": info.timeout} if info.timeout else {}),
            )
            self.add("LambdaFunctionStarted", when)
            return
        scheduled: dict[str, Any] = {
            "resourceType": kind,
            "resource": resource,
            "region": self.region,
        }
        scheduled["parameters"] = dump(row.input) if self.data else "{}"
        if info.timeout:
            scheduled["timeoutInSeconds"] = info.timeout
        if info.heartbeat:
            scheduled["heartbeatInSeconds"] = info.heartbeat
        self.add("TaskScheduled", when, scheduled)
        self.add("TaskStarted", when, {"resourceType": kind, "resource": resource})

    def close(self, row: HistoryEvent, info: StateInfo) -> None:
        if info.type == "Task":
            self.close_task(row, info)
        elif info.type in _CONTAINERS and row.event_type == "StateSucceeded":
            self.add(f"{info.type}StateSucceeded", row.recorded_at)
        elif info.type in _CONTAINERS:
            self.add(f"{info.type}StateFailed", row.recorded_at)
        if row.event_type in ("StateSucceeded", "StateCaught") and info.type != "Fail":
            exited = {"name": row.state_name, **self.payload("output", row.output)}
            self.add(f"{info.type}StateExited", row.recorded_at, exited)
            self.iteration_end(row, info)

    def close_task(self, row: HistoryEvent, info: StateInfo) -> None:
        kind, resource, is_lambda = _resource(info.resource)
        if row.event_type == "StateSucceeded":
            if is_lambda:
                self.add(
                    "LambdaFunctionSucceeded", row.recorded_at, self.payload("output", row.output)
                )
            else:
                done = {
                    "resourceType": kind,
                    "resource": resource,
                    **self.payload("output", row.output),
                }
                self.add("TaskSucceeded", row.recorded_at, done)
            return
        failure = _failure(row)
        if is_lambda:
            self.add("LambdaFunctionFailed", row.recorded_at, failure)
        elif row.error == "States.Timeout":
            self.add(
                "TaskTimedOut",
                row.recorded_at,
                {"resourceType": kind, "resource": resource, **failure},
            )
        else:
            self.add(
                "TaskFailed",
                row.recorded_at,
                {"resourceType": kind, "resource": resource, **failure},
            )

    def iteration_end(self, row: HistoryEvent, info: StateInfo) -> None:
        """An end state directly inside a Map iteration ends the iteration."""
        if not info.containers:
            return
        name = info.containers[-1]
        owner = self.states.get(name)
        if owner is None or owner.type != "Map" or row.state_name not in owner.ends:
            return
        path = _path(row)
        index = path[-1] if path else self.counted.get(name, 1) - 1
        self.add("MapIterationSucceeded", row.recorded_at, {"name": name, "index": index})

    def finish(self) -> None:
        ex = self.execution
        kind = _ENDED.get(ex.status)
        if kind is None:
            return
        if kind == "ExecutionSucceeded":
            self.add(kind, ex.ended_at, self.payload("output", ex.output))
        else:
            self.add(kind, ex.ended_at, _failure(ex))


#: One state entry: its name, where it ran, and when it was entered.
_Key = tuple[str, tuple[int, ...] | None, datetime | None]


def _path(row: HistoryEvent) -> tuple[int, ...] | None:
    """Where a row's state ran (None: recorded before paths were)."""
    return None if row.path is None else tuple(row.path)


def _key(row: HistoryEvent) -> _Key:
    return (row.state_name or "", _path(row), row.entered_at)


def _items_length(data: Any, path: str | None) -> int | None:
    """How many items a Map state's input holds at a plain ``$.a.b`` ItemsPath."""
    found = data
    if path not in (None, "$"):
        if not path or not path.startswith("$.") or "[" in path or "*" in path:
            return None
        for key in path[2:].split("."):
            if not isinstance(found, dict) or key not in found:
                return None
            found = found[key]
    return len(found) if isinstance(found, list | dict) else None


def _failure(row: HistoryEvent | Execution) -> dict[str, Any]:
    return {k: v for k, v in (("error", row.error), ("cause", row.cause)) if v is not None}


#: Event types whose details key is not ``<type>EventDetails`` in lower camel case.
_DETAIL_KEYS = {
    **{
        f"{t}StateEntered": "stateEnteredEventDetails"
        for t in ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map", "Message")
    },
    **{
        f"{t}StateExited": "stateExitedEventDetails"
        for t in ("Pass", "Task", "Choice", "Wait", "Succeed", "Parallel", "Map", "Message")
    },
    "MapIterationStarted": "mapIterationStartedEventDetails",
    "MapIterationSucceeded": "mapIterationSucceededEventDetails",
}


def aws_events(aws: Aws, execution: Execution, data: bool) -> list[dict[str, Any]]:
    """Every AWS event of an execution, oldest first."""
    version = aws.client.version(execution.version_id)
    facts = aws.facts(version.state_machine_id)
    builder = _Builder(
        execution=execution,
        states=describe_states(version.definition),
        role_arn=facts.role_arn if facts else None,
        region=aws.arns.region,
        data=data,
        tokens=aws.client.execution(execution.id).task_tokens(),
    )
    rows = aws.client.execution(execution.id).history()
    return builder.build(list(rows))


@action("GetExecutionHistory")
def get_execution_history(aws: Aws, body: dict[str, Any]) -> dict[str, Any]:
    """The events of an execution (``reverseOrder``, ``includeExecutionData``, paging)."""
    execution = find(aws, text(body, "executionArn"))
    data = body.get("includeExecutionData")
    events = aws_events(aws, execution, data is None or bool(data))
    if body.get("reverseOrder"):
        events.reverse()
    size = page_size(body)
    token = body.get("nextToken")
    start = 0
    if token is not None:
        if not isinstance(token, str) or not token.startswith("e") or not token[1:].isdigit():
            raise AwsError("InvalidToken", f"Invalid Token: '{token}'")
        start = int(token[1:])
    page: dict[str, Any] = {"events": events[start : start + size]}
    if start + size < len(events):
        page["nextToken"] = f"e{start + size}"
    return page


__all__ = ["StateInfo", "aws_events", "describe_states"]
