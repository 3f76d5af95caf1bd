"""Targets: balls clipped to the post neuron, nearest-post vectors from the voxel corner, weights."""

import numpy as np
import pytest

from synful.io.zarr_array import world_array
from synful.train.targets import balance_weights, ball_offsets, partner_vectors, post_indicator

VS = (40, 4, 4)


def test_original_blob_is_21_voxels_in_one_section():
    offsets = ball_offsets(10, VS)
    assert len(offsets) == 21
    assert set(offsets[:, 0]) == {0}
    # 100 nm: +-2 sections, 25 px in plane
    big = ball_offsets(100, VS)
    assert big[:, 0].min() == -2 and big[:, 0].max() == 2 and big[:, 2].max() == 25


def test_a_radius_per_axis_draws_an_ellipsoid():
    # 60 nm in z, 32 nm in plane: the post section with its 8 px disc and, 40 nm away, the
    # sections next to it with the disc at sqrt(1 - (40/60)^2) of the radius (5.96 -> 5 px)
    offsets = ball_offsets([60, 32, 32], VS)
    assert sorted(set(offsets[:, 0])) == [-1, 0, 1]
    centre, side = offsets[offsets[:, 0] == 0], offsets[offsets[:, 0] == 1]
    assert np.array_equal(centre, ball_offsets(32, VS))
    assert side[:, 2].max() == 5 and len(side) < len(centre)
    assert np.array_equal(ball_offsets([32, 32, 32], VS), ball_offsets(32, VS))
    labels = np.ones((5, 30, 30), dtype=np.uint64)
    mask = post_indicator([[80, 60, 60]], world_array(labels, VS, (0, 0, 0)), [60, 32, 32])
    assert mask.sum(axis=(1, 2)).tolist() == [0, len(side), len(centre), len(side), 0]


def test_indicator_is_clipped_to_the_post_neuron_and_skips_label_zero():
    labels = np.ones((3, 20, 20), dtype=np.uint64)
    labels[:, :, 10:] = 2
    labels[:, 0:2, 0:2] = 0
    offset = (1000, 2000, 3000)
    post = np.array(
        [[1040, 2040, 3038], [1040, 2000, 3000]], dtype=float
    )  # voxel (1,10,9); (1,0,0) on 0
    mask = post_indicator(post, world_array(labels, VS, offset), blob_radius=12)
    expected_ball = ball_offsets(12, VS) + np.array([1, 10, 9])
    in_neuron = [tuple(v) for v in expected_ball if labels[tuple(v)] == 1]
    assert mask.sum() == len(in_neuron)
    assert all(mask[v] == 1 for v in in_neuron)
    assert mask[:, :, 10:].sum() == 0


def test_points_outside_the_window_draw_nothing():
    labels = np.ones((2, 8, 8), dtype=np.uint64)
    mask = post_indicator([[0, -40, 0], [0, 0, 32]], world_array(labels, VS, (0, 0, 0)), 20)
    assert mask.sum() == 0


def test_vectors_point_from_the_voxel_corner_to_the_partner():
    labels = np.ones((5, 30, 30), dtype=np.uint64)
    offset = np.array([400, 80, 80])
    post = np.array([[480 + 5, 80 + 40 + 1, 80 + 40 + 3]])
    pre = np.array([[560.0, 300.0, 180.0]])
    vectors, mask = partner_vectors(pre, post, world_array(labels, VS, offset), d_blob_radius=30)
    assert mask.sum() == len(ball_offsets(30, VS))
    for voxel in np.argwhere(mask):
        corner = voxel * np.array(VS) + offset
        np.testing.assert_allclose(vectors[:, voxel[0], voxel[1], voxel[2]], pre[0] - corner)
    assert np.all(vectors[:, mask == 0] == 0)


def test_overlapping_balls_go_to_the_nearest_post_point():
    labels = np.ones((1, 1, 40), dtype=np.uint64)
    post = np.array([[0, 0, 40.0], [0, 0, 80.0]])  # voxels 10 and 20, radius 60 nm = 15 voxels
    pre = np.array([[0, 0, -1000.0], [0, 0, 1000.0]])
    window = world_array(labels, VS, (0, 0, 0))
    vectors, mask = partner_vectors(pre, post, window, d_blob_radius=60)
    x = np.arange(40) * 4.0
    centre = x + 2
    owner = np.where(np.abs(centre - 40) <= np.abs(centre - 80), 0, 1)
    expected = np.where(owner == 0, -1000.0 - x, 1000.0 - x)
    inside = mask[0, 0] == 1
    assert inside.sum() == 36  # voxels 0..35
    np.testing.assert_allclose(vectors[2, 0, 0][inside], expected[inside])


def test_balance_weights():
    labels = np.zeros(1000, dtype=np.uint8)
    labels[:10] = 1
    weights = balance_weights(labels)
    assert weights[0] == pytest.approx(1 / (2 * 0.01))
    assert weights[-1] == pytest.approx(1 / (2 * 0.99))
    empty = balance_weights(np.zeros(100, np.uint8))
    assert np.allclose(empty, 1 / (2 * 0.9993))
    rare = np.zeros(100000, np.uint8)
    rare[0] = 1
    assert balance_weights(rare)[0] == pytest.approx(1 / (2 * 7e-4))
    assert balance_weights(rare, clip=(0.1, 0.9))[0] == pytest.approx(5.0)
