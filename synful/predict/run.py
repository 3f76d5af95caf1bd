"""``predict``: blockwise prediction of a sample store into a prediction store, resumable.

The store is written into a hidden sibling ``.<OUT>.partial`` with done markers in
``.<OUT>.partial/.blocks_done``; only when every block is done are the markers removed and
the sibling renamed to ``OUT``, so ``OUT`` never exists half-written. A rerun with the same
inputs and options resumes the partial store (done blocks are not predicted again); a rerun
with other inputs or options starts it over. A complete ``OUT`` written with the same inputs
and options (the checkpoint's path, size and modification time, the sample, the blocks, the
heads, dtype and bf16, recorded in the store's ``synful_predict`` attribute) is left as it is.

``OUT`` and the partial store are claimed first (:func:`synful.outputs.claim`): neither may be
an input, hold one, or be anything but a prediction store synful wrote; ``OUT`` is locked for
the run, and temporary files of a killed run are swept. SIGTERM keeps the partial store and
its done markers, so a rerun resumes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..atomic import discard, remove_path, replace_path, temporary_sibling
from ..blockwise import run_blockwise
from ..errors import SynfulError
from ..io.volumes import open_raw_array
from ..outputs import PREDICTIONS, claim, mark, output
from .output_store import DTYPES, create_prediction_store
from .plan import plan_prediction
from .predict_block import PredictBlock, default_threads
from .roi import RoiSpec, resolve_roi

logger = logging.getLogger(__name__)

MARKERS = ".blocks_done"
ATTRS_KEY = "synful_predict"
LOCAL_SCHEDULERS = (None, "serial", "threads", "processes")


def partial_path(out_store: str | os.PathLike) -> Path:
    """Where an unfinished prediction of ``out_store`` lives."""
    out_store = Path(out_store)
    return out_store.with_name(f".{out_store.name}.partial")


def _file_identity(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_attrs(store: Path) -> dict | None:
    try:
        return json.loads((store / "zarr.json").read_text()).get("attributes", {}).get(ATTRS_KEY)
    except (OSError, ValueError):
        return None


def predict(
    checkpoint,
    sample_store,
    out_store,
    *,
    roi: RoiSpec = None,
    block_shape=None,
    workers: int | None = 1,
    scheduler=None,
    device: str = "auto",
    dtype: str = "uint8",
    bf16: bool = False,
    progress: bool = True,
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
        block_shape: write block (voxels), rounded up to the network output shape.
        workers: local workers; ``None``: one per GPU (or 1 without GPUs).
        scheduler: ``None``/``"serial"``/``"threads"``/``"processes"`` or a dask scheduler
            address (or ``distributed.Client``) of an existing cluster.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``uint8`` (scaled uint8/int8 as the original), ``float16`` or ``float32``.
        bf16: run the network under bfloat16 autocast.
        progress: show a progress bar of blocks done.

    Raises:
        SynfulError: bad checkpoint or sample, voxel size mismatch, a missing or empty mask
            (or neuron_ids) named by ``roi``, failed blocks, an output that is (or holds) an
            input or is not a prediction store, another run writing ``out_store``.
    """
    if dtype not in DTYPES:
        raise SynfulError(None, f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if device not in ("auto", "cpu") and not str(device).startswith("cuda"):
        raise SynfulError(None, f"unknown device {device!r}: expected auto, cpu, cuda or cuda:N")
    checkpoint = Path(checkpoint).resolve()
    sample_store = Path(sample_store).resolve()
    out_store = Path(os.path.abspath(out_store))  # not resolved: a link OUT is refused, not followed
    partial = output(
        partial_path(out_store), PREDICTIONS, lock=False, sweep=(MARKERS, f"{MARKERS}/blocks")
    )
    with claim([output(out_store, PREDICTIONS), partial], inputs=[checkpoint, sample_store]):
        _predict(
            checkpoint, sample_store, out_store, roi=roi, block_shape=block_shape,
            workers=workers, scheduler=scheduler, device=device, dtype=dtype, bf16=bf16,
            progress=progress,
        )  # fmt: skip


def _predict(
    checkpoint: Path, sample_store: Path, out_store: Path, *, roi, block_shape, workers,
    scheduler, device, dtype, bf16, progress,
) -> None:  # fmt: skip
    import torch

    from ..checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, device="cpu")
    setup = loaded.setup
    voxel_size = setup.get("voxel_size")
    if voxel_size is None:
        raise SynfulError(checkpoint, "the checkpoint's setup has no voxel_size")
    # a sample store, a zarr v2/v3 or N5 array, or an OME-Zarr image (the level at the
    # network's voxel size); 3 axes at the network's voxel size, else a one-line error
    raw = open_raw_array(sample_store, voxel_size=voxel_size)
    if raw.dtype != "uint8":
        raise SynfulError(raw.name, f"raw must be uint8, not {raw.dtype}")
    roi = resolve_roi(roi, sample_store)
    plan = plan_prediction(
        loaded.model, setup, raw.roi, roi=roi, block_shape=block_shape, source=str(checkpoint)
    )
    heads = tuple(loaded.model.heads)
    del loaded

    local = scheduler in LOCAL_SCHEDULERS
    if local and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SynfulError(None, f"--device {device}: no CUDA device is available")
    if workers is None:
        gpus = torch.cuda.device_count() if device != "cpu" else 0
        workers = max(1, gpus) if local else 1
    if workers < 1:
        raise SynfulError(None, f"--workers must be >= 1, got {workers}")
    identity = {
        "checkpoint": _file_identity(checkpoint),
        "sample": str(sample_store),
        "plan": plan.to_dict(),
        "heads": list(heads),
        "dtype": dtype,
        "bf16": bool(bf16),
    }
    identity = json.loads(json.dumps(identity))
    if out_store.exists() and _read_attrs(out_store) == identity:
        logger.info("%s is already complete for these inputs and options", out_store)
        return
    partial = partial_path(out_store)
    if partial.exists() and _read_attrs(partial) != identity:
        logger.info("%s belongs to another prediction: starting over", partial)
        remove_path(partial)
    if not partial.exists():
        out_store.parent.mkdir(parents=True, exist_ok=True)
        building = temporary_sibling(partial)
        try:
            attrs = {ATTRS_KEY: identity, "synful": mark(PREDICTIONS)}
            create_prediction_store(building, plan, heads, dtype, attrs=attrs)
            os.replace(building, partial)
        except BaseException:
            discard(building)
            raise
    logger.info(
        "predicting %s: %d blocks of %s voxels (network output %s, context %s) on %s",
        plan.total_roi, plan.task.num_blocks, tuple(plan.block_shape), tuple(plan.unit_shape),
        tuple(plan.context), "this process" if workers == 1 and scheduler is None else
        f"{workers} local workers" if local else scheduler,
    )
    processor = PredictBlock(
        checkpoint=str(checkpoint),
        sample=raw.name,
        out_store=str(partial),
        heads=heads,
        dtype=dtype,
        device=device,
        bf16=bool(bf16),
        threads=default_threads(workers) if local and workers > 1 else None,
    )
    run_blockwise(
        plan.task,
        processor,
        done_dir=partial / MARKERS,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        tag={"prediction": identity},
        desc="predict blocks",
    )
    shutil.rmtree(partial / MARKERS)
    replace_path(partial, out_store, PREDICTIONS)
