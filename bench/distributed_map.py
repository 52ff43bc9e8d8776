"""Distributed Map throughput against a raw Celery drain, and the Map Run leader's memory.

    .venv/bin/python bench/distributed_map.py [--items 100000] [--rss-items 1000000]
        [--redis-db 14] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

In one run, on the local PostgreSQL and Redis:

(a) raw Celery: ``--items`` no-op tasks drained by one prefork worker ``-c 2``
    (``celery_baseline.measure_drain``: published first, then released at once);
(b) a Distributed Map of ``--items`` EXPRESS children (an ItemProcessor of one Pass
    state: a no-op) on one worker ``-c 2``, from ``start_async`` of the parent to the
    parent SUCCEEDED: reading and checking the items, creating and publishing the
    children (``ORCHESTRATOR_EXECUTIONS_PER_MESSAGE`` = 100 children per message),
    running them, settling the Map Run, and the result array (the payload limit is
    raised to 16 MiB for it);
(c) the same with STANDARD children (history and checkpoints per child);
(d) peak RSS of the process that leads a Map Run (reads the items, creates the
    children; here with a publisher that drops the ids, so only the leader's work
    counts) over ``--rss-items`` items read from a JSONL file (``file://``). The goal
    is under 256 MB for 1,000,000 items.

Prints items/s and the ratio to (a) measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import _common  # noqa: E402
import celery_baseline  # noqa: E402

PAYLOAD = 16 * 1024 * 1024
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def machine(kind: str, **fields: Any) -> dict[str, Any]:
    """One Distributed Map whose children run one Pass state."""
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": kind}, **PASS}
    state = {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}
    return {"StartAt": "Fan", "States": {"Fan": state}}


# -- (b), (c): a Map Run on a worker -----------------------------------------------------


@contextlib.contextmanager
def map_worker(broker_url: str, database_url: str, log: Path) -> Iterator[Any]:
    """A prefork worker ``-c 2`` on the orchestrator's queues."""
    import subprocess

    command = [
        sys.executable, "-m", "celery", "-A", "orchestrator", "worker",
        "-Q", "critical,default,low", "-P", "prefork", "-c", "2", "-l", "WARNING",
        "-n", f"dmap-{uuid.uuid4().hex[:6]}@%h",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORCHESTRATOR_")}
    env.update(
        ORCHESTRATOR_BROKER_URL=broker_url,
        ORCHESTRATOR_DATABASE_URL=database_url,
        ORCHESTRATOR_EXECUTIONS_PER_MESSAGE="100",
        ORCHESTRATOR_MAP_CHILDREN_PER_CHUNK=os.environ.get("DMAP_CHUNK", "500"),
        ORCHESTRATOR_PAYLOAD_MAX_BYTES=str(PAYLOAD),
        PYTHONPATH=str(REPO_ROOT),
    )
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our arguments
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        _common.stop(process)


def measure_map(server: str, broker_url: str, items: int, kind: str) -> float:
    """Items/s of a Distributed Map of ``items`` ``kind`` children, start to parent end."""
    from orchestrator import Orchestrator
    from orchestrator.settings import Settings

    with _common.bench_database(server, "dmap") as url:
        settings = Settings(database_url=url, broker_url=broker_url, payload_max_bytes=PAYLOAD)
        client = Orchestrator(settings)
        sm = client.create_state_machine(f"bench-{kind.lower()}", machine(kind))
        data = list(range(items))
        log = Path(tempfile.gettempdir()) / f"dmap-bench-{os.getpid()}-{kind}.log"
        with map_worker(broker_url, url, log) as process:
            # A warm-up map: the worker is started, forked and connected.
            warm = sm.start_async([0, 1], name="warm-up")
            _wait(client, warm.id, process, 120)
            start = time.perf_counter()
            parent = sm.start_async(data, name="measured")
            done = _wait(client, parent.id, process, 3600)
            seconds = time.perf_counter() - start
        if done.status != "SUCCEEDED" or done.output != data:
            raise RuntimeError(f"the map ended {done.status}: {done.error} {done.cause}")
        client.repository.close()
    return items / seconds


def _wait(client: Any, execution_id: str, process: Any, timeout: float) -> Any:
    handle = client.execution(execution_id)
    deadline = time.monotonic() + timeout
    swept = time.monotonic()
    while True:
        execution = handle.describe()
        if execution.status.is_terminal:
            return execution
        if process.poll() is not None:
            raise RuntimeError("the worker exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the map did not end within {timeout}s")
        if time.monotonic() - swept > 5:  # as beat would (a settle lost with a worker)
            client.sweep()
            swept = time.monotonic()
        time.sleep(0.05)


# -- (d): the leader's memory ---------------------------------------------------------------


def _lead(url: str, root: str, items: int, out: Any) -> None:
    """In a fresh process: lead a Map Run over a JSONL file; report peak RSS (KiB)."""
    from orchestrator import Orchestrator
    from orchestrator.settings import Settings

    settings = Settings(database_url=url, map_object_store=f"file://{root}/")
    client = Orchestrator(settings)
    published = [0]

    def drop(ids: Any, priority: int) -> int:
        published[0] += len(ids)
        return len(ids)

    client.runner.map_runs.publisher = drop
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSONL"},
        "Parameters": {"Bucket": "b", "Key": "items.jsonl"},
    }
    sm = client.create_state_machine("rss", machine("EXPRESS", ItemReader=reader))
    parked = sm.start({})
    run = client.map_runs()[0]
    out.put((parked.status, run.created_count, published[0], _peak_kib()))


