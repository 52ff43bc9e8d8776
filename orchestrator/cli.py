"""The ``orchestrator`` command line (also ``python -m orchestrator``).

Commands stay declarative: each parses its arguments, calls the process's one
client (:class:`~orchestrator.client.Orchestrator`) and prints the result. User
errors print one line and exit non-zero.

Over 600 lines, for now: one typer app of small command functions. The next
step splits it into a ``cli/`` package, one module per command group
(``batch`` first), once the issue-11 error handling for the CLI (a branch in
flight) has landed here.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from orchestrator import asl
from orchestrator.handlers import import_handler_modules, registry

if TYPE_CHECKING:
    from orchestrator.client import Orchestrator

#: Largest version number (the column is a 32-bit integer).
MAX_VERSION = 2_147_483_647


class _ErrorBoundary(TyperGroup):
    """The command group that turns every known error into one line and exit code 2.

    Commands stay plain: whatever they raise that a user can cause (a database
    that cannot be reached, invalid settings, a value out of range) is reported
    here, once, instead of as a traceback. Anything else is a bug and keeps its
    traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        """Run the command; a known error prints ``error: ...`` and exits 2."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("click", "typer"):
                # Exit, Abort and help are click's to show; a bad value is one line.
                if not isinstance(exc, _USAGE_ERROR) or type(exc).__name__ == "NoArgsIsHelpError":
                    raise
                raise _fail(exc.format_message()) from None
            message = describe_error(exc)
            if message is None:
                raise
            raise _fail(message) from None


#: click's UsageError, as the click that typer uses defines it (typer may vendor one).
_USAGE_ERROR: type[Any] = typer.BadParameter.__mro__[1]
assert _USAGE_ERROR.__name__ == "UsageError"


app = typer.Typer(
    name="orchestrator",
    cls=_ErrorBoundary,
    help="Run Amazon States Language state machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def describe_error(exc: BaseException) -> str | None:
    """One line saying what went wrong and what to do, or None for an unexpected error."""
    import kombu.exceptions
    import pydantic
    import pydantic_settings
    import redis.exceptions
    import sqlalchemy.exc

    from orchestrator.errors import OrchestratorError

    if isinstance(exc, pydantic.ValidationError):
        return "invalid settings: " + "; ".join(
            f"ORCHESTRATOR_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, pydantic_settings.SettingsError):
        found = re.search(r'field "(\w+)"', str(exc))
        field = f"ORCHESTRATOR_{found.group(1).upper()}" if found else "a setting"
        return f"invalid settings: {field} is not valid JSON"
    if isinstance(exc, sqlalchemy.exc.ArgumentError | sqlalchemy.exc.NoSuchModuleError):
        return f"ORCHESTRATOR_DATABASE_URL is not a database URL we can use: {_first_line(exc)}"
    if isinstance(exc, ImportError):
        return f"a module is missing ({_first_line(exc)}): install it, or change the setting"
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        cause = getattr(exc, "orig", None) or exc
        return f"cannot reach the database at {_setting_url('database_url')}: {_first_line(cause)}"
    if isinstance(exc, kombu.exceptions.OperationalError | redis.exceptions.ConnectionError):
        return f"cannot reach the broker at {_setting_url('broker_url')}: {_first_line(exc)}"
    if isinstance(exc, OrchestratorError | ValueError | KeyError | OverflowError):
        return _message(exc)
    return None


def _message(exc: BaseException) -> str:
    """An exception's text as one line (a KeyError's without the quotes of its repr)."""
    if isinstance(exc, KeyError) and exc.args:
        return _first_line(exc.args[0])
    return _first_line(exc)


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else type(value).__name__


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _setting_url(field: str) -> str:
    try:
        return _safe_url(getattr(_settings(), field))
    except Exception:  # the URL itself may be what is wrong
        return f"ORCHESTRATOR_{field.upper()}"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text") from None


def _json_argument(value: str, what: str) -> Any:
    """A JSON value given inline or as ``@file``."""
    text = _read_text(Path(value[1:])) if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _fail(f"{what} is not valid JSON: {exc}") from None


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Definition files (JSON or YAML).")],
) -> None:
    """Check definitions; print ``file: /pointer: message`` per problem, exit 1 if any."""
    bad = 0
    for path in files:
        problems = asl.validate(_read_text(path))
        for problem in problems:
            typer.echo(f"{path}: {problem}")
        bad += bool(problems)
        if not problems:
            typer.echo(f"{path}: valid")
    if bad:
        raise typer.Exit(1)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Definition file (JSON or YAML).")],
    input: Annotated[str, typer.Option("--input", "-i", help="Input JSON, or @file.")] = "{}",
    handlers: Annotated[
        list[str] | None,
        typer.Option("--handlers", "-H", help="Module that registers Task handlers."),
    ] = None,
) -> None:
    """Run a definition in this process and print the result as JSON (exit 0 if SUCCEEDED)."""
    data = _json_argument(input, "--input")
    sys.path.insert(0, str(Path.cwd()))
    try:
        import_handler_modules(handlers or [])
    except ImportError as exc:
        raise _fail(f"cannot import handler module: {exc}") from None
    try:
        from orchestrator import run as run_here

        result = run_here(_read_text(file), data, handlers=registry)
    except asl.DefinitionInvalid as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(1) from None
    out = {"status": result.status, "output": result.output}
    if result.error is not None:
        out.update(error=result.error, cause=result.cause)
    typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
    raise typer.Exit(0 if result.status == "SUCCEEDED" else 1)


# --- the store ------------------------------------------------------------------

db_app = typer.Typer(help="The database (ORCHESTRATOR_DATABASE_URL).", no_args_is_help=True)
machines_app = typer.Typer(help="Stored state machines.", no_args_is_help=True)
executions_app = typer.Typer(help="Stored executions.", no_args_is_help=True)
messages_app = typer.Typer(help="Messages for Message states.", no_args_is_help=True)
timers_app = typer.Typer(help="Timers of parked executions.", no_args_is_help=True)
tasks_app = typer.Typer(
    help="Answer .waitForTaskToken Tasks: success, failure, heartbeat.", no_args_is_help=True
)
batch_app = typer.Typer(
    help="Batches: one execution per source execution or input; steering them.",
    no_args_is_help=True,
)
mapruns_app = typer.Typer(help="Map Runs of Distributed Maps.", no_args_is_help=True)
for _sub, _name in (
    (db_app, "db"),
    (machines_app, "machines"),
    (executions_app, "executions"),
    (messages_app, "messages"),
    (timers_app, "timers"),
    (tasks_app, "tasks"),
    (batch_app, "batch"),
    (mapruns_app, "mapruns"),
):
    app.add_typer(_sub, name=_name)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _settings() -> Any:
    from orchestrator.settings import get_settings

    return get_settings()


def _client() -> Orchestrator:
    """The process's one client, built from the environment's settings."""
    from orchestrator.client import Orchestrator

    return Orchestrator.shared(_settings())


def _print(data: Any, as_json: bool, columns: list[str] | None = None) -> None:
    """Print records as JSON or as a table for people."""
    rows = [_plain(r) for r in (data if isinstance(data, list) else [data])]
    if as_json:
        typer.echo(json.dumps(rows if isinstance(data, list) else rows[0], indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    names = columns or (list(rows[0]) if rows else [])
    table = Table(*names)
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in names))
    Console().print(table)


def _plain(record: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    return dict(record)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)[:60]
    return str(value)


def _user_errors() -> tuple[type[Exception], ...]:
    from orchestrator.errors import OrchestratorError

    return (OrchestratorError, ValueError, KeyError)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (creates the tables on a new database)."""
    client = _client()
    client.upgrade_database()
    typer.echo(f"database at {client.database_url()} is up to date")


