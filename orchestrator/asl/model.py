"""The parsed form of a state machine: frozen, typed, compiled once.

Every path, template and choice rule is compiled when the definition is loaded, so
stepping an execution never parses text. Field names follow the ASL spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.asl.choice import ChoiceRule
from orchestrator.asl.distributed import DistributedMap
from orchestrator.asl.paths import Path, Step
from orchestrator.asl.templates import Template

#: Marker for an InputPath/OutputPath/ResultPath that was left out: the default ``$``.
ROOT: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrier:
    """One element of a ``Retry`` array.

    Defaults are the spec's: IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0, no
    MaxDelaySeconds, JitterStrategy NONE.
    """

    error_equals: tuple[str, ...]
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter: str = "NONE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Catcher:
    """One element of a ``Catch`` array; ``result_path`` None means ResultPath null."""

    error_equals: tuple[str, ...]
    next: str
    result_path: tuple[Step, ...] | None = ROOT
    result_path_text: str = "$"
    assign: Any = None
    output: Any = None
    has_output: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """Fields every state may have; unused ones keep their defaults.

    ``input_path``/``output_path``: a compiled Path, ``None`` for JSON null (``{}``),
    or the string ``"$"`` left out. ``result_path``: reference steps, or None for null.
    """

    name: str
    type: str
    next: str | None = None
    end: bool = False
    comment: str | None = None
    input_path: Path | str | None = "$"
    output_path: Path | str | None = "$"
    parameters: Template | None = None
    result_selector: Template | None = None
    result_path: tuple[Step, ...] | None = ROOT
    result_path_text: str = "$"
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    uses_context: bool = False
    #: ``Assign``: a Template (JSONPath) or the raw value (JSONata); None when absent.
    assign: Any = None
    #: The query language of the state (its own ``QueryLanguage`` or the machine's).
    language: str = "JSONPath"
    #: JSONata ``Arguments``/``Output`` as written (``has_*`` tells null apart).
    arguments: Any = None
    has_arguments: bool = False
    output: Any = None
    has_output: bool = False
    #: Workflow variables the state reads: (name, JSON pointer of the reference).
    reads: tuple[tuple[str, str], ...] = ()
    #: Names the state's Assign fields (its own, its Choice rules', its Catchers') write.
    assigns: frozenset[str] = frozenset()
    #: JSONata states: fields given as one ``{% %}`` expression (``Seconds``,
    #: ``TimeoutSeconds``, ``MaxConcurrency``, ``Error``, ...), by field name.
    exprs: dict[str, str] = field(default_factory=dict, compare=False)
    #: JSONata states: whether some expression calls ``$random``/``$uuid``.
    draws: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PassState(State):
    """``Type: Pass``; ``result`` is the ``Result`` field (``has_result`` tells null apart)."""

    result: Any = None
    has_result: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState(State):
    """``Type: Task``: call the handler registered for ``resource``.

    ``timeout_seconds`` None means no limit (AWS's default is 99999999 seconds).
    """

    resource: str = ""
    timeout_seconds: float | None = None
    timeout_seconds_path: Path | None = None
    heartbeat_seconds: float | None = None
    heartbeat_seconds_path: Path | None = None
    credentials: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceState(State):
    """``Type: Choice``: the first matching rule's ``Next``, else ``Default``."""

    choices: tuple[ChoiceRule, ...] = ()
    default: str | None = None
    #: Per rule (same order as ``choices``): its Assign, Output and whether it has one.
    rule_assign: tuple[Any, ...] = ()
    rule_output: tuple[tuple[bool, Any], ...] = ()
    #: JSONata Choice rules: (Condition, Next), in order (``choices`` is then empty).
    conditions: tuple[tuple[Any, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitState(State):
    """``Type: Wait``: exactly one of the four fields is set."""

    seconds: float | None = None
    seconds_path: Path | None = None
    timestamp: str | None = None
    timestamp_path: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SucceedState(State):
    """``Type: Succeed``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailState(State):
    """``Type: Fail``: Error/Cause, or read from the input by ErrorPath/CausePath."""

    error: str | None = None
    cause: str | None = None
    error_path: Template | None = None
    cause_path: Template | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelState(State):
    """``Type: Parallel``: every branch gets the effective input; output is their array."""

    branches: tuple[Definition, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MapState(State):
    """``Type: Map`` (inline): run ``processor`` once per item of ``items_path``.

    ``max_concurrency`` 0 means no limit (the spec's default). ``item_selector`` is
    ItemSelector, or the older Parameters field when that is used instead.
    ``unsupported`` says why the Map cannot run here, or None; ``distributed`` is set
    for a Distributed Map (its items run as child executions: the runtime's Map Run).
    """

    processor: Definition | None = None
    processor_field: str = "ItemProcessor"
    items_path: Path | str = "$"
    item_selector: Template | None = None
    max_concurrency: int = 0
    max_concurrency_path: Path | None = None
    tolerated_failure_percentage: float | None = None
    tolerated_failure_percentage_path: Path | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_count_path: Path | None = None
    unsupported: str | None = None
    #: A Distributed Map's reader, batcher, writer and execution type; None: inline.
    distributed: DistributedMap | None = None
    #: JSONata ``Items`` (an array or an expression); None: the state input.
    items: Any = None
    has_items: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageState(State):
    """``Type: Message`` (state-machine-amz-go): park until a correlated message arrives.

    ``timeout_path`` is the *state name* to go to when ``timeout_seconds`` pass with no
    message; without it a timeout is the error ``States.Timeout``.
    """

    correlation_key: str = ""
    correlation_value_path: Path | None = None
    timeout_seconds: float | None = None
    timeout_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Definition:
    """A whole state machine (or a Parallel branch / Map processor)."""

    start_at: str
    states: dict[str, State]
    comment: str | None = None
    version: str = "1.0"
    timeout_seconds: float | None = None
    query_language: str = "JSONPath"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
