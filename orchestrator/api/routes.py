"""The HTTP routes: each parses its request, makes one or two facade calls, shapes the answer.

No SQL and no Celery internals here: everything goes through the app's one
client (:class:`~orchestrator.client.Orchestrator`), its state machines and its
execution and batch handles, as the CLI does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from orchestrator.api.context import ApiContext, VersionCache, context, require_token
from orchestrator.api.errors import ApiError
from orchestrator.api.schemas import (
    NO_NUL,
    BatchIn,
    BatchOut,
    BrokerStats,
    CheckOut,
    CountOut,
    ErrorOut,
    ExecutionCounts,
    ExecutionIn,
    ExecutionOut,
    ExecutionPage,
    ExecutionQuery,
    HealthOut,
    HistoryEventOut,
    HistoryOut,
    MessageIn,
    MessageOut,
    ProblemOut,
    ResumeIn,
    SourceFilter,
    StateMachineIn,
    StateMachineList,
    StateMachineOut,
    StateMachineSummary,
    StatsOut,
    SteerIn,
    SteeringOut,
    StopIn,
    StopOut,
    TaskAnswerOut,
    TaskFailureIn,
    TaskHeartbeatIn,
    TaskSuccessIn,
    VersionNumber,
)
from orchestrator.client import ExecutionFilter, SteeringReport
from orchestrator.errors import OrchestratorError

log = logging.getLogger("orchestrator.api")

Ctx = Annotated[ApiContext, Depends(context)]
ExecutionId = Annotated[
    str, Path(min_length=1, max_length=255, pattern=NO_NUL, description="The execution id.")
]
BatchId = Annotated[
    str, Path(min_length=1, max_length=255, pattern=NO_NUL, description="The batch id.")
]
MachinePathName = Annotated[
    str, Path(min_length=1, max_length=255, pattern=NO_NUL, description="The state machine.")
]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}


def _accepted(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    return {202: {"model": model, "description": "Published to the workers"}}


#: Answers every protected route may give besides its own (400: a body that is not
#: UTF-8 JSON at all, as FastAPI reports it).
COMMON_ERRORS = _errors(400, 401, 413, 422, 503)

machines = APIRouter(prefix="/state-machines", tags=["state machines"])
executions = APIRouter(prefix="/executions", tags=["executions"])
batches = APIRouter(prefix="/batches", tags=["batches"])
messages = APIRouter(prefix="/messages", tags=["messages"])
tasks = APIRouter(prefix="/tasks", tags=["task tokens"])
operations = APIRouter(tags=["operations"])

#: The routers the bearer token protects (all but ``/health``).
PROTECTED = (machines, executions, batches, messages, tasks, operations)
PROTECTION: dict[str, Any] = {"dependencies": [Depends(require_token)], "responses": COMMON_ERRORS}

health = APIRouter(tags=["operations"])


@contextlib.contextmanager
def user_input_errors(status: int = 400, error: str = "BadRequest") -> Iterator[None]:
    """Turn the facade's ValueError/KeyError (documented user errors) into an error response."""
    try:
        yield
    except OrchestratorError:
        raise  # its own handler gives its own status (InvalidName is also a ValueError)
    except (ValueError, KeyError) as exc:
        raise ApiError(status, error, str(exc).strip("'\"")) from exc


def to_filter(source: SourceFilter, **paging: Any) -> ExecutionFilter:
    """The facade's filter from its query or body form."""
    fields = source.model_dump(exclude={"limit", "cursor", "descending"})
    if fields["status"] is not None:
        fields["status"] = tuple(fields["status"])
    return ExecutionFilter(**fields, **paging)


# -- state machines -----------------------------------------------------------------


@machines.post(
    "",
    status_code=201,
    summary="Store a definition",
    description="Validates the definition and stores it as the next version of the state "
    "machine; the same definition again returns the version that holds it. A definition "
    "with problems gets a 422 listing each with its JSON pointer.",
)
def create_state_machine(body: StateMachineIn, ctx: Ctx) -> StateMachineOut:
    """Store a definition as a new version (or return the version that holds it)."""
    created = ctx.client.create_state_machine(body.name, body.definition, machine_type=body.type)
    return StateMachineOut.of(created.version_record)


