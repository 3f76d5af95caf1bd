"""CC mode: thresholded connected components, each located at its most interior voxel.

The original (``synful/detection.py::find_locations``, ``extract_type='cc'``): voxels with
probability > threshold (strict), 6-connected components, location = the voxel with the
largest Euclidean distance to a boundary (the "most interior" voxel, not the centre of
mass), score = sum, mean or max of the probabilities, or the voxel count.

Two rules for "most interior" (``location``; docs/extraction.md compares them):

``interior`` (default) -- the corrected distance transform of the ``fanc_evaluation``
branch: an anisotropic EDT (sampling = voxel size, the ``edt`` package) of the whole
component mask, where every voxel not in the component, and everything outside the array,
counts as outside. Ties go to the first voxel in C order. Each component is processed
inside its bounding box grown by one voxel, which gives exactly the EDT of the whole array
(the nearest outside voxel always lies in that box); many such boxes are packed into one
array per EDT call (:func:`most_interior_voxels`).

``master`` -- the rule of the original's master branch, used for the paper's CREMI grid
search (:func:`master_location`): the EDT of the component's bounding-box crop on a grid
of doubled resolution, where only label transitions between face-adjacent voxels are
boundaries and the crop's faces are not; argmax over the component's voxels, first in C
order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cc3d
import edt
import numpy as np
from scipy import ndimage

from ..settings.extract import LOCATIONS, SCORES
from .candidates import Candidates
from .values import above_threshold, tiles_above_threshold, to_values

TILE = (2, 16, 16)


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected components of a boolean mask: (labels, number of components)."""
    mask = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)  # cc3d is faster on uint8
    labels, count = cc3d.connected_components(mask, connectivity=6, return_N=True)
    return labels, int(count)


def most_interior_voxels(
    components: Sequence[np.ndarray], voxel_size: Sequence[float], max_batch_voxels: int = 1 << 22
) -> np.ndarray:
    """For each boolean ``component`` array, the index of its voxel farthest from its outside.

    The outside is every False voxel and everything beyond the array's faces; distances are
    anisotropic (``voxel_size`` per axis); ties go to the first voxel in C order.

    Components are packed side by side along x into a few arrays (grouped by z extent,
    sorted by y extent, each separated from the next by a column of outside voxels) so one
    EDT call serves many components; the nearest outside voxel of any voxel lies inside its
    own component's array grown by one voxel, so packing does not change a distance.
    Squared distances are float32, exact for integer voxel sizes up to 4 µm distance.

    Returns:
        (N, 3) int64 indices, one per component, into that component's array.
    """
    sampling = [float(v) for v in voxel_size]
    shapes = np.array([np.shape(c) for c in components], dtype=np.int64).reshape(-1, 3)
    out = np.zeros((len(shapes), 3), np.int64)
    order = np.lexsort((-shapes[:, 1], -shapes[:, 0]))  # z extent, then y extent, descending
    i = 0
    while i < len(order):
        depth, height = shapes[order[i], :2]
        j, width = i, 1
        while j < len(order) and shapes[order[j], 0] == depth:
            grown = width + shapes[order[j], 2] + 1
            if j > i and grown * (depth + 2) * (height + 2) > max_batch_voxels:
                break
            width, j = grown, j + 1
        batch = order[i:j]
        packed = np.zeros((depth + 2, height + 2, width), dtype=bool)
        starts = []
        x = 1
        for k in batch:
            dz, dy, dx = shapes[k]
            packed[1 : 1 + dz, 1 : 1 + dy, x : x + dx] = components[k]
            starts.append(x)
            x += dx + 1
        # the edt package on uint8 (docs/performance.md, "Distance transforms in extraction")
        distances = edt.edtsq(packed.view(np.uint8), anisotropy=sampling, parallel=1)
        for k, x0 in zip(batch, starts):
            dz, dy, dx = shapes[k]
            view = distances[1 : 1 + dz, 1 : 1 + dy, x0 : x0 + dx]
            out[k] = np.unravel_index(int(np.argmax(view)), view.shape)
        i = j
    return out


def master_boundaries(labels: np.ndarray) -> np.ndarray:
    """Label transitions of ``labels`` on the doubled grid (shape ``2 n - 1`` per axis).

    Transcribes the original's ``synful/detection.py::__find_boundaries``: the point halfway
    between two face-adjacent voxels (odd index along their axis, even along the others)
    is True where their labels differ; voxel positions (all indices even), edge and corner
    midpoints and everything beyond the array are never boundaries.
    """
    labels = np.asarray(labels)
    dims = labels.ndim
    boundaries = np.zeros(tuple(2 * s - 1 for s in labels.shape), dtype=bool)
    for d in range(dims):
        upper = [slice(None)] * dims
        lower = [slice(None)] * dims
        upper[d], lower[d] = slice(1, None), slice(None, -1)
        target = [slice(None, None, 2)] * dims
        target[d] = slice(1, None, 2)
        boundaries[tuple(target)] = labels[tuple(upper)] != labels[tuple(lower)]
    return boundaries


