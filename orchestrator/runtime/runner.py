"""Advance one stored execution: claim, step, call handlers, checkpoint, park.

``Runner.advance(execution_id)`` takes the execution's lease, resumes its cursor
(re-issuing whatever was in flight when the last worker stopped), and steps the
interpreter until the execution ends or can only wait. Every finished state is
committed with the new cursor in one transaction (``Repository.checkpoint``), so a
killed worker loses at most the state it was in: a state whose result was
committed never runs again, and a task that ran without its result being committed
runs again with the same idempotency key.

Short waits and back-offs (up to ``park_threshold_seconds``) sleep in the worker;
longer ones, and ``Message`` states, park the execution (WAITING) with a timer or
correlation row and free the worker. ``fire_due_timers`` and ``recover`` find
executions to advance again.

Over 700 lines, for now: ``Runner`` and ``_Advance`` share the commit policy
and its replay, and the issue-11 guards (poison executions, event budget) and the lease clock just
landed here; the next split takes the waits (timers, correlations, parking) to
``runtime/waits.py``, as ``leases.py`` took the lease keeper.
"""

from __future__ import annotations

import heapq
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc

from orchestrator import asl
from orchestrator.asl import errors as asl_errors
from orchestrator.asl.interpreter import Event, HistoryEvent
from orchestrator.errors import ExecutionNotFound
from orchestrator.handlers import HandlerResolver
from orchestrator.logs import log_context
from orchestrator.runtime import metrics, notices, tracing
from orchestrator.runtime.callbacks import (
    new_task_token,
    run_with_heartbeat,
    token_event,
    waiting_key,
)
from orchestrator.runtime.clock import Clock, SystemClock
from orchestrator.runtime.express import is_express, run_express
from orchestrator.runtime.leases import LeaseKeeper
from orchestrator.runtime.local import run_task
from orchestrator.runtime.maprun import MapRunner
from orchestrator.settings import Settings
from orchestrator.store import (
    Checkpoint,
    Execution,
    LeaseLost,
    NewCorrelation,
    NewHistoryEvent,
    NewTaskToken,
    NewTimer,
    PayloadRejected,
    PayloadTooLarge,
    Repository,
    Timer,
    Version,
)
from orchestrator.store.payloads import encode
from orchestrator.types import ExecutionStatus, TaskTokenStatus, TimerKind, is_start_ticket

log = logging.getLogger("orchestrator.runtime")

_EVENT_TYPES = {
    "succeeded": "StateSucceeded",
    "failed": "StateFailed",
    "retrying": "StateRetrying",
    "caught": "StateCaught",
}


def default_owner() -> str:
    """A lease owner name unique to this process and call site."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


def to_datetime(epoch: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (the store's time type)."""
    return datetime.fromtimestamp(epoch, UTC)


def history_row(event: HistoryEvent, started: float | None = None) -> NewHistoryEvent:
    """An interpreter history event as a stored history row (``started``: when a Task
    attempt's handler was called, epoch seconds)."""
    return NewHistoryEvent(
        event_type=_EVENT_TYPES.get(event.status, event.status),
        state_name=event.state,
        state_type=event.type,
        input=event.input,
        output=event.output,
        error=event.error,
        cause=event.cause,
        attempt=event.attempt,
        entered_at=to_datetime(event.entered_at),
        recorded_at=to_datetime(event.exited_at),
        assigned=event.assigned,
        path=tuple(event.path),
        started_at=None if started is None else to_datetime(started),
    )


_Key = tuple[tuple[int, ...], int]

#: Share of the lease that must be left, by this worker's own reckoning, before a
#: handler is called; with less, the lease is renewed first (or the advance ends).
#: The keeper renews every third of the lease, so half leaves room for its first
#: renewal and its round trip.
LEASE_MARGIN = 0.5

#: The runner's step cap, as a multiple of the event limit the engine enforces.
_BACKSTOP = 2

#: Longest cause stored for an unexpected error (the traceback goes to the log).
_CAUSE_CHARS = 2000

_TRANSIENT: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)

#: Most history rows held back before a commit (see ``_Advance.must_commit``).
_MAX_BUFFERED = 100


def _waiting_payload(path: tuple[int, ...], token: int) -> dict[str, Any]:
    """What a timer or correlation row carries back: the frame and its token."""
    return {"path": list(path), "token": token}


def _key(payload: Any) -> _Key | None:
    if not isinstance(payload, dict) or "token" not in payload:
        return None
    return tuple(int(i) for i in payload.get("path", ())), int(payload["token"])


@dataclass(slots=True)
class _Pass:
    """The work of one advance: what to deliver, run, sleep on or park on."""

    events: list[Event] = field(default_factory=list)
    tasks: list[asl.RunTask] = field(default_factory=list)
    sleeps: list[tuple[float, int, asl.TimerFired]] = field(default_factory=list)
    timers: list[NewTimer] = field(default_factory=list)
    correlations: list[NewCorrelation] = field(default_factory=list)
    history: list[NewHistoryEvent] = field(default_factory=list)


