"""Training targets from synapse points (numpy, prediction-free).

The targets are drawn on a window of neuron labels, a funlib.persistence ``Array`` (its
``offset``, nm, is the corner of its first voxel; its ``voxel_size`` in nm); points are world
positions in nm, (N, 3) in (z, y, x). A point lies in the voxel
``floor((p - offset) / voxel_size)``; vectors start at the voxel corner. The balls are drawn by
pure numpy kernels in voxel units.

- postsynaptic indicator: a ball of ``blob_radius`` nm around each post point's voxel (a
  radius is one number or one per axis (z, y, x), an ellipsoid: e.g. thicker in z, so that
  the indicator spans the sections next to the post point's),
  clipped to the neuron under the post point (post points on label 0 draw nothing);
- partner vectors: inside a ``d_blob_radius`` ball around each post point (clipped the same
  way) the vector (pre - voxel corner) in nm; where balls overlap the post point nearest to
  the voxel's centre wins;
- vector mask: the union of the clipped vector balls;
- balancing weights: per window w_c = 1 / (2 clip(f_c, clipmin, clipmax)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io.zarr_array import Array, read
from ..lookup import voxel_indices

DEFAULT_BALANCE_CLIP = (7e-4, 0.9993)


def radii(radius: float | Sequence[float]) -> np.ndarray:
    """A ball radius in nm, one number or one per axis (z, y, x), as three numbers."""
    return np.broadcast_to(np.asarray(radius, dtype=np.float64), (3,)).copy()


def ball_offsets(radius: float | Sequence[float], voxel_size: Sequence[float]) -> np.ndarray:
    """Voxel offsets (K, 3) with sum((d * voxel_size / radius)^2) <= 1 (the original's ball;
    an ellipsoid for a radius per axis)."""
    voxel_size = np.asarray(voxel_size, dtype=np.float64)
    radius = radii(radius)
    if radius.min() <= 0:
        return np.zeros((1, 3), dtype=np.int64)
    extent = np.floor(radius / voxel_size).astype(np.int64)
    axes = [np.arange(-e, e + 1) for e in extent]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = (((grid * voxel_size) / radius) ** 2).sum(axis=1) <= 1.0
    return grid[inside]


def _ball_voxels(post_voxels, labels, radius, voxel_size):
    """For every post voxel inside ``labels`` with a non-zero label: its clipped ball.

    Returns (flat voxel indices, point index per entry) over all balls.
    """
    shape = np.array(labels.shape)
    offsets = ball_offsets(radius, voxel_size)
    inside = np.all((post_voxels >= 0) & (post_voxels < shape), axis=1)
    point_ids = np.flatnonzero(inside)
    if len(point_ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    centres = post_voxels[point_ids]
    centre_labels = labels[tuple(centres.T)]
    keep = centre_labels != 0
    point_ids, centres, centre_labels = point_ids[keep], centres[keep], centre_labels[keep]
    voxels = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    owners = np.repeat(point_ids, len(offsets))
    owner_labels = np.repeat(centre_labels, len(offsets))
    valid = np.all((voxels >= 0) & (voxels < shape), axis=1)
    voxels, owners, owner_labels = voxels[valid], owners[valid], owner_labels[valid]
    same = labels[tuple(voxels.T)] == owner_labels
    voxels, owners = voxels[same], owners[same]
    return np.ravel_multi_index(tuple(voxels.T), labels.shape), owners


def post_indicator(post, labels: Array, blob_radius: float | Sequence[float]) -> np.ndarray:
    """The postsynaptic indicator (uint8 0/1, the spatial shape of ``labels``).

    Args:
        post: (N, 3) post locations in nm.
        labels: neuron ids of the window (0 = no neuron), an ``Array`` without channels.
        blob_radius: ball radius in nm (one number or one per axis).
    """
    voxel_size = labels.voxel_size
    post_voxels = voxel_indices(post, labels.offset, voxel_size, "floor")
    labels = np.asarray(read(labels))
    flat, _ = _ball_voxels(post_voxels, labels, blob_radius, voxel_size)
    out = np.zeros(labels.shape, dtype=np.uint8)
    out.reshape(-1)[flat] = 1
    return out


def partner_vectors(
    pre, post, labels: Array, d_blob_radius: float | Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Partner vectors (float32 (3, z, y, x), nm) and their mask (uint8 (z, y, x)).

    Args:
        pre: (N, 3) pre locations in nm (the partner of each post point).
        post: (N, 3) post locations in nm.
        labels: neuron ids of the window, an ``Array`` without channels.
        d_blob_radius: ball radius in nm (one number or one per axis).
    """
    offset, voxel_size = labels.offset, labels.voxel_size
    labels = np.asarray(read(labels))
    pre = np.asarray(pre, dtype=np.float64).reshape(-1, 3)
    post = np.asarray(post, dtype=np.float64).reshape(-1, 3)
    vs = np.asarray(voxel_size, dtype=np.float64)
    off = np.asarray(offset, dtype=np.float64)
    vectors = np.zeros((3, *labels.shape), dtype=np.float32)
    mask = np.zeros(labels.shape, dtype=np.uint8)
    flat, owners = _ball_voxels(
        voxel_indices(post, offset, voxel_size, "floor"), labels, d_blob_radius, voxel_size
    )
    if len(flat) == 0:
        return vectors, mask
    corners = np.stack(np.unravel_index(flat, labels.shape), axis=1) * vs + off
    # nearest post point measured from the voxel centre (symmetric under mirroring)
    distance = ((corners + vs / 2 - post[owners]) ** 2).sum(axis=1)
    # per voxel, the nearest post point: sort by (voxel, distance) and keep the first
    order = np.lexsort((distance, flat))
    flat, owners, corners = flat[order], owners[order], corners[order]
    first = np.concatenate([[True], flat[1:] != flat[:-1]])
    flat, owners, corners = flat[first], owners[first], corners[first]
    values = (pre[owners] - corners).astype(np.float32)
    for axis in range(3):
        vectors[axis].reshape(-1)[flat] = values[:, axis]
    mask.reshape(-1)[flat] = 1
    return vectors, mask


def balance_weights(labels: np.ndarray, clip: Sequence[float] = DEFAULT_BALANCE_CLIP) -> np.ndarray:
    """Class-balancing weights (float32, shape of ``labels``) for a binary label array.

    f_c = (count of class c) / N, clipped to ``clip``; w_c = 1 / (2 f_c), written to every
    voxel of class c (computed over the whole array, i.e. per batch).
    """
    labels = np.asarray(labels) > 0
    weights = np.empty(labels.shape, dtype=np.float32)
    total = max(labels.size, 1)
    for value in (False, True):
        fraction = np.clip(np.count_nonzero(labels == value) / total, clip[0], clip[1])
        weights[labels == value] = 1.0 / (2.0 * fraction)
    return weights
