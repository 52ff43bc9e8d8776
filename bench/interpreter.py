"""Interpreter speed on one core: state transitions/s and executions/s.

    .venv/bin/python bench/interpreter.py [--seconds 2]

Cases (issue 3): (a) a 10-state Pass/Choice chain; (b) a Map of 1,000 items over a
Pass; (c) Task handlers that fail twice and succeed on the third attempt (Retry).
The baseline, measured in the same run, is a plain Python loop doing the same
number of dict look-ups and copies a transition needs at least, so the ratio says
what the interpreter costs beyond touching the data. Waits and back-offs use a fake
clock: the figures measure the interpreter, not sleeping.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from orchestrator import asl
from orchestrator.runtime.local import run


class FakeClock:
    """Time that moves only when the driver sleeps."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def chain() -> dict[str, Any]:
    states: dict[str, Any] = {}
    for i in range(10):
        name, nxt = f"S{i}", f"S{i + 1}"
        if i % 2:
            states[name] = {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericGreaterThanEquals": 0, "Next": nxt}],
                "Default": "Bad",
            }
        else:
            states[name] = {"Type": "Pass", "Result": i, "ResultPath": "$.last", "Next": nxt}
    states["S9"] = {"Type": "Pass", "End": True}
    states["Bad"] = {"Type": "Fail", "Error": "Bad"}
    # S9 replaced the Choice that would point at S10; keep the chain 10 states long.
    states["S8"]["Next"] = "S9"
    return {"StartAt": "S0", "States": states}


def big_map() -> dict[str, Any]:
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "Parameters": {"v.$": "$"}, "End": True}},
                },
                "End": True,
            }
        },
    }


def retrying() -> dict[str, Any]:
    retry = [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 3}]
    return {
        "StartAt": "T1",
        "States": {
            "T1": {"Type": "Task", "Resource": "flaky", "Retry": retry, "Next": "T2"},
            "T2": {"Type": "Task", "Resource": "flaky", "Retry": retry, "End": True},
        },
    }


class Flaky(Exception):
    """Raised by the retry-heavy handler."""


def flaky_handler() -> Callable[[Any], Any]:
    calls = {"n": 0}

    def handler(data: Any) -> Any:
        calls["n"] += 1
        if calls["n"] % 3:
            raise Flaky("try again")
        return data

    return handler


def measure(fn: Callable[[], int], seconds: float) -> tuple[float, int]:
    """Run fn until ``seconds`` pass; return (units/s, runs)."""
    units, runs, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        units += fn()
        runs += 1
    return units / (time.perf_counter() - start), runs


def baseline_loop(transitions: int) -> Callable[[], int]:
    """Per transition: look a state up, copy a small dict, read a key (no interpreter)."""
    table = {f"S{i}": {"Next": f"S{i + 1}"} for i in range(transitions)}

    def loop() -> int:
        data: dict[str, Any] = {"n": 1}
        name = "S0"
        for _ in range(transitions):
            state = table[name]
            data = dict(data)
            data["last"] = name
            name = state["Next"]
        return transitions

    return loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case")
    args = parser.parse_args()
    clock = FakeClock()

    definition = asl.load(chain())
    rate, runs = measure(lambda: len(run(definition, {"n": 1}, clock=clock).history), args.seconds)
    base, _ = measure(baseline_loop(10), args.seconds)
    print(
        f"(a) 10-state Pass/Choice chain: {rate:,.0f} transitions/s, "
        f"{rate / 10:,.0f} executions/s ({runs} runs)"
    )
    print(
        f"    baseline dict loop: {base:,.0f} transitions/s; interpreter/baseline = "
        f"{rate / base:.3f}"
    )

    definition = asl.load(big_map())
    items = {"items": list(range(1000))}
    rate, runs = measure(lambda: len(run(definition, items, clock=clock).history), args.seconds)
    print(
        f"(b) Map of 1,000 items over a Pass: {rate:,.0f} transitions/s, "
        f"{rate / 1001:,.1f} executions/s ({runs} runs)"
    )

    definition = asl.load(retrying())
    handlers = {"flaky": flaky_handler()}
    rate, runs = measure(
        lambda: len(run(definition, {"x": 1}, handlers=handlers, clock=clock).history),
        args.seconds,
    )
    print(
        f"(c) Retry-heavy Tasks (2 tasks x 3 attempts): {rate:,.0f} history events/s, "
        f"{rate / 6:,.0f} executions/s ({runs} runs)"
    )


if __name__ == "__main__":
    main()
