"""Batches on real workers: the failure guard, cancel mid-run, micro-batch slices.

Real PostgreSQL, real Redis and ``celery -A orchestrator worker`` subprocesses
running the real runtime; the leader runs in a thread of the test process and is
steered from the test through the same functions the CLI and HTTP API call.

Timing: one prefork worker with 3 processes runs these executions at about 180/s
on an idle 2-CPU host (the 5,000 run takes about 30 s) and at 70-100/s when the
host is shared with other worker tests (up to about 70 s).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime

import pytest
from sqlalchemy import text

from orchestrator.batch import control as batch_control
from orchestrator.types import BATCH_CANCELLED_ERROR, BatchStatus, ExecutionStatus
from tests.batch.conftest import Cluster, wait_for
from tests.batch.work import fails

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # real worker processes, big batches


def test_a_batch_of_5000_failing_40_percent_pauses_itself_and_resumes_on_command(
    cluster: Cluster,
) -> None:
    # Given a worker, and 5,000 inputs of which 2 in 5 fail, in micro-batches of 1,000
    cluster.start_workers(1, concurrency=3)
    inputs = [{"n": n} for n in range(5000)]

    # When the batch runs with the default guard (pause at a failure rate of 0.25)
    leader = cluster.bulk_in_background(inputs, micro_batch_size=1000, poll_interval=0.1)
    batch_id = cluster.only_batch()
    wait_for(
        lambda: cluster.status(batch_id) == BatchStatus.PAUSED,
        timeout=30,
        what="the failure guard to pause the batch",
    )

    # Then it paused itself within its first slice, saying why, with a warning stored
    paused = batch_control.describe(cluster.repo, batch_id)
    assert "failure guard paused the batch" in (paused.batch.status_reason or "")
    assert "warning threshold" in (paused.batch.warning or "")
    assert (paused.batch.failure_rate or 0) >= 0.25
    assert paused.leader_alive
    assert not paused.needs_leader
    # And the worker, which got their messages, started none of those held
    held = paused.counts["held"]
    assert held > 0
    wait_for(lambda: _running(cluster, batch_id) == 0, timeout=60, what="started ones to end")
    assert cluster.redis is not None
    wait_for(lambda: _queued(cluster) == 0, timeout=60, what="the worker to drain its queue")
    still = batch_control.describe(cluster.repo, batch_id)
    assert still.counts["held"] == held
    assert still.batch.created_count == 1000

    # When it is resumed on command (twice: the second call does nothing), guard disarmed
    resumed = batch_control.resume(
        cluster.repo, batch_id, publisher=cluster.publish, arm_guard=False
    )
    again = batch_control.resume(cluster.repo, batch_id, publisher=cluster.publish)
    assert (resumed.released, resumed.published) == (held, held)
    assert resumed.batch.status == BatchStatus.RUNNING
    assert (again.changed, again.released) == (False, 0)

    # Then the held executions run, the leader goes on where it stopped, and it completes
    result = leader.result(timeout=230)  # generous: other worker tests may share the CPUs
    assert result.status == BatchStatus.COMPLETED
    counts = batch_control.describe(cluster.repo, batch_id).counts
    assert counts["FAILED"] == sum(fails(n) for n in range(5000)) == 2000
    assert counts["SUCCEEDED"] == 3000
    assert (counts["held"], counts["unstarted"]) == (0, 0)
    done = cluster.repo.get_batch(batch_id)
    assert (done.created_count, done.source_count, done.skipped_count) == (5000, 5000, 0)


def test_cancel_mid_run_leaves_no_execution_half_started(cluster: Cluster) -> None:
    # Given workers and a batch of slow executions in micro-batches of 150
    cluster.start_workers(1, concurrency=2)
    inputs = [{"n": n, "ok": True, "sleep": 0.01} for n in range(1500)]
    leader = cluster.bulk_in_background(inputs, micro_batch_size=150)
    batch_id = cluster.only_batch()

    # When it is cancelled while its second slice runs (and cancelled again)
    wait_for(lambda: _ended(cluster, batch_id) > 170, timeout=30, what="the second slice")
    report = batch_control.cancel(cluster.repo, batch_id)
    second = batch_control.cancel(cluster.repo, batch_id)

    # Then the leader stops, nothing more is created, and the report says what had started
    assert leader.result(timeout=30).status == BatchStatus.CANCELLED
    assert (report.changed, second.changed, second.aborted) == (True, False, 0)
    created = cluster.repo.get_batch(batch_id).created_count
    assert created == 300
    assert report.aborted > 0
    assert report.aborted + report.started == created
    wait_for(lambda: _running(cluster, batch_id) == 0, timeout=30, what="started ones to end")

    # And every execution either ran to its end or never started at all
    executions = cluster.executions(batch_id)
    assert len(executions) == created
    history = _history_counts(cluster, batch_id)
    aborted = [e for e in executions if e.error == BATCH_CANCELLED_ERROR]
    ran = [e for e in executions if e.error != BATCH_CANCELLED_ERROR]
    assert len(aborted) == report.aborted
    for execution in aborted:
        assert execution.status == ExecutionStatus.ABORTED
        assert (execution.revision, execution.last_seq, execution.cursor) == (0, 0, None)
        assert history.get(execution.id, 0) == 0
    for execution in ran:
        assert execution.status == ExecutionStatus.SUCCEEDED
        assert history[execution.id] >= 1


def test_micro_batch_slices_never_overlap(cluster: Cluster) -> None:
    # Given two workers and 600 executions of varying length, in micro-batches of 100
    cluster.start_workers(2, concurrency=2)
    inputs = [{"n": n, "ok": True, "sleep": (n * 7 % 11) / 200} for n in range(600)]

    # When the batch runs to its end
    result = cluster.bulk(inputs, micro_batch_size=100)
    assert result.status == BatchStatus.COMPLETED

    # Then slice k+1 was created, and its first state entered, only after every
    # execution of slice k had ended
    spans = _slice_spans(cluster, result.batch_id, size=100)
    assert len(spans) == 6
    for (_, _, end), (created, first_entered, _) in itertools.pairwise(spans):
        assert end <= created <= first_entered
    for created, first_entered, end in spans:
        assert created <= first_entered <= end


def _queued(cluster: Cluster) -> int:
    assert cluster.redis is not None
    client = cluster.redis.client
    waiting = sum(int(client.llen(q)) for q in ("critical", "default", "low"))
    return waiting + int(client.hlen("unacked"))


def _ended(cluster: Cluster, batch_id: str) -> int:
    counts = cluster.repo.batch_execution_counts(batch_id)
    return sum(counts.get(str(s), 0) for s in ExecutionStatus if s.is_terminal)


def _running(cluster: Cluster, batch_id: str) -> int:
    counts = cluster.repo.batch_execution_counts(batch_id)
    return counts.get("RUNNING", 0) + counts.get("PENDING", 0) - counts["held"]


def _history_counts(cluster: Cluster, batch_id: str) -> dict[str, int]:
    with cluster.repo.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT h.execution_id, count(*) FROM history h JOIN executions e "
                "ON e.id = h.execution_id WHERE e.batch_id = :batch GROUP BY h.execution_id"
            ),
            {"batch": batch_id},
        )
        return {row[0]: int(row[1]) for row in rows}


def _slice_spans(
    cluster: Cluster, batch_id: str, *, size: int
) -> list[tuple[datetime, datetime, datetime]]:
    """Per slice (by input index): (created at, first state entered at, last ended at)."""
    with cluster.repo.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.name, e.started_at, min(h.entered_at), e.ended_at FROM executions e "
                "JOIN history h ON h.execution_id = e.id WHERE e.batch_id = :batch "
                "GROUP BY e.id, e.name, e.started_at, e.ended_at"
            ),
            {"batch": batch_id},
        ).all()
    by_slice: dict[int, list[tuple[datetime, datetime, datetime]]] = defaultdict(list)
    for name, created, entered, ended in rows:
        by_slice[int(name.rsplit("-", 1)[1]) // size].append((created, entered, ended))
    spans = []
    for index in sorted(by_slice):
        members = by_slice[index]
        assert len({created for created, _, _ in members}) == 1  # one INSERT per slice
        spans.append(
            (members[0][0], min(e for _, e, _ in members), max(end for _, _, end in members))
        )
    return spans
