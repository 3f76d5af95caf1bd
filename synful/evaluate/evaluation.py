"""The evaluation stage: label, filter, match and count, for all predictions and per threshold."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import SynfulError
from ..io.synapse_table import POST, PRE
from ..settings.evaluate import ERRORS_AT, ErrorSettings, EvaluateSettings
from ..settings.extract import ExtractConfig
from .errors import classify_errors, error_table, isolated, post_indicator_near
from .inputs import in_region, load_predictions, open_ground_truth, open_region_mask, post_points
from .matching import candidate_edges, solve_matching
from .score import best_entry, metrics_from_counts
from .sweep import kept_at, resolve_thresholds
from .variants import merge_duplicates, same_segment

log = logging.getLogger(__name__)

SCORE_RULE = "score >= threshold"


def _locations(pairs: pd.DataFrame, columns) -> np.ndarray:
    return pairs[columns].to_numpy(dtype=np.float64).reshape(-1, 3)


class _Prepared:
    """Labelled pairs ready to match: the same-segment filter and the candidate edges, once."""

    def __init__(
        self,
        pred: pd.DataFrame,
        pred_labels,
        gt: pd.DataFrame,
        gt_labels,
        settings: EvaluateSettings,
        pred_inside=None,
        gt_inside=None,
    ):
        self.settings = settings
        # what is counted (mask_rule all_pairs): every pair takes part in the matching; FP are
        # unmatched predictions inside the mask, TP and FN the true pairs inside it
        self.pred_inside = (
            np.ones(len(pred), dtype=bool) if pred_inside is None else np.asarray(pred_inside)
        )
        self.gt_inside = (
            np.ones(len(gt), dtype=bool) if gt_inside is None else np.asarray(gt_inside)
        )
        self.pred_labels = np.asarray(pred_labels, dtype=np.uint64).reshape(-1, 2)
        self.gt_labels = np.asarray(gt_labels, dtype=np.uint64).reshape(-1, 2)
        self.scores = pred["score"].to_numpy(dtype=np.float64) if "score" in pred.columns else None
        self.matching_threshold = settings.matching_threshold
        self.merge_radius = settings.merge_radius
        self.n_gt = int(self.gt_inside.sum())
        self.same_segment = np.zeros(len(pred), dtype=bool)
        if settings.filter_same_seg:
            self.same_segment = same_segment(self.pred_labels)
            log.info(
                "dropping %d of %d predictions within one segment",
                int(self.same_segment.sum()),
                len(pred),
            )
        self.pred_post = _locations(pred, POST)
        self.edges = candidate_edges(
            _locations(pred, PRE),
            self.pred_post,
            self.pred_labels,
            _locations(gt, PRE),
            _locations(gt, POST),
            self.gt_labels,
            settings.matching_threshold,
            settings.pre_only,
        )

    def scored(self, score_threshold: float | None) -> np.ndarray:
        """The predictions that pass the score threshold (all for ``None``)."""
        if score_threshold is None:
            return np.ones(len(self.pred_labels), dtype=bool)
        return kept_at(self.scores, score_threshold)

    def kept(self, score_threshold: float | None) -> np.ndarray:
        """The predictions that take part in the matching at a score threshold."""
        keep = self.scored(score_threshold) & ~self.same_segment
        if self.merge_radius is not None:
            keep = merge_duplicates(
                self.pred_post, self.pred_labels, self.scores, self.merge_radius, keep
            )
        return keep

    def matches(self, keep: np.ndarray):
        return solve_matching(self.edges, self.matching_threshold, keep)

    def entry(self, score_threshold: float | None) -> dict:
        keep = self.kept(score_threshold)
        matches = self.matches(keep)
        tp = int(self.gt_inside[matches.gt].sum())
        fp = int((keep & self.pred_inside).sum()) - int(self.pred_inside[matches.pred].sum())
        return metrics_from_counts(tp, fp, self.n_gt - tp, self.matching_threshold, score_threshold)


def evaluate_pairs(
    pred: pd.DataFrame, pred_labels, gt: pd.DataFrame, gt_labels, **settings
) -> dict:
    """The metrics dict for labelled predicted and true pairs (synapse tables, absolute nm).

    Steps, in the FAFB order: drop same-segment predictions (``filter_same_seg``); per score
    threshold keep ``score >= threshold``; merge duplicates within ``merge_radius``; match by
    the CREMI rule (:mod:`synful.evaluate.matching`).

    Args:
        pred, gt: synapse tables of predicted and true pairs.
        pred_labels, gt_labels: N x 2 and M x 2 ground-truth (pre, post) labels.
        settings: fields of :class:`synful.settings.evaluate.EvaluateSettings` (each its
            default when not given): ``matching_threshold`` T in nm (distances ``<= T`` can
            match); ``score_thresholds`` to sweep, in the given order, or ``None`` (needs a
            ``score`` column); ``filter_same_seg``; ``pre_only`` (FAFB); ``merge_radius`` (nm).

    Returns:
        The metrics dict (top-level counts for all predictions, ``sweep`` and ``best`` when
        thresholds are given, and ``settings``).
    """
    settings = EvaluateSettings(**settings)
    if settings.score_thresholds is not None and "score" not in pred.columns:
        raise ValueError("the predictions have no score column to sweep thresholds over")
    prepared = _Prepared(pred, pred_labels, gt, gt_labels, settings)
    return _metrics(prepared, settings.score_thresholds)


def _metrics(prepared: _Prepared, score_thresholds) -> dict:
    metrics = prepared.entry(None)
    if score_thresholds is not None:
        sweep = [prepared.entry(threshold) for threshold in score_thresholds]
        metrics["sweep"] = sweep
        metrics["best"] = best_entry(sweep)
    settings = prepared.settings
    metrics["settings"] = {
        "filter_same_seg": settings.filter_same_seg,
        "pre_only": settings.pre_only,
        "merge_radius_nm": settings.merge_radius,
        "score_rule": SCORE_RULE,
    }
    return metrics


def error_thresholds(
    metrics: dict, errors_at: str | None = ErrorSettings.errors_at
) -> list[float | None]:
    """The score thresholds errors are classified at: the best of the sweep (``best`` or
    ``None``) or every swept one (``sweep``); ``[None]`` (all predictions) without a sweep."""
    if errors_at is not None and errors_at not in ERRORS_AT:
        raise ValueError(f"errors_at must be one of {ERRORS_AT}, not {errors_at!r}")
    sweep = metrics.get("sweep")
    if not sweep:
        return [None]
    if errors_at == "sweep":
        return [float(entry["score_threshold"]) for entry in sweep]
    return [float(metrics["best"]["score_threshold"])]


def _errors(
    prepared: _Prepared,
    pred: pd.DataFrame,
    gt: pd.DataFrame,
    thresholds: Sequence[float | None],
    **context,
) -> pd.DataFrame:
    tables = []
    for threshold in thresholds:
        keep = prepared.kept(threshold)
        tables.append(
            classify_errors(
                gt,
                prepared.gt_labels,
                pred,
                prepared.pred_labels,
                keep,
                prepared.matches(keep),
                prepared.matching_threshold,
                filtered=prepared.scored(threshold) & prepared.same_segment,
                gt_counted=prepared.gt_inside,
                pred_counted=prepared.pred_inside,
                score_threshold=threshold,
                **context,
            )
        )
    return error_table(pd.concat(tables, ignore_index=True)) if tables else error_table()


def evaluate_files(
    pred_path: str | os.PathLike,
    gt_path: str | os.PathLike,
    *,
    mask: str | os.PathLike | None = None,
    **settings,
) -> dict:
    """Evaluate a prediction file against ground truth; returns the metrics dict.

    Args:
        pred_path: predicted pairs: Parquet/CSV synapse table or CREMI HDF5 annotations.
        gt_path: a CREMI HDF5 file with ``neuron_ids`` and annotations, or a sample store
            ``X.zarr`` (with ``neuron_ids``) beside its synapse table ``X.parquet``.
        mask: ``STORE.zarr/ARRAY``; both sides keep only pairs whose post point is inside.
        settings: fields of :class:`synful.settings.evaluate.EvaluateSettings` (each its
            default when not given): ``matching_threshold`` T in nm; ``score_thresholds``:
            ``None`` (no sweep), ``"auto"`` (from the scores, deterministic) or a list of
            numbers (sorted, a prediction is kept at ``score >= threshold``);
            ``filter_same_seg``; ``pre_only`` (FAFB protocol); ``merge_radius`` (nm).

    Raises:
        SynfulError: bad settings (the message names the flag) or bad or missing inputs (the
            message names the file).
    """
    metrics, _ = _evaluate_files(pred_path, gt_path, EvaluateSettings(**settings), mask=mask)
    return metrics


def evaluate_files_with_errors(
    pred_path: str | os.PathLike,
    gt_path: str | os.PathLike,
    *,
    predictions: str | os.PathLike | None = None,
    vectors: str | os.PathLike | None = None,
    mask: str | os.PathLike | None = None,
    errors_at: str | None = ErrorSettings.errors_at,
    extraction_threshold: float | None = ErrorSettings.extraction_threshold,
    **settings,
) -> tuple[dict, pd.DataFrame]:
    """:func:`evaluate_files` plus every error with its cause (:mod:`synful.evaluate.errors`).

    Args:
        pred_path, gt_path, mask, settings: as for :func:`evaluate_files`.
        predictions: the prediction store the pairs were extracted from; its
            ``post_indicator`` tells ``lost_in_extraction`` from ``below_threshold``.
        vectors: the store holding ``partner_vectors`` when it is another one (as for
            ``synful extract --vectors``).
        errors_at: ``"best"`` or ``None``: errors at the best score threshold of the sweep;
            ``"sweep"``: at every swept threshold (column ``score_threshold``); without a
            sweep, at all predictions either way.
        extraction_threshold: the extraction threshold (``None``: ``synful extract``'s
            default).

    Returns:
        The metrics dict and the per-error table (:data:`synful.evaluate.errors.ERROR_COLUMNS`).
    """
    where = ErrorSettings(errors_at=errors_at, extraction_threshold=extraction_threshold)
    if predictions is None and vectors is not None:
        raise SynfulError("--vectors", "needs --predictions")
    if where.extraction_threshold is None:
        where = dataclasses.replace(where, extraction_threshold=ExtractConfig.threshold)
    return _evaluate_files(
        pred_path,
        gt_path,
        EvaluateSettings(**settings),
        mask=mask,
        errors={"where": where, "predictions": predictions, "vectors": vectors},
    )


def _evaluate_files(
    pred_path, gt_path, settings: EvaluateSettings, *, mask=None, errors: dict | None = None
) -> tuple[dict, pd.DataFrame | None]:
    matching_threshold = settings.matching_threshold
    score_thresholds = settings.score_thresholds
    pred = load_predictions(pred_path)
    if score_thresholds is not None and "score" not in pred.columns:
        raise SynfulError(
            pred_path, "predictions have no score column, so thresholds cannot be swept"
        )
    region = open_region_mask(mask) if mask is not None else None
    store = None
    if errors is not None and errors["predictions"] is not None:
        from ..io.prediction_store import open_predictions

        store = open_predictions(errors["predictions"], errors["vectors"])
    pred_outside = gt_outside = pred_inside = gt_inside = None
    with open_ground_truth(gt_path) as gt:
        gt_pairs = gt.pairs
        if region is not None and settings.mask_rule == "all_pairs":
            pred_inside = in_region(region, post_points(pred))
            gt_inside = in_region(region, post_points(gt_pairs))
        elif region is not None:
            inside = in_region(region, post_points(pred))
            pred_outside = pred[~inside].reset_index(drop=True)
            pred = pred[inside].reset_index(drop=True)
            inside = in_region(region, post_points(gt_pairs))
            gt_outside = gt_pairs[~inside].reset_index(drop=True)
            gt_pairs = gt_pairs[inside].reset_index(drop=True)
        pred_labels = np.stack(
            [
                gt.labels(_locations(pred, PRE), "predicted pre points"),
                gt.labels(_locations(pred, POST), "predicted post points"),
            ],
            axis=1,
        )
        gt_labels = np.stack(
            [
                gt.labels(_locations(gt_pairs, PRE), "true pre points"),
                gt.labels(_locations(gt_pairs, POST), "true post points"),
            ],
            axis=1,
        )
        indicator_max = None
        if store is not None:
            # only true posts with no prediction near can be told apart by the indicator
            gt_post = _locations(gt_pairs, POST)
            alone = isolated(
                gt_post,
                [_locations(pred, POST)]
                + ([] if pred_outside is None else [_locations(pred_outside, POST)]),
                matching_threshold,
            )
            if gt_inside is not None:
                alone &= gt_inside
            indicator_max = np.full(len(gt_pairs), np.nan)
            indicator_max[alone] = post_indicator_near(
                store.post_indicator,
                gt.segmentation,
                gt_post[alone],
                gt_labels[alone, 1],
                matching_threshold,
            )
    thresholds = None
    if score_thresholds is not None:
        try:
            thresholds = resolve_thresholds(score_thresholds, pred["score"])
        except ValueError as exc:
            raise SynfulError("--score-thresholds", str(exc)) from None
    prepared = _Prepared(pred, pred_labels, gt_pairs, gt_labels, settings, pred_inside, gt_inside)
    metrics = _metrics(prepared, thresholds)
    metrics["inputs"] = {
        "pred": os.fspath(pred_path),
        "gt": os.fspath(gt_path),
        "mask": None if mask is None else os.fspath(mask),
        "mask_rule": None if mask is None else settings.mask_rule,
    }
    if errors is None:
        return metrics, None
    table = _errors(
        prepared,
        pred,
        gt_pairs,
        error_thresholds(metrics, errors["where"].errors_at),
        gt_outside=gt_outside,
        pred_outside=pred_outside,
        indicator_max=indicator_max,
        extraction_threshold=None if store is None else errors["where"].extraction_threshold,
    )
    return metrics, table