@machines.get("", summary="List state machines")
def list_state_machines(ctx: Ctx) -> StateMachineList:
    """Every stored state machine with its newest version number."""
    found = ctx.client.state_machines()
    return StateMachineList(items=[StateMachineSummary.of(info) for info in found])


@machines.get("/{name}", summary="Show a state machine", responses=_errors(404))
def get_state_machine(
    name: MachinePathName,
    ctx: Ctx,
    version: Annotated[VersionNumber | None, Query(description="Default: the newest.")] = None,
) -> StateMachineOut:
    """One version of a state machine, with its definition."""
    return StateMachineOut.of(ctx.machine(name, version).version_record)


# -- executions ------------------------------------------------------------------------


@executions.post(
    "",
    status_code=201,
    summary="Start an execution",
    description="`mode=async` stores the execution PENDING and publishes it to the queue of "
    "its priority (202); `mode=sync` runs it in the API process until it ends or parks "
    "(201). The name is the idempotency key: the same name and input return the existing "
    "execution, another input is a 409.",
    responses=_accepted(ExecutionOut) | _errors(400, 404, 409),
)
def start_execution(body: ExecutionIn, response: Response, ctx: Ctx) -> ExecutionOut:
    """Start an execution, in this process or on the workers."""
    machine = ctx.machine(body.state_machine, body.version)
    options: dict[str, Any] = {
        "name": body.name,
        "priority": body.priority,
        "source_execution_id": body.source_execution_id,
        "source_state_name": body.source_state_name,
        "input_transformer": body.input_transformer,
    }
    with user_input_errors():
        if body.mode == "sync":
            started = machine.start(body.input, **options)
        else:
            started = machine.start_async(body.input, **options)
            response.status_code = 202
    return ExecutionOut.of(started, VersionCache(ctx.client)(started.version_id))


@executions.get(
    "",
    summary="List executions",
    description="One page of the executions the filter selects, ordered by start time; "
    "pass `next_cursor` as `cursor` for the next page. `status` repeats.",
)
def list_executions(query: Annotated[ExecutionQuery, Query()], ctx: Ctx) -> ExecutionPage:
    """One page of executions."""
    flt = to_filter(query, limit=query.limit, cursor=query.cursor, descending=query.descending)
    try:
        page = ctx.client.executions(flt)
    except (ValueError, OverflowError) as exc:
        problem = ProblemOut(pointer="/query/cursor", message=str(exc))
        raise ApiError(422, "RequestInvalid", str(exc), problems=[problem]) from exc
    versions = VersionCache(ctx.client)
    items = [ExecutionOut.of(e, versions(e.version_id)) for e in page.items]
    return ExecutionPage(items=items, next_cursor=page.next_cursor)


@executions.get("/{execution_id}", summary="Show an execution", responses=_errors(404))
def get_execution(execution_id: ExecutionId, ctx: Ctx) -> ExecutionOut:
    """One execution as last committed."""
    machine, execution = ctx.machine_of(execution_id)
    return ExecutionOut.of(execution, machine.version_record)


@executions.get("/{execution_id}/history", summary="An execution's history", responses=_errors(404))
def get_history(execution_id: ExecutionId, ctx: Ctx) -> HistoryOut:
    """Every history row of the execution, in order."""
    machine, _ = ctx.machine_of(execution_id)
    events = machine.history(execution_id)
    return HistoryOut(execution_id=execution_id, items=[HistoryEventOut.of(e) for e in events])


@executions.post(
    "/{execution_id}/stop",
    summary="Stop an execution",
    description="Aborts a running or waiting execution; `stopped` is false if it had "
    "already ended.",
    responses=_errors(404),
)
def stop_execution(execution_id: ExecutionId, ctx: Ctx, body: StopIn | None = None) -> StopOut:
    """Abort an execution (ABORTED), with an optional error and cause."""
    reason = body or StopIn()
    machine, _ = ctx.machine_of(execution_id)
    stopped = machine.stop(execution_id, error=reason.error, cause=reason.cause)
    execution = machine.get_execution(execution_id)
    return StopOut(stopped=stopped, execution=ExecutionOut.of(execution, machine.version_record))


