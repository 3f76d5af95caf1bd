"""Blockwise extraction over a prediction store: :func:`extract_synapses`.

Blocks tile the ``post_indicator`` ROI (:mod:`synful.blockwise`); each reads its write ROI
grown by the context and keeps the synapses whose post point it owns. A block's synapses
go to ``<OUT>.blocks/tables/<block id>.parquet`` (atomically) and only then is the block
marked done (the done store in ``<OUT>.blocks``), so an interrupted run resumes with the
missing blocks. When every block is done the tables are merged into ``OUT`` by
:func:`synful.io.synapse_table.merge_synapse_tables` (an external merge sort: rows in id
order, memory bounded by a fixed number of rows or the largest block table, not by the
total; its sorted runs live in a temporary directory inside the work directory), written
atomically, and the work directory is removed.

The lifecycle is :class:`synful.blockwise.BlockwiseWork`'s. The identity of the work is the
block task and the recipe: the prediction store(s) and the segmentation by content
(:func:`synful.identity.store_identity`: creation id and metadata) and every extraction
setting. A work directory of another identity is never resumed: a one-line error names what
differs, and ``restart=True`` (``--restart``) starts fresh.

``OUT`` and its work directory are claimed first (:func:`synful.outputs.claim`): neither may
be an input or hold one, an existing ``OUT`` must be a synapse table and an existing work
directory one of synful's (with ``identity.json``); ``OUT`` is locked for the run, and
temporary files of a killed run are swept. SIGTERM keeps the finished blocks for a rerun.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from ..atomic import atomic_output, temporary_sibling
from ..blockwise import Block, BlockwiseResult, BlockwiseTask, BlockwiseWork
from ..errors import SynfulError
from ..geometry import Coordinate
from ..identity import store_identity
from ..io.synapse_table import merge_synapse_tables
from ..outputs import EXTRACT_WORK, SYNAPSE_TABLE, Output, claim, output
from ..settings.extract import ExtractConfig, ExtractRun
from .block import empty_table, extract_block
from .predictions import open_predictions, open_segmentation

logger = logging.getLogger(__name__)

WORK_SUFFIX = ".blocks"
TABLES_DIR = "tables"
#: the work directory's identity (written by its done store, :mod:`synful.blockwise.markers`)
IDENTITY_FILE = "identity.json"


def work_directory(out_path: str | os.PathLike) -> Path:
    """Where the per-block tables and done markers of ``out_path`` live during a run."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + WORK_SUFFIX)


class ExtractBlocks:
    """Block processor for :func:`synful.blockwise.scheduler.run_blockwise` (picklable).

    Args:
        pred_store: the prediction store.
        config: the extraction settings.
        tables_dir: directory for the per-block parquet tables.
        seg_store: optional sample store whose ``neuron_ids`` give segment ids.
        vectors_store: optional prediction store to read ``partner_vectors`` from.
    """

    def __init__(
        self, pred_store, config: ExtractConfig, tables_dir, seg_store=None, vectors_store=None
    ):
        self.pred_store = str(pred_store)
        self.vectors_store = None if vectors_store is None else str(vectors_store)
        self.config = config
        self.tables_dir = str(tables_dir)
        self.seg_store = None if seg_store is None else str(seg_store)
        self._predictions = None
        self._seg = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_predictions"] = state["_seg"] = None
        return state

    def setup(self) -> None:
        """Open the stores (once per worker)."""
        self._predictions = open_predictions(self.pred_store, self.vectors_store)
        if self.seg_store is not None:
            self._seg = open_segmentation(
                self.seg_store, self._predictions.post_indicator.voxel_size
            )

    def table_path(self, block_id: int) -> Path:
        return Path(self.tables_dir) / f"{int(block_id)}.parquet"

    def process_block(self, block: Block) -> None:
        """Extract ``block``'s synapses and write them to its table file."""
        if self._predictions is None:
            self.setup()
        table = extract_block(
            self.config, self._predictions, block.write_roi, block.read_roi, seg=self._seg
        )
        with atomic_output(self.table_path(block.block_id)) as tmp:
            table.to_parquet(tmp, index=False)


