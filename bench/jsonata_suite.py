"""Run the official JSONata test suite against the candidate Python libraries.

    .venv/bin/python bench/jsonata_suite.py SUITE_DIR [--lib jsonatapy] [--lib jsonata-python]

SUITE_DIR is the ``test/test-suite`` directory of the public jsonata-js repository
(it holds ``groups/`` and ``datasets/``); the suite is read from there and never
copied into this project. Each case gives an expression, its input (``data``, or a
``dataset`` name, or none), ``bindings``, and one of ``result``, ``undefinedResult``
or an error ``code``; cases with ``timelimit``/``depth`` run under those bounds.

Each library runs in its own child process (a crash or runaway case cannot take the
others down), under an address-space limit, with a per-case alarm as a last resort.
A case passes when the result deep-equals the expected one (booleans are not numbers,
floats compare to 1e-9 relative, ``unordered`` arrays compare as multisets), when an
undefined result was expected and came back, or when the expected error code is the
one raised. Printed per library: passed/total, by outcome, and the failing groups.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LIBS = ("jsonatapy", "jsonata-python")
#: Time limit for a case that sets none (ms); the suite's own limits win.
DEFAULT_TIMEOUT_MS = 5000
#: Last-resort wall clock per case (s), for code that never checks its time limit.
ALARM_SECONDS = 20
#: Address-space cap of a child process, so a case that allocates without bound fails.
MEMORY_LIMIT = 3 * 1024**3

UNDEFINED = object()
_CODE = re.compile(r"\b[A-Z]\d{4}\b")


class Hang(Exception):
    """The per-case alarm fired."""


def load_cases(suite: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(group/file[#i], case)`` for every case, with ``expr-file`` inlined."""
    for group_dir in sorted(p for p in (suite / "groups").iterdir() if p.is_dir()):
        for path in sorted(group_dir.glob("*.json")):
            spec = json.loads(path.read_text())
            items = spec if isinstance(spec, list) else [spec]
            for i, case in enumerate(items):
                if "expr-file" in case:
                    case["expr"] = (group_dir / case["expr-file"]).read_text()
                name = f"{group_dir.name}/{path.name}" + (f"#{i}" if len(items) > 1 else "")
                yield name, case


def case_input(suite: Path, case: dict[str, Any], cache: dict[str, Any]) -> Any:
    """The input document: ``data``, else the named dataset, else undefined."""
    if "data" in case:
        return case["data"]
    name = case.get("dataset")
    if name is None:
        return UNDEFINED
    if name not in cache:
        cache[name] = json.loads((suite / "datasets" / f"{name}.json").read_text())
    return cache[name]


