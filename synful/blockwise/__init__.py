"""One blockwise mechanism for prediction and extraction: blocks, done store, scheduling,
resume identity, work directory and finalisation.

Geometry (:mod:`synful.blockwise.task`), all in world nm (``block_size`` is the write block's
extent in nm; ``block_shape`` means voxels everywhere in synful, ``block_size = block_shape *
voxel_size``)::

    task = BlockwiseTask(total_roi, block_size, context, voxel_size, fit="shrink")
    task.blocks()              # Block(block_id, index, write_roi, read_roi), C order, lazily
    task.num_blocks, task.grid_shape, task.total_write_roi, task.total_read_roi
    task.block(index), task.block_by_id(block_id)
    task.owner_block_ids(points)   # owning block per point (half-open write ROIs), -1 outside

Blocks tile ``total_roi`` on the grid ``total_roi.begin + k * block_size``; read ROI = write
ROI grown by ``context`` on each side (it may leave the total ROI: read zero-filled, e.g.
``synful.io.zarr_array.read``). Border blocks are cut to ``total_roi`` (``fit="shrink"``) or keep their full
size (``fit="overhang"``). Write ROIs always begin on the grid, so an output array with
offset ``total_roi.begin`` and chunks/shards of ``block_size / voxel_size`` voxels gets
chunk-aligned writes only (unaligned parallel writes to sharded zarr arrays lose data).

Running (:mod:`synful.blockwise.scheduler`)::

    result = run_blockwise(task, processor, done_dir=..., workers=1, scheduler=None,
                           progress=True, max_retries=2, recipe=None, restart=False)

``processor`` is ``f(block)`` or an object with ``process_block(block)`` and optional
``setup()`` (called once per worker process, before its first block: load a model there)
and ``teardown()``. Test a processor without any scheduler: call ``processor.setup()`` and
``processor.process_block(task.block(...))`` directly.

Schedulers: ``None`` = serial in this process when ``workers == 1`` (debugging), else a
``distributed.LocalCluster`` of ``workers`` processes; ``"serial"``, ``"threads"``,
``"processes"``; a scheduler address (``tcp://host:8786``, e.g. a dask-jobqueue SLURMCluster)
or scheduler file (``*.json`` from ``dask scheduler --scheduler-file``); or a
``distributed.Client``. Workers must see the data on a shared file system; only this process
writes ``done_dir``.

Blocks are handed to the workers lazily, in batches sized to ~0.2 s of work, with a bounded
window in flight (:mod:`.scheduler`). Done blocks are one byte each in a memory-mapped file
(:mod:`synful.blockwise.markers`, a few files whatever the number of blocks), written by this
process when a batch's result arrives; a rerun skips done blocks (after ``kill -9`` it redoes
at most the blocks in flight). A failing block is retried ``max_retries`` times; when blocks
still fail, the other blocks are finished and marked and :class:`BlockwiseError` (a
``SynfulError``) is raised. ``recipe`` (inputs by content and settings) and the task are the
done store's identity: another task or recipe never reuses it (a one-line error naming what
differs, or a fresh start with ``restart=True``).

A stage that writes an output blockwise uses :class:`BlockwiseWork` (:mod:`.work`): the work
directory that appears complete with its identity or not at all, resume only for the same
recipe, the run, and the atomic finalisation into the output.
"""

from .markers import DoneMarkers
from .scheduler import (
    BlockwiseError,
    BlockwiseResult,
    dask_client,
    max_blocks_in_flight,
    run_blockwise,
)
from .task import Block, BlockwiseTask
from .work import BlockwiseWork

__all__ = [
    "Block",
    "BlockwiseTask",
    "BlockwiseError",
    "BlockwiseResult",
    "BlockwiseWork",
    "DoneMarkers",
    "dask_client",
    "max_blocks_in_flight",
    "run_blockwise",
]
