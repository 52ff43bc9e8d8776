"""A worker process for the runtime tests: ``python -m tests.runtime.worker_script``.

Commands (the database, lease and ledger come as arguments; nothing is read from
the environment):

``start``   start an execution of a stored machine by name and run it in this
            process (``StateMachine.start``), then print the execution as JSON.
``advance`` print ``ready``, wait for a line on stdin (the starting gun), then
            ``Runner.advance`` each execution id given, and print one JSON line
            per execution saying whether this process advanced it.

Task resource ``ledger`` is the handler of :mod:`tests.runtime.ledger`; with
``--die always`` or ``--die first`` it is its ``dying_handler`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orchestrator.handlers import HandlerRegistry
from orchestrator.runtime import Runner
from orchestrator.settings import Settings
from orchestrator.statemachine import StateMachine
from orchestrator.store import Repository

from .ledger import LEDGER_RESOURCE, dying_handler, ledger_handler


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worker_script")
    parser.add_argument("command", choices=["start", "advance"])
    parser.add_argument("--url", required=True, help="database URL")
    parser.add_argument("--ledger", required=True, type=Path, help="ledger file")
    parser.add_argument("--delay", type=float, default=0.05, help="handler sleep, seconds")
    parser.add_argument("--lease", type=float, default=60.0, help="lease_seconds")
    parser.add_argument("--machine", help="state machine name (start)")
    parser.add_argument("--name", help="execution name (start)")
    parser.add_argument("--input", default="{}", help="execution input as JSON (start)")
    parser.add_argument("--owner", help="lease owner name (advance)")
    parser.add_argument("--ids", nargs="+", default=[], help="execution ids (advance)")
    parser.add_argument(
        "--die", choices=["never", "always", "first"], default="never", help="SIGKILL in tasks"
    )
    parser.add_argument("--max-step-attempts", type=int, default=5, help="max_step_attempts")
    return parser


def _runner(repo: Repository, settings: Settings, args: argparse.Namespace) -> Runner:
    handlers = HandlerRegistry()
    if args.die == "never":
        handler = ledger_handler(args.ledger, delay=args.delay)
    else:
        handler = dying_handler(args.ledger, once_per_state=args.die == "first")
    handlers.register(LEDGER_RESOURCE, handler)
    owner = args.owner or f"worker-{os.getpid()}"
    return Runner(repo, settings=settings, handlers=handlers, owner=owner)


def start(repo: Repository, settings: Settings, args: argparse.Namespace) -> None:
    """Start and run one execution in this process."""
    loaded = StateMachine.load(args.machine, repository=repo, settings=settings)
    machine = StateMachine(
        loaded.version_record,
        repository=repo,
        settings=settings,
        runner=_runner(repo, settings, args),
    )
    execution = machine.start(json.loads(args.input), name=args.name)
    print(json.dumps({"id": execution.id, "status": str(execution.status)}), flush=True)


def advance(repo: Repository, settings: Settings, args: argparse.Namespace) -> None:
    """Advance each execution after the starting gun; report which ones this process won."""
    runner = _runner(repo, settings, args)
    repo.get_execution(args.ids[0])  # connect before the start line
    print("ready", flush=True)
    sys.stdin.readline()
    for execution_id in args.ids:
        advanced = runner.advance(execution_id)
        report = {"id": execution_id, "owner": runner.owner, "advanced": advanced is not None}
        print(json.dumps(report), flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run one command."""
    args = _parser().parse_args(argv)
    settings = Settings(
        database_url=args.url, lease_seconds=args.lease, max_step_attempts=args.max_step_attempts
    )
    repo = Repository.from_settings(settings)
    try:
        {"start": start, "advance": advance}[args.command](repo, settings, args)
    finally:
        repo.close()


if __name__ == "__main__":
    main()