def same(a: Any, b: Any, *, unordered: bool = False) -> bool:
    """Deep JSON equality: bool is not a number, floats to 1e-9 relative."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False
        if unordered:
            rest = list(b)
            for item in a:
                hit = next((j for j, other in enumerate(rest) if same(item, other)), None)
                if hit is None:
                    return False
                rest.pop(hit)
            return True
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --- library adapters: (expr, input, bindings, timeout_ms, depth) -> value | UNDEFINED ---


def run_jsonatapy(
    expr: str, data: Any, bindings: dict[str, Any], timeout: int, depth: int | None
) -> Any:
    import jsonatapy

    compiled = jsonatapy.compile(expr)
    # evaluate_json_or_none tells undefined (None) from null ("null"); evaluate() does not.
    text = None if data is UNDEFINED else json.dumps(data)
    out = compiled.evaluate_json_or_none(
        text, bindings or None, timeout=timeout, max_stack_depth=depth
    )
    return UNDEFINED if out is None else json.loads(out)


def run_jsonata_python(
    expr: str, data: Any, bindings: dict[str, Any], timeout: int, depth: int | None
) -> Any:
    import jsonata
    from jsonata.utils import Utils

    # The time box starts when the expression is constructed, so build it per case.
    compiled = jsonata.Jsonata(expr, timeout=timeout, stack=depth)
    compiled.set_output_convert_nulls(False)  # keep null apart from undefined
    out = compiled.evaluate(None if data is UNDEFINED else data, bindings or None)
    if out is None:
        return UNDEFINED
    return json.loads(json.dumps(Utils.convert_nulls(out)))


def error_code(lib: str, exc: BaseException) -> str:
    """The JSONata error code an exception carries (``S0201``, ``D1012``, ...)."""
    if lib == "jsonata-python":
        return str(getattr(exc, "error", "")) or type(exc).__name__
    match = _CODE.search(str(exc))
    return match.group(0) if match else str(exc)[:40]


def code_matches(got: str, expected: str) -> bool:
    """Whether the raised code is the expected one.

    ``U1001`` is not a library code: the suite's own JavaScript harness raises it
    when its time box (timeout or depth) fires, where the libraries raise their
    guardrail codes ``D1012`` (timeout) and ``D1011`` (stack depth).
    """
    if expected == "U1001":
        return got in ("U1001", "D1011", "D1012")
    return got == expected


def check(
    lib: str, runner: Callable[..., Any], suite: Path, case: dict[str, Any], cache: dict[str, Any]
) -> str:
    """Run one case; return an outcome label (``pass`` or why not)."""
    expected_code = case.get("code") or (case.get("error") or {}).get("code")
    timeout = int(case.get("timelimit", DEFAULT_TIMEOUT_MS))
    depth = case.get("depth")
    signal.alarm(ALARM_SECONDS)
    try:
        got = runner(
            case["expr"], case_input(suite, case, cache), case.get("bindings") or {}, timeout, depth
        )
    except Hang:
        return "hang"
    except MemoryError:
        return "memory"
    except RecursionError:
        return "error-mismatch" if expected_code else "unexpected-error"
    except Exception as exc:
        if expected_code:
            return "pass" if code_matches(error_code(lib, exc), expected_code) else "error-mismatch"
        return "unexpected-error"
    finally:
        signal.alarm(0)
    if expected_code:
        return "missing-error"
    if case.get("undefinedResult"):
        return "pass" if got is UNDEFINED else "wrong-result"
    if "result" not in case:
        return "skipped"
    if got is UNDEFINED:
        return "wrong-result"
    return (
        "pass"
        if same(got, case["result"], unordered=bool(case.get("unordered")))
        else "wrong-result"
    )


def child(lib: str, suite: Path) -> None:
    """Run every case with one library and print a JSON summary on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    sys.setrecursionlimit(20_000)

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang

    signal.signal(signal.SIGALRM, on_alarm)
    runner = run_jsonatapy if lib == "jsonatapy" else run_jsonata_python
    outcomes: Counter[str] = Counter()
    failing_groups: Counter[str] = Counter()
    cache: dict[str, Any] = {}
    started = time.perf_counter()
    for name, case in load_cases(suite):
        outcome = check(lib, runner, suite, case, cache)
        outcomes[outcome] += 1
        if outcome not in ("pass", "skipped"):
            failing_groups[name.split("/", 1)[0]] += 1
    summary = {
        "lib": lib,
        "outcomes": dict(outcomes),
        "failing_groups": dict(failing_groups.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path, help="jsonata-js test/test-suite directory")
    parser.add_argument("--lib", action="append", choices=LIBS, help="library (default: both)")
    parser.add_argument("--child", choices=LIBS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.suite / "groups").is_dir():
        parser.error(f"{args.suite}: no groups/ directory (give the test-suite directory)")
    if args.child:
        child(args.child, args.suite)
        return
    for lib in args.lib or LIBS:
        proc = subprocess.run(  # noqa: S603  # our interpreter, this script
            [sys.executable, __file__, str(args.suite), "--child", lib],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            print(f"{lib}: child failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
            continue
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        outcomes = summary["outcomes"]
        total = sum(outcomes.values()) - outcomes.get("skipped", 0)
        passed = outcomes.get("pass", 0)
        share = 100 * passed / total
        print(f"{lib}: {passed}/{total} passed ({share:.1f}%) in {summary['seconds']} s")
        print(f"  outcomes: {outcomes}")
        print(f"  failing groups: {summary['failing_groups']}")


if __name__ == "__main__":
    main()
