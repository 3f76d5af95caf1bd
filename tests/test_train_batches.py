"""Sampling, augmentation and batch assembly: windows, padding, points following the arrays."""

import numpy as np
import pytest
from _train_stores import TINY_SETUP, VS, write_store
from scipy import ndimage

from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi
from synful.io.zarr_array import nbytes, storage
from synful.models import build_model
from synful.train import batch as batch_module
from synful.train.augment import (
    SpatialTransform,
    augment_defects,
    augment_intensity,
    sample_transform,
)
from synful.train.batch import make_batch, render_sample
from synful.train.sampling import choose_output_window, load_small_arrays, open_training_sample
from synful.train.setup import (
    DefectSettings,
    ElasticSettings,
    IntensitySettings,
    SimpleSettings,
    resolve_setup,
)


def shapes(setup):
    model = build_model(setup.to_dict())
    return tuple(setup.input_shape), model.output_shape(setup.input_shape)


@pytest.fixture()
def store(tmp_path):
    path = tmp_path / "a.zarr"
    data = write_store(path)
    return path, data


def quiet_setup(**extra):
    """No random intensity changes, so arrays can be compared exactly."""
    return resolve_setup({**TINY_SETUP, "intensity": {"enabled": False}, **extra})


def test_transform_maps_points_like_arrays():
    rng = np.random.default_rng(0)
    for _ in range(4):
        transform = sample_transform(
            rng,
            (12, 48, 48),
            VS,
            ElasticSettings(prob_slip=0.3, prob_shift=0.3, jitter_sigma=[0.5, 2, 2]),
            SimpleSettings(),
        )
        field = transform.source_coordinates()
        targets = np.stack([rng.integers(0, n, 40) for n in (12, 48, 48)], axis=1)
        sources = transform.to_source(targets)
        np.testing.assert_allclose(
            sources, field[:, targets[:, 0], targets[:, 1], targets[:, 2]].T, atol=1e-4
        )
        np.testing.assert_allclose(transform.to_target(sources), targets, atol=1e-4)


