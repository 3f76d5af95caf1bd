"""Counts to P/R/F, combining samples, score thresholds, and the Synful variants."""

import numpy as np
import pytest

from synful.evaluate import combine_metrics, evaluate_pairs, metrics_from_counts
from synful.evaluate.score import best_entry, precision_recall_fscore
from synful.evaluate.sweep import auto_thresholds, kept_at, resolve_thresholds
from synful.evaluate.variants import merge_duplicates, same_segment
from synful.io.synapse_table import make_synapses


def test_precision_recall_fscore_and_guards():
    assert precision_recall_fscore(3, 1, 2) == pytest.approx((0.75, 0.6, 2 * 0.75 * 0.6 / 1.35))
    assert precision_recall_fscore(0, 0, 5) == (1.0, 0.0, 0.0)  # no predictions
    assert precision_recall_fscore(0, 4, 0) == (0.0, 1.0, 0.0)  # no ground truth
    assert precision_recall_fscore(0, 0, 0) == (1.0, 1.0, 1.0)
    assert precision_recall_fscore(0, 3, 3) == (0.0, 0.0, 0.0)


def test_metrics_entry_keys():
    entry = metrics_from_counts(2, 1, 3, 400, score_threshold=0.5)
    assert entry == {
        "score_threshold": 0.5,
        "tp": 2,
        "fp": 1,
        "fn": 3,
        "precision": 2 / 3,
        "recall": 0.4,
        "fscore": pytest.approx(0.5),
        "matching_threshold_nm": 400.0,
        "n_gt": 5,
        "n_pred": 3,
    }


def sample_metrics(counts, sweep_counts=None, thresholds=(0.0, 1.0)):
    metrics = metrics_from_counts(*counts, 400)
    if sweep_counts is not None:
        metrics["sweep"] = [
            metrics_from_counts(*c, 400, t) for c, t in zip(sweep_counts, thresholds)
        ]
        metrics["best"] = best_entry(metrics["sweep"])
    metrics["settings"] = {"filter_same_seg": True}
    return metrics


def test_combine_sums_counts_before_f():
    a = sample_metrics((10, 0, 0), [(10, 0, 0), (9, 0, 1)])
    b = sample_metrics((0, 10, 10), [(0, 10, 10), (0, 0, 10)])
    combined = combine_metrics([a, b])
    assert (combined["tp"], combined["fp"], combined["fn"]) == (10, 10, 10)
    assert combined["fscore"] == pytest.approx(0.5)  # not the mean of 1.0 and 0.0
    assert combined["n_gt"] == 20 and combined["n_pred"] == 20 and combined["n_samples"] == 2
    assert [(e["tp"], e["fp"], e["fn"]) for e in combined["sweep"]] == [(10, 10, 10), (9, 0, 11)]
    assert combined["best"]["score_threshold"] == 1.0  # F 18/29 = 0.62 beats 0.5
    assert combined["best"]["fscore"] == pytest.approx(18 / 29)
    assert combined["settings"] == {"filter_same_seg": True}


def test_combine_refuses_mismatched_inputs():
    a = sample_metrics((1, 0, 0), [(1, 0, 0), (1, 0, 0)])
    with pytest.raises(ValueError, match="same fixed list"):
        combine_metrics([a, sample_metrics((1, 0, 0), [(1, 0, 0), (1, 0, 0)], (0.0, 2.0))])
    with pytest.raises(ValueError, match="with and without"):
        combine_metrics([a, sample_metrics((1, 0, 0))])
    other = metrics_from_counts(1, 0, 0, 700)
    with pytest.raises(ValueError, match="matching thresholds"):
        combine_metrics([sample_metrics((1, 0, 0)), other])
    with pytest.raises(ValueError):
        combine_metrics([])


def test_auto_thresholds_are_deterministic_scores():
    rng = np.random.default_rng(1)
    scores = rng.random(1000)
    thresholds = auto_thresholds(scores)
    assert thresholds == auto_thresholds(scores[::-1].copy())
    assert len(thresholds) <= 50 and thresholds == sorted(thresholds)
    assert set(thresholds) <= set(scores.tolist())
    assert thresholds[0] == scores.min() and thresholds[-1] == scores.max()
    assert auto_thresholds([3.0, 1.0, 3.0, 2.0]) == [1.0, 2.0, 3.0]
    assert auto_thresholds([]) == []
    assert kept_at([1.0, 2.0, 3.0], 2.0).tolist() == [False, True, True]  # kept at >=
    assert resolve_thresholds([3, 1, 1], [0.5]) == [1.0, 3.0]
    assert resolve_thresholds(None, [0.5]) is None
    with pytest.raises(ValueError):
        resolve_thresholds("all", [0.5])


