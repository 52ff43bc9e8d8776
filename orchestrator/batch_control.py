"""Steering a batch while it runs: its leader, the failure guard, pause, resume, cancel.

A batch has one *leader*: the process in ``execute_batch``/``execute_bulk`` that
creates its executions slice by slice and publishes them (or runs them, in local
mode). The leader beats on the batch row (``Repository.lead_batch``) after every
slice and every ``poll_interval`` while it waits, and acts on the status it reads
back there: PAUSED stops it, CANCELLED ends it. So pause, resume and cancel are
plain repository calls that any process can make, any number of times:

- :func:`pause` marks the batch PAUSED and holds its executions that have not
  started (a worker cannot claim them); the leader publishes nothing more.
- :func:`resume` marks it RUNNING again (COMPLETED if everything was already
  published), releases the held executions and publishes them again (their
  messages were dropped while they were held). A leader that is alive goes on
  by itself; if the leader died, :func:`resume` says so (``needs_leader``), and
  ``continue_batch`` (in :mod:`orchestrator.batch`) takes the lead from the
  position stored on the batch row.
- :func:`cancel` marks it CANCELLED and aborts every execution no worker has
  claimed yet (error ``BatchCancelled``); those that had started run to their end.

The failure guard (:class:`GuardState`) is an exponential moving average of the
failure rate over the executions that ended, folded in by the leader each time
it looks (counts, not events: ``k`` executions of which ``f`` failed count as
``k`` steps at rate ``f/k``). It is bias-corrected, so early on it is the plain
failure rate of what has ended, and later it weighs the last ``~1/smoothing``
executions most. At the soft threshold it warns (logged, stored on the batch);
at the hard threshold it pauses the batch. It judges only once ``min_finished``
executions have ended since the batch started or was last resumed.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from orchestrator.asl.errors import OrchestratorError
from orchestrator.store import Batch, Execution, ExecutionFilter, NewExecution, Page, Repository
from orchestrator.store.records import Version
from orchestrator.types import TERMINAL_STATUSES, BatchStatus, ExecutionStatus

log = logging.getLogger("orchestrator.batch")

Priority = str | int
#: Publishes created executions: (execution ids, priority) -> how many were published.
Publisher = Callable[[Sequence[str], Priority], int]
#: Hands a slice's executions to whoever runs them; returns how many were published.
Dispatch = Callable[[list[str]], int]

#: Seconds without a beat after which a batch's leader counts as gone. Default 60.
DEFAULT_LEADER_TIMEOUT = 60.0

#: A batch whose leader is still at work.
LEADING = (BatchStatus.RUNNING, BatchStatus.PAUSED)


class LeadLost(OrchestratorError):
    """Another process took over the lead of the batch (this leader was thought dead)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"another process leads batch {batch_id} now")
        self.batch_id = batch_id


# -- the failure guard ---------------------------------------------------------------


class Verdict(StrEnum):
    """What the failure guard makes of the rate."""

    OK = "OK"
    WARN = "WARN"
    PAUSE = "PAUSE"


@dataclass(frozen=True, kw_only=True)
class GuardSettings:
    """The guard's thresholds (see ``BatchOptions`` for their defaults).

    Attributes:
        warn_threshold: rate at or above which it warns; None: never.
        pause_threshold: rate at or above which it pauses the batch; None: never.
        smoothing: the EMA's weight of each new execution, in (0, 1].
        min_finished: ended executions needed before it judges at all.
    """

    warn_threshold: float | None
    pause_threshold: float | None
    smoothing: float
    min_finished: int

    def check(self) -> None:
        """Refuse thresholds that cannot work.

        Raises:
            ValueError: a threshold outside [0, 1], a smoothing outside (0, 1],
                or a negative ``min_finished``.
        """
        for name in ("warn_threshold", "pause_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"failure_{name} must be between 0 and 1, not {value!r}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"failure_smoothing must be in (0, 1], not {self.smoothing!r}")
        if self.min_finished < 0:
            raise ValueError("failure_min_finished must not be negative")


@dataclass(frozen=True, kw_only=True)
class GuardState:
    """The EMA of the failure rate, before bias correction, and how many it has seen."""

    raw: float = 0.0
    observed: int = 0

    def observe(self, finished: int, failed: int, smoothing: float) -> GuardState:
        """Fold in ``finished`` more ended executions, ``failed`` of which failed."""
        if finished <= 0:
            return self
        decay = (1.0 - smoothing) ** finished
        raw = decay * self.raw + (1.0 - decay) * (failed / finished)
        return GuardState(raw=raw, observed=self.observed + finished)

    def rate(self, smoothing: float) -> float | None:
        """The bias-corrected average failure rate (None before anything ended)."""
        if self.observed == 0:
            return None
        return self.raw / (1.0 - (1.0 - smoothing) ** self.observed)

    @classmethod
    def stored(cls, rate: float | None, observed: int, smoothing: float) -> GuardState:
        """The state behind a stored (rate, observed) pair."""
        if rate is None or observed <= 0:
            return cls()
        return cls(raw=rate * (1.0 - (1.0 - smoothing) ** observed), observed=observed)

    def judge(self, settings: GuardSettings, *, armed: bool) -> Verdict:
        """Where the rate stands against the thresholds."""
        rate = self.rate(settings.smoothing)
        if rate is None or self.observed < settings.min_finished:
            return Verdict.OK
        pause = settings.pause_threshold
        if armed and pause is not None and rate >= pause:
            return Verdict.PAUSE
        if settings.warn_threshold is not None and rate >= settings.warn_threshold:
            return Verdict.WARN
        return Verdict.OK


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


