"""Synful's variants of the CREMI protocol: dropping same-segment predictions, merging duplicates."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .labels import BACKGROUND_LABEL


def same_segment(labels) -> np.ndarray:
    """Boolean mask of pairs whose pre and post fall in the same ground-truth segment.

    These can never match a true pair under label equality (true pairs join two segments), so
    the paper's "with seg" score drops them before matching. Two points that both lie outside
    the segmentation (label 0) count as the same segment.

    Args:
        labels: N x 2 (pre label, post label).
    """
    labels = np.asarray(labels, dtype=np.uint64).reshape(-1, 2)
    return labels[:, 0] == labels[:, 1]


def merge_duplicates(post, labels, scores, radius: float, keep=None) -> np.ndarray:
    """Keep one prediction per cluster of duplicates (FAFB's ``filter_redundant``).

    Predictions with the same (pre label, post label) whose post locations lie within
    ``radius`` nm of each other are linked, and each connected component keeps only its
    highest-scoring member (the first row among equal scores). Predictions with a label 0
    (outside the segmentation, like FAFB's unmapped id -2) are never merged.

    Args:
        post: N x 3 post locations (nm).
        labels: N x 2 (pre label, post label).
        scores: N scores, or ``None`` (then the first row of a cluster is kept).
        radius: linking distance (nm); points at exactly ``radius`` are linked.
        keep: optional boolean mask of the predictions taking part; the others stay dropped.

    Returns:
        Boolean mask (N,) of the predictions that remain.
    """
    post = np.asarray(post, dtype=np.float64).reshape(-1, 3)
    labels = np.asarray(labels, dtype=np.uint64).reshape(-1, 2)
    n = len(post)
    keep = np.ones(n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool).copy()
    scores = np.zeros(n) if scores is None else np.asarray(scores, dtype=np.float64)
    candidates = np.flatnonzero(keep & np.all(labels != BACKGROUND_LABEL, axis=1))
    if len(candidates) < 2:
        return keep
    links = cKDTree(post[candidates]).query_pairs(radius, output_type="ndarray")
    if len(links) == 0:
        return keep
    a, b = candidates[links[:, 0]], candidates[links[:, 1]]
    same_group = np.all(labels[a] == labels[b], axis=1)
    a, b = a[same_group], b[same_group]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # order candidates by component, then highest score, then row; keep the first of each
    order = np.lexsort((candidates, -scores[candidates], component[candidates]))
    ranked = candidates[order]
    first = np.r_[True, component[ranked][1:] != component[ranked][:-1]]
    keep[ranked[~first]] = False
    return keep
