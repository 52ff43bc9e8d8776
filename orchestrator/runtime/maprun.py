"""Distributed Map runs: child executions over the same runner, leases and queues.

When the interpreter enters a Distributed Map it returns :class:`~orchestrator.asl.RunMap`.
The runner hands it to :class:`MapRunner.start`, which:

1. reads every item once without keeping any (:func:`mapitems.count_children`): a
   malformed object fails the Map (``States.ItemReaderFailed``, naming the line)
   before a child exists;
2. stores the ItemProcessor as a version of a derived state machine named
   ``<machine>/<Label or state name>`` (AWS names Map Run children so), and opens a
   Map Run row keyed by the parent and the Map state's dispatch (path and token), so a
   parent resumed after a crash finds its run; a redriven parent reopens its last
   failed run instead (only failed, timed out and aborted children run again);
3. creates the children in chunks of ``map_children_per_chunk`` (one transaction per
   chunk, the run's position moving with it) and publishes each chunk at the parent's
   priority through the one publisher; children beyond MaxConcurrency are held;
4. parks the parent (WAITING, no worker held). The child that ends settles the run
   (:meth:`MapRunner.settle`): it releases held children into the room it left,
   fails the run past the tolerated failure (aborting children not started), or,
   being the last, ends it and wakes and publishes the parent. The sweeper settles
   running runs too, in case a worker died between a child's commit and its settle.
5. On the parent's resume, the ended run becomes the Map's result: the array of the
   children's outputs in item order (``States.DataLimitExceeded`` over the payload
   limit), or the ResultWriter's files and their manifest.

Without a publisher (``StateMachine.start`` in a process that is not a worker, the
CLI), the children run here, on a thread pool as wide as MaxConcurrency allows, and
the parent goes on in the same advance.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from orchestrator.asl import errors as asl_errors
from orchestrator.asl.errors import StatesError
from orchestrator.asl.interpreter import Event, RunMap, TaskFailed, TaskSucceeded
from orchestrator.runtime import mapitems
from orchestrator.store import Execution, MapChild, MapRun, MapRunDecision, NewMapRun
from orchestrator.types import TERMINAL_STATUSES, MapRunStatus

RUNNING, SUCCEEDED = MapRunStatus.RUNNING, MapRunStatus.SUCCEEDED
FAILED, ABORTED = MapRunStatus.FAILED, MapRunStatus.ABORTED

if TYPE_CHECKING:
    from orchestrator.runtime.runner import Runner

log = logging.getLogger("orchestrator.maprun")

#: Publishes execution ids at a priority (the distributed layer's ``Publisher``).
ChildPublisher = Callable[[Sequence[str], int], Any]

EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"
#: Threads that run a Map Run's children in-process at most (MaxConcurrency narrows it).
LOCAL_WORKERS = 8
#: Children read per page when a result is assembled or written.
_PAGE = 1000


def dispatch_key(command: RunMap) -> str:
    """One Map Run per dispatch of a Map state: frame path and token."""
    return f"{'/'.join(map(str, command.path))}:{command.token}"


def state_key(command: RunMap) -> str:
    """The Map state within the parent: frame path and name (a redrive looks it up)."""
    return f"{'/'.join(map(str, command.path))}:{command.state}"[:255]


def decide(run: MapRun) -> MapRunDecision:
    """What a Map Run's counts call for: fail past the tolerance, end, or release.

    Pure: called on the locked run row by ``Repository.map_runs.settle_map_run``.
    Without ToleratedFailureCount/Percentage no failure is tolerated (AWS's default).
    """
    if exceeded(run):
        return MapRunDecision(
            status=FAILED, error=asl_errors.EXCEED_TOLERATED_FAILURE_THRESHOLD, cause=EXCEEDED_CAUSE
        )
    if run.feeding_done and run.ended >= run.created_count:
        return MapRunDecision(status=SUCCEEDED)
    if run.max_concurrency:
        return MapRunDecision(
            release=max(0, run.max_concurrency - (run.released_count - run.ended))
        )
    return MapRunDecision()


def exceeded(run: MapRun) -> bool:
    """Whether a run's failures passed its tolerated count or percentage."""
    failures = run.failures
    count, percent = run.tolerated_failure_count, run.tolerated_failure_percentage
    if count is None and percent is None:
        return failures > 0
    over_count = count is not None and failures > count
    over_percent = percent is not None and run.total > 0 and failures * 100.0 / run.total > percent
    return over_count or over_percent


def derived_name(machine: str, label: str | None, state: str) -> str:
    """The derived state machine of a Map's children: ``<machine>/<label or state>``.

    ``/`` is not allowed in the names users give, so it never clashes with theirs.
    """
    tail = (label or state)[:40]
    return f"{machine[: 79 - len(tail)]}/{tail}"


def processor_definition(command: RunMap) -> dict[str, Any]:
    """The ItemProcessor as a state machine of its own (ProcessorConfig dropped)."""
    raw = {k: v for k, v in command.processor.raw.items() if k != "ProcessorConfig"}
    if command.processor.query_language != "JSONPath":
        raw.setdefault("QueryLanguage", command.processor.query_language)
    return raw


class MapRunner:
    """Carries out RunMap commands for one runner (see the module docstring)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.repo = runner.repo
        self.settings = runner.settings
        #: Publishes children and woken parents; None: run children in this process.
        self.publisher: ChildPublisher | None = None
        self._versions: dict[tuple[int, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    # -- the parent's side -------------------------------------------------------

    def start(
        self, execution: Execution, command: RunMap, keep_lease: Callable[[], Any]
    ) -> Event | None:
        """Open (or find) the Map Run of ``command``, feed it, and say what the parent does.

        Returns:
            The Map's outcome as an event to step with, or None: the parent parks
            until the last child wakes it.
        """
        key = dispatch_key(command)
        run = self.repo.map_runs.find_map_run(execution.id, key)
        if run is None:
            try:
                with keep_lease():  # reading a large object may outlast the lease
                    run = self._open(execution, command, key)
            except StatesError as exc:
                return TaskFailed(
                    path=command.path, token=command.token, error=exc.name, cause=exc.cause
                )
        if run.status == RUNNING and not run.feeding_done:
            with keep_lease():
                self._feed(run, command)
        run = self.settle(run.id)
        if run.status == RUNNING and self.publisher is None:
            with keep_lease():
                run = self._run_here(run)
        if run.status == RUNNING:
            return None
        return self.result(run, command)

    def _open(self, execution: Execution, command: RunMap, key: str) -> MapRun:
        total = mapitems.count_children(command, self.settings)
        _, version_id = self._version(execution, command)
        prior = self.repo.map_runs.last_map_run(execution.id, state_key(command))
        if (
            prior is not None
            and prior.status in (FAILED, ABORTED)
            and prior.parent_redrive_count < execution.redrive_count
            and prior.version_id == version_id
            and prior.feeding_done
        ):
            run = self.repo.map_runs.reopen_map_run(
                prior.id, dispatch_key=key, parent_redrive_count=execution.redrive_count
            )
            self._publish(self.repo.map_runs.claimable_children(run.id, limit=10**9), run.priority)
            return run
        return self.repo.map_runs.open_map_run(
            NewMapRun(
                parent_execution_id=execution.id,
                dispatch_key=key,
                state_key=state_key(command),
                state_name=command.state,
                label=command.label,
                version_id=version_id,
                execution_type=command.execution_type,
                priority=execution.priority,
                max_concurrency=command.max_concurrency,
                tolerated_failure_percentage=command.tolerated_failure_percentage,
                tolerated_failure_count=command.tolerated_failure_count,
                total=total,
                result_writer=command.writer,
                parent_redrive_count=execution.redrive_count,
            )
        )

    def _version(self, execution: Execution, command: RunMap) -> tuple[int, int]:
        """The derived machine and version of the ItemProcessor (cached per runner)."""
        cache_key = (execution.version_id, state_key(command))
        with self._lock:
            found = self._versions.get(cache_key)
        if found is not None:
            return found
        parent = self.repo.get_version_by_id(execution.version_id)
        name = derived_name(parent.state_machine_name, command.label, command.state)
        _, version, _ = self.repo.create_or_get_version(name, processor_definition(command))
        found = (version.state_machine_id, version.id)
        with self._lock:
            self._versions[cache_key] = found
        return found

    def _feed(self, run: MapRun, command: RunMap) -> None:
        """Create the children not created yet, a chunk per transaction, and publish them.

        The first chunk is published at once (the workers start); later ones are
        published when they fill 64 messages of ``executions_per_message`` ids, since a
        smaller publish spreads its ids thinner (one message costs what ten ids do).
        """
        machine_id, _ = self._version_of(run)
        size = self.settings.map_children_per_chunk
        full = 64 * self.settings.executions_per_message
        chunk: list[tuple[int, Any]] = []
        ready: list[str] = []
        first = True
        for index, data in enumerate(mapitems.child_inputs(command, self.settings)):
            if index < run.created_count:
                continue
            chunk.append((index, data))
            if len(chunk) >= size:
                ready += self.repo.map_runs.add_map_children(
                    run.id, chunk, state_machine_id=machine_id
                )
                chunk = []
                if first or len(ready) >= full:
                    self._publish(ready, run.priority)
                    ready, first = [], False
        if chunk:
            ready += self.repo.map_runs.add_map_children(run.id, chunk, state_machine_id=machine_id)
        self._publish(ready, run.priority)
        self.repo.map_runs.finish_feeding(run.id)

    def _version_of(self, run: MapRun) -> tuple[int, int]:
        version = self.repo.get_version_by_id(run.version_id)
        return version.state_machine_id, version.id

    def _publish(self, ids: Sequence[str], priority: int) -> None:
        if ids and self.publisher is not None:
            self.publisher(ids, priority)
        elif ids:
            self._local_ready.extend(ids)

    @property
    def _local_ready(self) -> list[str]:
        ready: list[str] | None = getattr(self._local, "ready", None)
        if ready is None:
            ready = self._local.ready = []
        return ready

    _local = threading.local()

    # -- settling ---------------------------------------------------------------

    def settle(self, map_run_id: str) -> MapRun:
        """Settle a run (release, fail or end it); publish what that made ready."""
        settled = self.repo.map_runs.settle_map_run(map_run_id, decide)
        run = settled.map_run
        self._publish(settled.released, run.priority)
        if settled.ended_now:
            log.info(
                "map run %s ended %s",
                run.id,
                run.status,
                extra={"action": "map_run.ended", "execution_id": run.parent_execution_id},
            )
            if self.publisher is not None:
                self.publisher([run.parent_execution_id], settled.parent_priority)
        return run

    def child_ended(self, execution: Execution) -> None:
        """After a child's final commit (a worker): settle its run."""
        if self.publisher is None or execution.map_run_id is None:
            return
        if execution.status not in TERMINAL_STATUSES:
            return
        self.settle(execution.map_run_id)

    # -- in this process ----------------------------------------------------------

    def _run_here(self, run: MapRun) -> MapRun:
        """Run the children in this process until the run ends (or only waits remain)."""
        claimable = self.repo.map_runs.claimable_children(run.id, limit=10**9)
        ready = deque(dict.fromkeys([*self._local_ready, *claimable]))
        width = min(LOCAL_WORKERS, run.max_concurrency or LOCAL_WORKERS)
        futures: set[Future[list[str]]] = set()
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="map-run") as pool:
            while True:
                while ready and len(futures) < 2 * width:
                    futures.add(pool.submit(self._advance_child, ready.popleft(), run.id))
                if not futures:
                    break
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    ready.extend(future.result() or ())
        self._local.ready = []
        stored = self.repo.map_runs.get_map_run(run.id)
        assert stored is not None
        return stored

    def _advance_child(self, child_id: str, map_run_id: str) -> list[str]:
        self.runner.advance(child_id)
        settled = self.repo.map_runs.settle_map_run(map_run_id, decide)
        return settled.released

    # -- the Map's result ------------------------------------------------------------

    def result(self, run: MapRun, command: RunMap) -> Event:
        """The event an ended run gives the parent's Map state."""
        try:
            if run.status == SUCCEEDED:
                return TaskSucceeded(
                    path=command.path, token=command.token, output=self._output(run)
                )
            if run.result_writer and run.result_writer.get("Resource"):
                self._write(run)
        except StatesError as exc:
            return TaskFailed(
                path=command.path, token=command.token, error=exc.name, cause=exc.cause
            )
        error = run.error or asl_errors.EXCEED_TOLERATED_FAILURE_THRESHOLD
        return TaskFailed(
            path=command.path, token=command.token, error=error, cause=run.cause or ""
        )

    def _output(self, run: MapRun) -> Any:
        writer = run.result_writer
        if writer and writer.get("Resource"):
            return self._write(run)
        transformation = (writer or {}).get("WriterConfig", {}).get("Transformation", "COMPACT")
        limit = self.repo.payload_max_bytes
        out: list[Any] = []
        size = 2
        for child in self.children(run.id):
            values = (
                mapitems.transform(child.output, transformation)
                if str(child.status) == "SUCCEEDED"
                else [{"Error": child.error, "Cause": child.cause}]  # a tolerated failure
            )
            for value in values:
                size += len(json.dumps(value, separators=(",", ":")).encode()) + 1
                if size > limit:
                    raise StatesError(
                        asl_errors.DATA_LIMIT_EXCEEDED,
                        f"The Map Run's result ({run.total} children) is larger than the "
                        f"payload limit of {limit} bytes; a ResultWriter writes it to S3",
                    )
                out.append(value)
        return out

    def _write(self, run: MapRun) -> Any:
        def results() -> Iterator[dict[str, Any]]:
            return (_result_entry(run, child) for child in self.children(run.id))

        return mapitems.write_results(self.settings, run.result_writer, run.id, results)

    def children(self, map_run_id: str) -> Iterator[MapChild]:
        """A run's children in item order, a page at a time."""
        after = -1
        while True:
            page = self.repo.map_runs.map_children(map_run_id, after=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].item_index