# -- steering from anywhere -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SteeringReport:
    """What a pause, resume or cancel did, and where the batch stands.

    Attributes:
        batch: the batch after the call.
        changed: whether this call changed the batch's status.
        held: executions this call held (pause).
        released: held executions this call released (resume).
        published: released executions published again (resume, distributed).
        aborted: unstarted executions this call aborted (cancel).
        counts: the batch's executions by status, plus ``held``, ``unstarted``
            and ``cancelled`` (see ``Repository.batch_execution_counts``).
        started: executions that had started (claimed by a worker at some point).
        leader_alive: whether the batch's leader beat within the leader timeout.
        needs_leader: the batch should go on but no leader is alive: call
            ``continue_batch`` (``orchestrator batch resume`` does).
    """

    batch: Batch
    changed: bool
    held: int = 0
    released: int = 0
    published: int = 0
    aborted: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    started: int = 0
    leader_alive: bool = False
    needs_leader: bool = False


def pause(repository: Repository, batch_id: str, *, reason: str | None = None) -> SteeringReport:
    """Pause a batch: nothing more is published, unstarted executions are held.

    Safe to call twice (the second call holds nothing more) and from any process.
    A CANCELLED or FAILED batch is left as it is (``changed`` is False).

    Raises:
        BatchNotFound: no batch has this id.
    """
    before = repository.get_batch(batch_id).status
    batch, held = repository.pause_batch(batch_id, reason=_clean(reason, "paused by request"))
    if held:
        log.info(
            "batch %s paused, %d executions held", batch_id, held, extra=_extra("pause", batch_id)
        )
    return _report(repository, batch, changed=batch.status != before, held=held)


def resume(
    repository: Repository,
    batch_id: str,
    *,
    publisher: Publisher | None = None,
    arm_guard: bool | None = None,
    reason: str | None = None,
    leader_timeout: float = DEFAULT_LEADER_TIMEOUT,
) -> SteeringReport:
    """Resume a paused batch where it stopped.

    The held executions are released; a distributed batch's are published again
    with ``publisher`` (without one they wait for the recovery sweep). The
    failure guard starts afresh; ``arm_guard=False`` keeps it from pausing the
    batch again (True arms it again; default unchanged). A leader that is alive
    goes on by itself; otherwise ``needs_leader`` is True and ``continue_batch``
    must take the lead. Safe to call twice and from any process; resuming a
    FAILED batch lets a new leader try again from its stored position.

    Raises:
        BatchNotFound: no batch has this id.
        ValueError: the batch was cancelled.
    """
    before = repository.get_batch(batch_id).status
    batch, released = repository.resume_batch(
        batch_id, reason=_clean(reason, "resumed by request"), arm_guard=arm_guard
    )
    published = 0
    if released and publisher is not None and _mode(batch) == "distributed":
        published = publish_by_priority(publisher, released)
    log.info(
        "batch %s resumed: %d released, %d published",
        batch_id,
        len(released),
        published,
        extra=_extra("resume", batch_id),
    )
    report = _report(
        repository,
        batch,
        changed=batch.status != before,
        released=len(released),
        published=published,
        leader_timeout=leader_timeout,
    )
    exhausted = isinstance(batch.position, dict) and bool(batch.position.get("exhausted"))
    needs = batch.status == BatchStatus.RUNNING and not exhausted and not report.leader_alive
    return _replace(report, needs_leader=needs)


def cancel(repository: Repository, batch_id: str, *, reason: str | None = None) -> SteeringReport:
    """Cancel a batch: nothing more is created, unstarted executions end ABORTED.

    An execution no worker has claimed yet (held or queued) is aborted with the
    error ``BatchCancelled``; the report's ``started`` counts those that had
    started, which run to their end. Safe to call twice and from any process.

    Raises:
        BatchNotFound: no batch has this id.
    """
    before = repository.get_batch(batch_id).status
    text = _clean(reason, f"batch {batch_id} was cancelled before this execution started")
    batch, aborted = repository.cancel_batch(batch_id, reason=text)
    log.info(
        "batch %s cancelled, %d unstarted executions aborted",
        batch_id,
        aborted,
        extra=_extra("cancel", batch_id),
    )
    return _report(repository, batch, changed=batch.status != before, aborted=aborted)