def test_identity_transform_reads_the_window_unchanged(store):
    path, data = store
    setup = quiet_setup()
    input_shape, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    roi = Roi(
        Coordinate(data["offset"]) + Coordinate((80, 40, 40)),
        Coordinate(output_shape) * Coordinate(VS),
    )
    out = render_sample(
        np.random.default_rng(0),
        sample,
        roi,
        SpatialTransform(input_shape, VS),
        setup,
        input_shape,
        output_shape,
    )
    context = (np.asarray(input_shape) - output_shape) // 2
    begin = (np.asarray(roi.begin) // VS) - context
    expected = data["raw"][tuple(slice(b, b + s) for b, s in zip(begin, input_shape))]
    np.testing.assert_allclose(out["raw"][0], expected / 255 * 2 - 1, atol=1e-6)
    label_begin = (np.asarray(roi.begin) - data["offset"]) // VS
    np.testing.assert_array_equal(
        out["neuron_ids"],
        data["labels"][tuple(slice(b, b + s) for b, s in zip(label_begin, output_shape))],
    )


def reorder(mirror, transpose, array):
    """array[M(t)] on the last three axes (M: transpose, mirror y, mirror x; so reverse order)."""
    out = array
    if mirror[1]:
        out = out[..., ::-1]
    if mirror[0]:
        out = out[..., ::-1, :]
    if transpose:
        out = np.swapaxes(out, -1, -2)
    return out


def test_mirrored_batch_has_mirrored_targets(store):
    path, data = store
    setup = quiet_setup(blob_radius=40, d_blob_radius=60)
    input_shape, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    post = data["post"][0]
    begin = np.floor((post - data["offset"]) / VS).astype(int) - np.asarray(output_shape) // 2
    begin = np.clip(begin, 0, np.asarray(data["labels"].shape) - output_shape)
    roi = Roi(Coordinate(begin * VS + data["offset"]), Coordinate(output_shape) * Coordinate(VS))
    rng = np.random.default_rng(0)
    plain = render_sample(
        rng, sample, roi, SpatialTransform(input_shape, VS), setup, input_shape, output_shape
    )
    assert plain["post_indicator"].sum() > 0 and plain["vector_mask"].sum() > 0
    for mirror, transpose in [
        ((False, True), False),
        ((True, False), False),
        ((False, False), True),
        ((True, True), True),
    ]:
        transform = SpatialTransform(input_shape, VS, mirror=mirror, transpose=transpose)
        moved = render_sample(rng, sample, roi, transform, setup, input_shape, output_shape)

        np.testing.assert_allclose(
            moved["raw"], reorder(mirror, transpose, plain["raw"]), atol=1e-6
        )
        for key in ("post_indicator", "vector_mask", "neuron_ids"):
            np.testing.assert_array_equal(
                moved[key], reorder(mirror, transpose, plain[key]), err_msg=key
            )
        vectors = reorder(mirror, transpose, plain["partner_vectors"]).copy()
        if transpose:
            vectors[[1, 2]] = vectors[[2, 1]]
        mask = reorder(mirror, transpose, plain["vector_mask"])[0] > 0
        # a mirrored axis flips the vector's sign; the corner convention adds one voxel
        for axis, flipped in ((1, mirror[0]), (2, mirror[1])):
            if flipped:
                vectors[axis][mask] = -vectors[axis][mask] + VS[axis]
        np.testing.assert_allclose(moved["partner_vectors"], vectors, atol=1e-3)


def test_elastic_augmentation_moves_targets_with_the_labels(store):
    """After rotation and jitter, every post blob still lies on its (moved) neuron."""
    path, data = store
    setup = quiet_setup(blob_radius=30, d_blob_radius=60, reject_probability=1.0)
    input_shape, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(6):
        roi = choose_output_window(rng, sample, output_shape, 1.0)
        transform = sample_transform(rng, input_shape, VS, setup.elastic, SimpleSettings())
        assert not transform.is_identity
        out = render_sample(rng, sample, roi, transform, setup, input_shape, output_shape)
        blob = out["post_indicator"][0] > 0
        assert np.all(out["neuron_ids"][blob] > 0)
        vectors = out["partner_vectors"]
        lengths = np.linalg.norm(vectors[:, out["vector_mask"][0] > 0], axis=0)
        # pre is 80-85 nm from post; vectors start within the 60 nm ball: 20..150 nm
        assert np.all((lengths > 10) & (lengths < 160))
        checked += int(blob.any())
    assert checked > 0


def test_input_beyond_raw_is_zero_padded(tmp_path):
    path = tmp_path / "b.zarr"
    write_store(path, padding=(0, 0, 0))
    setup = quiet_setup()
    input_shape, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    roi = Roi(sample.region.begin, Coordinate(output_shape) * Coordinate(VS))
    out = render_sample(
        np.random.default_rng(0),
        sample,
        roi,
        SpatialTransform(input_shape, VS),
        setup,
        input_shape,
        output_shape,
    )
    context = (np.asarray(input_shape) - output_shape) // 2
    assert np.all(out["raw"][0, : context[0]] == -1.0)
    assert np.all(out["raw"][0, :, : context[1]] == -1.0)
    assert np.all(out["raw"][0, context[0] :, context[1] :, context[2] :] > -1.0)


def test_windows_lie_inside_the_region_and_reject_forces_synapses(store):
    path, data = store
    setup = quiet_setup()
    _, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    rng = np.random.default_rng(0)
    for _ in range(30):
        roi = choose_output_window(rng, sample, output_shape, 1.0)
        assert sample.region.contains(roi)
        assert (np.asarray(roi.begin) - data["offset"]) % np.asarray(VS) == pytest.approx(0)
        inside = np.all(
            (data["post"] >= np.asarray(roi.begin)) & (data["post"] < np.asarray(roi.end)), axis=1
        )
        assert inside.any()


def test_training_mask_restricts_windows(tmp_path):
    shape = (12, 64, 64)
    mask = np.zeros(shape, np.uint8)
    mask[:, :32, :] = 1  # training: the first half in y
    path = tmp_path / "m.zarr"
    data = write_store(path, shape=shape, training_mask=mask)
    setup = quiet_setup()
    _, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    in_mask = (data["post"][:, 1] - data["offset"][1]) / VS[1] < 32
    assert set(sample.candidates) == set(np.flatnonzero(in_mask))
    rng = np.random.default_rng(1)
    for _ in range(20):
        roi = choose_output_window(rng, sample, output_shape, 0.5)
        assert roi.end[1] <= data["offset"][1] + 32 * VS[1]
    # a mask without any window that fits is an error naming the store
    tiny = np.zeros(shape, np.uint8)
    tiny[5, 5, 5] = 1
    bad = tmp_path / "t.zarr"
    write_store(bad, shape=shape, training_mask=tiny)
    with pytest.raises(SynfulError, match="masks/training") as info:
        choose_output_window(rng, open_training_sample(bad, setup.voxel_size), output_shape, 0.5)
    assert info.value.path == str(bad)


def test_region_smaller_than_the_window(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path, shape=(2, 64, 64))
    setup = quiet_setup()
    _, output_shape = shapes(setup)
    big = tuple(o * 4 for o in output_shape)
    with pytest.raises(SynfulError, match="smaller than the network output window"):
        choose_output_window(
            np.random.default_rng(0), open_training_sample(path, setup.voxel_size), big, 0.5
        )


def test_store_problems_are_synful_errors(tmp_path):
    with pytest.raises(SynfulError, match="no such zarr store"):
        open_training_sample(tmp_path / "missing.zarr")
    path = tmp_path / "a.zarr"
    write_store(path)
    with pytest.raises(SynfulError, match="voxel_size"):
        open_training_sample(path, voxel_size=(8, 8, 8))
    path.with_suffix(".parquet").unlink()
    with pytest.raises(SynfulError, match="no such file"):
        open_training_sample(path)


def test_batches_are_reproducible_and_balanced(store):
    path, _ = store
    setup = resolve_setup({**TINY_SETUP, "batch_size": 2})
    input_shape, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    first = make_batch(np.random.default_rng([0, 5]), [sample], setup, input_shape, output_shape, 5)
    again = make_batch(np.random.default_rng([0, 5]), [sample], setup, input_shape, output_shape, 5)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert first["raw"].shape == (2, 1, *input_shape)
    assert first["partner_vectors"].shape == (2, 3, *output_shape)
    assert -1.0 <= first["raw"].min() and first["raw"].max() <= 1.0
    positives = first["post_indicator"] > 0
    fraction = positives.mean()
    if 0 < fraction < 1:
        expected = 1 / (2 * np.clip(fraction, 7e-4, 0.9993))
        np.testing.assert_allclose(first["loss_weights"][positives], expected, rtol=1e-5)


def test_arrays_in_memory_give_the_same_batches(tmp_path):
    path = tmp_path / "b.zarr"
    write_store(path, padding=(0, 0, 0))  # windows reach beyond raw: the fill must match too
    setup = resolve_setup({**TINY_SETUP, "batch_size": 2})
    input_shape, output_shape = shapes(setup)
    on_disk = open_training_sample(path, setup.voxel_size)
    loaded = load_small_arrays(on_disk, 1 << 30)
    assert all(isinstance(storage(v), np.ndarray) for v in (loaded.raw, loaded.labels))
    assert not isinstance(storage(on_disk.raw), np.ndarray)
    for iteration in range(1, 4):
        a = make_batch(
            np.random.default_rng([0, iteration]),
            [on_disk],
            setup,
            input_shape,
            output_shape,
            iteration,
        )
        b = make_batch(
            np.random.default_rng([0, iteration]),
            [loaded],
            setup,
            input_shape,
            output_shape,
            iteration,
        )
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # arrays above the limit stay on disk
    small = load_small_arrays(on_disk, nbytes(on_disk.raw) - 1)
    assert not isinstance(storage(small.raw), np.ndarray)


def test_resampling_matches_scipy_3d():
    rng = np.random.default_rng(3)
    source = rng.random((6, 30, 40)).astype(np.float32)
    labels = rng.integers(1, 2**40, size=(6, 30, 40), dtype=np.uint64)
    transform = sample_transform(
        rng, (5, 24, 24), VS, ElasticSettings(jitter_sigma=[0, 2, 2]), SimpleSettings()
    )
    transform.section_shifts = rng.uniform(-3, 3, size=(5, 2))
    planar = (
        transform.source_coordinates()
        + np.float32(2.5) * np.array([0, 1, 1], np.float32)[:, None, None, None]
    )
    planar[0] -= 1  # one section reads beyond the source (zeros)
    tilted = planar + rng.uniform(-0.4, 0.4, size=planar.shape).astype(np.float32)
    for coords in (planar, tilted):
        expected = ndimage.map_coordinates(source, coords, order=1, mode="constant", cval=0.0)
        np.testing.assert_allclose(
            batch_module._interpolate_linear(source, coords), expected, atol=1e-6
        )
        nearest = np.rint(coords).astype(np.int64)
        inside = np.all(
            (nearest >= 0) & (nearest < np.array(labels.shape)[:, None, None, None]), axis=0
        )
        expected = np.where(inside, labels[tuple(np.where(inside[None], nearest, 0))], 0)
        np.testing.assert_array_equal(batch_module._lookup_nearest(labels, coords), expected)
        # a crop of the labels that begins at index (1, 2, 0): the same lookup inside it
        crop_inside = inside & np.all(nearest >= np.array([1, 2, 0])[:, None, None, None], axis=0)
        np.testing.assert_array_equal(
            batch_module._lookup_nearest(labels[1:, 2:], coords, origin=(1, 2, 0)),
            np.where(crop_inside, expected, 0),
        )
    assert not batch_module._interpolate_linear(source, planar)[0].any()


def test_intensity_and_defects():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.2, 0.8, size=(6, 20, 20)).astype(np.float32)
    out = augment_intensity(rng, raw, IntensitySettings(scale=[2.0, 2.0], shift=[0.0, 0.0]))
    for z in range(6):
        mean = raw[z].mean()
        np.testing.assert_allclose(out[z], np.clip(mean + (raw[z] - mean) * 2, 0, 1), atol=1e-6)
    assert augment_intensity(rng, raw, IntensitySettings(enabled=False)) is raw
    missing = augment_defects(rng, raw, DefectSettings(prob_missing=1.0))
    assert np.all(missing == 0)
    flat = augment_defects(rng, raw, DefectSettings(prob_low_contrast=1.0, contrast_scale=0.0))
    np.testing.assert_allclose(
        flat, np.broadcast_to(raw.mean(axis=(1, 2), keepdims=True), raw.shape), atol=1e-6
    )
    # misaligned: every section moved in-plane by whole voxels (<= 3), the edge repeated
    moved = augment_defects(rng, raw, DefectSettings(prob_misaligned=1.0, max_misaligned=3))
    for z in range(6):
        found = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if np.array_equal(moved[z, 3:-3, 3:-3], raw[z, 3 - dy : 17 - dy, 3 - dx : 17 - dx])
        ]
        assert len(found) == 1
    assert not np.array_equal(moved, raw)
    # each kind at its own probability per section
    mixed = augment_defects(
        np.random.default_rng(1),
        rng.uniform(0.2, 0.8, (4000, 2, 2)).astype(np.float32),
        DefectSettings(prob_missing=0.1, prob_low_contrast=0.2, contrast_scale=0.0),
    )
    black = np.all(mixed == 0, axis=(1, 2))
    flat_sections = ~black & np.all(mixed == mixed[:, :1, :1], axis=(1, 2))
    assert abs(black.mean() - 0.1) < 0.02 and abs(flat_sections.mean() - 0.2) < 0.03