class Runner:
    """Advances stored executions, one at a time per call, under a lease.

    Args:
        repository: the store.
        settings: lease length, park threshold, payload limit.
        handlers: resolves Task resources (default: the process-wide registry).
        clock: where time is read and short waits sleep.
        owner: this runner's lease owner name (default: host + random).
        max_workers: threads for tasks that are ready together (Parallel, Map).
    """

    def __init__(
        self,
        repository: Repository,
        *,
        settings: Settings,
        handlers: HandlerResolver | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        max_workers: int = 16,
    ) -> None:
        if handlers is None:
            from orchestrator.handlers import registry

            handlers = registry
        self.repo, self.settings, self.handlers = repository, settings, handlers
        self.clock = clock or SystemClock()
        # With the real clock, lease times are left to the store, which takes them
        # from PostgreSQL's clock: one clock for every host. A clock passed in (a
        # test's) stays the one leases are read by.
        self._db_clock = clock is None
        self.owner = owner or default_owner()
        self.max_workers = max_workers
        self._definitions: dict[int, asl.Definition] = {}
        self._keeper: LeaseKeeper | None = None
        self._keeper_lock = threading.Lock()
        #: Distributed Maps: their runs, children and results (``runtime/maprun.py``).
        self.map_runs = MapRunner(self)

    def lease_now(self) -> datetime | None:
        """The ``now`` passed to lease statements: None lets the store use the database's."""
        return None if self._db_clock else to_datetime(self.clock.now())

    def lease_keeper(self) -> LeaseKeeper:
        """This runner's lease keeper (its thread starts on first use)."""
        with self._keeper_lock:
            if self._keeper is None:
                self._keeper = LeaseKeeper(self.repo, self.owner, self.settings.lease_seconds)
            return self._keeper

    # -- entry points --------------------------------------------------------

    def advance(self, execution_id: str, *, ticket: str | None = None) -> Execution | None:
        """Advance an execution as far as it goes without waiting.

        ``ticket``: the start ticket its message carries, whose live lease the claim
        may take over (see :meth:`advance_started`).

        Returns:
            The execution as last stored, or None when it could not be claimed
            (another worker holds it, it is parked or ended, or it does not exist).
        """
        sent = time.monotonic()
        execution = self.repo.claim(
            execution_id,
            self.owner,
            lease_seconds=self.settings.lease_seconds,
            now=self.lease_now(),
            ticket=ticket,
        )
        if execution is None:
            return None
        return self._advance_claimed(execution, sent)

    def advance_started(
        self,
        execution_id: str,
        ticket: str,
        start: Execution | None = None,
        *,
        redelivered: bool = False,
    ) -> Execution | None:
        """Advance an EXPRESS execution started for a worker under a start ticket.

        ``StateMachine.start_async`` stores such an execution RUNNING under the lease
        of ``ticket`` and publishes the ticket with the row as stored (``start``).
        The worker that takes the message runs it from that row and ends it under
        the ticket's lease, renewed meanwhile if it runs long: one statement in all,
        no claim. The end is fenced as a claimed end is: it stores nothing if the
        execution was stopped, or taken over after the ticket's lease ran out.

        It is claimed first, the ticket's lease taken over (a take-over, counted
        towards ``ORCHESTRATOR_MAX_STEP_ATTEMPTS``), and advanced as :meth:`advance`
        does, when the message carries no row, was redelivered (the worker that
        took it first died), or was queued so long that half the ticket's lease ran
        out.

        Returns:
            As :meth:`advance`.
        """
        if start is not None and self._runs_as_started(execution_id, ticket, start, redelivered):
            stored = run_express(self, [start], owner=ticket)[0]
            if stored is not None:
                return stored
            try:
                return self.repo.get_execution(execution_id)
            except ExecutionNotFound:  # no such row: a stale or made-up message
                return None
        return self.advance(execution_id, ticket=ticket)

    def _runs_as_started(
        self, execution_id: str, ticket: str, start: Execution, redelivered: bool
    ) -> bool:
        """Whether a started execution's row may be run as the message carries it."""
        expires = start.lease_expires_at
        return (
            not redelivered
            and start.id == execution_id
            and is_express(start)
            and start.status == ExecutionStatus.RUNNING
            and is_start_ticket(ticket)
            and start.lease_owner == ticket
            and expires is not None
            and (expires - to_datetime(self.clock.now())).total_seconds()
            > self.settings.lease_seconds / 2
        )

    def advance_many(
        self,
        execution_ids: Sequence[str],
        *,
        transient: Callable[[BaseException], bool] = lambda exc: False,
    ) -> GroupOutcome:
        """Advance the executions of one message: claimed together, ended together.

        All of ``execution_ids`` are claimed in one statement (each with its own
        lease, renewed in the background until its turn comes), advanced one
        after another as :meth:`advance` would, and the final checkpoints of
        those that end are committed in one transaction at the end. Everything
        else (waits, Task results before the next handler) commits as usual.
        A crash before the group commit costs what a crash before any commit
        does: the executions run again from their last commit, under recovery.

        Args:
            execution_ids: the executions, in the order to advance them.
            transient: tells an infrastructure error (the database is away) from
                an error of one execution. A transient error stops the group: what
                ended so far is committed if possible, the rest is released.

        Returns:
            What became of each execution, and which are left to retry.
        """
        outcome = GroupOutcome()
        sent = time.monotonic()
        claimed = self.repo.claim_many(
            execution_ids,
            self.owner,
            lease_seconds=self.settings.lease_seconds,
            now=self.lease_now(),
        )
        # The leases of those whose turn has not come are renewed meanwhile.
        waiting = list(claimed) if len(claimed) > 1 else []
        for execution_id in waiting:
            self.lease_keeper().hold(execution_id)
        express = [e for e in claimed.values() if is_express(e)]
        try:
            if express:  # run in memory, ended in one statement (runtime/express.py)
                self._advance_express(express, outcome, transient)
                done = {e.id for e in express}
                execution_ids = [i for i in execution_ids if i not in done]
                claimed = {i: e for i, e in claimed.items() if i not in done}
            if execution_ids and not outcome.retry:
                self._advance_group(execution_ids, claimed, _Group(sent), outcome, transient)
            elif outcome.retry:
                for execution_id in execution_ids:
                    if execution_id in claimed:
                        self._release_quietly(execution_id)
                        outcome.retry.append(execution_id)
                    else:
                        outcome.executions.setdefault(execution_id, None)
        finally:
            for execution_id in waiting:
                self.lease_keeper().drop(execution_id)
        return outcome

    def _advance_express(
        self,
        executions: list[Execution],
        outcome: GroupOutcome,
        transient: Callable[[BaseException], bool],
    ) -> None:
        """EXPRESS executions of a message: run in memory, their ends stored together."""
        try:
            stored = run_express(self, executions)
        except Exception as exc:
            if not (transient(exc) or is_transient(exc)):
                raise
            for execution in executions:
                self._release_quietly(execution.id)
            outcome.retry = [e.id for e in executions]
            outcome.cause = exc
            return
        for execution, row in zip(executions, stored, strict=True):
            if row is None:
                log.info("lease lost", extra={"action": "lease_lost", "execution_id": execution.id})
                row = self.repo.get_execution(execution.id)
            outcome.executions[execution.id] = row
        self.children_ended([row for row in stored if row is not None])

    def _advance_group(
        self,
        execution_ids: Sequence[str],
        claimed: dict[str, Execution],
        group: _Group,
        outcome: GroupOutcome,
        transient: Callable[[BaseException], bool],
    ) -> None:
        for index, execution_id in enumerate(execution_ids):
            execution = claimed.get(execution_id)
            if execution is None:
                outcome.executions.setdefault(execution_id, None)
                continue
            try:
                stored = self._advance_claimed(execution, group.claimed_at, group)
            except Exception as exc:
                if not transient(exc):
                    log.exception(
                        "advancing execution %s failed; going on with the rest",
                        execution_id,
                        extra={"action": "run_executions.error", "execution_id": execution_id},
                    )
                    outcome.errors[execution_id] = exc
                    continue
                rest = [i for i in execution_ids[index + 1 :] if i in claimed]
                for other in rest:
                    self._release_quietly(other)
                outcome.retry = [execution_id, *rest]
                outcome.cause = exc
                self._commit_group_quietly(group, outcome)
                return
            except BaseException:
                for other in execution_ids[index + 1 :]:
                    if other in claimed:
                        self._release_quietly(other)
                self._commit_group_quietly(group, outcome)
                raise
            if stored is not None:
                outcome.executions[execution_id] = stored
        self._commit_group(group, outcome)

    def _commit_group(self, group: _Group, outcome: GroupOutcome) -> None:
        """Commit the deferred final checkpoints in one transaction."""
        if not group.finals:
            return
        finals, group.finals = group.finals, []
        stored = self.repo.checkpoint_many(
            [(advance.execution.id, self.owner, step) for advance, step in finals],
            now=self.lease_now(),
        )
        notices.publish_ends(self.settings, self.repo, stored)  # wakes waiters
        for (advance, _), row in zip(finals, stored, strict=True):
            execution_id = advance.execution.id
            if row is None:
                log.info("lease lost", extra={"action": "lease_lost", "execution_id": execution_id})
                outcome.executions[execution_id] = self.repo.get_execution(execution_id)
            else:
                outcome.executions[execution_id] = row
        self.children_ended([row for row in stored if row is not None])

    def children_ended(self, executions: Sequence[Execution]) -> None:
        """:meth:`child_ended` for a group: each Map Run among them is settled once."""
        seen: set[str] = set()
        for execution in executions:
            if not execution.status.is_terminal:
                continue
            if execution.map_run_id is not None and execution.map_run_id not in seen:
                seen.add(execution.map_run_id)
                self.child_ended(execution)

    def child_ended(self, execution: Execution) -> None:
        """After a final commit: settle the Map Run of a Distributed Map's child.

        A failure here is logged, not raised: the child's own end is committed, and
        the sweeper settles running Map Runs too.
        """
        if execution.map_run_id is None:
            return
        try:
            self.map_runs.child_ended(execution)
        except Exception:
            log.warning("settling map run %s failed", execution.map_run_id, exc_info=True)

    def _commit_group_quietly(self, group: _Group, outcome: GroupOutcome) -> None:
        """Commit what ended before an interruption; if that fails too, it is retried."""
        ids = [advance.execution.id for advance, _ in group.finals]
        try:
            self._commit_group(group, outcome)
        except Exception as exc:
            log.warning("group commit failed; retrying its executions", exc_info=True)
            for execution_id in ids:
                self._release_quietly(execution_id)
            outcome.retry = [*ids, *outcome.retry]
            outcome.cause = outcome.cause or exc

    def advance_claimed(
        self, execution: Execution, *, claimed_at: float | None = None
    ) -> Execution:
        """Advance an execution this runner already holds (e.g. created with ``claim_as``).

        Args:
            execution: the claimed execution.
            claimed_at: ``time.monotonic()`` read just before the claim was sent
                (default: now, for a claim that has just returned).
        """
        stored = self._advance_claimed(
            execution, time.monotonic() if claimed_at is None else claimed_at
        )
        assert stored is not None  # only a group defers the final checkpoint
        return stored

    def fire_due_timers(self, *, limit: int = 100) -> list[str]:
        """Fire due timers and advance every execution they woke; return those ids."""
        fired = self.repo.claim_due_timers(to_datetime(self.clock.now()), limit=limit)
        woken = list(dict.fromkeys(t.execution_id for t in fired))
        for execution_id in woken:
            self.advance(execution_id)
        return woken

    def recover(self, *, limit: int = 100, grace_seconds: float = 60.0) -> list[str]:
        """Advance executions whose lease expired (a killed worker) or that nobody took up."""
        stale = self.repo.expired_leases(
            to_datetime(self.clock.now()), limit=limit, pending_grace_seconds=grace_seconds
        )
        done = []
        for execution in stale:
            if self.advance(execution.id) is not None:
                done.append(execution.id)
        metrics.count_recoveries(len(done))
        return done

    # -- one advance ---------------------------------------------------------

    def definition(self, version_id: int) -> asl.Definition:
        """The parsed definition of a version (cached: versions never change)."""
        found = self._definitions.get(version_id)
        if found is None:
            version: Version = self.repo.get_version_by_id(version_id)
            found = asl.load(version.definition)
            self._definitions[version_id] = found
        return found

    def _context(self, execution: Execution, version: asl.Definition) -> dict[str, Any]:
        return asl.execution_context(
            execution_id=execution.id,
            name=execution.name,
            input=execution.input,
            start_time=execution.started_at.timestamp(),
            state_machine_id=str(execution.state_machine_id),
            redrive_count=execution.redrive_count,
        )

    def _advance_claimed(
        self, execution: Execution, claimed_at: float, group: _Group | None = None
    ) -> Execution | None:
        if is_express(execution):
            try:
                stored = run_express(self, [execution])[0]
            except BaseException:
                self._release_quietly(execution.id)
                raise
            if stored is not None:
                self.child_ended(stored)
            return stored or self.repo.get_execution(execution.id)
        machine = metrics.machine_name(self.repo, execution.version_id)
        if execution.claim_count > 1:  # claimed again with no checkpoint since: a take-over
            metrics.count_takeover(machine)
        with (
            log_context(
                execution_id=execution.id, state_machine=machine, batch_id=execution.batch_id
            ),
            tracing.execution_span(
                execution_id=execution.id,
                machine=machine,
                batch_id=execution.batch_id,
                stored=execution.trace_context,
            ) as trace_context,
        ):
            if trace_context is not None:
                self._store_trace_context(execution.id, trace_context)
            return self._advance_in_context(execution, claimed_at, group)

    def _store_trace_context(self, execution_id: str, carrier: tracing.Carrier) -> None:
        # Best effort: a lost trace context costs a broken trace, never the advance.
        try:
            self.repo.set_trace_context(execution_id, carrier)
        except Exception as exc:
            log.warning(
                "could not store the trace context: %s",
                exc,
                extra={"action": "trace_context", "execution_id": execution_id},
            )

    def _advance_in_context(
        self, execution: Execution, claimed_at: float, group: _Group | None
    ) -> Execution | None:
        advance: _Advance | None = None
        try:
            if execution.claim_count > self.settings.max_step_attempts:
                self._fail_dying(execution)
                raise _Stop
            defn = self.definition(execution.version_id)
            advance = _Advance(self, execution, defn, self._context(execution, defn), group)
            advance.lease_until = claimed_at + self.settings.lease_seconds
            advance.run()
        except LeaseLost:
            log.info("lease lost", extra={"action": "lease_lost", "execution_id": execution.id})
        except _Stop:
            pass
        except Exception as exc:
            if is_transient(exc):
                self._release_quietly(execution.id)
                raise
            # A bug or a value nothing expected (an overflow, a broken cursor): the
            # same advance would crash again on every recovery, so end it here.
            self._fail_poisoned(execution, exc)
        except BaseException:
            # A database outage, a time limit, a shutdown: hand the execution back so
            # the sweeper re-publishes it after its grace period (the last checkpoint
            # is intact), instead of holding it until the lease expires.
            self._release_quietly(execution.id)
            raise
        if advance is not None and advance.deferred:
            return None  # its final checkpoint waits for the group commit
        if advance is not None and advance.stored is not None:
            if advance.parked_token and advance.stored.status == ExecutionStatus.PENDING:
                # The token was answered before the park committed (the wake-up made
                # the park store PENDING): go on now rather than after a sweep.
                return self.advance(execution.id) or advance.stored
            self.child_ended(advance.stored)
            return advance.stored  # the row as the last checkpoint stored it
        return self.repo.get_execution(execution.id)

    def not_claimed(self, execution_id: str) -> dict[str, Any]:
        """Why ``advance`` could not claim an execution: unknown id (logged as an
        error), ended, or held by another worker; a small report for the task."""
        return _not_claimed(self, execution_id)

    def _fail_poisoned(self, execution: Execution, exc: Exception) -> None:
        """End an execution FAILED (States.Runtime) after an unexpected exception."""
        log.error(
            "execution %s failed on an unexpected error",
            execution.id,
            exc_info=exc,
            extra={"action": "poisoned", "execution_id": execution.id},
        )
        cause = f"unexpected error while advancing: {type(exc).__name__}: {exc}"[:_CAUSE_CHARS]
        try:
            fail_at_checkpoint(self, execution.id, asl_errors.RUNTIME, cause)
        except LeaseLost:
            pass  # stopped or taken over meanwhile: its new owner decides
        except Exception:
            self._release_quietly(execution.id)
            raise exc from None

    def _fail_dying(self, execution: Execution) -> None:
        """End an execution FAILED (States.Runtime) whose workers keep dying on one step.

        Each claim since the last checkpoint is a worker that took the step up and
        committed nothing: it died (SIGKILL, out of memory, a hard time limit), since
        an exception would have failed the execution, or it handed the execution
        back on an infrastructure error. Running the step once more would most
        likely only kill another worker.
        """
        limit = self.settings.max_step_attempts
        state = execution.current_state or self.definition(execution.version_id).start_at
        cause = (
            f"state {state!r} was attempted {limit} time{'s' if limit > 1 else ''} without "
            "progress: each time the worker advancing it died before committing anything "
            "(killed, out of memory or past a hard time limit); "
            f"ORCHESTRATOR_MAX_STEP_ATTEMPTS is {limit}"
        )
        log.error(
            "execution %s failed: its workers died %d time(s) at state %s",
            execution.id,
            limit,
            state,
            extra={"action": "dying", "execution_id": execution.id, "state": state},
        )
        fail_at_checkpoint(self, execution.id, asl_errors.RUNTIME, cause)

    def _release_quietly(self, execution_id: str) -> None:
        try:
            self.repo.release(execution_id, self.owner)
        except Exception:  # the database may be what failed; the lease then just expires
            log.warning("could not release %s", execution_id, exc_info=True)


