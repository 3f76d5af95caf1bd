"""The grouped CREMI matching against a plain dense implementation of the official rule."""

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from synful.evaluate.labels import labels_at_points
from synful.evaluate.matching import candidate_edges, match_pairs, solve_matching
from synful.io.zarr_array import world_array
from synful.lookup import round_half_away_from_zero, values_at_voxels, voxel_indices

T = 400.0


# --- the reference: the official rule, written plainly -----------------------------------------
def dense_rule(pred, gt, threshold=T, pre_only=False, tie=0.0):
    """(TP, total cost) of the official rule on the square matrix padded with 2T.

    ``pred`` and ``gt`` are lists of (pre, post, labels). ``tie`` > 0 prefers more matches
    among optimal assignments, < 0 fewer; 0 is the reference as written.
    """
    n = max(len(pred), len(gt))
    if n == 0:
        return 0, 0.0
    costs = np.full((n, n), 2.0 * threshold)
    for i, (p_pre, p_post, p_labels) in enumerate(pred):
        for j, (g_pre, g_post, g_labels) in enumerate(gt):
            if tuple(p_labels) != tuple(g_labels):
                continue
            d_pre = np.linalg.norm(np.array(p_pre, float) - np.array(g_pre, float))
            d_post = np.linalg.norm(np.array(p_post, float) - np.array(g_post, float))
            if pre_only:
                if d_pre <= threshold:
                    costs[i, j] = d_pre
            elif d_pre <= threshold and d_post <= threshold:
                costs[i, j] = 0.5 * (d_pre + d_post)
    perturbed = costs - tie * 1e-6 * (costs <= threshold)
    rows, cols = linear_sum_assignment(perturbed - np.amax(perturbed) - 1)
    tp = int(sum(costs[r, c] <= threshold for r, c in zip(rows, cols)))
    return tp, float(costs[rows, cols].sum())


def python2_round(value: float) -> int:
    return int(Decimal(value).to_integral_value(rounding=ROUND_HALF_UP))


def reference_label(segmentation, point, offset, voxel_size):
    """The official lookup; where it raised (outside the volume), the nearest voxel's label."""
    index = [python2_round((p - o) / v) for p, o, v in zip(point, offset, voxel_size)]
    index = tuple(min(max(i, 0), s - 1) for i, s in zip(index, segmentation.shape))
    return int(segmentation[index])


def grouped(pred, gt, threshold=T, pre_only=False):
    def arrays(pairs):
        if not pairs:
            return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 2), np.uint64)
        pre, post, labels = zip(*pairs)
        return np.array(pre, float), np.array(post, float), np.array(labels, np.uint64)

    return match_pairs(*arrays(pred), *arrays(gt), threshold=threshold, pre_only=pre_only)


def check_against_dense(pred, gt, threshold=T, pre_only=False):
    matches = grouped(pred, gt, threshold, pre_only)
    n = max(len(pred), len(gt))
    tp = len(matches)
    total = float(matches.cost.sum()) + 2 * threshold * (n - tp)
    plain_tp, plain_total = dense_rule(pred, gt, threshold, pre_only)
    most_tp, _ = dense_rule(pred, gt, threshold, pre_only, tie=1.0)
    fewest_tp, _ = dense_rule(pred, gt, threshold, pre_only, tie=-1.0)
    # the same optimal total cost as the dense rule, always
    assert total == pytest.approx(plain_total, abs=1e-6)
    # exact ties towards more matches, deterministically
    assert tp == most_tp
    # wherever the dense rule's number of matches is determined, it is ours
    if fewest_tp == most_tp:
        assert tp == plain_tp
    assert fewest_tp <= plain_tp <= most_tp
    # each prediction and each true pair is matched at most once
    assert len(set(matches.pred.tolist())) == tp and len(set(matches.gt.tolist())) == tp
    return tp


# --- strategies ----------------------------------------------------------------------------------
grid_points = st.tuples(*[st.integers(0, 6).map(lambda v: 100.0 * v)] * 3)
labels = st.tuples(st.integers(0, 2), st.integers(0, 2))
grid_pairs = st.lists(st.tuples(grid_points, grid_points, labels), max_size=9)
float_points = st.tuples(*[st.floats(0, 900, allow_nan=False, allow_infinity=False)] * 3)
float_pairs = st.lists(st.tuples(float_points, float_points, labels), max_size=9)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(grid_pairs, grid_pairs)
def test_grid_points_match_the_dense_rule(pred, gt):
    # 100 nm grid: many distances exactly 400 nm and many exact ties
    check_against_dense(pred, gt)


@fast
@given(float_pairs, float_pairs)
def test_float_points_match_the_dense_rule(pred, gt):
    check_against_dense(pred, gt)


