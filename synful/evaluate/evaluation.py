"""The evaluation stage: label, filter, match and count, for all predictions and per threshold."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import SynfulError
from ..io.synapse_table import POST, PRE
from .inputs import load_predictions, open_ground_truth, open_region_mask, post_points
from .matching import candidate_edges, solve_matching
from .score import best_entry, metrics_from_counts
from .sweep import kept_at, resolve_thresholds
from .variants import merge_duplicates, same_segment

log = logging.getLogger(__name__)

SCORE_RULE = "score >= threshold"


def _locations(pairs: pd.DataFrame, columns) -> np.ndarray:
    return pairs[columns].to_numpy(dtype=np.float64).reshape(-1, 3)


def evaluate_pairs(
    pred: pd.DataFrame,
    pred_labels,
    gt: pd.DataFrame,
    gt_labels,
    *,
    matching_threshold: float = 400.0,
    score_thresholds: Sequence[float] | None = None,
    filter_same_seg: bool = False,
    pre_only: bool = False,
    merge_radius: float | None = None,
) -> dict:
    """The metrics dict for labelled predicted and true pairs (synapse tables, absolute nm).

    Steps, in the FAFB order: drop same-segment predictions (``filter_same_seg``); per score
    threshold keep ``score >= threshold``; merge duplicates within ``merge_radius``; match by
    the CREMI rule (:mod:`synful.evaluate.matching`).

    Args:
        pred, gt: synapse tables of predicted and true pairs.
        pred_labels, gt_labels: N x 2 and M x 2 ground-truth (pre, post) labels.
        matching_threshold: T in nm (distances ``<= T`` can match).
        score_thresholds: thresholds to sweep, or ``None``; needs a ``score`` column.
        filter_same_seg: drop predictions whose pre and post share a ground-truth segment.
        pre_only: gate and cost on the pre distance only (FAFB).
        merge_radius: merge same-label predictions whose post points are this close (nm).

    Returns:
        The metrics dict (top-level counts for all predictions, ``sweep`` and ``best`` when
        thresholds are given, and ``settings``).
    """
    pred_labels = np.asarray(pred_labels, dtype=np.uint64).reshape(-1, 2)
    gt_labels = np.asarray(gt_labels, dtype=np.uint64).reshape(-1, 2)
    scores = pred["score"].to_numpy(dtype=np.float64) if "score" in pred.columns else None
    if score_thresholds is not None and scores is None:
        raise ValueError("the predictions have no score column to sweep thresholds over")
    active = np.ones(len(pred), dtype=bool)
    if filter_same_seg:
        dropped = same_segment(pred_labels)
        log.info("dropping %d of %d predictions within one segment", int(dropped.sum()), len(pred))
        active &= ~dropped
    pred_post = _locations(pred, POST)
    edges = candidate_edges(
        _locations(pred, PRE),
        pred_post,
        pred_labels,
        _locations(gt, PRE),
        _locations(gt, POST),
        gt_labels,
        matching_threshold,
        pre_only,
    )
    n_gt = len(gt)

    def counts(keep: np.ndarray) -> tuple[int, int, int]:
        if merge_radius is not None:
            keep = merge_duplicates(pred_post, pred_labels, scores, merge_radius, keep)
        tp = len(solve_matching(edges, matching_threshold, keep))
        return tp, int(keep.sum()) - tp, n_gt - tp

    tp, fp, fn = counts(active)
    metrics = metrics_from_counts(tp, fp, fn, matching_threshold)
    if score_thresholds is not None:
        sweep = []
        for threshold in score_thresholds:
            tp, fp, fn = counts(active & kept_at(scores, threshold))
            sweep.append(metrics_from_counts(tp, fp, fn, matching_threshold, threshold))
        metrics["sweep"] = sweep
        metrics["best"] = best_entry(sweep)
    metrics["settings"] = {
        "filter_same_seg": bool(filter_same_seg),
        "pre_only": bool(pre_only),
        "merge_radius_nm": None if merge_radius is None else float(merge_radius),
        "score_rule": SCORE_RULE,
    }
    return metrics


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise SynfulError(name, f"must be a positive number, got {value}")


def evaluate_files(
    pred_path: str | os.PathLike,
    gt_path: str | os.PathLike,
    *,
    matching_threshold: float = 400.0,
    score_thresholds: str | Sequence[float] | None = None,
    filter_same_seg: bool = False,
    mask: str | os.PathLike | None = None,
    pre_only: bool = False,
    merge_radius: float | None = None,
) -> dict:
    """Evaluate a prediction file against ground truth; returns the metrics dict.

    Args:
        pred_path: predicted pairs: Parquet/CSV synapse table or CREMI HDF5 annotations.
        gt_path: a CREMI HDF5 file with ``neuron_ids`` and annotations, or a sample store
            ``X.zarr`` (with ``neuron_ids``) beside its synapse table ``X.parquet``.
        matching_threshold: T in nm.
        score_thresholds: ``None`` (no sweep), ``"auto"`` (from the scores, deterministic) or
            a list of numbers; a prediction is kept at ``score >= threshold``.
        filter_same_seg: drop predictions whose pre and post share a ground-truth segment.
        mask: ``STORE.zarr/ARRAY``; both sides keep only pairs whose post point is inside.
        pre_only: gate and cost on the pre distance only (FAFB protocol).
        merge_radius: merge duplicate predictions within this radius (nm).

    Raises:
        SynfulError: bad or missing inputs (the message names the file).
    """
    _check_positive("--matching-threshold", matching_threshold)
    _check_positive("--merge-radius", merge_radius)
    pred = load_predictions(pred_path)
    if score_thresholds is not None and "score" not in pred.columns:
        raise SynfulError(pred_path, "predictions have no score column, so thresholds cannot be swept")
    region = open_region_mask(mask) if mask is not None else None
    with open_ground_truth(gt_path) as gt:
        gt_pairs = gt.pairs
        if region is not None:
            pred = pred[region.contains(post_points(pred))].reset_index(drop=True)
            gt_pairs = gt_pairs[region.contains(post_points(gt_pairs))].reset_index(drop=True)
        pred_labels = np.stack(
            [gt.labels(_locations(pred, PRE), "predicted pre points"),
             gt.labels(_locations(pred, POST), "predicted post points")],
            axis=1,
        )
        gt_labels = np.stack(
            [gt.labels(_locations(gt_pairs, PRE), "true pre points"),
             gt.labels(_locations(gt_pairs, POST), "true post points")],
            axis=1,
        )
    thresholds = None
    if score_thresholds is not None:
        try:
            thresholds = resolve_thresholds(score_thresholds, pred["score"])
        except ValueError as exc:
            raise SynfulError("--score-thresholds", str(exc)) from None
    metrics = evaluate_pairs(
        pred,
        pred_labels,
        gt_pairs,
        gt_labels,
        matching_threshold=matching_threshold,
        score_thresholds=thresholds,
        filter_same_seg=filter_same_seg,
        pre_only=pre_only,
        merge_radius=merge_radius,
    )
    metrics["inputs"] = {
        "pred": os.fspath(pred_path),
        "gt": os.fspath(gt_path),
        "mask": None if mask is None else os.fspath(mask),
    }
    return metrics