class _Advance:
    """One claimed execution, stepped until it ends, parks or loses its lease."""

    def __init__(
        self,
        runner: Runner,
        execution: Execution,
        defn: asl.Definition,
        ctx: dict[str, Any],
        group: _Group | None = None,
    ) -> None:
        self.runner, self.execution, self.defn, self.ctx = runner, execution, defn, ctx
        self.group = group  # set: the final checkpoint joins the group commit
        self.deferred = False
        self.repo, self.clock = runner.repo, runner.clock
        self.work = _Pass()
        self.cursor: dict[str, Any] = execution.cursor or {}
        self.strict = False  # commit after every state (see run)
        self.held: _Held | None = None  # a finished Task's result, not yet committed
        self.stored: Execution | None = None  # the row as the final checkpoint stored it
        # A fresh start that parks nothing has no timers or correlations to cancel.
        self.may_have_waits = execution.cursor is not None
        # Until when (time.monotonic()) the lease is surely held: the lease cannot
        # start before the statement that took or renewed it was sent, whatever the
        # clocks say and however long its reply took (see ``ensure_lease``).
        self.lease_until = time.monotonic() + runner.settings.lease_seconds

        # A backstop to the engine's own count of events: steps this advance may take.
        # Twice the limit, less the rows already stored, so it never fires before the
        # engine on an execution whose steps record events, and still ends one whose
        # steps record none.
        self.steps = 0
        self.budget = _BACKSTOP * runner.settings.max_events_per_execution - execution.last_seq
        self.parked_token = False  # a task token was registered (its answer may be in)
        # When each Task attempt's handler was called, by (frame path, state), until its row.
        self.task_started: dict[tuple[tuple[int, ...], str], float] = {}

    # lifecycle ---------------------------------------------------------------

    def run(self) -> None:
        try:
            self.run_from_checkpoint()
        except _Replay:
            # A buffered commit held something that cannot be stored. Go back to the
            # last commit and replay committing every state, so the failure lands on
            # the state that produced it (deterministic states replay identically).
            # A Task result held back is committed first, so that its handler is
            # not called again by the replay.
            self.strict = True
            held, self.held, self.work = self.held, None, _Pass()
            if held is None:
                self.cursor = self.repo.get_execution(self.execution.id).cursor or {}
            else:
                self.cursor, self.work.history = held.cursor, held.history
                self.checkpoint(ExecutionStatus.RUNNING)
            self.run_from_checkpoint()

    def run_from_checkpoint(self) -> None:
        now = self.clock.now()
        if not self.cursor:
            self.cursor = asl.start(self.defn, self.execution.input, now=now)
        elif isinstance(asl.result_of(self.cursor), asl.Failed):
            asl.redrive(self.defn, self.cursor, now=now)  # the store reopened it: a redrive
        else:
            self.resume(now)
        while True:
            self.steps += 1
            if self.steps > self.budget:
                self.fail_runaway()
                return
            event = self.work.events.pop(0) if self.work.events else None
            result = asl.step(
                self.defn,
                self.cursor,
                event,
                now=self.clock.now(),
                context=self.ctx,
                max_events=self.runner.settings.max_events_per_execution,
                task_tokens=new_task_token,
                expression_timeout_ms=self.runner.settings.expression_timeout_ms,
                max_map_items=self.runner.settings.max_map_items,
            )
            self.cursor = result.cursor  # step returns the new cursor, the old one untouched
            self.work.history.extend(
                history_row(e, self.task_started.pop((e.path, e.state), None))
                for e in result.events
            )
            metrics.observe_events(self.repo, self.execution.version_id, self.defn, result.events)
            tracing.state_spans(result.events)
            if self.carry_out(result.command):
                return

    def resume(self, now: float) -> None:
        """Re-issue what was in flight; deliver what already arrived for it."""
        commands = asl.reissue(self.defn, self.cursor, now=now, context=self.ctx)
        if not commands:
            return
        arrived, still_open = self.stored_waits()
        for command in commands:
            if isinstance(command, asl.RunMap):  # its Map Run says where it stands
                self.carry_out(command)
                continue
            key = (tuple(getattr(command, "path", ())), int(getattr(command, "token", 0)))
            if key in arrived:
                self.work.events.append(arrived[key])
            elif key not in still_open:  # lost in a crash (or never parked): issue it again
                self.carry_out(command)

    def stored_waits(self) -> tuple[dict[_Key, Event], set[_Key]]:
        """Timers and correlations of this execution: events that arrived, waits still open."""
        arrived: dict[_Key, Event] = {}
        still_open: set[_Key] = set()
        for timer in self.repo.execution_timers(self.execution.id):
            key = _key(timer.payload)
            tied = (TimerKind.MESSAGE_TIMEOUT, TimerKind.TASK_TOKEN)
            if key is None or timer.kind in tied or _cancelled(timer):
                continue  # a cancelled timer (stop) is a wait to issue again on redrive
            if timer.fired:
                arrived[key] = asl.TimerFired(path=key[0], token=key[1])
            else:
                still_open.add(key)
        for corr in self.repo.execution_correlations(self.execution.id):
            key = _key(corr.payload)
            if key is None:
                continue
            if not corr.consumed:
                still_open.add(key)
            elif corr.outcome == "MESSAGE":
                arrived[key] = asl.MessageReceived(path=key[0], token=key[1], data=corr.message)
            elif corr.outcome == "TIMEOUT":
                arrived[key] = asl.TimerFired(path=key[0], token=key[1])
        self.token_waits(arrived, still_open)
        return arrived, still_open

    def token_waits(self, arrived: dict[_Key, Event], still_open: set[_Key]) -> None:
        """Task tokens: answers and expiries arrived; tokens whose handler ran still wait.

        A token registered but whose handler never returned (a crash between the
        two) is in neither, so its Task is issued again: same token, same handler
        input, same idempotency key.
        """
        for token in self.repo.execution_task_tokens(self.execution.id):
            key = waiting_key(token.payload)
            if key is None:
                continue
            event = token_event(token)
            if event is not None:
                arrived[key] = event
            elif token.status == TaskTokenStatus.WAITING and token.called_at is not None:
                still_open.add(key)

    # commands ----------------------------------------------------------------

    def carry_out(self, command: asl.Command) -> bool:
        """Handle one command; True when this advance is over."""
        if isinstance(command, asl.Continue):
            if self.must_commit():
                self.checkpoint(ExecutionStatus.RUNNING)
            return False
        if isinstance(command, asl.RunTask):
            self.work.tasks.append(command)
        elif isinstance(command, asl.RunMap):
            self.start_map(command)
        elif isinstance(command, asl.WaitUntil):
            self.wait_until(command)
        elif isinstance(command, asl.WaitForMessage):
            self.wait_for_message(command)
        elif isinstance(command, asl.Idle):
            return self.idle()
        else:
            self.finish(command)
            return True
        return False

    def must_commit(self) -> bool:
        """Commit now only what would be wrong or costly to do again after a crash.

        Pass, Choice, Succeed and the like are deterministic and free of side
        effects, so they ride along with the next commit (a crash just replays
        them, and their history rows are written once, by that commit); a long run
        of them is committed every ``_MAX_BUFFERED`` states. A finished Task's
        result is held too, but only until the next handler call, sleep or the
        end of the advance (``commit_held``): the deterministic states after the
        last Task then share its commit, so a short execution is one transaction
        after its start. A crash before that commit runs the Task again, with the
        same idempotency key, as a crash during the Task always could.
        """
        history = self.work.history
        if self.strict or len(history) >= _MAX_BUFFERED:
            return True
        if self.held is None and not self.work.events and self.holds_task():
            # What the old per-Task commit would have stored, kept for _Replay.
            self.held = _Held(cursor=_copy(self.cursor), history=list(history))
        return False

    def holds_task(self) -> bool:
        """Whether a Task's result (or failed attempt) is buffered, not yet committed."""
        return any(row.state_type == "Task" for row in self.work.history)

    def commit_held(self) -> None:
        """Commit a buffered Task result before anything else with a side effect or a wait."""
        if self.holds_task():
            self.checkpoint(ExecutionStatus.RUNNING)

    def start_map(self, command: asl.RunMap) -> None:
        """A Distributed Map: open or find its Map Run; step with its outcome, or park."""
        self.commit_held()
        self.ensure_lease()
        event = self.runner.map_runs.start(self.execution, command, self.keep_lease)
        if event is None:
            # Parks when the step goes idle; the last child may wake it before that.
            self.parked_token = True
        else:
            self.work.events.append(event)

    def wait_until(self, command: asl.WaitUntil) -> None:
        fired = asl.TimerFired(path=command.path, token=command.token)
        if command.until - self.clock.now() <= self.runner.settings.park_threshold_seconds:
            heapq.heappush(self.work.sleeps, (command.until, command.token, fired))
            return
        kind = TimerKind.RETRY if command.retry else TimerKind.WAIT
        payload = _waiting_payload(command.path, command.token)
        self.work.timers.append(
            NewTimer(kind=kind, due_at=to_datetime(command.until), payload=payload)
        )

    def wait_for_message(self, command: asl.WaitForMessage) -> None:
        timeout = None if command.timeout_at is None else to_datetime(command.timeout_at)
        self.work.correlations.append(
            NewCorrelation(
                state_name=command.state,
                key=command.correlation_key,
                value=command.correlation_value,
                timeout_at=timeout,
                payload=_waiting_payload(command.path, command.token),
            )
        )

    def idle(self) -> bool:
        if self.work.tasks:
            self.commit_held()
            self.work.events.extend(self.run_tasks())
            return False
        if self.work.sleeps:
            self.commit_held()
            until, _, fired = heapq.heappop(self.work.sleeps)
            with self.keep_lease():
                self.clock.sleep(until - self.clock.now())
            self.work.events.append(fired)
            return False
        self.checkpoint(ExecutionStatus.WAITING)
        return True

    def run_tasks(self) -> list[Event]:
        tasks, self.work.tasks = self.work.tasks, []
        self.ensure_lease()
        now = self.clock.now()
        self.task_started.update(((tuple(t.path), t.state), now) for t in tasks)
        with self.keep_lease():
            if len(tasks) == 1 or self.runner.max_workers <= 1:
                events = [self.run_one(t) for t in tasks]
            else:
                workers = min(self.runner.max_workers, len(tasks))
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    events = list(pool.map(self.run_one, tasks))
        return [event for event in events if event is not None]

    def run_one(self, command: asl.RunTask) -> Event | None:
        if command.task_token is not None:
            return self.run_callback(command, command.task_token)
        # Set here, not inherited: pool threads do not carry the caller's context.
        with log_context(
            execution_id=self.execution.id,
            state_machine=metrics.machine_name(self.repo, self.execution.version_id),
            batch_id=self.execution.batch_id,
            state=command.state,
        ):
            event = self._call(command)
        if isinstance(event, asl.TaskSucceeded):
            try:
                encode(event.output, field="task output", limit=self.repo.payload_max_bytes)
            except PayloadRejected as exc:
                name = (
                    asl_errors.DATA_LIMIT_EXCEEDED
                    if isinstance(exc, PayloadTooLarge)
                    else asl_errors.TASK_FAILED
                )
                return asl.TaskFailed(
                    path=command.path, token=command.token, error=name, cause=str(exc)
                )
        return event

    def _call(self, command: asl.RunTask) -> Event:
        if command.heartbeat_seconds is not None:
            return run_with_heartbeat(
                command, self.runner.handlers, self.execution.id, command.heartbeat_seconds
            )
        return run_task(command, self.runner.handlers, self.execution.id)

    def run_callback(self, command: asl.RunTask, task_token: str) -> Event | None:
        """A ``.waitForTaskToken`` Task: register its token, call the handler, then wait.

        The token is committed before the handler sees it, so an answer sent at once
        finds it. The handler's return value is not the Task's result (AWS ignores
        it too); if it raises, the Task fails with its error as for any Task.
        Returns the event to step with, or None: the Task waits for its token.
        """
        now = self.clock.now()
        timeout = command.timeout_seconds
        stored = self.repo.add_task_token(
            self.execution.id,
            self.runner.owner,
            NewTaskToken(
                token=task_token,
                state_name=command.state,
                attempt=command.attempt,
                timeout_at=None if timeout is None else to_datetime(now + timeout),
                heartbeat_seconds=command.heartbeat_seconds,
                payload=_waiting_payload(command.path, command.token),
            ),
            now=to_datetime(now),
        )
        self.parked_token = True
        event = run_task(command, self.runner.handlers, self.execution.id)
        failed = isinstance(event, asl.TaskFailed)
        self.repo.task_token_called(stored.id, failed=failed, now=to_datetime(self.clock.now()))
        return event if failed else None

    def ensure_lease(self) -> None:
        """Call no handler without a lease that surely outlives the margin; renew if short.

        The bound is ``lease_until``, measured from when the claim, renewal or
        checkpoint was *sent*: a reply that sat in a partitioned link for longer
        than the lease returns a lease already gone, which the returned expiry
        alone, read against this host's clock, would not show.

        Raises:
            LeaseLost: the renewal was refused, or came back too late to trust.
        """
        lease = self.runner.settings.lease_seconds
        margin = lease * LEASE_MARGIN
        if self.lease_until - time.monotonic() > margin:
            return
        sent = time.monotonic()
        self.repo.renew_lease(
            self.execution.id, self.runner.owner, lease_seconds=lease, now=self.runner.lease_now()
        )
        self.lease_until = sent + lease
        if self.lease_until - time.monotonic() <= margin:
            log.warning(
                "lease renewal of %s took too long; not calling the handler",
                self.execution.id,
                extra={"action": "lease_too_short", "execution_id": self.execution.id},
            )
            raise LeaseLost(self.execution.id, self.runner.owner)

    def finish(self, command: asl.Command) -> None:
        if isinstance(command, asl.Succeeded):
            self.checkpoint(ExecutionStatus.SUCCEEDED, output=command.output)
            return
        assert isinstance(command, asl.Failed)
        status = ExecutionStatus.TIMED_OUT if command.timed_out else ExecutionStatus.FAILED
        self.checkpoint(status, error=command.error or None, cause=command.cause)

    # persistence ------------------------------------------------------------

    def checkpoint(self, status: ExecutionStatus, **ending: Any) -> None:
        """Commit history, cursor and waits in one transaction (LeaseLost ends the advance)."""
        work = self.work
        current = self.cursor.get("root", {}).get("s")
        if status == ExecutionStatus.WAITING:
            self.may_have_waits = True
        final = status != ExecutionStatus.RUNNING
        if final and self.group is not None and status != ExecutionStatus.WAITING:
            self.defer(status, current, **ending)
            return
        store = self.repo.checkpoint_execution if final else self.repo.checkpoint
        sent = time.monotonic()
        try:
            stored = store(
                self.execution.id,
                self.runner.owner,
                cursor=self.cursor,
                status=status,
                current_state=current,
                history=work.history,
                timers=work.timers if status == ExecutionStatus.WAITING else (),
                correlations=work.correlations if status == ExecutionStatus.WAITING else (),
                lease_seconds=self.runner.settings.lease_seconds,
                may_have_waits=self.may_have_waits,
                now=self.runner.lease_now(),
                **ending,
            )
        except PayloadRejected as exc:
            if len(work.history) > 1 and not self.strict:
                raise _Replay from exc
            self.fail_oversized(exc)
            raise _Stop from None
        work.history, self.held = [], None
        if not final:  # a RUNNING checkpoint extends the lease from when it was sent
            self.lease_until = sent + self.runner.settings.lease_seconds
        if isinstance(stored, Execution):
            self.stored = stored
            notices.publish_ends(self.runner.settings, self.repo, [stored])  # if it ended
        if status == ExecutionStatus.WAITING:
            work.timers, work.correlations = [], []

    def defer(self, status: ExecutionStatus, current: str | None, **ending: Any) -> None:
        """Hand the final checkpoint to the group commit, once its payloads are checked."""
        assert self.group is not None
        step = Checkpoint(
            cursor=self.cursor,
            status=status,
            current_state=current,
            history=self.work.history,
            may_have_waits=self.may_have_waits,
            **ending,
        )
        try:
            self.repo.check_checkpoint(step)
        except PayloadRejected as exc:
            if len(self.work.history) > 1 and not self.strict:
                raise _Replay from exc
            self.fail_oversized(exc)
            raise _Stop from None
        self.group.finals.append((self, step))
        self.deferred = True
        self.work.history, self.held = [], None

    def fail_oversized(self, exc: PayloadRejected) -> None:
        """A state produced data that cannot be stored: fail with DataLimitExceeded.

        What the failed checkpoint would have written is dropped. The execution
        fails at the state it stood on in its last committed cursor (read back
        from the store: the one in memory has moved on), so a redrive runs that
        state again and nothing committed runs twice.
        """
        too_large = isinstance(exc, PayloadTooLarge)
        error = asl_errors.DATA_LIMIT_EXCEEDED if too_large else asl_errors.RUNTIME
        fail_at_checkpoint(self.runner, self.execution.id, error, str(exc))

    def fail_runaway(self) -> None:
        """Too many events: fail here, with what this advance did so far, as AWS does."""
        limit = self.runner.settings.max_events_per_execution
        cause = (
            f"the execution took {_BACKSTOP * limit} steps, twice its limit of {limit} events "
            "(ORCHESTRATOR_MAX_EVENTS_PER_EXECUTION); a state machine that loops never ends"
        )
        now = self.clock.now()
        state = asl.fail_root(self.cursor, error=asl_errors.RUNTIME, cause=cause, now=now)
        self.work.history.append(
            NewHistoryEvent(
                event_type="StateFailed", state_name=state, error=asl_errors.RUNTIME, cause=cause
            )
        )
        self.work.tasks, self.work.sleeps, self.work.events = [], [], []
        self.checkpoint(ExecutionStatus.FAILED, error=asl_errors.RUNTIME, cause=cause)

    @contextmanager
    def keep_lease(self) -> Iterator[None]:
        """Renew the lease in the background while handlers run or the worker sleeps."""
        keeper = self.runner.lease_keeper()
        lost = keeper.hold(self.execution.id)
        try:
            yield
        finally:
            keeper.drop(self.execution.id)
        if lost:
            raise lost[0]


