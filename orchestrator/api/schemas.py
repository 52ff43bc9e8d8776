"""Request and response bodies of the HTTP API (pydantic models, shown in OpenAPI).

Inputs are constrained to what every backend stores: text never holds the NUL
character (PostgreSQL refuses it), lengths match the columns, numbers their
ranges, and times carry a time zone. A request outside these bounds gets a 422
naming the field instead of reaching the store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from orchestrator.client import (
    Batch,
    BatchProgress,
    Execution,
    HistoryEvent,
    StateMachineInfo,
    Version,
)
from orchestrator.types import BatchStatus, ExecutionStatus

# -- constrained scalars ------------------------------------------------------------

#: Text without the NUL character (PostgreSQL text cannot hold it).
NO_NUL = r"^[^\x00]*$"

#: AWS's rule for state machine names: 1-80 characters, no white space, no
#: control characters and none of ``< > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /``.
MACHINE_NAME = r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]+$"

MachineName = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=MACHINE_NAME)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_NUL)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=NO_NUL)]
NamePrefix = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
ErrorName = Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL)]
Cause = Annotated[str, StringConstraints(max_length=32_768, pattern=NO_NUL)]
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)]
VersionNumber = Annotated[int, Field(ge=1, le=2_147_483_647)]
QueueName = Literal["critical", "default", "low"]


def one_error(message: str) -> WrapValidator:
    """Report a union's failure as one error at the field (not one per member)."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("invalid", message) from None

    return WrapValidator(validate)


Priority = Annotated[
    QueueName | Annotated[int, Field(ge=0, le=9, strict=True)],
    one_error("priority must be critical, default, low or an integer 0-9 (9 most urgent)"),
]
Definition = Annotated[
    dict[str, Any] | Annotated[str, StringConstraints(pattern=NO_NUL)],
    one_error("the definition must be a JSON object, or JSON/YAML text without NUL"),
]


def _as_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range once converted to UTC") from None


#: A timezone-aware time, normalised to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]

PRIORITY_DOC = "Queue name (critical, default, low) or 0-9, 9 most urgent. Default `default`."


class _FromRecord(BaseModel):
    """A response built from a store record (or the facade's), never copied by hand.

    Each field is read from the record's attribute of the same name, or of
    another name its ``validation_alias`` gives (the record's ``source_count``
    is the API's ``sources``); the few fields a record lacks are joined in
    with :func:`_joined`. A renamed record field then fails every response
    that uses it, instead of drifting.
    """

    model_config = ConfigDict(from_attributes=True)


def _joined(record: object, **extra: Any) -> dict[str, Any]:
    """The record's fields and the ``extra`` ones the API joins to them (shallow)."""
    return {**vars(record), **extra}


class _Body(BaseModel):
    """A request body: unknown fields are refused, so a typo is a 422, not ignored."""

    model_config = ConfigDict(extra="forbid")


# -- errors ---------------------------------------------------------------------------


class ProblemOut(BaseModel):
    """One thing wrong with a request or a definition."""

    pointer: str = Field(
        description="JSON pointer to the problem: into the request (`/body/input`, "
        "`/query/limit`) or into the definition (`/States/Route/Next`)."
    )
    message: str


class ErrorOut(BaseModel):
    """Every error response: a code for programs, a sentence for people."""

    error: str = Field(description="What went wrong, e.g. `ExecutionNotFound`, `RequestInvalid`.")
    detail: str
    problems: list[ProblemOut] = Field(
        default_factory=list, description="Each problem with its pointer (validation errors)."
    )


# -- state machines -----------------------------------------------------------------


class StateMachineIn(_Body):
    """A definition to store as the next version of a state machine."""

    name: MachineName
    definition: Definition = Field(
        description="The ASL definition: a JSON object, or JSON/YAML text."
    )
    type: Literal["STANDARD", "EXPRESS"] = Field(
        default="STANDARD",
        description="AWS's state machine type, fixed at creation: EXPRESS executions keep "
        "no history and run at least once.",
    )


