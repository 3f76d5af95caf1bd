"""Run a block function over every block of a task, on dask.distributed or serially.

See :func:`run_blockwise`. The block function is either a plain callable ``f(block)`` or a
*block processor*: an object with ``process_block(block)`` and, optionally, ``setup()``,
which is called once per worker process before its first block (load a model there, not
per block). Processors and functions must be picklable (cloudpickle) to run on worker
processes; a processor's attributes are its (small, validated) configuration.

How blocks reach the workers (sized for 10^6-10^7 blocks with a flat client):

* Block ids are read lazily from the done store (:class:`~.markers.DoneMarkers`), a chunk of
  ids at a time; blocks are never all materialised, neither as objects nor as futures.
* Blocks go out in *batches*: one dask task runs a batch of consecutive blocks on a worker,
  building each :class:`~.task.Block` there from its id. A batch starts at one block and grows
  (at most 4x per finished batch) until it takes about :data:`TARGET_BATCH_SECONDS`, up to
  :data:`MAX_BATCH` blocks: a network's multi-second blocks go one per task, no-op blocks
  thousands per task, so the scheduler's per-task cost (docs/performance.md) is paid once
  per batch.
* At most ``2 x worker threads`` batches are in flight (a window: one running and one queued
  per thread); a new one is submitted as each finishes.
* The client marks a batch's blocks done when its result arrives (one writer of the done
  store). A run killed with ``kill -9`` therefore redoes at most the blocks in flight.
* A failing block is retried ``max_retries`` times in place; a batch whose worker died is
  split into single-block tasks (so one killer block fails alone), which dask retries
  ``max_retries`` times. A batch whose future was cancelled (e.g. the connection to the
  scheduler was lost) is resubmitted up to ``max_retries`` times and then reported failed:
  every block is either marked done or counted as failed, never dropped.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import SynfulError
from .markers import DoneMarkers
from .task import BlockwiseTask

logger = logging.getLogger(__name__)

SCHEDULERS = ("serial", "threads", "processes")
#: a batch of blocks grows until one task takes about this long
TARGET_BATCH_SECONDS = 0.2
#: the most blocks in one task
MAX_BATCH = 10_000
#: batches in flight per worker thread
BATCHES_PER_THREAD = 2
#: the done store is flushed to disk at least this often (seconds)
FLUSH_SECONDS = 5.0
#: failures kept for the error message (the rest are only counted)
KEPT_FAILURES = 20

# Per-process cache of set-up processors, keyed by a token unique to one run_blockwise call.
_PROCESSORS: dict[str, Any] = {}
_PROCESSORS_LOCK = threading.Lock()


class BlockwiseError(SynfulError):
    """Some blocks failed after all retries (the others are marked done: rerun to resume)."""


@dataclasses.dataclass(frozen=True)
class BlockwiseResult:
    """What a run did.

    Args:
        num_blocks: blocks in the task.
        skipped: blocks already done before this run (resumed).
        processed: blocks processed by this run.
    """

    num_blocks: int
    skipped: int
    processed: int


def max_blocks_in_flight(threads: int) -> int:
    """The most blocks a run on ``threads`` worker threads has handed out and not yet marked
    done: what a run killed with ``kill -9`` may have to redo."""
    return max(1, BATCHES_PER_THREAD * max(1, threads)) * MAX_BATCH


# --- the worker side ------------------------------------------------------------------------


def _ready_processor(token: str, processor):
    """The processor for this run in this process, unpickled and set up on first use."""
    with _PROCESSORS_LOCK:
        ready = _PROCESSORS.get(token)
        if ready is None:
            if isinstance(processor, bytes):
                import cloudpickle

                processor = cloudpickle.loads(processor)
            setup = getattr(processor, "setup", None)
            if callable(setup):
                setup()
            _PROCESSORS[token] = ready = processor
    return ready


def _forget_processor(token: str) -> None:
    with _PROCESSORS_LOCK:
        processor = _PROCESSORS.pop(token, None)
    teardown = getattr(processor, "teardown", None)
    if callable(teardown):
        teardown()


@dataclasses.dataclass(frozen=True)
class _Failure:
    block: str
    error: str


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_batch(token: str, processor, task: BlockwiseTask, ids, max_retries: int,
               on_done: Callable[[int], None] | None = None):  # fmt: skip
    """Run the blocks ``ids`` (a ``range`` or an int array), each retried ``max_retries``
    times when it raises.

    Returns:
        ``(failed, failures, seconds)``: the ids that failed every attempt, up to
        :data:`KEPT_FAILURES` of their descriptions, and the seconds the batch took.
    """
    ready = _ready_processor(token, processor)
    function = getattr(ready, "process_block", ready)
    failed: list[int] = []
    failures: list[_Failure] = []
    start = time.perf_counter()
    for block in task.blocks(ids):
        for attempt in range(max_retries + 1):
            try:
                function(block)
            except Exception as exc:
                logger.warning("%s failed (attempt %d): %r", block, attempt + 1, exc)
                if attempt == max_retries:
                    failed.append(block.block_id)
                    if len(failures) < KEPT_FAILURES:
                        failures.append(_Failure(str(block), _describe(exc)))
            else:
                if on_done is not None:
                    on_done(block.block_id)
                break
    return failed, failures, time.perf_counter() - start


# --- the client side ------------------------------------------------------------------------


def _compact(ids: np.ndarray):
    """A ``range`` for consecutive ids (pickles in a few bytes), else the array."""
    if len(ids) and int(ids[-1]) - int(ids[0]) + 1 == len(ids):
        return range(int(ids[0]), int(ids[-1]) + 1)
    return ids


class _Batches:
    """Hands out the ids of blocks not yet done, in id order, in batches of a growing size;
    batches handed back (lost with a worker, cancelled) go out again first."""

    def __init__(self, markers: DoneMarkers):
        self._chunks = markers.todo()
        self._buffer = np.empty(0, dtype=np.int64)
        self._again: collections.deque = collections.deque()
        self._seconds_per_block: float | None = None
        self._size = 1

    def again(self, ids, lost: int) -> None:
        self._again.append((ids, lost))

    def finished(self, blocks: int, seconds: float) -> None:
        """Learn from a finished batch how long a block takes."""
        if blocks <= 0:
            return
        rate = seconds / blocks
        old = self._seconds_per_block
        self._seconds_per_block = rate if old is None else 0.5 * old + 0.5 * rate
        wanted = TARGET_BATCH_SECONDS / max(self._seconds_per_block, 1e-7)
        self._size = int(max(1, min(MAX_BATCH, 4 * self._size, wanted)))

    def take(self) -> tuple[Any, int] | None:
        """The next batch: ``(ids, times lost)``, or None when all are handed out."""
        if self._again:
            return self._again.popleft()
        while len(self._buffer) < self._size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer = np.concatenate([self._buffer, chunk])
        if not len(self._buffer):
            return None
        ids, self._buffer = self._buffer[: self._size], self._buffer[self._size :]
        return _compact(ids), 0


class _Tally:
    """Marks finished blocks, counts failures, flushes and shows progress."""

    def __init__(self, markers: DoneMarkers, bar):
        self.markers = markers
        self.bar = bar
        self.failed = 0
        self.failures: list[_Failure] = []
        self._flushed = time.monotonic()

    def fail(self, count: int, failures) -> None:
        self.failed += count
        self.failures.extend(failures[: max(0, KEPT_FAILURES - len(self.failures))])

    def finished(self, ids, failed, failures) -> None:
        """A batch returned: mark its blocks done except the failed ones."""
        if failed:
            ids = np.setdiff1d(np.asarray(ids, dtype=np.int64), np.asarray(failed, dtype=np.int64))
            self.fail(len(failed), failures)
        self.markers.mark(ids)
        self.bar.update(len(ids) + len(failed))
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.markers.flush()
            self._flushed = time.monotonic()


def _run_serial(task, processor, batches: _Batches, tally: _Tally, token, max_retries) -> None:
    try:
        while (batch := batches.take()) is not None:
            ids, _ = batch
            failed, failures, seconds = _run_batch(
                token, processor, task, ids, max_retries, on_done=tally.markers.mark
            )
            tally.fail(len(failed), failures)
            tally.bar.update(len(ids))
            batches.finished(len(ids), seconds)
    finally:
        tally.markers.flush()
        _forget_processor(token)


def _threads(client, fallback: int) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:
        return max(1, fallback)


def _run_distributed(task, processor, batches: _Batches, tally: _Tally, token, max_retries,
                     client, workers) -> None:  # fmt: skip
    import cloudpickle
    import distributed

    payload = cloudpickle.dumps(processor)  # pickled once, unpickled once per worker process
    pending: dict[str, tuple[Any, Any, int]] = {}  # key -> (future, ids, times lost)
    futures = distributed.as_completed()
    threads, counted = _threads(client, workers), time.monotonic()
    number = 0

    def fill() -> None:
        nonlocal number
        while len(pending) < BATCHES_PER_THREAD * threads:
            batch = batches.take()
            if batch is None:
                return
            ids, _ = batch
            number += 1
            future = client.submit(
                _run_batch, token, payload, task, ids, max_retries,
                key=f"synful-blocks-{token}-{number}", pure=False,
                retries=max_retries if len(ids) == 1 else 0,
            )  # fmt: skip
            pending[future.key] = (future, *batch)
            futures.add(future)

    try:
        fill()
        for future in futures:
            _, ids, lost = pending.pop(future.key)
            try:
                failed, failures, seconds = future.result()
            except CancelledError as exc:  # e.g. the client lost the scheduler: never dropped
                reason = _describe(exc)
                logger.warning("%d blocks were cancelled by dask (%s)", len(ids), reason)
                if lost < max_retries:
                    batches.again(ids, lost + 1)
                else:
                    first = task.block_by_id(int(ids[0]))
                    tally.fail(len(ids), [_Failure(str(first), f"cancelled by dask: {reason}")])
                    tally.bar.update(len(ids))
            except Exception as exc:  # the task itself failed: its worker died
                if len(ids) > 1:  # find the block that kills workers: run them one by one
                    logger.warning("a batch of %d blocks failed (%r); retrying them one by one",
                                   len(ids), exc)  # fmt: skip
                    for block_id in ids:
                        batches.again(range(int(block_id), int(block_id) + 1), 0)
                else:
                    first = task.block_by_id(int(ids[0]))
                    tally.fail(1, [_Failure(str(first), _describe(exc))])
                    tally.bar.update(1)
            else:
                tally.finished(ids, failed, failures)
                batches.finished(len(ids), seconds)
            future.release()
            if time.monotonic() - counted > FLUSH_SECONDS:  # workers may come and go
                threads, counted = _threads(client, workers), time.monotonic()
            fill()
    finally:
        tally.markers.flush()
        if pending:
            with contextlib.suppress(Exception):
                client.cancel([future for future, _, _ in pending.values()])
        with contextlib.suppress(Exception):
            client.run(_forget_processor, token)


#: environment variable: memory per local dask worker (e.g. ``4GiB``), instead of the share
WORKER_MEMORY_VARIABLE = "SYNFUL_WORKER_MEMORY"
# a local worker is restarted (by its nanny) at 95% of its limit; it never spills or pauses:
# its memory is a model and a block, not results that could go to disk, and a worker paused
# for good would stall the run
_LOCAL_MEMORY_CONFIG = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
}


def worker_memory_limit(workers: int, processes: bool = True) -> int:
    """Bytes of memory each worker of a local cluster may use.

    ``$SYNFUL_WORKER_MEMORY`` when set (``4GiB``, ``500MB``, bytes); else the memory of this
    machine or job (cgroup) divided among ``workers`` worker processes. Workers that are
    threads of this process share its memory, so each gets all of it.
    """
    from dask.utils import parse_bytes
    from distributed.system import MEMORY_LIMIT

    given = os.environ.get(WORKER_MEMORY_VARIABLE, "").strip()
    if given:
        try:
            limit = parse_bytes(given)
        except (ValueError, TypeError):
            limit = 0
        if limit <= 0:
            raise SynfulError(
                WORKER_MEMORY_VARIABLE, f"expected a size such as 4GiB or 500MB, got {given!r}"
            )
        return int(limit)
    return int(MEMORY_LIMIT // max(1, workers)) if processes else int(MEMORY_LIMIT)


def _check_tls(scheduler) -> None:
    """A ``tls://`` scheduler (address or file) needs the CA and a client certificate."""
    import distributed

    address = str(scheduler)
    if address.endswith(".json"):
        try:
            with open(address) as f:
                address = str(json.load(f).get("address", ""))
        except (OSError, ValueError, AttributeError):
            return  # reported when connecting
    if not address.startswith("tls://"):
        return
    security = distributed.Security()
    if not (security.tls_ca_file and security.tls_client_cert):
        raise SynfulError(
            str(scheduler),
            "a tls:// scheduler needs the CA and a client certificate in the dask configuration "
            "(distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and .key; see "
            "docs/reliability.md)",
        )


