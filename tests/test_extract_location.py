"""The CC location rules (interior vs the original master branch) and the NMS border mode.

The table of docs/extraction.md (fidelity audit section 9, check 2) is reproduced here.
"""

from __future__ import annotations

import numpy as np
import numpy.ma as ma
import pandas as pd
import pytest
from _extract_stores import random_vectors, write_prediction_store
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from synful.cli import main
from synful.errors import SynfulError
from synful.extract import (
    ExtractConfig,
    cc_candidates,
    extract_from_arrays,
    extract_synapses,
    nms_candidates,
    run_extract_blocks,
    work_directory,
)
from synful.extract.components import master_boundaries, master_location
from synful.extract.nms import ellipsoid_footprint, local_maxima, pad_map, reflected_faces
from synful.extract.volume import IDENTITY_FILE
from synful.io.synapse_table import read_synapses
from synful.io.zarr_array import world_array

VS = (40, 4, 4)


def ellipse(shape_yx, semi_y, semi_x):
    """A filled ellipse (voxel semi-axes) centred in an array of odd shape ``shape_yx``."""
    y, x = np.indices(shape_yx)
    cy, cx = (shape_yx[0] - 1) / 2, (shape_yx[1] - 1) / 2
    return ((y - cy) / semi_y) ** 2 + ((x - cx) / semi_x) ** 2 <= 1


DISK = ellipse((51, 51), 25, 25)  # r = 100 nm at 4 nm
ELLIPSE = ellipse((31, 101), 15, 50)  # 120 x 400 nm
SMALL_DISK = ellipse((51, 51), 15, 15)

# blob, its centre voxel, where interior and master locate it, and the distances (nm) from
# the centre, as in the fidelity audit (section 9, check 2)
CHECK_2 = {
    "1 section, disk r = 100 nm": (DISK[None], (0, 25, 25), (0, 10, 22), (0, 25, 25), 61.2, 0),
    "1 section, ellipse 400 x 120 nm": (
        ELLIPSE[None],
        (0, 15, 50),
        (0, 10, 37),
        (0, 15, 50),
        55.7,
        0,
    ),
    "3 sections, prism ellipse 400 x 120 nm": (
        np.repeat(ELLIPSE[None], 3, 0),
        (1, 15, 50),
        (1, 15, 50),
        (0, 15, 50),
        0,
        40,
    ),
    "3 sections, prism disk r = 100 nm": (
        np.repeat(DISK[None], 3, 0),
        (1, 25, 25),
        (1, 20, 24),
        (0, 25, 25),
        20.4,
        40,
    ),
    "3 sections, tapered (r = 60, 100, 60 nm)": (
        np.stack([SMALL_DISK, DISK, SMALL_DISK]),
        (1, 25, 25),
        (1, 25, 25),
        (1, 25, 25),
        0,
        0,
    ),
}


@pytest.mark.parametrize("blob", list(CHECK_2))
def test_fidelity_audit_check_2_table(blob):
    mask, centre, interior, master, interior_nm, master_nm = CHECK_2[blob]
    prob = mask.astype(np.float32) * 0.9
    for rule, expected, nm in (("interior", interior, interior_nm), ("master", master, master_nm)):
        found = cc_candidates(prob, VS, threshold=0.5, location=rule)
        assert len(found) == 1
        assert tuple(found.voxels[0]) == expected, rule
        off = np.linalg.norm((found.voxels[0] - np.array(centre)) * np.array(VS))
        assert off == pytest.approx(nm, abs=0.05), rule
        # the same through the whole-volume table (post = voxel * voxel size)
        table = extract_from_arrays(
            world_array(prob, VS, (0, 0, 0)),
            world_array(np.zeros((3, *prob.shape)), VS, (0, 0, 0), channels=1),
            ExtractConfig(cc_location=rule),
        )
        np.testing.assert_array_equal(
            table[["post_z", "post_y", "post_x"]].to_numpy()[0], np.array(expected) * VS
        )


