"""Reliability of the Celery fan-out (issue 5): nothing lost, nothing run twice.

Real Redis, real PostgreSQL and real ``celery -A orchestrator worker -Q
critical,default,low`` subprocesses (prefork, 2 processes each) running the real
runtime. The machine has two Task states whose handler
(``reliability_handlers``) writes every call to a ledger table in the test's own
database, so "run twice" is counted, not guessed; the history must hold exactly
one StateSucceeded row per state per execution.

Recovery goes through the real sweeper: ``celery beat`` schedules
``orchestrator.sweep`` every second, with leases and the recovery grace period
shortened from minutes to seconds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from orchestrator.distributed.tasks import RUN_EXECUTION_TASK
from orchestrator.settings import Settings
from orchestrator.store import Repository
from tests.conftest import PostgresServer
from tests.distributed.conftest import RedisDB, Worker, prerun_attempts, queue_depths
from tests.distributed.reliability_support import HANDLERS, TASK_STATES, Cluster, kill_group
from tests.support import wait_until

#: Executions per batch (the issue's figure).
N = 2000
#: Effects per batch: one per Task state per execution.
EFFECTS = N * len(TASK_STATES)
#: How long a batch may take to end, recovery included.
END_TIMEOUT = 150.0  # generous: other worker tests may share the 2 CPUs
#: Short leases and grace so that recovery takes seconds: a lease lapses 3 s
#: after its last renewal, and an execution unchanged for 5 s is re-published.
RECOVERY = {"lease_seconds": 3, "recovery_grace_seconds": 5, "sweep_interval_seconds": 1}

#: Executions per run_executions message (10, the default: claimed and ended as a
#: group); RELIABILITY_PER_MESSAGE=1 runs the suite with one execution a message.
PER_MESSAGE = int(os.environ.get("RELIABILITY_PER_MESSAGE", "10"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
]  # real worker processes, kills and restarts


@pytest.fixture
def make_cluster(
    postgres_url: str,
    redis_db: RedisDB,
    app: Celery,
    start_worker: Callable[..., Worker],
    tmp_path: Path,
) -> Iterator[Callable[..., Cluster]]:
    """Build the test's cluster; ``tunables`` are Settings fields, for the test and workers."""
    clusters: list[Cluster] = []

    def make(**tunables: Any) -> Cluster:
        tunables.setdefault("executions_per_message", PER_MESSAGE)
        settings = Settings(database_url=postgres_url, broker_url=redis_db.url, **tunables)
        env = {
            "ORCHESTRATOR_DATABASE_URL": postgres_url,
            "ORCHESTRATOR_HANDLER_MODULES": HANDLERS,
            **{f"ORCHESTRATOR_{name.upper()}": str(value) for name, value in tunables.items()},
        }
        cluster = Cluster(
            settings=settings,
            repo=Repository.from_settings(settings),
            redis_db=redis_db,
            app=app,
            start_worker=start_worker,
            tmp_path=tmp_path,
            worker_env=env,
        )
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()
        cluster.repo.close()


def assert_all_succeeded_once(cluster: Cluster, batch_id: str, counts: dict[str, int]) -> None:
    """Every execution SUCCEEDED and its history holds each state exactly once."""
    assert counts == {"SUCCEEDED": N}, cluster.logs_tail()
    assert cluster.history_anomalies(batch_id) == []
    assert cluster.history_rows(batch_id) == N * 3


# -- 1. the happy path ------------------------------------------------------------------


def test_a_batch_of_2000_across_two_workers_has_each_effect_exactly_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    # Given two workers and 2,000 finished source executions
    cluster = make_cluster()
    cluster.add_sources(N)
    cluster.start_workers(2)
    # When a batch chains one execution from each
    result = cluster.run_batch()
    counts = cluster.wait_ended(result.batch_id, N, timeout=END_TIMEOUT)
    # Then all 2,000 SUCCEEDED, and each of their 4,000 effects happened exactly once
    assert (result.created, result.published) == (N, N)
    assert_all_succeeded_once(cluster, result.batch_id, counts)
    ledger = cluster.ledger(result.batch_id)
    assert (ledger.effects, ledger.keys) == (EFFECTS, EFFECTS)
    assert ledger.repeated == []
    # ... and both workers took part
    pids = {pid for w in cluster.workers for pid in cluster.pids_of(w)}
    assert cluster.effects_by(pids) == EFFECTS
    assert all(cluster.effects_by(cluster.pids_of(w)) > 0 for w in cluster.workers)


