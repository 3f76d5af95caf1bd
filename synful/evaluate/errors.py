"""Where the errors are: every false negative and false positive of one sample, by cause.

:func:`classify_errors` takes one sample's true and predicted pairs (absolute nm), their
ground-truth labels (:mod:`.labels`, the CREMI rule), which predictions took part in the
matching at the chosen score threshold and the matches themselves (:mod:`.matching`), and
gives every unmatched true pair (false negative, FN) and every unmatched kept prediction
(false positive, FP) one cause: the first of :data:`FN_CAUSES` / :data:`FP_CAUSES` whose rule
applies. The rules (``docs/evaluation.md`` has the same list):

*Near* means: the two post points are at most T (the matching threshold) apart. A
*candidate* is a prediction inside the mask that passed the score threshold and either took
part in the matching or was dropped only by ``--filter-same-seg``.

False negatives (a true pair a -> b, in neuron labels):

1. ``merged_with_neighbour``: a candidate near, with its post in neuron b, was matched to
   another true pair (one detection for two synapses).
2. ``wrong_pre_neuron``: a candidate near has its post in b but its pre in another neuron than
   a (the partner vector ends in the wrong neuron).
3. ``pre_too_far``: a candidate near has both labels right but its pre lies more than T from
   the true pre (the vector ends in the right neuron, too far away).
4. ``wrong_post_neuron``: a candidate near has its post in another neuron than b (a
   neighbouring neuron).
5. ``below_score_threshold``: a prediction near was dropped before the matching: by the score
   threshold (rarely: merged away by ``--merge-radius``, or a same-segment prediction of a
   same-segment true pair dropped by ``--filter-same-seg``).
6. ``mask_border``: no prediction inside the mask near, but one outside it (the mask keeps
   pairs by their post point, so a synapse at the border can lose its detection).
7. ``lost_in_extraction`` (only with the prediction store): no prediction near at all, but the
   post indicator exceeds the extraction threshold within T of the true post, inside neuron b
   (extraction located the component elsewhere, merged it into a neighbour's or dropped it).
8. ``below_threshold``: no prediction near at all (with the prediction store: and the post
   indicator stays at or below the extraction threshold within T of the true post in b).
9. ``other``: none of these (the matching rule leaves no such case; a count here is a bug).

False positives (a kept prediction c -> d that matched nothing):

1. ``duplicate``: a true pair c -> d near was matched to another prediction.
2. ``wrong_pre_neuron``: a true pair near has its post in d but its pre in another neuron
   than c.
3. ``pre_too_far``: a true pair c -> d near is unmatched, but its pre lies more than T from
   the predicted pre.
4. ``wrong_post_neuron``: true pairs are near, but none has its post in d.
5. ``mask_border``: no true pair inside the mask near, but one outside it.
6. ``no_synapse_near``: no true pair near at all (a spurious detection).
7. ``other``: none of these (as for false negatives, a count here is a bug).

The ``mask_border`` causes exist with ``mask_rule: inside_pairs`` only: with ``all_pairs`` (the
default) pairs outside the mask take part in the matching and are near like any other, and
only the errors of pairs inside the mask are counted and listed.

Causes 1-4 of either side look only at pairs near the error; when several apply, the one
with the nearest post decides :data:`ERROR_COLUMNS` ``related_id``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..geometry import Coordinate, Roi
from ..io.prediction_store import read_values
from ..io.synapse_table import POST, PRE
from ..io.zarr_array import Array
from ..lookup import values_at, voxel_indices
from ..settings.evaluate import EvaluateSettings
from .matching import Matches

log = logging.getLogger(__name__)

FN, FP = "fn", "fp"
FN_CAUSES = (
    "merged_with_neighbour",
    "wrong_pre_neuron",
    "pre_too_far",
    "wrong_post_neuron",
    "below_score_threshold",
    "mask_border",
    "lost_in_extraction",
    "below_threshold",
    "other",
)
FP_CAUSES = (
    "duplicate",
    "wrong_pre_neuron",
    "pre_too_far",
    "wrong_post_neuron",
    "mask_border",
    "no_synapse_near",
    "other",
)
#: the per-error table: one row per false negative or false positive
ERROR_COLUMNS = (
    "score_threshold",
    "error",
    "cause",
    "id",
    *PRE,
    *POST,
    "pre_label",
    "post_label",
    "score",
    "related_id",
    "related_distance_nm",
    "post_indicator_max",
)
#: the counts table: one row per sample, then ``all``
COUNT_COLUMNS = (
    "fn",
    *(f"fn_{cause}" for cause in FN_CAUSES),
    "fp",
    *(f"fp_{cause}" for cause in FP_CAUSES),
)
ERRORS_SUFFIX = ".errors.csv"


def errors_path(metrics_path: str | os.PathLike) -> Path:
    """Where the per-error table of a metrics JSON lies: ``X.json`` -> ``X.errors.csv``."""
    path = Path(metrics_path)
    return path.with_name(path.name.removesuffix(".json") + ERRORS_SUFFIX)


def _points(table: pd.DataFrame | None, columns) -> np.ndarray:
    if table is None or len(table) == 0:
        return np.zeros((0, 3))
    return table[list(columns)].to_numpy(dtype=np.float64).reshape(-1, 3)


def _ids(table: pd.DataFrame | None) -> np.ndarray:
    if table is None or len(table) == 0:
        return np.zeros(0, dtype=np.uint64)
    if "id" in table.columns:
        return table["id"].to_numpy(dtype=np.uint64)
    return np.arange(len(table), dtype=np.uint64)


def _near(tree_points: np.ndarray, query: np.ndarray, radius: float) -> list[np.ndarray]:
    """For each query point, the indices of ``tree_points`` within ``radius`` (inclusive),
    nearest first."""
    if len(tree_points) == 0 or len(query) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(len(query))]
    tree = cKDTree(tree_points)
    found = tree.query_ball_point(query, radius * (1.0 + 1e-9) + 1e-9)
    result = []
    for point, indices in zip(query, found):
        indices = np.asarray(indices, dtype=np.int64)
        distance = np.linalg.norm(tree_points[indices] - point, axis=1)
        keep = distance <= radius
        indices, distance = indices[keep], distance[keep]
        result.append(indices[np.lexsort((indices, distance))])
    return result


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def classify_errors(
    gt: pd.DataFrame,
    gt_labels,
    pred: pd.DataFrame,
    pred_labels,
    kept,
    matches: Matches,
    matching_threshold: float = EvaluateSettings.matching_threshold,
    *,
    filtered=None,
    gt_outside: pd.DataFrame | None = None,
    pred_outside: pd.DataFrame | None = None,
    gt_counted=None,
    pred_counted=None,
    indicator_max=None,
    extraction_threshold: float | None = None,
    score_threshold: float | None = None,
) -> pd.DataFrame:
    """Every false negative and false positive of one sample with its cause (module docs).

    Args:
        gt: the true pairs (synapse table, absolute nm): those inside the mask, or every one
            with ``gt_counted``.
        gt_labels: M x 2 ground-truth (pre, post) labels of ``gt``.
        pred: every predicted pair inside the mask (or every one, with ``pred_counted``),
            whatever its score (synapse table).
        pred_labels: N x 2 ground-truth (pre, post) labels of ``pred``.
        kept: boolean (N,): the predictions that took part in the matching.
        matches: the accepted matches among them (:func:`.matching.solve_matching`).
        matching_threshold: T (nm).
        filtered: boolean (N,): predictions that passed the score threshold but were dropped
            by ``--filter-same-seg``; they count as candidates for FN causes 2 and 4.
        gt_outside, pred_outside: true and predicted pairs outside the mask (post point), for
            the ``mask_border`` causes; ``None`` when there is no mask or ``gt`` and ``pred``
            hold every pair (``mask_rule`` ``all_pairs``).
        gt_counted, pred_counted: boolean (M,) and (N,): the true pairs and predictions
            inside the mask (``mask_rule`` ``all_pairs``; ``None``: all), the only ones whose
            errors are counted and listed; the others still take part as neighbours.
        indicator_max: (M,) the highest post indicator within T of each true post inside its
            neuron (:func:`post_indicator_near`), NaN where unknown; ``None`` without a store.
        extraction_threshold: the extraction threshold (indicator > it forms components).
        score_threshold: written in the ``score_threshold`` column.

    Returns:
        A table with :data:`ERROR_COLUMNS`: the false negatives (in ``gt`` order), then the
        false positives (in ``pred`` order). Their numbers equal FN and FP of the matching.
    """
    T = float(matching_threshold)
    gt_labels = np.asarray(gt_labels, dtype=np.uint64).reshape(-1, 2)
    pred_labels = np.asarray(pred_labels, dtype=np.uint64).reshape(-1, 2)
    n_gt, n_pred = len(gt_labels), len(pred_labels)
    kept = np.asarray(kept, dtype=bool).reshape(n_pred)
    filtered = (
        np.zeros(n_pred, dtype=bool)
        if filtered is None
        else np.asarray(filtered, bool).reshape(n_pred)
    )
    if np.any(kept & filtered):
        raise ValueError("a prediction cannot be both kept and filtered")
    candidate = kept | filtered
    gt_pre, gt_post = _points(gt, PRE), _points(gt, POST)
    pred_pre, pred_post = _points(pred, PRE), _points(pred, POST)
    gt_ids, pred_ids = _ids(gt), _ids(pred)
    scores = (
        pred["score"].to_numpy(dtype=np.float64)
        if "score" in pred.columns
        else np.full(n_pred, np.nan)
    )
    match_of_pred = np.full(n_pred, -1, dtype=np.int64)
    match_of_gt = np.full(n_gt, -1, dtype=np.int64)
    match_of_pred[np.asarray(matches.pred, dtype=np.int64)] = matches.gt
    match_of_gt[np.asarray(matches.gt, dtype=np.int64)] = matches.pred
    if indicator_max is not None:
        indicator_max = np.asarray(indicator_max, dtype=np.float64).reshape(n_gt)

    rows = []

    def add(kind, cause, table_row, labels, score, related_id, related_distance, indicator):
        rows.append(
            {
                "score_threshold": score_threshold,
                "error": kind,
                "cause": cause,
                "id": table_row[0],
                **dict(zip(PRE, table_row[1])),
                **dict(zip(POST, table_row[2])),
                "pre_label": int(labels[0]),
                "post_label": int(labels[1]),
                "score": score,
                "related_id": related_id,
                "related_distance_nm": related_distance,
                "post_indicator_max": indicator,
            }
        )

    # ---- false negatives
    gt_counted = np.ones(n_gt, bool) if gt_counted is None else np.asarray(gt_counted, bool)
    pred_counted = np.ones(n_pred, bool) if pred_counted is None else np.asarray(pred_counted, bool)
    missed = np.flatnonzero((match_of_gt < 0) & gt_counted)
    pred_near = _near(pred_post, gt_post[missed], T)
    outside_near = _near(_points(pred_outside, POST), gt_post[missed], T)
    outside_ids = _ids(pred_outside)
    for g, near, outside in zip(missed, pred_near, outside_near):
        a, b = gt_labels[g]
        cause, related = "other", None
        near_candidates = near[candidate[near]]
        right_post = near_candidates[pred_labels[near_candidates, 1] == b]
        rules = (
            ("merged_with_neighbour", right_post[match_of_pred[right_post] >= 0]),
            ("wrong_pre_neuron", right_post[pred_labels[right_post, 0] != a]),
            (
                "pre_too_far",
                [
                    p
                    for p in right_post
                    if pred_labels[p, 0] == a and _distance(pred_pre[p], gt_pre[g]) > T
                ],
            ),
            ("wrong_post_neuron", near_candidates[pred_labels[near_candidates, 1] != b]),
            ("below_score_threshold", near[~kept[near]]),
        )
        for name, found in rules:
            if len(found):
                cause, related = name, int(found[0])
                break
        related_id = None if related is None else int(pred_ids[related])
        related_distance = None if related is None else _distance(pred_post[related], gt_post[g])
        indicator = None if indicator_max is None else float(indicator_max[g])
        if related is None and len(near) == 0:
            if len(outside):
                cause = "mask_border"
                related_id = int(outside_ids[outside[0]])
                related_distance = _distance(_points(pred_outside, POST)[outside[0]], gt_post[g])
            else:
                above = (
                    indicator is not None
                    and extraction_threshold is not None
                    and np.isfinite(indicator)
                    and indicator > extraction_threshold
                )
                cause = "lost_in_extraction" if above else "below_threshold"
        add(
            FN,
            cause,
            (int(gt_ids[g]), gt_pre[g], gt_post[g]),
            (a, b),
            None,
            related_id,
            related_distance,
            indicator,
        )

    # ---- false positives
    wrong = np.flatnonzero(kept & (match_of_pred < 0) & pred_counted)
    gt_near = _near(gt_post, pred_post[wrong], T)
    outside_gt_near = _near(_points(gt_outside, POST), pred_post[wrong], T)
    outside_gt_ids = _ids(gt_outside)
    for p, near, outside in zip(wrong, gt_near, outside_gt_near):
        c, d = pred_labels[p]
        same_post = near[gt_labels[near, 1] == d]
        same_labels = same_post[gt_labels[same_post, 0] == c]
        rules = (
            ("duplicate", same_labels[match_of_gt[same_labels] >= 0]),
            ("wrong_pre_neuron", same_post[gt_labels[same_post, 0] != c]),
            (
                "pre_too_far",
                [g for g in same_labels if _distance(gt_pre[g], pred_pre[p]) > T],
            ),
            ("wrong_post_neuron", near[gt_labels[near, 1] != d]),
        )
        cause, related_id, related_distance = "other", None, None
        for name, found in rules:
            if len(found):
                g = int(found[0])
                cause, related_id = name, int(gt_ids[g])
                related_distance = _distance(gt_post[g], pred_post[p])
                break
        else:
            if len(near) == 0 and len(outside):
                cause = "mask_border"
                related_id = int(outside_gt_ids[outside[0]])
                related_distance = _distance(_points(gt_outside, POST)[outside[0]], pred_post[p])
            elif len(near) == 0:
                cause = "no_synapse_near"
        add(
            FP,
            cause,
            (int(pred_ids[p]), pred_pre[p], pred_post[p]),
            (c, d),
            float(scores[p]),
            related_id,
            related_distance,
            None,
        )
    return error_table(rows)


def error_table(rows: Sequence[dict] | pd.DataFrame = ()) -> pd.DataFrame:
    """A per-error table with :data:`ERROR_COLUMNS` and fixed dtypes (empty when no rows)."""
    table = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    table = table.reindex(columns=list(ERROR_COLUMNS))
    for column in ("id", "pre_label", "post_label", "related_id"):
        table[column] = table[column].astype("UInt64")
    for column in (
        "score_threshold",
        *PRE,
        *POST,
        "score",
        "related_distance_nm",
        "post_indicator_max",
    ):
        table[column] = table[column].astype(np.float64)
    for column in ("error", "cause"):
        table[column] = table[column].astype(object)
    return table


def count_errors(errors: pd.DataFrame) -> dict:
    """Counts by cause (:data:`COUNT_COLUMNS`) of a per-error table."""
    counts = {}
    for kind, causes in ((FN, FN_CAUSES), (FP, FP_CAUSES)):
        mine = errors[errors["error"] == kind]
        counts[kind] = int(len(mine))
        by_cause = mine["cause"].value_counts()
        unknown = set(by_cause.index) - set(causes)
        if unknown:
            raise ValueError(f"unknown {kind} causes {sorted(unknown)}")
        counts.update({f"{kind}_{cause}": int(by_cause.get(cause, 0)) for cause in causes})
    return counts


def error_counts_table(
    per_sample: Mapping[str, pd.DataFrame], combined: str = "all"
) -> pd.DataFrame:
    """One row of counts per sample (in the given order), then their sum as ``combined``.

    Args:
        per_sample: the per-error table of each sample (all at one score threshold).
        combined: the name of the summed row.

    Returns:
        Columns ``sample``, ``score_threshold`` (the samples' one threshold, empty without a
        sweep) and :data:`COUNT_COLUMNS`.
    """
    rows = []
    for sample, errors in per_sample.items():
        thresholds = errors["score_threshold"].dropna().unique()
        if len(thresholds) > 1:
            raise ValueError(f"{sample}: errors at several score thresholds {sorted(thresholds)}")
        threshold = float(thresholds[0]) if len(thresholds) else None
        rows.append({"sample": sample, "score_threshold": threshold, **count_errors(errors)})
    table = pd.DataFrame(rows, columns=["sample", "score_threshold", *COUNT_COLUMNS])
    total = {column: int(table[column].sum()) for column in COUNT_COLUMNS}
    thresholds = table["score_threshold"].dropna().unique()
    total_row = {
        "sample": combined,
        "score_threshold": float(thresholds[0]) if len(thresholds) == 1 else None,
        **total,
    }
    table = pd.concat([table, pd.DataFrame([total_row])], ignore_index=True)
    table["score_threshold"] = table["score_threshold"].astype(np.float64)
    return table


def at_threshold(errors: pd.DataFrame, score_threshold: float | None) -> pd.DataFrame:
    """The rows of a per-error table at one score threshold (``None``: rows without one)."""
    if score_threshold is None:
        return errors[errors["score_threshold"].isna()]
    return errors[np.isclose(errors["score_threshold"], float(score_threshold), rtol=1e-12, atol=0)]


def read_errors(path: str | os.PathLike) -> pd.DataFrame:
    """Read a per-error table written by ``synful evaluate --errors-csv``."""
    from ..errors import SynfulError

    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise SynfulError(path, "no such file") from None
    except Exception as exc:
        raise SynfulError(
            path, f"cannot read the errors table ({type(exc).__name__}: {exc})"
        ) from None
    missing = [c for c in ERROR_COLUMNS if c not in table.columns]
    if missing:
        raise SynfulError(path, f"not an errors table: missing columns {', '.join(missing)}")
    return error_table(table)


# ---- the post indicator near true posts (the prediction store) -------------------------------


def post_indicator_near(
    post_indicator: Array, segmentation: Array, points, labels, radius: float
) -> np.ndarray:
    """The highest post indicator within ``radius`` nm of each point, inside the point's neuron.

    A voxel counts when its centre lies within ``radius`` of the point and the ground-truth
    label at its centre (floor rule) equals the point's label.

    Args:
        post_indicator: the ``post_indicator`` :class:`~funlib.persistence.Array`
            (values are ``stored / scale``).
        segmentation: the ground-truth ``neuron_ids`` :class:`~funlib.persistence.Array`.
        points: N x 3 world points (nm).
        labels: (N,) the label each point's neuron has.
        radius: nm.

    Returns:
        (N,) float64, NaN where no voxel of the neuron within ``radius`` lies in the store.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    labels = np.asarray(labels, dtype=np.uint64).reshape(-1)
    voxel_size = np.asarray(post_indicator.voxel_size, dtype=np.float64)
    offset = np.asarray(post_indicator.offset, dtype=np.float64)
    shape = np.asarray(post_indicator.shape, dtype=np.int64)
    result = np.full(len(points), np.nan)
    for i, (point, label) in enumerate(zip(points, labels)):
        low = voxel_indices(point - radius, offset, voxel_size, "floor")[0]
        high = voxel_indices(point + radius, offset, voxel_size, "floor")[0] + 1
        low, high = np.clip(low, 0, shape), np.clip(high, 0, shape)
        if np.any(high <= low):
            continue
        roi = Roi(
            Coordinate(*(int(v) for v in offset + low * voxel_size)),
            Coordinate(*(int(v) for v in (high - low) * voxel_size)),
        )
        values = np.asarray(read_values(post_indicator, roi), dtype=np.float64)
        grid = np.stack(
            np.meshgrid(*(np.arange(lo, hi) for lo, hi in zip(low, high)), indexing="ij"), -1
        )
        centres = offset + (grid.reshape(-1, 3) + 0.5) * voxel_size
        inside = np.linalg.norm(centres - point, axis=1) <= radius
        if not inside.any():
            continue
        seg_values, seg_inside = values_at(
            segmentation,
            centres[inside],
            "floor",
            outside="fill",
            fill=0,
            return_inside=True,
        )
        same = seg_inside & (seg_values.astype(np.uint64) == label)
        if same.any():
            result[i] = float(np.nanmax(values.reshape(-1)[inside][same]))
    return result


def isolated(gt_post, pred_posts: Sequence, radius: float) -> np.ndarray:
    """Boolean (M,): true posts with no predicted post (of any of the point sets) within
    ``radius``: the only ones whose cause can depend on the post indicator."""
    gt_post = np.asarray(gt_post, dtype=np.float64).reshape(-1, 3)
    alone = np.ones(len(gt_post), dtype=bool)
    for posts in pred_posts:
        posts = np.asarray(posts, dtype=np.float64).reshape(-1, 3)
        alone &= np.array([len(n) == 0 for n in _near(posts, gt_post, radius)], dtype=bool)
    return alone