def _result_entry(run: MapRun, child: MapChild) -> dict[str, Any]:
    """One child as AWS's result files list it (Transformation NONE)."""
    entry: dict[str, Any] = {
        "ExecutionArn": child.id,
        "Name": child.name,
        "Input": json.dumps(child.input),
        "InputDetails": {"Included": True},
        "StartDate": child.started_at.isoformat(),
        "StateMachineArn": str(run.version_id),
        "Status": str(child.status),
        "RedriveCount": child.redrive_count,
    }
    if child.ended_at is not None:
        entry["StopDate"] = child.ended_at.isoformat()
    if str(child.status) == "SUCCEEDED":
        entry["Output"] = json.dumps(child.output)
        entry["OutputDetails"] = {"Included": True}
    elif child.error is not None or child.cause is not None:
        entry["Error"] = child.error
        entry["Cause"] = child.cause
    return entry


def settle_running(runner: Runner, publisher: ChildPublisher, *, limit: int = 100) -> int:
    """The sweeper's part: settle every running run whose children all exist.

    A worker that died between a child's commit and its settle left the run
    unsettled; this ends it (and publishes the parent) or releases held children.

    Returns:
        How many runs ended.
    """
    maps = MapRunner(runner)
    maps.publisher = publisher
    ended = 0
    for run in runner.repo.map_runs.list_map_runs(status=RUNNING, limit=limit):
        if run.feeding_done and maps.settle(run.id).status != RUNNING:
            ended += 1
    return ended


__all__ = [
    "ChildPublisher",
    "MapRunner",
    "decide",
    "derived_name",
    "dispatch_key",
    "exceeded",
    "settle_running",
    "state_key",
]