# -- 2. a killed worker ---------------------------------------------------------------


def test_a_worker_killed_mid_batch_loses_nothing_and_reruns_no_committed_state(
    make_cluster: Callable[..., Cluster], redis_db: RedisDB
) -> None:
    # Given two workers, the sweeper, and a batch in which the 500th Charge
    # handler hangs (its execution's Reserve is committed)
    cluster = make_cluster(**RECOVERY)
    cluster.add_sources(N)
    cluster.plan_pause("Charge", nth=N // 4, seconds=600)
    cluster.start_workers(2)
    cluster.start_beat()
    result = cluster.run_batch()
    pid, hung = cluster.wait_paused()
    cluster.wait_succeeded(result.batch_id, N // 3, timeout=END_TIMEOUT)
    assert cluster.committed_states(hung) == ["Reserve"]
    # When the worker running it is SIGKILLed, main process and pool children at once
    victim = cluster.worker_of(pid)
    killed = kill_group(victim)
    assert cluster.succeeded(result.batch_id) < N, "the kill came too late to matter"
    # Then all 2,000 still end, SUCCEEDED, each state once in history
    counts = cluster.wait_ended(result.batch_id, N, timeout=END_TIMEOUT)
    assert_all_succeeded_once(cluster, result.batch_id, counts)
    # ... the hung execution resumed at Charge: Reserve (committed) did not run again
    assert cluster.calls(hung) == {"Reserve": 1, "Charge": 1}
    # ... every effect happened, and one ran twice only if the kill came before
    # its commit: the call cut off, or a Task whose execution ended but waited
    # for its message's group commit (at most one message's worth per killed
    # pool process)
    ledger = cluster.ledger(result.batch_id)
    assert ledger.effects == EFFECTS
    assert ledger.split == [], "a redelivered state must present the same idempotency key"
    per_message = cluster.settings.executions_per_message
    assert len(ledger.repeated) <= (len(killed) - 1) * per_message, ledger.repeated
    assert all(pids[0] in killed for *_, pids in ledger.repeated), ledger.repeated
    # ... and it was the sweeper that brought them back: Redis still holds the
    # killed worker's unacknowledged messages (an hour's visibility timeout)
    assert redis_db.client.hlen("unacked") >= 1
    assert "stalled executions" in cluster.sweeper_log()


# -- 3. Redis flushed -------------------------------------------------------------------


def test_redis_flushed_mid_batch_loses_nothing_through_the_sweeper(
    make_cluster: Callable[..., Cluster], redis_db: RedisDB
) -> None:
    # Given two workers, the sweeper, and a batch under way with messages queued
    cluster = make_cluster(**RECOVERY)
    cluster.add_sources(N)
    cluster.start_workers(2)
    cluster.start_beat()
    result = cluster.run_batch()
    cluster.wait_succeeded(result.batch_id, N // 4, timeout=END_TIMEOUT)
    queued = queue_depths(redis_db)
    # When Redis loses everything (FLUSHDB: queues, unacked messages, bindings)
    redis_db.client.flushdb()
    redis_db.relock(uuid.uuid4().hex)
    # (messages carry up to executions_per_message executions each)
    waiting = cluster.count_status(result.batch_id, "PENDING")
    assert queued > 0, "nothing was queued at the flush"
    assert waiting > N // 4, f"only {waiting} executions were waiting at the flush"
    # Then all 2,000 still end, SUCCEEDED, each state once in history
    counts = cluster.wait_ended(result.batch_id, N, timeout=END_TIMEOUT)
    assert_all_succeeded_once(cluster, result.batch_id, counts)
    # ... and no effect happened twice (no worker died: nothing was cut off)
    ledger = cluster.ledger(result.batch_id)
    assert (ledger.effects, ledger.keys) == (EFFECTS, EFFECTS)
    assert ledger.repeated == []
    assert "stalled executions" in cluster.sweeper_log()


# -- 4. PostgreSQL restarted -----------------------------------------------------------


def _cluster_name() -> str:
    (version,) = (p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    return version


def _pg_ctl(action: str) -> None:
    subprocess.run(  # noqa: S603  # fixed command
        ["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_name(), "main", action],  # noqa: S607
        check=True,
        capture_output=True,
        timeout=60,
    )


def _pg_ready() -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-t", "1"],  # noqa: S607
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


@pytest.fixture
def restartable_postgres(postgres_server: PostgresServer) -> Iterator[Callable[[], None]]:
    """Restart the machine's PostgreSQL server; it is left running, whatever happens.

    Databases of earlier tests are dropped in the background; those drops are
    finished first, so the restart cuts off only this test's connections.
    """
    concurrent.futures.wait(list(postgres_server._pending))

    def restart() -> None:
        _pg_ctl("restart")
        wait_until(_pg_ready, timeout=60, what="PostgreSQL to accept connections", interval=0.2)

    yield restart
    if not _pg_ready():
        with contextlib.suppress(subprocess.CalledProcessError):
            _pg_ctl("start")
        wait_until(_pg_ready, timeout=60, what="PostgreSQL to come back", interval=0.2)


@pytest.mark.restarts_service
def test_postgres_restarted_mid_batch_workers_back_off_and_all_end(
    make_cluster: Callable[..., Cluster], restartable_postgres: Callable[[], None]
) -> None:
    # Given two workers, the sweeper, and a batch under way
    cluster = make_cluster(**RECOVERY)
    cluster.add_sources(N)
    cluster.start_workers(2)
    cluster.start_beat()
    result = cluster.run_batch()
    cluster.wait_succeeded(result.batch_id, N // 4, timeout=END_TIMEOUT)
    # When the PostgreSQL server restarts under them
    restartable_postgres()
    assert cluster.succeeded(result.batch_id) < N, "the restart came too late to matter"
    # Then all 2,000 still end, SUCCEEDED, each state once in history
    counts = cluster.wait_ended(result.batch_id, N, timeout=END_TIMEOUT)
    assert_all_succeeded_once(cluster, result.batch_id, counts)
    # ... every effect happened; one ran twice only where the restart came between
    # the handler and the commit, with the same key. A message's executions commit
    # their ends together (group commit), so what was in flight at the restart is
    # at most one message's executions per pool process: 2 workers x 2 processes.
    ledger = cluster.ledger(result.batch_id)
    assert ledger.effects == EFFECTS
    assert ledger.split == []
    in_flight = 2 * 2 * cluster.settings.executions_per_message
    assert len(ledger.repeated) <= in_flight, ledger.repeated
    # ... and the workers backed off and retried rather than failing the tasks
    logs = "".join(w.log() for w in cluster.workers)
    assert "retry: Retry in" in logs


# -- 5. SIGTERM -------------------------------------------------------------------------


def test_sigterm_finishes_in_flight_work_and_hands_the_rest_back(
    make_cluster: Callable[..., Cluster],
) -> None:
    # Given two workers (no sweeper), and a batch in which the 500th Charge
    # handler takes 3 s
    cluster = make_cluster()
    cluster.add_sources(N)
    cluster.plan_pause("Charge", nth=N // 4, seconds=3)
    cluster.start_workers(2)
    result = cluster.run_batch()
    pid, slow = cluster.wait_paused()
    assert cluster.committed_states(slow) == ["Reserve"]
    # When the worker running it gets SIGTERM (warm shutdown) mid-batch
    victim = cluster.worker_of(pid)
    victim.process.send_signal(signal.SIGTERM)
    assert cluster.succeeded(result.batch_id) < N, "the SIGTERM came too late to matter"
    # Then it finishes what it runs and exits cleanly (within billiard's 30 s
    # wait for the pool's last results, see Cluster.stop)
    assert victim.process.wait(45) == 0, victim.log()[-3000:]
    # ... and the other worker ends all 2,000, with no effect twice and none lost
    counts = cluster.wait_ended(result.batch_id, N, timeout=END_TIMEOUT)
    assert_all_succeeded_once(cluster, result.batch_id, counts)
    assert cluster.calls(slow) == {"Reserve": 1, "Charge": 1}
    ledger = cluster.ledger(result.batch_id)
    assert (ledger.effects, ledger.keys) == (EFFECTS, EFFECTS)
    assert ledger.repeated == []


# -- 6. the same batch twice ----------------------------------------------------------


def test_the_same_batch_run_twice_starts_nothing_new(
    make_cluster: Callable[..., Cluster],
) -> None:
    # Given a batch of 2,000 that two workers are running
    cluster = make_cluster()
    cluster.add_sources(N)
    cluster.start_workers(2)
    first = cluster.run_batch()
    # When the same batch runs again while the first is under way, and after it ended
    during = cluster.run_batch()
    counts = cluster.wait_ended(first.batch_id, N, timeout=END_TIMEOUT)
    after = cluster.run_batch()
    # Then the repeats created and published nothing, and skipped every source
    assert (first.created, first.published) == (N, N)
    for again in (during, after):
        assert (again.sources, again.created, again.skipped, again.published) == (N, 0, N, 0)
    assert cluster.execution_count() == N
    # ... and the first batch ran each effect once
    assert_all_succeeded_once(cluster, first.batch_id, counts)
    ledger = cluster.ledger(first.batch_id)
    assert (ledger.effects, ledger.keys) == (EFFECTS, EFFECTS)
    assert ledger.repeated == []


# -- 7. malformed messages and unknown executions ---------------------------------------


def _settle(cluster: Cluster, redis_db: RedisDB) -> None:
    """Run a real execution behind what was sent; once it ended, wait for stray retries.

    One solo worker runs the ``default`` queue in order, so once the sentinel
    ended every earlier message was handled; the pause lets a wrongly scheduled
    retry (the first comes within a second) show up.
    """
    sentinel = cluster.machine.start_async({"n": -1}, publisher=cluster.publish)
    wait_until(
        lambda: cluster.repo.get_execution(sentinel.id).status == "SUCCEEDED",
        timeout=30,
        what="the sentinel execution",
    )
    wait_until(lambda: queue_depths(redis_db) == 0, timeout=5, what="the queues to drain")
    time.sleep(2.0)


def test_malformed_messages_and_unknown_executions_run_once_and_are_dropped(
    make_cluster: Callable[..., Cluster], redis_db: RedisDB, app: Celery
) -> None:
    # Given a worker with the real runtime, and messages no producer of ours sends
    cluster = make_cluster()
    (worker,) = cluster.start_workers(1, pool="solo", concurrency=1)
    bad = {
        "non-string id": {"args": [123]},
        "event not an object": {"args": [str(uuid.uuid4()), "not-an-object"]},
        "id too long": {"args": ["x" * 300]},
        "no arguments": {"args": []},
        "unknown keyword": {"kwargs": {"execution": "x"}},
        "unknown uuid": {"args": [str(uuid.uuid4())]},
        "unknown name": {"args": ["no-such-execution"]},
    }
    sent = {
        why: app.send_task(RUN_EXECUTION_TASK, queue="default", **message).id
        for why, message in bad.items()
    }
    # When the worker has handled them
    _settle(cluster, redis_db)
    # Then each ran exactly once, none is retried or left queued, and the worker lives on
    for why, task_id in sent.items():
        assert prerun_attempts(redis_db, task_id) == [0], why
    assert queue_depths(redis_db) == 0
    assert worker.process.poll() is None
    # ... and the malformed ones were rejected with a clear error in the log
    log = worker.log()
    assert "rejected orchestrator.run_execution task" in log
    assert "execution_id must be a non-empty string, got int 123" in log
    assert "event must be null or a JSON object" in log
    assert "longer than 256" in log
    assert "missing 1 required positional argument: 'execution_id'" in log
    assert "unexpected keyword argument 'execution'" in log


def test_an_unknown_execution_id_is_logged_as_an_error(
    make_cluster: Callable[..., Cluster], redis_db: RedisDB, app: Celery
) -> None:
    # Given a worker with the real runtime
    cluster = make_cluster()
    (worker,) = cluster.start_workers(1, pool="solo", concurrency=1)
    # When it is asked to run an execution that does not exist
    unknown = str(uuid.uuid4())
    task_id = app.send_task(RUN_EXECUTION_TASK, args=[unknown], queue="default").id
    _settle(cluster, redis_db)
    # Then it ran once, and the log has an ERROR (or WARNING) naming the missing execution
    assert prerun_attempts(redis_db, task_id) == [0]
    lines = [line for line in worker.log().splitlines() if unknown in line]
    assert any(("ERROR" in line or "WARNING" in line) for line in lines), lines
    assert any("not found" in line.lower() or "no execution" in line.lower() for line in lines)
