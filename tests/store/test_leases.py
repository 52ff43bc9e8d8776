"""Leases and checkpoints: one advancer at a time, even across processes."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from orchestrator.errors import ExecutionNotFound
from orchestrator.store import (
    Checkpoint,
    LeaseLost,
    NewCorrelation,
    NewExecution,
    NewHistoryEvent,
    NewTimer,
    PayloadInvalid,
    PayloadTooLarge,
    Repository,
    Version,
)
from orchestrator.types import CorrelationOutcome, ExecutionStatus, TimerKind

from . import _race
from .conftest import T0, park, seconds, start

LEASE = 30.0


def step(name: str, output: object = None) -> NewHistoryEvent:
    return NewHistoryEvent(
        event_type="StateExited", state_name=name, state_type="Pass", output=output
    )


@pytest.fixture
def pending(repo: Repository, version: Version) -> str:
    return start(repo, version, "run-1", input={"n": 1}).id


# -- claim --------------------------------------------------------------------


def test_a_claim_marks_the_execution_running_under_the_owners_lease(
    repo: Repository, pending: str
) -> None:
    claimed = repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    assert claimed is not None
    assert claimed.status == ExecutionStatus.RUNNING
    assert claimed.lease_owner == "w1"
    assert claimed.lease_expires_at == T0 + seconds(LEASE)


def test_a_live_lease_excludes_other_owners_but_not_its_own(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    assert repo.claim(pending, "w2", lease_seconds=LEASE, now=T0 + seconds(LEASE - 1)) is None
    assert repo.claim(pending, "w1", lease_seconds=LEASE, now=T0 + seconds(1)) is not None


def test_an_expired_lease_can_be_taken_over(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    taken = repo.claim(pending, "w2", lease_seconds=LEASE, now=T0 + seconds(LEASE + 1))

    assert taken is not None
    assert taken.lease_owner == "w2"


def test_waiting_ended_or_missing_executions_cannot_be_claimed(
    repo: Repository, version: Version
) -> None:
    waiting = park(repo, version, "parked", timers=(NewTimer(kind=TimerKind.WAIT, due_at=T0),))
    ended = start(repo, version, "ended")
    repo.stop_execution(ended.id, now=T0)

    assert repo.claim(waiting.id, "w", lease_seconds=LEASE, now=T0) is None
    assert repo.claim(ended.id, "w", lease_seconds=LEASE, now=T0) is None
    assert repo.claim("missing", "w", lease_seconds=LEASE, now=T0) is None


@pytest.mark.slow
def test_two_processes_racing_to_claim_each_execution_exactly_one_wins(
    repo: Repository, version: Version, database_url: str
) -> None:
    # Given 40 pending executions
    rows = [NewExecution(name=f"race-{i}") for i in range(40)]
    ids = sorted(repo.create_executions_bulk(version, rows).created.values())

    # When two processes claim all of them at the same moment
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    racers = [
        context.Process(target=_race.claim_all, args=(database_url, owner, ids, barrier, results))
        for owner in ("proc-a", "proc-b")
    ]
    for racer in racers:
        racer.start()
    won = dict(results.get(timeout=60) for _ in racers)
    for racer in racers:
        racer.join(timeout=10)
        assert racer.exitcode == 0
    won_a, won_b = won["proc-a"], won["proc-b"]

    # Then every execution was won by exactly one of them, as the table says
    assert sorted(won_a + won_b) == ids
    assert not set(won_a) & set(won_b)
    for execution_id in ids:
        owner = "proc-a" if execution_id in won_a else "proc-b"
        assert repo.get_execution(execution_id).lease_owner == owner


# -- renew and release --------------------------------------------------------


def test_renewing_extends_a_live_lease(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    expires = repo.renew_lease(pending, "w1", lease_seconds=LEASE, now=T0 + seconds(20))

    assert expires == T0 + seconds(20 + LEASE)
    assert repo.get_execution(pending).lease_expires_at == expires


def test_renewing_a_lost_or_expired_lease_raises(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    with pytest.raises(LeaseLost):
        repo.renew_lease(pending, "w2", lease_seconds=LEASE, now=T0)
    with pytest.raises(LeaseLost):
        repo.renew_lease(pending, "w1", lease_seconds=LEASE, now=T0 + seconds(LEASE + 1))


def test_release_frees_the_lease_for_others(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    assert not repo.release(pending, "w2")
    assert repo.release(pending, "w1")
    assert repo.claim(pending, "w2", lease_seconds=LEASE, now=T0) is not None


# -- checkpoint ---------------------------------------------------------------


def test_a_checkpoint_stores_cursor_history_and_renews_the_lease(
    repo: Repository, pending: str
) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    status = repo.checkpoint(
        pending,
        "w1",
        cursor={"state": "B", "data": {"n": 2}},
        status=ExecutionStatus.RUNNING,
        current_state="B",
        history=[step("A", {"n": 2})],
        lease_seconds=LEASE,
        now=T0 + seconds(10),
    )
    repo.checkpoint(
        pending,
        "w1",
        cursor={"state": "C"},
        status=ExecutionStatus.RUNNING,
        current_state="C",
        history=[step("B"), step("B2")],
        now=T0 + seconds(20),
    )

    execution = repo.get_execution(pending)
    assert status == ExecutionStatus.RUNNING
    assert (execution.cursor, execution.current_state) == ({"state": "C"}, "C")
    assert (execution.revision, execution.last_seq) == (2, 3)
    assert execution.lease_expires_at == T0 + seconds(10 + LEASE)
    history = repo.history(pending)
    assert [(h.seq, h.state_name) for h in history] == [(1, "A"), (2, "B"), (3, "B2")]
    assert history[0].output == {"n": 2}
    assert history[0].recorded_at == T0 + seconds(10)
    assert [h.seq for h in repo.history(pending, after_seq=1, limit=1)] == [2]


def test_a_terminal_checkpoint_ends_the_execution_and_frees_it(
    repo: Repository, pending: str
) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    repo.checkpoint(
        pending,
        "w1",
        cursor=None,
        status=ExecutionStatus.FAILED,
        history=[step("A")],
        error="States.TaskFailed",
        cause="boom",
        now=T0 + seconds(5),
    )

    execution = repo.get_execution(pending)
    assert execution.status == ExecutionStatus.FAILED
    assert (execution.error, execution.cause) == ("States.TaskFailed", "boom")
    assert execution.ended_at == T0 + seconds(5)
    assert execution.lease_owner is None


def test_a_checkpoint_after_the_lease_was_lost_writes_nothing(
    repo: Repository, pending: str
) -> None:
    # Given w1's lease expired and w2 took the execution over
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)
    repo.claim(pending, "w2", lease_seconds=LEASE, now=T0 + seconds(LEASE + 1))
    before = repo.get_execution(pending)

    # When w1 checkpoints, then it is told, and nothing changed
    with pytest.raises(LeaseLost) as raised:
        repo.checkpoint(
            pending,
            "w1",
            cursor={"stale": True},
            status=ExecutionStatus.SUCCEEDED,
            history=[step("A")],
            output={"stale": True},
            timers=[NewTimer(kind=TimerKind.WAIT, due_at=T0)],
            now=T0 + seconds(LEASE + 2),
        )
    assert raised.value.execution_id == pending
    assert repo.get_execution(pending) == before
    assert repo.history(pending) == []
    assert repo.execution_timers(pending) == []


def test_a_checkpoint_with_an_expired_lease_is_refused_even_if_nobody_took_it(
    repo: Repository, pending: str
) -> None:
    # Recovery may already be handing it to another worker
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    with pytest.raises(LeaseLost):
        repo.checkpoint(
            pending,
            "w1",
            cursor={},
            status=ExecutionStatus.RUNNING,
            now=T0 + seconds(LEASE + 1),
        )


def test_an_oversized_history_output_rejects_the_whole_checkpoint(
    repo: Repository, pending: str
) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)
    before = repo.get_execution(pending)

    with pytest.raises(PayloadTooLarge, match=r"history\[1\]\.output"):
        repo.checkpoint(
            pending,
            "w1",
            cursor={"state": "B"},
            status=ExecutionStatus.RUNNING,
            history=[step("A"), step("B", "x" * repo.payload_max_bytes)],
            now=T0,
        )

    assert repo.get_execution(pending) == before
    assert repo.history(pending) == []


def test_parking_adds_timers_and_correlations_and_frees_the_lease(
    repo: Repository, pending: str
) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    status = repo.checkpoint(
        pending,
        "w1",
        cursor={"state": "Wait"},
        status=ExecutionStatus.WAITING,
        timers=[NewTimer(kind=TimerKind.WAIT, due_at=T0 + seconds(3600), payload={"s": 1})],
        correlations=[
            NewCorrelation(state_name="Msg", key="order", value=7, timeout_at=T0 + seconds(60))
        ],
        now=T0,
    )

    assert status == ExecutionStatus.WAITING
    assert repo.get_execution(pending).lease_owner is None
    timers = repo.execution_timers(pending)
    assert [(t.kind, t.due_at) for t in timers] == [
        (TimerKind.MESSAGE_TIMEOUT, T0 + seconds(60)),
        (TimerKind.WAIT, T0 + seconds(3600)),
    ]
    (correlation,) = repo.execution_correlations(pending)
    assert (correlation.key, correlation.value, correlation.consumed) == ("order", 7, False)
    assert timers[0].correlation_id == correlation.id


def test_ending_cancels_open_timers_and_correlations(repo: Repository, version: Version) -> None:
    waits = {
        "timers": (NewTimer(kind=TimerKind.WAIT, due_at=T0 + seconds(60)),),
        "correlations": (NewCorrelation(state_name="Msg", key="k", value="v"),),
    }
    execution = park(repo, version, "parked", **waits)

    assert repo.stop_execution(execution.id, error="Stop", cause="by test", now=T0)

    stopped = repo.get_execution(execution.id)
    assert (stopped.status, stopped.error, stopped.ended_at) == (
        ExecutionStatus.ABORTED,
        "Stop",
        T0,
    )
    assert all(t.fired for t in repo.execution_timers(execution.id))
    (correlation,) = repo.execution_correlations(execution.id)
    assert correlation.outcome == CorrelationOutcome.CANCELLED
    assert repo.consume_correlations("k", "v", now=T0) == []


# -- stop, redrive, recovery --------------------------------------------------


def test_stopping_a_running_execution_makes_its_worker_lose_the_lease(
    repo: Repository, pending: str
) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    assert repo.stop_execution(pending, now=T0 + seconds(1))
    assert not repo.stop_execution(pending, now=T0 + seconds(2))
    with pytest.raises(LeaseLost):
        repo.checkpoint(pending, "w1", cursor={}, status=ExecutionStatus.RUNNING, now=T0)
    with pytest.raises(ExecutionNotFound):
        repo.stop_execution("missing")


def test_redrive_reopens_a_failed_execution_with_its_cursor(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)
    repo.checkpoint(
        pending, "w1", cursor={"at": "B"}, status=ExecutionStatus.FAILED, error="E", now=T0
    )

    reopened = repo.redrive(pending, now=T0 + seconds(5))

    assert reopened is not None
    assert reopened.status == ExecutionStatus.PENDING
    assert (reopened.cursor, reopened.error, reopened.ended_at) == ({"at": "B"}, None, None)
    assert reopened.redrive_count == 1
    assert repo.redrive(pending) is None  # PENDING cannot be redriven
    with pytest.raises(ExecutionNotFound):
        repo.redrive("missing")


def test_expired_leases_finds_what_recovery_must_resume(repo: Repository, version: Version) -> None:
    # Given executions in every situation
    expired = start(repo, version, "expired")
    repo.claim(expired.id, "dead", lease_seconds=LEASE, now=T0)
    live = start(repo, version, "live")
    repo.claim(live.id, "alive", lease_seconds=LEASE * 10, now=T0)
    start(repo, version, "stale-pending", now=T0 - seconds(120))
    start(repo, version, "fresh-pending", now=T0 + seconds(50))
    park(repo, version, "waiting", timers=(NewTimer(kind=TimerKind.WAIT, due_at=T0),))

    # When recovery looks a minute later
    found = repo.expired_leases(T0 + seconds(60), limit=10, pending_grace_seconds=30)

    # Then it finds the expired lease and the stale start only
    assert sorted(e.name for e in found) == ["expired", "stale-pending"]


def test_an_error_name_longer_than_aws_allows_is_refused(repo: Repository, pending: str) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)

    with pytest.raises(PayloadInvalid, match="longer than 256"):
        repo.checkpoint(
            pending, "w1", cursor={}, status=ExecutionStatus.FAILED, error="E" * 257, now=T0
        )

    assert repo.get_execution(pending).status == ExecutionStatus.RUNNING


def test_an_execution_can_be_created_already_claimed(repo: Repository, version: Version) -> None:
    # An in-process start creates and claims in one transaction
    execution, created = repo.create_execution(
        version, name="inline", claim_as="w1", lease_seconds=LEASE, now=T0
    )

    assert created
    assert execution.status == ExecutionStatus.RUNNING
    assert (execution.lease_owner, execution.lease_expires_at) == ("w1", T0 + seconds(LEASE))
    assert repo.claim(execution.id, "w2", lease_seconds=LEASE, now=T0) is None

    # Starting it again returns it as it is, without taking the lease
    again, created_again = repo.create_execution(version, name="inline", claim_as="w2", now=T0)
    assert not created_again
    assert again.lease_owner == "w1"


# -- the Checkpoint parameter object -------------------------------------------


def test_a_checkpoint_object_commits_as_its_fields_given_as_keywords_do(
    repo: Repository, version: Version
) -> None:
    by_keywords, by_object = (start(repo, version, name).id for name in ("kw", "obj"))
    for execution_id in (by_keywords, by_object):
        repo.claim(execution_id, "w1", lease_seconds=LEASE, now=T0)
    fields: dict[str, Any] = {
        "cursor": {"state": "B"},
        "status": ExecutionStatus.SUCCEEDED,
        "current_state": "B",
        "history": [step("A", {"n": 2})],
        "output": {"done": True},
    }

    status = repo.checkpoint(by_keywords, "w1", now=T0 + seconds(1), **fields)
    stored = repo.checkpoint_execution(by_object, "w1", Checkpoint(**fields), now=T0 + seconds(1))

    assert status == stored.status == ExecutionStatus.SUCCEEDED
    kept = repo.get_execution(by_keywords)
    assert (stored.cursor, stored.output, stored.ended_at) == (
        kept.cursor,
        kept.output,
        kept.ended_at,
    )
    assert [h.output for h in repo.history(by_object)] == [{"n": 2}]


def test_a_checkpoint_takes_an_object_or_its_fields_not_both_nor_unknown_ones(
    repo: Repository, pending: str
) -> None:
    repo.claim(pending, "w1", lease_seconds=LEASE, now=T0)
    step_ = Checkpoint(cursor={}, status=ExecutionStatus.RUNNING)

    with pytest.raises(TypeError, match="not both"):
        repo.checkpoint(pending, "w1", step_, current_state="B")
    with pytest.raises(TypeError, match="curent_state"):
        repo.checkpoint(pending, "w1", cursor={}, status=ExecutionStatus.RUNNING, curent_state="B")
    assert repo.get_execution(pending).revision == 0