@fast
@given(grid_pairs, grid_pairs, st.sampled_from([150.0, 300.0, 700.0]))
def test_pre_only_and_other_thresholds_match_the_dense_rule(pred, gt, threshold):
    check_against_dense(pred, gt, threshold=threshold, pre_only=True)
    check_against_dense(pred, gt, threshold=threshold, pre_only=False)


@st.composite
def labelled_problem(draw):
    shape = (3, 5, 5)
    seg = np.array(draw(st.lists(st.integers(1, 3), min_size=75, max_size=75)), np.uint64)
    offset = draw(st.tuples(st.integers(-2, 2), st.integers(-2, 2), st.integers(-2, 2)))
    offset = tuple(40.0 * o for o in offset)
    voxel = (40.0, 60.0, 60.0)
    coordinate = st.integers(-3, 14).map(lambda v: 20.0 * v)  # half-voxel steps, some outside
    point = st.tuples(coordinate, coordinate, coordinate)
    pairs = st.lists(st.tuples(point, point), max_size=8)
    return seg.reshape(shape), offset, voxel, draw(pairs), draw(pairs)


@settings(max_examples=200, deadline=None)
@given(labelled_problem())
def test_labels_and_matching_equal_the_official_rule(problem):
    seg, offset, voxel, pred, gt = problem

    def ours(pairs):
        pre = np.array([p for p, _ in pairs], float).reshape(-1, 3)
        post = np.array([q for _, q in pairs], float).reshape(-1, 3)
        array = world_array(seg, voxel, offset)
        lab = np.stack([labels_at_points(array, pre), labels_at_points(array, post)], axis=1)
        return pre, post, lab

    def reference(pairs):
        return [
            (p, q, (reference_label(seg, p, offset, voxel), reference_label(seg, q, offset, voxel)))
            for p, q in pairs
        ]

    pred_ref, gt_ref = reference(pred), reference(gt)
    pred_ours, gt_ours = ours(pred), ours(gt)
    assert [tuple(x) for x in pred_ours[2].tolist()] == [r[2] for r in pred_ref]
    assert [tuple(x) for x in gt_ours[2].tolist()] == [r[2] for r in gt_ref]
    tp = len(match_pairs(*pred_ours, *gt_ours, threshold=T))
    assert tp == check_against_dense(pred_ref, gt_ref)


# --- rounding and lookup --------------------------------------------------------------------------
@given(st.floats(-1e6, 1e6, allow_nan=False))
def test_rounding_is_python2_round(value):
    assert round_half_away_from_zero(value) == python2_round(value)


def test_rounding_halves_and_near_halves():
    values = [0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994, -0.49999999999999994, 2.4999999]
    assert round_half_away_from_zero(values).tolist() == [1, 2, 3, -1, -2, 0, -0, 2]


def test_lookup_rounds_to_nearest_voxel_with_offset():
    seg = np.arange(2 * 3 * 3, dtype=np.uint64).reshape(2, 3, 3) + 1
    offset, voxel = (40.0, 8.0, 8.0), (40.0, 4.0, 4.0)
    # (40 + 20, 8 + 2, 8 + 5.9): z index round(0.5) = 1, y round(0.5) = 1, x round(1.475) = 1
    index = voxel_indices([[60.0, 10.0, 13.9]], offset, voxel, "cremi")
    assert index.tolist() == [[1, 1, 1]]
    # half a voxel before the start rounds away from zero to -1: outside, the nearest voxel's
    assert voxel_indices([[20.0, 8.0, 8.0]], offset, voxel, "cremi").tolist() == [[-1, 0, 0]]
    labels = labels_at_points(
        world_array(seg, voxel, offset), [[60.0, 10.0, 13.9], [20.0, 8.0, 8.0], [40.0, 6.1, 8.0]]
    )
    assert labels.tolist() == [seg[1, 1, 1], seg[0, 0, 0], seg[0, 0, 0]]


def test_lookup_outside_takes_the_nearest_voxel_and_warns(caplog):
    seg = np.array([[[1, 2], [3, 4]]], np.uint64)
    with caplog.at_level("WARNING"):
        labels = labels_at_points(
            world_array(seg, (40, 4, 4), (0, 0, 0)),
            [[0, 0, 0], [0, 0, 100], [0, 5.9, 4.1], [-800, 4, -3]],
            "test points",
        )
    assert labels.tolist() == [1, 2, 4, 3]
    assert "2 of 4 test points lie outside" in caplog.text


