"""Counts to precision, recall and F-score, and sums of counts over samples (the metrics JSON).

Precision (recall) is 1.0 when its denominator is 0, and the F-score is 0 when precision +
recall is 0 (the guards the reference evaluator lacked).
"""

from __future__ import annotations

from collections.abc import Sequence

COUNT_KEYS = ("tp", "fp", "fn")
METRIC_KEYS = (
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "fscore",
    "matching_threshold_nm",
    "n_gt",
    "n_pred",
)


def precision_recall_fscore(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(precision, recall, F) from counts, with the guards for empty denominators."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    fscore = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(fscore)


def metrics_from_counts(
    tp: int, fp: int, fn: int, matching_threshold: float, score_threshold: float | None = None
) -> dict:
    """One metrics entry: counts, P/R/F, ``matching_threshold_nm``, ``n_gt`` and ``n_pred``.

    Args:
        tp, fp, fn: true positives, false positives and false negatives.
        matching_threshold: the matching threshold (nm).
        score_threshold: for a sweep entry, the score a prediction needed (``score >= it``).
    """
    precision, recall, fscore = precision_recall_fscore(tp, fp, fn)
    entry = {}
    if score_threshold is not None:
        entry["score_threshold"] = float(score_threshold)
    entry.update(
        tp=int(tp),
        fp=int(fp),
        fn=int(fn),
        precision=precision,
        recall=recall,
        fscore=fscore,
        matching_threshold_nm=float(matching_threshold),
        n_gt=int(tp + fn),
        n_pred=int(tp + fp),
    )
    return entry


def best_entry(sweep: Sequence[dict]) -> dict | None:
    """The sweep entry with the highest F-score (the first of equals, i.e. the lowest threshold)."""
    best = None
    for entry in sweep:
        if best is None or entry["fscore"] > best["fscore"]:
            best = entry
    return None if best is None else dict(best)


def _sum_entries(entries: Sequence[dict], score_threshold: float | None = None) -> dict:
    thresholds = {float(e["matching_threshold_nm"]) for e in entries}
    if len(thresholds) != 1:
        raise ValueError(
            f"cannot combine metrics with different matching thresholds {sorted(thresholds)}"
        )
    totals = {key: sum(int(e[key]) for e in entries) for key in COUNT_KEYS}
    return metrics_from_counts(
        **totals, matching_threshold=thresholds.pop(), score_threshold=score_threshold
    )


def combine_metrics(metrics: Sequence[dict]) -> dict:
    """Sum TP/FP/FN over samples, then compute P/R/F (as the paper did over A, B and C).

    Sweeps are summed threshold by threshold, so every input must have been swept over the same
    score thresholds (pass ``evaluate`` a fixed list); ``best`` is recomputed from the summed
    sweep. Other keys (``settings``) are kept when all inputs agree on them.

    Args:
        metrics: metrics dicts as written by ``synful evaluate``.

    Raises:
        ValueError: no inputs, different matching thresholds, or different sweeps.
    """
    metrics = list(metrics)
    if not metrics:
        raise ValueError("no metrics to combine")
    combined = _sum_entries(metrics)
    combined["n_samples"] = len(metrics)
    swept = [m.get("sweep") is not None for m in metrics]
    if any(swept):
        if not all(swept):
            raise ValueError("cannot combine metrics with and without a score-threshold sweep")
        grids = [[float(e["score_threshold"]) for e in m["sweep"]] for m in metrics]
        if any(grid != grids[0] for grid in grids[1:]):
            raise ValueError(
                "cannot combine sweeps over different score thresholds; "
                "evaluate every sample with the same fixed list of thresholds"
            )
        combined["sweep"] = [
            _sum_entries([m["sweep"][i] for m in metrics], score_threshold=threshold)
            for i, threshold in enumerate(grids[0])
        ]
        combined["best"] = best_entry(combined["sweep"])
    settings = [m.get("settings") for m in metrics]
    if settings[0] is not None and all(s == settings[0] for s in settings):
        combined["settings"] = settings[0]
    return combined
