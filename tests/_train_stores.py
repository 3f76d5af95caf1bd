"""Small sample stores for the training tests (written with the core zarr/table writers)."""

from __future__ import annotations

import numpy as np
import zarr

from synful.io.sample_store import default_synapse_table
from synful.io.synapse_table import make_synapses, write_synapses
from synful.io.zarr_array import write_volume

VS = (40, 4, 4)

TINY_SETUP = {
    "downsample_factors": [[1, 2, 2], [1, 2, 2]],
    "fmap_num": 4,
    "fmap_inc_factor": 2,
    "input_shape": [10, 40, 40],
    "blob_radius": 20,
    "d_blob_radius": 40,
    "d_scale": 0.01,
    "learning_rate": 1e-3,
    "num_workers": 0,
    "checkpoint_every": 2,
    "snapshot_every": 3,
    "log_every": 1,
    "mixed_precision": False,
}


def write_store(
    path,
    shape=(12, 64, 64),
    padding=(10, 20, 20),
    seed=0,
    n_synapses=12,
    training_mask=None,
) -> dict:
    """A store with a padded raw (offset 0), stripe-shaped neurons and synapses across them.

    Args:
        path: the ``.zarr`` path; the table is written beside it.
        shape: the labelled cube (voxels).
        padding: raw context on every side (voxels).
        seed: random seed.
        n_synapses: number of synapses (pre and post in neighbouring stripes).
        training_mask: optional uint8 array of ``shape`` for ``masks/training``.
    """
    rng = np.random.default_rng(seed)
    padding = np.asarray(padding)
    raw_shape = tuple(np.asarray(shape) + 2 * padding)
    raw = rng.integers(60, 200, size=raw_shape, dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint64)
    stripe = 16
    labels[...] = (np.arange(shape[2]) // stripe + 1).astype(np.uint64)[None, None, :]
    labels[:, :, np.arange(shape[2]) % stripe == 0] = 0  # membranes between neurons
    offset = padding * np.asarray(VS)
    group = zarr.open_group(str(path), mode="w")
    write_volume(group, "raw", raw, VS, (0, 0, 0))
    write_volume(group, "neuron_ids", labels, VS, tuple(offset))
    if training_mask is not None:
        write_volume(
            group, "masks/training", np.asarray(training_mask, np.uint8), VS, tuple(offset)
        )
    # post points in stripe k (x in its middle), pre points 20 px further in x (next stripe)
    z = rng.integers(0, shape[0], n_synapses)
    y = rng.integers(4, shape[1] - 4, n_synapses)
    k = rng.integers(0, shape[2] // stripe - 1, n_synapses)
    x_post = k * stripe + stripe // 2 + rng.integers(-3, 4, n_synapses)
    post = np.stack([z, y, x_post], 1) * np.asarray(VS) + offset + np.asarray([5.0, 1.5, 1.5])
    pre = post + np.asarray([0.0, rng.uniform(-30, 30), 80.0])
    table = make_synapses(pre, post)
    write_synapses(table, default_synapse_table(path))
    return {"raw": raw, "labels": labels, "offset": offset, "pre": pre, "post": post}