def make_task(volume_roi, voxel_size, config: ExtractConfig, block_shape=None) -> BlockwiseTask:
    """Blocks over the prediction ROI; ``block_shape`` in voxels, ``None`` for one block."""
    voxel_size = Coordinate(voxel_size)
    if block_shape is None:
        block_size = volume_roi.shape
    else:
        block_shape = tuple(int(b) for b in block_shape)
        if len(block_shape) != 3 or any(b <= 0 for b in block_shape):
            raise SynfulError(
                "--block-shape", f"must be 3 positive integers, got {list(block_shape)}"
            )
        block_size = Coordinate(block_shape) * voxel_size
    return BlockwiseTask(
        total_roi=volume_roi,
        block_size=block_size,
        context=config.context_for(voxel_size),
        voxel_size=voxel_size,
        fit="shrink",
    )


def extract_outputs(out_path) -> list[Output]:
    """``OUT`` and its work directory, as :func:`synful.outputs.claim` takes them."""
    work = output(
        work_directory(out_path), EXTRACT_WORK, lock=False,
        sweep=("", TABLES_DIR),
    )  # fmt: skip
    return [output(out_path, SYNAPSE_TABLE), work]


def block_table_paths(processor: ExtractBlocks, task: BlockwiseTask) -> Iterator[Path]:
    """Every block's table, in block order (lazily: one path at a time)."""
    return (processor.table_path(i) for i in range(task.num_blocks))


def merge_block_tables(
    processor: ExtractBlocks, task: BlockwiseTask, out_path, *, with_seg: bool,
    work_path, collect: bool = False,
):  # fmt: skip
    """Merge the blocks' tables into ``out_path`` in id order, streaming (atomically).

    Returns the number of rows, or the table when ``collect``.
    """
    return merge_synapse_tables(
        block_table_paths(processor, task),
        out_path,
        empty=empty_table(with_seg),
        scratch=temporary_sibling(Path(work_path) / "merge"),
        collect=collect,
    )


def extract_recipe(config: ExtractConfig, pred_store, seg_store=None, vectors_store=None) -> dict:
    """What an extraction's blocks are made from: the stores by content and every setting."""
    return {
        "stage": "extract",
        "predictions": store_identity(pred_store),
        "vectors": None if vectors_store is None else store_identity(vectors_store),
        "segmentation": None if seg_store is None else store_identity(seg_store, "neuron_ids"),
        "config": config.to_dict(),
    }


def run_extract_blocks(
    pred_store,
    out_path,
    config: ExtractConfig,
    *,
    seg_store=None,
    vectors_store=None,
    block_shape: Sequence[int] | None = ExtractRun.block_shape,
    workers: int = ExtractRun.workers,
    scheduler=ExtractRun.scheduler,
    progress: bool = True,
    restart: bool = False,
) -> tuple[ExtractBlocks, BlockwiseTask, BlockwiseResult]:
    """Validate the inputs and process every block not yet done (the resumable part).

    ``restart``: discard unfinished work (of any identity) and start fresh.

    Returns:
        the block processor (it knows where the tables are), the task and what the run did.
    """
    ExtractRun(block_shape=block_shape, workers=workers, scheduler=scheduler)  # validates
    inputs = [pred_store, seg_store, vectors_store]
    with claim(extract_outputs(out_path), inputs):
        return _run_extract_blocks(
            pred_store, out_path, config, seg_store=seg_store, vectors_store=vectors_store,
            block_shape=block_shape, workers=workers, scheduler=scheduler, progress=progress,
            restart=restart,
        )[:3]  # fmt: skip


