"""Presynaptic partners: the post location plus the predicted vector at the post voxel.

The original (``synful/detection.py::find_targets``) reads the 3-vector (nm) at the single
post voxel, adds it to the post location and rounds the result to the voxel grid. Locations
use the voxel-corner convention (``index * voxel_size + offset``, absolute nm); rounding is
``floor(x + 0.5)`` (halves up) in voxel units relative to the array offset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io.prediction_store import scale
from ..io.zarr_array import Array, array_path
from ..lookup import values_at, voxel_indices
from .values import to_values


def snap_to_grid(points, offset: Sequence[float], voxel_size: Sequence[float]) -> np.ndarray:
    """World points (N x 3, nm) moved to the nearest voxel corner of the grid at ``offset``."""
    voxels = voxel_indices(points, offset, voxel_size, rule="nearest")
    return voxels * np.asarray(voxel_size, np.float64) + np.asarray(offset, np.float64)


def partner_locations(post, vectors, offset, voxel_size) -> np.ndarray:
    """Pre locations (N x 3, nm): ``post + vector`` snapped to the voxel grid.

    Args:
        post: postsynaptic locations (N x 3, absolute nm, voxel corners).
        vectors: partner vectors at the post voxels (N x 3, nm).
        offset: offset (nm) of the voxel grid.
        voxel_size: voxel size (nm).
    """
    post = np.asarray(post, dtype=np.float64).reshape(-1, 3)
    vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    return snap_to_grid(post + vectors, offset, voxel_size)


def far_enough(pre, post, min_distance: float) -> np.ndarray:
    """Boolean mask of pairs whose pre-post distance is at least ``min_distance`` (nm)."""
    if min_distance <= 0:
        return np.ones(len(np.asarray(pre).reshape(-1, 3)), dtype=bool)
    distance = np.linalg.norm(np.asarray(pre, np.float64) - np.asarray(post, np.float64), axis=-1)
    return distance >= min_distance


def read_vectors(vectors: Array, post) -> np.ndarray:
    """Partner vectors (N x 3, nm, ``scale`` honoured) at the post locations' voxels."""
    if vectors.channel_dims != 1 or vectors.shape[0] != 3:
        raise ValueError(f"{array_path(vectors)}: expected shape (3, z, y, x)")
    return to_values(values_at(vectors, post, "floor", outside="fill"), scale(vectors)).astype(
        np.float64
    )


def averaging_offsets(radius: float, voxel_size: Sequence[float]) -> np.ndarray:
    """(K, 3) integer voxel offsets ``d`` with ``|d * voxel_size| <= radius`` nm, the centre
    first (K = 1 for a radius below the smallest voxel size)."""
    voxel_size = np.asarray(voxel_size, dtype=np.float64)
    reach = np.floor(radius / voxel_size).astype(np.int64)
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    distance = np.linalg.norm(offsets * voxel_size, axis=1)
    offsets = offsets[distance <= radius + 1e-9]
    return offsets[np.argsort(np.linalg.norm(offsets * voxel_size, axis=1), kind="stable")]


def averaged_vectors(
    post,
    voxel_size: Sequence[float],
    radius: float,
    threshold: float,
    probabilities_at,
    vectors_at,
) -> np.ndarray:
    """Partner vectors (N x 3, nm) averaged around each post point (not in the original).

    Every voxel within ``radius`` nm of the post voxel whose probability exceeds
    ``threshold`` votes for a pre location, its own position plus its vector; the votes are
    averaged with the probabilities as weights, and the result is returned as a vector from
    the post point. The post voxel always votes (with weight 1 if its probability is not above
    the threshold), so a radius below the voxel size gives the single-voxel vector.

    Args:
        post: post locations (N x 3, nm, voxel corners).
        voxel_size: voxel size (nm).
        radius: averaging radius (nm).
        threshold: probability threshold of a voting voxel (strict).
        probabilities_at: probabilities (M,) at world points (M x 3).
        vectors_at: vectors (M x 3, nm) at world points (M x 3).
    """
    post = np.asarray(post, dtype=np.float64).reshape(-1, 3)
    offsets = averaging_offsets(radius, voxel_size) * np.asarray(voxel_size, np.float64)
    points = (post[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    n, k = len(post), len(offsets)
    weights = np.asarray(probabilities_at(points), dtype=np.float64).reshape(n, k)
    weights = np.where(weights > threshold, weights, 0.0)
    weights[:, 0] = np.where(weights[:, 0] > 0, weights[:, 0], 1.0)
    votes = points.reshape(n, k, 3) + np.asarray(vectors_at(points), dtype=np.float64).reshape(
        n, k, 3
    )
    mean = np.einsum("nk,nkc->nc", weights, votes) / weights.sum(axis=1, keepdims=True)
    return mean - post