@executions.post(
    "/{execution_id}/redrive",
    summary="Redrive an execution",
    description="Continues a FAILED, TIMED_OUT or ABORTED execution from where it stopped, "
    "in the API process; any other status is a 409.",
    responses=_errors(404, 409),
)
def redrive_execution(execution_id: ExecutionId, ctx: Ctx) -> ExecutionOut:
    """Continue an ended execution from its last checkpoint."""
    machine, _ = ctx.machine_of(execution_id)
    with user_input_errors(409, "NotRedrivable"):
        execution = machine.redrive(execution_id)
    return ExecutionOut.of(execution, machine.version_record)


# -- batches ----------------------------------------------------------------------------


@batches.post(
    "",
    status_code=201,
    summary="Start a batch",
    description="Starts one execution of `state_machine` per source execution the filter "
    "selects, its input the source's output (or the output of `source_state_name`). "
    "Executions are named `{name_prefix}-{source id}`, so the same batch again starts "
    "nothing twice. `distributed` publishes them (202); `local` runs them before answering.",
    responses=_accepted(BatchOut) | _errors(400, 404),
)
def start_batch(body: BatchIn, response: Response, ctx: Ctx) -> BatchOut:
    """Run ``execute_batch``."""
    machine = ctx.machine(body.state_machine, body.version)
    with user_input_errors():
        result = machine.execute_batch(
            to_filter(body.filter),
            body.source_state_name,
            name_prefix=body.name_prefix,
            priority=body.priority,
            mode=body.mode,
            concurrency=body.concurrency,
            stop_on_error=body.stop_on_error,
            unique=body.unique,
            input_transformer=body.input_transformer,
        )
    if body.mode == "distributed":
        response.status_code = 202
    return batch_out(ctx, result.batch_id)


@batches.get("/{batch_id}", summary="Show a batch", responses=_errors(404))
def get_batch(batch_id: BatchId, ctx: Ctx) -> BatchOut:
    """A batch's counts and the progress of its executions."""
    return batch_out(ctx, batch_id)


@batches.post(
    "/{batch_id}/pause",
    summary="Pause a batch",
    description="Nothing more is published and the executions that have not started are "
    "held. Safe to repeat (`changed` is false then).",
    responses=_errors(404),
)
def pause(batch_id: BatchId, ctx: Ctx, body: SteerIn | None = None) -> SteeringOut:
    """Pause a batch."""
    reason = (body or SteerIn()).reason
    return steering_out(ctx, ctx.client.batch(batch_id).pause(reason=reason))


@batches.post(
    "/{batch_id}/resume",
    summary="Resume a batch",
    description="The held executions are released and published again; the leader, if "
    "alive, goes on where it stopped. If no leader is alive, `needs_leader` is true: "
    "run `orchestrator batch resume ID` to lead it. A cancelled batch is a 409.",
    responses=_errors(404, 409),
)
def resume(batch_id: BatchId, ctx: Ctx, body: ResumeIn | None = None) -> SteeringOut:
    """Resume a batch."""
    options = body or ResumeIn()
    with user_input_errors(409, "NotResumable"):
        report = ctx.client.batch(batch_id).resume(
            arm_guard=options.arm_guard, reason=options.reason
        )
    return steering_out(ctx, report)


@batches.post(
    "/{batch_id}/cancel",
    summary="Cancel a batch",
    description="Nothing more is created; executions that have not started end ABORTED "
    "(error `BatchCancelled`); `started` counts those that had. Safe to repeat.",
    responses=_errors(404),
)
def cancel(batch_id: BatchId, ctx: Ctx, body: SteerIn | None = None) -> SteeringOut:
    """Cancel a batch."""
    reason = (body or SteerIn()).reason
    return steering_out(ctx, ctx.client.batch(batch_id).cancel(reason=reason))


