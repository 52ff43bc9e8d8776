"""The batch leader: publishing rate and peak RSS, micro-batches beside plain batches (issue 7).

    .venv/bin/python bench/bulk.py [--inputs 1000000] [--micro 1000]
        [--modes raw,bulk-micro,bulk-plain,batch-plain] [--postgres-url URL]

Each mode runs in a child process of its own (so ``ru_maxrss`` is its own peak),
on a PostgreSQL database created for it and dropped afterwards
(``orchestrator_bench_bulk_<pid>_<mode>``). The inputs are one JSON-lines file of
``--inputs`` lines ``{"n": i, "payload": "<32 chars>"}``, written once.

Publishing: a *counting publisher that drops the messages* (it counts the ids,
publishes nothing), so the figures are the leader's own work: reading, checking,
inserting, beating, positions, counting, not Redis. (``bench/celery_baseline.py``
measures Redis publishing: about 4,700 messages/s pipelined, which is then the
ceiling of a real run.)

Modes:

- ``raw`` (the baseline): read the file line by line with ``json.loads`` and
  ``Repository.create_executions_bulk`` 1,000 rows at a time, then "publish": no
  batch row, no leader, no checks. The floor of any bulk start.
- ``bulk-micro``: ``execute_bulk`` from the file with ``micro_batch_size=--micro``.
  Each slice must end before the next goes out; the publisher stands in for
  instant workers by marking the slice SUCCEEDED with one UPDATE, so the leader
  finds it ended at its first look (``poll_interval`` 0.01 s). The time of that
  UPDATE is the workers', not the leader's: it is left out of the rate (and
  printed). The rate includes the file's check pass (the file is read twice).
- ``bulk-plain``: ``execute_bulk`` from the file, no micro-batches (slices of
  ``page_size`` 1,000, back to back).
- ``batch-plain``: ``execute_batch`` over ``--inputs`` SUCCEEDED source
  executions (seeded with ``INSERT ... SELECT generate_series``, not timed).

Rates are inputs per second of the mode's wall time; ratios are to ``raw``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_POSTGRES_URL, admin  # bench/ is not a package

MODES = ("raw", "bulk-micro", "bulk-plain", "batch-plain")
MACHINE: dict[str, Any] = {
    "StartAt": "Work",
    "States": {"Work": {"Type": "Pass", "End": True}},
}
CHUNK = 1000


# -- databases ------------------------------------------------------------------


@contextmanager
def throwaway_database(server: URL, name: str) -> Iterator[str]:
    """Create database ``name`` on ``server``; drop it on the way out. Yields its URL."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    admin(server, drop)
    admin(server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        admin(server, drop)


def write_inputs(path: Path, count: int) -> None:
    """The JSON-lines input file."""
    with path.open("w") as out:
        for n in range(count):
            out.write(json.dumps({"n": n, "payload": f"{n:032d}"}) + "\n")


# -- the child: one mode ------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CountingPublisher:
    """Counts the ids it is given and drops them; optionally ends them at once."""

    def __init__(self, repo: Any = None) -> None:
        self.published = 0
        self.calls = 0
        self.repo = repo  # set: mark each published slice SUCCEEDED (instant workers)
        self.worker_seconds = 0.0  # time spent standing in for the workers

    def __call__(self, ids: Sequence[str], priority: Any) -> int:
        self.calls += 1
        self.published += len(ids)
        if self.repo is not None:
            started = time.perf_counter()
            self._end(ids)
            self.worker_seconds += time.perf_counter() - started
        return len(ids)

    def _end(self, ids: Sequence[str]) -> None:
        with self.repo.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE executions SET status = 'SUCCEEDED', ended_at = now(), "
                    "updated_at = now() WHERE id = ANY(:ids)"
                ),
                {"ids": list(ids)},
            )


