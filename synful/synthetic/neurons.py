"""Neuron segmentation: tubes running along z, cut into a power diagram in every section.

Each neuron is a smooth tube: its centre drifts and wanders from section to section and its
weight (squared radius) swells and shrinks, so neurites thicken, thin out and end. In every
section a voxel belongs to the neuron of lowest power distance ``|p - c|^2 - w`` from its
(smoothly warped) position, which gives curved, wiggly boundaries, a mix of thick and thin
profiles, and a label for every voxel (no background).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .noise import smooth_noise, smooth_noise_upsampled

# in-plane downsampling of the coarse pass that picks candidate neurons per block
_COARSE = 8
_CANDIDATES = 6
# in-plane warp of the power diagram: (sigma in voxels, amplitude in voxels) per scale
WARP_SCALES = ((80.0, 10.0), (12.0, 2.5))


def neuron_tubes(
    rng: np.random.Generator, shape: tuple[int, int, int], mean_diameter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Random tube centres (K x z x 2, voxels) and weights (K x z, voxels^2).

    Args:
        rng: the random generator.
        shape: (z, y, x) shape of the volume in voxels.
        mean_diameter: typical in-plane neurite diameter in voxels.
    """
    depth, height, width = shape
    margin = mean_diameter
    area = (height + 2 * margin) * (width + 2 * margin)
    count = max(3, int(round(area / (0.6 * mean_diameter**2))))
    start = np.stack(
        [rng.uniform(-margin, height + margin, count), rng.uniform(-margin, width + margin, count)],
        axis=1,
    )
    drift = rng.normal(0.0, 1.2, (count, 2))
    z = np.arange(depth, dtype=np.float64) - depth / 2
    wander = smooth_noise(rng, (count, depth, 2), (0, 6, 0)) * 4.0
    centres = start[:, None, :] + drift[:, None, :] * z[None, :, None] + wander
    # mostly thin neurites, a few up to twice as thick (no giant profile filling the volume)
    radius = mean_diameter / 2 * np.clip(rng.lognormal(0.0, 0.45, count), 0.5, 2.0)
    swell = np.exp(0.4 * smooth_noise(rng, (count, depth), (0, 8)))
    weights = (radius[:, None] ** 2) * swell
    return centres.astype(np.float32), weights.astype(np.float32)


def neuron_index(
    rng: np.random.Generator, shape: tuple[int, int, int], mean_diameter: float = 60.0
) -> np.ndarray:
    """Index (int32, 0..K-1) of the neuron owning each voxel of a (z, y, x) volume.

    Args:
        rng: the random generator.
        shape: (z, y, x) shape in voxels.
        mean_diameter: typical in-plane neurite diameter in voxels.
    """
    centres, weights = neuron_tubes(rng, shape, mean_diameter)
    # smooth in-plane warps bend the straight power-diagram edges into curves
    warp_y = smooth_noise_upsampled(rng, shape, WARP_SCALES, 4)
    warp_x = smooth_noise_upsampled(rng, shape, WARP_SCALES, 4)
    return power_diagram(centres, weights, warp_y, warp_x)


def power_diagram(
    centres: np.ndarray,
    weights: np.ndarray,
    warp_y: np.ndarray,
    warp_x: np.ndarray,
    candidates: int = _CANDIDATES,
) -> np.ndarray:
    """Per section, the neuron of lowest power distance ``|p + warp - c|^2 - w`` at every voxel.

    A coarse pass finds the ``candidates`` best neurons at the centre of every 8 x 8 block,
    and the fine pass compares only those at every voxel of the block (exact wherever the
    owner of a voxel is among its block's candidates; ``candidates >= K`` is exact everywhere).

    Args:
        centres: (K, z, 2) in-plane tube centres (voxels) per section.
        weights: (K, z) squared radii (voxels^2) per section.
        warp_y, warp_x: (z, y, x) in-plane displacement of each voxel (voxels).
        candidates: neurons compared per block in the fine pass.

    Returns:
        (z, y, x) int32 neuron index.
    """
    depth, height, width = warp_y.shape
    count = len(weights)
    k = min(candidates, count)
    coarse_y = np.arange(0, height, _COARSE)
    coarse_x = np.arange(0, width, _COARSE)
    sample_y = np.minimum(coarse_y + _COARSE // 2, height - 1)
    sample_x = np.minimum(coarse_x + _COARSE // 2, width - 1)
    fine_y = np.arange(height, dtype=np.float32)[:, None]
    fine_x = np.arange(width, dtype=np.float32)[None, :]
    index = np.empty((depth, height, width), dtype=np.int32)
    for z in range(depth):
        cy, cx, w = centres[:, z, 0], centres[:, z, 1], weights[:, z]
        if k < count:
            # coarse pass: the k lowest power distances at warped block centres, found as
            # nearest neighbours after lifting each seed by sqrt(max(w) - w) into a 3rd dimension
            lift = np.sqrt(np.maximum(w.max() - w, 0.0))
            tree = cKDTree(np.stack([cy, cx, lift], axis=1))
            wy = sample_y[:, None] + warp_y[z][np.ix_(sample_y, sample_x)]
            wx = sample_x[None, :] + warp_x[z][np.ix_(sample_y, sample_x)]
            queries = np.stack([wy.ravel(), wx.ravel(), np.zeros(wy.size, np.float32)], axis=1)
            _, near = tree.query(queries, k=k)
            near = near.reshape(len(coarse_y), len(coarse_x), k).astype(np.int32)
            near = np.repeat(np.repeat(near, _COARSE, 0), _COARSE, 1)[:height, :width]
        else:
            near = np.broadcast_to(np.arange(count, dtype=np.int32), (height, width, count))
        # fine pass: exact power distance to the candidates only
        py = fine_y + warp_y[z]
        px = fine_x + warp_x[z]
        best_cost = np.full((height, width), np.inf, dtype=np.float32)
        best = np.zeros((height, width), dtype=np.int32)
        for j in range(k):
            c = near[..., j]
            cost = (py - cy[c]) ** 2 + (px - cx[c]) ** 2 - w[c]
            better = cost < best_cost
            best_cost[better] = cost[better]
            best[better] = c[better]
        index[z] = best
    return index


def neuron_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct random uint64 neuron ids in 1..2**31-1 (as arbitrary as real ones)."""
    return rng.choice(2**31 - 1, size=count, replace=False).astype(np.uint64) + np.uint64(1)
