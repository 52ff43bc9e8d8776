"""What a batch started (:class:`BatchResult`) and where it stands (:class:`BatchProgress`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from orchestrator.batch.leader import LEADING
from orchestrator.store import ExecutionFilter, Repository
from orchestrator.types import TERMINAL_STATUSES, BatchStatus, ExecutionStatus


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
        return batch_progress(self.repository, self.batch_id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.5) -> BatchProgress:
        """Block until every execution of the batch has ended.

        Raises:
            TimeoutError: ``timeout`` seconds passed first (the message has the counts).
        """
        assert self.repository is not None
        return wait_for_batch(self.repository, self.batch_id, timeout=timeout, poll=poll)


def batch_progress(repository: Repository, batch_id: str) -> BatchProgress:
    """Count a batch's executions by status (one query), and whether it is done."""
    counts = repository.status_counts(ExecutionFilter(batch_id=batch_id))
    batch = repository.get_batch(batch_id)
    total = sum(counts.values())
    finished = sum(n for s, n in counts.items() if s in TERMINAL_STATUSES)
    failed = finished - counts.get(ExecutionStatus.SUCCEEDED, 0)
    return BatchProgress(
        total=total,
        by_status={str(s): n for s, n in counts.items()},
        finished=finished,
        failed=failed,
        done=batch.status not in LEADING and finished == total,
    )


def wait_for_batch(
    repository: Repository, batch_id: str, *, timeout: float | None = None, poll: float = 0.5
) -> BatchProgress:
    """Block until every execution of the batch has ended.

    Raises:
        TimeoutError: ``timeout`` seconds passed first (the message has the counts).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        progress = batch_progress(repository, batch_id)
        if progress.done:
            return progress
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"batch {batch_id}: {progress.finished} of {progress.total} "
                f"executions ended after {timeout} s"
            )
        time.sleep(poll)


__all__ = ["BatchProgress", "BatchResult", "batch_progress", "wait_for_batch"]
