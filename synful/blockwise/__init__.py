"""One blockwise mechanism for prediction and extraction: blocks, done markers, scheduling.

Geometry (:mod:`synful.blockwise.task`), all in world nm::

    task = BlockwiseTask(total_roi, block_shape, context, voxel_size, fit="shrink")
    task.blocks()              # Block(block_id, index, write_roi, read_roi), C order
    task.num_blocks, task.grid_shape, task.total_write_roi, task.total_read_roi
    task.block(index), task.block_by_id(block_id)
    task.owner_block_ids(points)   # owning block per point (half-open write ROIs), -1 outside
    block.owns(points)             # mask of points in this block's write ROI

Blocks tile ``total_roi`` on the grid ``total_roi.begin + k * block_shape``; read ROI = write
ROI grown by ``context`` on each side (it may leave the total ROI: read zero-filled, e.g.
``Volume.read``). Border blocks are cut to ``total_roi`` (``fit="shrink"``) or keep their full
shape (``fit="overhang"``). Write ROIs always begin on the grid, so an output array with
offset ``total_roi.begin`` and chunks/shards of ``block_shape / voxel_size`` voxels gets
chunk-aligned writes only (unaligned parallel writes to sharded zarr arrays lose data).

Running (:mod:`synful.blockwise.run`)::

    result = run_blockwise(task, processor, done_dir=..., workers=1, scheduler=None,
                           progress=True, max_retries=2, tag=None)

``processor`` is ``f(block)`` or an object with ``process_block(block)`` and optional
``setup()`` (called once per worker process, before its first block: load a model there)
and ``teardown()``. Test a processor without any scheduler: call ``processor.setup()`` and
``processor.process_block(task.block(...))`` directly.

Schedulers: ``None`` = serial in this process when ``workers == 1`` (debugging), else a
``distributed.LocalCluster`` of ``workers`` processes; ``"serial"``, ``"threads"``,
``"processes"``; a scheduler address (``tcp://host:8786``, e.g. a dask-jobqueue SLURMCluster)
or scheduler file (``*.json`` from ``dask scheduler --scheduler-file``); or a
``distributed.Client``. Workers must see ``done_dir`` and the data on a shared file
system.

Done markers (:mod:`synful.blockwise.markers`): ``<done_dir>/blocks/<block_id>`` is written
(atomic rename) on the worker after ``process_block`` returned; a rerun skips those blocks.
A failing block is retried ``max_retries`` times; when blocks still fail, the other blocks
are finished and marked and :class:`BlockwiseError` (a ``SynfulError``) is raised. Only
when every block is done is ``<done_dir>/complete`` written; callers then declare their
output complete (e.g. rename a temporary store into place). ``<done_dir>/task.json``
records the task and ``tag``: markers of a different task are an error, never reused.
"""

from .markers import DoneMarkers
from .run import BlockwiseError, BlockwiseResult, dask_client, run_blockwise
from .task import Block, BlockwiseTask

__all__ = [
    "Block",
    "BlockwiseTask",
    "BlockwiseError",
    "BlockwiseResult",
    "DoneMarkers",
    "dask_client",
    "run_blockwise",
]
