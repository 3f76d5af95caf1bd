"""CC mode: thresholded connected components, each located at its most interior voxel.

The original (``synful/detection.py::find_locations``, ``extract_type='cc'``): voxels with
probability > threshold (strict), 6-connected components, location = the voxel with the
largest Euclidean distance to the component's outside (the "most interior" voxel, not the
centre of mass), score = sum, mean or max of the probabilities, or the voxel count.

We use the corrected distance transform of the ``fanc_evaluation`` branch: an anisotropic
EDT (sampling = voxel size) of the whole component mask, where every voxel not in the
component, and everything outside the array, counts as outside. Ties go to the first voxel
in C order. Each component is processed inside its bounding box grown by one voxel, which
gives exactly the EDT of the whole array (the nearest outside voxel always lies in that box).
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import edt
import numpy as np

from .candidates import Candidates
from .values import above_threshold, to_values

SCORES = ("sum", "mean", "max", "count")


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected components of a boolean mask: (labels, number of components)."""
    labels, count = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=bool), connectivity=6, return_N=True
    )
    return labels, int(count)


def most_interior_voxel(component: np.ndarray, voxel_size: Sequence[float]) -> tuple[int, ...]:
    """Index of the voxel of ``component`` (boolean) farthest from its outside.

    The outside is every False voxel and everything beyond the array's faces; distances are
    anisotropic (``voxel_size`` per axis). Ties: the first voxel in C order.
    """
    padded = np.pad(np.asarray(component, dtype=bool), 1)
    distances = edt.edtsq(padded, anisotropy=tuple(float(v) for v in voxel_size))
    flat = int(np.argmax(distances))
    return tuple(int(i) - 1 for i in np.unravel_index(flat, padded.shape))


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
) -> Candidates:
    """One candidate per connected component of ``probability > threshold``.

    Args:
        stored: the probability map as stored (z, y, x); values are ``stored / scale``.
        voxel_size: voxel size (nm) for the anisotropic distance transform.
        threshold: probability threshold (strict).
        score: ``sum``, ``mean``, ``max`` or ``count`` of the component's probabilities.
        scale: the map's ``scale`` attribute, or ``None`` for float probabilities.

    Returns:
        :class:`Candidates` with voxel indices into ``stored``, in label (C-scan) order.
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}, expected one of {SCORES}")
    labels, count = label_components(above_threshold(stored, scale, threshold))
    if count == 0:
        return Candidates.empty()
    boxes = cc3d.statistics(labels)["bounding_boxes"]
    voxels = np.zeros((count, 3), np.int64)
    scores = np.zeros(count, np.float64)
    for label in range(1, count + 1):
        box = boxes[label]
        component = labels[box] == label
        local = most_interior_voxel(component, voxel_size)
        voxels[label - 1] = [s.start + i for s, i in zip(box, local)]
        scores[label - 1] = component_score(to_values(stored[box][component], scale), score)
    return Candidates(voxels, scores)
