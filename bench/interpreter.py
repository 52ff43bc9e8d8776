"""Interpreter speed on one core: state transitions/s and executions/s.

    .venv/bin/python bench/interpreter.py [--seconds 2] [--clock wall|cpu]
    .venv/bin/python bench/interpreter.py --against DIR [--rounds 5] [--seconds 1]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/interpreter.py --case a --runs 220

``--clock cpu`` counts this process's CPU time instead of wall time: on a machine
shared with other work it is the figure "on one core" (wall time counts the time the
process waited for a core).

Cases (issue 3): (a) a 10-state Pass/Choice chain; (b) a Map of 1,000 items over a
Pass; (c) Task handlers that fail twice and succeed on the third attempt (Retry);
(d) (issue 13) the chain of (a) in JSONata: Pass states with Output and Assign,
Choice states with Condition (goal: 30,000 transitions/s on one core).
The baseline, measured in the same run, is a plain Python loop doing the same
number of dict look-ups and copies a transition needs at least, so the ratio says
what the interpreter costs beyond touching the data. Waits and back-offs use a fake
clock: the figures measure the interpreter, not sleeping.

``--against DIR`` measures another version of the code in the same run: DIR holds
its ``orchestrator`` package (``git archive REF orchestrator | tar -x -C DIR``). Both
versions run the same cases in child processes, alternating round by round, and the
script prints each one's median and the ratio, which a shared machine's load moves
far less than the rates.

``--case X --runs N`` runs one case N times without timing, for an instruction
counter: the difference between two run counts under callgrind is the cost of the
extra runs, whatever the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


def jsonata_chain() -> dict[str, Any]:
    """(a) in JSONata: each Pass writes Output and Assign, each Choice tests a Condition."""
    states: dict[str, Any] = {}
    for i in range(10):
        name, nxt = f"S{i}", f"S{i + 1}"
        if i % 2:
            states[name] = {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.n >= 0 %}", "Next": nxt}],
                "Default": "Bad",
            }
        else:
            states[name] = {
                "Type": "Pass",
                "Output": {"n": "{% $states.input.n %}", "last": i},
                "Assign": {"count": "{% $count + 1 %}"} if i else {"count": 0},
                "Next": nxt,
            }
    states["S9"] = {"Type": "Pass", "Output": {"count": "{% $count %}"}, "End": True}
    states["Bad"] = {"Type": "Fail", "Error": "Bad"}
    states["S8"]["Next"] = "S9"
    return {"QueryLanguage": "JSONata", "StartAt": "S0", "States": states}


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


TIMER: Callable[[], float] = time.perf_counter


def measure(fn: Callable[[], int], seconds: float) -> tuple[float, int]:
    """Run fn until ``seconds`` pass; return (units/s, runs)."""
    units, runs, start = 0, 0, TIMER()
    while TIMER() - start < seconds:
        units += fn()
        runs += 1
    return units / (TIMER() - start), runs


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


CASES = ("a", "b", "c", "d")


def cases() -> dict[str, tuple[dict[str, Any], Any, dict[str, Any]]]:
    """Each case: (definition, input, handlers)."""
    return {
        "a": (chain(), {"n": 1}, {}),
        "b": (big_map(), {"items": list(range(1000))}, {}),
        "c": (retrying(), {"x": 1}, {"flaky": flaky_handler()}),
        "d": (jsonata_chain(), {"n": 1}, {}),
    }


def rates(seconds: float) -> dict[str, float]:
    """Transitions (or history events) per second of each case."""
    clock = FakeClock()
    out: dict[str, float] = {}
    for name, (source, data, handlers) in cases().items():
        out[name], _ = measure(_runner(asl.load(source), data, handlers, clock), seconds)
    return out


def fixed_runs(case: str, runs: int) -> None:
    """Exactly ``runs`` executions of one case, for an instruction counter.

    Under ``valgrind --tool=callgrind`` the count of instructions does not move with the
    machine's load; the difference between two run counts is the cost of the extra runs.
    """
    source, data, handlers = cases()[case]
    definition = asl.load(source)
    work = _runner(definition, data, handlers, FakeClock())
    work()  # compile caches, imports: paid by both run counts alike
    transitions = sum(work() for _ in range(runs))
    print(f"({case}) {runs} executions, {transitions} transitions")


def _runner(
    definition: Any, data: Any, handlers: dict[str, Any], clock: FakeClock
) -> Callable[[], int]:
    return lambda: len(run(definition, data, handlers=handlers, clock=clock).history)


def against(other: str, rounds: int, seconds: float, clock: str) -> None:
    """This code and the code in ``other``, alternating in child processes."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    versions = {"this": here, "other": os.path.abspath(other)}
    found: dict[str, dict[str, list[float]]] = {v: {c: [] for c in CASES} for v in versions}
    for _ in range(rounds):
        for version, root in versions.items():
            env = {**os.environ, "PYTHONPATH": root}
            command = [sys.executable, __file__, "--json", "--seconds", str(seconds)]
            done = subprocess.run(  # noqa: S603 - this interpreter, this script
                [*command, "--clock", clock], env=env, capture_output=True, text=True, check=True
            )
            for case, rate in json.loads(done.stdout).items():
                found[version][case].append(rate)
    print(f"same run, {rounds} alternating rounds of {seconds:g} s per case ({clock} clock):")
    for case in CASES:
        this = statistics.median(found["this"][case])
        that = statistics.median(found["other"][case])
        print(f"({case}) this {this:,.0f}/s, other {that:,.0f}/s: this/other = {this / that:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="what to time")
    parser.add_argument("--against", metavar="DIR", help="another version's code (see above)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds with --against")
    parser.add_argument("--json", action="store_true", help="print the rates as JSON only")
    parser.add_argument("--case", choices=CASES, help="run one case --runs times, no timing")
    parser.add_argument("--runs", type=int, default=100, help="executions with --case")
    args = parser.parse_args()
    if args.case:
        fixed_runs(args.case, args.runs)
        return
    global TIMER
    TIMER = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.against:
        against(args.against, args.rounds, args.seconds, args.clock)
        return
    if args.json:
        print(json.dumps(rates(args.seconds)))
        return
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

    definition = asl.load(jsonata_chain())
    check = run(definition, {"n": 1}, clock=clock)
    assert check.output == {"count": 4}, check
    rate, runs = measure(lambda: len(run(definition, {"n": 1}, clock=clock).history), args.seconds)
    print(
        f"(d) 10-state JSONata chain (Pass Output+Assign, Choice Condition): "
        f"{rate:,.0f} transitions/s, {rate / 10:,.0f} executions/s ({runs} runs)"
    )


if __name__ == "__main__":
    main()