@batches.get(
    "/{batch_id}/failures",
    summary="A batch's failed executions",
    description="One page of its FAILED, TIMED_OUT and ABORTED executions with their error "
    "and cause, in the order they ended. `archived`: `no` (default), `only` or `also`.",
    responses=_errors(404),
)
def failures(
    batch_id: BatchId,
    ctx: Ctx,
    archived: Literal["no", "only", "also"] = "no",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_NUL)] = None,
) -> ExecutionPage:
    """One page of a batch's failures."""
    which = {"no": False, "only": True, "also": None}[archived]
    with user_input_errors(422, "RequestInvalid"):
        page = ctx.client.batch(batch_id).failures(archived=which, limit=limit, cursor=cursor)
    versions = VersionCache(ctx.client)
    items = [ExecutionOut.of(e, versions(e.version_id)) for e in page.items]
    return ExecutionPage(items=items, next_cursor=page.next_cursor)


@batches.post(
    "/{batch_id}/failures/redrive",
    status_code=202,
    summary="Redrive a batch's failures",
    description="Reopens every failure that is not archived from where it stopped, and "
    "publishes them to the workers.",
    responses=_errors(404),
)
def redrive_failures(batch_id: BatchId, ctx: Ctx) -> CountOut:
    """Redrive a batch's failures on the workers."""
    count = ctx.client.batch(batch_id).redrive()
    return CountOut(count=count)


@batches.post(
    "/{batch_id}/failures/archive",
    summary="Archive a batch's failures",
    description="The failures so far leave the default listing (`archived=only` lists "
    "them); nothing is deleted.",
    responses=_errors(404),
)
def archive_failures(batch_id: BatchId, ctx: Ctx) -> CountOut:
    """Archive a batch's failures."""
    return CountOut(count=ctx.client.batch(batch_id).archive())


def steering_out(ctx: ApiContext, report: SteeringReport) -> SteeringOut:
    """The steering report with the batch as ``GET /batches/{id}`` shows it."""
    return SteeringOut(
        batch=batch_out(ctx, report.batch.id),
        changed=report.changed,
        held=report.held,
        released=report.released,
        published=report.published,
        aborted=report.aborted,
        started=report.started,
        counts=report.counts,
        leader_alive=report.leader_alive,
        needs_leader=report.needs_leader,
    )


def batch_out(ctx: ApiContext, batch_id: str) -> BatchOut:
    """The batch record with its progress (raises BatchNotFound)."""
    handle = ctx.client.batch(batch_id)
    batch, progress = handle.record(), handle.progress()
    names = {info.id: info.name for info in ctx.client.state_machines()}
    return BatchOut.of(batch, names.get(batch.state_machine_id), progress)


# -- messages ---------------------------------------------------------------------------


@messages.post(
    "",
    summary="Send a message",
    description="Resumes every execution waiting in a Message state for (`key`, `value`), "
    "and advances each in the API process. Nobody waiting is a 404; a wait that timed "
    "out or ended is a 409; `detail` says which.",
    responses=_errors(404, 409),
)
def post_message(body: MessageIn, ctx: Ctx) -> MessageOut:
    """Deliver a message to the executions waiting for it."""
    resumed = ctx.client.send_message(body.key, body.value, body.data)
    return MessageOut(resumed=resumed)


# -- task tokens ------------------------------------------------------------------------

_REFUSALS_TEXT = (
    "An unknown token, or one whose execution ended, is a 404 (`TaskDoesNotExist`); a "
    "token already used is a 400 (`InvalidToken`); one whose TimeoutSeconds or "
    "HeartbeatSeconds passed is a 409 (`TaskTimedOut`). `detail` says why."
)


@tasks.post(
    "/success",
    summary="Complete a waiting task (SendTaskSuccess)",
    description="The `.waitForTaskToken` Task that handed out `token` succeeds with "
    "`output`; its execution is advanced in the API process. " + _REFUSALS_TEXT,
    responses=_errors(404, 409),
)
def post_task_success(body: TaskSuccessIn, ctx: Ctx) -> TaskAnswerOut:
    """Answer a waiting Task with its result."""
    execution_id = ctx.client.send_task_success(body.token, body.output)
    return TaskAnswerOut(execution_id=execution_id)


