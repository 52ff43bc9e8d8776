"""What the Distributed Map tests' children run (in the test process and in workers)."""

from __future__ import annotations

import time
from typing import Any

RESOURCE = "dmap.work"
#: Item numbers that fail in this process until taken out (a cause that gets fixed).
FAILING: set[int] = set()


def processor(**extra: Any) -> dict[str, Any]:
    """An ItemProcessor of one Task running :func:`work`, DISTRIBUTED."""
    config = {"Mode": "DISTRIBUTED", "ExecutionType": extra.pop("execution_type", "STANDARD")}
    return {
        "ProcessorConfig": config,
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": RESOURCE, "End": True}},
    }


def machine(**fields: Any) -> dict[str, Any]:
    """A machine whose one state is a Distributed Map with ``fields`` added."""
    kind = fields.pop("execution_type", "STANDARD")
    state = {"Type": "Map", "ItemProcessor": processor(execution_type=kind), "End": True}
    state.update(fields)
    return {"StartAt": "Fan", "States": {"Fan": state}}


def work(data: Any) -> Any:
    """Echo the item; ``{"fail": true}`` raises, ``"sleep"`` sleeps first."""
    if isinstance(data, dict):
        time.sleep(float(data.get("sleep", 0)))
        if data.get("fail") or data.get("n") in FAILING:
            raise ValueError(f"item {data.get('n')} fails")
    return data