def test_slips_and_shifts_follow_gunpowder():
    """A shift moves its section and all after it; a slip gives its one section its own whole-
    voxel offset, replacing the shifts before it (gunpowder's ElasticAugment)."""
    rng = np.random.default_rng(3)
    seen_slip = seen_shift = False
    for _ in range(20):
        t = sample_transform(
            rng,
            (30, 24, 24),
            VS,
            ElasticSettings(prob_slip=0.2, prob_shift=0.2, max_misalign=4, jitter_sigma=[0, 0, 0]),
            SimpleSettings(mirror=False, transpose=False),
        )
        if t.section_shifts is None:
            continue
        shifts = t.section_shifts
        assert np.array_equal(shifts, np.round(shifts)) and np.abs(shifts).max() <= 16
        steps = [z for z in range(1, 30) if not np.array_equal(shifts[z], shifts[z - 1])]
        for z in steps:
            # a section that differs from both neighbours while they agree is a slip
            if 0 < z < 29 and np.array_equal(shifts[z - 1], shifts[z + 1]):
                seen_slip = True
                assert np.abs(shifts[z]).max() <= 4
            else:
                seen_shift = True
    assert seen_slip and seen_shift


@pytest.mark.parametrize(
    "extra, problem",
    [
        ({"defect": {"prob_missing": 0.6, "prob_misaligned": 0.6}}, "sum <= 1"),
        ({"defect": {"prob_low_contrast": -0.1}}, "must be >= 0"),
        ({"elastic": {"prob_slip": 0.7, "prob_shift": 0.7}}, "sum <= 1"),
        ({"defect": {"max_misaligned": -1}}, "max_misaligned must be >= 0"),
    ],
)
def test_bad_defect_settings_are_one_line_errors(extra, problem):
    with pytest.raises(SynfulError, match=problem):
        resolve_setup({**TINY_SETUP, **extra})


def test_curriculum_sets_the_balancing_clip_per_iteration(store):
    path, _ = store
    setup = resolve_setup(
        {
            **TINY_SETUP,
            "input_shape": [21, 84, 84],
            "blob_radius": 12,
            "reject_probability": 1.0,
            "curriculum": {"iterations": 10, "clipmin": [0.25, 7e-4]},
        }
    )
    input_shape, output_shape = shapes(setup)
    sample = open_training_sample(path, setup.voxel_size)
    early = make_batch(np.random.default_rng([0, 0]), [sample], setup, input_shape, output_shape, 0)
    assert early["loss_weights"].max() <= 1 / (2 * 0.25) + 1e-6
    late = make_batch(np.random.default_rng([0, 0]), [sample], setup, input_shape, output_shape, 10)
    fraction = late["post_indicator"].mean()
    assert 0 < fraction < 0.25  # the same window: now the weight follows the real fraction
    assert late["loss_weights"].max() == pytest.approx(1 / (2 * fraction), rel=1e-5)