@tasks.post(
    "/failure",
    summary="Fail a waiting task (SendTaskFailure)",
    description="The `.waitForTaskToken` Task that handed out `token` fails with `error` "
    "(default `States.TaskFailed`) and `cause`; its Retry and Catch apply, and its "
    "execution is advanced in the API process. " + _REFUSALS_TEXT,
    responses=_errors(404, 409),
)
def post_task_failure(body: TaskFailureIn, ctx: Ctx) -> TaskAnswerOut:
    """Answer a waiting Task with an error."""
    execution_id = ctx.client.send_task_failure(body.token, body.error, body.cause)
    return TaskAnswerOut(execution_id=execution_id)


@tasks.post(
    "/heartbeat",
    summary="Report that a waiting task is alive (SendTaskHeartbeat)",
    description="Its HeartbeatSeconds deadline starts again. " + _REFUSALS_TEXT,
    responses=_errors(404, 409),
)
def post_task_heartbeat(body: TaskHeartbeatIn, ctx: Ctx) -> TaskAnswerOut:
    """Record a heartbeat for a waiting Task."""
    execution_id = ctx.client.send_task_heartbeat(body.token)
    return TaskAnswerOut(execution_id=execution_id)


# -- operations -------------------------------------------------------------------------


@operations.get(
    "/stats",
    summary="Counts, queue depths and workers",
    description="Executions per status, overall and per state machine; messages waiting "
    "per queue; the workers that answered a ping (half a second). An unreachable broker "
    "is reported in `broker`, not as an error.",
)
def get_stats(ctx: Ctx) -> StatsOut:
    """What the system is doing now."""
    report = ctx.client.broker_report(ping_timeout=ctx.ping_timeout)
    broker = BrokerStats(
        reachable=report.reachable, error=report.error, queues=report.queues, workers=report.workers
    )
    return StatsOut(executions=execution_counts(ctx), broker=broker)


def execution_counts(ctx: ApiContext) -> ExecutionCounts:
    """Executions by status, overall and per state machine (one count query per machine)."""
    per_machine: dict[str, dict[str, int]] = {}
    overall: dict[str, int] = {}
    for info in ctx.client.state_machines():
        counts = ctx.client.count_by_status(ExecutionFilter(state_machine=info.name))
        per_machine[info.name] = {str(status): n for status, n in counts.items()}
        for status, n in per_machine[info.name].items():
            overall[status] = overall.get(status, 0) + n
    return ExecutionCounts(
        total=sum(overall.values()), by_status=overall, by_state_machine=per_machine
    )


@health.get(
    "/health",
    summary="Are the database and the broker reachable?",
    description="200 when both answer, 503 otherwise; never needs the token. An error "
    "names only its kind (this route is public); the API log and `/stats` have the detail.",
    responses={503: {"model": HealthOut, "description": "A dependency is unreachable"}},
)
def get_health(response: Response, ctx: Ctx) -> HealthOut:
    """Check the database and the broker."""
    database = _check("database", _database_error(ctx))
    broker = _check("broker", ctx.client.broker_error())
    healthy = database.ok and broker.ok
    if not healthy:
        response.status_code = 503
    return HealthOut(status="ok" if healthy else "unavailable", database=database, broker=broker)


def _database_error(ctx: ApiContext) -> str | None:
    try:
        ctx.client.state_machines()
    except Exception as exc:  # any failure means "unreachable"; the reason is reported
        return _one_line(exc)
    return None


def _one_line(exc: BaseException) -> str:
    """An error as one short line: its class and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"[:300]


def _check(what: str, error: str | None) -> CheckOut:
    """The public answer for one dependency: its error's kind only; the detail is logged."""
    if error is None:
        return CheckOut(ok=True)
    log.warning("health: the %s is unreachable: %s", what, error, extra={"action": "health"})
    return CheckOut(ok=False, error=error.split(":", 1)[0])


__all__ = ["PROTECTED", "PROTECTION", "health"]
