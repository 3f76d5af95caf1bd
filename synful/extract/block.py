"""Synapses of one block (or of a whole in-memory volume), without any scheduler.

:func:`extract_block` reads the block's read ROI (write ROI + context, zero outside the
predictions), finds candidates there, keeps those whose post voxel lies in the write ROI
(half-open: every synapse belongs to exactly one block), reads the partner vectors at just
those voxels and returns the synapse table. :func:`extract_from_arrays` does the same for
whole arrays in memory (funlib ``Array``); on the same data both give the same table.

Synapse ids are the linear (C-order) index of the post voxel in the prediction volume's
voxel grid, so they are unique and independent of the block shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..geometry import Roi, points_in_roi
from ..io.prediction_store import scale
from ..io.synapse_table import make_synapses
from ..io.zarr_array import Array, read
from ..lookup import values_at, voxel_indices
from ..settings.extract import ExtractConfig
from .candidates import Candidates
from .components import cc_candidates
from .nms import nms_candidates
from .partners import averaged_vectors, far_enough, partner_locations, read_vectors
from .predictions import Predictions
from .split import split_candidates
from .values import to_values


def find_candidates(
    stored: np.ndarray,
    voxel_size: Sequence[int],
    config: ExtractConfig,
    scale: float | None = None,
    volume_faces: Sequence[tuple[bool, bool]] | None = None,
) -> Candidates:
    """Candidates in a stored probability array, by ``config.mode``, before the score filter.

    ``volume_faces``: per axis, whether the array's (lower, upper) face is a face of the
    prediction volume (``nms_border`` applies there); ``None``: the array is the volume.
    """
    if config.mode == "cc":
        return cc_candidates(
            stored,
            voxel_size,
            threshold=config.threshold,
            score=config.score,
            scale=scale,
            location=config.cc_location,
        )
    if config.mode == "split":
        return split_candidates(
            stored,
            voxel_size,
            threshold=config.threshold,
            levels=config.split_levels,
            min_voxels=config.min_piece_voxels(voxel_size),
            score=config.score,
            scale=scale,
        )
    return nms_candidates(
        stored,
        voxel_size,
        radius=config.nms_radius,
        threshold=config.threshold,
        scale=scale,
        border=config.nms_border,
        volume_faces=volume_faces,
    )


def volume_faces(inside: Roi, volume_roi: Roi) -> tuple[tuple[bool, bool], ...]:
    """Per axis, whether ``inside``'s (lower, upper) face lies on ``volume_roi``'s face."""
    return tuple(
        (int(b) == int(vb), int(e) == int(ve))
        for b, e, vb, ve in zip(inside.begin, inside.end, volume_roi.begin, volume_roi.end)
    )


def synapse_ids(post, volume_roi: Roi, voxel_size: Sequence[int]) -> np.ndarray:
    """uint64 ids: the C-order index of each post voxel in the grid of ``volume_roi``."""
    voxels = voxel_indices(post, volume_roi.begin, voxel_size, "floor")
    shape = tuple(int(s) // int(v) for s, v in zip(volume_roi.shape, voxel_size))
    if len(voxels) == 0:
        return np.zeros(0, np.uint64)
    return np.ravel_multi_index(tuple(voxels.T), shape).astype(np.uint64)


def empty_table(with_seg: bool = False) -> pd.DataFrame:
    """A synapse table without rows, with the columns extraction writes."""
    extra = {"score": np.zeros(0)}
    if with_seg:
        extra.update(pre_seg_id=np.zeros(0), post_seg_id=np.zeros(0))
    return make_synapses(np.zeros((0, 3)), np.zeros((0, 3)), ids=np.zeros(0), **extra)


def assemble_synapses(
    candidates: Candidates,
    origin: Sequence[int],
    volume_roi: Roi,
    voxel_size: Sequence[int],
    config: ExtractConfig,
    vectors_at: Callable[[np.ndarray], np.ndarray],
    owned_roi: Roi | None = None,
    seg: Array | None = None,
) -> pd.DataFrame:
    """Turn candidates found in an array at ``origin`` (nm) into a synapse table.

    Args:
        candidates: found in the array whose voxel 0 lies at ``origin``.
        origin: world position (nm) of the array's first voxel.
        volume_roi: the prediction volume's ROI (ids and the pre grid refer to it).
        voxel_size: voxel size (nm).
        config: the settings (score threshold, minimum distance, autapses).
        vectors_at: partner vectors (N x 3, nm) at post locations (N x 3, nm).
        owned_roi: keep only post points in this ROI (half-open); ``None`` keeps all.
        seg: a segmentation to add ``pre_seg_id``/``post_seg_id`` from (floor rule, 0 outside).
    """
    post = candidates.voxels * np.asarray(voxel_size, np.int64) + np.asarray(origin, np.int64)
    keep = candidates.scores > config.score_threshold
    keep &= points_in_roi(post, volume_roi)
    if owned_roi is not None:
        keep &= points_in_roi(post, owned_roi)
    post, scores = post[keep].astype(np.float64), candidates.scores[keep]
    if len(post) == 0:
        return empty_table(with_seg=seg is not None)
    ids = synapse_ids(post, volume_roi, voxel_size)
    # Two NMS plateaus may round to the same voxel: keep the best-scoring one.
    order = np.lexsort((ids, -scores))
    first = order[np.unique(ids[order], return_index=True)[1]]
    post, scores, ids = post[first], scores[first], ids[first]
    pre = partner_locations(post, vectors_at(post), volume_roi.begin, voxel_size)
    keep = far_enough(pre, post, config.min_distance)
    pre, post, scores, ids = pre[keep], post[keep], scores[keep], ids[keep]
    extra = {"score": scores}
    if seg is not None:
        pre_seg = values_at(seg, pre, "floor", outside="fill").astype(np.uint64)
        post_seg = values_at(seg, post, "floor", outside="fill").astype(np.uint64)
        if config.drop_autapses:
            keep = ~((pre_seg == post_seg) & (pre_seg != 0))
            pre, post, scores, ids = pre[keep], post[keep], scores[keep], ids[keep]
            pre_seg, post_seg = pre_seg[keep], post_seg[keep]
        extra = {"score": scores, "pre_seg_id": pre_seg, "post_seg_id": post_seg}
    table = make_synapses(pre, post, ids=ids, **extra)
    return table.sort_values("id", kind="stable").reset_index(drop=True)


def extract_block(
    config: ExtractConfig,
    predictions: Predictions,
    write_roi: Roi,
    read_roi: Roi,
    seg: Array | None = None,
) -> pd.DataFrame:
    """The synapses whose post point lies in ``write_roi``, found in ``read_roi``.

    Args:
        config: the extraction settings.
        predictions: the opened prediction store.
        write_roi: the block's own region (nm, half-open); it owns the post points inside.
        read_roi: ``write_roi`` grown by the context (nm); read zero-filled outside the store.
        seg: optional segmentation for segment ids.
    """
    mask = predictions.post_indicator
    # Outside the store the map is 0, which is never above a threshold >= 0, never a local
    # maximum and never inside a component: reading only the part inside gives the same
    # candidates without allocating the zero margin. NMS with ``nms_border='reflect'``
    # reflects at those faces of ``inside`` that are faces of the volume (the whole-volume
    # rule), and zero-pads the others (internal block borders, covered by the context).
    inside = read_roi.intersect(mask.roi)
    if inside.empty:
        return empty_table(with_seg=seg is not None)
    stored = read(mask, inside)
    candidates = find_candidates(
        stored, mask.voxel_size, config, scale(mask), volume_faces(inside, mask.roi)
    )
    return assemble_synapses(
        candidates,
        inside.begin,
        mask.roi,
        mask.voxel_size,
        config,
        _vector_reader(
            config,
            mask.voxel_size,
            lambda points: to_values(values_at(mask, points, "floor", outside="fill"), scale(mask)),
            lambda points: read_vectors(predictions.partner_vectors, points),
        ),
        owned_roi=write_roi,
        seg=seg,
    )


def extract_from_arrays(
    probabilities: Array, vectors: Array, config: ExtractConfig
) -> pd.DataFrame:
    """Whole-volume extraction from arrays in memory (no store, no blocks).

    Args:
        probabilities: the probability map (z, y, x), floats in [0, 1] (not a stored,
            scaled array: wrap numpy with :func:`synful.io.zarr_array.world_array`).
        vectors: partner vectors (3, z, y, x), nm, on the same voxel grid.
        config: the extraction settings (``seg`` options do not apply).

    Raises:
        ValueError: the two arrays do not share a voxel size and ROI.
    """
    roi, voxel_size = probabilities.roi, probabilities.voxel_size
    if vectors.roi != roi or vectors.voxel_size != voxel_size:
        raise ValueError(
            f"partner vectors {vectors.roi} ({vectors.voxel_size} nm) do not lie on the grid of "
            f"the probabilities {roi} ({voxel_size} nm)"
        )
    candidates = find_candidates(np.asarray(read(probabilities)), voxel_size, config)

    def at(array: Array, points: np.ndarray) -> np.ndarray:
        """``array`` (channels first) at world points (floor rule), 0 outside: (N, ...)."""
        return values_at(array, points, "floor", outside="fill").astype(np.float64)

    reader = _vector_reader(
        config, voxel_size, lambda p: at(probabilities, p), lambda p: at(vectors, p)
    )
    return assemble_synapses(candidates, roi.begin, roi, voxel_size, config, reader)


def _vector_reader(config: ExtractConfig, voxel_size, probabilities_at, vectors_at):
    """Post points -> partner vectors: at the post voxel (the original), or averaged within
    ``config.vector_radius`` nm."""
    if config.vector_radius <= 0:
        return vectors_at
    return lambda post: averaged_vectors(
        post, voxel_size, config.vector_radius, config.threshold, probabilities_at, vectors_at
    )