@machines_app.command("create")
def machines_create(
    name: Annotated[str, typer.Argument(help="State machine name.")],
    file: Annotated[Path, typer.Argument(help="Definition file (JSON or YAML).")],
    machine_type: Annotated[
        str, typer.Option("--type", help="STANDARD or EXPRESS (fixed at creation).")
    ] = "STANDARD",
    as_json: JsonFlag = False,
) -> None:
    """Store a definition as a new version of NAME (nothing new if unchanged)."""
    from orchestrator.errors import InvalidName, StateMachineTypeNotSupported

    try:
        sm = _client().create_state_machine(
            name, _read_text(file), machine_type=machine_type.upper()
        )
    except (InvalidName, StateMachineTypeNotSupported) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except asl.DefinitionInvalid as exc:
        for problem in exc.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(1) from None
    _print({"name": sm.name, "version": sm.version}, as_json)


@machines_app.command("list")
def machines_list(as_json: JsonFlag = False) -> None:
    """Every state machine with its newest version."""
    _print(_client().state_machines(), as_json, ["name", "latest_version", "created_at"])


@machines_app.command("show")
def machines_show(
    name: str,
    version: Annotated[int | None, typer.Option("--version", help="Default: newest.")] = None,
) -> None:
    """Print a state machine's definition as JSON."""
    if version is not None and not 1 <= version <= MAX_VERSION:
        raise _fail(f"--version must be a number from 1 to {MAX_VERSION}, not {version}")

    sm = _guard(lambda: _client().state_machine(name, version))
    out = {"name": sm.name, "version": sm.version, "definition": sm.version_record.definition}
    typer.echo(json.dumps(out, indent=2))


