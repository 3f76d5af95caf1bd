"""The prediction store: ``post_indicator`` (z, y, x) and ``partner_vectors`` (3, z, y, x).

Values are stored as ``stored = value * scale`` with a ``scale`` attribute (readers divide):

* ``uint8`` (default, as the original): probability * 255, rounded; vectors (nm) * 0.25,
  rounded and clipped to [-128, 127] (``int8``): 4 nm steps, +-512 nm range. The original
  cast without rounding ([UNVERIFIED] in the reference); rounding halves the error.
* ``float16`` / ``float32``: probability and nm as they are, ``scale`` = 1.

Chunks (or shards, for large blocks) equal the write block, and the arrays begin at the
block grid's origin, so every block writes whole chunks/shards only (parallel writes into one
chunk or shard from two blocks would lose data).
"""

from __future__ import annotations

import os

import numpy as np
import zarr

from ..io.zarr_array import Volume, create_volume
from ..models import PARTNER_VECTORS, POST_INDICATOR
from .plan import PredictPlan

DTYPES = ("uint8", "float16", "float32")
POST_INDICATOR_SCALE = 255.0
PARTNER_VECTORS_SCALE = 0.25
# Inner chunks of a sharded block are at most this many voxels per axis.
MAX_CHUNK = (32, 256, 256)


def stored_dtype(head: str, dtype: str) -> np.dtype:
    """On-disk dtype of a head for an output ``dtype`` option."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "uint8":
        return np.dtype(np.uint8 if head == POST_INDICATOR else np.int8)
    return np.dtype(dtype)


def head_scale(head: str, dtype: str) -> float:
    if dtype != "uint8":
        return 1.0
    return POST_INDICATOR_SCALE if head == POST_INDICATOR else PARTNER_VECTORS_SCALE


def encode(head: str, values: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities (post_indicator) or vectors in nm (partner_vectors) -> stored values."""
    target = stored_dtype(head, dtype)
    if target.kind == "f":
        return values.astype(target)
    info = np.iinfo(target)
    scaled = np.rint(values.astype(np.float32) * np.float32(head_scale(head, dtype)))
    return np.clip(scaled, info.min, info.max).astype(target)


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
) -> None:
    """Create the (empty) prediction arrays for ``heads`` in a new zarr store at ``path``."""
    group = zarr.open_group(str(path), mode="w")
    if attrs:
        group.attrs.update(attrs)
    chunks, shards = chunking(plan.block_shape)
    shape = tuple(plan.output_shape)
    for head in heads:
        channels = 1 if head == PARTNER_VECTORS else 0
        lead = (3,) if channels else ()
        create_volume(
            group,
            head,
            shape=lead + shape,
            dtype=stored_dtype(head, dtype),
            voxel_size=plan.voxel_size,
            offset=plan.total_roi.begin,
            chunks=lead + chunks,
            shards=None if shards is None else lead + shards,
            channels=channels,
            attrs={"scale": head_scale(head, dtype)},
        )


def open_prediction(path: str | os.PathLike, head: str, mode: str = "r") -> Volume:
    return Volume.open(path, head, mode=mode)
