"""A step takes up to STEP_BATCH transitions of a Map's or Parallel's children.

It must be exactly what one transition per step does (``STEP_BATCH = 1``): the same
history, outputs, tokens, draws of the default (cursor-seeded) randomness, and the
same event at which the event limit fails the execution; only the number of steps,
and with it the number of copies of a large Map's cursor, goes down.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import asl
from orchestrator.asl import interpreter

NOW = 1_704_067_200.0

RANDOM_MAP = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 3,
            "ItemProcessor": {
                "StartAt": "Even",
                "States": {
                    "Even": {
                        "Type": "Choice",
                        "Choices": [
                            {
                                "Variable": "$.v",
                                "NumericGreaterThan": 4,
                                "Assign": {"big": True},
                                "Next": "Draw",
                            }
                        ],
                        "Default": "Both",
                    },
                    "Draw": {
                        "Type": "Pass",
                        "Parameters": {
                            "r.$": "States.MathRandom(0, 1000000)",
                            "u.$": "States.UUID()",
                            "v.$": "$.v",
                        },
                        "End": True,
                    },
                    "Both": {
                        "Type": "Parallel",
                        "Branches": [
                            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                            {
                                "StartAt": "B",
                                "States": {
                                    "B": {"Type": "Pass", "Result": 1, "Next": "C"},
                                    "C": {"Type": "Wait", "Seconds": 0, "End": True},
                                },
                            },
                        ],
                        "End": True,
                    },
                },
            },
            "ItemSelector": {"v.$": "$$.Map.Item.Value"},
            "End": True,
        }
    },
}

JSONATA_MAP = {
    "QueryLanguage": "JSONata",
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "Items": "{% $states.input.items %}",
            "ItemProcessor": {
                "StartAt": "P",
                "States": {
                    "P": {
                        "Type": "Pass",
                        "Assign": {"seen": "{% $states.input %}"},
                        "Output": {"r": "{% $random() %}", "v": "{% $states.input %}"},
                        "Next": "Q",
                    },
                    "Q": {"Type": "Pass", "Output": "{% $seen * 2 %}", "End": True},
                },
            },
            "End": True,
        }
    },
}


def drive(definition: dict[str, Any], data: Any, *, max_events: int = 25_000) -> Any:
    """Step to the end with the default randomness: (outcome, history, steps)."""
    defn = asl.load(definition)
    cursor = asl.start(defn, data, now=NOW, seed="s")
    context = asl.execution_context(execution_id="e", name="n", input=data, start_time=NOW)
    history: list[Any] = []
    for steps in range(1, 100_000):
        result = asl.step(defn, cursor, now=NOW, context=context, max_events=max_events)
        cursor = result.cursor
        history += [
            (e.path, e.state, e.status, e.input, e.output, e.error, e.assigned)
            for e in result.events
        ]
        if isinstance(result.command, asl.Succeeded | asl.Failed):
            return result.command, history, steps, cursor.get("seq")
        assert isinstance(result.command, asl.Continue), result.command
    raise AssertionError("no end")


@pytest.mark.parametrize(
    ("definition", "data"),
    [
        (RANDOM_MAP, {"items": list(range(10))}),
        (JSONATA_MAP, {"items": list(range(40))}),
    ],
    ids=["jsonpath", "jsonata"],
)
def test_a_batched_step_does_what_one_transition_per_step_does(
    definition: dict[str, Any], data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched = drive(definition, data)
    monkeypatch.setattr(interpreter, "STEP_BATCH", 1)
    single = drive(definition, data)

    assert batched[0] == single[0]  # the outcome, random numbers included
    assert batched[1] == single[1]  # the history
    assert batched[3] == single[3]  # the tokens issued
    assert batched[2] < single[2]


def test_a_large_map_takes_a_step_per_batch_of_transitions() -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    }
    outcome, history, steps, _ = drive(definition, list(range(640)))
    assert outcome == asl.Succeeded(output=list(range(640)))
    assert len(history) == 641
    assert steps <= 640 // interpreter.STEP_BATCH + 5  # one transition per step: 1,281


@pytest.mark.parametrize("limit", [5, 30, 64, 65, 100])
def test_the_event_limit_fails_at_the_same_event(
    limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {"items": list(range(200))}
    batched = drive(RANDOM_MAP, data, max_events=limit)
    monkeypatch.setattr(interpreter, "STEP_BATCH", 1)
    single = drive(RANDOM_MAP, data, max_events=limit)

    assert batched[0] == single[0]
    assert batched[0].error == "States.Runtime"
    assert batched[1] == single[1]
    assert len(batched[1]) == limit + 1
