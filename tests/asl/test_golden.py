"""Golden cases: a definition, an input and the outcome AWS gives, each naming its source.

Every ``golden/*.json`` file holds:

* ``source``: where the expected outcome comes from: ``ASL spec (states-language.net): ...``,
  ``AWS docs, Step Functions developer guide: ...``, ``LocalStack snapshot recorded against
  AWS: ...`` or ``derived: <reasoning>``;
* ``definition`` and ``input``;
* ``handlers`` (optional): Task resources mapped to declarative behaviours (see
  :class:`Behaviour`);
* ``expected``: ``status`` and, when given, ``output``, ``error``, ``cause``,
  ``elapsed_seconds`` (time on the fake clock) and ``calls`` (handler invocations);
* ``execution_name`` (optional): the ``$$.Execution.Name`` of the run;
* ``xfail`` (optional): the known discrepancy from AWS; the case is a strict xfail, so
  fixing the interpreter makes it fail until the key is removed.

Time is a fake clock: waits and retry back-offs cost nothing. Only the one case about
a Task's ``TimeoutSeconds`` sleeps for real (about one second).
"""

from __future__ import annotations

import builtins
import copy
import json
import random
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.asl import StatesError
from orchestrator.handlers import TaskContext
from orchestrator.runtime.local import run
from tests.support import FakeClock

GOLDEN = Path(__file__).parent / "golden"
#: 2024-01-01T00:00:00Z, the fake clock's start.
START = 1_704_067_200.0
SOURCE_KINDS = (
    "ASL spec (states-language.net): ",
    "AWS docs, Step Functions developer guide: ",
    "LocalStack snapshot recorded against AWS: ",
    "derived: ",
)


class Behaviour:
    """A Task handler described in JSON.

    Keys, all optional:

    * ``raise`` (error name) with ``cause``: raise ``StatesError(raise, cause)``; with
      ``fail_times`` only on the first that many calls;
    * ``errors``: a list of error names raised on successive calls, then succeed;
    * ``raise_python`` (a builtin exception class name) with ``message``;
    * ``sleep``: real seconds to sleep first (for TimeoutSeconds);
    * the result, first of: ``return`` (a literal; ``"$input"``, ``"$attempt"`` and
      ``"$context"`` stand for the input, the attempt number and the ``$$`` object),
      ``format`` (``str.format`` over the input object), ``sum`` (input fields to add),
      ``select`` (one input field), ``concurrency`` (how many calls of this handler
      ran at once at the peak of this call); else the input itself.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.calls = 0
        self.active = 0
        self.lock = threading.Lock()

    def __call__(self, data: Any, ctx: TaskContext) -> Any:
        with self.lock:
            self.calls += 1
            number = self.calls
        if "sleep" in self.spec:
            time.sleep(self.spec["sleep"])
        error = self.error_for(number)
        if error is not None:
            raise StatesError(error, self.spec.get("cause", ""))
        if "raise_python" in self.spec:
            raise getattr(builtins, self.spec["raise_python"])(self.spec.get("message", ""))
        if self.spec.get("concurrency"):
            return self.peak_concurrency()
        return self.result(data, ctx)

    def error_for(self, number: int) -> str | None:
        if "errors" in self.spec:
            names = self.spec["errors"]
            return names[number - 1] if number <= len(names) else None
        if "raise" not in self.spec:
            return None
        times = self.spec.get("fail_times")
        return self.spec["raise"] if times is None or number <= times else None

    def peak_concurrency(self) -> int:
        with self.lock:
            self.active += 1
            peak = self.active
        time.sleep(0.01)
        with self.lock:
            peak = max(peak, self.active)
            self.active -= 1
        return peak

    def result(self, data: Any, ctx: TaskContext) -> Any:
        spec = self.spec
        if "return" in spec:
            return _resolve(spec["return"], data, ctx)
        if "format" in spec:
            return spec["format"].format(**data)
        if "sum" in spec:
            return sum(data[key] for key in spec["sum"])
        if "select" in spec:
            return data[spec["select"]]
        return data


def _resolve(value: Any, data: Any, ctx: TaskContext) -> Any:
    specials = {"$input": data, "$attempt": ctx.attempt, "$context": ctx.context}
    if isinstance(value, str) and value in specials:
        return specials[value]
    return copy.deepcopy(value)


def _load(path: Path) -> Any:
    case = json.loads(path.read_text(encoding="utf-8"))
    marks = []
    if "xfail" in case:
        marks.append(pytest.mark.xfail(strict=True, reason=case["xfail"]))
    return pytest.param(case, id=path.stem, marks=marks)


CASES = [_load(path) for path in sorted(GOLDEN.glob("*.json"))]


@pytest.mark.parametrize("case", CASES)
def test_golden_case_ends_as_its_source_says(case: dict[str, Any]) -> None:
    # Given the case's handlers and a fake clock
    behaviours = {name: Behaviour(spec) for name, spec in case.get("handlers", {}).items()}
    clock = FakeClock(START)
    # When the definition runs on the input
    result = run(
        case["definition"],
        copy.deepcopy(case["input"]),
        handlers=behaviours,
        clock=clock,
        rng=random.Random(0),
        name=case.get("execution_name", "golden"),
    )
    # Then the outcome is the expected one
    expected = case["expected"]
    outcome: dict[str, Any] = {"status": result.status}
    for key, value in (("output", result.output), ("error", result.error)):
        if key in expected:
            outcome[key] = value
    if "cause" in expected:
        outcome["cause"] = result.cause
    if "elapsed_seconds" in expected:
        outcome["elapsed_seconds"] = clock.now() - START
    if "calls" in expected:
        outcome["calls"] = {name: behaviours[name].calls for name in expected["calls"]}
    assert outcome == expected


def test_golden_cases_each_name_a_source_of_a_known_kind() -> None:
    cases = [param.values[0] for param in CASES]
    assert len(cases) >= 40
    for case in cases:
        assert case["source"].startswith(SOURCE_KINDS), case["source"]
        assert case["expected"]["status"] in ("SUCCEEDED", "FAILED", "TIMED_OUT", "WAITING")
