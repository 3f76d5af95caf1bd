"""Speed of the grouped CREMI matching against the dense rule, measured in the same run.

Synthetic pairs at roughly CREMI density (about 1.4 true pairs per cubic micrometre): true
pairs with the post point 100-300 nm from the pre point, predictions that are jittered copies
of 70 % of them plus 30 % random false positives, labels from a 500 nm grid of "segments".

Prints the speed-up of :func:`synful.evaluate.matching.match_pairs` over the dense rule (the
square ``max(n_pred, n_gt)`` matrix padded with 2T and one ``linear_sum_assignment``, its cost
matrix built with numpy, not in a Python loop as the original) at a size where the dense rule
still fits, checks that both accept the same number of matches, and times the grouped
matching, and a 50-threshold sweep, at 20,000 x 20,000 pairs.

Usage: python benchmarks/bench_evaluate.py [--dense-size 2500] [--large-size 20000]
       [--density 1.44] [--segment-nm 500]   (e.g. --density 10 --segment-nm 5000: crowded)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

from synful.evaluate.matching import candidate_edges, match_pairs, solve_matching
from synful.evaluate.sweep import auto_thresholds, kept_at

T = 400.0
PAIRS_PER_CUBIC_UM = 1.44
SEGMENT_NM = 500.0


def labels_of(points: np.ndarray, segment_nm: float) -> np.ndarray:
    cells = np.floor(points / segment_nm).astype(np.int64)
    return (cells[:, 0] * 1_000_003 + cells[:, 1] * 1009 + cells[:, 2]).astype(np.uint64)


def synthetic(
    n: int, seed: int = 0, density: float = PAIRS_PER_CUBIC_UM, segment_nm: float = SEGMENT_NM
):
    rng = np.random.default_rng(seed)
    side = (n / density) ** (1 / 3) * 1000.0
    gt_pre = rng.uniform(0, side, (n, 3))
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    gt_post = gt_pre + direction * rng.uniform(100, 300, (n, 1))
    n_true = int(0.7 * n)
    copy = rng.choice(n, n_true, replace=False)
    pred_pre = np.concatenate(
        [gt_pre[copy] + rng.normal(0, 80, (n_true, 3)), rng.uniform(0, side, (n - n_true, 3))]
    )
    pred_post = np.concatenate(
        [
            gt_post[copy] + rng.normal(0, 80, (n_true, 3)),
            pred_pre[n_true:] + rng.normal(0, 150, (n - n_true, 3)),
        ]
    )
    scores = rng.random(n)

    def lab(pre, post):
        return np.stack([labels_of(pre, segment_nm), labels_of(post, segment_nm)], axis=1)

    return (
        (pred_pre, pred_post, lab(pred_pre, pred_post)),
        (gt_pre, gt_post, lab(gt_pre, gt_post)),
        scores,
    )


def dense_rule(pred, gt) -> int:
    """The official rule: dense square matrix padded with 2T, one assignment, accept <= T."""
    (p_pre, p_post, p_lab), (g_pre, g_post, g_lab) = pred, gt
    n = max(len(p_pre), len(g_pre))
    costs = np.full((n, n), 2 * T)
    d_pre = np.linalg.norm(p_pre[:, None, :] - g_pre[None, :, :], axis=2)
    d_post = np.linalg.norm(p_post[:, None, :] - g_post[None, :, :], axis=2)
    same = np.all(p_lab[:, None, :] == g_lab[None, :, :], axis=2)
    valid = same & (d_pre <= T) & (d_post <= T)
    block = np.where(valid, 0.5 * (d_pre + d_post), 2 * T)
    costs[: len(p_pre), : len(g_pre)] = block
    rows, cols = linear_sum_assignment(costs - costs.max() - 1)
    return int(np.sum(costs[rows, cols] <= T))


def best_of(repeats, function):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dense-size", type=int, default=2500)
    parser.add_argument("--large-size", type=int, default=20000)
    parser.add_argument(
        "--density", type=float, default=PAIRS_PER_CUBIC_UM, help="true pairs per um^3"
    )
    parser.add_argument(
        "--segment-nm", type=float, default=SEGMENT_NM, help="size of the label grid cells"
    )
    args = parser.parse_args()

    pred, gt, _ = synthetic(args.dense_size, 0, args.density, args.segment_nm)
    dense_s, dense_tp = best_of(1, lambda: dense_rule(pred, gt))
    grouped_s, matches = best_of(3, lambda: match_pairs(*pred, *gt, threshold=T))
    print(
        f"{args.dense_size} x {args.dense_size} pairs: dense rule {dense_s:.3f} s, grouped {grouped_s:.4f} s, "
        f"speed-up {dense_s / grouped_s:.1f}x; accepted matches dense {dense_tp}, grouped {len(matches)}"
        f" ({'same' if dense_tp == len(matches) else 'DIFFERENT'})"
    )

    pred, gt, scores = synthetic(args.large_size, 1, args.density, args.segment_nm)
    large_s, matches = best_of(1, lambda: match_pairs(*pred, *gt, threshold=T))
    per_pair = grouped_s / args.dense_size
    print(
        f"{args.large_size} x {args.large_size} pairs: grouped {large_s:.3f} s ({len(matches)} matches); "
        f"time per pair relative to the {args.dense_size}-pair run {large_s / args.large_size / per_pair:.2f}"
    )
    thresholds = auto_thresholds(scores)
    start = time.perf_counter()
    edges = candidate_edges(*pred, *gt, threshold=T)
    for threshold in thresholds:
        solve_matching(edges, T, kept_at(scores, threshold))
    sweep_s = time.perf_counter() - start
    print(
        f"{args.large_size} pairs, sweep over {len(thresholds)} thresholds: {sweep_s:.3f} s "
        f"({sweep_s / large_s:.1f}x one evaluation)"
    )


if __name__ == "__main__":
    main()
