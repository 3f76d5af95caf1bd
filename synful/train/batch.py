"""Assemble training samples and batches from sample stores (numpy only, no torch).

For one sample: choose an output window, draw a spatial transform of the input window, read
the source region the transform needs (raw zero-padded outside its ROI, labels 0 outside
theirs), resample raw (linear) and labels (nearest), augment the intensities, transform the
synapse points with the inverse transform and render the targets from the transformed points
(so the vectors follow the arrays), then crop the targets to the output window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..geometry import Coordinate, Roi, points_in_roi
from ..io.zarr_array import read, world_array
from .augment import SpatialTransform, augment_defects, augment_intensity, sample_transform
from .sampling import TrainingSample, choose_output_window
from .setup import TrainSetup
from .targets import balance_weights, partner_vectors, post_indicator, radii


def render_sample(
    rng: np.random.Generator,
    sample: TrainingSample,
    output_roi: Roi,
    transform: SpatialTransform,
    setup: TrainSetup,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
) -> dict[str, np.ndarray]:
    """Raw and targets for one output window under one spatial transform.

    Returns:
        ``raw`` float32 (1, Z, Y, X) in [-1, 1]; ``post_indicator`` float32 (1, z, y, x) 0/1;
        ``partner_vectors`` float32 (3, z, y, x) nm; ``vector_mask`` float32 (1, z, y, x);
        ``neuron_ids`` int64 (z, y, x) (the augmented labels of the output window).
    """
    vs = np.asarray(sample.voxel_size, dtype=np.int64)
    input_shape = np.asarray(input_shape, dtype=np.int64)
    output_shape = np.asarray(output_shape, dtype=np.int64)
    context = (input_shape - output_shape) // 2
    input_begin = np.asarray(output_roi.begin, dtype=np.int64) - context * vs

    coords = transform.source_coordinates()
    source_roi, low = _covering_roi(coords, input_begin, vs)
    local = coords - low[:, None, None, None].astype(np.float32)

    raw_source = read(sample.raw, source_roi).astype(np.float32) / np.float32(255.0)
    raw = _interpolate_linear(raw_source, local)
    raw = augment_intensity(rng, raw, setup.intensity)
    raw = augment_defects(rng, raw, setup.defect)
    raw = raw * np.float32(2.0) - np.float32(1.0)

    # the synapses near the source region, moved into the augmented window
    reach_nm = np.maximum(radii(setup.blob_radius), radii(setup.d_blob_radius))
    margin = int(np.ceil(reach_nm.max())) + int(vs.max())
    near = points_in_roi(
        sample.post, source_roi.grow(Coordinate((margin,) * 3), Coordinate((margin,) * 3))
    )
    post = _to_window(transform, sample.post[near], input_begin, vs)
    pre = _to_window(transform, sample.pre[near], input_begin, vs)

    # render on the output window grown by the ball radius (inside the input window), then
    # crop; the labels are looked up there only
    reach = np.ceil(reach_nm / vs).astype(np.int64)
    grow = np.minimum(reach, context)
    begin, end = context - grow, context + output_shape + grow
    window = coords[(slice(None), *(slice(b, e) for b, e in zip(begin, end)))]
    labels_roi, low = _covering_roi(window, input_begin, vs)
    labels = _lookup_nearest(read(sample.labels, labels_roi), window, origin=low)
    window_labels = world_array(labels, vs, input_begin + begin * vs)
    indicator = post_indicator(post, window_labels, setup.blob_radius)
    vectors, vector_mask = partner_vectors(pre, post, window_labels, setup.d_blob_radius)
    crop = tuple(slice(g, g + o) for g, o in zip(grow, output_shape))
    return {
        "raw": raw[None],
        "post_indicator": indicator[crop][None].astype(np.float32),
        "partner_vectors": np.ascontiguousarray(vectors[(slice(None), *crop)]),
        "vector_mask": vector_mask[crop][None].astype(np.float32),
        "neuron_ids": labels[crop].astype(np.int64),
    }


def _covering_roi(coordinates: np.ndarray, input_begin, vs) -> tuple[Roi, np.ndarray]:
    """The world ROI of the source voxels that source ``coordinates`` (3, ...; indices from
    ``input_begin``) read, with a margin for interpolation, and its first index per axis."""
    low = np.floor(coordinates.reshape(3, -1).min(axis=1)).astype(np.int64) - 1
    high = np.ceil(coordinates.reshape(3, -1).max(axis=1)).astype(np.int64) + 2
    return Roi(Coordinate(input_begin + low * vs), Coordinate((high - low) * vs)), low


def _interpolate_linear(source: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """``source`` (z, y, x) at float32 ``coordinates`` (3, ...), linear, 0 outside.

    Where every z coordinate is a whole number (in-plane transforms: no z jitter), each
    section is interpolated in 2D, half the work of 3D interpolation and the same values.
    """
    z = coordinates[0]
    planes = z[:, :1, :1] if z.ndim == 3 else None
    if (
        planes is not None
        and np.array_equal(z, np.broadcast_to(planes, z.shape))
        and np.all(planes == np.rint(planes))
    ):
        out = np.zeros(z.shape, dtype=np.float32)
        for i, plane in enumerate(planes.ravel().astype(np.int64)):
            if 0 <= plane < source.shape[0]:
                out[i] = ndimage.map_coordinates(
                    source[plane], coordinates[1:, i], order=1, mode="constant", cval=0.0
                )
        return out
    return ndimage.map_coordinates(source, coordinates, order=1, mode="constant", cval=0.0).astype(
        np.float32
    )


def _lookup_nearest(source: np.ndarray, coordinates: np.ndarray, origin=(0, 0, 0)) -> np.ndarray:
    """``source``, whose first voxel is at index ``origin``, at the voxels nearest to
    ``coordinates`` (3, ...) (rounding half to even), 0 outside."""
    inside = np.ones(coordinates.shape[1:], dtype=bool)
    flat = np.zeros(coordinates.shape[1:], dtype=np.int64)
    for axis, n in enumerate(source.shape):
        index = np.rint(coordinates[axis]) - origin[axis]
        inside &= (index >= 0) & (index <= n - 1)
        flat *= n
        flat += np.clip(index, 0, n - 1).astype(np.int64)
    labels = source.ravel()[flat]
    labels[~inside] = 0
    return labels


def _to_window(transform: SpatialTransform, points: np.ndarray, input_begin, vs) -> np.ndarray:
    """World points -> world positions in the augmented window (identity without augmentation)."""
    if len(points) == 0:
        return points.reshape(0, 3)
    source_index = (points - input_begin) / vs - 0.5  # sample i sits at index i (voxel centre)
    if transform.is_identity:
        return points.copy()
    return input_begin + (transform.to_target(source_index) + 0.5) * vs


def make_sample(
    rng: np.random.Generator,
    sample: TrainingSample,
    setup: TrainSetup,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    reject_probability: float,
) -> dict[str, np.ndarray]:
    """A random augmented training sample from one store."""
    output_roi = choose_output_window(
        rng, sample, output_shape, reject_probability, setup.min_masked
    )
    transform = sample_transform(rng, input_shape, sample.voxel_size, setup.elastic, setup.simple)
    out = render_sample(rng, sample, output_roi, transform, setup, input_shape, output_shape)
    out["output_begin"] = np.asarray(output_roi.begin, dtype=np.int64)
    return out


def make_batch(
    rng: np.random.Generator,
    samples: Sequence[TrainingSample],
    setup: TrainSetup,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    iteration: int,
) -> dict[str, np.ndarray]:
    """A batch of ``setup.batch_size`` samples, each from a uniformly chosen store.

    The curriculum (if any) sets the reject probability and the balancing clip for
    ``iteration``; ``loss_weights`` balance the post indicator over the whole batch.
    """
    reject_probability = setup.reject_probability_at(iteration)
    parts = []
    for _ in range(setup.batch_size):
        sample = samples[int(rng.integers(len(samples)))]
        parts.append(make_sample(rng, sample, setup, input_shape, output_shape, reject_probability))
    batch = {key: np.stack([p[key] for p in parts]) for key in parts[0]}
    batch["loss_weights"] = balance_weights(
        batch["post_indicator"], setup.balance_clip_at(iteration)
    )
    batch["iteration"] = np.asarray(iteration, dtype=np.int64)
    return batch
