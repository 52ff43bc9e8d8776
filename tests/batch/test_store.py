"""The repository's batch-control methods: the lead, conditional writes, holds (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.store import NewExecution, Repository, Version
from orchestrator.types import BATCH_HOLD_OWNER_PREFIX, BatchStatus

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DEFINITION = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}


@pytest.fixture
def version(repo: Repository) -> Version:
    """Version 1 of state machine ``orders``."""
    return repo.create_or_get_version("orders", DEFINITION, now=T0)[1]


def new_batch(repo: Repository, version: Version, *, leader: str = "leader-1") -> str:
    batch = repo.create_batch(
        version.state_machine_id, filter={}, options={}, leader=leader, now=T0
    )
    return batch.id


def add_executions(
    repo: Repository, version: Version, batch_id: str, count: int, *, first: int = 0
) -> list[str]:
    rows = [
        NewExecution(name=f"{batch_id}-{i}", batch_id=batch_id) for i in range(first, first + count)
    ]
    return list(repo.create_executions_bulk(version, rows).created.values())


def test_only_the_leader_beats_and_a_silent_leader_can_be_replaced(
    repo: Repository, version: Version
) -> None:
    # Given a batch led by leader-1
    batch_id = new_batch(repo, version)
    beat = repo.lead_batch(batch_id, "leader-1", created=5, position={"index": 5})
    assert beat is not None
    assert (beat.created_count, beat.position) == (5, {"index": 5})
    assert repo.lead_batch(batch_id, "leader-2", created=1) is None

    # When leader-2 tries to take the lead while leader-1 beats, it cannot
    recent = datetime.now(UTC) - timedelta(seconds=60)
    assert repo.take_batch_lead(batch_id, "leader-2", stale_before=recent) is None

    # But once leader-1 is silent for long enough (or steps down), it can
    later = datetime.now(UTC) + timedelta(seconds=1)
    taken = repo.take_batch_lead(batch_id, "leader-2", stale_before=later)
    assert taken is not None
    assert taken.leader == "leader-2"
    assert repo.lead_batch(batch_id, "leader-1") is None  # the old leader steps down
    assert repo.release_batch_lead(batch_id, "leader-2") is True
    assert repo.get_batch(batch_id).leader is None


def test_a_guard_write_loses_to_a_resume_that_reset_the_guard(
    repo: Repository, version: Version
) -> None:
    # Given a guard that has seen 40 executions
    batch_id = new_batch(repo, version)
    repo.lead_batch(batch_id, "leader-1", guard=(0, 0.3, 40))
    repo.pause_batch(batch_id, reason="by hand")

    # When a resume resets it, and then the leader writes what it had computed
    resumed, _ = repo.resume_batch(batch_id, reason="go on")
    stale = repo.lead_batch(batch_id, "leader-1", guard=(40, 0.35, 60))

    # Then the reset wins
    assert (resumed.failure_rate, resumed.guard_observed) == (None, 0)
    assert stale is not None
    assert (stale.failure_rate, stale.guard_observed) == (None, 0)


def test_the_guard_does_not_pause_a_batch_it_no_longer_judges(
    repo: Repository, version: Version
) -> None:
    batch_id = new_batch(repo, version)
    repo.lead_batch(batch_id, "leader-1", guard=(0, 0.5, 30))

    stale, held = repo.pause_batch(batch_id, reason="guard", guard_observed=20)
    assert (stale.status, held) == (BatchStatus.RUNNING, 0)

    repo.resume_batch(batch_id, reason="disarm", arm_guard=False)
    repo.lead_batch(batch_id, "leader-1", guard=(0, 0.5, 30))
    disarmed, _ = repo.pause_batch(batch_id, reason="guard", guard_observed=30)
    assert disarmed.status == BatchStatus.RUNNING


def test_holding_happens_only_while_the_batch_is_paused(repo: Repository, version: Version) -> None:
    # Given a running batch with 3 unstarted executions
    batch_id = new_batch(repo, version)
    ids = add_executions(repo, version, batch_id, 3)

    # Then the leader's hold does nothing while it runs
    assert repo.hold_unstarted(batch_id) == 0

    # And while it is paused, new executions are held by the leader's hold
    _, held = repo.pause_batch(batch_id, reason="by hand")
    more = add_executions(repo, version, batch_id, 2, first=3)
    assert (held, repo.hold_unstarted(batch_id)) == (3, 2)
    for execution_id in [*ids, *more]:
        owner = repo.get_execution(execution_id).lease_owner or ""
        assert owner == f"{BATCH_HOLD_OWNER_PREFIX}{batch_id}"
        assert repo.claim(execution_id, "worker", lease_seconds=30) is None

    # And a resume releases all five, which a worker can claim then
    _, released = repo.resume_batch(batch_id, reason="go on")
    assert sorted(i for i, _ in released) == sorted([*ids, *more])
    assert repo.claim(ids[0], "worker", lease_seconds=30) is not None


def test_a_bad_failure_cursor_is_refused(repo: Repository, version: Version) -> None:
    batch_id = new_batch(repo, version)
    with pytest.raises(ValueError, match="invalid page cursor"):
        repo.batch_failures(batch_id, cursor="not-a-cursor")
    with pytest.raises(ValueError, match="limit"):
        repo.batch_failures(batch_id, limit=0)
