"""The handler the batch tests run: 40% of inputs fail (shared by local and worker runs)."""

from __future__ import annotations

import time
from typing import Any

#: The Task resource of :data:`MACHINE`.
RESOURCE = "batch.work"

#: One Task state that runs :func:`work`, no retries: an error fails the execution.
MACHINE: dict[str, Any] = {
    "StartAt": "Work",
    "States": {"Work": {"Type": "Task", "Resource": RESOURCE, "End": True}},
}


def work(data: dict[str, Any]) -> dict[str, Any]:
    """Sleep ``data["sleep"]`` seconds, then fail when ``n % 5`` is 0 or 1 (40% of a run).

    ``"ok": true`` in the input makes it succeed whatever ``n`` is.
    """
    time.sleep(float(data.get("sleep", 0)))
    n = int(data["n"])
    if n % 5 < 2 and not data.get("ok"):
        raise ValueError(f"input {n} is one of the 40% that fail")
    return {"n": n}


def fails(n: int) -> bool:
    """Whether :func:`work` fails for ``{"n": n}``."""
    return n % 5 < 2