class StateMachineOut(_FromRecord):
    """One stored version of a state machine."""

    name: str = Field(validation_alias=AliasChoices("name", "state_machine_name"))
    version: int
    definition: Any
    definition_hash: str
    created_at: datetime
    type: str = Field(validation_alias=AliasChoices("type", "machine_type"))

    @classmethod
    def of(cls, version: Version) -> StateMachineOut:
        """Build from a stored version."""
        return cls.model_validate(version)


class StateMachineSummary(_FromRecord):
    """A state machine and its newest version number."""

    name: str
    latest_version: int
    created_at: datetime

    @classmethod
    def of(cls, info: StateMachineInfo) -> StateMachineSummary:
        """Build from the store's record."""
        return cls.model_validate(info)


class StateMachineList(BaseModel):
    """Every stored state machine, by name."""

    items: list[StateMachineSummary]


# -- executions -------------------------------------------------------------------------


class ExecutionIn(_Body):
    """Start an execution: in this process (`sync`) or on the workers (`async`)."""

    state_machine: MachineName
    version: VersionNumber | None = Field(default=None, description="Default: the newest.")
    input: Any = Field(default=None, description="The execution input (JSON). Default null.")
    name: Name | None = Field(
        default=None,
        description="Unique per state machine: the idempotency key of the start. Default: the id.",
    )
    mode: Literal["sync", "async"] = Field(
        default="async",
        description="`async` (default) stores it PENDING and publishes it to the queue of "
        "`priority` (202); `sync` runs it in the API process until it ends or parks (201).",
    )
    priority: Priority = Field(default="default", description=PRIORITY_DOC)
    source_execution_id: Identifier | None = Field(
        default=None, description="Chain: the input is this execution's output."
    )
    source_state_name: Name | None = Field(
        default=None, description="Chain from the output of this state of the source."
    )
    input_transformer: Name | None = Field(
        default=None, description="A registered input transformer applied to the chained input."
    )


class ExecutionOut(_FromRecord):
    """An execution as last committed."""

    id: str
    name: str
    state_machine: str
    version: int
    status: ExecutionStatus
    input: Any
    output: Any
    error: str | None
    cause: str | None
    current_state: str | None
    priority: int
    batch_id: str | None
    source_execution_id: str | None
    source_state_name: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    redrive_count: int

    @classmethod
    def of(cls, execution: Execution, version: Version) -> ExecutionOut:
        """Build from the record and the version it runs on."""
        return cls.model_validate(
            _joined(execution, state_machine=version.state_machine_name, version=version.version)
        )


class SourceFilter(_Body):
    """Which executions to select (every field narrows the selection)."""

    state_machine: Name | None = None
    version: VersionNumber | None = Field(default=None, description="With `state_machine`.")
    status: list[ExecutionStatus] | None = Field(default=None, description="Any of these.")
    started_after: UtcDatetime | None = Field(default=None, description="Inclusive.")
    started_before: UtcDatetime | None = Field(default=None, description="Exclusive.")
    name_prefix: Name | None = None
    batch_id: Identifier | None = None
    source_execution_id: Identifier | None = None
    unlinked_to: Name | None = Field(
        default=None,
        description="Only executions no execution of this state machine has as its source yet.",
    )


class ExecutionQuery(SourceFilter):
    """The execution filter as query parameters, with keyset paging."""

    limit: int = Field(default=100, ge=1, le=1000, description="Page size. Default 100.")
    cursor: Cursor | None = Field(default=None, description="`next_cursor` of the previous page.")
    descending: bool = Field(default=False, description="Newest first. Default oldest first.")


class ExecutionPage(BaseModel):
    """One page of executions; pass `next_cursor` as `cursor` for the next one."""

    items: list[ExecutionOut]
    next_cursor: str | None


class HistoryEventOut(_FromRecord):
    """One history row: a finished state (or a failed attempt)."""

    seq: int
    event_type: str
    state_name: str | None
    state_type: str | None
    input: Any
    output: Any
    error: str | None
    cause: str | None
    attempt: int
    entered_at: datetime | None
    recorded_at: datetime
    assigned: dict[str, Any] | None = Field(
        default=None, description="The workflow variables the state assigned, by name."
    )

    @classmethod
    def of(cls, event: HistoryEvent) -> HistoryEventOut:
        """Build from the stored row."""
        return cls.model_validate(event)


