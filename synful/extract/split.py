"""Split mode: connected components that are split where they break apart at higher levels.

Not in the original. A CC threshold low enough to keep the faint detection of one partner
merges the blobs of neighbouring partners of a polyadic synapse (their blobs touch across
the membrane between them); a high one loses the faint partner. Here each component of
``probability > threshold`` is followed up through ``levels``: at the first level where it
falls apart into two or more pieces of at least ``min_voxels`` voxels, each such piece is
followed on from there (smaller debris is dropped); a component that never splits is one
candidate. A single elongated blob with small bumps stays one candidate, two blobs joined by
a saddle become two.

Each candidate is located at the most interior voxel (as in CC mode) of its *core*: its
part above the highest level that still holds ``min_voxels`` voxels (the largest piece
there), which sits at the probability peak and so inside the partner neuron even when the
candidate reaches across a membrane. The score (``sum``, ``mean``, ``max`` or ``count``) is
taken over the whole candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..settings.extract import SPLIT_LEVELS
from .candidates import Candidates
from .components import component_score, foreground_regions, label_components, most_interior_voxels
from .values import to_values


def split_component(
    values: np.ndarray, component: np.ndarray, levels: Sequence[float], min_voxels: int
) -> list[np.ndarray]:
    """The pieces of one boolean ``component`` of ``values`` (same shape), as boolean masks.

    ``levels`` ascending; a piece is split at the first level where it holds at least two
    components of ``min_voxels`` voxels or more.
    """
    pieces = []
    pending = [(component, 0)]
    while pending:
        piece, start = pending.pop()
        split = None
        for k in range(start, len(levels)):
            labels, count = label_components(piece & (values > levels[k]))
            if count == 0:
                break
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            large = np.flatnonzero(sizes[1:] >= min_voxels) + 1
            if len(large) >= 2:
                split = [(labels == label, k + 1) for label in large]
                break
        if split is None:
            pieces.append(piece)
        else:
            pending.extend(split)
    return pieces


def piece_core(
    values: np.ndarray, piece: np.ndarray, levels: Sequence[float], min_voxels: int
) -> np.ndarray:
    """The largest component of ``piece`` above the highest level (``levels`` ascending) where
    it still has ``min_voxels`` voxels (``piece`` itself when no level has)."""
    for level in reversed(levels):
        above = piece & (values > level)
        if np.count_nonzero(above) >= min_voxels:
            labels, count = label_components(above)
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            largest = int(np.argmax(sizes[1:])) + 1
            if sizes[largest] >= min_voxels:
                return labels == largest
    return piece


def split_candidates(
    stored: np.ndarray,
    voxel_size: Sequence[float],
    *,
    threshold: float = 0.5,
    levels: Sequence[float] = SPLIT_LEVELS,
    min_voxels: int = 50,
    score: str = "sum",
    scale: float | None = None,
) -> Candidates:
    """One candidate per piece of the components of ``probability > threshold``.

    Args:
        stored: the probability map as stored (z, y, x); values are ``stored / scale``.
        voxel_size: voxel size (nm) for the anisotropic distance transform.
        threshold: the base threshold (strict).
        levels: the levels at which components are tested for splitting (those above
            ``threshold`` are used, ascending).
        min_voxels: the smallest piece that counts (voxels).
        score: ``sum``, ``mean``, ``max`` or ``count`` over the piece.
        scale: the map's ``scale`` attribute, or ``None`` for float probabilities.

    Returns:
        :class:`Candidates` with voxel indices into ``stored`` (in no particular order).
    """
    levels = sorted(float(level) for level in levels if level > threshold)
    cores, starts, scores = [], [], []
    for region, mask in foreground_regions(stored, scale, threshold):
        labels, _ = label_components(mask)
        for label, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            within = tuple(slice(r.start + b.start, r.start + b.stop) for r, b in zip(region, box))
            values = to_values(stored[within], scale)
            for piece in split_component(values, labels[box] == label, levels, min_voxels):
                cores.append(piece_core(values, piece, levels, min_voxels))
                starts.append([s.start for s in within])
                scores.append(component_score(values[piece], score))
    if not cores:
        return Candidates.empty()
    local = most_interior_voxels(cores, voxel_size)
    return Candidates(np.asarray(starts, np.int64) + local, np.asarray(scores, np.float64))