def _peak_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_rss(server: str, items: int) -> tuple[float, float]:
    """Peak RSS (MiB) of a leader over ``items`` JSONL items, and of an idle client."""
    with tempfile.TemporaryDirectory() as root, _common.bench_database(server, "dmap") as url:
        (Path(root) / "b").mkdir()
        with (Path(root) / "b" / "items.jsonl").open("w") as handle:
            for n in range(items):
                handle.write(json.dumps({"n": n, "pad": "x" * 40}) + "\n")
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        process = context.Process(target=_lead, args=(url, root, items, queue))
        process.start()
        status, created, published, peak = queue.get(timeout=7200)
        process.join()
        if (str(status), created, published) != ("WAITING", items, items):
            raise RuntimeError(f"leader: {status}, {created} created, {published} published")
        idle = context.Process(target=_idle, args=(queue,))
        idle.start()
        base = queue.get(timeout=120)
        idle.join()
    return peak / 1024, base / 1024


def _idle(out: Any) -> None:
    from orchestrator import Orchestrator  # noqa: F401 - the same imports, nothing led

    out.put(_peak_kib())


def main(argv: list[str] | None = None) -> None:
    """Measure (a)-(d); print figures and same-run ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rss-items", type=int, default=1_000_000)
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: a,b,c,d")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    from orchestrator.celery import create_app
    from orchestrator.settings import Settings

    url = f"redis://127.0.0.1:6379/{args.redis_db}"
    figures: dict[str, float] = {}
    with _common.claimed_db(args.redis_db) as client:
        app = create_app(Settings(broker_url=url), set_as_current=False)
        try:
            if "a" not in skip:
                figures["a"] = celery_baseline.measure_drain(app, client, args.items, events=False)
        finally:
            app.close()
        client.flushdb()
        client.set(_common.LOCK_KEY, "bench", ex=600)
        for part, kind in (("b", "EXPRESS"), ("c", "STANDARD")):
            if part not in skip:
                figures[part] = measure_map(args.postgres, url, args.items, kind)
                client.flushdb()
                client.set(_common.LOCK_KEY, "bench", ex=600)
    print(f"Distributed Map, {args.items} items, one worker -c 2, local PostgreSQL and Redis")
    base = figures.get("a")
    names = {
        "a": "raw Celery no-op drain",
        "b": "Distributed Map, EXPRESS children",
        "c": "Distributed Map, STANDARD children",
    }
    for part, label in names.items():
        if part in figures:
            ratio = f"{figures[part] / base:5.2f}x" if base else "  -  "
            print(f"({part}) {label:38s} {figures[part]:9.0f} items/s  {ratio}")
    if "d" not in skip:
        peak, idle = measure_rss(args.postgres, args.rss_items)
        print(
            f"(d) Map Run leader over {args.rss_items} JSONL items: peak RSS {peak:.0f} MiB "
            f"(an idle client: {idle:.0f} MiB; goal < 256 MiB)"
        )


if __name__ == "__main__":
    main()
