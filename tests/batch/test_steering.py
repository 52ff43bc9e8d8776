"""Steering a batch from anywhere: pause, resume, cancel, failures, and a new leader.

Runs on PostgreSQL and SQLite. ``dry`` batches are distributed to a publisher
that only records what it is given (no worker runs them), so a test decides when
an execution runs: ``world.machine.runner.advance(id)``, as a worker would.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.batch import continue_batch, execute_batch
from orchestrator.batch import control as batch_control
from orchestrator.store import ExecutionFilter
from orchestrator.types import BATCH_CANCELLED_ERROR, BatchStatus, ExecutionStatus
from tests.batch.conftest import World, wait_for
from tests.batch.work import RESOURCE


class Died(BaseException):
    """The leader's process dies (not an error it could record)."""


class Recorder:
    """A publisher that records the ids it is given; it can die on its n-th call."""

    def __init__(self, die_on_call: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.die_on_call = die_on_call
        self.lock = threading.Lock()

    def __call__(self, ids: Sequence[str], priority: Any) -> int:
        with self.lock:
            if self.die_on_call is not None and len(self.calls) + 1 == self.die_on_call:
                self.die_on_call = None
                raise Died
            self.calls.append(list(ids))
        return len(ids)

    @property
    def published(self) -> list[str]:
        """Every id published, in order (repeats included)."""
        return [i for call in self.calls for i in call]


@pytest.fixture
def dry(local: World) -> tuple[World, Recorder]:
    """The local world, but distributed to a recording publisher."""
    recorder = Recorder()
    local.mode, local.publisher = "distributed", recorder
    return local, recorder


def inputs(count: int, **extra: Any) -> list[dict[str, Any]]:
    """``count`` inputs that succeed."""
    return [{"n": n, "ok": True, **extra} for n in range(count)]


# -- pause, resume, cancel --------------------------------------------------------------


def test_pause_holds_unstarted_executions_and_resume_publishes_them_again(
    dry: tuple[World, Recorder],
) -> None:
    world, recorder = dry
    # Given a batch of 50 published executions that no worker has taken yet
    result = world.bulk(inputs(50))
    ids = recorder.published
    assert (result.status, len(ids)) == (BatchStatus.COMPLETED, 50)
    # and one that a worker has run already
    world.machine.runner.advance(ids[0])

    # When it is paused (twice)
    first = batch_control.pause(world.repo, result.batch_id, reason="night freeze")
    second = batch_control.pause(world.repo, result.batch_id)

    # Then the 49 unstarted are held, once, and a worker cannot start them
    assert (first.changed, first.held, first.batch.status) == (True, 49, BatchStatus.PAUSED)
    assert first.batch.status_reason == "night freeze"
    assert (second.changed, second.held) == (False, 0)
    assert first.started == 1
    assert world.machine.runner.advance(ids[1]) is None
    assert world.repo.get_execution(ids[1]).status == ExecutionStatus.PENDING

    # When it is resumed (twice), the held ones are released and published again
    resumed = batch_control.resume(world.repo, result.batch_id, publisher=recorder)
    again = batch_control.resume(world.repo, result.batch_id, publisher=recorder)
    assert (resumed.released, resumed.published) == (49, 49)
    assert resumed.batch.status == BatchStatus.COMPLETED  # everything was published before
    assert (again.changed, again.released, again.published) == (False, 0, 0)
    assert sorted(recorder.published[50:]) == sorted(ids[1:])
    # And a worker can run them now
    assert world.machine.runner.advance(ids[1]) is not None
    assert world.repo.get_execution(ids[1]).status == ExecutionStatus.SUCCEEDED


def test_cancel_aborts_what_has_not_started_and_reports_what_had(
    dry: tuple[World, Recorder],
) -> None:
    world, recorder = dry
    # Given a batch of 40, of which 3 ran, and which was paused (so 37 are held)
    result = world.bulk(inputs(40))
    for execution_id in recorder.published[:3]:
        world.machine.runner.advance(execution_id)
    batch_control.pause(world.repo, result.batch_id)

    # When it is cancelled (twice)
    report = batch_control.cancel(world.repo, result.batch_id)
    again = batch_control.cancel(world.repo, result.batch_id)

    # Then the 37 are ABORTED with a clear cause, and the 3 are reported as started
    assert (report.changed, report.aborted, report.started) == (True, 37, 3)
    assert report.batch.status == BatchStatus.CANCELLED
    assert report.counts["cancelled"] == 37
    assert (again.changed, again.aborted) == (False, 0)
    aborted = world.repo.get_execution(recorder.published[10])
    assert (aborted.status, aborted.error) == (ExecutionStatus.ABORTED, BATCH_CANCELLED_ERROR)
    assert "was cancelled before this execution started" in (aborted.cause or "")
    assert aborted.lease_owner is None
    # And a cancelled batch cannot be resumed
    with pytest.raises(ValueError, match="cancelled"):
        batch_control.resume(world.repo, result.batch_id, publisher=recorder)


def test_a_leader_stops_at_a_pause_and_goes_on_at_resume(dry: tuple[World, Recorder]) -> None:
    world, recorder = dry
    # Given a leader publishing micro-batches of 10, and a test acting as the workers
    leader = world.bulk_in_background(inputs(50), micro_batch_size=10)
    batch_id = world.only_batch()
    wait_for(lambda: len(recorder.published) == 10, timeout=10, what="the first slice")

    # When the batch is paused while the first slice runs
    batch_control.pause(world.repo, batch_id)
    for execution_id in recorder.published[:10]:
        world.machine.runner.advance(execution_id)  # held ones are not claimed

    # Then no other slice goes out
    held = world.repo.batch_execution_counts(batch_id)["held"]
    assert held == 10
    threading.Event().wait(0.3)
    assert len(recorder.published) == 10
    assert world.repo.get_batch(batch_id).created_count == 10

    # When it is resumed, and the workers run whatever is published
    batch_control.resume(world.repo, batch_id, publisher=recorder)
    stop = _run_published(world, recorder)
    try:
        result = leader.result(timeout=30)
    finally:
        stop.set()

    # Then the leader goes on from where it stopped, and the batch completes
    assert result.status == BatchStatus.COMPLETED
    assert result.created == 50
    counts = world.repo.batch_execution_counts(batch_id)
    assert counts["SUCCEEDED"] == 50


# -- failures -----------------------------------------------------------------------------


def test_failures_are_listed_with_their_errors_redriven_and_archived(local: World) -> None:
    # Given a batch where 2 in 5 of 50 executions fail
    result = local.bulk([{"n": n} for n in range(50)], failure_pause_threshold=None)
    batch_id = result.batch_id

    # Then its failures page by page, oldest first, each with its error
    first = batch_control.failures(local.repo, batch_id, limit=15)
    rest = batch_control.failures(local.repo, batch_id, limit=15, cursor=first.next_cursor)
    listed = [*first.items, *rest.items]
    assert len(listed) == 20
    assert rest.next_cursor is None
    assert {e.error for e in listed} == {"ValueError"}
    assert all("of the 40% that fail" in (e.cause or "") for e in listed)
    assert [e.ended_at for e in listed] == sorted(e.ended_at for e in listed)  # type: ignore[type-var]

    # When the handler is fixed and the failures are redriven (in this process)
    local.machine.runner.handlers.register(RESOURCE, lambda data: data, replace=True)  # type: ignore[attr-defined]
    redriven = batch_control.redrive_failures(
        local.repo, batch_id, advance=local.machine.runner.advance
    )

    # Then they all succeed, and none is left to list or redrive
    assert redriven == 20
    assert local.repo.batch_execution_counts(batch_id)["SUCCEEDED"] == 50
    assert batch_control.failures(local.repo, batch_id).items == ()
    assert batch_control.redrive_failures(local.repo, batch_id) == 0


def test_archived_failures_leave_the_listing_and_are_not_redriven(local: World) -> None:
    result = local.bulk([{"n": n} for n in range(25)], failure_pause_threshold=None)
    batch_id = result.batch_id

    archived = batch_control.archive_failures(local.repo, batch_id)

    assert (archived, batch_control.archive_failures(local.repo, batch_id)) == (10, 0)
    assert batch_control.failures(local.repo, batch_id).items == ()
    assert len(batch_control.failures(local.repo, batch_id, archived=True).items) == 10
    assert len(batch_control.failures(local.repo, batch_id, archived=None).items) == 10
    assert batch_control.redrive_failures(local.repo, batch_id) == 0
    assert local.repo.get_batch(batch_id).archived_count == 10
    assert local.repo.batch_execution_counts(batch_id)["FAILED"] == 10  # nothing deleted


# -- a new leader ---------------------------------------------------------------------------


def test_a_batch_whose_leader_died_is_continued_from_its_stored_position(
    dry: tuple[World, Recorder],
) -> None:
    world, recorder = dry
    # Given a leader that dies as it publishes its third slice of 10 (created, not published)
    recorder.die_on_call = 3
    with pytest.raises(Died):
        world.bulk(inputs(75), micro_batch_size=10, micro_batch_timeout=0)
    batch_id = world.only_batch()
    assert world.repo.get_batch(batch_id).created_count == 30
    assert len(recorder.published) == 20

    # When it is resumed, nobody leads it: the report says a leader is needed
    report = batch_control.resume(world.repo, batch_id, publisher=recorder, leader_timeout=0)
    assert (report.batch.status, report.needs_leader) == (BatchStatus.RUNNING, True)
    with pytest.raises(ValueError, match="pass the same inputs again"):
        continue_batch(world.machine, batch_id, publisher=recorder, leader_timeout=0)

    # And a new leader goes on from the stored position
    result = continue_batch(
        world.machine, batch_id, inputs=inputs(75), publisher=recorder, leader_timeout=0
    )

    # Then every input has exactly one execution, and each was published
    assert result.status == BatchStatus.COMPLETED
    executions = world.executions(batch_id)
    assert sorted(e.name for e in executions) == sorted(f"bulk-{n}" for n in range(75))
    assert {e.id for e in executions} <= set(recorder.published)
    batch = world.repo.get_batch(batch_id)
    assert (batch.created_count, batch.position["index"]) == (75, 75)


def test_a_slow_leader_steps_down_when_another_takes_the_lead(dry: tuple[World, Recorder]) -> None:
    world, recorder = dry
    # Given a leader waiting for its first slice to end (no worker runs it)
    old = world.bulk_in_background(inputs(30), micro_batch_size=10)
    batch_id = world.only_batch()
    wait_for(lambda: len(recorder.published) == 10, timeout=10, what="the first slice")
    with pytest.raises(ValueError, match="its leader is alive"):
        continue_batch(world.machine, batch_id, inputs=inputs(30), publisher=recorder)

    # When another process takes the lead (it thinks the first one is dead)
    new = world.leaders.submit(
        continue_batch,
        world.machine,
        batch_id,
        inputs=inputs(30),
        publisher=recorder,
        leader_timeout=0,
    )

    # Then the first leader steps down at its next beat
    old.result(timeout=10)
    stop = _run_published(world, recorder)
    try:
        assert new.result(timeout=30).status == BatchStatus.COMPLETED
    finally:
        stop.set()
    assert len(world.executions(batch_id)) == 30


@pytest.mark.slow
def test_execute_batch_in_micro_batches_goes_on_from_its_keyset_position(
    dry: tuple[World, Recorder],
) -> None:
    world, recorder = dry
    # Given 35 finished source executions
    sources = world.bulk(inputs(35), mode="local", name_prefix="src")
    assert sources.status == BatchStatus.COMPLETED
    source_filter = ExecutionFilter(batch_id=sources.batch_id, status=ExecutionStatus.SUCCEEDED)
    options = world.options(name_prefix="chained", micro_batch_size=10, micro_batch_timeout=0)

    # When a chained batch's leader dies as it publishes its second slice
    recorder.die_on_call = 2
    with pytest.raises(Died):
        execute_batch(world.machine, source_filter, options, publisher=recorder)
    batch_id = next(
        b for b in _batch_ids(world) if world.repo.get_batch(b).options["name_prefix"] == "chained"
    )
    assert world.repo.get_batch(batch_id).position["cursor"] is not None

    # And a new leader continues it
    result = continue_batch(world.machine, batch_id, publisher=recorder, leader_timeout=0)

    # Then each source has exactly one chained execution, named after it
    assert result.status == BatchStatus.COMPLETED
    chained = world.executions(batch_id)
    assert len(chained) == 35
    assert {e.source_execution_id for e in chained} == {
        e.id for e in world.executions(sources.batch_id)
    }
    assert {e.input["n"] for e in chained} == set(range(35))
    assert {e.id for e in chained} <= set(recorder.published)


def test_steering_an_unknown_batch_raises(local: World) -> None:
    from orchestrator.store import BatchNotFound

    for steer in (batch_control.pause, batch_control.cancel, batch_control.describe):
        with pytest.raises(BatchNotFound):
            steer(local.repo, "nope")
    with pytest.raises(BatchNotFound):
        batch_control.failures(local.repo, "nope")


def _batch_ids(world: World) -> list[str]:
    from sqlalchemy import text

    with world.repo.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT id FROM batches"))]


def _run_published(world: World, recorder: Recorder) -> threading.Event:
    """Act as the workers: run whatever gets published, until the event is set."""
    stop = threading.Event()

    def work() -> None:
        done = 0
        while not stop.is_set():
            published = recorder.published
            for execution_id in published[done:]:
                world.machine.runner.advance(execution_id)
            done = len(published)
            stop.wait(0.02)

    world.leaders.submit(work)
    return stop


def test_an_execution_released_between_a_failed_claim_and_its_look_still_runs(
    local: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a runner whose first claim of every execution comes too late, as when a
    # pause held it and a resume released it before the local run looked at it again
    advance = local.machine.runner.advance
    missed: set[str] = set()

    def late_first_claim(execution_id: str) -> Any:
        if execution_id not in missed:
            missed.add(execution_id)
            return None
        return advance(execution_id)

    monkeypatch.setattr(local.machine.runner, "advance", late_first_claim)

    # When a local batch runs
    leader = local.bulk_in_background([{"n": n} for n in range(10)])

    # Then every execution still runs, once, and the batch completes
    assert leader.result(timeout=30).status == BatchStatus.COMPLETED
    executions = local.executions(local.only_batch())
    assert len(missed) == len(executions) == 10
    assert all(e.status != ExecutionStatus.PENDING for e in executions)
