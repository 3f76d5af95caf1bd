"""A blockwise task: a total ROI tiled by write blocks, each read with some context.

All geometry is in world units (nm), as funlib ``Roi``/``Coordinate``. A write block's extent
is ``block_size`` (nm); ``block_shape`` always means voxels in synful (the commands'
``--block-shape``, the settings' ``block_shape``), so callers pass
``block_size = block_shape * voxel_size``. Blocks tile the total write ROI on a grid anchored
at ``total_roi.begin`` with stride ``block_size``; a block's read ROI is its write ROI grown
by ``context`` on every side (it may reach outside the total ROI: readers zero-fill or clip,
as they need).

At the upper border the last block along an axis either

* ``fit="shrink"`` (default): is cut back to the total ROI, so write ROIs never leave it; or
* ``fit="overhang"``: keeps the full block size and reaches past the total ROI (the caller
  crops its write to its output, e.g. a network that always produces a full output block).

In both cases every block's write ROI *begins* on the grid ``total_roi.begin + k * block_size``,
so writes into an array whose offset is ``total_roi.begin`` and whose chunks (or shards) equal
``block_size / voxel_size`` voxels are chunk-aligned; a shrunk border block writes the partial
last chunk, which no other block touches.

Ownership: the write ROIs are half-open and disjoint, so every point inside the total ROI
lies in exactly one block's write ROI: :meth:`BlockwiseTask.owner_block_ids`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..errors import SynfulError
from ..geometry import Coordinate, Roi, points_in_roi

FITS = ("shrink", "overhang")
#: the most blocks a task may have: blocks are generated one at a time, but the done store
#: takes one byte per block (10**8 blocks: 100 MB) and every block some bookkeeping time
#: (docs/performance.md, "Blockwise bookkeeping per block")
MAX_BLOCKS = 10**8


class Block:
    """One block of a task.

    Args:
        block_id: position of the block in C order over the task's block grid (0, 1, ...).
        index: the block's (z, y, x) position in the block grid.
        write_roi: the region (nm) this block writes and owns (half-open).
        read_roi: ``write_roi`` grown by the task's context (nm).

    A task makes its blocks with plain integer corners; the ``Roi`` objects are built on first
    access (building a funlib ``Roi`` costs more than a no-op block's bookkeeping:
    docs/performance.md).
    """

    __slots__ = ("block_id", "index", "_write", "_read", "_write_roi", "_read_roi")

    def __init__(self, block_id: int, index, write_roi: Roi, read_roi: Roi):
        self.block_id = int(block_id)
        self.index = tuple(int(i) for i in index)
        self._write = self._read = None
        self._write_roi, self._read_roi = write_roi, read_roi

    @classmethod
    def _from_corners(cls, block_id: int, index: tuple, write: tuple, read: tuple) -> Block:
        """A block from ``(begin, shape)`` integer lists of its write and read ROIs."""
        block = cls.__new__(cls)
        block.block_id, block.index = block_id, index
        block._write, block._read = write, read
        block._write_roi = block._read_roi = None
        return block

    @property
    def write_roi(self) -> Roi:
        if self._write_roi is None:
            self._write_roi = Roi(*self._write)
        return self._write_roi

    @property
    def read_roi(self) -> Roi:
        if self._read_roi is None:
            self._read_roi = Roi(*self._read)
        return self._read_roi

    @property
    def context(self) -> tuple[Coordinate, Coordinate]:
        """Context (nm) below and above the write ROI, as ``(begin, end)`` margins."""
        return (
            self.write_roi.begin - self.read_roi.begin,
            self.read_roi.end - self.write_roi.end,
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, Block):
            return NotImplemented
        return (self.block_id, self.index, self.write_roi, self.read_roi) == (
            other.block_id, other.index, other.write_roi, other.read_roi,
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash((self.block_id, self.index))

    def __getstate__(self):
        return (self.block_id, self.index, self.write_roi, self.read_roi)

    def __setstate__(self, state) -> None:
        self.__init__(*state)

    def __repr__(self) -> str:
        return (
            f"Block(block_id={self.block_id}, index={self.index}, write_roi={self.write_roi}, "
            f"read_roi={self.read_roi})"
        )

    def __str__(self) -> str:
        return f"block {self.block_id} {tuple(self.index)} write {self.write_roi}"


def _coordinate(value, name: str) -> Coordinate:
    try:
        coordinate = Coordinate(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 integers (z, y, x), got {value!r}") from None
    if len(coordinate) != 3:
        raise ValueError(f"{name} must be 3 integers (z, y, x), got {value!r}")
    return coordinate


@dataclasses.dataclass(frozen=True)
class BlockwiseTask:
    """Total ROI, write block size and context, all in world units (nm), on a voxel grid.

    Args:
        total_roi: the region to write (nm); must be aligned to ``voxel_size``.
        block_size: extent of a write block in world units (nm), like a funlib ``Roi`` shape;
            a positive multiple of ``voxel_size`` (a block shape in voxels times the voxel
            size).
        context: margin (nm) read on each side of a write block, a multiple of ``voxel_size``.
        voxel_size: the voxel size (nm) of the arrays the blocks index.
        fit: ``"shrink"`` (cut border blocks to ``total_roi``) or ``"overhang"``.
    """

    total_roi: Roi
    block_size: Coordinate
    context: Coordinate
    voxel_size: Coordinate
    fit: str = "shrink"

    def __post_init__(self):
        voxel_size = _coordinate(self.voxel_size, "voxel_size")
        block_size = _coordinate(self.block_size, "block_size")
        context = _coordinate(self.context, "context")
        total_roi = Roi(
            _coordinate(self.total_roi.begin, "total ROI begin"),
            _coordinate(self.total_roi.shape, "total ROI shape"),
        )
        object.__setattr__(self, "voxel_size", voxel_size)
        object.__setattr__(self, "block_size", block_size)
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "total_roi", total_roi)
        zero = Coordinate((0, 0, 0))
        if any(v <= 0 for v in voxel_size):
            raise ValueError(f"voxel_size must be positive, got {voxel_size}")
        if any(b <= 0 for b in block_size) or block_size % voxel_size != zero:
            raise ValueError(
                f"block_size {block_size} nm must be a positive multiple of voxel size {voxel_size}"
            )
        if any(c < 0 for c in context) or context % voxel_size != zero:
            raise ValueError(
                f"context {context} nm must be a non-negative multiple of voxel size {voxel_size}"
            )
        if total_roi.empty or any(s <= 0 for s in total_roi.shape):
            raise ValueError(f"total ROI {total_roi} is empty")
        if total_roi.begin % voxel_size != zero or total_roi.shape % voxel_size != zero:
            raise ValueError(f"total ROI {total_roi} is not aligned with voxel size {voxel_size}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {self.fit!r}")
        # integer copies for the per-block arithmetic (not fields: equality and repr ignore them)
        object.__setattr__(self, "_grid", tuple(int(g) for g in self.grid_shape))
        object.__setattr__(self, "_offset", tuple(int(v) for v in total_roi.begin))
        object.__setattr__(self, "_end", tuple(int(v) for v in total_roi.end))
        object.__setattr__(self, "_block", tuple(int(v) for v in block_size))
        object.__setattr__(self, "_context", tuple(int(v) for v in context))
        if self.num_blocks > MAX_BLOCKS:
            block, total = (
                "x".join(map(str, c / voxel_size)) for c in (block_size, total_roi.shape)
            )
            raise SynfulError(
                None,
                f"a block shape of {block} voxels makes {self.num_blocks} blocks over {total} "
                f"voxels, more than the limit of {MAX_BLOCKS:,}: use a larger block shape",
            )

    # --- the grid -------------------------------------------------------------------------

    @property
    def grid_shape(self) -> Coordinate:
        """Number of blocks along (z, y, x)."""
        return Coordinate(-(-s // b) for s, b in zip(self.total_roi.shape, self.block_size))

    @property
    def num_blocks(self) -> int:
        return int(np.prod(self.grid_shape))

    @property
    def total_write_roi(self) -> Roi:
        """The union of all write ROIs (``total_roi``, or more with ``fit="overhang"``)."""
        if self.fit == "shrink":
            return self.total_roi
        return Roi(self.total_roi.begin, self.grid_shape * self.block_size)

    @property
    def total_read_roi(self) -> Roi:
        """The union of all read ROIs."""
        return self.total_write_roi.grow(self.context, self.context)

    def block(self, index: Sequence[int]) -> Block:
        """The block at grid position ``index`` (z, y, x)."""
        index = tuple(int(i) for i in index)
        grid = self.grid_shape
        if len(index) != 3 or any(not 0 <= i < g for i, g in zip(index, grid)):
            raise IndexError(f"block index {index} outside the block grid {tuple(grid)}")
        return self._make_block(index)

    def _make_block(self, index: tuple[int, int, int]) -> Block:
        # plain integer arithmetic: this runs once per block, up to 10**7 times per task
        grid = self._grid
        begin = [o + i * b for o, i, b in zip(self._offset, index, self._block)]
        if self.fit == "shrink":
            shape = [min(b, t - x) for x, b, t in zip(begin, self._block, self._end)]
        else:
            shape = list(self._block)
        context = self._context
        read = (
            [x - c for x, c in zip(begin, context)],
            [s + 2 * c for s, c in zip(shape, context)],
        )
        block_id = (index[0] * grid[1] + index[1]) * grid[2] + index[2]
        return Block._from_corners(block_id, index, (begin, shape), read)

    def block_by_id(self, block_id: int) -> Block:
        """The block with id ``block_id`` (its position in C order)."""
        block_id = int(block_id)
        gz, gy, gx = self._grid
        if not 0 <= block_id < gz * gy * gx:
            raise IndexError(f"block id {block_id} outside 0..{gz * gy * gx - 1}")
        rest, x = divmod(block_id, gx)
        z, y = divmod(rest, gy)
        return self._make_block((z, y, x))

    def blocks(self, ids: Iterable[int] | None = None) -> Iterator[Block]:
        """The blocks (generated one at a time, never all at once), in block-id (C) order, or
        those with the given ``ids`` in their order."""
        if ids is not None:
            return (self.block_by_id(i) for i in ids)
        return (self._make_block(index)
                for index in itertools.product(*(range(g) for g in self._grid)))  # fmt: skip

    # --- ownership --------------------------------------------------------------------------

    def block_indices_of(self, points) -> np.ndarray:
        """Grid indices (int64, N x 3) of the blocks whose write ROIs hold world points (N x 3).

        Points outside ``total_write_roi`` get indices outside the grid; use
        :meth:`owner_block_ids` for ids with -1 for those.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        begin = np.asarray(self.total_roi.begin, dtype=np.float64)
        shape = np.asarray(self.block_size, dtype=np.float64)
        return np.floor((points - begin) / shape).astype(np.int64)

    def owner_block_ids(self, points) -> np.ndarray:
        """Id of the block owning each world point (N x 3), or -1 outside ``total_write_roi``.

        Write ROIs are half-open, so a point on a shared face belongs to the upper block.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        indices = self.block_indices_of(points)
        inside = points_in_roi(points, self.total_write_roi)
        ids = np.full(len(points), -1, dtype=np.int64)
        if inside.any():
            ids[inside] = np.ravel_multi_index(tuple(indices[inside].T), tuple(self.grid_shape))
        return ids

    # --- identity -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-able description; two tasks with equal dicts have the same blocks."""
        return {
            "total_roi": {
                "offset": list(self.total_roi.begin),
                "shape": list(self.total_roi.shape),
            },
            # the stored key keeps its historical name "block_shape" (resume markers); it holds nm
            "block_shape": list(self.block_size),
            "context": list(self.context),
            "voxel_size": list(self.voxel_size),
            "fit": self.fit,
        }