@dataclass(slots=True)
class _Group:
    """The final checkpoints of one message's executions, waiting to commit together."""

    claimed_at: float  # time.monotonic() just before the group claim was sent
    finals: list[tuple[_Advance, Checkpoint]] = field(default_factory=list)


@dataclass(slots=True)
class GroupOutcome:
    """What :meth:`Runner.advance_many` did.

    Attributes:
        executions: each execution as last stored; None if it was not claimed.
        errors: executions whose advance failed with an error of their own.
        retry: executions left untouched or uncommitted by a transient error,
            to advance again (their leases were released).
        cause: that transient error.
    """

    executions: dict[str, Execution | None] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    retry: list[str] = field(default_factory=list)
    cause: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Held:
    """The cursor and history right after a Task's result was applied, uncommitted."""

    cursor: dict[str, Any]
    history: list[NewHistoryEvent]


def _cancelled(timer: Timer) -> bool:
    """Whether a timer was cancelled (the execution stopped) rather than fired.

    Both mark it fired; only a cancellation can happen before it was due, since
    ``claim_due_timers`` takes due timers only.
    """
    return timer.fired and timer.fired_at is not None and timer.fired_at < timer.due_at


def is_transient(exc: BaseException) -> bool:
    """Whether an error is the infrastructure's (database, network, time limit), not the
    execution's: the execution is then handed back to be advanced again later."""
    if isinstance(exc, _TRANSIENT):
        return True
    # Celery's soft time limit, without importing Celery into the runtime.
    return type(exc).__name__ == "SoftTimeLimitExceeded"


