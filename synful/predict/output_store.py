"""Predict's layout of a prediction store: chunks (or shards) equal the write block.

The format itself (head names, dtypes, scales, encoding) is :mod:`synful.io.prediction_store`.
Chunks (or shards, for large blocks) equal the write block, and the arrays begin at the
block grid's origin, so every block writes whole chunks/shards only (parallel writes into one
chunk or shard from two blocks would lose data).
"""

from __future__ import annotations

import os

from ..io import prediction_store
from ..io.prediction_store import DTYPES
from ..io.zarr_array import Array, open_array
from .plan import PredictPlan

__all__ = ["DTYPES", "MAX_CHUNK", "chunking", "create_prediction_store", "open_prediction"]

# Inner chunks of a sharded block are at most this many voxels per axis.
MAX_CHUNK = (32, 256, 256)


def chunking(block_shape) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """(chunks, shards) for a block: the block itself, or a shard of smaller inner chunks."""
    block = tuple(int(b) for b in block_shape)
    chunks = []
    for size, limit in zip(block, MAX_CHUNK):
        parts = 1
        while size // parts > limit or size % parts:
            parts += 1
        chunks.append(size // parts)
    chunks = tuple(chunks)
    return (chunks, block) if chunks != block else (block, None)


def create_prediction_store(
    path: str | os.PathLike,
    plan: PredictPlan,
    heads,
    dtype: str,
    attrs: dict | None = None,
    recipe: str | None = None,
) -> None:
    """Create the (empty) prediction arrays for ``heads`` in a new zarr store at ``path``
    (:func:`synful.io.prediction_store.create` on the plan's grid, one chunk or shard per
    block; ``recipe``: the digest of the work, marked with a new creation id; ``attrs``: more
    group attributes)."""
    chunks, shards = chunking(plan.block_shape)
    prediction_store.create(
        path,
        shape=plan.output_shape,
        voxel_size=plan.voxel_size,
        offset=plan.total_roi.begin,
        heads=heads,
        dtype=dtype,
        chunks=chunks,
        shards=shards,
        recipe=recipe,
        attrs=attrs,
    )


def open_prediction(path: str | os.PathLike, head: str, mode: str = "r") -> Array:
    return open_array(path, head, mode=mode)
