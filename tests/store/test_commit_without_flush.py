"""Claims and EXPRESS ends commit without waiting for the WAL flush; checkpoints wait.

``pg_stat_wal.wal_sync`` counts the server's WAL flushes. A durable commit of a
write flushes once; a commit with ``synchronous_commit`` off leaves the flush to
the WAL writer (at most one every ``wal_writer_delay``). The counter is the
server's, so other sessions' flushes add to it: the bounds leave room for that.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from orchestrator.store import ExecutionEnd, NewExecution, Repository
from orchestrator.store.records import Checkpoint
from orchestrator.types import ExecutionStatus
from tests.store.conftest import DEFINITION

N = 120


def _syncs(repo: Repository) -> int:
    """The server's WAL flushes so far, this test's sessions' included.

    A session reports its statistics when it goes idle at least a second after its
    last report, or at once after ``pg_stat_force_next_flush()`` (PostgreSQL 15):
    so have every pooled session report (before 15: wait a second, then let every
    pooled session go idle once).
    """
    held = [repo.engine.connect() for _ in range(repo.engine.pool.checkedin())]
    forced = all(conn.dialect.server_version_info >= (15,) for conn in held)
    if not forced:
        time.sleep(1.1)
    for conn in held:
        conn.execute(text("SELECT pg_stat_force_next_flush()" if forced else "SELECT 1"))
        conn.commit()
    for conn in held:
        conn.close()
    with repo.engine.connect() as conn:
        return int(conn.execute(text("SELECT wal_sync FROM pg_stat_wal")).scalar_one())


def test_claims_and_express_ends_skip_the_flush_checkpoints_do_not(pg_repo: Repository) -> None:
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    ids = list(
        pg_repo.create_executions_bulk(
            version, [NewExecution(name=f"e{i}", input={"i": i}) for i in range(3 * N)]
        ).created.values()
    )
    express, standard = ids[:N], ids[N : 2 * N]

    before = _syncs(pg_repo)
    claimed = {}
    for execution_id in express:  # one claim, one end each: 2N commits
        claimed.update(pg_repo.claim_many([execution_id], "w", lease_seconds=60))
        end = ExecutionEnd(execution_id=execution_id, status=ExecutionStatus.SUCCEEDED)
        assert pg_repo.end_many([end], "w", claimed=[claimed[execution_id]]) != [None]
    unflushed = _syncs(pg_repo) - before

    for execution_id in standard:
        assert pg_repo.claim(execution_id, "w", lease_seconds=60) is not None
    before = _syncs(pg_repo)
    final = Checkpoint(cursor=None, status=ExecutionStatus.SUCCEEDED, may_have_waits=False)
    for execution_id in standard:  # N durable commits
        assert pg_repo.checkpoint_many([(execution_id, "w", final)]) != [None]
    flushed = _syncs(pg_repo) - before

    assert flushed >= N * 0.9, f"durable commits should flush: {flushed} flushes for {N}"
    assert unflushed < N / 3, f"{unflushed} WAL flushes for {2 * N} claims and EXPRESS ends"
    # Nothing was lost on the way: every row reads as written.
    for execution_id in express:
        assert pg_repo.get_execution(execution_id).status == ExecutionStatus.SUCCEEDED


def test_the_setting_does_not_outlive_the_statement(pg_repo: Repository) -> None:
    """``set_config(..., true)`` is local to the claim's own transaction."""
    _, version, _ = pg_repo.create_or_get_version("orders", DEFINITION)
    execution, _ = pg_repo.create_execution(version, name="a")
    with pg_repo.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert pg_repo.claim(execution.id, "w", lease_seconds=60) is not None
    with pg_repo.engine.connect() as conn:
        # The pool hands the same single connection back (or another that never ran
        # the claim): either way the session's setting is the server default.
        assert conn.execute(text("SHOW synchronous_commit")).scalar_one() == "on", pid