def fail_at_checkpoint(runner: Runner, execution_id: str, error: str, cause: str) -> None:
    """End an execution FAILED at the state its last committed cursor stands on.

    What was not committed is dropped, so a redrive runs that state again and
    nothing committed runs twice.
    """
    execution = runner.repo.get_execution(execution_id)
    now = runner.clock.now()
    cursor = execution.cursor
    if not cursor:
        cursor = asl.start(runner.definition(execution.version_id), execution.input, now=now)
    state = asl.fail_root(cursor, error=error, cause=cause, now=now)
    runner.repo.checkpoint(
        execution_id,
        runner.owner,
        cursor=cursor,
        status=ExecutionStatus.FAILED,
        current_state=state,
        history=[
            NewHistoryEvent(event_type="StateFailed", state_name=state, error=error, cause=cause)
        ],
        error=error,
        cause=cause,
        now=to_datetime(now),
    )


def _copy(value: Any) -> Any:
    """A copy of a JSON tree (the interpreter updates cursors in place)."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


class _Stop(Exception):
    """The advance ended early (its outcome is already stored)."""


class _Replay(Exception):
    """Replay from the last commit, committing every state."""


def _not_claimed(runner: Runner, execution_id: str) -> dict[str, Any]:
    """Why a task could not claim its execution: unknown id (an error), ended, or held."""
    try:
        found = runner.repo.get_execution(execution_id)
    except ExecutionNotFound:
        log.error(
            "run_execution: no execution %s was found; the message is dropped",
            execution_id,
            extra={"action": "not_found", "execution_id": execution_id},
        )
        return {"execution_id": execution_id, "status": "NOT_FOUND"}
    log.info(
        "execution %s is %s; nothing to do",
        execution_id,
        found.status,
        extra={"action": "not_claimed", "execution_id": execution_id},
    )
    return {"execution_id": execution_id, "status": "NOT_CLAIMED", "is": str(found.status)}


__all__ = [
    "GroupOutcome",
    "Runner",
    "default_owner",
    "history_row",
    "to_datetime",
]