def _guard(fn: Any) -> Any:
    """Run fn; a user error becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except _user_errors() as exc:
        raise _fail(_message(exc)) from None


@executions_app.command("start")
def executions_start(
    machine: str,
    input: Annotated[str, typer.Option("--input", "-i", help="Input JSON, or @file.")] = "{}",
    name: Annotated[str | None, typer.Option(help="Execution name (idempotency key).")] = None,
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
    sync: Annotated[
        bool, typer.Option("--sync", help="EXPRESS machines: print the outcome and output.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start an execution in this process; it runs until it ends or parks."""
    data = _json_argument(input, "--input")
    _import_handlers(handlers)
    sm = _guard(lambda: _client().state_machine(machine))
    if sync:
        done = _guard(lambda: sm.start_sync(data, name=name))
        _print(done, as_json, ["id", "name", "status", "error", "cause", "output"])
        return
    execution = _guard(lambda: sm.start(data, name=name))
    _print(execution, as_json, ["id", "name", "status", "current_state", "error"])


def _import_handlers(modules: list[str] | None) -> None:
    sys.path.insert(0, str(Path.cwd()))
    try:
        import_handler_modules([*(modules or []), *_settings().handler_modules])
    except ImportError as exc:
        raise _fail(f"cannot import handler module: {exc}") from None


