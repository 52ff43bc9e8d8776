"""``mode="local"``: a batch's executions run in this process, a bounded number at a time."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from orchestrator.batch.options import BatchOptions, Callback, Machine
from orchestrator.batch.result import BatchResult
from orchestrator.store import Execution
from orchestrator.types import (
    BATCH_HOLD_OWNER_PREFIX,
    TERMINAL_STATUSES,
    BatchStatus,
    ExecutionStatus,
)


class Stopped(Exception):
    """stop_on_error: an execution failed, so the batch starts nothing more."""


@dataclass(frozen=True, kw_only=True)
class Callbacks:
    on_start: Callback | None = None
    on_complete: Callback | None = None


# -- local mode ------------------------------------------------------------------------


class LocalRun:
    """mode="local": run created executions in this process, ``concurrency`` at a time.

    Between executions it asks the leader where the batch stands (``look``): while
    the batch is PAUSED it starts nothing, once it is CANCELLED it starts nothing
    more. An execution a pause held before it could be claimed is run once the
    batch is resumed.
    """

    def __init__(
        self,
        machine: Machine,
        options: BatchOptions,
        callbacks: Callbacks,
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
            raise Stopped

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


__all__ = ["Callbacks", "LocalRun", "Stopped"]
