"""Task tokens and heartbeats in the runtime (``.waitForTaskToken``, ``HeartbeatSeconds``).

A callback Task (resource ending in ``.waitForTaskToken``) gets a token made here
(:func:`new_task_token`: 256 random bits from :mod:`secrets`), registered in the
store before its handler sees it, so an answer sent at once finds it. The handler's
return value is ignored; the execution parks until ``send_task_success`` or
``send_task_failure`` uses the token, or its deadline timer fires. What the stored
token says is turned back into the interpreter's event by :func:`token_event`.

A running handler with ``HeartbeatSeconds`` is watched by :func:`run_with_heartbeat`:
it runs in a thread of its own while the calling thread waits for it or for the
heartbeat deadline. Python cannot kill a thread, so a handler that misses its
heartbeat is *abandoned*, not stopped: the state fails with
``States.HeartbeatTimeout`` at once, the worker goes on, and the handler's result
is dropped when it ends. Its next ``ctx.heartbeat()`` raises that error, so a
handler that heartbeats in its loop stops there.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from orchestrator import asl
from orchestrator.asl import errors as asl_errors
from orchestrator.asl.errors import StatesError
from orchestrator.asl.interpreter import Event
from orchestrator.handlers import HandlerResolver
from orchestrator.runtime.local import run_task
from orchestrator.store import TaskToken
from orchestrator.types import TaskTokenStatus

#: Random bytes in a task token (256 bits; AWS asks for at least 128 of ours).
TOKEN_BYTES = 32


def new_task_token() -> str:
    """A new task token: ``TOKEN_BYTES`` random bytes from :mod:`secrets`, as hex.

    Hex, not base64url: a base64url token starts with ``-`` one time in 64, and a
    command line then reads it as an option (``orchestrator tasks success -F...``).
    """
    return secrets.token_hex(TOKEN_BYTES)


def waiting_key(payload: Any) -> tuple[tuple[int, ...], int] | None:
    """The (frame path, dispatch token) a stored wait carries back, or None."""
    if not isinstance(payload, dict) or "token" not in payload:
        return None
    return tuple(int(i) for i in payload.get("path", ())), int(payload["token"])


def token_event(token: TaskToken) -> Event | None:
    """The interpreter event a used or expired token stands for (None while it waits)."""
    key = waiting_key(token.payload)
    if key is None:
        return None
    path, dispatch = key
    where = f"Task '{token.state_name}'"
    if token.status == TaskTokenStatus.SUCCEEDED:
        return asl.TaskSucceeded(path=path, token=dispatch, output=token.output)
    if token.status == TaskTokenStatus.FAILED:
        return asl.TaskFailed(
            path=path, token=dispatch, error=token.error or "", cause=token.cause or ""
        )
    if token.status == TaskTokenStatus.TIMED_OUT:
        cause = f"{where} timed out waiting for its task token (TimeoutSeconds)"
        return asl.TaskFailed(path=path, token=dispatch, error=asl_errors.TIMEOUT, cause=cause)
    if token.status == TaskTokenStatus.NO_HEARTBEAT:
        cause = f"{where} received no heartbeat within {token.heartbeat_seconds or 0:g} seconds"
        return asl.TaskFailed(
            path=path, token=dispatch, error=asl_errors.HEARTBEAT_TIMEOUT, cause=cause
        )
    return None


class _Watch:
    """The last heartbeat of one running handler, and whether it was given up on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._expired = False

    def beat(self) -> None:
        """``ctx.heartbeat()``: push the deadline back, or raise once it has passed."""
        with self._lock:
            if self._expired:
                raise StatesError(
                    asl_errors.HEARTBEAT_TIMEOUT,
                    f"no heartbeat within {self.seconds:g} seconds: the task was abandoned",
                )
            self._last = time.monotonic()

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._last + self.seconds - time.monotonic())

    def expire(self) -> bool:
        """Give up on the handler if its deadline passed and it has not finished."""
        with self._lock:
            late = time.monotonic() >= self._last + self.seconds
            if late and not self.finished.is_set():
                self._expired = True
            return self._expired


def run_with_heartbeat(
    command: asl.RunTask, resolver: HandlerResolver, execution_id: str, seconds: float
) -> Event:
    """Run a Task's handler; fail it with States.HeartbeatTimeout if it stops heartbeating."""
    watch = _Watch(seconds)
    outcome: list[Event] = []

    def work() -> None:
        try:
            outcome.append(run_task(command, resolver, execution_id, on_heartbeat=watch.beat))
        finally:
            watch.finished.set()

    worker = threading.Thread(target=work, name=f"task:{command.state}", daemon=True)
    worker.start()
    while not watch.finished.wait(watch.remaining()):
        if watch.expire():
            cause = (
                f"Task '{command.state}' sent no heartbeat for {seconds:g} seconds "
                "(HeartbeatSeconds); the handler was abandoned"
            )
            return asl.TaskFailed(
                path=command.path,
                token=command.token,
                error=asl_errors.HEARTBEAT_TIMEOUT,
                cause=cause,
            )
    return outcome[0]


__all__ = ["TOKEN_BYTES", "new_task_token", "run_with_heartbeat", "token_event", "waiting_key"]
