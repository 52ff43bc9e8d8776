"""Flower on a real worker: its HTTP API, its metrics, its saved state, a dashboard screenshot.

Each test starts, on its own Redis database and a fresh PostgreSQL database,
``celery -A orchestrator flower --conf=flower/flowerconfig.py`` on a free
loopback port with basic auth, and a worker (``-E``) running the example order
handlers; then it runs a small distributed batch through the facade: three
orders, then a chained analytics batch over their outputs.

The screenshot needs Chromium (``apt-get install -y chromium``): the test skips
without it locally and fails in CI. The PNG is kept in ``tests/artifacts/``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator import examples
from orchestrator.demo import order_input
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import ExecutionFilter, Repository
from orchestrator.types import ExecutionStatus
from tests.distributed.conftest import (
    REPO_ROOT,
    RedisDB,
    Worker,
    redis_db,  # noqa: F401  # the fixture
    worker_command,
    worker_environment,
)
from tests.support import wait_until

pytestmark = pytest.mark.slow  # real Flower and worker processes

FLOWER_CONF = REPO_ROOT / "flower" / "flowerconfig.py"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
USER = "operator"
PASSWORD = "flower-test-password"  # noqa: S105  # a test credential, not a secret
RUN_EXECUTION = "orchestrator.run_execution"
ORDERS = 3

Action = Callable[[], None]


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Flower:
    """A Flower subprocess on loopback, and an HTTP client of it."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where it answers."""
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, *, auth: bool = True) -> tuple[int, bytes]:
        """GET ``path``: the status and the body (401s are answers, not errors)."""
        request = urllib.request.Request(self.url + path)  # noqa: S310  # our loopback URL
        if auth:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> Any:
        """GET ``path`` with auth and decode the JSON answer."""
        status, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def answers(self) -> bool:
        """True once ``/healthcheck`` says OK."""
        with contextlib.suppress(OSError):
            return self.get("/healthcheck", auth=False) == (200, b"OK")
        return False

    def log(self) -> str:
        """Everything Flower wrote so far."""
        return self.log_path.read_text(errors="replace")


@dataclass
class System:
    """A running worker and Flower, and what the batch ran."""

    flower: Flower
    worker: Worker
    start_flower: Action
    stop_flower: Action
    execution_ids: list[str] = field(default_factory=list)


