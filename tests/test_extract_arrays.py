"""Extraction on in-memory arrays: cc, nms, partners, value lookup, whole-volume tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synful.errors import SynfulError
from synful.extract import ExtractConfig, cc_candidates, extract_from_arrays, nms_candidates
from synful.extract.components import most_interior_voxels
from synful.extract.nms import ellipsoid_footprint, local_maxima, voxel_radius
from synful.extract.partners import (
    averaged_vectors,
    averaging_offsets,
    far_enough,
    partner_locations,
    snap_to_grid,
)
from synful.extract.split import piece_core, split_candidates, split_component
from synful.extract.values import above_threshold, to_values
from synful.io.zarr_array import read, world_array

VS_SPLIT = (40, 4, 4)

VS = (40, 4, 4)


def reference_cc(prob, voxel_size, threshold, score):
    """Straight scipy: label, whole-array EDT of each component mask, argmax, score."""
    labels, n = ndimage.label(prob > threshold)
    out = []
    for label in range(1, n + 1):
        component = labels == label
        dist = ndimage.distance_transform_edt(np.pad(component, 1), sampling=voxel_size)[
            1:-1, 1:-1, 1:-1
        ]
        dist[~component] = -1
        voxel = np.unravel_index(int(np.argmax(dist)), prob.shape)
        values = prob[component].astype(np.float64)
        s = {"sum": values.sum(), "mean": values.mean(), "max": values.max(), "count": values.size}
        out.append((tuple(int(v) for v in voxel), s[score]))
    return sorted(out)


@pytest.mark.parametrize(
    "score,tile",
    [("sum", (2, 16, 16)), ("mean", (1, 1, 1)), ("max", (3, 5, 7)), ("count", (8, 64, 64))],
)
def test_cc_matches_scipy_reference(score, tile):
    """Locations and scores equal a plain scipy implementation on a random map, whatever the
    tiles of the coarse pass."""
    rng = np.random.default_rng(1)
    prob = ndimage.gaussian_filter(rng.random((8, 40, 40)), (0.7, 2, 2)).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    expected = reference_cc(prob, VS, 0.6, score)
    found = cc_candidates(prob, VS, threshold=0.6, score=score, tile=tile)
    got = sorted((tuple(int(v) for v in vox), s) for vox, s in zip(found.voxels, found.scores))
    assert len(expected) > 5
    assert [g[0] for g in got] == [e[0] for e in expected]
    np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-12)


def test_cc_threshold_is_strict_and_components_are_6_connected():
    prob = np.zeros((3, 6, 6), np.float32)
    prob[1, 1, 1] = 0.5  # equal to the threshold: not foreground
    prob[1, 3, 3] = prob[1, 4, 4] = 0.8  # diagonal neighbours: two components
    found = cc_candidates(prob, VS, threshold=0.5, score="count")
    assert sorted(map(tuple, found.voxels.tolist())) == [(1, 3, 3), (1, 4, 4)]
    np.testing.assert_array_equal(found.scores, [1, 1])


def test_most_interior_voxel_is_anisotropic_and_ties_go_to_c_order():
    """A 3 x 5 x 5 box: in z (40 nm) every section is 40 nm from outside, in-plane the middle
    voxel is 12 nm inside, so the distance is limited in-plane: the whole middle column ties
    and the first one in C order (z = 0) wins."""
    box = np.ones((3, 5, 5), bool)
    assert tuple(most_interior_voxels([box], (40, 4, 4))[0]) == (0, 2, 2)
    # isotropic 5 x 5 x 5: the centre is strictly most interior
    assert tuple(most_interior_voxels([np.ones((5, 5, 5), bool)], (4, 4, 4))[0]) == (2, 2, 2)


def test_cc_location_uses_whole_component_not_bounding_box():
    """An L-shaped component: the most interior voxel is in the thick arm."""
    prob = np.zeros((1, 20, 20), np.float32)
    prob[0, 2:18, 2:5] = 1  # thin arm, 3 wide
    prob[0, 10:18, 2:18] = 1  # thick arm, 8 high
    found = cc_candidates(prob, VS, threshold=0.5)
    # distances 16 nm along rows 13 and 14 from x = 5: the first in C order
    assert found.voxels.tolist() == [[0, 13, 5]]


def test_value_lookup_equals_float_conversion():
    rng = np.random.default_rng(2)
    for dtype, scale in [(np.uint8, 255.0), (np.int8, 0.25), (np.uint16, 1000.0), (np.int16, 7.0)]:
        info = np.iinfo(dtype)
        stored = rng.integers(info.min, info.max + 1, (4, 9, 9)).astype(dtype)
        for threshold in (0.0, 0.5, 0.9, 1.0, -3.0):
            np.testing.assert_array_equal(
                above_threshold(stored, scale, threshold), to_values(stored, scale) > threshold
            )
    floats = rng.random((3, 4, 5)).astype(np.float32)
    np.testing.assert_array_equal(above_threshold(floats, None, 0.3), floats > 0.3)


def test_tiles_above_threshold_equals_naive_tiling():
    from synful.extract.values import tiles_above_threshold

    rng = np.random.default_rng(8)
    stored = rng.integers(0, 256, (5, 13, 22)).astype(np.uint8)
    for scale in (255.0, -255.0):
        mask = to_values(stored, scale) > 0.9 if scale > 0 else to_values(stored, scale) > -0.1
        threshold = 0.9 if scale > 0 else -0.1
        tiles = tiles_above_threshold(stored, scale, threshold, (2, 4, 8))
        assert tiles.shape == (3, 4, 3)
        for index in np.ndindex(tiles.shape):
            block = mask[tuple(slice(i * t, (i + 1) * t) for i, t in zip(index, (2, 4, 8)))]
            assert tiles[index] == block.any()


def test_stored_uint8_gives_the_same_candidates_as_values():
    rng = np.random.default_rng(3)
    prob = ndimage.gaussian_filter(rng.random((6, 30, 30)), (0.7, 2, 2))
    stored = np.round((prob - prob.min()) / np.ptp(prob) * 255).astype(np.uint8)
    a = cc_candidates(stored, VS, threshold=0.55, scale=255)
    b = cc_candidates(to_values(stored, 255), VS, threshold=0.55)
    np.testing.assert_array_equal(a.voxels, b.voxels)
    np.testing.assert_array_equal(a.scores, b.scores)
    for method in ("sparse", "dense"):
        a = nms_candidates(stored, VS, radius=20, threshold=0.55, scale=255, method=method)
        b = nms_candidates(to_values(stored, 255), VS, radius=20, threshold=0.55, method=method)
        assert len(a) > 3
        np.testing.assert_array_equal(a.voxels, b.voxels)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_nms_footprint_matches_the_original_example():
    """40 nm at (40, 4, 4) nm -> voxel radius (1, 10, 10); surface offsets are included."""
    radius = voxel_radius(40, VS)
    assert radius == (1, 10, 10)
    fp = ellipsoid_footprint(radius)
    assert fp.shape == (3, 21, 21)
    assert fp[1, 10, 0] and fp[1, 4, 2] and fp[0, 10, 10]  # (0, 6, 8): 0.36 + 0.64 = 1
    assert not fp[0, 10, 11] and not fp[1, 0, 0]


def test_nms_sparse_equals_dense():
    rng = np.random.default_rng(4)
    values = ndimage.gaussian_filter(rng.random((6, 40, 40)), (0.5, 1.5, 1.5)).astype(np.float32)
    values = np.round(values * 50) / 50  # plateaus
    fp = ellipsoid_footprint((1, 3, 3))
    for threshold in (0.0, 0.5):
        dense = local_maxima(values, fp, threshold, method="dense")
        sparse = local_maxima(values, fp, threshold, method="sparse")
        assert dense.any()
        np.testing.assert_array_equal(dense, sparse)


def test_nms_plateau_centroid_and_score():
    values = np.zeros((3, 30, 30), np.float32)
    values[1, 5, 5:8] = 0.8  # plateau of three voxels: centroid (1, 5, 6)
    values[1, 20, 20] = 0.95
    values[1, 22, 22] = 0.9  # within 40 nm of the 0.95 peak: suppressed
    values[1, 5, 25] = 0.3  # below the threshold
    found = nms_candidates(values, VS, radius=40, threshold=0.5)
    got = sorted(zip(map(tuple, found.voxels.tolist()), found.scores.round(6)))
    assert got == [((1, 5, 6), 0.8), ((1, 20, 20), 0.95)]


def test_partner_snapping_and_min_distance():
    post = np.array([[400.0, 40.0, 40.0]])
    pre = partner_locations(post, [[21.0, -5.9, 2.0]], offset=(10, 2, 2), voxel_size=VS)
    # relative to the offset: (411 / 40 = 10.275 -> 10, 32.1 / 4 = 8.025 -> 8, 40 / 4 = 10)
    np.testing.assert_array_equal(pre, [[410.0, 34.0, 42.0]])
    np.testing.assert_array_equal(
        snap_to_grid([[20.0, 2.0, 6.0]], (0, 0, 0), VS), [[40.0, 4.0, 8.0]]
    )
    np.testing.assert_array_equal(
        far_enough([[0, 0, 0], [0, 0, 10]], [[0, 0, 0], [0, 0, 0]], 5), [False, True]
    )
    assert far_enough([[0, 0, 0]], [[0, 0, 0]], 0).all()


def test_extract_from_arrays_builds_the_table():
    prob = np.zeros((5, 20, 20), np.float32)
    prob[2, 4:7, 4:7] = 0.9  # 9 voxels, most interior = centre (2, 5, 5)
    prob[2, 14, 14] = 0.7
    vectors = np.zeros((3, 5, 20, 20), np.float32)
    vectors[:, 2, 5, 5] = [40, 8, -8]
    vectors[:, 2, 14, 14] = [0, 0, 0]
    offset = (100, 20, 8)
    prob, vectors = world_array(prob, VS, offset), world_array(vectors, VS, offset, channels=1)
    table = extract_from_arrays(prob, vectors, ExtractConfig(threshold=0.5))
    assert list(table.columns)[:7] == [
        "id",
        "pre_z",
        "pre_y",
        "pre_x",
        "post_z",
        "post_y",
        "post_x",
    ]
    assert table["id"].dtype == np.uint64
    rows = table.to_dict("records")
    assert rows[0]["id"] == np.ravel_multi_index((2, 5, 5), (5, 20, 20))
    assert (rows[0]["post_z"], rows[0]["post_y"], rows[0]["post_x"]) == (180.0, 40.0, 28.0)
    assert (rows[0]["pre_z"], rows[0]["pre_y"], rows[0]["pre_x"]) == (220.0, 48.0, 20.0)
    assert rows[0]["score"] == pytest.approx(9 * np.float32(0.9))
    assert rows[1]["score"] == pytest.approx(0.7)
    assert len(extract_from_arrays(prob, vectors, ExtractConfig(score_threshold=1.0))) == 1
    assert len(extract_from_arrays(prob, vectors, ExtractConfig(min_distance=10))) == 1
    with pytest.raises(ValueError, match="do not lie on the grid"):
        extract_from_arrays(
            prob, world_array(read(vectors), VS, (0, 0, 0), channels=1), ExtractConfig()
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"mode": "watershed"},
        {"score": "median"},
        {"nms_radius": 0},
        {"min_distance": -1},
        {"context": float("nan")},
        {"min_piece_volume": 0},
        {"split_levels": [0.7, 1.2]},
        {"split_levels": []},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(SynfulError):
        ExtractConfig(**kwargs)


def test_packed_edt_equals_one_component_at_a_time():
    """Packing many components into one EDT call changes no location (several batches)."""
    from synful.extract.components import most_interior_voxels

    rng = np.random.default_rng(7)
    components = []
    for _ in range(60):
        shape = tuple(rng.integers(1, [4, 9, 9]))
        component = rng.random(shape) < 0.8
        component.reshape(-1)[0] = True
        components.append(component)
    packed = most_interior_voxels(components, VS, max_batch_voxels=600)
    for component, got in zip(components, packed):
        dist = ndimage.distance_transform_edt(np.pad(component, 1), sampling=VS)[1:-1, 1:-1, 1:-1]
        dist[~component] = -1
        assert tuple(got) == np.unravel_index(int(np.argmax(dist)), component.shape)


def two_blobs(saddle: float, peaks=(0.95, 0.8)) -> np.ndarray:
    """Two Gaussian-ish blobs side by side along x in one section, joined at ``saddle``."""
    x = np.arange(48)
    left = peaks[0] * np.exp(-(((x - 14) / 6.0) ** 2))
    right = peaks[1] * np.exp(-(((x - 34) / 6.0) ** 2))
    profile = np.maximum(np.maximum(left, right), np.where((x > 14) & (x < 34), saddle, 0))
    y = np.exp(-(((np.arange(20) - 10) / 5.0) ** 2))
    prob = np.zeros((3, 20, 48), np.float32)
    prob[1] = profile[None, :] * y[:, None]
    return prob


def test_split_separates_blobs_joined_by_a_saddle():
    prob = two_blobs(saddle=0.55)
    merged = cc_candidates(prob, VS_SPLIT, threshold=0.5)
    assert len(merged) == 1  # one CC component holds both blobs
    pieces = split_candidates(prob, VS_SPLIT, threshold=0.5, min_voxels=10)
    assert len(pieces) == 2
    # each located at its own peak (x 14 and 34), not between them
    assert sorted(int(v[2]) for v in pieces.voxels) == [14, 34]
    assert set(int(v[0]) for v in pieces.voxels) == {1}
    # a high CC threshold separates them too, but loses the fainter blob below it
    assert len(cc_candidates(prob, VS_SPLIT, threshold=0.85)) == 1


def test_split_keeps_a_blob_whose_bumps_are_small():
    prob = two_blobs(saddle=0.55, peaks=(0.95, 0.62))
    # the second bump rises above 0.6 on only a few voxels: debris, not a piece
    pieces = split_candidates(prob, VS_SPLIT, threshold=0.5, min_voxels=40)
    assert len(pieces) == 1
    assert int(pieces.voxels[0][2]) == 14
    np.testing.assert_allclose(pieces.scores, [prob[prob > 0.5].sum()], rtol=1e-6)


def test_split_component_and_core():
    values = two_blobs(saddle=0.55)[1]
    component = values > 0.5
    parts = split_component(values, component, [0.6, 0.7, 0.8, 0.9], 10)
    assert len(parts) == 2 and not (parts[0] & parts[1]).any()
    assert all((values[p] > 0.6).all() for p in parts)  # pieces are cut at the splitting level
    core = piece_core(values, component, [0.6, 0.7, 0.8, 0.9], 10)
    # fewer than 10 voxels above 0.9: the core is the (left, brighter) blob's part above 0.8
    assert core.sum() >= 10 and (values[core] > 0.8).all() and np.nonzero(core)[1].max() < 24
    # without levels above the threshold split mode is CC mode
    prob = two_blobs(saddle=0.55)
    a = split_candidates(prob, VS_SPLIT, threshold=0.5, levels=[0.3], min_voxels=10)
    b = cc_candidates(prob, VS_SPLIT, threshold=0.5)
    np.testing.assert_array_equal(a.voxels, b.voxels)
    np.testing.assert_allclose(a.scores, b.scores)


def test_min_piece_volume_in_voxels():
    assert ExtractConfig().min_piece_voxels((40, 4, 4)) == 50
    assert ExtractConfig(min_piece_volume=1).min_piece_voxels((40, 4, 4)) == 1
    assert ExtractConfig(split_levels=[0.9, 0.7]).split_levels == (0.7, 0.9)


def test_averaging_offsets_are_a_disc_in_the_section_centre_first():
    offsets = averaging_offsets(16, (40, 4, 4))
    assert tuple(offsets[0]) == (0, 0, 0)
    assert (offsets[:, 0] == 0).all() and len(offsets) == 49  # dy^2 + dx^2 <= 16
    assert len(averaging_offsets(3, (40, 4, 4))) == 1
    assert {tuple(o) for o in averaging_offsets(40, (40, 4, 4))} >= {(1, 0, 0), (-1, 0, 0)}


def test_averaged_vectors_vote_for_one_pre_location():
    vs = np.array([40.0, 4.0, 4.0])
    rng = np.random.default_rng(0)
    shape = (3, 20, 20)
    prob = np.zeros(shape, np.float32)
    prob[1, 6:14, 6:14] = 0.8
    target = np.array([40.0, 40.0, 120.0])  # every voxel's vector points at this pre location
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1) * vs
    vectors = (target - grid) + rng.normal(0, 6, grid.shape)  # noisy votes
    at = lambda volume: lambda points: volume[tuple((np.asarray(points) / vs).astype(int).T)]  # noqa: E731
    post = np.array([[40.0, 40.0, 40.0]])
    single = averaged_vectors(post, vs, 0.0, 0.5, at(prob), at(vectors))
    np.testing.assert_allclose(single, vectors[1, 10, 10][None])  # radius 0: the post voxel
    mean = averaged_vectors(post, vs, 16.0, 0.5, at(prob), at(vectors))
    assert np.linalg.norm(post + mean - target) < np.linalg.norm(post + single - target) + 1e-9
    assert np.linalg.norm(post + mean - target) < 3.0  # the mean of 49 votes with sigma 6 nm
    # voxels at or below the threshold do not vote
    outside = averaged_vectors(np.array([[40.0, 8.0, 8.0]]), vs, 16.0, 0.5, at(prob), at(vectors))
    np.testing.assert_allclose(outside, vectors[1, 2, 2][None])


def test_vector_radius_in_memory_equals_blockwise(tmp_path):
    from _extract_stores import write_prediction_store

    from synful.extract import extract_synapses

    rng = np.random.default_rng(1)
    prob = np.zeros((6, 40, 40), np.float32)
    for z, y, x in [(2, 10, 10), (3, 30, 12), (2, 20, 31)]:
        prob[z - 1 : z + 2, y - 5 : y + 6, x - 5 : x + 6] = rng.uniform(0.55, 1.0, (3, 11, 11))
    vectors = rng.normal(0, 40, (3, *prob.shape)).astype(np.float32)
    store = write_prediction_store(
        tmp_path / "p.zarr", prob, vectors, offset=(0, 0, 0), voxel_size=(40, 4, 4)
    )
    config = ExtractConfig(mode="split", vector_radius=16)
    arrays = (
        world_array(prob, (40, 4, 4), (0, 0, 0)),
        world_array(vectors, (40, 4, 4), (0, 0, 0), channels=1),
    )
    whole = extract_from_arrays(*arrays, config)
    single = extract_from_arrays(*arrays, ExtractConfig(mode="split"))
    assert len(whole) == 3 and not np.array_equal(
        whole[["pre_y", "pre_x"]], single[["pre_y", "pre_x"]]
    )
    blocks = extract_synapses(
        store,
        tmp_path / "b.parquet",
        mode="split",
        vector_radius=16,
        block_shape=(3, 20, 20),
        progress=False,
    )
    np.testing.assert_allclose(
        blocks[["pre_z", "pre_y", "pre_x"]].to_numpy(),
        whole[["pre_z", "pre_y", "pre_x"]].to_numpy(),
    )
