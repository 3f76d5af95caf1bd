"""Ground-truth labels at points, with the CREMI evaluator's rounding rule.

The official CREMI evaluator (``cremi/Volume.py``) looks a location up at voxel index
``round(location / resolution)`` per axis, where ``location`` is relative to the volume's
offset and ``round`` is Python 2's: halves go away from zero. A negative index or one past the
end raised an error there; here such a point gets label 0 and a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

OUTSIDE_LABEL = 0


def round_half_away_from_zero(values) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (Python 2 ``round``), exactly.

    ``floor(|x|)`` and ``|x| - floor(|x|)`` are exact in floating point, so the result is
    correct even for values like 0.49999999999999994 where ``floor(x + 0.5)`` is not.
    """
    values = np.asarray(values, dtype=np.float64)
    magnitude = np.abs(values)
    whole = np.floor(magnitude)
    rounded = whole + (magnitude - whole >= 0.5)
    return np.copysign(rounded, values)


def cremi_voxel_indices(points, offset: Sequence[float], voxel_size: Sequence[float]) -> np.ndarray:
    """Voxel indices (int64, N x 3) of world points by the CREMI rule.

    Args:
        points: N x 3 world positions (nm, z, y, x).
        offset: world position (nm) of the first voxel of the volume.
        voxel_size: voxel size (nm).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    relative = points - np.asarray(offset, dtype=np.float64)
    return round_half_away_from_zero(relative / np.asarray(voxel_size, dtype=np.float64)).astype(
        np.int64
    )


def _section_depth(array) -> int:
    """How many z-sections to read at once: the array's chunk depth (1 when unchunked)."""
    chunks = getattr(array, "chunks", None)
    try:
        return max(1, int(chunks[-3]))
    except (TypeError, IndexError, ValueError):
        return 1


def values_at_voxels(array, indices, fill_value=0) -> tuple[np.ndarray, np.ndarray]:
    """Values of a 3D array-like (numpy, h5py or zarr) at voxel indices, read slab by slab.

    Points are grouped by z into slabs one chunk deep and only the bounding box of each slab's
    points is read, so a large on-disk volume (a padded CREMI sample) is never read whole and
    no chunk is read more than once.

    Args:
        array: anything with ``shape``, ``dtype`` and numpy-style slicing.
        indices: N x 3 integer voxel indices; those outside the array get ``fill_value``.

    Returns:
        (values, inside): the values (N,) in the array's dtype and a boolean mask of the
        indices that lie inside the array.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1, 3)
    shape = np.asarray(array.shape[-3:], dtype=np.int64)
    inside = np.all((indices >= 0) & (indices < shape), axis=1)
    values = np.full(len(indices), fill_value, dtype=array.dtype)
    rows = np.flatnonzero(inside)
    if len(rows) == 0:
        return values, inside
    depth = _section_depth(array)
    slab_of = indices[rows, 0] // depth
    order = np.argsort(slab_of, kind="stable")
    rows, slab_of = rows[order], slab_of[order]
    starts = np.flatnonzero(np.r_[True, slab_of[1:] != slab_of[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    for start, end in zip(starts, ends):
        group = indices[rows[start:end]]
        low = group.min(axis=0)
        high = group.max(axis=0) + 1
        slab = np.asarray(array[low[0] : high[0], low[1] : high[1], low[2] : high[2]])
        local = group - low
        values[rows[start:end]] = slab[local[:, 0], local[:, 1], local[:, 2]]
    return values, inside


def labels_at_points(
    segmentation, points, offset: Sequence[float], voxel_size: Sequence[float], what: str = "points"
) -> np.ndarray:
    """Ground-truth labels (uint64) at world points by the CREMI rounding rule.

    Points outside the segmentation get label 0 and a logged warning (the reference evaluator
    raised an error instead).

    Args:
        segmentation: the ``neuron_ids`` array (numpy, h5py dataset or zarr array).
        points: N x 3 world positions (nm).
        offset: world offset (nm) of ``segmentation``.
        voxel_size: voxel size (nm) of ``segmentation``.
        what: a name for the points, used in the warning.
    """
    indices = cremi_voxel_indices(points, offset, voxel_size)
    values, inside = values_at_voxels(segmentation, indices, fill_value=OUTSIDE_LABEL)
    outside = int((~inside).sum())
    if outside:
        log.warning(
            "%d of %d %s lie outside the ground-truth segmentation; they get label %d",
            outside,
            len(inside),
            what,
            OUTSIDE_LABEL,
        )
    return values.astype(np.uint64)