def _flower_environment(broker_url: str, db_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    env.update(
        ORCHESTRATOR_BROKER_URL=broker_url,
        ORCHESTRATOR_FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}",
        ORCHESTRATOR_FLOWER_PORT=str(port),
        ORCHESTRATOR_FLOWER_DB=str(db_path),
        PYTHONUNBUFFERED="1",
    )
    return env


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextlib.contextmanager
def _flower(
    broker_url: str, tmp_path: Path
) -> Iterator[tuple[Flower, Callable[[], None], Callable[[], None]]]:
    flower = Flower(port=free_port(), log_path=tmp_path / "flower.log")
    env = _flower_environment(broker_url, tmp_path / "flower-state.db", flower.port)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestrator",
        "flower",
        f"--conf={FLOWER_CONF}",
    ]

    def start() -> None:
        with flower.log_path.open("ab") as log:
            flower.process = subprocess.Popen(  # noqa: S603  # our interpreter, our arguments
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not flower.answers():
            if flower.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Flower did not start:\n{flower.log()[-4000:]}")
            time.sleep(0.1)

    def stop() -> None:
        _stop(flower.process)

    try:
        yield flower, start, stop
    finally:
        stop()


@contextlib.contextmanager
def _worker(broker_url: str, database_url: str, tmp_path: Path) -> Iterator[Worker]:
    name = f"flower-test-{uuid.uuid4().hex[:8]}@%h"
    command = worker_command(
        name, queues=("critical", "default", "low"), pool="threads", concurrency=4, events=True
    )
    command.remove("--without-heartbeat")  # Flower shows a worker online by its heartbeats
    env = worker_environment(
        broker_url,
        {
            "ORCHESTRATOR_HANDLER_MODULES": examples.HANDLER_MODULE,
            "ORCHESTRATOR_DATABASE_URL": database_url,
        },
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  # our interpreter, our arguments
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    worker = Worker(process, log_path, name.replace("%h", os.uname().nodename))
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def _run_small_batch(settings: Settings) -> list[str]:
    """Three orders on the workers, then the chained analytics batch; every execution id."""
    repository = Repository.from_settings(settings)
    try:
        orders = StateMachine.create(
            "orders", examples.definition("orders"), repository=repository, settings=settings
        )
        started = [
            orders.start_async(order_input(i, "flower"), name=f"flower-{i}", priority="critical")
            for i in range(ORDERS)
        ]
        ids = [e.id for e in started]
        wait_until(
            lambda: all(repository.get_execution(i).status.is_terminal for i in ids),
            timeout=30,
            what="the orders to finish on the worker",
        )
        analytics = StateMachine.create(
            "order-analytics",
            examples.definition("order-analytics"),
            repository=repository,
            settings=settings,
        )
        batch = analytics.execute_batch(
            ExecutionFilter(state_machine="orders", status=ExecutionStatus.SUCCEEDED),
            name_prefix="analytics",
            priority="low",
        )
        assert batch.wait(timeout=30).by_status == {"SUCCEEDED": ORDERS}
        chained = repository.list_executions(ExecutionFilter(batch_id=batch.batch_id)).items
        return ids + [e.id for e in chained]
    finally:
        repository.close()


@pytest.fixture
def system(postgres_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[System]:
    """Flower and a worker on the test's Redis and PostgreSQL, after a small batch ran."""
    broker: RedisDB = request.getfixturevalue("redis_db")
    settings = Settings(database_url=postgres_url, broker_url=broker.url)
    with (
        _flower(broker.url, tmp_path) as (flower, start_flower, stop_flower),
        _worker(broker.url, postgres_url, tmp_path) as worker,
    ):
        start_flower()
        running = System(flower, worker, start_flower, stop_flower)
        wait_until(
            lambda: worker.name in running.flower.json("/api/workers?refresh=1"),
            timeout=20,
            what="Flower to see the worker",
        )
        running.execution_ids = _run_small_batch(settings)
        wait_until(
            lambda: _succeeded(running.flower) >= len(running.execution_ids),
            timeout=20,
            what="Flower to see every task succeed",
        )
        yield running


def _tasks(flower: Flower) -> dict[str, Any]:
    tasks: dict[str, Any] = flower.json(f"/api/tasks?taskname={RUN_EXECUTION}")
    return tasks


def _succeeded(flower: Flower) -> int:
    return sum(1 for task in _tasks(flower).values() if task["state"] == "SUCCESS")


def test_flower_lists_the_worker_and_each_run_execution_task_with_its_execution_id(
    system: System,
) -> None:
    # Given a worker and Flower that watched a small batch run
    flower = system.flower
    # When its HTTP API is read with basic auth
    workers = flower.json("/api/workers")
    tasks = _tasks(flower)
    # Then the worker is there, with the orchestrator's task registered
    assert RUN_EXECUTION in workers[system.worker.name]["registered"]
    # And every execution shows as one run_execution task, its id readable in the args
    assert {task["name"] for task in tasks.values()} == {RUN_EXECUTION}
    args = [task["args"] for task in tasks.values()]
    for execution_id in system.execution_ids:
        assert any(execution_id in a for a in args), (execution_id, args)
    assert all(task["worker"] == system.worker.name for task in tasks.values())


def test_flower_refuses_its_api_without_the_password_and_serves_prometheus_metrics(
    system: System,
) -> None:
    flower = system.flower

    anonymous, _ = flower.get("/api/workers", auth=False)
    wrong = flower.get("/api/tasks", auth=False)[0]
    anonymous_metrics, _ = flower.get("/metrics", auth=False)
    metrics_status, metrics = flower.get("/metrics")

    assert anonymous == wrong == anonymous_metrics == 401
    assert metrics_status == 200
    assert f'flower_events_total{{task="{RUN_EXECUTION}",type="task-succeeded"' in metrics.decode()


def test_flower_keeps_the_tasks_it_saw_across_a_restart(system: System) -> None:
    # Given Flower saw the batch's tasks
    before = set(_tasks(system.flower))
    # When it is stopped and started again on the same state file
    system.stop_flower()
    system.start_flower()
    # Then it still knows every task
    assert set(_tasks(system.flower)) == before


def _screenshot(url: str, path: Path, profile: Path) -> subprocess.CompletedProcess[bytes]:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={path}",
        "--window-size=1280,800", "--virtual-time-budget=5000", url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, timeout=60, check=False)  # noqa: S603


def test_a_headless_chromium_screenshot_of_the_dashboard_is_kept(
    system: System, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {"flower-workers.png": "/workers", "flower-tasks.png": "/tasks"}
    for name, page in shots.items():
        path = ARTIFACTS / name
        path.unlink(missing_ok=True)
        # Basic auth in the URL: Chromium sends it for the page and its requests.
        url = f"http://{USER}:{PASSWORD}@127.0.0.1:{system.flower.port}{page}"
        done = _screenshot(url, path, tmp_path / f"chromium-{page.strip('/')}")
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000  # a rendered page, not a blank one
        print(f"Flower screenshot: {path}")
