"""The CREMI synaptic-partner matching, solved per connected group instead of densely.

The official rule (``cremi/evaluation/synaptic_partners.py``) fills a square matrix of size
``max(n_pred, n_gt)`` with ``2T``, sets ``cost = (d_pre + d_post) / 2`` for every predicted and
true pair with identical (pre label, post label) and both distances ``<= T``, solves the
minimum-cost assignment and accepts assigned entries with ``cost <= T``.

Why solving small pieces gives the same answer. Call the entries with ``cost <= T`` *edges*.
A perfect assignment that uses the set ``M`` of edges costs
``sum_{e in M} c_e + 2T (N - |M|)`` because every other row is assigned at ``2T``; so
minimising it is the same as finding a matching ``M`` of edges that maximises
``sum_{e in M} (2T - c_e)`` (every weight is in ``[T, 2T]``, always positive). Edges exist
only inside a (pre label, post label) group and only between pairs closer than ``T``, so the
edge graph falls apart into connected components, and a maximum-weight matching of the whole
graph is the union of maximum-weight matchings of its components. Each component is solved
with ``scipy.optimize.linear_sum_assignment`` on its own rectangular matrix filled with ``2T``
(padding it to a square adds only constant ``2T`` rows, so it changes nothing). The number of
accepted matches is therefore the dense rule's.

Ties. When two optimal assignments accept different numbers of matches (two pairs each, one
match at cost 0 plus one unmatched row at ``2T`` against two matches at cost ``T``: both total
``2T``), the dense rule's answer
depends on scipy's internal order. We break such exact ties deterministically towards more
matches: every edge gets a bonus of ``TIE_BONUS * T`` nm (1e-9 of the threshold), far below
any physically meaningful cost difference and far above floating-point noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..settings.evaluate import EvaluateSettings

TIE_BONUS = 1e-9


@dataclass
class Edges:
    """Candidate matches: predicted pair ``pred[k]`` may match true pair ``gt[k]`` at ``cost[k]``."""

    pred: np.ndarray
    gt: np.ndarray
    cost: np.ndarray
    n_pred: int
    n_gt: int

    def __len__(self) -> int:
        return len(self.cost)


@dataclass
class Matches:
    """Accepted matches: predicted pair ``pred[k]`` matched true pair ``gt[k]`` at ``cost[k]``."""

    pred: np.ndarray
    gt: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.cost)


def _points(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 3)


def _labels(values) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64).reshape(-1, 2)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a - b
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def candidate_edges(
    pred_pre,
    pred_post,
    pred_labels,
    gt_pre,
    gt_post,
    gt_labels,
    threshold: float = EvaluateSettings.matching_threshold,
    pre_only: bool = EvaluateSettings.pre_only,
) -> Edges:
    """All (predicted, true) pairs that the rule allows to match, with their costs.

    A candidate has identical (pre label, post label) and ``d_pre <= threshold`` and
    ``d_post <= threshold``; its cost is ``(d_pre + d_post) / 2``. With ``pre_only`` only the
    pre distance is gated and it is the cost (the FAFB protocol).

    Args:
        pred_pre, pred_post: N x 3 predicted pre and post locations (nm).
        pred_labels: N x 2 ground-truth (pre, post) labels of the predicted pairs.
        gt_pre, gt_post: M x 3 true pre and post locations (nm).
        gt_labels: M x 2 ground-truth (pre, post) labels of the true pairs.
        threshold: the matching threshold T (nm).
        pre_only: gate and cost on the pre distance only.
    """
    pred_pre, pred_post, gt_pre, gt_post = map(_points, (pred_pre, pred_post, gt_pre, gt_post))
    pred_labels, gt_labels = _labels(pred_labels), _labels(gt_labels)
    n_pred, n_gt = len(pred_pre), len(gt_pre)
    empty = Edges(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), n_pred, n_gt)
    if n_pred == 0 or n_gt == 0:
        return empty
    query_pred, query_gt = (pred_pre, gt_pre) if pre_only else (pred_post, gt_post)
    # a slightly larger radius for the tree; the exact test below decides
    radius = threshold * (1.0 + 1e-9) + 1e-9
    near = cKDTree(query_pred).sparse_distance_matrix(
        cKDTree(query_gt), radius, output_type="ndarray"
    )
    pred_index = near["i"].astype(np.int64)
    gt_index = near["j"].astype(np.int64)
    same = np.all(pred_labels[pred_index] == gt_labels[gt_index], axis=1)
    pred_index, gt_index = pred_index[same], gt_index[same]
    d_pre = _distance(pred_pre[pred_index], gt_pre[gt_index])
    if pre_only:
        keep = d_pre <= threshold
        cost = d_pre
    else:
        d_post = _distance(pred_post[pred_index], gt_post[gt_index])
        keep = (d_pre <= threshold) & (d_post <= threshold)
        cost = 0.5 * (d_pre + d_post)
    order = np.lexsort((gt_index[keep], pred_index[keep]))
    return Edges(pred_index[keep][order], gt_index[keep][order], cost[keep][order], n_pred, n_gt)


def solve_matching(
    edges: Edges, threshold: float = EvaluateSettings.matching_threshold, pred_keep=None
) -> Matches:
    """The rule's accepted matches, solved per connected component of the candidate graph.

    Args:
        edges: candidates from :func:`candidate_edges`.
        threshold: the matching threshold T (nm); unmatched and forbidden entries cost 2T.
        pred_keep: optional boolean mask (n_pred,) of the predictions that take part.
    """
    pred, gt, cost = edges.pred, edges.gt, edges.cost
    if pred_keep is not None:
        keep = np.asarray(pred_keep, dtype=bool)[pred]
        pred, gt, cost = pred[keep], gt[keep], cost[keep]
    if len(cost) == 0:
        return Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    n_pred = edges.n_pred
    n_nodes = n_pred + edges.n_gt
    graph = coo_matrix((np.ones(len(cost)), (pred, n_pred + gt)), shape=(n_nodes, n_nodes))
    _, component_of_node = connected_components(graph, directed=False)
    component = component_of_node[pred]
    order = np.argsort(component, kind="stable")
    pred, gt, cost, component = pred[order], gt[order], cost[order], component[order]
    starts = np.flatnonzero(np.r_[True, component[1:] != component[:-1]])
    ends = np.r_[starts[1:], len(component)]

    matched_edges = []
    forbidden = 2.0 * threshold
    bonus = TIE_BONUS * threshold
    for start, end in zip(starts, ends):
        if end - start == 1:
            matched_edges.append(start)
            continue
        local_pred, row = np.unique(pred[start:end], return_inverse=True)
        local_gt, col = np.unique(gt[start:end], return_inverse=True)
        if len(local_pred) == 1 or len(local_gt) == 1:
            # at most one match is possible and any one edge beats none: take the cheapest
            matched_edges.append(start + int(np.argmin(cost[start:end])))
            continue
        matrix = np.full((len(local_pred), len(local_gt)), forbidden)
        is_edge = np.zeros(matrix.shape, dtype=bool)
        matrix[row, col] = cost[start:end] - bonus
        is_edge[row, col] = True
        edge_id = np.full(matrix.shape, -1, dtype=np.int64)
        edge_id[row, col] = np.arange(start, end)
        rows, cols = linear_sum_assignment(matrix)
        accepted = is_edge[rows, cols]
        matched_edges.extend(edge_id[rows[accepted], cols[accepted]].tolist())
    matched = np.asarray(matched_edges, dtype=np.int64)
    result_order = np.argsort(pred[matched], kind="stable")
    matched = matched[result_order]
    return Matches(pred[matched], gt[matched], cost[matched])


def match_pairs(
    pred_pre,
    pred_post,
    pred_labels,
    gt_pre,
    gt_post,
    gt_labels,
    threshold: float = EvaluateSettings.matching_threshold,
    pre_only: bool = EvaluateSettings.pre_only,
) -> Matches:
    """Candidate edges and their per-component assignment in one call (see the two parts)."""
    edges = candidate_edges(
        pred_pre, pred_post, pred_labels, gt_pre, gt_post, gt_labels, threshold, pre_only
    )
    return solve_matching(edges, threshold)
