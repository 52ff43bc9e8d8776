"""Task tokens in the store: registered under a lease, stored as a hash, used once."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select, text

from orchestrator.errors import InvalidToken, LeaseLost, TaskDoesNotExist, TaskTimedOut
from orchestrator.store import NewTaskToken, Repository, Version
from orchestrator.store import models as m
from orchestrator.types import ExecutionStatus, TaskTokenStatus, TimerKind

from .conftest import T0, seconds, start
from .test_waits import race


def running(repo: Repository, version: Version, name: str = "cb") -> str:
    execution = start(repo, version, name)
    assert repo.claim(execution.id, "worker", lease_seconds=600, now=T0)
    return execution.id


def park_waiting(repo: Repository, execution_id: str) -> None:
    repo.checkpoint(
        execution_id,
        "worker",
        cursor={"waiting": True},
        status=ExecutionStatus.WAITING,
        now=T0,
    )


def register(
    repo: Repository,
    execution_id: str,
    *,
    timeout: float | None = None,
    heartbeat: float | None = None,
) -> str:
    token = secrets.token_urlsafe(32)
    repo.add_task_token(
        execution_id,
        "worker",
        NewTaskToken(
            token=token,
            state_name="Callback",
            timeout_at=None if timeout is None else T0 + seconds(timeout),
            heartbeat_seconds=heartbeat,
            payload={"path": [], "token": 1},
        ),
        now=T0,
    )
    return token


def test_a_token_is_stored_as_its_hash_only(repo: Repository, version: Version) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id)

    with repo.engine.connect() as conn:
        dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM task_tokens")))
    assert token not in dump
    stored = repo.find_task_token(token)
    assert stored is not None
    assert stored.status == TaskTokenStatus.WAITING
    assert stored.token_hash in dump


def test_registering_needs_the_lease(repo: Repository, version: Version) -> None:
    execution_id = start(repo, version, "unclaimed").id
    with pytest.raises(LeaseLost):
        repo.add_task_token(execution_id, "worker", NewTaskToken(token="t" * 43, state_name="S"))


def test_registering_the_same_token_again_keeps_the_first_row(
    repo: Repository, version: Version
) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id)
    again = repo.add_task_token(
        execution_id, "worker", NewTaskToken(token=token, state_name="Callback"), now=T0
    )
    assert [t.id for t in repo.execution_task_tokens(execution_id)] == [again.id]


def test_success_is_used_once_and_wakes_the_execution(repo: Repository, version: Version) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id)
    park_waiting(repo, execution_id)

    done = repo.complete_task_token(
        token, TaskTokenStatus.SUCCEEDED, output={"ok": 1}, now=T0 + seconds(1)
    )

    assert (done.status, done.output) == (TaskTokenStatus.SUCCEEDED, {"ok": 1})
    assert repo.get_execution(execution_id).status == ExecutionStatus.PENDING
    with pytest.raises(InvalidToken, match="already used"):
        repo.complete_task_token(token, TaskTokenStatus.FAILED, error="E", now=T0 + seconds(2))
    with pytest.raises(InvalidToken, match="already used"):
        repo.heartbeat_task_token(token, now=T0 + seconds(2))


def test_racing_answers_use_a_token_once(repo: Repository, version: Version) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id)
    park_waiting(repo, execution_id)

    def answer(i: int) -> bool:
        try:
            repo.complete_task_token(token, TaskTokenStatus.SUCCEEDED, output=i)
        except InvalidToken:
            return False
        return True

    assert sorted(race(6, answer)) == [False] * 5 + [True]


@pytest.mark.parametrize("bad", ["", "x" * 1025, "tab\there", "é" * 10, " padded "])
def test_a_malformed_token_is_invalid(repo: Repository, bad: str) -> None:
    with pytest.raises(InvalidToken):
        repo.complete_task_token(bad, TaskTokenStatus.SUCCEEDED)


def test_an_unknown_token_does_not_exist(repo: Repository) -> None:
    with pytest.raises(TaskDoesNotExist, match="unknown"):
        repo.complete_task_token(secrets.token_urlsafe(32), TaskTokenStatus.SUCCEEDED)


def test_the_timeout_timer_ends_the_token_and_wakes_the_execution(
    repo: Repository, version: Version
) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id, timeout=10)
    park_waiting(repo, execution_id)

    assert repo.claim_due_timers(T0 + seconds(9)) == []
    fired = repo.claim_due_timers(T0 + seconds(10))

    assert [(t.execution_id, t.kind) for t in fired] == [(execution_id, TimerKind.TASK_TOKEN)]
    stored = repo.find_task_token(token)
    assert stored is not None
    assert stored.status == TaskTokenStatus.TIMED_OUT
    with pytest.raises(TaskTimedOut, match="TimeoutSeconds"):
        repo.complete_task_token(token, TaskTokenStatus.SUCCEEDED, now=T0 + seconds(11))


def test_a_passed_deadline_is_refused_before_the_sweeper_fires(
    repo: Repository, version: Version
) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id, timeout=10, heartbeat=5)
    with pytest.raises(TaskTimedOut, match="no heartbeat within 5 seconds"):
        repo.complete_task_token(token, TaskTokenStatus.SUCCEEDED, now=T0 + seconds(6))


def test_heartbeats_move_the_deadline_until_the_timeout(repo: Repository, version: Version) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id, timeout=20, heartbeat=5)
    park_waiting(repo, execution_id)

    repo.heartbeat_task_token(token, now=T0 + seconds(4))
    assert repo.claim_due_timers(T0 + seconds(8)) == []  # the first deadline was 5 s
    repo.heartbeat_task_token(token, now=T0 + seconds(8))
    repo.heartbeat_task_token(token, now=T0 + seconds(12))
    repo.heartbeat_task_token(token, now=T0 + seconds(16))
    with repo.engine.connect() as conn:
        due = conn.execute(select(m.Timer.due_at).where(m.Timer.kind == "TASK_TOKEN")).scalar()
    assert due == T0 + seconds(20)  # capped by TimeoutSeconds

    assert len(repo.claim_due_timers(T0 + seconds(20))) == 1
    stored = repo.find_task_token(token)
    assert stored is not None
    assert stored.status == TaskTokenStatus.TIMED_OUT


def test_a_missed_heartbeat_ends_the_token(repo: Repository, version: Version) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id, heartbeat=5)
    park_waiting(repo, execution_id)

    assert len(repo.claim_due_timers(T0 + seconds(5))) == 1

    stored = repo.find_task_token(token)
    assert stored is not None
    assert stored.status == TaskTokenStatus.NO_HEARTBEAT
    with pytest.raises(TaskTimedOut, match="no heartbeat"):
        repo.heartbeat_task_token(token, now=T0 + seconds(6))


def test_the_token_of_a_stopped_execution_is_refused(repo: Repository, version: Version) -> None:
    execution_id = running(repo, version)
    token = register(repo, execution_id, timeout=10)
    park_waiting(repo, execution_id)

    assert repo.stop_execution(execution_id, now=T0 + seconds(1))

    with pytest.raises(TaskDoesNotExist, match="ABORTED"):
        repo.complete_task_token(token, TaskTokenStatus.SUCCEEDED, now=T0 + seconds(2))
    stored = repo.find_task_token(token)
    assert stored is not None
    assert stored.status == TaskTokenStatus.CANCELLED
    assert repo.claim_due_timers(T0 + seconds(30)) == []  # its deadline was disarmed