@executions_app.command("list")
def executions_list(
    machine: Annotated[str | None, typer.Option(help="State machine name.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Status (repeatable).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List executions, newest first."""
    from orchestrator.client import ExecutionFilter

    flt = ExecutionFilter(
        state_machine=machine,
        status=[_status(s) for s in status or []] or None,
        limit=limit,
        descending=True,
    )
    page = _guard(lambda: _client().executions(flt))
    _print(list(page.items), as_json, ["id", "name", "status", "current_state", "started_at"])


def _status(text: str) -> Any:
    from orchestrator.types import ExecutionStatus

    try:
        return ExecutionStatus(text.upper())
    except ValueError:
        known = ", ".join(s.value for s in ExecutionStatus)
        raise _fail(f"--status {text!r} is not one of {known}") from None


@executions_app.command("show")
def executions_show(execution_id: str) -> None:
    """Print one execution as JSON."""
    execution = _guard(lambda: _client().execution(execution_id).describe())
    typer.echo(json.dumps(_plain(execution), indent=2, default=str))


@executions_app.command("history")
def executions_history(execution_id: str, as_json: JsonFlag = False) -> None:
    """The execution's history, one row per finished state."""
    rows = _guard(lambda: _client().execution(execution_id).history())
    _print(rows, as_json, ["seq", "event_type", "state_name", "error", "assigned", "recorded_at"])


@executions_app.command("stop")
def executions_stop(
    execution_id: str,
    error: Annotated[str | None, typer.Option()] = None,
    cause: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Abort a running or waiting execution."""
    stopped = _guard(lambda: _client().execution(execution_id).stop(error=error, cause=cause))
    typer.echo("stopped" if stopped else "already ended")


@executions_app.command("redrive")
def executions_redrive(
    execution_id: str,
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
) -> None:
    """Continue a FAILED, TIMED_OUT or ABORTED execution from where it stopped."""
    _import_handlers(handlers)
    done = _guard(lambda: _client().execution(execution_id).redrive())
    typer.echo(f"{done.id}: {done.status}")


@executions_app.command("recover")
def executions_recover(
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Resume executions whose worker died (lease expired) from their last checkpoint."""
    _import_handlers(handlers)
    ids = _client().recover(limit=limit)
    typer.echo(f"recovered {len(ids)} executions")


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` (or a plain number of days) as a timedelta."""
    units = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "d")
    try:
        amount = float(value)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an age like 30d, 12h, 90m or 45s") from None
    if not math.isfinite(amount):
        raise typer.BadParameter(f"{text!r} is not a finite age")
    if amount < 0:
        raise typer.BadParameter("the age must not be negative")
    try:
        return timedelta(**{units[unit]: amount})
    except OverflowError:
        raise typer.BadParameter(f"{text!r} is longer than any age we can count") from None


@executions_app.command("purge")
def executions_purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Age: 30d, 12h, 90m.")],
    status: Annotated[list[str] | None, typer.Option(help="Ended status (repeatable).")] = None,
) -> None:
    """Delete ended executions older than an age, with their history (in chunks)."""
    age = parse_age(older_than)
    deleted = _guard(lambda: _client().purge(age, statuses=status or None))
    typer.echo(f"deleted {deleted} executions that ended more than {older_than} ago")


@messages_app.command("send")
def messages_send(
    key: str,
    value: Annotated[str, typer.Argument(help="Correlation value (JSON; plain text is a string).")],
    data: Annotated[str, typer.Option("--data", "-d", help="Message JSON, or @file.")] = "null",
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
) -> None:
    """Resume every execution waiting for (KEY, VALUE) with the message."""
    try:
        correlation = json.loads(value)
    except ValueError:
        correlation = value
    payload = _json_argument(data, "--data")
    _import_handlers(handlers)
    ids = _guard(lambda: _client().send_message(key, correlation, payload))
    typer.echo(f"resumed {len(ids)} executions: {' '.join(ids)}")


TokenArg = Annotated[str, typer.Argument(help="The task token the Task handed out.")]


@tasks_app.command("success")
def tasks_success(
    token: TokenArg,
    output: Annotated[str, typer.Argument(help="The Task's result: JSON, or @file.")] = "null",
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
) -> None:
    """Complete the waiting Task with OUTPUT; its execution goes on in this process."""
    result = _json_argument(output, "OUTPUT")
    _import_handlers(handlers)
    execution_id = _guard(lambda: _client().send_task_success(token, result))
    typer.echo(f"resumed execution {execution_id}")


@tasks_app.command("failure")
def tasks_failure(
    token: TokenArg,
    error: Annotated[str | None, typer.Option("--error", "-e", help="Error name.")] = None,
    cause: Annotated[str | None, typer.Option("--cause", "-c", help="Error cause.")] = None,
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
) -> None:
    """Fail the waiting Task with ERROR (default States.TaskFailed); Retry/Catch apply."""
    _import_handlers(handlers)
    execution_id = _guard(lambda: _client().send_task_failure(token, error, cause))
    typer.echo(f"resumed execution {execution_id}")


@tasks_app.command("heartbeat")
def tasks_heartbeat(token: TokenArg) -> None:
    """Tell the waiting Task that its work goes on (HeartbeatSeconds starts again)."""
    execution_id = _guard(lambda: _client().send_task_heartbeat(token))
    typer.echo(f"heartbeat recorded for execution {execution_id}")


@timers_app.command("run")
def timers_run(
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
    loop: Annotated[bool, typer.Option(help="Keep firing timers every --interval.")] = False,
    interval: Annotated[float, typer.Option(min=0.1)] = 1.0,
) -> None:
    """Fire due timers and advance the executions they wake."""
    import time

    _import_handlers(handlers)
    client = _client()
    while True:
        woken = client.fire_due_timers()
        typer.echo(f"fired timers of {len(woken)} executions")
        if not loop:
            return
        time.sleep(interval)


@batch_app.command("start")
def batch_start(
    machine: Annotated[str, typer.Argument(help="The state machine to start executions of.")],
    name_prefix: Annotated[
        str, typer.Option(help="Executions are named PREFIX-<source id> (PREFIX-<index>).")
    ],
    inputs: Annotated[
        Path | None,
        typer.Option(
            "--inputs", help="One execution per input of this JSON array or JSON-lines file."
        ),
    ] = None,
    input_format: Annotated[str, typer.Option("--format", help="auto, array or lines.")] = "auto",
    source_machine: Annotated[str | None, typer.Option(help="Sources' state machine.")] = None,
    source_status: Annotated[str, typer.Option(help="Sources' status.")] = "SUCCEEDED",
    source_state: Annotated[str | None, typer.Option(help="Use this state's output.")] = None,
    priority: Annotated[str, typer.Option(help="critical, default or low.")] = "default",
    mode: Annotated[str, typer.Option(help="distributed (workers) or local.")] = "distributed",
    concurrency: Annotated[int, typer.Option(min=1, help="Local mode: at once.")] = 8,
    unique: Annotated[bool, typer.Option(help="Skip sources already linked.")] = False,
    micro_batch_size: Annotated[
        int | None, typer.Option(min=1, help="Publish slices of N, each once the last ended.")
    ] = None,
    micro_batch_timeout: Annotated[
        float | None, typer.Option(min=0, help="Seconds before the next slice goes anyway.")
    ] = None,
    warn_threshold: Annotated[float, typer.Option(min=0, max=1, help="Guard: warn.")] = 0.1,
    pause_threshold: Annotated[float, typer.Option(min=0, max=1, help="Guard: pause.")] = 0.25,
    smoothing: Annotated[float, typer.Option(min=0.001, max=1, help="Guard: EMA weight.")] = 0.05,
    min_finished: Annotated[int, typer.Option(min=0, help="Guard: ended before judging.")] = 20,
    guard: Annotated[bool, typer.Option(help="--no-guard: never warn nor pause.")] = True,
    watch: Annotated[bool, typer.Option(help="Lead until every execution ended.")] = False,
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
    follow: Annotated[bool, typer.Option(help="Show progress until it ends.")] = True,
) -> None:
    """Start one execution of MACHINE per selected source execution (or per input), and lead it.

    With micro-batches (or --watch) this process leads the batch until every
    execution has ended, waiting while it is paused; the failure guard warns
    and pauses it on the thresholds.
    """
    from orchestrator.client import ExecutionFilter
    from orchestrator.types import ExecutionStatus

    _import_handlers(handlers)
    sm = _guard(lambda: _client().state_machine(machine))
    options: dict[str, Any] = {
        "name_prefix": name_prefix,
        "priority": int(priority) if priority.isdigit() else priority,
        "mode": mode,
        "concurrency": concurrency,
        "micro_batch_size": micro_batch_size,
        "micro_batch_timeout": micro_batch_timeout,
        "failure_warn_threshold": warn_threshold if guard else None,
        "failure_pause_threshold": pause_threshold if guard else None,
        "failure_smoothing": smoothing,
        "failure_min_finished": min_finished,
        "watch": watch,
    }
    try:
        if inputs is not None:
            result = _guard(lambda: sm.execute_bulk(inputs, input_format=input_format, **options))
        else:
            status = _guard(lambda: ExecutionStatus(source_status.upper()))
            flt = ExecutionFilter(state_machine=source_machine, status=status)
            result = _guard(lambda: sm.execute_batch(flt, source_state, unique=unique, **options))
    except Exception as exc:
        if not _broker_down(exc):
            raise
        raise _fail(_stranded(sm, exc)) from None
    typer.echo(
        f"batch {result.batch_id}: {result.sources} sources, {result.created} created, "
        f"{result.skipped} skipped, {result.published} published ({result.status})"
    )
    if follow:
        _follow(result)


def _broker_down(exc: BaseException) -> bool:
    import kombu.exceptions
    import redis.exceptions

    return isinstance(exc, kombu.exceptions.OperationalError | redis.exceptions.ConnectionError)


def _stranded(sm: Any, exc: BaseException) -> str:
    """What a batch whose broker went away left behind, and how to go on."""
    from orchestrator.client import ExecutionFilter
    from orchestrator.types import ExecutionStatus

    down = f"cannot reach the broker at {_setting_url('broker_url')} ({_first_line(exc)})"
    batches = sm.client.batches(state_machine=sm.name, limit=1)
    if not batches:
        return down
    batch_id = batches[0].id
    flt = ExecutionFilter(batch_id=batch_id, status=ExecutionStatus.PENDING)
    pending = sm.client.count_executions(flt)
    return (
        f"{down}: batch {batch_id} stopped with {pending} executions PENDING; once the broker "
        f"is back, `orchestrator batch resume {batch_id}` publishes them"
    )


def _follow(result: Any) -> None:
    """A live progress bar until the batch ends: finished of total, counts per status,
    rate and time left."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    started = time.monotonic()
    with Progress(*columns) as bar:
        task = bar.add_task("executions", total=None)
        while True:
            progress = result.progress()
            rate = progress.finished / max(time.monotonic() - started, 1e-9)
            counts = " ".join(f"{s}={n}" for s, n in sorted(progress.by_status.items()))
            bar.update(
                task,
                completed=progress.finished,
                total=progress.total or None,
                description=f"{counts} {rate:.1f}/s",
            )
            if progress.done:
                break
            time.sleep(0.5)
    _print({"batch": result.batch_id, **progress.by_status}, as_json=False)


@batch_app.command("show")
def batch_show(batch_id: str, as_json: JsonFlag = False) -> None:
    """A batch's counts, its executions by status, and its control: guard, leader, position."""
    report = _guard(lambda: _client().batch(batch_id).describe())
    batch = report.batch
    row = {
        "batch": batch.id,
        "status": str(batch.status),
        "reason": batch.status_reason,
        "sources": batch.source_count,
        "created": batch.created_count,
        "skipped": batch.skipped_count,
        "published": batch.published_count,
        "started": report.started,
        **report.counts,
        "failure_rate": batch.failure_rate,
        "guard": f"{batch.guard_observed} ended, {'armed' if batch.guard_armed else 'disarmed'}",
        "warning": batch.warning,
        "error": batch.error,
        "leader": f"{batch.leader or '-'} ({'alive' if report.leader_alive else 'none alive'})",
        "position": batch.position,
        "archived": batch.archived_count,
    }
    if report.needs_leader:
        row["next"] = f"no leader alive: `orchestrator batch resume {batch.id}` leads it"
    if as_json:
        _print(row, as_json)
        return
    for key, value in row.items():
        if value not in (None, 0, ""):
            typer.echo(f"{key:>12}: {_cell(value) if isinstance(value, dict) else value}")


def _steered(report: Any) -> None:
    """What a pause, resume or cancel did, in one line each."""
    batch = report.batch
    reason = f" ({batch.status_reason})" if batch.status_reason else ""
    typer.echo(f"batch {batch.id}: {batch.status}{reason}")
    done = {"held": report.held, "released": report.released, "published": report.published}
    done["aborted"] = report.aborted
    changes = ", ".join(f"{key} {value}" for key, value in done.items() if value)
    typer.echo(f"this call: {changes or 'nothing new'}; {report.started} had started")
    if report.needs_leader:
        typer.echo(f"no leader alive: `orchestrator batch resume {batch.id}` leads it")


@batch_app.command("pause")
def batch_pause(
    batch_id: str, reason: Annotated[str | None, typer.Option(help="Stored on the batch.")] = None
) -> None:
    """Stop publishing and hold the batch's unstarted executions (safe to repeat)."""
    _steered(_guard(lambda: _client().batch(batch_id).pause(reason=reason)))


@batch_app.command("resume")
def batch_resume(
    batch_id: str,
    arm_guard: Annotated[
        bool | None, typer.Option("--arm-guard/--disarm-guard", help="Default: unchanged.")
    ] = None,
    lead: Annotated[
        bool, typer.Option(help="If the leader died, lead the batch from here until it ends.")
    ] = True,
    reason: Annotated[str | None, typer.Option()] = None,
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
) -> None:
    """Go on where the batch stopped: the held executions are published again."""
    _import_handlers(handlers)
    handle = _client().batch(batch_id)
    report = _guard(lambda: handle.resume(arm_guard=arm_guard, reason=reason, lead=lead))
    _steered(report)


@batch_app.command("cancel")
def batch_cancel(
    batch_id: str,
    reason: Annotated[str | None, typer.Option(help="The aborted executions' cause.")] = None,
) -> None:
    """Create nothing more, abort what has not started, report what had (safe to repeat)."""
    _steered(_guard(lambda: _client().batch(batch_id).cancel(reason=reason)))


@batch_app.command("failed")
def batch_failed(
    batch_id: str,
    archived: Annotated[bool, typer.Option(help="List the archived failures instead.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The batch's failed executions with their errors, in the order they ended."""
    handle = _client().batch(batch_id)
    page = _guard(lambda: handle.failures(archived=archived, limit=limit, cursor=cursor))
    _print(list(page.items), as_json, ["id", "name", "status", "error", "cause", "ended_at"])
    if page.next_cursor and not as_json:
        typer.echo(f"more: --cursor {page.next_cursor}")


@batch_app.command("redrive")
def batch_redrive(
    batch_id: str,
    local: Annotated[bool, typer.Option(help="Run them in this process.")] = False,
    handlers: Annotated[list[str] | None, typer.Option("--handlers", "-H")] = None,
) -> None:
    """Redrive every failure of the batch that is not archived, from where it stopped."""
    if local:
        _import_handlers(handlers)
    count = _guard(lambda: _client().batch(batch_id).redrive(local=local))
    typer.echo(f"redrove {count} failed executions")


@batch_app.command("archive")
def batch_archive(batch_id: str) -> None:
    """Archive the batch's failures so far (nothing is deleted; `failed --archived` lists them)."""
    count = _guard(lambda: _client().batch(batch_id).archive())
    typer.echo(f"archived {count} failed executions")


@batch_app.command("list")
def batch_list(
    machine: Annotated[str | None, typer.Option(help="State machine name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The newest batches with their counts."""
    batches = _guard(lambda: _client().batches(state_machine=machine, limit=limit))
    columns = ["id", "status", "source_count", "created_count", "skipped_count", "started_at"]
    _print(batches, as_json, columns)


@mapruns_app.command("list")
def mapruns_list(
    execution: Annotated[str | None, typer.Option(help="The parent execution id.")] = None,
    status: Annotated[str | None, typer.Option(help="RUNNING, SUCCEEDED, FAILED, ABORTED.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The newest Map Runs with their counts."""
    runs = _guard(lambda: _client().map_runs(execution_id=execution, status=status, limit=limit))
    rows = [{"id": r.id, "execution": r.parent_execution_id, "state": r.state_name,
             "status": r.status, **r.counts()} for r in runs]  # fmt: skip
    _print(rows, as_json, ["id", "execution", "state", "status", "total", "succeeded", "failed"])


@mapruns_app.command("show")
def mapruns_show(map_run_id: str, as_json: JsonFlag = False) -> None:
    """A Map Run: its status, counts per status, limits and times."""
    run = _guard(lambda: _client().map_run(map_run_id).describe())
    row = {
        "id": run.id,
        "execution": run.parent_execution_id,
        "state": run.state_name,
        "label": run.label,
        "status": run.status,
        "execution_type": run.execution_type,
        **run.counts(),
        "max_concurrency": run.max_concurrency,
        "tolerated_failure_percentage": run.tolerated_failure_percentage,
        "tolerated_failure_count": run.tolerated_failure_count,
        "error": run.error,
        "cause": run.cause,
        "started_at": run.started_at,
        "stopped_at": run.stopped_at,
    }
    if as_json:
        _print(row, as_json)
        return
    for key, value in row.items():
        typer.echo(f"{key}: {'-' if value is None else value}")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Default: ORCHESTRATOR_API_HOST.")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Default: ORCHESTRATOR_API_PORT.")
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) until interrupted."""
    from orchestrator.api import serve

    settings = _settings()
    changes = {key: value for key, value in (("api_host", host), ("api_port", port)) if value}
    serve(settings.model_copy(update=changes))


@app.command()
def demo(
    sources: Annotated[int, typer.Option(min=1, max=100_000, help="Orders to run.")] = 50,
) -> None:
    """Run the example order pipeline here (SQLite by default, no broker) and summarise it."""
    from orchestrator.demo import run_demo

    run_demo(_settings(), sources=sources)


@app.command("graph")
def graph_command(
    machine: str,
    execution: Annotated[
        str | None, typer.Option("--execution", help="Colour the states by this execution.")
    ] = None,
    version: Annotated[int | None, typer.Option("--version", help="Default: newest.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="svg, mermaid or dot.")] = "mermaid",
) -> None:
    """Draw a state machine (svg, mermaid or dot), coloured by an execution's outcome."""
    from orchestrator.graph import FORMATS, draw

    if fmt not in FORMATS:
        raise _fail(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    typer.echo(_guard(lambda: _drawing(machine, execution, version, fmt, draw)), nl=False)


def _drawing(
    machine: str, execution_id: str | None, version: int | None, fmt: str, draw: Any
) -> str:
    from orchestrator.statemachine import StateMachine, repository_for

    if execution_id is None:
        record = StateMachine.load(machine, version).version_record
        return str(draw(record.definition, fmt, title=f"{machine} v{record.version}"))
    repo = repository_for()
    run = repo.get_execution(execution_id)
    record = repo.get_version_by_id(run.version_id)
    if record.state_machine_name != machine:
        raise ValueError(f"execution {execution_id} belongs to {record.state_machine_name!r}")
    events = repo.history(execution_id)
    return str(
        draw(
            record.definition,
            fmt,
            events=events,
            status=run.status.value,
            current_state=run.current_state,
            title=f"{machine} {run.name}",
        )
    )


def main() -> None:
    """Entry point of the ``orchestrator`` script."""
    import contextlib

    from pydantic import ValidationError

    from orchestrator.logs import configure_logging

    # Bad settings: the command reads them again and reports them in one line.
    with contextlib.suppress(ValidationError):
        configure_logging(_settings())
    app()
