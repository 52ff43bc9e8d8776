"""Fixtures for the runtime suite: a store, a handler registry and runners per test.

Every test runs on a fresh database, once on PostgreSQL and once on SQLite
(``database_url`` from ``tests/conftest.py``). Handlers are registered on a
fresh :class:`HandlerRegistry` per test, never on the process-wide one. Child
processes (``tests.runtime.worker_script``) are killed at teardown, whatever the
test's outcome.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from orchestrator.handlers import HandlerRegistry
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine, send_message
from orchestrator.store import Execution, HistoryEvent, Repository

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Lease length of the tests' runners, in seconds: short, so a killed worker's
#: lease expires quickly; the runner renews it every third of that while it works.
LEASE_SECONDS = 2.0

#: Default park threshold of the tests, in seconds: a 1 s Wait or back-off parks.
PARK_THRESHOLD_SECONDS = 0.5


#: For a test that spends seconds sleeping in the runner, the same on either store: on
#: PostgreSQL it is in the quick tier, on SQLite in the slow tier only (the store calls
#: it makes are covered on both by tests/store).
SQLITE_IN_SLOW_TIER = pytest.mark.parametrize(
    "database_url",
    ["postgres", pytest.param("sqlite", marks=pytest.mark.slow)],
    indirect=True,
)


def states_in(history: list[HistoryEvent], event_type: str = "StateSucceeded") -> list[str]:
    """The state names of the history's ``event_type`` events, in order."""
    return [e.state_name or "" for e in history if e.event_type == event_type]


@dataclass
class Env:
    """One test's store, settings and handler registry, and factories over them."""

    settings: Settings
    repo: Repository
    handlers: HandlerRegistry = field(default_factory=HandlerRegistry)

    def with_settings(self, **changes: Any) -> Settings:
        """The test's settings with some fields changed."""
        return self.settings.model_copy(update=changes)

    def runner(self, *, owner: str | None = None, **settings: Any) -> Runner:
        """A runner on the test's store and handlers (settings changed as given)."""
        return Runner(
            self.repo, settings=self.with_settings(**settings), handlers=self.handlers, owner=owner
        )

    def machine(self, name: str, definition: Any, **settings: Any) -> StateMachine:
        """``StateMachine.create`` on the test's store, advanced by the test's handlers."""
        created = StateMachine.create(
            name, definition, repository=self.repo, settings=self.with_settings(**settings)
        )
        return self.bind(created, **settings)

    def bind(self, machine: StateMachine, **settings: Any) -> StateMachine:
        """The same version, advanced by a runner on the test's handlers."""
        return StateMachine(
            machine.version_record,
            repository=self.repo,
            settings=self.with_settings(**settings),
            runner=self.runner(**settings),
        )

    def send(self, key: str, value: Any, data: Any = None) -> list[str]:
        """``send_message`` on the test's store; resumed executions run here."""
        return send_message(
            key, value, data, repository=self.repo, settings=self.settings, runner=self.runner()
        )

    def execution(self, execution_id: str) -> Execution:
        """The execution as last stored."""
        return self.repo.get_execution(execution_id)


@pytest.fixture
def runtime_settings(database_url: str) -> Settings:
    """Settings of the test's database with a short lease and park threshold."""
    return Settings(
        database_url=database_url,
        lease_seconds=LEASE_SECONDS,
        park_threshold_seconds=PARK_THRESHOLD_SECONDS,
    )


@pytest.fixture
def env(runtime_settings: Settings) -> Iterator[Env]:
    """The test's store (fresh database), settings and handler registry."""
    repository = Repository.from_settings(runtime_settings)
    yield Env(settings=runtime_settings, repo=repository)
    repository.close()


# -- child processes ---------------------------------------------------------


class Child:
    """A ``tests.runtime.worker_script`` process, its stdin and its output files."""

    def __init__(self, process: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.process = process
        self.out_path, self.err_path = out, err

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def output(self) -> str:
        """What it printed so far."""
        return self.out_path.read_text(errors="replace")

    def lines(self) -> list[str]:
        """Its stdout, line by line."""
        return self.output().splitlines()

    def errors(self) -> str:
        """Its stderr so far (tracebacks)."""
        return self.err_path.read_text(errors="replace")

    def send_line(self, text: str) -> None:
        """Write one line to its stdin and close it."""
        stdin: IO[bytes] | None = self.process.stdin
        assert stdin is not None
        stdin.write(text.encode() + b"\n")
        stdin.close()

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for it to exit; fail the test with its stderr if it does not."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"child {self.pid} still running after {timeout}s:\n{self.errors()}")

    def kill(self) -> None:
        """SIGKILL it (and anything in its session) and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """Start ``python -m tests.runtime.worker_script ARGS``; all are killed at teardown."""
    children: list[Child] = []

    def start(*args: str) -> Child:
        index = len(children)
        out, err = tmp_path / f"child-{index}.out", tmp_path / f"child-{index}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603  # our interpreter, our arguments
                [sys.executable, "-m", "tests.runtime.worker_script", *args],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        child = Child(process, out, err)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