def run_mode(mode: str, url: str, path: Path, count: int, micro: int) -> dict[str, Any]:
    """Run one mode in this process; return its figures."""
    from orchestrator.batch import BatchOptions, execute_batch, execute_bulk
    from orchestrator.settings import Settings
    from orchestrator.statemachine import StateMachine
    from orchestrator.store import ExecutionFilter, NewExecution, Repository
    from orchestrator.store.migrations import upgrade
    from orchestrator.types import ExecutionStatus

    upgrade(url)
    settings = Settings(database_url=url)
    repo = Repository.from_settings(settings)
    machine = StateMachine.create("bench", MACHINE, repository=repo, settings=settings)
    if mode == "batch-plain":
        seed_sources(repo, machine.version_record.state_machine_id, count)
    rss_start = _rss_mb()
    publisher = CountingPublisher(repo if mode == "bulk-micro" else None)
    started = time.perf_counter()
    if mode == "raw":
        created = 0
        with path.open() as lines:
            while chunk := [json.loads(line) for _, line in zip(range(CHUNK), lines, strict=False)]:
                rows = [
                    NewExecution(name=f"raw-{created + i}", input=value)
                    for i, value in enumerate(chunk)
                ]
                ids = list(
                    repo.create_executions_bulk(machine.version_record, rows).created.values()
                )
                publisher(ids, "default")
                created += len(ids)
    elif mode == "batch-plain":
        flt = ExecutionFilter(state_machine="source", status=ExecutionStatus.SUCCEEDED)
        options = BatchOptions(name_prefix="chained")
        created = execute_batch(machine, flt, options, publisher=publisher).created
    else:
        micro_size = micro if mode == "bulk-micro" else None
        options = BatchOptions(name_prefix="bulk", micro_batch_size=micro_size, poll_interval=0.01)
        created = execute_bulk(machine, path, options, publisher=publisher).created
    elapsed = time.perf_counter() - started - publisher.worker_seconds
    repo.close()
    if created != count or publisher.published != count:
        raise SystemExit(f"{mode}: created {created}, published {publisher.published} of {count}")
    return {
        "mode": mode,
        "seconds": elapsed,
        "rate": count / elapsed,
        "rss_start_mb": rss_start,
        "rss_peak_mb": _rss_mb(),
        "publishes": publisher.calls,
        "worker_seconds": publisher.worker_seconds,
    }


def seed_sources(repo: Any, machine_id: int, count: int) -> None:
    """``count`` SUCCEEDED executions of a ``source`` machine, in one statement."""
    from orchestrator.statemachine import StateMachine

    source = StateMachine.create("source", MACHINE, repository=repo)
    version = source.version_record
    with repo.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO executions (id, state_machine_id, version_id, name, status, input, "
                "output, priority, started_at, updated_at, ended_at, revision, last_seq, "
                "wake_pending, redrive_count) "
                "SELECT gen_random_uuid()::text, :machine, :version, 'source-' || n, "
                "'SUCCEEDED', jsonb_build_object('n', n), "
                "jsonb_build_object('n', n, 'payload', lpad(n::text, 32, '0')), 0, "
                "now() - interval '1 hour', now(), now(), 1, 1, false, 0 "
                "FROM generate_series(0, :last) AS n"
            ),
            {"machine": version.state_machine_id, "version": version.id, "last": count - 1},
        )
        conn.execute(text("ANALYZE executions"))
    del machine_id


# -- the parent -------------------------------------------------------------------


def run_child(mode: str, url: str, path: Path, count: int, micro: int) -> dict[str, Any]:
    """Run one mode in a child process; return its figures."""
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--database-url",
        url,
        "--file",
        str(path),
        "--inputs",
        str(count),
        "--micro",
        str(micro),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(  # noqa: S603  # our interpreter, our arguments
        command, check=False, capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def report(results: list[dict[str, Any]], count: int, micro: int) -> None:
    baseline = next((r["rate"] for r in results if r["mode"] == "raw"), None)
    print(f"inputs: {count:,} JSON lines; micro-batches of {micro:,}; counting publisher")
    print(f"{'mode':<12} {'seconds':>8} {'inputs/s':>9} {'ratio':>6} {'RSS start':>10} {'peak':>8}")
    for r in results:
        ratio = f"{r['rate'] / baseline:.2f}" if baseline else "-"
        print(
            f"{r['mode']:<12} {r['seconds']:>8.1f} {r['rate']:>9,.0f} {ratio:>6} "
            f"{r['rss_start_mb']:>8.0f}MB {r['rss_peak_mb']:>6.0f}MB"
            + (f"  (+{r['worker_seconds']:.1f} s ending slices)" if r["worker_seconds"] else "")
        )
    print("ratio: the mode's rate / raw create_executions_bulk + counting publish (same run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs (executions)")
    parser.add_argument("--micro", type=int, default=1000, help="micro_batch_size")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server to use")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = run_mode(args.child, args.database_url, Path(args.file), args.inputs, args.micro)
        print(json.dumps(figures))
        return
    modes = [m for m in args.modes.split(",") if m]
    server = make_url(args.postgres_url)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inputs.jsonl"
        write_inputs(path, args.inputs)
        for mode in modes:
            name = f"orchestrator_bench_bulk_{os.getpid()}_{mode.replace('-', '_')}"
            with throwaway_database(server, name) as url:
                results.append(run_child(mode, url, path, args.inputs, args.micro))
            print(f"  {json.dumps(results[-1])}", file=sys.stderr)
    report(results, args.inputs, args.micro)


if __name__ == "__main__":
    main()