@contextlib.contextmanager
def dask_client(workers: int, scheduler) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``; closes what it created.

    Args:
        workers: number of local workers (ignored for an existing cluster).
        scheduler: ``"threads"`` (a LocalCluster of threads in this process), ``"processes"``
            or ``None`` (a LocalCluster of processes), a
            :class:`~.clusters.LocalGpus` (a LocalCluster of processes, each worker with its
            own ``CUDA_VISIBLE_DEVICES``), a :class:`~.clusters.ClusterConfig` (a new
            dask-jobqueue cluster of batch jobs, cancelled on exit), a scheduler address
            (``tcp://host:8786``, ``tls://host:8786`` with the certificates in the dask
            configuration), a scheduler file (``*.json``, as written by
            ``dask scheduler --scheduler-file``), or an existing ``distributed.Client``.

    A local cluster's workers get :func:`worker_memory_limit` each: a worker process that
    exceeds it is restarted and its block retried, then reported as failed.
    """
    import dask
    import distributed

    from . import clusters

    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if isinstance(scheduler, clusters.ClusterConfig):
        with clusters.jobqueue_client(scheduler) as client:
            yield client
        return
    gpus = scheduler.devices if isinstance(scheduler, clusters.LocalGpus) else None
    if gpus is not None or scheduler in (None, "threads", "processes"):
        processes = scheduler != "threads"
        memory_limit = worker_memory_limit(workers, processes)
        with dask.config.set(_LOCAL_MEMORY_CONFIG):
            cluster = distributed.LocalCluster(
                n_workers=0 if gpus else workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
                memory_limit=memory_limit,
                silence_logs=logging.WARNING,
            )
            if gpus:  # one CUDA_VISIBLE_DEVICES per worker, set before its process starts
                clusters.place_gpu_workers(cluster, clusters.worker_gpus(workers, gpus))
        with cluster, distributed.Client(cluster) as client:
            yield client
        return
    _check_tls(scheduler)
    try:
        if str(scheduler).endswith(".json"):
            if not os.path.exists(scheduler):
                raise SynfulError(str(scheduler), "no such dask scheduler file")
            client = distributed.Client(scheduler_file=str(scheduler), timeout="30s")
        else:
            client = distributed.Client(str(scheduler), timeout="30s")
    except OSError as exc:
        raise SynfulError(str(scheduler), f"cannot connect to the dask scheduler ({exc})") from None
    with client:
        yield client


def _failure_error(done_dir, tally: _Tally, total: int, attempts: int) -> BlockwiseError:
    first = tally.failures[0] if tally.failures else _Failure("?", "?")
    return BlockwiseError(
        done_dir,
        f"{tally.failed} of {total} blocks failed after {attempts} attempt(s); "
        f"first: {first.block}: {first.error} (finished blocks are marked done: rerun to "
        "resume)",
    )


def run_blockwise(
    task: BlockwiseTask,
    process_block,
    *,
    done_dir: str | os.PathLike,
    workers: int = 1,
    scheduler=None,
    progress: bool = True,
    max_retries: int = 2,
    recipe: dict | None = None,
    restart: bool = False,
    desc: str = "blocks",
) -> BlockwiseResult:
    """Process every block of ``task`` that is not yet marked done in ``done_dir``.

    A block is marked done once its function has returned (its data is written); a rerun
    skips done blocks, so a killed or failed run resumes where it stopped (after ``kill -9``
    it redoes at most the blocks that were in flight, :func:`max_blocks_in_flight`). The
    function returns only when every block is done: declare your output complete after it.

    Args:
        task: the blocks to process.
        process_block: ``f(block)`` or an object with ``process_block(block)`` and optional
            ``setup()`` (once per worker process) and ``teardown()``.
        done_dir: directory of the done store (:class:`~.markers.DoneMarkers`), on a file
            system this process sees (workers never write it).
        workers: number of local workers (at most one per block to do).
        scheduler: ``None`` (serial in this process when ``workers == 1``, else a LocalCluster
            of worker processes), ``"serial"``, ``"threads"``, ``"processes"``, a dask
            scheduler address or scheduler file (``*.json``), or a ``distributed.Client``.
        progress: show a tqdm bar of blocks done.
        max_retries: how often a failing block is retried before the run fails.
        recipe: JSON-able identity of what the blocks are made from (inputs by content,
            settings), stored with the done store: a different task or recipe never reuses
            its done blocks.
        restart: discard done blocks of another task or recipe instead of raising.
        desc: label of the progress bar.

    Returns:
        a :class:`BlockwiseResult`.

    Raises:
        BlockwiseError: when some blocks still fail after ``max_retries`` retries (all other
            blocks are processed and marked first).
        SynfulError: when ``done_dir`` holds the done blocks of another task or recipe (one
            line naming what differs; ``restart=True`` starts fresh), is not a done
            directory, or is in use by another run.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if scheduler is not None and isinstance(scheduler, str) and scheduler not in SCHEDULERS:
        if ":" not in scheduler and not scheduler.endswith(".json"):
            raise SynfulError(
                scheduler, f"unknown scheduler: expected one of {SCHEDULERS} or an address"
            )
    markers = DoneMarkers(done_dir)
    with markers.locked():
        try:
            skipped = markers.bind(task, recipe, restart=restart)
            return _run(task, process_block, markers, skipped, workers, scheduler, progress,
                        max_retries, desc)  # fmt: skip
        finally:
            markers.close()


