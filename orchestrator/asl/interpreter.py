# Over 600 lines on purpose: step() and every state's handling share the private _Run and frame
# machinery; to split next: data flow (paths, templates, variables), Map/Parallel frames,
# Retry/Catch delivery.
"""Step an execution: given a definition and a cursor, decide what happens next.

``step`` never carries anything out. It returns a :class:`StepResult` holding the
new cursor, the history events of the states that finished, and one *command*:

* :class:`RunTask` - call the handler for a resource, then step again with
  :class:`TaskSucceeded` or :class:`TaskFailed`;
* :class:`WaitUntil` - a Wait state or a retry back-off; step again with
  :class:`TimerFired` once the time has come;
* :class:`WaitForMessage` - a Message state; step again with :class:`MessageReceived`
  (or :class:`TimerFired` when its timeout passes);
* :class:`Continue` - a state finished; checkpoint and step again;
* :class:`Idle` - every branch waits for an event: nothing to do until one comes;
* :class:`Succeeded` / :class:`Failed` - the execution is over.

The cursor is plain JSON (a tree of *frames*: one per running state machine, branch
or Map iteration), so it is the checkpoint: store it after each step and a crashed
worker resumes where the last commit left it. Every command and event carries the
frame's ``path`` (branch/iteration indexes from the root) and a ``token`` that
changes with every dispatch, so a late or duplicated event is ignored.

Ownership: ``step`` and ``reissue`` leave the cursor they are given untouched; ``step``
returns a new one. Only the frame tree is copied (the data in it is never updated in
place, only replaced), so a step costs no more than the frames it carries.

Limits: an execution fails with ``States.Runtime`` once it has recorded more than
``max_events`` history events (AWS: 25,000), whichever driver steps it, so a state
that loops to itself ends. Randomness (``JitterStrategy: FULL``, ``States.MathRandom``,
``States.UUID``) comes only from the ``rng`` passed in; without one, a generator seeded
from the cursor (its ``seed``, execution id, sequence and ``now``), so a replay of the
same step draws the same numbers.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.asl import distributed, errors, jsonata
from orchestrator.asl.errors import StatesError
from orchestrator.asl.limits import (
    EXPRESSION_TIMEOUT_MS,
    MAX_EVENTS_PER_EXECUTION,
    MAX_MAP_ITEMS,
    MAX_SECONDS,
    MAX_VARIABLE_BYTES,
    MAX_VARIABLES_BYTES,
    describe,
    json_problem,
)
from orchestrator.asl.model import (
    ChoiceState,
    Definition,
    FailState,
    MapState,
    MessageState,
    ParallelState,
    PassState,
    State,
    SucceedState,
    TaskState,
    WaitState,
)
from orchestrator.asl.parse import parse_timestamp
from orchestrator.asl.paths import Context, Path, PathNotFound, compact, put, select
from orchestrator.asl.retry import CatchDecision, RetryDecision, decide

FramePath = tuple[int, ...]
CURSOR_VERSION = 1

# Frame phases.
READY, TASK, WAIT, RETRY, MESSAGE, BRANCHES, DONE, FAILED = (
    "ready",
    "task",
    "wait",
    "retry",
    "message",
    "branches",
    "done",
    "failed",
)


# --- commands ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTask:
    """Call the handler of ``resource`` with ``input``; ``context`` is the ``$$`` object."""

    path: FramePath
    token: int
    state: str
    resource: str
    input: Any
    context: dict[str, Any]
    attempt: int
    timeout_seconds: float | None = None
    heartbeat_seconds: float | None = None
    #: ``.waitForTaskToken``: the token (``$$.Task.Token``). The handler's return value
    #: is not the result: the Task waits for TaskSucceeded/TaskFailed sent with it.
    task_token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitUntil:
    """Step again with TimerFired at ``until`` (epoch seconds); ``retry`` for back-offs."""

    path: FramePath
    token: int
    state: str
    until: float
    retry: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitForMessage:
    """Park until a message for (``correlation_key``, ``correlation_value``) arrives."""

    path: FramePath
    token: int
    state: str
    correlation_key: str
    correlation_value: Any
    timeout_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMap:
    """Run a Distributed Map's items as child executions (a Map Run); step again with
    TaskSucceeded (the Map's result) or TaskFailed, as for a Task.

    Everything is evaluated: ``items`` (from ItemsPath/Items; None when ``reader``
    reads them), the reader, batcher and writer (see ``asl.distributed.evaluate``),
    the limits. ``select(index, value)`` renders ItemSelector for one item (the
    identity without one).
    """

    path: FramePath
    token: int
    state: str
    execution_type: str
    label: str | None
    processor: Definition
    items: list[Any] | None
    reader: dict[str, Any] | None
    batcher: dict[str, Any] | None
    writer: dict[str, Any] | None
    max_concurrency: int
    tolerated_failure_percentage: float | None
    tolerated_failure_count: int | None
    select: Callable[[int, Any], Any] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Continue:
    """Progress was made; checkpoint and step again."""


@dataclass(frozen=True, slots=True)
class Idle:
    """Every running branch waits for an event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Succeeded:
    """The execution succeeded with ``output``."""

    output: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The execution failed (``timed_out`` for the execution's own TimeoutSeconds)."""

    error: str
    cause: str
    timed_out: bool = False


Command = RunTask | RunMap | WaitUntil | WaitForMessage | Continue | Idle | Succeeded | Failed
CONTINUE, IDLE = Continue(), Idle()


# --- events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSucceeded:
    """The handler of a RunTask returned ``output``."""

    path: FramePath
    token: int
    output: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    """The handler of a RunTask raised (or timed out) with an ASL error."""

    path: FramePath
    token: int
    error: str
    cause: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired:
    """The time of a WaitUntil (or a WaitForMessage timeout) has come."""

    path: FramePath
    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    """A correlated message arrived for a WaitForMessage."""

    path: FramePath
    token: int
    data: Any


Event = TaskSucceeded | TaskFailed | TimerFired | MessageReceived


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEvent:
    """One finished state (or failed attempt), as the history records it.

    ``status`` is ``succeeded``, ``failed``, ``retrying`` or ``caught``.
    """

    path: FramePath
    state: str
    type: str
    status: str
    input: Any
    output: Any = None
    error: str | None = None
    cause: str | None = None
    attempt: int = 0
    entered_at: float = 0.0
    exited_at: float = 0.0
    #: The workflow variables the state assigned (name -> value), or None.
    assigned: dict[str, Any] | None = None


_SET = {name: getattr(HistoryEvent, name).__set__ for name in HistoryEvent.__slots__}
_SET_PATH, _SET_STATE, _SET_TYPE, _SET_STATUS = (
    _SET["path"],
    _SET["state"],
    _SET["type"],
    _SET["status"],
)
_SET_INPUT, _SET_OUTPUT, _SET_ERROR, _SET_CAUSE = (
    _SET["input"],
    _SET["output"],
    _SET["error"],
    _SET["cause"],
)
_SET_ATTEMPT, _SET_ENTERED, _SET_EXITED, _SET_ASSIGNED = (
    _SET["attempt"],
    _SET["entered_at"],
    _SET["exited_at"],
    _SET["assigned"],
)


def _history_event(
    path: FramePath,
    state: State,
    status: str,
    input: Any,
    attempt: int,
    entered_at: float,
    exited_at: float,
    output: Any = None,
    error: str | None = None,
    cause: str | None = None,
    assigned: dict[str, Any] | None = None,
) -> HistoryEvent:
    """``HistoryEvent(...)`` at a fifth of the cost (one per transition, measured).

    The dataclass stays frozen; its generated ``__init__`` pays ``object.__setattr__``
    per field, this sets the slots directly. A test checks that it sets every field.
    """
    event: HistoryEvent = object.__new__(HistoryEvent)
    _SET_PATH(event, path)
    _SET_STATE(event, state.name)
    _SET_TYPE(event, state.type)
    _SET_STATUS(event, status)
    _SET_INPUT(event, input)
    _SET_OUTPUT(event, output)
    _SET_ERROR(event, error)
    _SET_CAUSE(event, cause)
    _SET_ATTEMPT(event, attempt)
    _SET_ENTERED(event, entered_at)
    _SET_EXITED(event, exited_at)
    _SET_ASSIGNED(event, assigned)
    return event


@dataclass(slots=True)
class StepResult:
    """What one step decided: the (updated) cursor, finished states and the command."""

    cursor: dict[str, Any]
    command: Command
    events: list[HistoryEvent] = field(default_factory=list)


# --- public entry points ----------------------------------------------------------


def start(
    defn: Definition, input: Any, *, now: float, seed: int | str | None = None
) -> dict[str, Any]:
    """The cursor of a new execution of ``defn`` with ``input``.

    Args:
        defn: the state machine.
        input: the execution input. A value that is not JSON (``NaN``, a date, a set,
            a lone surrogate, nested too deeply) gives a cursor that has already failed
            with ``States.Runtime``, saying where the input is wrong.
        now: epoch seconds.
        seed: stored in the cursor; the default randomness of every step derives from it.
    """
    cursor: dict[str, Any] = {
        "v": CURSOR_VERSION,
        "started": now,
        "root": _frame(defn.start_at, input, now),
    }
    if seed is not None:
        cursor["seed"] = seed
    found = json_problem(input)
    if found is not None:
        _fail_frame(cursor["root"], defn.start_at, errors.RUNTIME, _not_json("input", found), now)
        cursor["root"]["in"] = None
        return cursor
    reason = unsupported(defn)
    if reason is not None:
        _fail_frame(cursor["root"], defn.start_at, errors.RUNTIME, reason, now)
    return cursor


def unsupported(defn: Definition) -> str | None:
    """Why ``defn`` cannot run on this engine (a Distributed Map), or None if it can.

    Checked when an execution starts, so such a Map never runs quietly inline.
    """
    todo = [defn]
    while todo:
        machine = todo.pop()
        for state in machine.states.values():
            if isinstance(state, MapState):
                if state.unsupported is not None:
                    return f"State '{state.name}': {state.unsupported}"
                if state.processor is not None:
                    todo.append(state.processor)
            elif isinstance(state, ParallelState):
                todo.extend(state.branches)
    return None


def _not_json(what: str, found: tuple[str, str]) -> str:
    return f"The execution {what} is not JSON {describe(found)}"


def _frame(state: str, data: Any, now: float) -> dict[str, Any]:
    return {"s": state, "in": data, "ph": READY, "tok": 0, "at": now}


def execution_context(
    *,
    execution_id: str,
    name: str,
    input: Any,
    start_time: float,
    state_machine_id: str = "",
    state_machine_name: str = "",
    role_arn: str = "",
    redrive_count: int = 0,
) -> dict[str, Any]:
    """The static part of the ``$$`` context object (Execution and StateMachine)."""
    return {
        "Execution": {
            "Id": execution_id,
            "Input": input,
            "Name": name,
            "RoleArn": role_arn,
            "StartTime": iso(start_time),
            "RedriveCount": redrive_count,
        },
        "StateMachine": {"Id": state_machine_id, "Name": state_machine_name},
    }


def iso(epoch: float) -> str:
    """Epoch seconds as AWS prints times in the context object (UTC, milliseconds, Z)."""
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def step(
    defn: Definition,
    cursor: dict[str, Any],
    event: Event | None = None,
    *,
    now: float,
    context: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
    max_events: int = MAX_EVENTS_PER_EXECUTION,
    task_tokens: Callable[[], str] | None = None,
    expression_timeout_ms: int = EXPRESSION_TIMEOUT_MS,
    max_map_items: int = MAX_MAP_ITEMS,
) -> StepResult:
    """Advance the execution by one state (or apply one event) and say what comes next.

    Args:
        defn: the state machine.
        cursor: the execution's checkpoint; left untouched (the result holds the new one).
        event: what happened to a command issued before, or None to drive on.
        now: epoch seconds; the engine reads no clock.
        context: the static part of the ``$$`` object (see :func:`execution_context`).
        rng: randomness for jitter and ``States.MathRandom``/``States.UUID``; default:
            seeded from the cursor, so replaying a step draws the same numbers.
        max_events: history events an execution may record; past it the execution
            fails with ``States.Runtime`` (AWS: 25,000).
        task_tokens: makes a new, unguessable task token for a ``.waitForTaskToken``
            Task (the engine makes no randomness itself); without it such a Task
            fails with ``States.Runtime``.
        expression_timeout_ms: wall time one JSONata expression may take; past it
            the state fails with ``States.QueryEvaluationError``.
        max_map_items: items an inline Map state may hold at once; a Map opened with
            more fails with ``States.Runtime``.
    """
    cursor = dict(cursor)
    root = cursor["root"] = _own_frame(cursor["root"])
    run = _Run(cursor, now=now, static=context or _NO_CONTEXT, rng=rng, tokens=task_tokens)
    run.max_map_items = max_map_items
    run.batch = min(STEP_BATCH, max_events - int(cursor.get("ev", 0)))
    if expression_timeout_ms != _DEFAULT_TIMEOUT_MS:
        run.expression_limits = dataclasses.replace(
            jsonata.DEFAULT_LIMITS, timeout_ms=expression_timeout_ms
        )
    run.owned.add(id(root))
    deadline = None if defn.timeout_seconds is None else _deadline(defn, cursor)
    if deadline is not None and now >= deadline and root["ph"] not in (DONE, FAILED):
        root.update(ph=FAILED, err=errors.TIMEOUT, cause="The execution timed out")
        return StepResult(cursor, Failed(error=errors.TIMEOUT, cause=root["cause"], timed_out=True))
    if event is not None:
        command = run.deliver(defn, root, event)
    else:
        command = run.drive(defn, root, ())
        if deadline is not None and isinstance(command, _WAITS):
            command = _cap(command, deadline)
    result = StepResult(cursor, command, run.events)
    return _counted(result, max_events, now) if run.events else result


_DEFAULT_TIMEOUT_MS = jsonata.DEFAULT_LIMITS.timeout_ms
#: Transitions of a Map's or Parallel's children one step may take (see ``_Run.more``).
STEP_BATCH = 64
_WAITS = (WaitUntil, WaitForMessage)
_ENDS = (Succeeded, Failed)


def _counted(result: StepResult, limit: int, now: float) -> StepResult:
    """Count the step's history events in the cursor; fail the execution past ``limit``.

    AWS: "If the event number 25,000 isn't ExecutionSucceeded, the ExecutionFailed event
    is logged and the state machine execution fails" (developer guide, "Avoid reaching
    the history quota"). A step that ends the execution is let through, as AWS lets the
    final event through.
    """
    cursor = result.cursor
    count = cursor["ev"] = int(cursor.get("ev", 0)) + len(result.events)
    if count <= limit or isinstance(result.command, _ENDS):
        return result
    cause = f"The execution reached the limit of {limit:,} history events"
    fail_root(cursor, error=errors.RUNTIME, cause=cause, now=now)
    result.command = Failed(error=errors.RUNTIME, cause=cause)
    return result


def _own_frame(frame: dict[str, Any]) -> dict[str, Any]:
    """A copy of one frame that may be updated (its children stay shared)."""
    out = dict(frame)
    counts = out.get("rc")
    if counts is not None:
        out["rc"] = list(counts)
    return out


def _own_group(group: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Parallel/Map group that may be updated (child frames stay shared)."""
    out = group.copy()
    out["todo"], out["res"], out["act"] = out["todo"][:], out["res"][:], out["act"][:]
    out["fr"] = out["fr"].copy()
    return out


def copy_cursor(cursor: dict[str, Any]) -> dict[str, Any]:
    """A copy of a cursor that may be updated: every frame, not the data they hold."""
    out = dict(cursor)
    out["root"] = _copy_frame(cursor["root"])
    return out


def _copy_frame(frame: dict[str, Any]) -> dict[str, Any]:
    out = dict(frame)
    counts = out.get("rc")
    if counts is not None:
        out["rc"] = list(counts)
    group = out.get("ch")
    if group is not None:
        group = out["ch"] = dict(group)
        group["todo"], group["res"], group["act"] = (
            list(group["todo"]),
            list(group["res"]),
            list(group["act"]),
        )
        group["fr"] = {key: _copy_frame(child) for key, child in group["fr"].items()}
    return out


def frames(
    defn: Definition, cursor: dict[str, Any]
) -> Iterator[tuple[FramePath, Definition, dict[str, Any]]]:
    """Every frame of the cursor, depth first: (path, its state machine, the frame)."""
    todo: list[tuple[FramePath, Definition, dict[str, Any]]] = [((), defn, cursor["root"])]
    while todo:
        path, machine, frame = todo.pop()
        yield path, machine, frame
        group = frame.get("ch")
        if group:
            state = machine.states[frame["s"]]
            for key, child in sorted(group["fr"].items(), key=lambda kv: -int(kv[0])):
                todo.append(((*path, int(key)), _child_machine(state, int(key)), child))


def reissue(
    defn: Definition,
    cursor: dict[str, Any],
    *,
    now: float,
    context: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
) -> list[Command]:
    """The commands the cursor's frames are waiting on, as first issued (same tokens).

    A runtime that resumes a checkpoint calls this to learn what was in flight: tasks
    dispatched but not finished (run them again; same idempotency key), timers and
    messages waited for. Events it already has for them can be delivered instead.
    """
    cursor = copy_cursor(cursor)  # re-arming the frames must not touch the caller's cursor
    run = _Run(cursor, now=now, static=context or {}, rng=rng)
    out: list[Command] = []
    for path, machine, frame in list(frames(defn, cursor)):
        phase = frame["ph"]
        if phase in (WAIT, RETRY):
            state = machine.states[frame["s"]].name
            out.append(
                WaitUntil(
                    path=path,
                    token=frame["tok"],
                    state=state,
                    until=frame["until"],
                    retry=phase == RETRY,
                )
            )
        elif phase in (TASK, MESSAGE):
            frame.update(ph=READY, retok=frame["tok"])
            out.append(run.execute(machine, frame, path))
    return out


def redrive(defn: Definition, cursor: dict[str, Any], *, now: float) -> None:
    """Reopen a failed or timed-out cursor: each failed frame runs its state again.

    As AWS's RedriveExecution: the execution continues from the state that failed,
    with that state's input; retry counts start over, and so does TimeoutSeconds.
    """
    for _, _, frame in frames(defn, cursor):
        if frame["ph"] == FAILED:
            for key in ("err", "cause", "rc", "ch", "eff", "until"):
                frame.pop(key, None)
            frame.update(ph=READY, at=now)
    cursor["started"] = now


def _deadline(defn: Definition, cursor: dict[str, Any]) -> float | None:
    if defn.timeout_seconds is None:
        return None
    return float(cursor["started"]) + defn.timeout_seconds


def _cap(command: WaitUntil | WaitForMessage, deadline: float) -> Command:
    # Wake up at the execution's deadline at the latest, so it can time out.
    if isinstance(command, WaitUntil) and command.until > deadline:
        return WaitUntil(
            path=command.path,
            token=command.token,
            state=command.state,
            until=deadline,
            retry=command.retry,
        )
    return command


def result_of(cursor: dict[str, Any]) -> Succeeded | Failed | None:
    """The end of a finished execution, or None while it runs."""
    root = cursor["root"]
    if root["ph"] == DONE:
        return Succeeded(output=root["out"])
    if root["ph"] == FAILED:
        return Failed(error=root["err"], cause=root.get("cause", ""))
    return None


# --- the machinery ----------------------------------------------------------------


class _Run:
    """One call of ``step``: the clock, the ``$$`` statics, the rng and the events."""

    __slots__ = (
        "_rng",
        "batch",
        "cursor",
        "events",
        "expression_limits",
        "max_map_items",
        "moves",
        "now",
        "owned",
        "seeded",
        "static",
        "tokens",
    )

    def __init__(
        self,
        cursor: dict[str, Any],
        *,
        now: float,
        static: Mapping[str, Any],
        rng: random.Random | None,
        tokens: Callable[[], str] | None = None,
    ) -> None:
        self.cursor, self.now, self.static, self._rng = cursor, now, static, rng
        self.tokens = tokens
        self.events: list[HistoryEvent] = []
        self.expression_limits = jsonata.DEFAULT_LIMITS
        self.max_map_items = MAX_MAP_ITEMS
        # Transitions inside a Map/Parallel this step may still take (see ``more``).
        self.batch, self.moves, self.seeded = 0, 0, False
        # Frames and groups copied in this step (by id): ``step`` copies the cursor's
        # frames as it reaches them, so a Map of 10,000 items costs the frames one
        # step touches, not all of them. Only objects this step made are in here, and
        # they stay alive in the new cursor, so an id never names a shared object.
        self.owned: set[int] = set()

    def group(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The (owned) group of an owned frame, copied on first use in this step."""
        group: dict[str, Any] = frame["ch"]
        if id(group) not in self.owned:
            group = frame["ch"] = _own_group(group)
            self.owned.add(id(group))
        return group

    def child(self, group: dict[str, Any], key: str) -> dict[str, Any] | None:
        """The (owned) child frame ``key`` of an owned group, or None if it has ended."""
        child: dict[str, Any] | None = group["fr"].get(key)
        if child is not None and id(child) not in self.owned:
            child = group["fr"][key] = _own_frame(child)
            self.owned.add(id(child))
        return child

    @property
    def rng(self) -> random.Random:
        """The step's randomness, made on first use (most steps draw none)."""
        if self._rng is None:
            execution = self.static.get("Execution")
            ident = execution.get("Id", "") if isinstance(execution, Mapping) else ""
            cursor = self.cursor
            seed = f"{cursor.get('seed', '')}|{ident}|{cursor.get('seq', 0)}|"
            # The events of this step so far count: a state met after others in one
            # step (see ``more``) draws what it would draw in a step of its own.
            events = int(cursor.get("ev", 0)) + len(self.events)
            self._rng = random.Random(f"{seed}{events}|{self.now!r}")  # noqa: S311
            self.seeded = True
        return self._rng

    def more(self) -> bool:
        """Whether a Map/Parallel may take another transition in this step.

        A step of a Map or Parallel copies the group's lists of items, results and
        frames once (its cursor is left untouched), so one transition per step costs
        in proportion to the items: a 1,000-item Map took 0.5x the transitions/s of
        a chain. Up to ``batch`` transitions of its children ride in one step; each
        is exactly what a step of its own would do (same order, same tokens, same
        draws: the batch ends after a state that drew from the step's seeded
        generator). ``batch`` stops short of the event limit, so an execution fails
        at the same event as it would one transition per step.
        """
        self.moves += 1
        return self.moves < self.batch and not self.seeded

    def rng_for(self, template: Any) -> random.Random | None:
        """The rng when ``template`` draws random numbers, else None (no generator made)."""
        return self.rng if template is not None and template.uses_random else None

    def dispatch(self, frame: dict[str, Any], phase: str, **extra: Any) -> int:
        """Mark a frame as waiting for an event; return its new, execution-unique token.

        A frame re-armed by :func:`reissue` keeps its old token, so the command it
        yields again (and a task's idempotency key) is the same as before the crash.
        """
        token = frame.pop("retok", None)
        if token is None:
            token = int(self.cursor.get("seq", 0)) + 1
            self.cursor["seq"] = token
        frame.update(ph=phase, tok=token, **extra)
        return int(token)

    # context ------------------------------------------------------------------
    def context(self, frame: dict[str, Any], state: State) -> dict[str, Any]:
        ctx = Context(self.static, frame.get("vars"))
        ctx["State"] = {
            "Name": state.name,
            "EnteredTime": iso(frame["at"]),
            "RetryCount": sum(frame.get("rc", ())),
        }
        return ctx

    # driving ------------------------------------------------------------------
    def drive(self, machine: Definition, frame: dict[str, Any], path: FramePath) -> Command:
        phase = frame["ph"]
        if phase == READY:
            return self.execute(machine, frame, path)
        if phase == BRANCHES:
            return self.drive_children(machine, frame, path)
        if phase == DONE:
            return Succeeded(output=frame["out"])
        if phase == FAILED:
            return Failed(error=frame["err"], cause=frame.get("cause", ""))
        return IDLE

    def execute(self, machine: Definition, frame: dict[str, Any], path: FramePath) -> Command:
        state = machine.states[frame["s"]]
        try:
            if state.language == JSONATA:
                return _JSONATA_EXECUTORS[type(state)](self, state, frame, path)
            return _EXECUTORS[type(state)](self, state, frame, path)
        except StatesError as exc:
            return self.fail_state(state, frame, path, exc.name, exc.cause)
        except (OverflowError, RecursionError) as exc:
            # Numbers or nesting too large for the machine: the state fails, the
            # engine does not crash (the runtime would re-run the same step forever).
            return self.fail_state(state, frame, path, errors.RUNTIME, _too_large(exc))

    # finishing a state ----------------------------------------------------------
    def record(
        self, state: State, frame: dict[str, Any], path: FramePath, status: str, **fields: Any
    ) -> None:
        counts = frame.get("rc")
        self.events.append(
            _history_event(
                path,
                state,
                status,
                frame["in"],
                sum(counts) if counts else 0,
                frame["at"],
                self.now,
                **fields,
            )
        )

    def transition(
        self,
        state: State,
        frame: dict[str, Any],
        path: FramePath,
        output: Any,
        target: str | None = None,
        assigned: Assigned | None = None,
    ) -> Command:
        shown = assigned[0] if assigned is not None else None
        counts = frame.get("rc")
        self.events.append(  # record(), inlined: one per transition
            _history_event(
                path,
                state,
                "succeeded",
                frame["in"],
                sum(counts) if counts else 0,
                frame["at"],
                self.now,
                output,
                None,
                None,
                shown,
            )
        )
        target = target if target is not None else state.next
        now = self.now
        if target is None:
            frame.clear()
            frame.update(s=state.name, ph=DONE, out=output, tok=0, at=now)
            return CONTINUE
        values, sizes = frame.get("vars"), frame.get("vsz")
        if assigned is not None and assigned[0]:
            # New dicts: the old ones may be shared, an Assign's may be the definition's.
            values = {**values, **assigned[0]} if values else dict(assigned[0])
            sizes = {**sizes, **assigned[1]} if sizes else dict(assigned[1])
        frame.clear()
        frame["s"], frame["in"], frame["ph"], frame["tok"], frame["at"] = (
            target,
            output,
            READY,
            0,
            now,
        )
        if values is not None:
            frame["vars"], frame["vsz"] = values, sizes
        return CONTINUE

    def assignments(
        self, template: Any, data: Any, ctx: dict[str, Any] | None, frame: dict[str, Any]
    ) -> Assigned | None:
        """Evaluate an ``Assign`` field and check the sizes; None when there is none.

        Every expression reads the variables as they were when the state was entered
        (AWS: an assignment is visible to the next state, not to the current one).

        Raises:
            StatesError: ``States.Runtime`` past 256 KiB for one variable or 10 MiB for all.
        """
        if template is None:
            return None
        values: dict[str, Any] = template.render(data, ctx, rng=self.rng_for(template))
        return values, _check_sizes(frame, values)

    def finish(
        self,
        state: State,
        frame: dict[str, Any],
        path: FramePath,
        result: Any,
        ctx: dict[str, Any] | None,
    ) -> Command:
        """Apply ResultSelector, Assign, ResultPath and OutputPath to a result, move on.

        Assign reads the result after ResultSelector (AWS's order for JSONPath states).
        """
        if state.language == JSONATA:
            return _finish_jsonata(self, state, frame, path, result)
        try:
            if state.result_selector is not None:
                result = _selected(state, result, ctx, self)
            assigned = (
                None if state.assign is None else self.assignments(state.assign, result, ctx, frame)
            )
            # _placed(), inlined: ResultPath, then OutputPath.
            steps = state.result_path
            if steps is None:
                output = frame["in"]
            elif not steps:
                output = result
            else:
                output = put(frame["in"], steps, result, text=state.result_path_text)
            if state.output_path != "$":
                output = select(_path(state.output_path), output, ctx)
        except StatesError as exc:
            return self.fail_state(state, frame, path, exc.name, exc.cause)
        return self.transition(state, frame, path, output, assigned=assigned)

    def fail_state(
        self, state: State, frame: dict[str, Any], path: FramePath, name: str, cause: str
    ) -> Command:
        if name == errors.QUERY_EVALUATION_ERROR and state.language == JSONATA:
            # AWS's wording; the event id is ours (the history events this engine counts).
            entered = int(self.cursor.get("ev", 0)) + len(self.events) + 1
            cause = (
                f"An error occurred while executing the state '{state.name}' "
                f"(entered at the event id #{entered}). {cause}"
            )
        counts = frame.setdefault("rc", [0] * len(state.retry))
        decision = decide(
            state.retry,
            state.catch,
            name,
            counts,
            self.rng if any(r.jitter == "FULL" for r in state.retry) else None,
            from_task=isinstance(state, TaskState),
        )
        if isinstance(decision, RetryDecision):
            self.record(state, frame, path, "retrying", error=name, cause=cause)
            counts[decision.index] += 1
            frame.pop("ch", None)
            until = self.now + decision.delay
            token = self.dispatch(frame, RETRY, until=until)
            return WaitUntil(path=path, token=token, state=state.name, until=until, retry=True)
        if isinstance(decision, CatchDecision):
            return self.catch(state, frame, path, decision, name, cause)
        self.record(state, frame, path, "failed", error=name, cause=cause)
        _fail_frame(frame, state.name, name, cause, self.now)
        return CONTINUE

    def catch(
        self,
        state: State,
        frame: dict[str, Any],
        path: FramePath,
        decision: CatchDecision,
        name: str,
        cause: str,
    ) -> Command:
        catcher = decision.catcher
        payload = {"Error": name, "Cause": cause}
        try:
            if state.language == JSONATA:
                # $states.errorOutput is the error; without Output it is the state output.
                jscope = _scope_of(self, state, frame, error_output=payload)
                assigned = _assign_jsonata(catcher.assign, jscope, frame)
                output = _template(catcher.has_output, catcher.output, payload, jscope, "Output")
            else:
                ctx = self.context(frame, state) if catcher.assign is not None else None
                # A Catcher's Assign reads the error output as ``$``.
                assigned = self.assignments(catcher.assign, payload, ctx, frame)
                output = _apply_result_path(
                    frame["in"], catcher.result_path, payload, catcher.result_path_text
                )
        except StatesError as exc:
            self.record(state, frame, path, "failed", error=exc.name, cause=exc.cause)
            _fail_frame(frame, state.name, exc.name, exc.cause, self.now)
            return CONTINUE
        shown = assigned[0] if assigned is not None else None
        self.record(
            state, frame, path, "caught", error=name, cause=cause, output=output, assigned=shown
        )
        scope = _assign(frame, assigned)
        frame.clear()
        frame.update(s=catcher.next, **{"in": output}, ph=READY, tok=0, at=self.now, **scope)
        return CONTINUE

    # events -------------------------------------------------------------------
    def locate(
        self, defn: Definition, root: dict[str, Any], path: FramePath
    ) -> tuple[Definition, dict[str, Any]] | None:
        """The machine and (owned) frame an event's path names, or None if it has ended."""
        machine, frame = defn, root
        for index in path:
            child = self.child(self.group(frame), str(index)) if frame.get("ch") else None
            if child is None:
                return None
            machine = _child_machine(machine.states[frame["s"]], index)
            frame = child
        return machine, frame

    def deliver(self, defn: Definition, root: dict[str, Any], event: Event) -> Command:
        """Apply an event to the frame it names; a stale or duplicate one changes nothing."""
        found = self.locate(defn, root, event.path)
        if found is None:
            return CONTINUE
        machine, frame = found
        if frame.get("tok") != event.token:
            return CONTINUE
        state = machine.states[frame["s"]]
        handler = _EVENT_HANDLERS.get((frame["ph"], type(event)))
        if handler is None:
            return CONTINUE
        try:
            return handler(self, state, frame, event)
        except (OverflowError, RecursionError) as exc:
            return self.fail_state(state, frame, event.path, errors.RUNTIME, _too_large(exc))

    def on_task_succeeded(self, state: State, frame: dict[str, Any], event: Event) -> Command:
        assert isinstance(event, TaskSucceeded)
        found = json_problem(event.output)
        if found is not None:  # e.g. an in-process handler returned NaN, a set or a date
            cause = f"The result of the Task is not JSON {describe(found)}"
            return self.fail_state(state, frame, event.path, errors.RUNTIME, cause)
        ctx = self.context(frame, state) if state.uses_context else None
        return self.finish(state, frame, event.path, event.output, ctx)

    def on_task_failed(self, state: State, frame: dict[str, Any], event: Event) -> Command:
        assert isinstance(event, TaskFailed)
        return self.fail_state(state, frame, event.path, event.error, event.cause)

    def on_retry_timer(self, state: State, frame: dict[str, Any], event: Event) -> Command:
        frame["ph"] = READY
        return CONTINUE

    def on_wait_timer(self, state: State, frame: dict[str, Any], event: Event) -> Command:
        stored = frame.pop("asg", None)
        assigned = (stored[0], stored[1]) if stored is not None else None
        return self.transition(state, frame, event.path, frame.pop("eff"), assigned=assigned)

    def on_message(self, state: State, frame: dict[str, Any], event: Event) -> Command:
        assert isinstance(event, MessageReceived)
        found = json_problem(event.data)
        if found is not None:
            cause = f"The message is not JSON {describe(found)}"
            return self.fail_state(state, frame, event.path, errors.RUNTIME, cause)
        ctx = self.context(frame, state) if state.uses_context else None
        return self.finish(state, frame, event.path, event.data, ctx)

    def on_message_timeout(self, state: State, frame: dict[str, Any], event: Event) -> Command:
        assert isinstance(state, MessageState)
        message = f"Message state '{state.name}' timed out waiting for correlation"
        if state.timeout_path is None:
            return self.fail_state(state, frame, event.path, errors.TIMEOUT, message)
        result = {"status": "TIMEOUT", "message": message}
        try:
            output = _placed(state, frame["in"], _selected(state, result, None, self), None)
        except StatesError as exc:
            return self.fail_state(state, frame, event.path, exc.name, exc.cause)
        return self.transition(state, frame, event.path, output, target=state.timeout_path)

    # Parallel and Map ---------------------------------------------------------
    def drive_children(
        self, machine: Definition, frame: dict[str, Any], path: FramePath
    ) -> Command:
        state = machine.states[frame["s"]]
        group = self.group(frame)
        active, position = group["act"], 0
        # `collect` removes finished children and appends newly started ones, so walk
        # the live list: a child started here is driven in this same pass.
        while position < len(active):
            index = active[position]
            child = self.child(group, str(index))
            assert child is not None
            if child["ph"] in (DONE, FAILED):
                failure = self.collect(state, group, index, child)
                if failure is not None:
                    frame.pop("ch", None)  # abandon the other branches: their events are stale
                    return self.fail_state(state, frame, path, *failure)
                continue
            command = self.drive(_child_machine(state, index), child, (*path, index))
            if command is CONTINUE and self.more():
                continue  # this position again: the same child, or the next once it ends
            if command is not IDLE:
                return command
            position += 1
        if not group["act"]:
            return self.join(state, frame, path)
        return IDLE

    def collect(
        self, state: State, group: dict[str, Any], index: int, child: dict[str, Any]
    ) -> tuple[str, str] | None:
        """Take a finished child's result; return (error, cause) if the state fails."""
        group["act"].remove(index)
        del group["fr"][str(index)]
        if child["ph"] == DONE:
            group["res"][index] = child["out"]
        else:
            group["res"][index] = {"Error": child["err"], "Cause": child.get("cause", "")}
            group["failed"] = group.get("failed", 0) + 1
            if not isinstance(state, MapState) or _exceeds(group):
                return _child_failure(state, group, child)
        _activate(state, group, self.now)
        return None

    def join(self, state: State, frame: dict[str, Any], path: FramePath) -> Command:
        results = frame.pop("ch")["res"]
        frame["ph"] = READY
        ctx = self.context(frame, state) if state.uses_context else None
        return self.finish(state, frame, path, results, ctx)


def _too_large(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "A value is nested too deeply to be processed"
    return f"A number is too large to be processed ({exc})"


def _child_failure(state: State, group: dict[str, Any], child: dict[str, Any]) -> tuple[str, str]:
    if isinstance(state, MapState) and group.get("limits"):
        return (
            errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
            "The specified tolerated failure threshold was exceeded",
        )
    return child["err"], child.get("cause", "")


def _exceeds(group: dict[str, Any]) -> bool:
    limits = group.get("limits")
    if not limits:
        return True
    failed, total = group["failed"], len(group["res"])
    count, percent = limits.get("count"), limits.get("percent")
    over_count = count is not None and failed > count
    over_percent = percent is not None and total and failed * 100.0 / total > percent
    return bool(over_count or over_percent)


def _activate(state: State, group: dict[str, Any], now: float) -> None:
    """Start pending children up to the concurrency limit (0: all of them)."""
    limit = group.get("max") or 0
    inputs = group["todo"]
    while group["next"] < len(inputs) and (not limit or len(group["act"]) < limit):
        index = group["next"]
        child = _frame(_child_machine(state, index).start_at, inputs[index], now)
        child.update(_scope(group))
        group["fr"][str(index)] = child
        inputs[index] = None
        group["act"].append(index)
        group["next"] = index + 1


def _child_machine(state: State, index: int) -> Definition:
    if isinstance(state, ParallelState):
        return state.branches[index]
    assert isinstance(state, MapState)
    assert state.processor is not None
    return state.processor


# --- data flow --------------------------------------------------------------------


def _input(state: State, raw: Any, ctx: dict[str, Any] | None, run: _Run) -> Any:
    """InputPath then Parameters: the effective input of a state."""
    if state.parameters is None and state.input_path == "$":
        return raw
    data = raw if state.input_path == "$" else select(_path(state.input_path), raw, ctx)
    if state.parameters is not None:
        data = state.parameters.render(data, ctx, rng=run.rng_for(state.parameters))
    return data


def _path(value: Path | str | None) -> Path | None:
    return value if isinstance(value, Path) or value is None else None


def _apply_result_path(raw: Any, steps: tuple[Any, ...] | None, result: Any, text: str) -> Any:
    if steps is None:
        return raw
    if not steps:
        return result
    return put(raw, steps, result, text=text)


def _selected(state: State, result: Any, ctx: dict[str, Any] | None, run: _Run) -> Any:
    """ResultSelector."""
    if state.result_selector is not None:
        result = state.result_selector.render(result, ctx, rng=run.rng_for(state.result_selector))
    return result


def _placed(state: State, raw: Any, result: Any, ctx: dict[str, Any] | None) -> Any:
    """ResultPath, OutputPath."""
    output = _apply_result_path(raw, state.result_path, result, state.result_path_text)
    if state.output_path != "$":
        output = select(_path(state.output_path), output, ctx)
    return output


def _read(path: Path, data: Any, ctx: Any, field: str) -> Any:
    try:
        return path.find(data, ctx)
    except PathNotFound:
        raise StatesError(
            errors.RUNTIME,
            f"Invalid path '{path.text}' for field '{field}': no value in {compact(data)}",
        ) from None


# --- one executor per state type --------------------------------------------------


def _exec_pass(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, PassState)
    ctx = run.context(frame, state) if state.uses_context else None
    data = _input(state, frame["in"], ctx, run)
    result = state.result if state.has_result else data
    return run.finish(state, frame, path, result, ctx)


def _exec_choice(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, ChoiceState)
    ctx = run.context(frame, state) if state.uses_context else None
    data = _input(state, frame["in"], ctx, run)
    target, assign = state.default, state.assign
    for index, rule in enumerate(state.choices):
        if rule.matches(data, ctx):
            target, assign = rule.next, state.rule_assign[index]
            break
    if target is None:
        raise StatesError(
            errors.NO_CHOICE_MATCHED,
            f"No Choice rule matched and no Default in state '{state.name}'",
        )
    # The matched rule's Assign, or the state's own when the Default is taken.
    assigned = None if assign is None else run.assignments(assign, data, ctx, frame)
    output = data if state.output_path == "$" else select(_path(state.output_path), data, ctx)
    return run.transition(state, frame, path, output, target=target, assigned=assigned)


def _exec_succeed(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    ctx = run.context(frame, state) if state.uses_context else None
    data = _input(state, frame["in"], ctx, run)
    output = data if state.output_path == "$" else select(_path(state.output_path), data, ctx)
    return run.transition(state, frame, path, output, target=None)


def _exec_fail(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, FailState)
    ctx = run.context(frame, state)
    error, cause = state.error, state.cause
    if state.error_path is not None:
        error = _text(
            state.error_path.render(frame["in"], ctx, rng=run.rng_for(state.error_path))["value"]
        )
    if state.cause_path is not None:
        cause = _text(
            state.cause_path.render(frame["in"], ctx, rng=run.rng_for(state.cause_path))["value"]
        )
    # AWS reports no error name for a Fail state without Error (there is no default).
    name, why = error or "", cause or ""
    run.record(state, frame, path, "failed", error=name, cause=why)
    _fail_frame(frame, state.name, name, why, run.now)
    return CONTINUE


def fail_root(cursor: dict[str, Any], *, error: str, cause: str, now: float) -> str:
    """Fail a cursor at the state its root frame stands on (what a redrive runs again).

    For the runtime, when what a step produced cannot be stored. Returns the state name.
    """
    root = cursor["root"]
    _fail_frame(root, root["s"], error, cause, now)
    return str(root["s"])


def _fail_frame(frame: dict[str, Any], state: str, error: str, cause: str, now: float) -> None:
    """End a frame as failed; its state input stays, so a redrive can run the state again."""
    data, scope = frame.get("in"), _scope(frame)
    frame.clear()
    frame.update(s=state, ph=FAILED, err=error, cause=cause, tok=0, at=now, **{"in": data})
    frame.update(scope)  # kept so that a redrive runs the state with its variables


def _scope(frame: dict[str, Any]) -> dict[str, Any]:
    """The variables a frame holds (``vars``, with their sizes ``vsz``), to carry over."""
    if "vars" not in frame:
        return {}
    return {"vars": frame["vars"], "vsz": frame["vsz"]}


#: What an Assign produced: the values by name, and their sizes in bytes.
Assigned = tuple[dict[str, Any], dict[str, int]]


def _assign(frame: dict[str, Any], assigned: Assigned | None) -> dict[str, Any]:
    """The frame's variables after ``assigned`` (new dicts: the old ones may be shared)."""
    scope = _scope(frame)
    if assigned is not None and assigned[0]:
        values, sizes = assigned
        scope = {
            "vars": {**scope.get("vars", {}), **values},
            "vsz": {**scope.get("vsz", {}), **sizes},
        }
    return scope


def _check_sizes(frame: dict[str, Any], values: dict[str, Any]) -> dict[str, int]:
    """AWS's limits: 256 KiB per variable, 10 MiB for all of them (as JSON text)."""
    sizes = {name: _size(value) for name, value in values.items()}
    for name, size in sizes.items():
        if size > MAX_VARIABLE_BYTES:
            raise StatesError(
                errors.RUNTIME,
                f"The value assigned to the variable '{name}' is {size:,} bytes; a "
                f"variable holds at most {MAX_VARIABLE_BYTES:,}",
            )
    total = sum({**frame.get("vsz", {}), **sizes}.values())
    if total > MAX_VARIABLES_BYTES:
        raise StatesError(
            errors.RUNTIME,
            f"The variables would hold {total:,} bytes; an execution's variables hold at "
            f"most {MAX_VARIABLES_BYTES:,}",
        )
    return sizes


def _size(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return len(str(value)) if abs(value) < 10**30 else len(compact(value))
    if kind is str and value.isascii() and value.isprintable() and '"' not in value:
        return len(value) + 2
    if value is None or kind is bool:
        return 4 if value in (None, True) else 5
    return len(compact(value).encode("utf-8"))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise StatesError(
            errors.RUNTIME, f"ErrorPath/CausePath must name a string, not {compact(value)}"
        )
    return value


def _exec_task(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, TaskState)
    ctx = run.context(frame, state)
    callback = _task_token(run, state, frame)
    if callback is not None:
        ctx["Task"] = {"Token": callback}
    data = _input(state, frame["in"], ctx, run)
    timeout = _seconds(
        state.timeout_seconds, state.timeout_seconds_path, data, ctx, "TimeoutSecondsPath"
    )
    heartbeat = _seconds(
        state.heartbeat_seconds, state.heartbeat_seconds_path, data, ctx, "HeartbeatSecondsPath"
    )
    token = run.dispatch(frame, TASK, **({} if callback is None else {"tt": callback}))
    return RunTask(
        path=path,
        token=token,
        state=state.name,
        resource=state.resource,
        input=data,
        context=ctx,
        attempt=sum(frame.get("rc", ())),
        timeout_seconds=timeout,
        heartbeat_seconds=heartbeat,
        task_token=callback,
    )


#: The resource suffix of AWS's callback pattern.
WAIT_FOR_TASK_TOKEN = ".waitForTaskToken"  # noqa: S105 - a resource suffix


def _task_token(run: _Run, state: TaskState, frame: dict[str, Any]) -> str | None:
    """The task token of a ``.waitForTaskToken`` Task (None for other Tasks).

    A Task re-issued after a crash keeps its token (kept in the frame while it
    waits), so the handler sees the same input and an answer already given counts.
    """
    if not state.resource.endswith(WAIT_FOR_TASK_TOKEN):
        return None
    if "retok" in frame and "tt" in frame:
        return str(frame["tt"])
    if run.tokens is None:
        raise StatesError(
            errors.RUNTIME,
            f"Task '{state.name}' waits for a task token, which only a stored execution "
            "issues (this driver has no token source)",
        )
    return run.tokens()


def _seconds(
    fixed: float | None, path: Path | None, data: Any, ctx: Any, field: str
) -> float | None:
    if path is None:
        return fixed
    value = _read(path, data, ctx, field)
    if not _is_int(value) or not 0 < value <= MAX_SECONDS:
        raise StatesError(
            errors.RUNTIME,
            f"{field} '{path.text}' must name an integer from 1 to {MAX_SECONDS}, "
            f"not {_shown(value)}",
        )
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    # A 400-digit integer is shown by its size: printing it is what Python refuses.
    if _is_int(value) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    return compact(value)


def _exec_wait(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, WaitState)
    ctx = run.context(frame, state) if state.uses_context else None
    data = _input(state, frame["in"], ctx, run)
    until = _wait_until(state, data, ctx, frame["at"])
    assigned = run.assignments(state.assign, data, ctx, frame)
    output = data if state.output_path == "$" else select(_path(state.output_path), data, ctx)
    if until <= run.now:
        return run.transition(state, frame, path, output, assigned=assigned)
    extra = {} if assigned is None else {"asg": list(assigned)}
    token = run.dispatch(frame, WAIT, eff=output, until=until, **extra)
    return WaitUntil(path=path, token=token, state=state.name, until=until)


def _wait_until(state: WaitState, data: Any, ctx: Any, entered: float) -> float:
    if state.seconds is not None:
        return entered + state.seconds
    if state.timestamp is not None:
        stamp = parse_timestamp(state.timestamp)
        assert stamp is not None
        return stamp.timestamp()
    if state.seconds_path is not None:
        value = _read(state.seconds_path, data, ctx, "SecondsPath")
        # AWS: SecondsPath names "an integer"; Seconds is at most 99999999.
        if not _is_int(value) or not 0 <= value <= MAX_SECONDS:
            raise StatesError(
                errors.RUNTIME,
                f"SecondsPath '{state.seconds_path.text}' must name an integer from 0 "
                f"to {MAX_SECONDS}, not {_shown(value)}",
            )
        return entered + float(value)
    assert state.timestamp_path is not None
    value = _read(state.timestamp_path, data, ctx, "TimestampPath")
    parsed = parse_timestamp(value) if isinstance(value, str) else None
    if parsed is None:
        raise StatesError(
            errors.RUNTIME,
            f"TimestampPath '{state.timestamp_path.text}' must "
            f"name an RFC 3339 timestamp, not {compact(value)}",
        )
    return parsed.timestamp()


def _exec_message(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, MessageState)
    ctx = run.context(frame, state) if state.uses_context else None
    data = _input(state, frame["in"], ctx, run)
    value = data
    if state.correlation_value_path is not None:
        value = _read(state.correlation_value_path, data, ctx, "CorrelationValuePath")
    # From the time the state was entered, so a re-issued command has the same deadline.
    timeout_at = frame["at"] + state.timeout_seconds if state.timeout_seconds else None
    token = run.dispatch(frame, MESSAGE, until=timeout_at)
    return WaitForMessage(
        path=path,
        token=token,
        state=state.name,
        correlation_key=state.correlation_key,
        correlation_value=value,
        timeout_at=timeout_at,
    )


def _exec_parallel(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, ParallelState)
    ctx = run.context(frame, state) if state.uses_context else None
    data = _input(state, frame["in"], ctx, run)
    count = len(state.branches)
    _open(run, frame, [data] * count, maximum=0, limits=None)
    _activate(state, frame["ch"], run.now)
    return CONTINUE


def _exec_map(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, MapState)
    if state.unsupported is not None:  # also after a redrive of the refused start
        raise StatesError(errors.RUNTIME, f"State '{state.name}': {state.unsupported}")
    if state.distributed is not None:
        return _exec_distributed(run, state, frame, path)
    ctx = run.context(frame, state)
    data = (
        frame["in"]
        if state.input_path == "$"
        else select(_path(state.input_path), frame["in"], ctx)
    )
    items = data if state.items_path == "$" else select(_path(state.items_path), data, ctx)
    if not isinstance(items, list):
        raise StatesError(
            errors.RUNTIME,
            f"Map state '{state.name}': ItemsPath must select an array, not {compact(items)}",
        )
    _check_map_items(run, state, items)
    inputs = _item_inputs(state, data, items, ctx, run)
    maximum = state.max_concurrency
    if state.max_concurrency_path is not None:
        maximum = _max_concurrency(state.max_concurrency_path, data, ctx)
    _open(run, frame, inputs, maximum=maximum, limits=_tolerance(state, data, ctx))
    if not inputs:
        return run.join(state, frame, path)
    _activate(state, frame["ch"], run.now)
    return CONTINUE


def _exec_distributed(
    run: _Run, state: MapState, frame: dict[str, Any], path: FramePath
) -> Command:
    """A Distributed Map: evaluate what its Map Run needs, and hand it to the runtime."""
    dist = state.distributed
    assert dist is not None
    ctx = run.context(frame, state)
    data = (
        frame["in"]
        if state.input_path == "$"
        else select(_path(state.input_path), frame["in"], ctx)
    )
    items = None
    if dist.reader is None:
        items = data if state.items_path == "$" else select(_path(state.items_path), data, ctx)
        if not isinstance(items, list):
            raise StatesError(
                errors.RUNTIME,
                f"Map state '{state.name}': ItemsPath must select an array, not {compact(items)}",
            )

    def render(at: str, raw: Any) -> Any:
        template = dist.templates.get(at)
        return raw if template is None else template.render(data, ctx, rng=run.rng_for(template))

    parts = distributed.evaluate(dist, data, ctx, render)
    maximum = state.max_concurrency
    if state.max_concurrency_path is not None:
        maximum = _max_concurrency(state.max_concurrency_path, data, ctx)
    limits = _tolerance(state, data, ctx) or {}
    selector = state.item_selector

    def select_item(index: int, value: Any) -> Any:
        if selector is None:
            return value
        item_ctx = dict(ctx)
        item_ctx["Map"] = {"Item": {"Index": index, "Value": value}}
        return selector.render(data, item_ctx, rng=None)

    return _run_map(run, state, frame, path, items, parts, maximum, limits, select_item)


def _run_map(
    run: _Run,
    state: MapState,
    frame: dict[str, Any],
    path: FramePath,
    items: list[Any] | None,
    parts: dict[str, Any],
    maximum: int,
    limits: dict[str, float],
    select_item: Callable[[int, Any], Any],
) -> RunMap:
    dist = state.distributed
    assert dist is not None
    assert state.processor is not None
    token = run.dispatch(frame, TASK)
    count = limits.get("count")
    return RunMap(
        path=path,
        token=token,
        state=state.name,
        execution_type=dist.execution_type,
        label=dist.label,
        processor=state.processor,
        items=items,
        reader=parts["reader"],
        batcher=parts["batcher"],
        writer=parts["writer"],
        max_concurrency=int(maximum),
        tolerated_failure_percentage=limits.get("percent"),
        tolerated_failure_count=None if count is None else int(count),
        select=select_item,
    )


def _max_concurrency(path: Path, data: Any, ctx: Any) -> int:
    """MaxConcurrencyPath: a non-negative integer; 0 means no limit, as MaxConcurrency."""
    value = _read(path, data, ctx, "MaxConcurrencyPath")
    if not _is_int(value) or value < 0:
        raise StatesError(
            errors.RUNTIME,
            f"MaxConcurrencyPath '{path.text}' must name a non-negative integer, "
            f"not {_shown(value)}",
        )
    return int(min(value, _UNBOUNDED))


#: More items than any Map can hold: a larger count or concurrency means "no limit".
_UNBOUNDED = 2**53


def _item_inputs(
    state: MapState, data: Any, items: list[Any], ctx: dict[str, Any], run: _Run
) -> list[Any]:
    if state.item_selector is None:
        return list(items)
    rng = run.rng_for(state.item_selector)
    out = []
    for index, item in enumerate(items):
        item_ctx = dict(ctx)
        item_ctx["Map"] = {"Item": {"Index": index, "Value": item}}
        out.append(state.item_selector.render(data, item_ctx, rng=rng))
    return out


def _tolerance(state: MapState, data: Any, ctx: Any) -> dict[str, float] | None:
    limits: dict[str, float] = {}
    percent, count = state.tolerated_failure_percentage, state.tolerated_failure_count
    if state.tolerated_failure_percentage_path is not None:
        percent = _read(
            state.tolerated_failure_percentage_path, data, ctx, "ToleratedFailurePercentagePath"
        )
    if state.tolerated_failure_count_path is not None:
        count = _read(state.tolerated_failure_count_path, data, ctx, "ToleratedFailureCountPath")
    if percent is not None:
        limits["percent"] = _checked_percent(percent)
    if count is not None:
        limits["count"] = _checked_count(count)
    return limits or None


def _checked_percent(value: Any) -> float:
    # AWS: ToleratedFailurePercentage is a number from 0 to 100.
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0 <= value <= 100:
        raise StatesError(
            errors.RUNTIME,
            f"ToleratedFailurePercentage must be a number from 0 to 100, not {_shown(value)}",
        )
    return float(value)


def _checked_count(value: Any) -> float:
    # AWS: ToleratedFailureCount is a non-negative integer.
    if not _is_int(value) or value < 0:
        raise StatesError(
            errors.RUNTIME,
            f"ToleratedFailureCount must be a non-negative integer, not {_shown(value)}",
        )
    return float(min(value, _UNBOUNDED))


def _check_map_items(run: _Run, state: State, items: list[Any]) -> None:
    # Checked before the items are copied into the checkpoint, which holds them all.
    if len(items) > run.max_map_items:
        raise StatesError(
            errors.RUNTIME,
            f"Map state '{state.name}' has {len(items)} items, more than the limit of "
            f"{run.max_map_items} (ORCHESTRATOR_MAX_MAP_ITEMS)",
        )


def _open(
    run: _Run,
    frame: dict[str, Any],
    inputs: list[Any],
    *,
    maximum: int,
    limits: dict[str, float] | None,
) -> None:
    frame["ph"] = BRANCHES
    frame["ch"] = {
        # Each branch or iteration starts with the variables of the enclosing scope; what
        # it assigns stays in its own frame (AWS: not visible outside).
        **_scope(frame),
        "todo": inputs,
        "res": [None] * len(inputs),
        "act": [],
        "fr": {},
        "next": 0,
        "max": maximum,
        "limits": limits,
    }
    run.owned.add(id(frame["ch"]))


_EXECUTORS = {
    PassState: _exec_pass,
    ChoiceState: _exec_choice,
    SucceedState: _exec_succeed,
    FailState: _exec_fail,
    TaskState: _exec_task,
    WaitState: _exec_wait,
    MessageState: _exec_message,
    ParallelState: _exec_parallel,
    MapState: _exec_map,
}

# --- JSONata states ----------------------------------------------------------------

JSONATA = "JSONata"


class _NoRandom(random.Random):
    """The generator of a state whose expressions draw nothing: none is seeded for it."""

    def __init__(self) -> None:  # no seeding: it never yields a number
        pass

    def random(self) -> float:
        raise AssertionError("this state's expressions call neither $random nor $uuid")

    def getrandbits(self, k: int, /) -> int:
        raise AssertionError("this state's expressions call neither $random nor $uuid")


_NO_RANDOM = _NoRandom()


def _new_uuid(rng: random.Random) -> Callable[[], str]:
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _scope_of(
    run: _Run,
    state: State,
    frame: dict[str, Any],
    *,
    result: Any = jsonata.MISSING,
    error_output: Any = jsonata.MISSING,
    context: dict[str, Any] | None = None,
) -> jsonata.Scope:
    """``$states`` and the variables of a JSONata state (one per state and phase)."""
    if state.draws:
        rng = run.rng
        new_uuid = _new_uuid(rng)
    else:
        rng, new_uuid = _NO_RANDOM, _no_uuid
    if context is None:
        # Most expressions never read $states.context: build it (times, names) only
        # for states that do.
        context = run.context(frame, state) if state.uses_context else _NO_CONTEXT
    return jsonata.Scope(
        input=frame["in"],
        context=dict(context) if context else _NO_CONTEXT,
        result=result,
        error_output=error_output,
        variables=frame.get("vars") or _NO_CONTEXT,
        rng=rng,
        new_uuid=new_uuid,
        limits=run.expression_limits,
    )


#: The (never changed) empty context and variables of a JSONata state that reads none.
_NO_CONTEXT: dict[str, Any] = {}


def _no_uuid() -> str:
    raise AssertionError("this state's expressions call neither $random nor $uuid")


def _template(given: bool, template: Any, default: Any, scope: jsonata.Scope, name: str) -> Any:
    """An Arguments/Output field: its value evaluated, or ``default`` when absent."""
    if not given:
        return default
    return jsonata.evaluate_template(template, scope, field=name)


def _assign_jsonata(template: Any, scope: jsonata.Scope, frame: dict[str, Any]) -> Assigned | None:
    if template is None:
        return None
    values: dict[str, Any] = jsonata.evaluate_template(template, scope, field="Assign")
    return values, _check_sizes(frame, values)


def _finish_jsonata(
    run: _Run, state: State, frame: dict[str, Any], path: FramePath, result: Any
) -> Command:
    """Output (default: the result) and Assign, both reading ``$states.result``."""
    try:
        scope = _scope_of(run, state, frame, result=result)
        assigned = _assign_jsonata(state.assign, scope, frame)
        output = _template(state.has_output, state.output, result, scope, "Output")
    except StatesError as exc:
        return run.fail_state(state, frame, path, exc.name, exc.cause)
    return run.transition(state, frame, path, output, assigned=assigned)


def _number(state: State, name: str, scope: jsonata.Scope, fixed: Any, low: int) -> Any:
    """A field given as a ``{% %}`` expression: an integer from ``low`` to 99999999."""
    text = state.exprs.get(name)
    if text is None:
        return fixed
    value = jsonata.evaluate(text, scope, field=name)
    if not _is_int(value) or not low <= value <= MAX_SECONDS:
        raise StatesError(
            errors.QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{jsonata.expression_text(text)}' specified for the "
            f"field '{name}' must return an integer from {low} to {MAX_SECONDS}, "
            f"not {_shown(value)}",
        )
    return value


def _jexec_pass(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    scope = _scope_of(run, state, frame)
    assigned = _assign_jsonata(state.assign, scope, frame)
    output = _template(state.has_output, state.output, frame["in"], scope, "Output")
    return run.transition(state, frame, path, output, assigned=assigned)


def _jexec_choice(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, ChoiceState)
    scope = _scope_of(run, state, frame)
    target, assign, (has_output, output) = (
        state.default,
        state.assign,
        (
            state.has_output,
            state.output,
        ),
    )
    for index, (condition, rule_next) in enumerate(state.conditions):
        if jsonata.evaluate_condition(condition, scope, field=f"Choices[{index}]/Condition"):
            target, assign = rule_next, state.rule_assign[index]
            has_output, output = state.rule_output[index]
            break
    if target is None:
        raise StatesError(
            errors.NO_CHOICE_MATCHED,
            f"No Choice rule matched and no Default in state '{state.name}'",
        )
    assigned = _assign_jsonata(assign, scope, frame)
    result = _template(has_output, output, frame["in"], scope, "Output")
    return run.transition(state, frame, path, result, target=target, assigned=assigned)


def _jexec_succeed(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    scope = _scope_of(run, state, frame)
    output = _template(state.has_output, state.output, frame["in"], scope, "Output")
    return run.transition(state, frame, path, output, target=None)


def _jexec_fail(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, FailState)
    scope = _scope_of(run, state, frame)
    texts = []
    for name, fixed in (("Error", state.error), ("Cause", state.cause)):
        value = (
            jsonata.evaluate(state.exprs[name], scope, field=name) if name in state.exprs else fixed
        )
        if value is not None and not isinstance(value, str):
            raise StatesError(
                errors.QUERY_EVALUATION_ERROR,
                f"The JSONata expression for the field '{name}' must return a string, "
                f"not {compact(value)}",
            )
        texts.append(value or "")
    run.record(state, frame, path, "failed", error=texts[0], cause=texts[1])
    _fail_frame(frame, state.name, texts[0], texts[1], run.now)
    return CONTINUE


def _jexec_task(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, TaskState)
    ctx = run.context(frame, state)
    callback = _task_token(run, state, frame)
    if callback is not None:  # $states.context.Task.Token, as $$.Task.Token in JSONPath
        ctx["Task"] = {"Token": callback}
    scope = _scope_of(run, state, frame, context=ctx)
    data = _template(state.has_arguments, state.arguments, frame["in"], scope, "Arguments")
    timeout = _number(state, "TimeoutSeconds", scope, state.timeout_seconds, 1)
    heartbeat = _number(state, "HeartbeatSeconds", scope, state.heartbeat_seconds, 1)
    token = run.dispatch(frame, TASK, **({} if callback is None else {"tt": callback}))
    return RunTask(
        path=path,
        token=token,
        state=state.name,
        resource=state.resource,
        input=data,
        context=ctx,
        attempt=sum(frame.get("rc", ())),
        timeout_seconds=None if timeout is None else float(timeout),
        heartbeat_seconds=None if heartbeat is None else float(heartbeat),
        task_token=callback,
    )


def _jexec_wait(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, WaitState)
    scope = _scope_of(run, state, frame)
    if "Timestamp" in state.exprs:
        value = jsonata.evaluate(state.exprs["Timestamp"], scope, field="Timestamp")
        parsed = parse_timestamp(value) if isinstance(value, str) else None
        if parsed is None:
            raise StatesError(
                errors.QUERY_EVALUATION_ERROR,
                f"The JSONata expression for the field 'Timestamp' must return an RFC 3339 "
                f"timestamp, not {compact(value)}",
            )
        until = parsed.timestamp()
    elif "Seconds" in state.exprs:
        until = frame["at"] + float(_number(state, "Seconds", scope, None, 0))
    else:
        until = _wait_until(state, frame["in"], None, frame["at"])
    assigned = _assign_jsonata(state.assign, scope, frame)
    output = _template(state.has_output, state.output, frame["in"], scope, "Output")
    if until <= run.now:
        return run.transition(state, frame, path, output, assigned=assigned)
    extra = {} if assigned is None else {"asg": list(assigned)}
    token = run.dispatch(frame, WAIT, eff=output, until=until, **extra)
    return WaitUntil(path=path, token=token, state=state.name, until=until)


def _jexec_parallel(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, ParallelState)
    scope = _scope_of(run, state, frame)
    data = _template(state.has_arguments, state.arguments, frame["in"], scope, "Arguments")
    _open(run, frame, [data] * len(state.branches), maximum=0, limits=None)
    _activate(state, frame["ch"], run.now)
    return CONTINUE


def _jexec_map(run: _Run, state: State, frame: dict[str, Any], path: FramePath) -> Command:
    assert isinstance(state, MapState)
    if state.unsupported is not None:
        raise StatesError(errors.RUNTIME, f"State '{state.name}': {state.unsupported}")
    if state.distributed is not None:
        return _jexec_distributed(run, state, frame, path)
    ctx = run.context(frame, state)
    scope = _scope_of(run, state, frame, context=ctx)
    items = _template(state.has_items, state.items, frame["in"], scope, "Items")
    if not isinstance(items, list):
        raise StatesError(
            errors.QUERY_EVALUATION_ERROR,
            f"Map state '{state.name}': Items must be an array, not {compact(items)}",
        )
    _check_map_items(run, state, items)
    inputs = list(items)
    if state.has_arguments:  # the JSONata ItemSelector
        inputs = []
        for index, item in enumerate(items):
            item_ctx = dict(ctx)
            item_ctx["Map"] = {"Item": {"Index": index, "Value": item}}
            item_scope = _scope_of(run, state, frame, context=item_ctx)
            inputs.append(
                jsonata.evaluate_template(state.arguments, item_scope, field="ItemSelector")
            )
    maximum = int(_number(state, "MaxConcurrency", scope, state.max_concurrency, 0))
    limits: dict[str, float] = {}
    percent = _jsonata_value(
        state, "ToleratedFailurePercentage", scope, state.tolerated_failure_percentage
    )
    count = _jsonata_value(state, "ToleratedFailureCount", scope, state.tolerated_failure_count)
    if percent is not None:
        limits["percent"] = _checked_percent(percent)
    if count is not None:
        limits["count"] = _checked_count(count)
    _open(run, frame, inputs, maximum=maximum, limits=limits or None)
    if not inputs:
        return run.join(state, frame, path)
    _activate(state, frame["ch"], run.now)
    return CONTINUE


def _jexec_distributed(
    run: _Run, state: MapState, frame: dict[str, Any], path: FramePath
) -> Command:
    """A JSONata Distributed Map (see :func:`_exec_distributed`)."""
    dist = state.distributed
    assert dist is not None
    ctx = run.context(frame, state)
    scope = _scope_of(run, state, frame, context=ctx)
    items = None
    if dist.reader is None:
        items = _template(state.has_items, state.items, frame["in"], scope, "Items")
        if not isinstance(items, list):
            raise StatesError(
                errors.QUERY_EVALUATION_ERROR,
                f"Map state '{state.name}': Items must be an array, not {compact(items)}",
            )

    def render(at: str, raw: Any) -> Any:
        return jsonata.evaluate_template(raw, scope, field=at)

    parts = distributed.evaluate(dist, frame["in"], ctx, render)
    maximum = int(_number(state, "MaxConcurrency", scope, state.max_concurrency, 0))
    limits: dict[str, float] = {}
    percent = _jsonata_value(
        state, "ToleratedFailurePercentage", scope, state.tolerated_failure_percentage
    )
    count = _jsonata_value(state, "ToleratedFailureCount", scope, state.tolerated_failure_count)
    if percent is not None:
        limits["percent"] = _checked_percent(percent)
    if count is not None:
        limits["count"] = _checked_count(count)

    def select_item(index: int, value: Any) -> Any:
        if not state.has_arguments:
            return value
        item_ctx = dict(ctx)
        item_ctx["Map"] = {"Item": {"Index": index, "Value": value}}
        item_scope = _scope_of(run, state, frame, context=item_ctx)
        return jsonata.evaluate_template(state.arguments, item_scope, field="ItemSelector")

    return _run_map(run, state, frame, path, items, parts, maximum, limits, select_item)


def _jsonata_value(state: State, name: str, scope: jsonata.Scope, fixed: Any) -> Any:
    text = state.exprs.get(name)
    return fixed if text is None else jsonata.evaluate(text, scope, field=name)


_JSONATA_EXECUTORS = {
    PassState: _jexec_pass,
    ChoiceState: _jexec_choice,
    SucceedState: _jexec_succeed,
    FailState: _jexec_fail,
    TaskState: _jexec_task,
    WaitState: _jexec_wait,
    ParallelState: _jexec_parallel,
    MapState: _jexec_map,
}

_EVENT_HANDLERS = {
    (TASK, TaskSucceeded): _Run.on_task_succeeded,
    (TASK, TaskFailed): _Run.on_task_failed,
    (RETRY, TimerFired): _Run.on_retry_timer,
    (WAIT, TimerFired): _Run.on_wait_timer,
    (MESSAGE, MessageReceived): _Run.on_message,
    (MESSAGE, TimerFired): _Run.on_message_timeout,
}