def naive_boundaries(labels):
    """Doubled-grid label transitions, one face-adjacent pair at a time."""
    out = np.zeros(tuple(2 * s - 1 for s in labels.shape), bool)
    for index in np.ndindex(labels.shape):
        for axis in range(labels.ndim):
            other = list(index)
            other[axis] += 1
            if other[axis] < labels.shape[axis] and labels[index] != labels[tuple(other)]:
                point = [2 * i for i in index]
                point[axis] += 1
                out[tuple(point)] = True
    return out


def test_master_boundaries_are_face_transitions_only():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, (3, 5, 4))
    np.testing.assert_array_equal(master_boundaries(labels), naive_boundaries(labels))
    one_d = np.array([1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 3, 3])  # the original's docstring example
    expected = "00000001000100000001000"
    assert "".join(str(int(b)) for b in master_boundaries(one_d)) == expected


def reference_master(prob, voxel_size, threshold):
    """The original's steps on the whole map: label, bounding box, crop of the *labels*,
    doubled-grid EDT of the face transitions, masked argmax (numpy.ma)."""
    labels, _ = ndimage.label(prob > threshold)
    out = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        crop = labels[box]
        boundaries = naive_boundaries(crop)
        distances = ndimage.distance_transform_edt(
            1.0 - boundaries, sampling=tuple(v / 2 for v in voxel_size)
        ).astype(np.float32)[::2, ::2, ::2]
        local = np.unravel_index(ma.masked_array(distances, crop != label).argmax(), crop.shape)
        out.append(tuple(int(b.start + i) for b, i in zip(box, local)))
    return sorted(out)


@pytest.mark.parametrize("tile", [(2, 16, 16), (1, 1, 1), (3, 5, 7)])
def test_master_rule_equals_the_originals_steps(tile):
    """On a random map with many (nested) components, any tiling of the coarse pass: the
    bounding box of the thresholded mask gives the original's label-crop locations."""
    rng = np.random.default_rng(11)
    prob = ndimage.gaussian_filter(rng.random((8, 48, 48)), (0.3, 1.5, 1.5)).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    for threshold in (0.45, 0.6):
        expected = reference_master(prob, VS, threshold)
        found = cc_candidates(prob, VS, threshold=threshold, location="master", tile=tile)
        assert len(expected) > 5
        assert sorted(tuple(int(i) for i in v) for v in found.voxels) == expected
        interior = cc_candidates(prob, VS, threshold=threshold, tile=tile)
        np.testing.assert_array_equal(np.sort(found.scores), np.sort(interior.scores))


def test_master_component_filling_its_box_goes_to_its_last_voxel():
    """No boundary in the crop: scipy's EDT measures from before index 0 along z."""
    assert master_location(np.ones((1, 1, 2), bool), np.ones((1, 1, 2), bool), VS) == (0, 0, 1)
    assert master_location(np.ones((3, 2, 2), bool), np.ones((3, 2, 2), bool), VS) == (2, 1, 1)
    assert master_location(np.ones((1, 1, 1), bool), np.ones((1, 1, 1), bool), VS) == (0, 0, 0)


@pytest.mark.parametrize(
    "kwargs,option",
    [({"cc_location": "centre"}, "--cc-location"), ({"nms_border": "mirror"}, "--nms-border")],
)
def test_config_rejects_unknown_rules(kwargs, option):
    with pytest.raises(SynfulError, match=option):
        ExtractConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown"):
        cc_candidates(np.zeros((2, 2, 2)), VS, location="centre")
    with pytest.raises(ValueError, match="unknown"):
        nms_candidates(np.zeros((2, 2, 2)), VS, border="mirror")


# --- NMS border ---------------------------------------------------------------------------


def scipy_reflect_maxima(values, footprint, threshold):
    """The original's maxima: scipy's maximum_filter with its default mode ('reflect')."""
    filtered = ndimage.maximum_filter(values, footprint=footprint)
    return (values == filtered) & (values > max(threshold, 0))


