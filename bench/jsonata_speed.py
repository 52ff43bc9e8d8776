"""JSONata evaluations/s through orchestrator.asl.jsonata, next to same-run baselines.

    .venv/bin/python bench/jsonata_speed.py [--seconds 1]

(Not ``bench/jsonata.py``: a script of that name would shadow the ``jsonata`` module of
jsonata-python, which this script imports when it is installed.)

Cases (issue 13): (a) ``$sum`` of a 10-item array; (b) a small object construction
(``Output`` template with four fields); (c) the template of (b) over a 100 kB input,
with a new Scope per evaluation (as a state gets), where converting ``$states`` for
the engine dominates. Each is measured

* through the module (``jsonata.evaluate`` / ``evaluate_template``: ``$states``
  bindings, the AWS functions, result checks, error mapping), with one Scope for all
  evaluations (``$states`` converted for the engine once) and, where marked, a new
  Scope for each (converted every time, as for each state of an execution),
* on the engine directly (``jsonatapy``, compiled once), to show the module's cost,
* on ``jsonata-python`` (the pure-Python port), when it is installed; it is not a
  dependency (``pip install jsonata-python`` to include it),

and the baseline is the JSONPath side of this project on the same data in the same
run: a reference-path lookup (``paths.compile_path("$.items[9].price")``) and the
``Parameters`` template that builds the same object (``templates.compile_template``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from orchestrator.asl import jsonata, paths, templates

ITEMS = [{"price": i, "qty": 2} for i in range(10)]
INPUT = {"items": ITEMS, "customer": {"name": "Ann", "id": 7}}
CONTEXT = {
    "Execution": {"Id": "arn:exec:1", "Name": "1", "StartTime": "2026-01-01T00:00:00Z"},
    "State": {"Name": "S", "EnteredTime": "2026-01-01T00:00:00Z"},
    "StateMachine": {"Id": "arn:sm", "Name": "sm"},
}
SUM = "$sum($states.input.items.price)"
OBJECT = {
    "name": "{% $states.input.customer.name %}",
    "id": "{% $states.input.customer.id %}",
    "total": "{% $sum($states.input.items.price) %}",
    "n": "{% $count($states.input.items) %}",
}
OBJECT_EXPR = (
    '{"name": $states.input.customer.name, "id": $states.input.customer.id,'
    ' "total": $sum($states.input.items.price), "n": $count($states.input.items)}'
)
PARAMETERS = {
    "name.$": "$.customer.name",
    "id.$": "$.customer.id",
    "n": 10,
    "first.$": "$.items[0]",
}


BIG_INPUT = {
    **INPUT,
    "rows": [{"id": i, "name": f"name-{i}", "tags": ["x", "y"]} for i in range(2000)],
}


def rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    fn()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            fn()
        count += 100
    return count / elapsed


def cases() -> dict[str, Callable[[], Any]]:
    scope = jsonata.Scope(
        input=INPUT,
        context=CONTEXT,
        rng=random.Random(1),
        new_uuid=lambda: "00000000-0000-4000-8000-000000000000",
    )
    import jsonatapy

    def small_scope() -> jsonata.Scope:
        return jsonata.Scope(input=INPUT, context=CONTEXT, rng=scope.rng, new_uuid=scope.new_uuid)

    def big_scope() -> jsonata.Scope:
        return jsonata.Scope(
            input=BIG_INPUT, context=CONTEXT, rng=scope.rng, new_uuid=scope.new_uuid
        )

    bindings = {"states": {"input": INPUT, "context": CONTEXT}}
    raw_sum = jsonatapy.compile(SUM)
    raw_object = jsonatapy.compile(OBJECT_EXPR)
    lookup = paths.compile_path("$.items[9].price")
    problems: list[Any] = []
    template = templates.compile_template(PARAMETERS, "/Parameters", problems)
    assert not problems
    found: dict[str, Callable[[], Any]] = {
        "(a) $sum, module": lambda: jsonata.evaluate("{% " + SUM + " %}", scope, field="Output"),
        "(a) $sum, module, new Scope each": lambda: jsonata.evaluate(
            "{% " + SUM + " %}", small_scope(), field="Output"
        ),
        "(a) $sum, jsonatapy direct": lambda: raw_sum.evaluate(None, bindings),
        "(b) object, module template": lambda: jsonata.evaluate_template(
            OBJECT, scope, field="Output"
        ),
        "(b) object, module one expr": lambda: jsonata.evaluate(
            "{% " + OBJECT_EXPR + " %}", scope, field="Output"
        ),
        "(b) object, jsonatapy direct": lambda: raw_object.evaluate(None, bindings),
        "(c) object, 100 kB input, template": lambda: jsonata.evaluate_template(
            OBJECT, big_scope(), field="Output"
        ),
        "baseline: JSONPath lookup": lambda: lookup.find(INPUT),
        "baseline: JSONPath Parameters": lambda: template.render(INPUT, CONTEXT),
        "baseline: (c) JSONPath Parameters": lambda: template.render(BIG_INPUT, CONTEXT),
    }
    try:
        import jsonata as jsonata_python  # the pure-Python port, if installed
    except ImportError:
        return found
    slow_sum = jsonata_python.Jsonata(SUM)
    slow_object = jsonata_python.Jsonata(OBJECT_EXPR)
    found["(a) $sum, jsonata-python"] = lambda: slow_sum.evaluate(None, bindings)
    found["(b) object, jsonata-python"] = lambda: slow_object.evaluate(None, bindings)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per case (default 1)")
    args = parser.parse_args()
    for name, fn in cases().items():
        print(f"{name:34} {rate(fn, args.seconds):>12,.0f} evaluations/s")


if __name__ == "__main__":
    main()
