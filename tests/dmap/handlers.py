"""Task handlers loaded INTO the Distributed Map tests' worker subprocesses.

``dmap.work`` appends the item's number to the Redis list ``ledger`` (an effect the
tests count), fails when the number is in the Redis set ``broken`` or the item says
``"fail": true``, and sleeps ``"sleep"`` seconds first.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import redis

from orchestrator.handlers import handler
from tests.dmap.work import RESOURCE

if "pytest" in sys.modules:  # pragma: no cover - a guard, not a code path
    raise RuntimeError("tests.dmap.handlers is for worker subprocesses only")

_redis = redis.Redis.from_url(os.environ["ORCHESTRATOR_BROKER_URL"])


@handler(RESOURCE)
def work(data: Any) -> Any:
    """Record the call, then sleep, fail or echo the item."""
    n = data.get("n") if isinstance(data, dict) else None
    _redis.rpush("ledger", str(n))
    if isinstance(data, dict):
        time.sleep(float(data.get("sleep", 0)))
        if data.get("fail") or _redis.sismember("broken", str(n)):
            raise ValueError(f"item {n} fails")
    return data
