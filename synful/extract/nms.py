"""NMS mode: local maxima of the probability map within an ellipsoid of a radius in nm.

The original (``synful/nms.py::find_maxima``): voxel radius ``ceil(radius / voxel_size)``,
footprint = the ellipsoid ``sum((d / r)^2) <= 1``, local maxima = voxels equal to their
maximum-filtered value and > 0, plateaus labelled (6-connected), location = the plateau's
centroid, score = the maximum probability. Here a maximum must also exceed the probability
threshold, and the centroid is snapped to the nearest voxel (halves up).

Only voxels above the threshold can be maxima, and only they can beat one, so when they are
few the maximum filter is evaluated just there (the footprint's offsets gathered from a
zero-padded copy); otherwise ``scipy.ndimage.maximum_filter`` runs on the whole array. Both
treat the outside of the array as 0 and give the same maxima.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .candidates import Candidates
from .components import label_components
from .values import above_threshold, to_values

SPARSE_FRACTION = 0.125


def voxel_radius(
    radius_nm: Sequence[float] | float, voxel_size: Sequence[float]
) -> tuple[int, ...]:
    """``ceil(radius / voxel_size)`` per axis (at least 1)."""
    if np.isscalar(radius_nm):
        radius_nm = (float(radius_nm),) * len(voxel_size)
    return tuple(max(1, math.ceil(float(r) / float(v))) for r, v in zip(radius_nm, voxel_size))


def ellipsoid_footprint(radius: Sequence[int]) -> np.ndarray:
    """Boolean ellipsoid of voxel radii ``radius``: offsets d with ``sum((d / r)^2) <= 1``.

    Tested in integers (``sum(d_i^2 * prod_{j != i} r_j^2) <= prod r^2``), so offsets on the
    surface are included exactly.
    """
    radius = [int(r) for r in radius]
    grids = np.meshgrid(*[np.arange(-r, r + 1, dtype=np.int64) for r in radius], indexing="ij")
    total = math.prod(r * r for r in radius)
    lhs = sum(g * g * (total // (r * r)) for g, r in zip(grids, radius))
    return lhs <= total


def _maxima_dense(stored, scale, footprint, candidates) -> np.ndarray:
    values = to_values(stored, scale)
    filtered = ndimage.maximum_filter(values, footprint=footprint, mode="constant", cval=0)
    return candidates & (values == filtered)


def _maxima_sparse(stored, scale, footprint, candidates) -> np.ndarray:
    radius = [s // 2 for s in footprint.shape]
    padded = np.pad(stored, [(r, r) for r in radius]).reshape(-1)
    padded_shape = tuple(n + 2 * r for n, r in zip(stored.shape, radius))
    strides = np.array([int(np.prod(padded_shape[i + 1 :])) for i in range(len(padded_shape))])
    index = np.flatnonzero(candidates)
    coords = np.stack(np.unravel_index(index, stored.shape), axis=1) + np.array(radius)
    flat = coords @ strides
    center = to_values(padded[flat], scale)
    is_maximum = np.ones(len(flat), dtype=bool)
    for offset in np.argwhere(footprint) - np.array(radius):
        is_maximum &= center >= to_values(padded[flat + int(offset @ strides)], scale)
    maxima = np.zeros(stored.shape, dtype=bool)
    maxima.reshape(-1)[index[is_maximum]] = True
    return maxima


def local_maxima(
    stored: np.ndarray,
    footprint: np.ndarray,
    threshold: float = 0.0,
    method: str = "auto",
    scale: float | None = None,
) -> np.ndarray:
    """Boolean mask of voxels > ``threshold`` (and > 0) equal to their footprint maximum.

    Args:
        stored: the probability map (z, y, x) as stored; values are ``stored / scale``.
        footprint: boolean footprint with odd shape (see :func:`ellipsoid_footprint`).
        threshold: only voxels strictly above it can be maxima.
        method: ``"dense"``, ``"sparse"`` or ``"auto"`` (sparse when few voxels pass).
        scale: the map's ``scale`` attribute, or ``None``.
    """
    stored = np.asarray(stored)
    candidates = above_threshold(stored, scale, max(float(threshold), 0.0))
    if method == "auto":
        few = np.count_nonzero(candidates) < SPARSE_FRACTION * stored.size
        method = "sparse" if few else "dense"
    if method == "dense":
        return _maxima_dense(stored, scale, footprint, candidates)
    if method == "sparse":
        return _maxima_sparse(stored, scale, footprint, candidates)
    raise ValueError(f"unknown method {method!r}")


def nms_candidates(
    stored: np.ndarray,
    voxel_size: Sequence[float],
    *,
    radius: float | Sequence[float] = 40.0,
    threshold: float = 0.0,
    scale: float | None = None,
    method: str = "auto",
) -> Candidates:
    """One candidate per plateau of local maxima, scored by its probability.

    Args:
        stored: the probability map (z, y, x) as stored; values ``stored / scale`` in [0, 1].
        voxel_size: voxel size (nm).
        radius: NMS radius in nm (one value or one per axis).
        threshold: probability threshold (strict).
        scale: the map's ``scale`` attribute, or ``None`` for float probabilities.
        method: see :func:`local_maxima`.

    Returns:
        :class:`Candidates` with voxel indices into ``stored``: the plateau centroid rounded
        to the nearest voxel (halves up), clipped to the array.
    """
    stored = np.asarray(stored)
    footprint = ellipsoid_footprint(voxel_radius(radius, voxel_size))
    maxima = local_maxima(stored, footprint, threshold, method, scale)
    labels, count = label_components(maxima)
    if count == 0:
        return Candidates.empty()
    index = np.flatnonzero(maxima)
    plateau = labels.reshape(-1)[index].astype(np.int64) - 1
    coords = np.stack(np.unravel_index(index, stored.shape), axis=1).astype(np.float64)
    sizes = np.bincount(plateau, minlength=count)
    centroids = np.stack(
        [np.bincount(plateau, weights=coords[:, i], minlength=count) / sizes for i in range(3)],
        axis=1,
    )
    voxels = np.clip(np.floor(centroids + 0.5).astype(np.int64), 0, np.array(stored.shape) - 1)
    scores = np.zeros(count, np.float64)
    scores[plateau] = to_values(stored.reshape(-1)[index], scale)  # one value per plateau
    return Candidates(voxels, scores)
