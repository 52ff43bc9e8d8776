"""Run a state machine in this process: the driver that carries out ``step``'s commands.

    from orchestrator.runtime.local import run      # also ``orchestrator.run``

    run(definition, {"n": 1}, handlers={"work": work}).output

It calls task handlers and sleeps (through an injectable
:class:`~orchestrator.runtime.clock.Clock`); the interpreter (``orchestrator.asl``)
stays pure. Tasks that become ready together (Parallel branches, Map iterations)
run at the same time on a thread pool; a lone task runs in the calling thread.
Nothing is stored: the stored, resumable way is ``StateMachine.start``.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import inspect
import random
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.errors import StatesError
from orchestrator.asl.interpreter import (
    Continue,
    Event,
    Failed,
    HistoryEvent,
    Idle,
    RunMap,
    RunTask,
    Succeeded,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
    WaitForMessage,
    WaitUntil,
    execution_context,
    start,
    step,
)
from orchestrator.asl.model import Definition
from orchestrator.asl.validate import load
from orchestrator.handlers import Handler, HandlerResolver, MappingResolver, TaskContext
from orchestrator.runtime.clock import Clock, SystemClock


def call_handler(fn: Handler, data: Any, ctx: TaskContext, timeout: float | None) -> Any:
    """Call a sync or ``async def`` handler, enforcing ``timeout`` (States.Timeout).

    A sync handler that overruns is abandoned, not killed: Python cannot stop a thread.
    """
    try:
        takes_context = _arity(fn) >= 2
    except TypeError:  # an unhashable callable: not cached
        takes_context = _arity.__wrapped__(fn) >= 2
    args = (data, ctx) if takes_context else (data,)
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(_await(fn(*args), timeout))
    if timeout is None:
        return fn(*args)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn, *args).result(timeout=timeout)
    except FutureTimeout:
        raise StatesError(errors.TIMEOUT, f"Task timed out after {timeout:g} seconds") from None
    finally:
        pool.shutdown(wait=False)


async def _await(coro: Any, timeout: float | None) -> Any:
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError:
        raise StatesError(errors.TIMEOUT, f"Task timed out after {timeout:g} seconds") from None


@functools.lru_cache(maxsize=1024)
def _arity(fn: Handler) -> int:
    # Cached: ``inspect.signature`` was a fifth of an EXPRESS execution's CPU time.
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def error_of(exc: BaseException) -> tuple[str, str]:
    """The ASL (error, cause) of an exception a handler raised.

    A :class:`StatesError` names itself; any other exception is named after its class,
    as AWS Lambda reports ``errorType`` (``ValueError``), with its message as the cause.
    """
    if isinstance(exc, StatesError):
        return exc.name, exc.cause
    return type(exc).__name__, str(exc)


def run_task(
    command: RunTask,
    resolver: HandlerResolver,
    execution_id: str,
    *,
    on_heartbeat: Callable[[], None] | None = None,
) -> Event:
    """Carry out one RunTask command and return the event to step with."""
    ctx = TaskContext(
        execution_id=execution_id,
        state=command.state,
        attempt=command.attempt,
        idempotency_key=f"{execution_id}:{'/'.join(map(str, command.path))}:"
        f"{command.state}:{command.token}",
        context=command.context,
        task_token=command.task_token,
        on_heartbeat=on_heartbeat,
    )
    try:
        fn = resolver.resolve(command.resource)
        output = call_handler(fn, command.input, ctx, command.timeout_seconds)
    except Exception as exc:  # a handler may raise anything: it becomes an ASL error
        name, cause = error_of(exc)
        return TaskFailed(path=command.path, token=command.token, error=name, cause=cause)
    return TaskSucceeded(path=command.path, token=command.token, output=output)


@dataclass(slots=True, kw_only=True)
class ExecutionResult:
    """The outcome of :func:`run`.

    Attributes:
        status: ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT`` or ``WAITING`` (parked on a
            Message state with no timeout: resume with the cursor).
        output: the final output (SUCCEEDED only).
        error, cause: the ASL error (FAILED / TIMED_OUT).
        history: every finished state, in order.
        cursor: the final cursor (the checkpoint).
    """

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[HistoryEvent] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    waiting_for: list[WaitForMessage] = field(default_factory=list)


#: Carries out one RunTask command and returns the event to step with.
TaskCall = Callable[[RunTask], Event]


class _Driver:
    """Carries out commands for one execution until it ends or can only wait.

    Also the engine of EXPRESS executions (``runtime/express.py``): they pass their
    id and context, the step options of the settings, a task call of their own,
    and ``keep_history=False`` (an EXPRESS execution records no history).
    """

    def __init__(
        self,
        defn: Definition,
        resolver: HandlerResolver,
        clock: Clock,
        rng: random.Random | None,
        max_workers: int,
        *,
        keep_history: bool = True,
        step_options: Mapping[str, Any] | None = None,
        call: TaskCall | None = None,
        max_steps: int | None = None,
    ) -> None:
        self.defn, self.resolver, self.clock, self.rng = defn, resolver, clock, rng
        self.max_workers = max_workers
        self.keep_history = keep_history
        self.step_options = dict(step_options or {})
        self.call = call or (lambda t: run_task(t, self.resolver, self.execution_id))
        self.max_steps = max_steps
        self.history: list[HistoryEvent] = []
        self.tasks: list[RunTask] = []
        self.timers: list[tuple[float, int, TimerFired]] = []
        self.waiting: list[WaitForMessage] = []
        self.events: list[Event] = []
        self.execution_id = ""

    def run(
        self,
        data: Any,
        name: str,
        *,
        execution_id: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        now = self.clock.now()
        self.execution_id = execution_id or str(uuid.uuid4())
        cursor = start(self.defn, data, now=now)
        if context is None:
            context = execution_context(
                execution_id=self.execution_id, name=name, input=data, start_time=now
            )
        steps = 0
        while True:
            steps += 1
            if self.max_steps is not None and steps > self.max_steps:
                return self.runaway(cursor)
            event = self.events.pop() if self.events else None
            result = step(
                self.defn,
                cursor,
                event,
                now=self.clock.now(),
                context=context,
                rng=self.rng,
                **self.step_options,
            )
            cursor = result.cursor  # step leaves its input alone and returns the new cursor
            if self.keep_history:
                self.history.extend(result.events)
            outcome = self.carry_out(result.command, cursor)
            if outcome is not None:
                return outcome

    def runaway(self, cursor: dict[str, Any]) -> ExecutionResult:
        cause = (
            f"the execution took {self.max_steps} steps without ending; "
            "a state machine that loops never ends"
        )
        return ExecutionResult(
            status="FAILED", error=errors.RUNTIME, cause=cause, history=self.history, cursor=cursor
        )

    def carry_out(self, command: Any, cursor: dict[str, Any]) -> ExecutionResult | None:
        if isinstance(command, Continue):
            return None
        if isinstance(command, RunTask):
            self.tasks.append(command)
        elif isinstance(command, RunMap):
            self.events.append(self.run_map(command))
        elif isinstance(command, WaitUntil):
            heapq.heappush(
                self.timers,
                (command.until, command.token, TimerFired(path=command.path, token=command.token)),
            )
        elif isinstance(command, WaitForMessage):
            self.wait_for_message(command)
        elif isinstance(command, Idle):
            return self.idle(cursor)
        else:
            return self.finished(command, cursor)
        return None

    def run_map(self, command: RunMap) -> Event:
        """A Distributed Map: its children run here, in memory (``runtime/localmap.py``)."""
        from orchestrator.runtime.localmap import ChildOutcome, run_map_in_memory

        def child(data: Any, name: str) -> ChildOutcome:
            driver = _Driver(
                command.processor,
                self.resolver,
                self.clock,
                self.rng,
                1,
                keep_history=self.keep_history,
                step_options=self.step_options,
                call=self.call,
                max_steps=self.max_steps,
            )
            result = driver.run(data, name)
            return ChildOutcome(result.status, result.output, result.error, result.cause)

        return run_map_in_memory(command, child, max_workers=self.max_workers)

    def wait_for_message(self, command: WaitForMessage) -> None:
        self.waiting.append(command)
        if command.timeout_at is not None:
            heapq.heappush(
                self.timers,
                (
                    command.timeout_at,
                    command.token,
                    TimerFired(path=command.path, token=command.token),
                ),
            )

    def idle(self, cursor: dict[str, Any]) -> ExecutionResult | None:
        if self.tasks:
            self.events.extend(reversed(self.run_tasks()))
            return None
        if self.timers:
            until, _, fired = heapq.heappop(self.timers)
            self.clock.sleep(until - self.clock.now())
            self.events.append(fired)
            return None
        return ExecutionResult(
            status="WAITING", history=self.history, cursor=cursor, waiting_for=list(self.waiting)
        )

    def run_tasks(self) -> list[Event]:
        tasks, self.tasks = self.tasks, []
        if len(tasks) == 1 or self.max_workers <= 1:
            return [self.call(t) for t in tasks]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(tasks))) as pool:
            return list(pool.map(self.call, tasks))

    def finished(self, command: Any, cursor: dict[str, Any]) -> ExecutionResult:
        if isinstance(command, Succeeded):
            return ExecutionResult(
                status="SUCCEEDED", output=command.output, history=self.history, cursor=cursor
            )
        assert isinstance(command, Failed)
        return ExecutionResult(
            status="TIMED_OUT" if command.timed_out else "FAILED",
            error=command.error or None,
            cause=command.cause,
            history=self.history,
            cursor=cursor,
        )


def run(
    definition: Any,
    input: Any = None,
    *,
    handlers: Mapping[str, Handler] | HandlerResolver | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    name: str = "local",
    max_workers: int = 16,
) -> ExecutionResult:
    """Run a state machine to its end in this process.

    Args:
        definition: a dict, JSON or YAML text, or a loaded :class:`Definition`.
        input: the execution input (JSON value); None means ``{}``.
        handlers: Task resources to callables (a mapping or a registry).
        clock: where time is read and waits sleep (default: the system clock).
        rng: randomness for jitter and States.MathRandom/UUID (default: shared).
        name: the execution name in ``$$.Execution.Name``.
        max_workers: threads for tasks that are ready at once (Parallel, Map).

    Raises:
        DefinitionInvalid: the definition has problems (each with its JSON pointer).
    """
    defn = definition if isinstance(definition, Definition) else load(definition)
    if handlers is None:
        resolver: HandlerResolver = MappingResolver({})
    elif isinstance(handlers, Mapping):
        resolver = MappingResolver(handlers)
    else:
        resolver = handlers
    driver = _Driver(defn, resolver, clock or SystemClock(), rng, max_workers)
    return driver.run({} if input is None else input, name)


__all__ = [
    "Clock",
    "ExecutionResult",
    "SystemClock",
    "call_handler",
    "error_of",
    "run",
    "run_task",
]