class HistoryOut(BaseModel):
    """An execution's history, in order."""

    execution_id: str
    items: list[HistoryEventOut]


class StopIn(_Body):
    """Why an execution is stopped (stored as its error and cause)."""

    error: ErrorName | None = None
    cause: Cause | None = None


class StopOut(BaseModel):
    """Whether the stop took effect, and the execution now."""

    stopped: bool = Field(description="False if the execution had already ended.")
    execution: ExecutionOut


# -- batches ----------------------------------------------------------------------------


class BatchIn(_Body):
    """Start one execution of `state_machine` per source execution the filter selects."""

    state_machine: MachineName
    version: VersionNumber | None = Field(default=None, description="Default: the newest.")
    filter: SourceFilter = Field(default_factory=SourceFilter)
    source_state_name: Name | None = Field(
        default=None, description="Input from this state's output. Default: the final output."
    )
    name_prefix: NamePrefix = Field(description="Executions are named `{name_prefix}-{source id}`.")
    priority: Priority = Field(default="default", description=PRIORITY_DOC)
    mode: Literal["distributed", "local"] = Field(
        default="distributed",
        description="`distributed` publishes to the workers (202); `local` runs the batch in "
        "the API process before answering (201).",
    )
    concurrency: int = Field(default=8, ge=1, le=64, description="Local mode. Default 8.")
    stop_on_error: bool = False
    unique: bool = Field(
        default=False, description="Skip sources already linked to an execution of this machine."
    )
    input_transformer: Name | None = None


class BatchProgressOut(_FromRecord):
    """Counts of a batch's executions by status."""

    total: int
    by_status: dict[str, int]
    finished: int
    failed: int
    done: bool

    @classmethod
    def of(cls, progress: BatchProgress) -> BatchProgressOut:
        """Build from the facade's progress."""
        return cls.model_validate(progress)


class BatchOut(_FromRecord):
    """A batch: what it read and created, and where its executions stand."""

    id: str
    state_machine: str | None
    status: BatchStatus
    filter: Any
    options: Any
    sources: int = Field(validation_alias=AliasChoices("sources", "source_count"))
    created: int = Field(validation_alias=AliasChoices("created", "created_count"))
    skipped: int = Field(validation_alias=AliasChoices("skipped", "skipped_count"))
    published: int = Field(validation_alias=AliasChoices("published", "published_count"))
    error: str | None
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    progress: BatchProgressOut
    status_reason: str | None = Field(default=None, description="Why the status last changed.")
    warning: str | None = Field(default=None, description="The failure guard's last warning.")
    failure_rate: float | None = Field(
        default=None, description="The failure guard's moving average of the failure rate."
    )
    guard_observed: int = Field(default=0, description="Ended executions the guard has seen.")
    guard_armed: bool = Field(default=True, description="Whether the guard may pause the batch.")
    position: Any = Field(default=None, description="Where the leader stands in the inputs.")
    leader: str | None = Field(default=None, description="The process leading the batch.")
    heartbeat_at: datetime | None = Field(default=None, description="The leader's last beat.")
    archived_count: int = Field(default=0, description="Failures archived so far.")

    @classmethod
    def of(cls, batch: Batch, machine: str | None, progress: BatchProgress) -> BatchOut:
        """Build from the stored batch and its progress."""
        return cls.model_validate(_joined(batch, state_machine=machine, progress=progress))


Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class SteerIn(_Body):
    """Why a batch is paused or cancelled (stored on the batch, and as the aborted ones' cause)."""

    reason: Reason | None = None


class ResumeIn(SteerIn):
    """Resume a batch; optionally arm or disarm its failure guard."""

    arm_guard: bool | None = Field(
        default=None, description="False: the guard no longer pauses it. Default: unchanged."
    )


