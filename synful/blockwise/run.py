"""Run a block function over every block of a task, on dask.distributed or serially.

See :func:`run_blockwise`. The block function is either a plain callable ``f(block)`` or a
*block processor*: an object with ``process_block(block)`` and, optionally, ``setup()``,
which is called once per worker process before its first block (load a model there, not
per block). Processors and functions must be picklable (cloudpickle) to run on worker
processes; a processor's attributes are its (small, validated) configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from tqdm.auto import tqdm

from ..errors import SynfulError
from .markers import DoneMarkers
from .task import Block, BlockwiseTask

logger = logging.getLogger(__name__)

SCHEDULERS = ("serial", "threads", "processes")

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


def _ready_processor(token: str, processor):
    """The processor for this run in this process, set up on first use."""
    with _PROCESSORS_LOCK:
        ready = _PROCESSORS.get(token)
        if ready is None:
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


def _process_and_mark(token: str, processor, done_dir: str, block: Block) -> int:
    """Worker side: run one block, then (and only then) write its done marker."""
    ready = _ready_processor(token, processor)
    function: Callable[[Block], Any] = getattr(ready, "process_block", ready)
    start = time.perf_counter()
    function(block)
    DoneMarkers(done_dir).mark_done(block, seconds=time.perf_counter() - start)
    return block.block_id


def _failure_error(done_dir, failures: list[tuple[Block, BaseException]], total: int, attempts: int):
    block, exc = failures[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return BlockwiseError(
        done_dir,
        f"{len(failures)} of {total} blocks failed after {attempts} attempt(s); "
        f"first: {block}: {type(exc).__name__}: {text} (finished blocks are marked done: "
        "rerun to resume)",
    )


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
            or ``None`` (a LocalCluster of processes), a scheduler address
            (``tcp://host:8786``, ``tls://host:8786`` with the certificates in the dask
            configuration), a scheduler file (``*.json``, as written by
            ``dask scheduler --scheduler-file``), or an existing ``distributed.Client``.

    A local cluster's workers get :func:`worker_memory_limit` each: a worker process that
    exceeds it is restarted and its block retried, then reported as failed.
    """
    import dask
    import distributed

    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler in (None, "threads", "processes"):
        processes = scheduler != "threads"
        memory_limit = worker_memory_limit(workers, processes)
        with dask.config.set(_LOCAL_MEMORY_CONFIG):
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
                memory_limit=memory_limit,
                silence_logs=logging.WARNING,
            )
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


def run_blockwise(
    task: BlockwiseTask,
    process_block,
    *,
    done_dir: str | os.PathLike,
    workers: int = 1,
    scheduler=None,
    progress: bool = True,
    max_retries: int = 2,
    tag: dict | None = None,
    desc: str = "blocks",
) -> BlockwiseResult:
    """Process every block of ``task`` that is not yet marked done in ``done_dir``.

    A block is marked done on the worker right after ``process_block`` returns for it; a
    rerun skips done blocks, so a killed or failed run resumes where it stopped. When every
    block is done the ``complete`` marker is written (:meth:`DoneMarkers.is_complete`);
    declare your output complete only after this function returns.

    Args:
        task: the blocks to process.
        process_block: ``f(block)`` or an object with ``process_block(block)`` and optional
            ``setup()`` (once per worker process) and ``teardown()``.
        done_dir: directory for the done markers (shared by all workers).
        workers: number of local workers (at most one per block to do).
        scheduler: ``None`` (serial in this process when ``workers == 1``, else a LocalCluster
            of worker processes), ``"serial"``, ``"threads"``, ``"processes"``, a dask
            scheduler address or scheduler file (``*.json``), or a ``distributed.Client``.
        progress: show a tqdm bar of blocks done.
        max_retries: how often a failing block is retried before the run fails.
        tag: extra identity stored with the markers (see :meth:`DoneMarkers.bind`).
        desc: label of the progress bar.

    Returns:
        a :class:`BlockwiseResult`.

    Raises:
        BlockwiseError: when some blocks still fail after ``max_retries`` retries (all other
            blocks are processed and marked first).
        SynfulError: when ``done_dir`` holds markers of another task.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if scheduler is not None and isinstance(scheduler, str) and scheduler not in SCHEDULERS:
        if ":" not in scheduler and not scheduler.endswith(".json"):
            raise SynfulError(
                scheduler, f"unknown scheduler: expected one of {SCHEDULERS} or an address"
            )
    markers = DoneMarkers(done_dir)
    markers.bind(task, tag)
    done = markers.done_ids()
    todo = [block for block in task.blocks() if block.block_id not in done]
    skipped = task.num_blocks - len(todo)
    if skipped:
        logger.info("%d of %d blocks already done, resuming", skipped, task.num_blocks)
    token = uuid.uuid4().hex
    done_dir = str(markers.done_dir)
    failures: list[tuple[Block, BaseException]] = []
    bar = tqdm(
        total=task.num_blocks, initial=skipped, disable=not progress, unit="block", desc=desc
    )
    if scheduler in (None, "threads", "processes"):
        # a local cluster never gets more workers than there are blocks to do
        workers = max(1, min(workers, len(todo)))
    serial = scheduler == "serial" or (scheduler is None and workers == 1)
    with bar:
        if not todo:
            pass
        elif serial:
            try:
                for block in todo:
                    for attempt in range(max_retries + 1):
                        try:
                            _process_and_mark(token, process_block, done_dir, block)
                            break
                        except Exception as exc:
                            logger.warning("%s failed (attempt %d): %r", block, attempt + 1, exc)
                            if attempt == max_retries:
                                failures.append((block, exc))
                    bar.update(1)
            finally:
                _forget_processor(token)
        else:
            failures = _run_distributed(
                todo, process_block, token, done_dir, workers, scheduler, max_retries, bar
            )
    if failures:
        raise _failure_error(done_dir, failures, task.num_blocks, max_retries + 1)
    markers.mark_complete(task)
    return BlockwiseResult(task.num_blocks, skipped, len(todo))


def _run_distributed(todo, process_block, token, done_dir, workers, scheduler, max_retries, bar):
    import distributed

    failures = []
    with dask_client(workers, scheduler) as client:
        blocks_by_key = {}
        futures = []
        for block in todo:
            future = client.submit(
                _process_and_mark,
                token,
                process_block,
                done_dir,
                block,
                key=f"synful-block-{block.block_id}-{token}",
                retries=max_retries,
                pure=False,
            )
            blocks_by_key[future.key] = block
            futures.append(future)
        try:
            for future in distributed.as_completed(futures):
                block = blocks_by_key[future.key]
                if future.status == "error":
                    exc = future.exception()
                    logger.warning("%s failed: %r", block, exc)
                    failures.append((block, exc))
                bar.update(1)
        finally:
            with contextlib.suppress(Exception):
                client.run(_forget_processor, token)
    return failures