def _run_extract_blocks(
    pred_store, out_path, config, *, seg_store, vectors_store, block_shape, workers, scheduler,
    progress, restart,
) -> tuple[ExtractBlocks, BlockwiseTask, BlockwiseResult, BlockwiseWork]:  # fmt: skip
    predictions = open_predictions(pred_store, vectors_store)
    mask = predictions.post_indicator
    if seg_store is not None:
        open_segmentation(seg_store, mask.voxel_size)
    task = make_task(mask.roi, mask.voxel_size, config, block_shape)
    work = BlockwiseWork(
        work_directory(out_path), task, extract_recipe(config, pred_store, seg_store, vectors_store)
    )
    work.prepare(lambda path: (path / TABLES_DIR).mkdir(parents=True), restart=restart)
    processor = ExtractBlocks(pred_store, config, work.path / TABLES_DIR, seg_store, vectors_store)
    result = work.run(processor, workers=workers, scheduler=scheduler, progress=progress,
                      desc="extract")  # fmt: skip
    return processor, task, result, work


def extract_synapses(
    pred_store,
    out_path,
    *,
    seg_store=None,
    vectors_store=None,
    block_shape: Sequence[int] | None = ExtractRun.block_shape,
    workers: int = ExtractRun.workers,
    scheduler=ExtractRun.scheduler,
    progress: bool = True,
    restart: bool = False,
    return_table: bool = True,
    **settings,
) -> pd.DataFrame | int:
    """Extract synapses from a prediction store into a synapse table at ``out_path``.

    Args:
        pred_store: prediction store with ``post_indicator`` and (unless ``vectors_store``
            is given) ``partner_vectors``.
        out_path: the synapse table to write (``.parquet``, or ``.csv``).
        settings: the extraction settings, fields of :class:`ExtractConfig` (``mode``,
            ``threshold``, ``score``, ...; each field's default when not given).
        seg_store: sample store whose ``neuron_ids`` give ``pre_seg_id``/``post_seg_id``.
        vectors_store: another prediction store to take ``partner_vectors`` from (e.g. the
            output of a vector-only network, as the published CREMI models p_setup52 +
            p_setup10); it must have ``pred_store``'s voxel size and grid and cover its
            ``post_indicator`` ROI. The result equals extracting from one store holding both.
        block_shape: block shape in voxels (z, y, x); ``None`` processes the whole volume
            as one block.
        workers: number of dask workers (1: serial in this process).
        scheduler: ``None``, ``"serial"``, ``"threads"``, ``"processes"`` or a dask
            scheduler address.
        progress: show a progress bar.
        restart: discard the unfinished work of an earlier run (needed when its inputs or
            settings differ) and start fresh.
        return_table: return the table (held in memory); ``False`` returns only the number
            of rows, and the merge of the block tables then runs in bounded memory however
            many synapses there are (what a whole-brain run wants).

    Returns:
        the table as written, in id order; or its number of rows.

    Raises:
        SynfulError: bad settings, a store without predictions, a vector store with another
            voxel size or not covering the post_indicator ROI, a segmentation with another
            voxel size, an ``out_path`` (or work directory) that is or holds an input or is
            not synful's, another run writing ``out_path``; no output is left behind.
    """
    config = ExtractConfig(**settings)
    ExtractRun(block_shape=block_shape, workers=workers, scheduler=scheduler)  # validates
    if config.drop_autapses and seg_store is None:
        raise SynfulError("--drop-autapses", "needs a segmentation (--seg SAMPLE.zarr)")
    with claim(extract_outputs(out_path), [pred_store, seg_store, vectors_store]):
        processor, task, _, work = _run_extract_blocks(
            pred_store,
            out_path,
            config,
            seg_store=seg_store,
            vectors_store=vectors_store,
            block_shape=block_shape,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            restart=restart,
        )
        result = {}

        def publish(path: Path) -> None:
            result["table"] = merge_block_tables(
                processor, task, out_path, with_seg=seg_store is not None, work_path=path,
                collect=return_table,
            )  # fmt: skip

        work.finish(publish)
    return result["table"]
