"""Graph checks over a parsed definition, and the public ``validate``/``load``.

Spec rules checked here: StartAt names a state; every Next, Default, Catch Next and
Message TimeoutPath names a state *of the same state machine or branch* (a branch
cannot jump out); every state is reachable from StartAt; Choice rules' Next exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchestrator.asl import errors
from orchestrator.asl.errors import DefinitionInvalid, Problem
from orchestrator.asl.model import (
    ChoiceState,
    Definition,
    FailState,
    MapState,
    MessageState,
    ParallelState,
    State,
    SucceedState,
    TaskState,
)
from orchestrator.asl.parse import load_document, parse_definition


def _targets(state: State, where: str) -> Iterator[tuple[str, str]]:
    """Yield (target state name, pointer of the field naming it)."""
    if state.next is not None:
        yield state.next, f"{where}/Next"
    for i, catcher in enumerate(state.catch):
        yield catcher.next, f"{where}/Catch/{i}/Next"
    if isinstance(state, ChoiceState):
        for i, rule in enumerate(state.choices):
            yield rule.next, f"{where}/Choices/{i}/Next"
        if state.default is not None:
            yield state.default, f"{where}/Default"
    if isinstance(state, MessageState) and state.timeout_path is not None:
        yield state.timeout_path, f"{where}/TimeoutPath"


def check_graph(defn: Definition, where: str, problems: list[Problem]) -> None:
    """Check targets and reachability of one (sub-)machine and, recursively, its branches."""
    states_at = f"{where}/States"
    if defn.start_at and defn.start_at not in defn.states and defn.states:
        problems.append(
            Problem(path=f"{where}/StartAt", message=f"StartAt names no state: {defn.start_at!r}")
        )
    edges: dict[str, list[str]] = {}
    dangling = False
    for name, state in defn.states.items():
        at = f"{states_at}/{errors.pointer(name)[1:]}"
        edges[name] = []
        for target, field in _targets(state, at):
            if target in defn.states:
                edges[name].append(target)
            elif target:
                dangling = True
                problems.append(
                    Problem(path=field, message=f"no state named {target!r} in this state machine")
                )
        _check_children(state, at, problems)
    _check_reachable(defn, edges, states_at, problems, complete=not dangling)


def _check_children(state: State, at: str, problems: list[Problem]) -> None:
    if isinstance(state, ParallelState):
        for i, branch in enumerate(state.branches):
            check_graph(branch, f"{at}/Branches/{i}", problems)
    if isinstance(state, MapState) and state.processor is not None:
        check_graph(state.processor, f"{at}/{state.processor_field}", problems)


def _check_reachable(
    defn: Definition,
    edges: dict[str, list[str]],
    at: str,
    problems: list[Problem],
    *,
    complete: bool,
) -> None:
    if defn.start_at not in defn.states:
        return
    seen, todo = {defn.start_at}, [defn.start_at]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    # Judged only on a complete graph: a Next to a missing state is reported already.
    if complete and not any(_terminal(defn.states[name]) for name in seen):
        # AWS refuses such a definition: "MISSING_END_STATE: Workflow has no terminal state".
        problems.append(
            Problem(path=at, message="MISSING_END_STATE: Workflow has no terminal state")
        )
    for name in defn.states:
        if name not in seen:
            problems.append(
                Problem(
                    path=f"{at}/{errors.pointer(name)[1:]}",
                    message=f"state {name!r} is not reachable from StartAt",
                )
            )


def _terminal(state: State) -> bool:
    return state.end or isinstance(state, SucceedState | FailState)


#: Task resource suffixes an EXPRESS state machine cannot use. AWS: "Express
#: Workflows do not support ... the Run a Job (.sync) or Wait for Callback
#: (.waitForTaskToken) service integration patterns" (developer guide, "Choosing
#: workflow type").
_EXPRESS_REFUSED = (".sync", ".waitForTaskToken")
MACHINE_TYPES = ("STANDARD", "EXPRESS")


def _check_express(defn: Definition, where: str, problems: list[Problem]) -> None:
    for name, state in defn.states.items():
        at = f"{where}/States/{errors.pointer(name)[1:]}"
        if isinstance(state, TaskState) and _refused_in_express(state.resource):
            problems.append(
                Problem(
                    path=f"{at}/Resource",
                    message="an EXPRESS state machine cannot use the .sync or "
                    f".waitForTaskToken integration patterns: {state.resource!r}",
                )
            )
        if isinstance(state, ParallelState):
            for i, branch in enumerate(state.branches):
                _check_express(branch, f"{at}/Branches/{i}", problems)
        if isinstance(state, MapState) and state.processor is not None:
            _check_express(state.processor, f"{at}/{state.processor_field}", problems)


def _refused_in_express(resource: str) -> bool:
    # ".sync:2" is the versioned form of ".sync".
    tail = resource.rsplit(":", 1)[0] if resource.endswith(":2") else resource
    return tail.endswith(_EXPRESS_REFUSED)


def parse(
    source: Any, *, machine_type: str = "STANDARD"
) -> tuple[Definition | None, list[Problem]]:
    """Parse and check a definition; return it (None if unusable) and every problem.

    Never raises: anything wrong with ``source`` is a problem.

    Args:
        source: a dict, JSON text or YAML text.
        machine_type: ``STANDARD`` or ``EXPRESS`` (AWS's state machine ``type``); an
            EXPRESS machine may not use ``.sync`` or ``.waitForTaskToken`` resources.
    """
    raw, problems = load_document(source)
    if problems:
        return None, problems
    if machine_type not in MACHINE_TYPES:
        return None, [Problem(path="", message=f"unknown machine type {machine_type!r}")]
    try:
        defn = parse_definition(raw, "", problems)
        if defn is not None:
            check_graph(defn, "", problems)
            if machine_type == "EXPRESS":
                _check_express(defn, "", problems)
    except RecursionError:  # defensive: the depth limit should keep this from happening
        return None, [Problem(path="", message="the definition is nested too deeply")]
    return defn, problems


def validate(source: Any, *, machine_type: str = "STANDARD") -> list[Problem]:
    """Every problem of a definition (dict, JSON text or YAML text); empty when valid."""
    return parse(source, machine_type=machine_type)[1]


def load(source: Any, *, machine_type: str = "STANDARD") -> Definition:
    """Parse a definition for running it.

    Raises:
        DefinitionInvalid: with every problem, each with its JSON pointer.
    """
    defn, problems = parse(source, machine_type=machine_type)
    if problems or defn is None:
        raise DefinitionInvalid(problems)
    return defn
