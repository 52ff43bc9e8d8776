"""Handles on one execution and on one batch, by id (in the manner of temporal's WorkflowHandle).

    client = Orchestrator()
    client.execution(execution_id).wait(timeout=30)
    client.batch(batch_id).pause(reason="night freeze")

A handle holds its client and an id, and reads nothing until asked: building one
never fails, and each call reads the current truth from the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from orchestrator.types import TERMINAL_STATUSES

if TYPE_CHECKING:
    from orchestrator.batch import BatchProgress
    from orchestrator.batch.control import SteeringReport
    from orchestrator.client import Orchestrator
    from orchestrator.statemachine import StateMachine
    from orchestrator.store import (
        Batch,
        Execution,
        HistoryEvent,
        MapChild,
        MapRun,
        Page,
        TaskToken,
    )


class ExecutionHandle:
    """One execution, by id.

    Attributes:
        id: the execution's id.
    """

    def __init__(self, client: Orchestrator, execution_id: str) -> None:
        self.client, self.id = client, execution_id

    def __repr__(self) -> str:
        return f"ExecutionHandle({self.id!r})"

    def describe(self) -> Execution:
        """The execution as last committed.

        Raises:
            ExecutionNotFound: no execution has this id.
        """
        return self.client.repository.get_execution(self.id)

    def machine(self) -> StateMachine:
        """The state machine version this execution runs on."""
        execution = self.describe()
        return self.client.bind(self.client.version(execution.version_id))

    def history(self) -> list[HistoryEvent]:
        """The execution's history, one row per finished state (or failed attempt).

        Raises:
            ExecutionNotFound: no execution has this id.
        """
        self.describe()
        return self.client.repository.history(self.id)

    def task_tokens(self) -> list[TaskToken]:
        """The execution's task tokens (hashes, states, attempts, outcomes), oldest first."""
        return self.client.repository.execution_task_tokens(self.id)

    def stop(self, *, error: str | None = None, cause: str | None = None) -> bool:
        """Abort a running or waiting execution (ABORTED); False if it had already ended.

        Raises:
            ExecutionNotFound: no execution has this id.
        """
        return self.machine().stop(self.id, error=error, cause=cause)

    def redrive(self) -> Execution:
        """Continue a FAILED, TIMED_OUT or ABORTED execution here, from where it stopped.

        Raises:
            ExecutionNotFound: no execution has this id.
            ValueError: the execution has not ended in a redrivable status.
        """
        return self.machine().redrive(self.id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> Execution:
        """Block until the execution has ended; return it.

        With wake-up notices (a Redis broker, or ``ORCHESTRATOR_NOTICE_URL``), it
        subscribes to the execution's channel, reads the row, and then sleeps
        until the worker that ends the execution says so, reading the row again
        on each notice and every ``poll`` seconds anyway (an end that announces
        nothing, such as a stop or a sweeper's timeout, is seen that way). The
        notice of an EXPRESS end is the row as committed (unless its input and
        output are over 64 KiB), so the row is not read again after it; and the
        wait first looks 20 ms for such a notice before its first read, so a quick
        EXPRESS execution is waited on without any read (one that had already
        ended before the wait is returned 20 ms later than by a read alone, unless
        it was started under a start ticket: the end of such an execution is kept
        on Redis for ten seconds, and read there first).
        Without notices (RabbitMQ, SQLite, ``ORCHESTRATOR_NOTICE_URL=""``, Redis
        away) it reads the row every millisecond for the first 50 ms, then ever
        less often, every ``poll`` seconds at most. See ``runtime/notices.py``.

        Raises:
            ExecutionNotFound: no execution has this id.
            TimeoutError: ``timeout`` seconds passed first (the message has its status).
        """
        from orchestrator.runtime import notices

        deadline = None if timeout is None else time.monotonic() + timeout
        settings, repository = self.client.settings, self.client.repository
        # Subscribed before the first read: an end committed after it is announced to us.
        with notices.subscribe(settings, self.id, repository) as notice:
            if notice.listening:
                # An end already announced before the subscription, if it was kept.
                said = notice.kept()
                ended = None if said is None else notices.ended_row(self.id, said)
                if ended is not None:
                    return ended
                # A short first look: an EXPRESS end's notice is the committed row, so
                # a quick execution is returned without a read of the database.
                first = notices.FIRST_LOOK_SECONDS
                said = notice.wait(first if deadline is None else min(first, _left(deadline)))
                ended = None if said is None else notices.ended_row(self.id, said)
                if ended is not None:
                    return ended
            execution = self.describe()
            while True:
                if execution.status in TERMINAL_STATUSES:
                    return execution
                left = poll if deadline is None else min(poll, _left(deadline))
                if left <= 0:
                    raise TimeoutError(
                        f"execution {self.id} is still {execution.status} after {timeout} s"
                    )
                said = notice.wait(left)
                ended = None if said is None else notices.ended_row(self.id, said)
                execution = ended or self.describe()


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


class BatchHandle:
    """One batch, by id: where it stands, and steering it from any process.

    Attributes:
        id: the batch's id.
    """

    def __init__(self, client: Orchestrator, batch_id: str) -> None:
        self.client, self.id = client, batch_id

    def __repr__(self) -> str:
        return f"BatchHandle({self.id!r})"

    def record(self) -> Batch:
        """The batch row as stored (counts, options, leader, guard).

        Raises:
            BatchNotFound: no batch has this id.
        """
        return self.client.repository.get_batch(self.id)

    def describe(self) -> SteeringReport:
        """Status, reason, guard, leader and executions by status; changes nothing.

        Raises:
            BatchNotFound: no batch has this id.
        """
        from orchestrator.batch import control

        return control.describe(self.client.repository, self.id)

    def progress(self) -> BatchProgress:
        """Counts of the batch's executions by status, and whether it is done."""
        from orchestrator.batch import batch_progress

        return batch_progress(self.client.repository, self.id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.5) -> BatchProgress:
        """Block until every execution of the batch has ended.

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the message has the counts).
        """
        from orchestrator.batch import wait_for_batch

        return wait_for_batch(self.client.repository, self.id, timeout=timeout, poll=poll)

    def machine(self) -> StateMachine:
        """The state machine version the batch runs (to continue it).

        Raises:
            BatchNotFound: no batch has this id.
            ValueError: the batch predates batches recording their version.
        """
        batch = self.client.repository.get_batch(self.id)
        version_id = batch.options.get("version_id") if isinstance(batch.options, dict) else None
        if version_id is None:
            raise ValueError(f"batch {self.id} does not record its version: it cannot be continued")
        return self.client.bind(self.client.version(int(version_id)))

    def pause(self, *, reason: str | None = None) -> SteeringReport:
        """Pause: nothing more is published, unstarted executions are held (safe to repeat)."""
        from orchestrator.batch import control

        return control.pause(self.client.repository, self.id, reason=reason)

    def resume(
        self,
        *,
        arm_guard: bool | None = None,
        reason: str | None = None,
        lead: bool = False,
        inputs: Iterable[Any] | None = None,
    ) -> SteeringReport:
        """Resume where the batch stopped; the held executions are published again.

        A leader that is alive goes on by itself. If the leader died
        (``needs_leader`` in the report) and ``lead`` is True, this call becomes
        the batch's leader and returns once the batch is over (``inputs``: the
        same inputs again, for a batch that read a Python iterable).

        Raises:
            BatchNotFound: no batch has this id.
            ValueError: the batch was cancelled.
        """
        from orchestrator.batch import control

        publisher = self.client.publisher
        report = control.resume(
            self.client.repository,
            self.id,
            publisher=publisher,
            arm_guard=arm_guard,
            reason=reason,
        )
        if not (lead and report.needs_leader):
            return report
        self.machine().continue_batch(self.id, inputs=inputs, publisher=publisher)
        return self.describe()

    def cancel(self, *, reason: str | None = None) -> SteeringReport:
        """Cancel: nothing more is created, unstarted executions end ABORTED (safe to repeat).

        The report's ``started`` counts those that had started (they run to their end).
        """
        from orchestrator.batch import control

        return control.cancel(self.client.repository, self.id, reason=reason)

    def failures(
        self, *, archived: bool | None = False, limit: int = 100, cursor: str | None = None
    ) -> Page[Execution]:
        """One page of the failed executions with their errors (``archived``: see ``control``)."""
        from orchestrator.batch import control

        return control.failures(
            self.client.repository, self.id, archived=archived, limit=limit, cursor=cursor
        )

    def redrive(self, *, local: bool = False) -> int:
        """Redrive every failure that is not archived; return how many.

        They are published to the workers, or (``local=True``) run in this process.
        """
        from orchestrator.batch import control

        if local:
            return control.redrive_failures(
                self.client.repository, self.id, advance=self.client.runner.advance
            )
        return control.redrive_failures(
            self.client.repository, self.id, publisher=self.client.publisher
        )

    def archive(self) -> int:
        """Archive the failures so far (nothing is deleted); return how many."""
        from orchestrator.batch import control

        return control.archive_failures(self.client.repository, self.id)


class MapRunHandle:
    """One Map Run of a Distributed Map, by id.

    Attributes:
        id: the Map Run's id.
    """

    def __init__(self, client: Orchestrator, map_run_id: str) -> None:
        self.client, self.id = client, map_run_id

    def __repr__(self) -> str:
        return f"MapRunHandle({self.id!r})"

    def describe(self) -> MapRun:
        """The Map Run as last committed: status, counts per status, limits, times.

        Raises:
            MapRunNotFound: no Map Run has this id.
        """
        from orchestrator.errors import MapRunNotFound

        found = self.client.repository.map_runs.get_map_run(self.id)
        if found is None:
            raise MapRunNotFound(self.id)
        return found

    def children(self, *, after: int = -1, limit: int = 100) -> list[MapChild]:
        """A page of its child executions in item order (``item_index > after``)."""
        self.describe()
        return self.client.repository.map_runs.map_children(self.id, after=after, limit=limit)

    def parent(self) -> ExecutionHandle:
        """The execution whose Map state opened this run."""
        return ExecutionHandle(self.client, self.describe().parent_execution_id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> MapRun:
        """Block until the run has ended; return it.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.describe()
            if run.status != "RUNNING":
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"map run {self.id} is still RUNNING after {timeout} s")
            time.sleep(poll)


__all__ = ["BatchHandle", "ExecutionHandle", "MapRunHandle"]
