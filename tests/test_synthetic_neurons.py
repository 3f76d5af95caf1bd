"""Neuron segmentation: the block-candidate power diagram against the exact one, and shape."""

import numpy as np

from synful.synthetic import neurons
from synful.synthetic.noise import smooth_noise, smooth_noise_upsampled


def tubes_and_warps(shape, seed=0):
    rng = np.random.default_rng(seed)
    centres, weights = neurons.neuron_tubes(rng, shape, 60.0)
    warp_y = smooth_noise_upsampled(rng, shape, neurons.WARP_SCALES, 4)
    warp_x = smooth_noise_upsampled(rng, shape, neurons.WARP_SCALES, 4)
    return centres, weights, warp_y, warp_x


def test_block_candidates_match_the_exact_power_diagram():
    centres, weights, warp_y, warp_x = tubes_and_warps((6, 200, 232))
    fast = neurons.power_diagram(centres, weights, warp_y, warp_x)
    exact = neurons.power_diagram(centres, weights, warp_y, warp_x, candidates=len(weights))
    # exact by brute force: argmin over every neuron at every voxel of one section
    z = 3
    yy, xx = np.mgrid[:200, :232].astype(np.float32)
    cost = (
        (yy[..., None] + warp_y[z][..., None] - centres[:, z, 0]) ** 2
        + (xx[..., None] + warp_x[z][..., None] - centres[:, z, 1]) ** 2
        - weights[:, z]
    )
    assert np.array_equal(exact[z], np.argmin(cost, axis=-1))
    assert (fast != exact).mean() < 1e-4
    assert len(np.unique(fast)) > 10


def test_neurons_run_along_z():
    index = neurons.neuron_index(np.random.default_rng(1), (10, 160, 160))
    same_next_section = (index[1:] == index[:-1]).mean()
    same_in_plane_at_40nm = (index[:, 10:, :] == index[:, :-10, :]).mean()  # 10 voxels = 40 nm
    assert same_next_section > 0.85
    assert same_next_section > same_in_plane_at_40nm


def test_neuron_ids_distinct_and_positive():
    ids = neurons.neuron_ids(np.random.default_rng(2), 500)
    assert ids.dtype == np.uint64 and len(np.unique(ids)) == 500 and ids.min() >= 1


def test_smooth_noise_unit_scale_and_tiny_shapes():
    rng = np.random.default_rng(3)
    assert abs(smooth_noise(rng, (8, 256, 256), (0, 2, 2)).std() - 1) < 0.1
    tiny = smooth_noise(rng, (1, 2, 2), (3, 30, 30))
    assert np.all(np.isfinite(tiny)) and np.abs(tiny).max() < 10