def describe(
    repository: Repository, batch_id: str, *, leader_timeout: float = DEFAULT_LEADER_TIMEOUT
) -> SteeringReport:
    """Where a batch stands (what ``orchestrator batch show`` prints); changes nothing.

    Raises:
        BatchNotFound: no batch has this id.
    """
    batch = repository.get_batch(batch_id)
    report = _report(repository, batch, changed=False, leader_timeout=leader_timeout)
    exhausted = isinstance(batch.position, dict) and bool(batch.position.get("exhausted"))
    needs = batch.status == BatchStatus.RUNNING and not exhausted and not report.leader_alive
    return _replace(report, needs_leader=needs)


def failures(
    repository: Repository,
    batch_id: str,
    *,
    archived: bool | None = False,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Execution]:
    """One page of the batch's failed executions (with ``error`` and ``cause``), oldest first.

    ``archived``: False (default) the failures not archived, True the archived
    ones, None all. Executions a cancel aborted before they started are not
    failures (``describe`` counts them as ``cancelled``).

    Raises:
        BatchNotFound: no batch has this id.
    """
    return repository.batch_failures(batch_id, archived=archived, limit=limit, cursor=cursor)


def redrive_failures(
    repository: Repository,
    batch_id: str,
    *,
    publisher: Publisher | None = None,
    advance: Callable[[str], Any] | None = None,
) -> int:
    """Redrive every failure of the batch that is not archived, from where it stopped.

    The executions are reopened (PENDING, cursor kept) in one statement, then
    published with ``publisher`` or advanced one by one in this process with
    ``advance`` (an execution id -> anything). Without either, the recovery
    sweep publishes them after its grace period.

    Returns:
        How many executions were redriven.

    Raises:
        BatchNotFound: no batch has this id.
    """
    reopened = repository.redrive_batch_failures(batch_id)
    if publisher is not None:
        publish_by_priority(publisher, reopened)
    elif advance is not None:
        for execution_id, _ in reopened:
            advance(execution_id)
    log.info(
        "batch %s: %d failures redriven",
        batch_id,
        len(reopened),
        extra=_extra("redrive", batch_id),
    )
    return len(reopened)


def archive_failures(repository: Repository, batch_id: str) -> int:
    """Archive the batch's failures so far; nothing is deleted (see ``failures``).

    Returns:
        How many failures this call archived (0 when called again).

    Raises:
        BatchNotFound: no batch has this id.
    """
    _, archived = repository.archive_batch_failures(batch_id)
    return archived


def publish_by_priority(publisher: Publisher, items: Iterable[tuple[str, int]]) -> int:
    """Publish (execution id, priority) pairs, one bulk publish per priority."""
    groups: dict[int, list[str]] = defaultdict(list)
    for execution_id, priority in items:
        groups[priority].append(execution_id)
    return sum(publisher(ids, priority) for priority, ids in groups.items())


def leader_alive(batch: Batch, *, timeout: float = DEFAULT_LEADER_TIMEOUT) -> bool:
    """Whether the batch's leader beat within the last ``timeout`` seconds."""
    if batch.leader is None or batch.heartbeat_at is None:
        return False
    return batch.heartbeat_at >= datetime.now(UTC) - timedelta(seconds=timeout)


def _report(
    repository: Repository,
    batch: Batch,
    *,
    changed: bool,
    leader_timeout: float = DEFAULT_LEADER_TIMEOUT,
    held: int = 0,
    released: int = 0,
    published: int = 0,
    aborted: int = 0,
) -> SteeringReport:
    counts = repository.batch_execution_counts(batch.id)
    total = sum(n for key, n in counts.items() if key in ExecutionStatus.__members__)
    started = total - counts["cancelled"] - counts["held"] - counts["unstarted"]
    return SteeringReport(
        batch=batch,
        changed=changed,
        counts=counts,
        started=started,
        leader_alive=leader_alive(batch, timeout=leader_timeout),
        held=held,
        released=released,
        published=published,
        aborted=aborted,
    )


def _replace(report: SteeringReport, **changes: Any) -> SteeringReport:
    from dataclasses import replace

    return replace(report, **changes)


def _mode(batch: Batch) -> str:
    options = batch.options if isinstance(batch.options, dict) else {}
    return str(options.get("mode", "distributed"))


def _clean(reason: str | None, default: str) -> str:
    # PostgreSQL text cannot hold NUL; a reason is for people, so it is kept short.
    return (reason or default).replace("\x00", "")[:2000]


def _extra(action: str, batch_id: str) -> dict[str, Any]:
    return {"action": f"batch_{action}", "batch_id": batch_id}


__all__ = [
    "DEFAULT_LEADER_TIMEOUT",
    "GuardSettings",
    "GuardState",
    "LeadLost",
    "Leader",
    "Publisher",
    "Slice",
    "SteeringReport",
    "Verdict",
    "archive_failures",
    "cancel",
    "describe",
    "failures",
    "leader_alive",
    "pause",
    "publish_by_priority",
    "redrive_failures",
    "resume",
]
