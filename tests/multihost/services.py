"""The services of the multihost lab: PostgreSQL, Redis with Sentinel, workers, beat, client.

:class:`Deployment` starts, inside a :class:`~tests.multihost.harness.Lab`:

- ``db``: a PostgreSQL of its own (``initdb`` on a fresh data directory under the
  lab's folder, run as the ``postgres`` user, listening on the ``db`` address and
  on a Unix socket for the test process). The shared server is never touched.
- ``r1``: the Redis primary, ``r2``/``r3`` its replicas, and one Sentinel on each
  of the three (quorum 2, ``down-after`` 1 s).

Per scenario (:meth:`Deployment.scenario`): a fresh database with the ledger and
the machines, then workers on ``w1``/``w2`` and ``celery beat`` (the sweeper) on
``c``, all with the deployment's settings in their environment; the batch itself
is started by :mod:`tests.multihost.client` on ``c``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import redis

from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import NewExecution, Repository
from orchestrator.store.migrations import upgrade
from tests.multihost.harness import REPO_ROOT, Lab, Proc, python_command, run

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
MASTER_NAME = "mhmaster"
REDIS_HOSTS = ("r1", "r2", "r3")
LEASE_SECONDS = 5.0
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
#: libpq settings a worker needs across hosts: a dead link fails a statement in
#: seconds (tcp_user_timeout) instead of after the kernel's ~15 min of retries.
LIBPQ_TIMEOUTS = (
    "connect_timeout=3&tcp_user_timeout=5000"
    "&keepalives_idle=2&keepalives_interval=1&keepalives_count=3"
)

MACHINE_NAME = "multihost"
SOURCE_MACHINE = "multihost-source"
#: Two Task states with side effects, then the end: three history rows per execution.
MACHINE: dict[str, Any] = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {
            "Type": "Task",
            "Resource": "multihost.effect",
            "ResultPath": "$.reserve",
            "Next": "Charge",
        },
        "Charge": {
            "Type": "Task",
            "Resource": "multihost.effect",
            "ResultPath": "$.charge",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
STATES = ("Reserve", "Charge", "Done")
SOURCE_DEFINITION: dict[str, Any] = {
    "StartAt": "Emit",
    "States": {"Emit": {"Type": "Pass", "End": True}},
}


@dataclass
class Deployment:
    """PostgreSQL and Redis/Sentinel in the lab, and what each scenario starts."""

    lab: Lab
    redis: dict[str, Proc] = field(default_factory=dict)
    sentinels: dict[str, Proc] = field(default_factory=dict)
    postgres: Proc | None = None

    # -- PostgreSQL -------------------------------------------------------------

    @property
    def pg_socket(self) -> Path:
        """The directory of PostgreSQL's Unix socket (how the test process reaches it)."""
        return self.lab.root / "pgsock"

    def start_postgres(self) -> None:
        """initdb a fresh cluster as ``postgres`` and start it on the ``db`` host."""
        if not PG_BIN:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        bin_dir, data = PG_BIN[-1], self.lab.root / "pgdata"
        for folder in (data, self.pg_socket):
            folder.mkdir()
            run("chown", "postgres:postgres", str(folder))
        run(
            "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
            str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.lab.ip('db')}/24 trust\n")
        self.postgres = self.lab.start(
            "db",
            "postgres",
            [
                str(bin_dir / "postgres"), "-D", str(data), "-p", "5432",
                "-k", str(self.pg_socket),
                "-c", f"listen_addresses={self.lab.ip('db')},{self.lab.ip('ledger')}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200", "-c", "shared_buffers=64MB",
            ],
            user="postgres",
        )  # fmt: skip
        self.lab.wait_log(self.postgres, "ready to accept connections")

    def local_url(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` through the Unix socket (for the test process)."""
        return f"postgresql://postgres@/{database}?host={self.pg_socket}&port=5432"

    def host_url(self, database: str, *, host: str = "db", port: int = 5432) -> str:
        """URL of ``database`` over the lab network (for workers and the client)."""
        return f"postgresql://postgres@{self.lab.ip(host)}:{port}/{database}?{LIBPQ_TIMEOUTS}"

    def query(self, database: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement through the Unix socket; return its rows."""
        conn = psycopg2.connect(
            host=str(self.pg_socket), port=5432, user="postgres", dbname=database
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    # -- Redis and Sentinel -------------------------------------------------------

    def redis_socket(self, host: str) -> Path:
        """The Unix socket of the Redis on ``host``."""
        return self.lab.root / f"redis-{host}.sock"

    def start_redis(self) -> None:
        """The primary on r1, replicas on r2 and r3, and a Sentinel on each."""
        primary = self.lab.ip("r1")
        for host in REDIS_HOSTS:
            self.start_redis_on(host, replica_of=None if host == "r1" else primary)
        for host in REDIS_HOSTS:
            conf = self.lab.root / f"sentinel-{host}.conf"
            conf.write_text(
                f"port 26379\nbind {self.lab.ip(host)}\nprotected-mode no\n"
                f"dir {self.lab.root}\n"
                f"sentinel monitor {MASTER_NAME} {primary} 6379 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 2\n"
            )
            proc = self.lab.start(
                host, f"sentinel-{host}", ["redis-server", str(conf), "--sentinel"]
            )
            self.sentinels[host] = proc
        for proc in self.sentinels.values():
            self.lab.wait_log(proc, "+monitor master")
        # Each Sentinel must know the other two and both replicas before a failover.
        deadline = time.monotonic() + 30
        while not all(
            "+sentinel " in p.log() and "+slave " in p.log() for p in self.sentinels.values()
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the Sentinels did not discover each other")
            time.sleep(0.2)

    def start_redis_on(self, host: str, *, replica_of: str | None) -> Proc:
        """Start (or restart) the Redis server of ``host``."""
        argv = [
            "redis-server", "--bind", self.lab.ip(host), "--port", "6379",
            "--unixsocket", str(self.redis_socket(host)), "--unixsocketperm", "700",
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
            "--dir", str(self.lab.root),
        ]  # fmt: skip
        if replica_of is not None:
            argv += ["--replicaof", replica_of, "6379"]
        proc = self.lab.start(host, f"redis-{host}-{uuid.uuid4().hex[:4]}", argv)
        self.redis[host] = proc
        self.lab.wait_log(proc, "Ready to accept connections")
        return proc

    def redis_client(self, host: str) -> redis.Redis:
        """A client on ``host``'s Redis through its Unix socket."""
        return redis.Redis(unix_socket_path=str(self.redis_socket(host)), socket_timeout=2)

    def master(self) -> str | None:
        """The host whose Redis says it is the master now (None if none answers so)."""
        for host in REDIS_HOSTS:
            with contextlib.suppress(redis.RedisError, OSError):
                client = self.redis_client(host)
                try:
                    if client.role()[0] in (b"master", "master"):
                        return host
                finally:
                    client.close()
        return None

    def broker_url(self) -> str:
        """The ``sentinel://`` URL of the three Sentinels."""
        return ";".join(f"sentinel://{self.lab.ip(h)}:26379" for h in REDIS_HOSTS)

    # -- one scenario -------------------------------------------------------------

    def scenario(
        self, name: str, *, sources: int, broker_env: dict[str, str] | None = None
    ) -> Scenario:
        """A fresh database with ``sources`` finished source executions; nothing running yet.

        ``broker_env`` replaces the broker settings of every process (default: Redis
        through the Sentinels).
        """
        database = f"mh_{name}_{uuid.uuid4().hex[:6]}"
        self.query("postgres", f"CREATE DATABASE {database}")
        upgrade(self.local_url(database))
        self.query(database, _ledger_ddl())
        settings = Settings(database_url=self.local_url(database))
        repo = Repository.from_settings(settings)
        try:
            StateMachine.create(MACHINE_NAME, MACHINE, repository=repo, settings=settings)
            source = StateMachine.create(
                SOURCE_MACHINE, SOURCE_DEFINITION, repository=repo, settings=settings
            )
            rows = [NewExecution(name=f"source-{i}", input={"n": i}) for i in range(sources)]
            repo.create_executions_bulk(source.version_record, rows)
        finally:
            repo.close()
        self.query(
            database,
            "UPDATE executions SET status = 'SUCCEEDED', output = input, ended_at = updated_at",
        )
        master = self.master()
        if master is not None:
            client = self.redis_client(master)
            client.flushall()
            client.close()
        return Scenario(self, database, sources, broker_env=dict(broker_env or {}))


def _ledger_ddl() -> str:
    # The worker-side module refuses to be imported under pytest; its DDL is short.
    return (
        "CREATE TABLE ledger (idempotency_key text PRIMARY KEY, execution_id text NOT NULL, "
        "state_name text NOT NULL, calls integer NOT NULL, hosts text[] NOT NULL, "
        "recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )


@dataclass
class Scenario:
    """One scenario's database, workers and batch; what the checks read back."""

    deployment: Deployment
    database: str
    total: int
    workers: dict[str, Proc] = field(default_factory=dict)
    extra: list[Proc] = field(default_factory=list)
    samples: list[tuple[float, int]] = field(default_factory=list)
    broker_env: dict[str, str] = field(default_factory=dict)

    @property
    def lab(self) -> Lab:
        """The lab."""
        return self.deployment.lab

    def environment(self, *, db_host: str = "db", db_port: int = 5432) -> dict[str, str]:
        """The ``ORCHESTRATOR_*`` environment of workers, beat and client."""
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            "ORCHESTRATOR_DATABASE_URL": self.deployment.host_url(
                self.database, host=db_host, port=db_port
            ),
            "ORCHESTRATOR_BROKER_URL": self.deployment.broker_url(),
            "ORCHESTRATOR_BROKER_TRANSPORT_OPTIONS": json.dumps(
                {
                    "master_name": MASTER_NAME,
                    "socket_timeout": 5,
                    "socket_connect_timeout": 3,
                    "sentinel_kwargs": {"socket_timeout": 1, "socket_connect_timeout": 1},
                }
            ),
            "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS),
            "ORCHESTRATOR_RECOVERY_GRACE_SECONDS": "8",
            "ORCHESTRATOR_SWEEP_INTERVAL_SECONDS": "2",
            "ORCHESTRATOR_HANDLER_MODULES": "tests.multihost.ledger_handlers",
            # The ledger is the test's instrument, not the system under test: it is
            # reached at the db host's second address, which a cut of db spares.
            "MULTIHOST_LEDGER_URL": self.deployment.host_url(self.database, host="ledger"),
            **self.broker_env,
        }

    def start_worker(self, host: str, *, concurrency: int = 2, **env: str) -> Proc:
        """A prefork worker on ``host``, consuming all three queues."""
        argv = python_command(
            "-m", "celery", "-A", "orchestrator", "worker", "-Q", "critical,default,low",
            "-n", f"{host}@%h", "-P", "prefork", "-c", str(concurrency), "-l", "INFO",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        )  # fmt: skip
        proc = self.lab.start(
            host,
            f"{self.database}-worker-{host}",
            argv,
            env={**self.environment(), **env},
            hostname=True,
        )
        self.workers[host] = proc
        return proc

    def start(self, worker_env: dict[str, dict[str, str]] | None = None) -> None:
        """Workers on w1 and w2 and beat on c; wait until all are up."""
        worker_env = worker_env or {}
        for host in ("w1", "w2"):
            self.start_worker(host, **worker_env.get(host, {}))
        beat = self.lab.start(
            "c",
            f"{self.database}-beat",
            python_command(
                "-m",
                "celery",
                "-A",
                "orchestrator",
                "beat",
                "-l",
                "INFO",
                "-s",
                str(self.lab.root / f"beat-{self.database}"),
            ),
            env=self.environment(),
        )
        self.extra.append(beat)
        for proc in self.workers.values():
            self.lab.wait_log(proc, " ready.", timeout=60)
        self.lab.wait_log(beat, "beat: Starting", timeout=60)

    def run_batch(self, prefix: str = "batch") -> dict[str, Any]:
        """``execute_batch`` from the client host; its JSON report."""
        command = [
            "ip", "netns", "exec", self.lab.ns("c"),
            *python_command("-m", "tests.multihost.client", prefix),
        ]  # fmt: skip
        done = subprocess.run(  # noqa: S603  # our own command
            command, cwd=REPO_ROOT, env=self.environment(), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"the client failed:\n{done.stdout}\n{done.stderr[-4000:]}")
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report

    def stop(self) -> None:
        """Stop this scenario's workers and beat (by PID)."""
        for proc in [*self.workers.values(), *self.extra]:
            proc.stop()

    # -- reading back ---------------------------------------------------------------

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """One statement on the scenario's database."""
        return self.deployment.query(self.database, sql, params)

    def counts(self, batch_id: str) -> dict[str, int]:
        """The batch's executions by status."""
        rows = self.q(
            "SELECT status, count(*) FROM executions WHERE batch_id = %s GROUP BY 1", (batch_id,)
        )
        return {str(s): int(n) for s, n in rows}

    def ended(self, batch_id: str) -> int:
        """How many of the batch's executions ended."""
        return sum(n for s, n in self.counts(batch_id).items() if s in TERMINAL)

    def wait_ended(self, batch_id: str, *, at_least: int | None = None, timeout: float) -> float:
        """Wait until ``at_least`` (default all) executions ended, sampling progress.

        Returns:
            The time (epoch) when they had.
        """
        goal = self.total if at_least is None else at_least
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(psycopg2.Error):
                done = self.ended(batch_id)
                self.samples.append((time.time(), done))
                if done >= goal:
                    return time.time()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.database}: {self.counts(batch_id)} after {timeout}s, want {goal} "
                    f"ended\n{self.logs_tail()}"
                )
            time.sleep(0.25)

    def watch(self, batch_id: str, seconds: float) -> None:
        """Sample the batch's progress for ``seconds`` (while a fault lasts)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg2.Error):
                self.samples.append((time.time(), self.ended(batch_id)))
            time.sleep(0.25)

    def held_by(self, host: str) -> list[str]:
        """Executions whose lease ``host``'s worker holds now (owner ``host:...``)."""
        rows = self.q(
            "SELECT id FROM executions WHERE lease_owner LIKE %s AND status = 'RUNNING'",
            (f"{host}:%",),
        )
        return [str(r[0]) for r in rows]

    def last_end(self, execution_ids: list[str]) -> float:
        """When the last of ``execution_ids`` ended (epoch), by the database's clock."""
        if not execution_ids:
            return 0.0
        (value,), *_ = self.q(
            "SELECT extract(epoch FROM max(ended_at)) FROM executions WHERE id = ANY(%s)",
            (execution_ids,),
        )
        return float(value or 0.0)

    def longest_gap(self, since: float) -> float:
        """The longest time after ``since`` during which no execution ended (sampled)."""
        points = [(t, n) for t, n in self.samples if t >= since]
        gap, last_t, last_n = 0.0, since, None
        for t, n in points:
            if last_n is None or n > last_n:
                gap = max(gap, t - last_t)
                last_t, last_n = t, n
        return gap

    def verdict(self, batch_id: str) -> dict[str, Any]:
        """The guarantees, as numbers: lost, states committed twice, repeated effects."""
        counts = self.counts(batch_id)
        history_twice = self.q(
            "SELECT h.execution_id, h.state_name, count(*) FROM history h "
            "JOIN executions e ON e.id = h.execution_id WHERE e.batch_id = %s "
            "AND h.event_type = 'StateSucceeded' GROUP BY 1, 2 HAVING count(*) > 1",
            (batch_id,),
        )
        missing = self.q(
            "SELECT count(*) FROM executions e WHERE e.batch_id = %s AND "
            "(SELECT count(*) FROM history h WHERE h.execution_id = e.id "
            " AND h.event_type = 'StateSucceeded') <> 3",
            (batch_id,),
        )
        repeated = self.q(
            "SELECT l.execution_id, l.state_name, l.calls, l.hosts FROM ledger l "
            "JOIN executions e ON e.id = l.execution_id WHERE e.batch_id = %s AND l.calls > 1",
            (batch_id,),
        )
        split = self.q(
            "SELECT l.execution_id, l.state_name FROM ledger l JOIN executions e "
            "ON e.id = l.execution_id WHERE e.batch_id = %s GROUP BY 1, 2 HAVING count(*) > 1",
            (batch_id,),
        )
        effects = self.q(
            "SELECT count(DISTINCT (l.execution_id, l.state_name)) FROM ledger l "
            "JOIN executions e ON e.id = l.execution_id WHERE e.batch_id = %s",
            (batch_id,),
        )
        return {
            "counts": counts,
            "lost": self.total - counts.get("SUCCEEDED", 0),
            "committed_twice": [tuple(r) for r in history_twice],
            "incomplete_history": int(missing[0][0]),
            "repeated_effects": [tuple(r) for r in repeated],
            "split_keys": [tuple(r) for r in split],
            "effects": int(effects[0][0]),
        }

    def logs_tail(self, chars: int = 2500) -> str:
        """The end of each worker's and beat's log."""
        return "\n".join(
            f"--- {p.name} ---\n{p.log()[-chars:]}" for p in [*self.workers.values(), *self.extra]
        )


@contextlib.contextmanager
def deployment() -> Iterator[Deployment]:
    """A lab with PostgreSQL and Redis/Sentinel running; everything torn down after."""
    lab = Lab()
    try:
        lab.build()
        deployed = Deployment(lab)
        deployed.start_postgres()
        deployed.start_redis()
        yield deployed
    finally:
        lab.close()