def test_a_presynaptic_point_just_past_the_labelled_face_is_matched():
    """Raw reaches beyond the labels (CREMI padding): a predicted pre a voxel past the face,
    next to the true pre inside, takes the label there, so the synapse is found."""
    seg = np.ones((3, 10, 20), np.uint64)
    seg[:, :, 10:] = 2
    array = world_array(seg, (40, 4, 4), (0, 0, 0))
    gt_pre, gt_post = np.array([[40.0, 20, 78]]), np.array([[40.0, 20, 30]])
    pred_pre, pred_post = np.array([[40.0, 20, 80]]), np.array([[40.0, 20, 32]])  # x index 20
    gt_labels = np.stack([labels_at_points(array, gt_pre), labels_at_points(array, gt_post)], 1)
    pred_labels = np.stack(
        [labels_at_points(array, pred_pre), labels_at_points(array, pred_post)], 1
    )
    assert pred_labels.tolist() == gt_labels.tolist() == [[2, 1]]
    assert len(match_pairs(pred_pre, pred_post, pred_labels, gt_pre, gt_post, gt_labels, T)) == 1


def test_values_at_voxels_reads_every_section():
    data = np.random.default_rng(0).integers(0, 100, (5, 7, 9))
    idx = np.array([[4, 6, 8], [0, 0, 0], [2, 3, 1], [2, 6, 0], [5, 0, 0], [-1, 2, 2]])
    values, inside = values_at_voxels(data, idx, fill=-7)
    assert inside.tolist() == [True, True, True, True, False, False]
    assert values.tolist() == [data[4, 6, 8], data[0, 0, 0], data[2, 3, 1], data[2, 6, 0], -7, -7]
    # a chunked zarr array (read by coordinate selection) gives the same
    chunked = zarr.create_array(store={}, shape=data.shape, dtype=data.dtype, chunks=(2, 3, 4))
    chunked[...] = data
    idx = np.random.default_rng(1).integers(-1, 9, (200, 3))
    expected, expected_inside = values_at_voxels(data, idx, fill=-7)
    values, inside = values_at_voxels(chunked, idx, fill=-7)
    assert inside.tolist() == expected_inside.tolist() and values.tolist() == expected.tolist()


# --- specific cases ------------------------------------------------------------------------------
def one(pre, post, lab=(1, 2)):
    return (pre, post, lab)


def test_boundary_distance_is_accepted():
    gt = [one((0, 0, 0), (0, 0, 100))]
    assert check_against_dense([one((0, 0, 400), (0, 0, 500))], gt) == 1
    assert check_against_dense([one((0, 0, 400.001), (0, 0, 500))], gt) == 0


def test_reversed_prediction_and_wrong_labels_do_not_match():
    gt = [one((0, 0, 0), (0, 0, 100), (1, 2))]
    assert check_against_dense([one((0, 0, 100), (0, 0, 0), (2, 1))], gt) == 0
    assert check_against_dense([one((0, 0, 0), (0, 0, 100), (1, 3))], gt) == 0


def test_duplicates_match_once():
    gt = [one((0, 0, 0), (0, 0, 100))]
    pred = [one((0, 0, 10), (0, 0, 110)), one((0, 0, 5), (0, 0, 105)), one((0, 0, 0), (0, 0, 100))]
    matches = grouped(pred, gt)
    assert len(matches) == 1 and matches.pred.tolist() == [2]


def test_min_sum_is_not_max_cardinality():
    # one zero-cost match (plus an unmatched row at 2T) ties with two matches at cost T: the
    # tie is broken towards more matches; just below T the two matches win outright
    gt = [one((0, 0, 0), (0, 0, 0)), one((0, 0, 400), (0, 0, 400))]
    pred = [one((0, 0, 0), (0, 0, 0)), one((0, 0, -400), (0, 0, -400))]
    # pred0-gt0 cost 0, pred0-gt1 cost 400, pred1-gt0 cost 400: tie between 1 and 2 matches
    assert check_against_dense(pred, gt) == 2
    pred[1] = one((0, 0, -399), (0, 0, -399))
    assert check_against_dense(pred, gt) == 2


def test_empty_sets():
    gt = [one((0, 0, 0), (0, 0, 100))]
    assert check_against_dense([], gt) == 0
    assert check_against_dense(gt, []) == 0
    assert check_against_dense([], []) == 0


def test_solve_matching_restricts_to_kept_predictions():
    pre = np.array([[0, 0, 0], [0, 0, 10]], float)
    labels = np.array([[1, 2], [1, 2]], np.uint64)
    edges = candidate_edges(pre, pre + 100, labels, pre[:1], pre[:1] + 100, labels[:1])
    assert len(edges) == 2
    assert solve_matching(edges, pred_keep=[False, True]).pred.tolist() == [1]
    assert solve_matching(edges, pred_keep=[True, False]).pred.tolist() == [0]
    assert len(solve_matching(edges, pred_keep=[False, False])) == 0
