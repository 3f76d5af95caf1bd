"""Shapes and the block task of a blockwise prediction.

* The network's output shape ``unit`` (voxels) is the output for the setup's
  ``predict_input_shape`` (or ``input_shape`` when it has none); its context is
  ``(input - output) / 2`` voxels on each side.
* A block given as ``--block-shape`` is a whole number of network outputs: it is rounded up
  to a multiple of ``unit``, so ``1 1 1`` means one network output per block. The default
  block is such a multiple too, or, along an axis where the region fits in one block, the
  region's extent rounded up to the output grid (the product of the U-Net's downsample
  factors), so that a small region is predicted without the overhang of a whole unit. A
  block is predicted by one forward pass on ``block + 2 * context`` voxels of raw, which the
  U-Net accepts because the block is a multiple of its output grid, and whose output is then
  exactly ``block``.
* Blocks begin at ``origin + k * block`` (world nm), where ``origin`` is the region's begin
  moved back to the output grid laid from the raw's begin (the raw's begin itself for all of
  raw): block offsets from the raw's begin are multiples of the output grid, so the
  prediction does not depend on the block shape or the region.
* ``roi`` (nm) is grown to that block grid and cut to the raw ROI; blocks overhang the total
  ROI at its upper border (the network always predicts a whole block) and their writes are
  cropped to the output arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..blockwise import BlockwiseTask
from ..errors import SynfulError
from ..geometry import Coordinate, Roi

# Default blocks grow (in whole network outputs) while the forward pass's estimated activation
# memory stays within this budget: bigger blocks recompute less context.
DEFAULT_BLOCK_MEMORY = 2 * 2**30
# Estimated peak activation bytes per input voxel and top-level feature map (float32, inference
# mode); above the measured value (docs/performance.md, "Activation memory of prediction").
BYTES_PER_VOXEL_AND_FMAP = 12


@dataclasses.dataclass(frozen=True)
class PredictPlan:
    """Geometry of one prediction.

    Args:
        voxel_size: nm per voxel (raw = setup voxel size).
        unit_shape: the network output shape (voxels) blocks are multiples of.
        block_shape: write block shape (voxels).
        context: voxels read on each side of a block.
        total_roi: the region predicted and written (nm).
    """

    voxel_size: Coordinate
    unit_shape: Coordinate
    block_shape: Coordinate
    context: Coordinate
    total_roi: Roi

    @property
    def block_input_shape(self) -> Coordinate:
        """Raw voxels fed to the network per block."""
        return self.block_shape + self.context * 2

    @property
    def task(self) -> BlockwiseTask:
        return BlockwiseTask(
            total_roi=self.total_roi,
            block_size=self.block_shape * self.voxel_size,
            context=self.context * self.voxel_size,
            voxel_size=self.voxel_size,
            fit="overhang",
        )

    @property
    def output_shape(self) -> Coordinate:
        """Shape (voxels) of the output arrays."""
        return self.total_roi.shape / self.voxel_size

    def to_dict(self) -> dict:
        return {
            "voxel_size": list(self.voxel_size),
            "unit_shape": list(self.unit_shape),
            "block_shape": list(self.block_shape),
            "context": list(self.context),
            "total_roi": {
                "offset": list(self.total_roi.begin),
                "shape": list(self.total_roi.shape),
            },
        }


def network_input_shape(setup: dict) -> tuple[int, int, int]:
    """The input shape (voxels) a setup predicts with: ``predict_input_shape`` or ``input_shape``."""
    shape = setup.get("predict_input_shape") or setup.get("input_shape")
    if shape is None or len(shape) != 3:
        raise ValueError("the setup has no input_shape (z, y, x)")
    return tuple(int(s) for s in shape)


def default_block_shape(
    unit,
    context,
    volume,
    bytes_per_input_voxel: float,
    budget: float = DEFAULT_BLOCK_MEMORY,
    offset=(0, 0, 0),
    grid=None,
) -> Coordinate:
    """The default block (voxels): the candidate that minimises the raw voxels all blocks
    feed to the network (``prod(blocks per axis * (block + 2 * context))``, a proxy for the
    FLOPs including recomputed context and overhang) among the blocks whose input's
    estimated memory fits ``budget``; ties go to the smaller block. At least one network
    output.

    Candidates per axis are the multiples of ``unit`` and, with the network's output
    ``grid``, the extent ``offset + volume`` rounded up to it where that lies between two
    multiples (one block along that axis, without the overhang of a whole unit).

    ``volume`` is the region to cover and ``offset`` its begin relative to the block grid's
    origin (voxels): blocks are laid on that grid, so a region that does not begin on it
    needs the blocks that cover ``[offset, offset + volume)``.
    """
    unit, context, volume, offset = (
        np.array(v, dtype=np.int64) for v in (unit, context, volume, offset)
    )
    extent = offset + volume
    limits = np.maximum(1, -(-extent // unit))
    candidates = [list(range(u, (n + 1) * u, u)) for u, n in zip(unit, limits)]
    if grid is not None:
        for axis, size in enumerate(round_up(extent, grid)):
            if unit[axis] < size < limits[axis] * unit[axis]:
                candidates[axis] = sorted([*candidates[axis], int(size)])
    best, best_cost = unit, None

    def memory(block):
        return float(np.prod(np.array(block) + 2 * context)) * bytes_per_input_voxel

    first = [c[0] for c in candidates]
    for bz in candidates[0]:
        if bz > first[0] and memory((bz, first[1], first[2])) > budget:
            break
        for by in candidates[1]:
            if by > first[1] and memory((bz, by, first[2])) > budget:
                break
            for bx in candidates[2]:
                block = np.array([bz, by, bx])
                if bx > first[2] and memory(block) > budget:
                    break
                count = -(-extent // block) - offset // block
                cost = float(np.prod(count * (block + 2 * context)))
                if best_cost is None or cost < best_cost * (1 - 1e-9):
                    best, best_cost = block, cost
    return Coordinate(int(b) for b in best)


def _bytes_per_input_voxel(model) -> float:
    fmaps = getattr(getattr(model, "unet", None), "fmaps", None)
    top = int(fmaps[0]) if fmaps else 16
    return BYTES_PER_VOXEL_AND_FMAP * top


def round_up(shape: Sequence[int], unit: Sequence[int]) -> Coordinate:
    """``shape`` rounded up to a multiple of ``unit`` on every axis (at least one unit)."""
    return Coordinate(max(1, -(-int(s) // int(u))) * int(u) for s, u in zip(shape, unit))


def plan_prediction(
    model,
    setup: dict,
    raw_roi: Roi,
    *,
    roi: Roi | None = None,
    block_shape: Sequence[int] | None = None,
    source: str | None = None,
) -> PredictPlan:
    """Plan the blocks of a prediction of ``raw_roi`` (or of ``roi`` inside it).

    Args:
        model: the network (``output_shape(input_shape)``, ``output_grid``).
        setup: its setup (``voxel_size``, ``input_shape``, optional ``predict_input_shape``).
        raw_roi: the raw's ROI (nm); its begin anchors the output grid blocks begin on.
        roi: optional region (nm) to predict; grown to the block grid, cut to ``raw_roi``.
        block_shape: write block shape (voxels), rounded up to the network output shape;
            ``None`` for the default (:func:`default_block_shape`: bounded by
            :data:`DEFAULT_BLOCK_MEMORY`).
        source: name for error messages (the checkpoint).

    Raises:
        SynfulError: for an input shape the network cannot take, a bad block shape, or a
            ``roi`` that does not overlap the raw.
    """
    voxel_size = Coordinate(int(v) for v in setup["voxel_size"])
    try:
        input_shape = network_input_shape(setup)
        unit = Coordinate(model.output_shape(input_shape))
    except ValueError as exc:
        raise SynfulError(source, f"invalid network input shape: {exc}") from None
    context = (Coordinate(input_shape) - unit) / 2
    grid = Coordinate(model.output_grid)
    if unit % grid != Coordinate((0, 0, 0)):
        raise SynfulError(
            source, f"network output {tuple(unit)} is not a multiple of its grid {tuple(grid)}"
        )
    region = raw_roi if roi is None else roi.intersect(raw_roi)
    if region.empty or any(s <= 0 for s in region.shape):
        raise SynfulError(None, f"ROI {roi} does not overlap the raw ROI {raw_roi}")
    # the block grid's origin: the region's begin moved back to the output grid from raw's begin
    step = grid * voxel_size
    origin = raw_roi.begin + ((region.begin - raw_roi.begin) / step) * step
    offset = (region.begin - origin) / voxel_size
    if block_shape is None:
        blocks = default_block_shape(
            unit,
            context,
            region.shape / voxel_size,
            _bytes_per_input_voxel(model),
            offset=offset,
            grid=grid,
        )
    else:
        if len(block_shape) != 3 or any(int(b) < 1 for b in block_shape):
            raise SynfulError(None, f"block shape {list(block_shape)} must be 3 positive integers")
        blocks = round_up(block_shape, unit)
    block_nm = blocks * voxel_size
    count = Coordinate(-(-(e - o) // b) for e, o, b in zip(region.end, origin, block_nm))
    total_roi = Roi(origin, count * block_nm).intersect(raw_roi)
    plan = PredictPlan(voxel_size, unit, blocks, context, total_roi)
    try:
        produced = Coordinate(model.output_shape(tuple(plan.block_input_shape)))
    except ValueError as exc:
        produced = exc
    if produced != plan.block_shape:
        raise SynfulError(
            source,
            f"the network does not map a block input {tuple(plan.block_input_shape)} to the block "
            f"{tuple(plan.block_shape)} ({produced}); choose another --block-shape",
        )
    return plan
