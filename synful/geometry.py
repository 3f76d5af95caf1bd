"""World-unit geometry: funlib.geometry's ``Roi`` and ``Coordinate`` plus point/voxel helpers.

Axis order is always (z, y, x) and world units are nanometres. The corner of voxel ``i`` is at
``i * voxel_size + offset``; which voxel a world point lies in (and the values there) is
:mod:`synful.lookup`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from funlib.geometry import Coordinate, Roi

__all__ = [
    "Coordinate",
    "Roi",
    "voxels_to_points",
    "roi_from_array",
    "roi_to_slices",
    "snap_roi_to_grid",
    "points_in_roi",
    "is_region_name",
]

# The regions named after a sample store's arrays (``synful predict --roi``), defined here
# only: all of raw, the labelled region (the ROI of ``neuron_ids``) and ``masks/NAME`` (the
# bounding box of a mask's nonzero voxels; resolved by :func:`synful.predict.roi.resolve_roi`).
RAW_REGION = "raw"
LABELS_REGION = "labels"
MASK_REGION_PREFIX = "masks/"
#: the named regions besides ``masks/NAME``
REGION_NAMES = (RAW_REGION, LABELS_REGION)
#: how messages and help texts list the region names
REGION_NAMES_TEXT = f"{RAW_REGION}, {LABELS_REGION} or {MASK_REGION_PREFIX}NAME"
#: the workflow's ``predict.roi`` choices (config/schema.yaml's enum) -> the region predicted
WORKFLOW_REGIONS = {
    "labels": LABELS_REGION,
    "raw": RAW_REGION,
    "validation": f"{MASK_REGION_PREFIX}validation",
}
_MASK_REGION = re.compile("^" + re.escape(MASK_REGION_PREFIX) + r"[A-Za-z0-9_.-]+$")


def is_region_name(text: str) -> bool:
    """Whether ``text`` names a region of a sample store: ``raw``, ``labels`` or ``masks/NAME``."""
    return text in REGION_NAMES or _MASK_REGION.match(text) is not None


def voxels_to_points(voxels, offset: Sequence[float], voxel_size: Sequence[float]) -> np.ndarray:
    """World positions (float64) of voxel corners: ``index * voxel_size + offset``."""
    voxels = np.asarray(voxels, dtype=np.float64).reshape(-1, 3)
    return voxels * np.asarray(voxel_size, dtype=np.float64) + np.asarray(offset, dtype=np.float64)


def roi_from_array(shape: Sequence[int], offset: Sequence[int], voxel_size: Sequence[int]) -> Roi:
    """The world ROI covered by an array of ``shape`` voxels at ``offset`` (nm)."""
    voxel_size = Coordinate(voxel_size)
    return Roi(Coordinate(offset), Coordinate(shape) * voxel_size)


def snap_roi_to_grid(roi: Roi, voxel_size: Sequence[int], mode: str = "grow") -> Roi:
    """Snap a ROI to the voxel grid (``grow``, ``shrink`` or ``closest``)."""
    return roi.snap_to_grid(Coordinate(voxel_size), mode=mode)


def roi_to_slices(roi: Roi, array_offset: Sequence[int], voxel_size: Sequence[int]) -> tuple:
    """Index slices of ``roi`` inside an array whose first voxel sits at ``array_offset``."""
    voxel_size = Coordinate(voxel_size)
    begin = Coordinate(roi.begin) - Coordinate(array_offset)
    if begin % voxel_size != Coordinate((0,) * len(voxel_size)) or (
        roi.shape % voxel_size != Coordinate((0,) * len(voxel_size))
    ):
        raise ValueError(f"{roi} is not aligned with voxel size {voxel_size}")
    begin = begin / voxel_size
    end = begin + roi.shape / voxel_size
    return tuple(slice(b, e) for b, e in zip(begin, end))


def points_in_roi(points, roi: Roi) -> np.ndarray:
    """Boolean mask of world points (N x 3) inside ``roi`` (half-open on every axis)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    begin = np.asarray(roi.begin, dtype=np.float64)
    end = np.asarray(roi.end, dtype=np.float64)
    return np.all((points >= begin) & (points < end), axis=1)
