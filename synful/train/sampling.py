"""Where training windows come from: sample stores, their sampling regions and random windows.

A window is sampled inside ``masks/training`` when the store has one (at least ``min_masked``
of the output window in the mask), else inside the labelled region (the ``neuron_ids`` ROI).
With probability ``reject_probability`` the window is placed so that at least one post point
(inside the sampling region) lies in the output window (gunpowder's ``ensure_nonempty``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import SynfulError
from ..geometry import Coordinate, Roi, points_in_roi
from ..io import sample_store
from ..io.synapse_table import POST, PRE, read_synapses
from ..io.zarr_array import Array, array_path, in_memory, nbytes, read
from ..lookup import values_at, voxel_indices

MAX_TRIES = 200


@dataclass
class TrainingSample:
    """One sample store opened for training.

    Attributes:
        path: the store.
        raw: the raw volume (may be larger than the labels).
        labels: the ``neuron_ids`` volume.
        mask: ``masks/training`` or ``None``.
        region: where output windows may lie (the labels ROI, intersected with the mask's ROI).
        pre, post: (N, 3) synapse locations (nm).
        candidates: indices of synapses whose post point lies in the sampling region (and mask).
    """

    path: Path
    raw: Array
    labels: Array
    mask: Array | None
    region: Roi
    pre: np.ndarray
    post: np.ndarray
    candidates: np.ndarray

    @property
    def voxel_size(self) -> Coordinate:
        return self.labels.voxel_size


def open_training_sample(path: str | os.PathLike, voxel_size=None, synapses=None) -> TrainingSample:
    """Open a sample store and the synapse table beside it for training.

    Args:
        path: the sample store (``raw``, ``neuron_ids``, optional ``masks/training``).
        voxel_size: the setup's voxel size, checked against the store (nm).
        synapses: the synapse table (default: ``default_synapse_table(path)``).

    Raises:
        SynfulError: missing arrays or table, mismatched voxel sizes or grids.
    """
    path = Path(path)
    raw = sample_store.open_raw(path)
    labels = sample_store.open_neuron_ids(path)
    mask = sample_store.open_mask(path, "training")
    vs = labels.voxel_size
    for volume in [raw] + ([mask] if mask is not None else []):
        if volume.voxel_size != vs:
            raise SynfulError(
                path,
                f"{array_path(volume)} has voxel size {list(volume.voxel_size)}, neuron_ids {list(vs)}",
            )
        if (volume.offset - labels.offset) % vs != Coordinate((0, 0, 0)):
            raise SynfulError(path, f"{array_path(volume)} is not on the voxel grid of neuron_ids")
    if voxel_size is not None and Coordinate(voxel_size) != vs:
        raise SynfulError(
            path, f"voxel size {list(vs)} differs from the setup's voxel_size {list(voxel_size)}"
        )
    region = labels.roi if mask is None else labels.roi.intersect(mask.roi)
    if region.empty:
        raise SynfulError(path, "masks/training does not overlap neuron_ids")
    table = read_synapses(
        synapses if synapses is not None else sample_store.default_synapse_table(path)
    )
    pre = table[PRE].to_numpy(np.float64).reshape(-1, 3)
    post = table[POST].to_numpy(np.float64).reshape(-1, 3)
    inside = points_in_roi(post, region)
    if mask is not None and inside.any():
        values = values_at(mask, post[inside], "floor", outside="raise")
        inside[np.flatnonzero(inside)[values == 0]] = False
    return TrainingSample(path, raw, labels, mask, region, pre, post, np.flatnonzero(inside))


def load_small_arrays(sample: TrainingSample, max_bytes: int) -> TrainingSample:
    """``sample`` with each of its arrays of at most ``max_bytes`` read into memory (the others
    stay zarr-backed); reading a window from memory saves the per-read zarr overhead."""

    def load(volume):
        return in_memory(volume) if volume is not None and nbytes(volume) <= max_bytes else volume

    return replace(sample, raw=load(sample.raw), labels=load(sample.labels), mask=load(sample.mask))


def choose_output_window(
    rng: np.random.Generator,
    sample: TrainingSample,
    output_shape,
    reject_probability: float,
    min_masked: float = 1.0,
) -> Roi:
    """A random output window (world ROI on the labels' voxel grid) inside the sampling region.

    Args:
        rng: the random generator.
        sample: the opened store.
        output_shape: the network output shape in voxels.
        reject_probability: probability of forcing a post point into the window.
        min_masked: the fraction of the window that must lie in ``masks/training``.

    Raises:
        SynfulError: if the region is smaller than the window, or no window satisfies the mask.
    """
    vs = np.asarray(sample.voxel_size, dtype=np.int64)
    size = np.asarray(output_shape, dtype=np.int64) * vs
    offset = np.asarray(sample.labels.offset, dtype=np.int64)
    # begins (in voxels of the labels grid) so that the window lies inside the region
    low = -(-(np.asarray(sample.region.begin) - offset) // vs)
    high = (np.asarray(sample.region.end) - offset - size) // vs
    if np.any(high < low):
        raise SynfulError(
            sample.path,
            f"the sampling region {sample.region} is smaller than the network output window "
            f"{list(size)} nm",
        )
    for _ in range(MAX_TRIES):
        if len(sample.candidates) and rng.random() < reject_probability:
            point = sample.post[rng.choice(sample.candidates)]
            point_voxel = voxel_indices(point, offset, vs, "floor")[0]
            lo = np.maximum(low, point_voxel - np.asarray(output_shape) + 1)
            hi = np.minimum(high, point_voxel)
            if np.any(hi < lo):
                continue
            begin = rng.integers(lo, hi + 1)
        else:
            begin = rng.integers(low, high + 1)
        roi = Roi(Coordinate(begin * vs + offset), Coordinate(size))
        if sample.mask is None or _masked_fraction(sample.mask, roi) >= min_masked:
            return roi
    raise SynfulError(
        sample.path,
        f"found no output window with >= {min_masked:.0%} inside masks/training in {MAX_TRIES} tries",
    )


def _masked_fraction(mask: Array, roi: Roi) -> float:
    data = read(mask, roi)
    return float(np.count_nonzero(data)) / max(data.size, 1)
