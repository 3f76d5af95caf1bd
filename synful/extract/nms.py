"""NMS mode: local maxima of the probability map within an ellipsoid of a radius in nm.

The original (``synful/nms.py::find_maxima``): voxel radius ``ceil(radius / voxel_size)``,
footprint = the ellipsoid ``sum((d / r)^2) <= 1``, local maxima = voxels equal to their
maximum-filtered value and > 0, plateaus labelled (6-connected), location = the plateau's
centroid, score = the maximum probability. Here a maximum must also exceed the probability
threshold, and the centroid is snapped to the nearest voxel (halves up).

Border (``border``): the original calls ``scipy.ndimage.maximum_filter`` with its default
``mode='reflect'`` on each block's array; we treat the outside as 0 (``constant``, the
default) or reflect at the faces of the volume only (``reflect``; internal block borders are
zero-padded, the context covers them). Both give the same maxima: a voxel reflected across
a face lies no farther from the footprint's centre, along every axis, than the voxel it
copies, so it is a value already inside the (convex, symmetric) footprint; and a 0 beyond
the face never beats a candidate, which is > 0. The option exists so that this can be
checked (tests/test_extract_location.py), not because results differ.

Only voxels above the threshold can be maxima, and only they can beat one, so when they are
few the maximum filter is evaluated just there (the footprint's offsets gathered from a
padded copy); otherwise ``scipy.ndimage.maximum_filter`` runs on the whole array. Both
give the same maxima.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..settings.extract import BORDERS
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


def reflected_faces(
    border: str, ndim: int, volume_faces: Sequence[tuple[bool, bool]] | None = None
) -> tuple[tuple[bool, bool], ...] | None:
    """Per axis, whether the (lower, upper) face is padded by reflection; ``None`` for none.

    Args:
        border: ``constant`` or ``reflect``.
        ndim: number of axes.
        volume_faces: per axis, whether the array's (lower, upper) face is a face of the
            volume; ``None``: all are (the array is the whole volume).
    """
    if border not in BORDERS:
        raise ValueError(f"unknown border {border!r}, expected one of {BORDERS}")
    if border == "constant":
        return None
    if volume_faces is None:
        return ((True, True),) * ndim
    faces = tuple((bool(lo), bool(hi)) for lo, hi in volume_faces)
    return faces if any(lo or hi for lo, hi in faces) else None


def pad_map(
    stored: np.ndarray, radius: Sequence[int], reflect: Sequence[tuple[bool, bool]] | None = None
) -> np.ndarray:
    """``stored`` padded by ``radius`` per axis: zeros, or by reflection where ``reflect`` says.

    Reflection is ``scipy.ndimage``'s ``mode='reflect'`` (``d c b a | a b c d``, repeated
    for widths beyond the array), which ``numpy.pad(mode='symmetric')`` equals.
    """
    if reflect is None:
        return np.pad(stored, [(r, r) for r in radius])
    out = np.asarray(stored)
    for axis, (r, sides) in enumerate(zip(radius, reflect)):
        for side, mirrored in enumerate(sides):
            width = [(0, 0)] * out.ndim
            width[axis] = (r, 0) if side == 0 else (0, r)
            out = np.pad(out, width, mode="symmetric") if mirrored else np.pad(out, width)
    return out


def _maxima_dense(stored, scale, footprint, candidates, reflect=None) -> np.ndarray:
    values = to_values(stored, scale)
    if reflect is None:
        filtered = ndimage.maximum_filter(values, footprint=footprint, mode="constant", cval=0)
    else:
        radius = [s // 2 for s in footprint.shape]
        padded = to_values(pad_map(stored, radius, reflect), scale)
        filtered = ndimage.maximum_filter(padded, footprint=footprint, mode="constant", cval=0)
        filtered = filtered[tuple(slice(r, r + n) for r, n in zip(radius, stored.shape))]
    return candidates & (values == filtered)


def _maxima_sparse(stored, scale, footprint, candidates, reflect=None) -> np.ndarray:
    radius = [s // 2 for s in footprint.shape]
    padded = pad_map(stored, radius, reflect).reshape(-1)
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
    reflect: Sequence[tuple[bool, bool]] | None = None,
) -> np.ndarray:
    """Boolean mask of voxels > ``threshold`` (and > 0) equal to their footprint maximum.

    Args:
        stored: the probability map (z, y, x) as stored; values are ``stored / scale``.
        footprint: boolean footprint with odd shape (see :func:`ellipsoid_footprint`).
        threshold: only voxels strictly above it can be maxima.
        method: ``"dense"``, ``"sparse"`` or ``"auto"`` (sparse when few voxels pass).
        scale: the map's ``scale`` attribute, or ``None``.
        reflect: per axis, whether beyond the (lower, upper) face the map is its reflection
            (:func:`reflected_faces`); ``None``: 0 beyond every face.
    """
    stored = np.asarray(stored)
    candidates = above_threshold(stored, scale, max(float(threshold), 0.0))
    if method == "auto":
        few = np.count_nonzero(candidates) < SPARSE_FRACTION * stored.size
        method = "sparse" if few else "dense"
    if method == "dense":
        return _maxima_dense(stored, scale, footprint, candidates, reflect)
    if method == "sparse":
        return _maxima_sparse(stored, scale, footprint, candidates, reflect)
    raise ValueError(f"unknown method {method!r}")


def nms_candidates(
    stored: np.ndarray,
    voxel_size: Sequence[float],
    *,
    radius: float | Sequence[float] = 40.0,
    threshold: float = 0.0,
    scale: float | None = None,
    method: str = "auto",
    border: str = "constant",
    volume_faces: Sequence[tuple[bool, bool]] | None = None,
) -> Candidates:
    """One candidate per plateau of local maxima, scored by its probability.

    Args:
        stored: the probability map (z, y, x) as stored; values ``stored / scale`` in [0, 1].
        voxel_size: voxel size (nm).
        radius: NMS radius in nm (one value or one per axis).
        threshold: probability threshold (strict).
        scale: the map's ``scale`` attribute, or ``None`` for float probabilities.
        method: see :func:`local_maxima`.
        border: ``constant`` (0 beyond the volume) or ``reflect`` (the original's scipy
            default) at the faces of the volume; the same maxima either way.
        volume_faces: per axis, whether ``stored``'s (lower, upper) face is a face of the
            volume (a block's other faces are zero-padded); ``None``: all are.

    Returns:
        :class:`Candidates` with voxel indices into ``stored``: the plateau centroid rounded
        to the nearest voxel (halves up), clipped to the array.
    """
    stored = np.asarray(stored)
    footprint = ellipsoid_footprint(voxel_radius(radius, voxel_size))
    reflect = reflected_faces(border, stored.ndim, volume_faces)
    maxima = local_maxima(stored, footprint, threshold, method, scale, reflect)
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