class SteeringOut(BaseModel):
    """What a pause, resume or cancel did, and where the batch stands."""

    batch: BatchOut
    changed: bool = Field(description="Whether this call changed the batch's status.")
    held: int = Field(description="Unstarted executions this call held (pause).")
    released: int = Field(description="Held executions this call released (resume).")
    published: int = Field(description="Released executions published again (resume).")
    aborted: int = Field(description="Unstarted executions this call aborted (cancel).")
    started: int = Field(description="Executions that had started.")
    counts: dict[str, int] = Field(
        description="Executions by status, plus held/unstarted/cancelled."
    )
    leader_alive: bool
    needs_leader: bool = Field(
        description="No leader is alive: `orchestrator batch resume ID` leads it from its position."
    )


class CountOut(BaseModel):
    """How many executions an operation touched."""

    count: int


# -- messages -----------------------------------------------------------------------------


class MessageIn(_Body):
    """A message for the executions waiting on (`key`, `value`) in a Message state."""

    key: Name
    value: Any = Field(description="Correlation value (JSON), matched by JSON equality.")
    data: Any = Field(default=None, description="The message (JSON): the state's result.")


class MessageOut(BaseModel):
    """The executions the message resumed (each advanced in the API process)."""

    resumed: list[str]


# -- task tokens -----------------------------------------------------------------------------

#: A task token as ``.waitForTaskToken`` Tasks hand them out (AWS: 1 to 1,024 characters).
TaskTokenText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1024),
    Field(description="The task token the Task handed out (in the body, never in a URL)."),
]


class TaskSuccessIn(_Body):
    """Complete a waiting `.waitForTaskToken` Task (AWS SendTaskSuccess)."""

    token: TaskTokenText
    output: Any = Field(default=None, description="The Task's result (JSON).")


class TaskFailureIn(_Body):
    """Fail a waiting `.waitForTaskToken` Task (AWS SendTaskFailure); Retry/Catch apply."""

    token: TaskTokenText
    error: str | None = Field(
        default=None, max_length=256, description="Error name; default States.TaskFailed."
    )
    cause: str | None = Field(default=None, description="Error cause.")


class TaskHeartbeatIn(_Body):
    """Tell a waiting Task that its work goes on (AWS SendTaskHeartbeat)."""

    token: TaskTokenText


class TaskAnswerOut(BaseModel):
    """The execution the token belongs to (advanced in the API process after an answer)."""

    execution_id: str


# -- operations ------------------------------------------------------------------------------


class ExecutionCounts(BaseModel):
    """Executions by status, overall and per state machine."""

    total: int
    by_status: dict[str, int]
    by_state_machine: dict[str, dict[str, int]]


class BrokerStats(BaseModel):
    """What the broker says: queue depths and the workers that answered a ping."""

    reachable: bool
    error: str | None = None
    queues: dict[str, int | None] = Field(
        default_factory=dict, description="Messages waiting per queue (null: unknown)."
    )
    workers: list[str] = Field(default_factory=list, description="Workers that answered a ping.")


class StatsOut(BaseModel):
    """Counts per status and machine, queue depths and workers seen."""

    executions: ExecutionCounts
    broker: BrokerStats


class CheckOut(BaseModel):
    """One dependency's health."""

    ok: bool
    error: str | None = None


class HealthOut(BaseModel):
    """`ok` when the database and the broker answer; the API answers 503 otherwise."""

    status: Literal["ok", "unavailable"]
    database: CheckOut
    broker: CheckOut


__all__ = [
    "BatchIn",
    "BatchOut",
    "BatchProgressOut",
    "BrokerStats",
    "CheckOut",
    "ErrorOut",
    "ExecutionCounts",
    "ExecutionIn",
    "ExecutionOut",
    "ExecutionPage",
    "ExecutionQuery",
    "HealthOut",
    "HistoryEventOut",
    "HistoryOut",
    "MessageIn",
    "MessageOut",
    "ProblemOut",
    "SourceFilter",
    "StateMachineIn",
    "StateMachineList",
    "StateMachineOut",
    "StateMachineSummary",
    "StatsOut",
    "StopIn",
    "StopOut",
]