def test_maximum_at_the_volume_border():
    """A voxel on the border beats its mirror image neither way: detected when it is the
    largest in reach, suppressed by a larger one inside, as scipy's reflect does."""
    values = np.zeros((3, 20, 20), np.float32)
    values[1, 0, 10] = 0.9  # on the y = 0 face, the largest in reach: a maximum
    values[1, 2, 10] = 0.7
    values[0, 19, 0] = 0.6  # in a corner, with a larger value inside its reach: suppressed
    values[0, 17, 1] = 0.8
    fp = ellipsoid_footprint((1, 3, 3))
    expected = scipy_reflect_maxima(values, fp, 0.0)
    assert expected[1, 0, 10] and expected[0, 17, 1] and not expected[0, 19, 0]
    for method in ("dense", "sparse"):
        for reflect in (None, ((True, True),) * 3):
            got = local_maxima(values, fp, 0.0, method, reflect=reflect)
            np.testing.assert_array_equal(got, expected)


def test_pad_map_reflects_like_scipy_even_beyond_the_array():
    rng = np.random.default_rng(0)
    values = rng.random((2, 3, 5)).astype(np.float32)
    radius = (3, 4, 7)  # wider than the array: repeated reflection
    padded = pad_map(values, radius, ((True, True),) * 3)
    for offset in np.ndindex(*(2 * r + 1 for r in radius)):
        shift = np.array(offset) - np.array(radius)
        weights = np.zeros(tuple(2 * r + 1 for r in radius))
        weights[offset] = 1
        scipy_shifted = ndimage.correlate(values, weights, mode="reflect")
        window = tuple(slice(r + s, r + s + n) for r, s, n in zip(radius, shift, values.shape))
        np.testing.assert_array_equal(padded[window], scipy_shifted)
    one_sided = pad_map(values, radius, ((True, False), (False, False), (False, True)))
    assert one_sided.shape == padded.shape
    assert not one_sided[-3:].any() and not one_sided[:, :4].any()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)),
    radius=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
    threshold=st.sampled_from([0.0, 0.3]),
    method=st.sampled_from(["dense", "sparse"]),
)
def test_reflect_and_constant_give_the_originals_maxima(seed, shape, radius, threshold, method):
    """For any map (values >= 0, plateaus, footprints wider than the array) both border modes
    give exactly the maxima of scipy's reflect-mode filter."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.random(shape) * 4).astype(np.float32) / 4
    values[rng.random(shape) < 0.3] = 0
    fp = ellipsoid_footprint(radius)
    expected = scipy_reflect_maxima(values, fp, threshold)
    for border in ("constant", "reflect"):
        reflect = reflected_faces(border, 3)
        got = local_maxima(values, fp, threshold, method, reflect=reflect)
        np.testing.assert_array_equal(got, expected)


def test_reflected_faces():
    assert reflected_faces("constant", 3) is None
    assert reflected_faces("reflect", 2) == ((True, True), (True, True))
    faces = ((True, False), (False, False), (False, True))
    assert reflected_faces("reflect", 3, faces) == faces
    assert reflected_faces("reflect", 3, ((False, False),) * 3) is None


# --- blockwise, identity, CLI --------------------------------------------------------------


def border_map(shape=(8, 40, 40)):
    """Blobs, several on the volume's faces and corners, plus faint noise."""
    rng = np.random.default_rng(21)
    prob = ndimage.gaussian_filter(rng.random(shape), (0.3, 1.5, 1.5)).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    prob[0, :6, :6] = 0.97  # a plateau in a corner of the volume
    prob[-1, 20:26, -3:] = 0.96  # on the last section and the last x face
    return prob


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "cc", "cc_location": "master"},
        {"mode": "nms", "nms_border": "reflect"},
        {"mode": "nms", "nms_border": "reflect", "nms_radius": 12},
    ],
)
def test_blockwise_equals_whole_volume_at_the_volume_border(tmp_path, options):
    prob = border_map()
    vectors = random_vectors(prob.shape, seed=2, steps=20)
    offset = (80, -8, 12)
    store = write_prediction_store(tmp_path / "p.zarr", prob, vectors, offset=offset)
    kwargs = {"threshold": 0.75, "progress": False, **options}
    whole = extract_synapses(store, tmp_path / "w.parquet", **kwargs)
    assert len(whole) > 5
    for block_shape in ((3, 16, 16), (5, 11, 23)):
        blocks = extract_synapses(store, tmp_path / "b.parquet", block_shape=block_shape, **kwargs)
        pd.testing.assert_frame_equal(whole, blocks)
    config = ExtractConfig(**{k: v for k, v in kwargs.items() if k != "progress"})
    in_memory = extract_from_arrays(
        world_array(prob, VS, offset), world_array(vectors, VS, offset, channels=1), config
    )
    pd.testing.assert_frame_equal(whole, in_memory)
    if options["mode"] == "nms":  # the border mode never changes a result
        constant = {**kwargs, "nms_border": "constant"}
        pd.testing.assert_frame_equal(
            whole, extract_synapses(store, tmp_path / "c.parquet", **constant)
        )
    else:
        interior = extract_synapses(
            store, tmp_path / "i.parquet", **{**kwargs, "cc_location": "interior"}
        )
        assert len(interior) == len(whole)
        assert not whole[["post_z", "post_y", "post_x"]].equals(
            interior[["post_z", "post_y", "post_x"]]
        )


