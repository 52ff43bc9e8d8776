"""Random valid state machine definitions that always end (no Task, no loop, no long Wait).

Each is a chain of states drawn from Pass (with a Result or intrinsic
Parameters), Choice (whose branches only jump forward), Wait of 0 s, Parallel
and Map over ``$.items``; it ends in Succeed, or sometimes Fail. The input of
every execution is :func:`input_of`.
"""

from __future__ import annotations

import random
from typing import Any


def input_of(n: int) -> dict[str, Any]:
    """The input of execution ``n``."""
    return {"n": n, "items": [n % 7, n % 5, n % 3]}


def random_definition(rng: random.Random) -> dict[str, Any]:
    """One definition of 2 to 7 states (plus its end)."""
    count = rng.randint(2, 7)
    names = [f"S{i}" for i in range(count)] + ["End"]
    states = {name: _state(rng, names[i + 1 :]) for i, name in enumerate(names[:-1])}
    states["End"] = (
        {"Type": "Fail", "Error": "Soak.Failed", "Cause": "drawn to fail"}
        if rng.random() < 0.1
        else {"Type": "Succeed"}
    )
    return {"StartAt": "S0", "States": states}


def _state(rng: random.Random, later: list[str]) -> dict[str, Any]:
    kind = rng.choice(["pass", "format", "choice", "wait", "parallel", "map"])
    follow = {"Next": later[0]}
    if kind == "pass":
        return {"Type": "Pass", "Result": {"r": rng.randint(0, 99)}, "ResultPath": "$.r", **follow}
    if kind == "format":
        parameters = {
            "n.$": "$.n",
            "items.$": "$.items",
            "label.$": "States.Format('n={}', $.n)",
            "sum.$": "States.MathAdd($.n, 1)",
        }
        return {"Type": "Pass", "Parameters": parameters, **follow}
    if kind == "choice":
        target = rng.choice(later)
        rule = {"Variable": "$.n", "NumericGreaterThan": rng.randint(0, 10_000), "Next": target}
        return {"Type": "Choice", "Choices": [rule], "Default": later[0]}
    if kind == "wait":
        return {"Type": "Wait", "Seconds": 0, **follow}
    if kind == "parallel":
        branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}
        return {
            "Type": "Parallel",
            "Branches": [branch, branch],
            "ResultPath": "$.branches",
            **follow,
        }
    processor = {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}}
    return {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": processor,
        "ResultPath": "$.mapped",
        **follow,
    }


def self_looping_pass() -> dict[str, Any]:
    """A Pass and a Choice that lead to each other; the way out (required by validation)
    needs ``$.stop``, which no test input has."""
    return {
        "StartAt": "Loop",
        "States": {
            "Loop": {"Type": "Pass", "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.stop", "IsPresent": True, "Next": "Done"}],
                "Default": "Loop",
            },
            "Done": {"Type": "Succeed"},
        },
    }
