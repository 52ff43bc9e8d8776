"""Fixtures of the AWS API suite: a real ``orchestrator api`` and a real Celery worker.

``aws_stack`` starts, on a fresh PostgreSQL database and Redis database, the
``orchestrator api`` command on a free loopback port and one solo worker, both
with the handlers of ``tests.aws.handlers``; ``sfn`` is a boto3 Step Functions
client on that endpoint. Both subprocesses are stopped by PID at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.conftest import (  # noqa: F401  # fixtures
    REPO_ROOT,
    RedisDB,
    Worker,
    redis_db,
    start_worker,
)
from tests.support import wait_until

HANDLERS = "tests.aws.handlers"
REGION = "us-east-1"
ACCOUNT = "123456789012"
ACCESS_KEY = "AKIDTESTONLY"
SECRET_KEY = "test-secret-not-real"  # noqa: S105  # a test key, not a secret


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Stack:
    """The API subprocess and what a client needs to reach it."""

    url: str
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    keys: bool

    def log(self) -> str:
        """What the API wrote so far."""
        return self.log_path.read_text(errors="replace")

    def client(self, **overrides: Any) -> Any:
        """A boto3 Step Functions client on the API (signed with the test keys)."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "config": Config(retries={"max_attempts": 1}, inject_host_prefix=False),
        }
        options.update(overrides)
        return boto3.client("stepfunctions", **options)

    def env(self) -> dict[str, str]:
        """The environment the AWS CLI needs to reach the API."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_DISABLE_HOST_PREFIX_INJECTION="true",
        )
        return env


def _environment(
    database_url: str, broker_url: str, keys: bool, token: str | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    env.update(
        ORCHESTRATOR_DATABASE_URL=database_url,
        ORCHESTRATOR_BROKER_URL=broker_url,
        ORCHESTRATOR_HANDLER_MODULES=HANDLERS,
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
    )
    if token:
        env["ORCHESTRATOR_API_TOKEN"] = token
    if keys:
        env.update(
            ORCHESTRATOR_AWS_ACCESS_KEY_ID=ACCESS_KEY,
            ORCHESTRATOR_AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        )
    return env


def _healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    assert process.poll() is None, log.read_text(errors="replace")[-4000:]
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def make_stack(
    postgres_url: str,
    redis_db: RedisDB,  # noqa: F811
    start_worker: Callable[..., Worker],  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[..., Stack]]:
    """Start the API (with or without access keys) and one worker on one database."""
    processes: list[subprocess.Popen[bytes]] = []
    workers: list[Worker] = []

    def make(*, keys: bool = True, worker: bool = True, token: str | None = None) -> Stack:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = _environment(postgres_url, redis_db.url, keys, token)
        log_path = tmp_path / f"api-{port}.log"
        command = [sys.executable, "-m", "orchestrator", "api", "--port", str(port)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603  # our interpreter, our arguments
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(process)
        if worker and not workers:
            workers.append(
                start_worker(
                    redis_db.url,
                    env={
                        "ORCHESTRATOR_DATABASE_URL": postgres_url,
                        "ORCHESTRATOR_HANDLER_MODULES": HANDLERS,
                    },
                )
            )
        wait_until(
            lambda: _healthy(url, process, log_path),
            timeout=60,
            what="the API to answer /health",
            interval=0.2,
        )
        return Stack(url, postgres_url, log_path, process, keys)

    yield make
    for process in processes:
        _stop(process)


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    """The API with access keys (SigV4) and a worker."""
    return make_stack()


@pytest.fixture
def sfn(stack: Stack) -> Any:
    """A boto3 Step Functions client of ``stack``."""
    return stack.client()


def machine_arn(name: str, version: int | None = None) -> str:
    """The ARN the server gives a state machine."""
    base = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    return base if version is None else f"{base}:{version}"


ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/StepFunctions-test"
