"""Prediction and sample stores written by hand for the extraction tests."""

from __future__ import annotations

import numpy as np
import zarr

from synful.io import prediction_store
from synful.io.prediction_store import PARTNER_VECTORS, POST_INDICATOR
from synful.io.zarr_array import write_volume

VOXEL_SIZE = (40, 4, 4)


def write_prediction_store(
    path,
    probabilities: np.ndarray,
    vectors: np.ndarray,
    *,
    voxel_size=VOXEL_SIZE,
    offset=(0, 0, 0),
    quantized: bool = False,
    chunks=None,
):
    """A prediction store (no ``synful`` mark): float32 arrays without ``scale`` (as another
    tool writes them), or, ``quantized``, predict's uint8 (x255) and int8 (x0.25) with ``scale``."""
    dtype = "uint8" if quantized else "float32"
    volumes = prediction_store.create(
        path,
        shape=np.shape(probabilities),
        voxel_size=voxel_size,
        offset=offset,
        dtype=dtype,
        chunks=chunks,
        scaled=quantized,
    )
    for head, values in ((POST_INDICATOR, probabilities), (PARTNER_VECTORS, vectors)):
        volumes[head][volumes[head].roi] = prediction_store.encode(head, np.asarray(values), dtype)
    return path


def write_sample_store(path, neuron_ids: np.ndarray, *, voxel_size=VOXEL_SIZE, offset=(0, 0, 0)):
    group = zarr.open_group(str(path), mode="w")
    write_volume(group, "neuron_ids", neuron_ids.astype(np.uint64), voxel_size, offset)
    return path


def blob_map(shape, centers, radius_vox=(1, 3, 3), value=0.9, seed=0):
    """Ellipsoid blobs of probability ``value`` (+ noise) at voxel ``centers``."""
    rng = np.random.default_rng(seed)
    prob = np.zeros(shape, np.float32)
    grid = np.indices(shape)
    for c in centers:
        d = sum(((g - ci) / r) ** 2 for g, ci, r in zip(grid, c, radius_vox))
        inside = d <= 1
        prob[inside] = np.maximum(prob[inside], value * (1 - 0.3 * d[inside]))
    prob += rng.uniform(0, 0.05, shape).astype(np.float32) * (prob > 0)
    return np.clip(prob, 0, 1)


def random_vectors(shape, seed, steps):
    """Partner vectors (3, *shape), float32 nm: random multiples of 4 nm in [-4 steps, 4 steps)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-steps, steps, (3, *shape)) * 4).astype(np.float32)