def master_location(
    crop: np.ndarray, component: np.ndarray, voxel_size: Sequence[float]
) -> tuple[int, ...]:
    """The original master branch's location of one component in its bounding-box crop.

    Transcribes ``synful/detection.py::__from_labels_to_edt`` and the masked argmax of
    ``__from_labels_to_locs``: the scipy EDT (float64, then float32 as there) of "not a
    boundary" on the doubled grid with ``sampling = voxel_size / 2`` (boundaries from
    :func:`master_boundaries`), read back at the voxel positions (every second point), and
    the first voxel of ``component`` in C order with the largest distance.

    Only the face-adjacent transitions of the thresholded mask matter, so ``crop`` may be
    the mask (probability > threshold) or the original's labels over the bounding box; other
    components inside the box contribute their boundaries, as in the original. Where the
    crop has no boundary at all (a component filling its box, e.g. 2 voxels in a row),
    scipy (1.17; the same algorithm as in the original's days) measures from the point one
    step before index 0 along the first axis, so the last voxel in C order wins, as in the
    original.

    Args:
        crop: labels or boolean mask over the component's bounding box.
        component: boolean mask of the component, same shape.
        voxel_size: voxel size (nm).
    """
    boundaries = master_boundaries(crop)
    distances = ndimage.distance_transform_edt(
        ~boundaries, sampling=tuple(float(v) / 2 for v in voxel_size)
    ).astype(np.float32)
    distances = distances[(slice(None, None, 2),) * distances.ndim]
    distances = np.where(np.asarray(component, bool), distances, -np.inf)  # numpy.ma's argmax
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(distances)), distances.shape))


def foreground_regions(
    stored: np.ndarray, scale: float | None, threshold: float, tile: Sequence[int] = TILE
) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Boxes of ``stored`` that hold all voxels above ``threshold``, with their masks.

    A coarse pass finds the tiles holding a voxel above the threshold and labels them
    (6-connected); two 6-connected voxels lie in the same or face-adjacent tiles, so every
    component of the fine mask lies inside one group of tiles. Each group yields its
    bounding box (slices into ``stored``) and the fine mask restricted to the group's tiles.
    Labelling only these boxes skips the empty bulk of a sparse map.

    Args:
        stored: the probability map as stored.
        scale: its ``scale`` attribute or ``None``.
        threshold: probability threshold (strict).
        tile: tile shape in voxels.
    """
    groups, count = label_components(tiles_above_threshold(stored, scale, threshold, tile))
    for group, coarse in enumerate(ndimage.find_objects(groups), start=1):
        region = tuple(
            slice(c.start * t, min(c.stop * t, n)) for c, t, n in zip(coarse, tile, stored.shape)
        )
        in_group = groups[coarse] == group
        for axis, t in enumerate(tile):
            in_group = np.repeat(in_group, t, axis=axis)
        in_group = in_group[tuple(slice(0, r.stop - r.start) for r in region)]
        yield region, above_threshold(stored[region], scale, threshold) & in_group


def component_score(values: np.ndarray, score: str) -> float:
    """Score of one component from the probabilities of its voxels."""
    if score == "sum":
        return float(np.sum(values, dtype=np.float64))
    if score == "mean":
        return float(np.mean(values, dtype=np.float64))
    if score == "max":
        return float(np.max(values))
    if score == "count":
        return float(values.size)
    raise ValueError(f"unknown score {score!r}, expected one of {SCORES}")


def cc_candidates(
    stored: np.ndarray,
    voxel_size: Sequence[float],
    *,
    threshold: float = 0.5,
    score: str = "sum",
    scale: float | None = None,
    tile: Sequence[int] = TILE,
    location: str = "interior",
) -> Candidates:
    """One candidate per connected component of ``probability > threshold``.

    Args:
        stored: the probability map as stored (z, y, x); values are ``stored / scale``.
        voxel_size: voxel size (nm) for the anisotropic distance transform.
        threshold: probability threshold (strict).
        score: ``sum``, ``mean``, ``max`` or ``count`` of the component's probabilities.
        scale: the map's ``scale`` attribute, or ``None`` for float probabilities.
        tile: tile shape (voxels) of the coarse pass (:func:`foreground_regions`).
        location: ``interior`` (:func:`most_interior_voxels`) or ``master``
            (:func:`master_location`).

    Returns:
        :class:`Candidates` with voxel indices into ``stored`` (in no particular order).
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}, expected one of {SCORES}")
    if location not in LOCATIONS:
        raise ValueError(f"unknown location {location!r}, expected one of {LOCATIONS}")
    components = []
    boxes = []
    starts = []
    scores = []
    for region, mask in foreground_regions(stored, scale, threshold, tile):
        labels, count = label_components(mask)
        for label, box in enumerate(ndimage.find_objects(labels), start=1):
            component = labels[box] == label
            within = tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, box))
            components.append(component)
            boxes.append(within)
            starts.append([s.start for s in within])
            scores.append(component_score(to_values(stored[within][component], scale), score))
    if not components:
        return Candidates.empty()
    if location == "master":
        # the crop is the whole thresholded mask over the component's bounding box: other
        # components inside it have boundaries too (the original crops its label volume)
        local = np.array(
            [
                master_location(above_threshold(stored[box], scale, threshold), c, voxel_size)
                for box, c in zip(boxes, components)
            ],
            np.int64,
        )
    else:
        local = most_interior_voxels(components, voxel_size)
    return Candidates(np.asarray(starts, np.int64) + local, np.asarray(scores, np.float64))