def test_a_changed_rule_never_resumes_old_work(tmp_path):
    prob = border_map()
    store = write_prediction_store(
        tmp_path / "p.zarr", prob, random_vectors(prob.shape, seed=2, steps=20)
    )
    out = tmp_path / "syn.parquet"
    config = ExtractConfig(threshold=0.6)
    _, task, result = run_extract_blocks(
        store, out, config, block_shape=(4, 20, 20), progress=False
    )
    assert (work_directory(out) / IDENTITY_FILE).is_file()
    for changed in (
        ExtractConfig(threshold=0.6, cc_location="master"),
        ExtractConfig(threshold=0.6, nms_border="reflect"),
        config,
    ):
        if changed is not config:  # another rule: never resumed, only restarted on request
            with pytest.raises(SynfulError, match="--restart"):
                run_extract_blocks(store, out, changed, block_shape=(4, 20, 20), progress=False)
        _, _, result = run_extract_blocks(
            store, out, changed, block_shape=(4, 20, 20), progress=False, restart=True
        )
        assert (result.skipped, result.processed) == (0, task.num_blocks)
    _, _, result = run_extract_blocks(store, out, config, block_shape=(4, 20, 20), progress=False)
    assert (result.skipped, result.processed) == (task.num_blocks, 0)


def test_cli_options(tmp_path):
    prob = border_map()
    store = write_prediction_store(
        tmp_path / "p.zarr", prob, random_vectors(prob.shape, seed=2, steps=20)
    )
    for name, argv, kwargs in (
        ("m", ["--cc-location", "master"], {"cc_location": "master"}),
        (
            "r",
            ["--mode", "nms", "--nms-border", "reflect"],
            {"mode": "nms", "nms_border": "reflect"},
        ),
    ):
        out = tmp_path / f"{name}.parquet"
        assert main(["--quiet", "extract", str(store), str(out), "--threshold", "0.6", *argv]) == 0
        expected = extract_synapses(
            store, tmp_path / f"{name}_api.parquet", threshold=0.6, progress=False, **kwargs
        )
        pd.testing.assert_frame_equal(read_synapses(out), expected)
    with pytest.raises(SystemExit):
        main(["extract", str(store), str(tmp_path / "x.parquet"), "--cc-location", "x"])
