"""The leader of a batch: creates its executions slice by slice, publishes them, watches them.

A batch has one *leader*: the process in ``execute_batch``/``execute_bulk``. It
beats on the batch row (``Repository.lead_batch``) after every slice and every
``poll_interval`` while it waits, and acts on the status it reads back there:
PAUSED stops it, CANCELLED ends it (see :mod:`orchestrator.batch.control` for
the steering calls any process can make).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from orchestrator.batch.guard import GuardSettings, GuardState, Verdict
from orchestrator.distributed.publish import Publisher
from orchestrator.errors import LeadLost
from orchestrator.store import Batch, ExecutionFilter, NewExecution, Repository
from orchestrator.store.records import Version
from orchestrator.types import TERMINAL_STATUSES, BatchStatus, ExecutionStatus

log = logging.getLogger("orchestrator.batch")

Priority = str | int
#: Hands a slice's executions to whoever runs them; returns how many were published.
Dispatch = Callable[[list[str]], int]

#: Seconds without a beat after which a batch's leader counts as gone. Default 60.
DEFAULT_LEADER_TIMEOUT = 60.0

#: A batch whose leader is still at work.
LEADING = (BatchStatus.RUNNING, BatchStatus.PAUSED)


# -- what the leader works on ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Slice:
    """One slice of a batch: executions to create together, then publish together.

    Attributes:
        rows: the executions to create.
        read: inputs (or sources) consumed for it.
        missing: of those, how many give no execution (a source without output).
        position: where the inputs stand after it (JSON), stored on the batch.
    """

    rows: list[NewExecution]
    read: int
    missing: int
    position: dict[str, Any]


class LeaderOptions(Protocol):
    """What the leader reads of ``BatchOptions``."""

    @property
    def micro_batch_size(self) -> int | None: ...
    @property
    def micro_batch_timeout(self) -> float | None: ...
    @property
    def watch(self) -> bool: ...
    @property
    def mode(self) -> str: ...
    @property
    def poll_interval(self) -> float: ...
    @property
    def failure_warn_threshold(self) -> float | None: ...
    @property
    def failure_pause_threshold(self) -> float | None: ...
    @property
    def failure_smoothing(self) -> float: ...
    @property
    def failure_min_finished(self) -> int: ...


def guard_settings(options: LeaderOptions) -> GuardSettings:
    """The guard's settings from batch options."""
    return GuardSettings(
        warn_threshold=options.failure_warn_threshold,
        pause_threshold=options.failure_pause_threshold,
        smoothing=options.failure_smoothing,
        min_finished=options.failure_min_finished,
    )


class Tally(Protocol):
    """The counts a leader adds to (``BatchResult`` has them)."""

    sources: int
    created: int
    skipped: int
    published: int


class _Scope:
    """The executions the leader watches: (total, ended, failed) and what it saw last."""

    def __init__(self, counter: Callable[[], dict[ExecutionStatus, int]], total: int | None):
        self.counter, self.fixed_total = counter, total
        self.seen = (0, 0)
        self.total = self.finished = 0

    def look(self) -> tuple[int, int]:
        """Count again; return (ended, failed) since the last look (never negative)."""
        counts = self.counter()
        self.finished = sum(n for s, n in counts.items() if s in TERMINAL_STATUSES)
        failed = self.finished - counts.get(ExecutionStatus.SUCCEEDED, 0)
        self.total = self.fixed_total if self.fixed_total is not None else sum(counts.values())
        delta = (self.finished - self.seen[0], failed - self.seen[1])
        self.seen = (self.finished, failed)
        # A redrive makes ended executions run again: start over from the lower count.
        return (delta[0], delta[1]) if min(delta) >= 0 else (0, 0)

    @property
    def ended(self) -> bool:
        """Every watched execution has ended."""
        return self.finished >= self.total


# -- the leader ------------------------------------------------------------------------


