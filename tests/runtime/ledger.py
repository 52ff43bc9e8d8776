"""A side-effect ledger and the state machines that write to it.

Imported by the tests and by ``worker_script`` (their child processes), so that a
handler in a child and the same handler in the test process append to one file.
A ledger line is written with a single ``write`` on an ``O_APPEND`` descriptor:
it survives a SIGKILL that comes after it, and lines from several processes never
interleave.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.handlers import HandlerContext

#: The Task resource the ledger handler is registered under.
LEDGER_RESOURCE = "ledger"


def append(path: Path, entry: dict[str, Any]) -> None:
    """Append one JSON line to the ledger at ``path``."""
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """Every ledger entry, in the order written (none if the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def ledger_handler(path: Path, *, delay: float) -> Callable[[Any, HandlerContext], Any]:
    """A handler that records (pid, idempotency key, state), sleeps, and counts one up.

    The sleep comes after the record, so a worker killed mid-state has most
    likely recorded the call without committing its result: the one window in
    which a handler runs twice.
    """

    def handle(data: Any, ctx: HandlerContext) -> Any:
        append(
            path,
            {
                "pid": os.getpid(),
                "key": ctx.idempotency_key,
                "state": ctx.state,
                "execution_id": ctx.execution_id,
                "attempt": ctx.attempt,
            },
        )
        time.sleep(delay)
        return {"n": int(data.get("n", 0)) + 1}

    return handle


def dying_handler(path: Path, *, once_per_state: bool) -> Callable[[Any, HandlerContext], Any]:
    """A handler that records its call as ``ledger_handler`` does, then SIGKILLs its process.

    With ``once_per_state`` it dies only on the first call for a state of an
    execution (a later call, after recovery, counts one up); otherwise on every call.
    """

    def handle(data: Any, ctx: HandlerContext) -> Any:
        seen = any(
            e["state"] == ctx.state and e["execution_id"] == ctx.execution_id for e in read(path)
        )
        append(
            path,
            {
                "pid": os.getpid(),
                "key": ctx.idempotency_key,
                "state": ctx.state,
                "execution_id": ctx.execution_id,
                "attempt": ctx.attempt,
            },
        )
        if not (once_per_state and seen):
            os.kill(os.getpid(), signal.SIGKILL)
        return {"n": int(data.get("n", 0)) + 1}

    return handle


def state_names(count: int) -> list[str]:
    """``S01``, ``S02``, ... for a chain of ``count`` states."""
    return [f"S{i:02d}" for i in range(1, count + 1)]


def task_chain(count: int, resource: str = LEDGER_RESOURCE) -> dict[str, Any]:
    """A definition of ``count`` Task states in a row, each calling ``resource``."""
    names = state_names(count)
    states: dict[str, Any] = {}
    for name, following in zip(names, [*names[1:], None], strict=True):
        state: dict[str, Any] = {"Type": "Task", "Resource": resource}
        if following is None:
            state["End"] = True
        else:
            state["Next"] = following
        states[name] = state
    return {"StartAt": names[0], "States": states}
