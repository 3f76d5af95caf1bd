"""``predict``: blockwise prediction of a sample store into a prediction store, resumable.

The lifecycle is :class:`synful.blockwise.BlockwiseWork`'s: the store is written into a hidden
sibling ``.<OUT>.partial`` (created atomically with its done store in
``.<OUT>.partial/.blocks_done``); only when every block is done is it renamed to ``OUT``, so
``OUT`` never exists half-written. The identity of the work is the block task (ROI, block
shape, context) and the recipe: the checkpoint's content (sha256), the sample's ``raw`` by
content (:func:`synful.identity.store_identity`: creation id and metadata), the heads, dtype,
bf16, whether missing sections are filled and the number of test-time flips. A rerun with
the same identity resumes the partial store (done blocks are not predicted again); a partial
store of another identity is never resumed: a one-line error names what differs, and
``restart=True`` (``--restart``) starts fresh. A complete ``OUT`` of the same identity (its
digest is in the store's ``synful`` attribute) is left as it is; one of another identity is
replaced when the new one is complete. Every store gets a new
creation id, so an extraction of an earlier ``OUT`` is never resumed on a new one.

``OUT`` and the partial store are claimed first (:func:`synful.outputs.claim`): neither may be
an input, hold one, or be anything but a prediction store synful wrote; ``OUT`` is locked for
the run, and temporary files of a killed run are swept. SIGTERM keeps the partial store and
its done store, so a rerun resumes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import remove_path, replace_path
from ..blockwise import BlockwiseWork
from ..blockwise.clusters import LocalGpus, scheduler_for
from ..errors import SynfulError
from ..identity import file_identity, recipe_identity, store_identity
from ..io.prediction_store import recorded_recipe
from ..io.volumes import node_info, open_raw_array
from ..io.zarr_array import array_path
from ..outputs import PREDICTIONS, claim, output
from ..settings.predict import PredictConfig, PredictRun
from . import flips as symmetries
from .block import PredictBlock, default_threads
from .output_store import create_prediction_store
from .plan import plan_prediction
from .roi import RoiSpec, grow_roi, resolve_roi

logger = logging.getLogger(__name__)

MARKERS = ".blocks_done"
LOCAL_SCHEDULERS = (None, "serial", "threads", "processes")


def partial_path(out_store: str | os.PathLike) -> Path:
    """Where an unfinished prediction of ``out_store`` lives."""
    out_store = Path(out_store)
    return out_store.with_name(f".{out_store.name}.partial")


def raw_identity(sample_store: Path, raw) -> str:
    """The raw array by content: a sample store's ``raw`` by its creation id and metadata
    (:func:`synful.identity.store_identity`); another array (zarr, N5, OME-Zarr level) by
    its attributes, ROI, voxel size and dtype (chunk data is never read)."""
    array = Path(array_path(raw))
    if array == sample_store / "raw":
        return store_identity(sample_store, "raw")
    return recipe_identity({
        "array": str(array.relative_to(sample_store)) if array.is_relative_to(sample_store) else "",
        "node": node_info(array),
        "roi": [list(raw.roi.begin), list(raw.roi.shape)],
        "voxel_size": list(raw.voxel_size),
        "dtype": str(raw.dtype),
    })  # fmt: skip


def predict(
    checkpoint,
    sample_store,
    out_store,
    *,
    roi: RoiSpec = None,
    roi_margin: float | None = PredictRun.roi_margin,
    block_shape: Sequence[int] | None = PredictRun.block_shape,
    workers: int | None = PredictRun.workers,
    scheduler=PredictRun.scheduler,
    device: str = PredictRun.device,
    dtype: str = PredictConfig.dtype,
    bf16: bool = PredictConfig.bf16,
    fill_missing_sections: bool = PredictConfig.fill_missing_sections,
    flips: int = PredictConfig.flips,
    progress: bool = True,
    restart: bool = False,
    gpus=PredictRun.gpus,
    cluster=PredictRun.cluster,
) -> None:
    """Predict ``sample_store``'s raw blockwise with a checkpoint into ``out_store``.

    Args:
        checkpoint: a ``synful train`` checkpoint file.
        sample_store: the raw to predict: a sample store (its ``raw``), a zarr v2/v3 or N5
            array, or an OME-Zarr image (the level at the setup's voxel size); see
            :func:`synful.io.volumes.open_raw_array`.
        out_store: the prediction store to write (replaced if it is a prediction store
            synful wrote; anything else there is refused).
        roi: region to predict, grown to the block grid: a ``Roi`` (nm), ``None`` or ``"raw"``
            (all of raw), ``"labels"`` (the ``neuron_ids`` ROI) or ``"masks/NAME"`` (the
            bounding box of that mask's nonzero voxels; see :mod:`.roi`).
        roi_margin: nm added to ``roi`` on every side (not to all of raw) before it is grown
            to the block grid (``None``: none): what a later stage reads around the region.
            The workflow passes the extraction context, so that synapses at the region's
            border are extracted as from a prediction of all of raw.
        block_shape: write block (voxels), rounded up to the network output shape.
        workers: local workers; ``None``: one per GPU (or 1 without GPUs).
        scheduler: ``None``/``"serial"``/``"threads"``/``"processes"`` or a dask scheduler
            address (or ``distributed.Client``) of an existing cluster.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``uint8`` (scaled uint8/int8 as the original), ``float16`` or ``float32``.
        bf16: run the network under bfloat16 autocast where the device computes it natively.
        fill_missing_sections: fill black sections of the raw by interpolating their
            present neighbours before the network sees them (:mod:`.sections`).
        flips: average the outputs over this many in-plane mirrored and transposed copies
            of each block (1, 2, 4 or 8; :mod:`.flips`); 4 and 8 need equal y and x voxel
            sizes.
        progress: show a progress bar of blocks done.
        restart: discard an unfinished partial store (needed when it was made from other
            inputs or settings) and start fresh.
        gpus: GPUs for local worker processes, one worker each with its own
            ``CUDA_VISIBLE_DEVICES`` (``"0,1"`` or a list; ordinals of the GPUs this process
            sees); ``None``: all visible GPUs when there are several workers.
        cluster: a dask-jobqueue cluster to start for this run and stop after it: a
            :class:`synful.blockwise.clusters.ClusterConfig`, a mapping of its settings or a
            YAML file of them (see :func:`synful.blockwise.clusters.load_cluster_config`).

    Raises:
        SynfulError: bad settings (:mod:`synful.settings.predict`: ``roi_margin``, ``block_shape``,
            ``workers``, ``device``, ``dtype`` are checked first), bad checkpoint or sample, voxel size mismatch, a missing or empty mask
            (or neuron_ids) named by ``roi``, failed blocks, an output that is (or holds) an
            input or is not a prediction store, another run writing ``out_store``, a
            partial store of another identity without ``restart``.
    """
    config = PredictConfig(
        dtype=dtype, bf16=bf16, fill_missing_sections=fill_missing_sections, flips=flips
    )
    # scheduler, gpus and cluster may also be objects here (a Client, a list, a ClusterConfig):
    # scheduler_for checks them
    run = PredictRun(roi_margin=roi_margin, block_shape=block_shape, workers=workers, device=device)
    roi_margin, block_shape = run.roi_margin, run.block_shape
    workers, device = run.workers, run.device
    dtype, bf16, fill, flips = config.dtype, config.bf16, config.fill_missing_sections, config.flips
    checkpoint = Path(checkpoint).resolve()
    sample_store = Path(sample_store).resolve()
    out_store = Path(
        os.path.abspath(out_store)
    )  # not resolved: a link OUT is refused, not followed
    partial = output(partial_path(out_store), PREDICTIONS, lock=False, sweep=("", MARKERS))
    with claim([output(out_store, PREDICTIONS), partial], inputs=[checkpoint, sample_store]):
        _predict(
            checkpoint, sample_store, out_store, roi=roi, roi_margin=roi_margin,
            block_shape=block_shape,
            workers=workers, scheduler=scheduler, device=device, dtype=dtype, bf16=bf16,
            fill_missing_sections=fill, flips=flips, progress=progress, restart=restart,
            gpus=gpus, cluster=cluster,
        )  # fmt: skip


def _predict(
    checkpoint: Path, sample_store: Path, out_store: Path, *, roi, roi_margin, block_shape, workers,
    scheduler, device, dtype, bf16, progress, restart, gpus=None, cluster=None,
    fill_missing_sections=False, flips=1,
) -> None:  # fmt: skip
    import torch

    from ..checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, device="cpu")
    setup = loaded.setup
    voxel_size = setup.get("voxel_size")
    if voxel_size is None:
        raise SynfulError(checkpoint, "the checkpoint's setup has no voxel_size")
    if symmetries.needs_square_voxels(flips) and voxel_size[1] != voxel_size[2]:
        raise SynfulError(
            checkpoint,
            f"--flips {flips} swaps y and x, which needs equal y and x voxel sizes, not "
            f"{voxel_size[1]} and {voxel_size[2]} nm (use --flips 2)",
        )
    # a sample store, a zarr v2/v3 or N5 array, or an OME-Zarr image (the level at the
    # network's voxel size); 3 axes at the network's voxel size, else a one-line error
    raw = open_raw_array(sample_store, voxel_size=voxel_size)
    if raw.dtype != "uint8":
        raise SynfulError(array_path(raw), f"raw must be uint8, not {raw.dtype}")
    roi = grow_roi(resolve_roi(roi, sample_store), roi_margin, voxel_size)
    plan = plan_prediction(
        loaded.model, setup, raw.roi, roi=roi, block_shape=block_shape, source=str(checkpoint)
    )
    heads = tuple(loaded.model.heads)
    del loaded

    if cluster is None and scheduler in LOCAL_SCHEDULERS:
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise SynfulError(None, f"--device {device}: no CUDA device is available")
    # one local worker per GPU (each with its own CUDA_VISIBLE_DEVICES) or a jobqueue cluster
    scheduler, workers = scheduler_for(
        scheduler, workers, device=device, gpus=gpus, cluster=cluster,
        gpu_count=torch.cuda.device_count() if device != "cpu" else 0,
    )  # fmt: skip
    local = scheduler in LOCAL_SCHEDULERS or isinstance(scheduler, LocalGpus)
    if workers < 1:
        raise SynfulError(None, f"--workers must be >= 1, got {workers}")
    recipe = {
        "stage": "predict",
        "checkpoint": file_identity(checkpoint),
        "raw": raw_identity(sample_store, raw),
        "unit_shape": list(plan.unit_shape),
        "heads": list(heads),
        "dtype": dtype,
        "bf16": bool(bf16),
    }
    if fill_missing_sections:  # absent when off: stores made before the option keep their identity
        recipe["fill_missing_sections"] = True
    if flips != 1:  # absent for one: stores made before the option keep their identity
        recipe["flips"] = flips
    partial = partial_path(out_store)
    work = BlockwiseWork(partial, plan.task, recipe, done=MARKERS)
    if out_store.exists() and recorded_recipe(out_store) == work.digest:
        logger.info("%s is already complete for these inputs and options", out_store)
        remove_path(out_store / MARKERS)  # left by a run killed while finishing
        return

    def create(path: Path) -> None:
        # marked as synful's predictions with a new creation id and the work's digest
        create_prediction_store(path, plan, heads, dtype, recipe=work.digest)

    work.prepare(create, restart=restart)
    logger.info(
        "predicting %s: %d blocks of %s voxels (network output %s, context %s) on %s",
        plan.total_roi,
        plan.task.num_blocks,
        tuple(plan.block_shape),
        tuple(plan.unit_shape),
        tuple(plan.context),
        "this process"
        if workers == 1 and scheduler is None
        else f"{workers} {scheduler}"
        if isinstance(scheduler, LocalGpus)
        else f"{workers} local workers"
        if local
        else scheduler,
    )
    processor = PredictBlock(
        checkpoint=str(checkpoint),
        sample=array_path(raw),
        out_store=str(partial),
        heads=heads,
        dtype=dtype,
        device=device,
        bf16=bool(bf16),
        fill_missing_sections=bool(fill_missing_sections),
        flips=int(flips),
        threads=default_threads(workers) if local and workers > 1 else None,
    )
    work.run(processor, workers=workers, scheduler=scheduler, progress=progress,
             desc="predict blocks")  # fmt: skip

    def publish(path: Path) -> None:
        # renamed first, then the done store removed: a run killed in between leaves a
        # complete OUT whose digest matches, and the next run removes the leftover
        replace_path(path, out_store, PREDICTIONS)
        remove_path(out_store / MARKERS)

    work.finish(publish)