def test_same_segment():
    labels = np.array([[1, 2], [3, 3], [0, 0], [0, 4]], np.uint64)
    assert same_segment(labels).tolist() == [False, True, True, False]


def test_merge_duplicates_keeps_best_per_linked_cluster():
    post = np.array(
        [[0, 0, 0], [0, 0, 200], [0, 0, 400], [0, 0, 1000], [0, 0, 100], [0, 0, 50]], float
    )
    labels = np.array([[1, 2], [1, 2], [1, 2], [1, 2], [1, 3], [0, 2]], np.uint64)
    scores = np.array([1.0, 5.0, 2.0, 0.5, 9.0, 9.0])
    # rows 0-1-2 chain within 250 nm (same labels) -> keep row 1; row 3 alone; row 4 other
    # labels; row 5 has label 0 and is never merged
    kept = merge_duplicates(post, labels, scores, 250.0)
    assert kept.tolist() == [False, True, False, True, True, True]
    # a row left out by keep does not link the chain
    kept = merge_duplicates(post, labels, scores, 250.0, keep=[True, False, True, True, True, True])
    assert kept.tolist() == [True, False, True, True, True, True]
    # exactly at the radius links; ties keep the first row
    kept = merge_duplicates(post[:2], labels[:2], np.array([1.0, 1.0]), 200.0)
    assert kept.tolist() == [True, False]


def table(pre, post, scores=None):
    return make_synapses(np.array(pre, float), np.array(post, float), score=scores)


def test_evaluate_pairs_variants_and_sweep():
    gt = table([[0, 0, 0], [0, 0, 2000]], [[0, 0, 100], [0, 0, 2100]])
    gt_labels = [[1, 2], [3, 4]]
    pred = table(
        [[0, 0, 10], [0, 0, 20], [0, 0, 2000], [0, 0, 5000]],
        [[0, 0, 110], [0, 0, 120], [0, 0, 2100], [0, 0, 5100]],
        scores=[0.9, 0.5, 0.2, 0.7],
    )
    pred_labels = [[1, 2], [1, 2], [3, 4], [5, 5]]
    m = evaluate_pairs(pred, pred_labels, gt, gt_labels, score_thresholds=[0.2, 0.5, 0.8])
    assert (m["tp"], m["fp"], m["fn"]) == (2, 2, 0)
    assert [(e["tp"], e["fp"], e["fn"]) for e in m["sweep"]] == [(2, 2, 0), (1, 2, 1), (1, 0, 1)]
    # F 2/3 at 0.2 and at 0.8: the first of equal entries (the lowest threshold) is best
    assert m["best"]["score_threshold"] == 0.2 and m["best"]["fscore"] == pytest.approx(2 / 3)
    m = evaluate_pairs(pred, pred_labels, gt, gt_labels, filter_same_seg=True)
    assert (m["tp"], m["fp"], m["fn"], m["n_pred"]) == (2, 1, 0, 3)
    m = evaluate_pairs(pred, pred_labels, gt, gt_labels, filter_same_seg=True, merge_radius=250)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)
    assert m["settings"]["merge_radius_nm"] == 250.0
    # pre only with a large threshold: post far away does not matter
    far = table([[0, 0, 600]], [[0, 0, 5000]])
    m = evaluate_pairs(far, [[1, 2]], gt, gt_labels, matching_threshold=700, pre_only=True)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 1)
    m = evaluate_pairs(far, [[1, 2]], gt, gt_labels, matching_threshold=700)
    assert m["tp"] == 0
    with pytest.raises(ValueError, match="no score column"):
        evaluate_pairs(far, [[1, 2]], gt, gt_labels, score_thresholds=[0.0])


def test_evaluate_pairs_empty():
    empty = table(np.zeros((0, 3)), np.zeros((0, 3)), scores=np.zeros(0))
    gt = table([[0, 0, 0]], [[0, 0, 100]])
    m = evaluate_pairs(empty, np.zeros((0, 2)), gt, [[1, 2]], score_thresholds=[0.5])
    assert (m["tp"], m["fp"], m["fn"], m["precision"], m["recall"], m["fscore"]) == (
        0,
        0,
        1,
        1.0,
        0.0,
        0.0,
    )
    m = evaluate_pairs(gt, [[1, 2]], empty, np.zeros((0, 2)))
    assert (m["tp"], m["fp"], m["fn"], m["precision"], m["recall"]) == (0, 1, 0, 0.0, 1.0)