class Leader:
    """Creates a batch's executions slice by slice, publishes them, and watches them.

    Args:
        repository: the store.
        version: the state machine version the executions run.
        batch: the batch, led by ``owner`` already.
        owner: this leader's name (stored on the batch).
        options: how the batch runs.
        dispatch: publishes (or runs, in local mode) a slice's execution ids.
        tally: the counts to add to.
    """

    def __init__(
        self,
        repository: Repository,
        version: Version,
        batch: Batch,
        owner: str,
        options: LeaderOptions,
        dispatch: Dispatch,
        tally: Tally,
    ) -> None:
        self.repo, self.version, self.batch_id, self.owner = repository, version, batch.id, owner
        self.options, self.dispatch, self.tally = options, dispatch, tally
        self.settings = guard_settings(options)
        self.guard = GuardState.stored(
            batch.failure_rate, batch.guard_observed, self.settings.smoothing
        )
        self.armed, self.warned = batch.guard_armed, False
        self.status = batch.status
        self.position: dict[str, Any] = dict(batch.position or {})
        self.scope = _Scope(dict, 0)
        self._last_look = float("-inf")

    @property
    def waits(self) -> bool:
        """Whether each slice must end before the next goes out."""
        return self.options.micro_batch_size is not None

    @property
    def guarding(self) -> bool:
        """Whether the leader watches executions end (so the failure guard can act)."""
        return self.waits or self.options.watch or self.options.mode == "local"

    def adopt(self, ids: list[str]) -> None:
        """Publish (or run) executions a previous leader created but may not have published."""
        self.scope = _Scope(lambda: self.repo.status_counts_of(ids), len(ids))
        self._publish(ids)

    # the run -------------------------------------------------------------------

    def lead(self, slices: Iterable[Slice], *, settle_first: bool = False) -> BatchStatus:
        """Create, publish and watch every slice; return the batch's status at the end.

        ``settle_first`` (a leader taking over) first waits for every execution
        the batch already has to end, when slices must not overlap.
        """
        if settle_first and self.waits and not self._wait(self._batch_scope(count_past=False)):
            return self.status
        for piece in slices:
            if not self._may_go_on() or not self._one(piece):
                return self.status
            if self.waits and not self._wait(self.scope):
                return self.status
        if self.options.watch and not self._wait(self._batch_scope(count_past=True)):
            return self.status
        return self._finish()

    def _one(self, piece: Slice) -> bool:
        """Create one slice, then publish it unless the batch was paused or cancelled."""
        now = datetime.now(UTC)
        created = self.repo.create_executions_bulk(self.version, piece.rows, now=now).created
        ids = list(created.values())
        skipped = piece.missing + len(piece.rows) - len(ids)
        self.position = {**piece.position, "slice_started_at": now.isoformat(), "exhausted": False}
        self.tally.sources += piece.read
        self.tally.created += len(ids)
        self.tally.skipped += skipped
        batch = self._beat(
            sources=piece.read, created=len(ids), skipped=skipped, position=self.position
        )
        self.scope = _Scope(lambda: self.repo.status_counts_of(ids), len(ids))
        if batch.status == BatchStatus.CANCELLED:
            self.repo.cancel_batch(self.batch_id, reason=batch.status_reason or "cancelled")
            return False
        if batch.status == BatchStatus.PAUSED:
            return self._hold_slice(ids)
        self._publish(ids)
        return True

    def _publish(self, ids: list[str]) -> None:
        published = self.dispatch(ids) if ids else 0
        if published:
            self.tally.published += published
            self.status = self._beat(published=published).status

    def _hold_slice(self, ids: list[str]) -> bool:
        """Paused between creating a slice and publishing it: hold it until resumed.

        A resume publishes what it releases (distributed mode); in local mode the
        leader runs the slice itself once resumed.
        """
        self.repo.hold_unstarted(self.batch_id)
        if not self._may_go_on():
            return False
        if self.options.mode == "local":
            self._publish(ids)
        return True

    def _may_go_on(self) -> bool:
        """Wait while the batch is paused; False once it is cancelled or ended."""
        status = self.look(force=True)
        while status == BatchStatus.PAUSED:
            time.sleep(self.options.poll_interval)
            status = self.look(force=True)
        return status in (BatchStatus.RUNNING, BatchStatus.COMPLETED)

    def _wait(self, scope: _Scope) -> bool:
        """Wait until every execution of ``scope`` ended (or the slice deadline passed).

        The deadline does not run while the batch is paused. False if cancelled.
        """
        self.scope = scope
        timeout = self.options.micro_batch_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.look(force=True)
            if status not in (*LEADING, BatchStatus.COMPLETED):
                return False
            if scope.ended:
                return True
            if status == BatchStatus.PAUSED and deadline is not None:
                deadline += self.options.poll_interval
            elif deadline is not None and time.monotonic() >= deadline:
                log.warning(
                    "batch %s: %d executions of the slice still running after %s s; going on",
                    self.batch_id,
                    scope.total - scope.finished,
                    timeout,
                    extra={"action": "batch_slice_timeout", "batch_id": self.batch_id},
                )
                return True
            time.sleep(self.options.poll_interval)

    def _finish(self) -> BatchStatus:
        if self.guarding:
            self.look(force=True, judge=False)  # the rate of what ended last, for the record
        self.position = {**self.position, "exhausted": True}
        batch = self._beat(position=self.position)
        done = self.repo.finish_batch(
            self.batch_id,
            self.owner,
            status=BatchStatus.COMPLETED,
            from_statuses=(BatchStatus.RUNNING,),
            reason="every input has its execution",
        )
        self.status = done.status if done is not None else batch.status
        return self.status

    def _batch_scope(self, *, count_past: bool) -> _Scope:
        flt = ExecutionFilter(batch_id=self.batch_id)
        scope = _Scope(lambda: self.repo.status_counts(flt), None)
        if not count_past:
            scope.look()
        return scope

    # looking: counts, the guard, the beat ---------------------------------------------

    def look(self, *, force: bool = False, judge: bool = True) -> BatchStatus:
        """Fold in what ended, beat, and read the batch's status (at most once per poll).

        The failure guard may pause the batch here (unless ``judge`` is False).
        Local mode calls this between the executions it runs.

        Raises:
            LeadLost: another process leads the batch now.
        """
        if not force and time.monotonic() - self._last_look < self.options.poll_interval:
            return self.status
        finished, failed = self.scope.look() if self.guarding else (0, 0)
        before = self.guard
        if self.status != BatchStatus.PAUSED:
            self.guard = self.guard.observe(finished, failed, self.settings.smoothing)
        guard = None
        if self.guard != before:
            guard = (before.observed, self.guard.rate(self.settings.smoothing), self.guard.observed)
        batch = self._beat(guard=guard)
        if not judge:
            return self.status
        # Judged after the beat: a resume may have reset or disarmed the guard meanwhile.
        verdict = self.guard.judge(self.settings, armed=self.armed)
        warning = self._warning(verdict)
        if warning is not None:
            batch = self._beat(warning=warning)
        if verdict == Verdict.PAUSE and batch.status in (
            BatchStatus.RUNNING,
            BatchStatus.COMPLETED,
        ):
            self.status = self._trip()
        return self.status

    def _warning(self, verdict: Verdict) -> str | None:
        """The warning to store when the rate first reaches the soft threshold."""
        rate = self.guard.rate(self.settings.smoothing) or 0.0
        threshold = self.settings.warn_threshold
        if verdict == Verdict.OK or threshold is None or rate < threshold:
            self.warned = verdict != Verdict.OK and self.warned
            return None
        if self.warned:
            return None
        self.warned = True
        text = (
            f"{datetime.now(UTC).isoformat(timespec='seconds')}: failure rate {rate:.2f} over "
            f"{self.guard.observed} ended executions is at or above the warning threshold "
            f"{self.settings.warn_threshold}"
        )
        log.warning(
            "batch %s: %s",
            self.batch_id,
            text,
            extra={"action": "batch_failure_warning", "batch_id": self.batch_id},
        )
        return text

    def _trip(self) -> BatchStatus:
        rate = self.guard.rate(self.settings.smoothing) or 0.0
        reason = (
            f"the failure guard paused the batch: failure rate {rate:.2f} over "
            f"{self.guard.observed} ended executions reached the pause threshold "
            f"{self.settings.pause_threshold}"
        )
        batch, held = self.repo.pause_batch(
            self.batch_id, reason=reason, guard_observed=self.guard.observed
        )
        if batch.status != BatchStatus.PAUSED:
            return batch.status  # resumed (or disarmed) meanwhile: that wins
        log.warning(
            "batch %s: %s (%d unstarted executions held)",
            self.batch_id,
            reason,
            held,
            extra={"action": "batch_guard_pause", "batch_id": self.batch_id},
        )
        return batch.status

    def _beat(self, **changes: Any) -> Batch:
        batch = self.repo.lead_batch(self.batch_id, self.owner, **changes)
        if batch is None:
            raise LeadLost(self.batch_id)
        self._last_look = time.monotonic()
        if batch.guard_observed != self.guard.observed:
            # A resume reset the guard (or another leader wrote it): start from the row.
            self.guard = GuardState.stored(
                batch.failure_rate, batch.guard_observed, self.settings.smoothing
            )
            self.warned = False
        self.armed, self.status = batch.guard_armed, batch.status
        return batch


def leader_alive(batch: Batch, *, timeout: float = DEFAULT_LEADER_TIMEOUT) -> bool:
    """Whether the batch's leader beat within the last ``timeout`` seconds."""
    if batch.leader is None or batch.heartbeat_at is None:
        return False
    return batch.heartbeat_at >= datetime.now(UTC) - timedelta(seconds=timeout)


__all__ = [
    "DEFAULT_LEADER_TIMEOUT",
    "LEADING",
    "Dispatch",
    "Leader",
    "LeaderOptions",
    "Priority",
    "Publisher",
    "Slice",
    "guard_settings",
    "leader_alive",
]
