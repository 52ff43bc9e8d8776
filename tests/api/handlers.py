"""Task handlers the API tests' definitions call (registered once, on the process registry).

Resources are prefixed ``api-tests.`` so they never collide with another suite's.
"""

from __future__ import annotations

import threading
from typing import Any

from orchestrator.errors import StatesError
from orchestrator.handlers import HandlerContext, handler

_failed_once: set[str] = set()
_lock = threading.Lock()


@handler("api-tests.double")
def double(data: dict[str, Any]) -> dict[str, Any]:
    """Double ``n``."""
    return {"n": data["n"] * 2}


@handler("api-tests.fail-once")
def fail_once(data: Any, ctx: HandlerContext) -> dict[str, Any]:
    """Fail the first call of each execution, succeed after (so a redrive succeeds)."""
    with _lock:
        first = ctx.execution_id not in _failed_once
        _failed_once.add(ctx.execution_id)
    if first:
        raise StatesError("Flaky.Failed", "the first attempt fails")
    return {"recovered": True}


#: Task tokens handed to ``api-tests.callback.waitForTaskToken``, by execution id.
tokens: dict[str, str] = {}


@handler("api-tests.callback.waitForTaskToken")
def callback(data: Any, ctx: HandlerContext) -> None:
    """Keep the token, as a queue would, for the test to answer with."""
    assert ctx.task_token is not None
    with _lock:
        tokens[ctx.execution_id] = ctx.task_token