def _run(task, process_block, markers, skipped, workers, scheduler, progress, max_retries,
         desc) -> BlockwiseResult:  # fmt: skip
    todo = task.num_blocks - skipped
    if skipped:
        logger.info("%d of %d blocks already done, resuming", skipped, task.num_blocks)
    if scheduler in (None, "threads", "processes"):
        # a local cluster never gets more workers than there are blocks to do
        workers = max(1, min(workers, todo))
    serial = scheduler == "serial" or (scheduler is None and workers == 1)
    token = uuid.uuid4().hex
    bar = tqdm(
        total=task.num_blocks, initial=skipped, disable=not progress, unit="block", desc=desc
    )
    batches = _Batches(markers)
    with bar:
        tally = _Tally(markers, bar)
        if not todo:
            pass
        elif serial:
            _run_serial(task, process_block, batches, tally, token, max_retries)
        else:
            with dask_client(workers, scheduler) as client:
                _run_distributed(
                    task, process_block, batches, tally, token, max_retries, client, workers
                )
    if tally.failed:
        raise _failure_error(markers.done_dir, tally, task.num_blocks, max_retries + 1)
    missing = task.num_blocks - markers.count()
    if missing:  # every block is marked done or counted as failed: this would be a bug
        raise BlockwiseError(
            markers.done_dir,
            f"{missing} of {task.num_blocks} blocks are neither done nor failed (rerun to resume)",
        )
    return BlockwiseResult(task.num_blocks, skipped, todo)
