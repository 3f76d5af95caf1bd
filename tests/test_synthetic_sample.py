"""Synthetic samples: determinism, the padded CREMI layout, annotations and appearance."""

import edt
import numpy as np
import pytest

from synful.errors import SynfulError
from synful.geometry import points_in_roi
from synful.io.cremi import CREMI_VOXEL_SIZE
from synful.synthetic import synthesize_sample
from synful.synthetic.synapses import PRE_POST_NM

SHAPE = (16, 200, 200)
PADDING = (4, 48, 48)
VOXEL = np.asarray(CREMI_VOXEL_SIZE, dtype=np.float64)


@pytest.fixture(scope="module")
def sample():
    return synthesize_sample(seed=3, shape=SHAPE, padding=PADDING)


def label_at(sample, points):
    """neuron_ids at absolute world points (both the floor and the CREMI rounding rule)."""
    labels = sample.neuron_ids
    rel = (points - np.asarray(labels.offset)) / VOXEL
    floor = np.floor(rel).astype(int)
    rounded = np.rint(rel).astype(int)
    assert np.array_equal(floor, rounded), "points should sit on voxel corners"
    return labels.data[floor[:, 0], floor[:, 1], floor[:, 2]]


def test_same_seed_same_bytes_other_seed_differs():
    a = synthesize_sample(seed=5, shape=(6, 80, 80), padding=(2, 16, 16))
    b = synthesize_sample(seed=5, shape=(6, 80, 80), padding=(2, 16, 16))
    c = synthesize_sample(seed=6, shape=(6, 80, 80), padding=(2, 16, 16))
    assert a.raw.data.tobytes() == b.raw.data.tobytes()
    assert a.neuron_ids.data.tobytes() == b.neuron_ids.data.tobytes()
    assert a.annotations.locations.tobytes() == b.annotations.locations.tobytes()
    assert np.array_equal(a.annotations.partners, b.annotations.partners)
    assert a.raw.data.tobytes() != c.raw.data.tobytes()
    assert a.neuron_ids.data.tobytes() != c.neuron_ids.data.tobytes()


def test_padded_cremi_layout(sample):
    raw, labels, ann = sample.raw, sample.neuron_ids, sample.annotations
    assert raw.data.dtype == np.uint8 and labels.data.dtype == np.uint64
    assert raw.data.shape == tuple(s + 2 * p for s, p in zip(SHAPE, PADDING))
    assert labels.data.shape == SHAPE
    assert tuple(raw.resolution) == (40, 4, 4) == tuple(labels.resolution)
    assert tuple(raw.offset) == (0.0, 0.0, 0.0)
    assert tuple(labels.offset) == tuple(float(p * v) for p, v in zip(PADDING, VOXEL))
    assert np.array_equal(ann.offset, np.asarray(labels.offset))
    assert np.all(labels.data > 0)
    # the raw around the cube shows neurons too: membranes (dark) exist in the padding
    assert raw.data[:, :40, :40].min() < 100 and raw.data[:, :40, :40].max() > 150
    assert set(ann.types) == {"presynaptic_site", "postsynaptic_site"}
    assert len(np.unique(ann.ids)) == len(ann.ids)


def test_annotations_inside_cube_on_the_right_neurons(sample):
    ann = sample.annotations
    assert len(ann.partners) >= 5
    # locations are relative to the annotation offset, i.e. inside the cube's extent
    extent = np.asarray(SHAPE) * VOXEL
    assert np.all(ann.locations >= 0) and np.all(ann.locations < extent)
    pre, post = ann.pair_locations()
    cube = sample.neuron_ids.to_array().roi
    assert points_in_roi(pre, cube).all()
    assert points_in_roi(post, cube).all()
    pre_labels, post_labels = label_at(sample, pre), label_at(sample, post)
    assert np.all(pre_labels != post_labels)
    distance = np.linalg.norm(pre - post, axis=1)
    low, high = PRE_POST_NM
    assert distance.min() >= low and distance.max() <= high
    # the partner touches the presynaptic neuron next to the post point (synapses only where
    # two neurons touch): within 20 voxels of the post point, in its section
    for q, a, b in zip(
        np.floor((post - np.asarray(sample.neuron_ids.offset)) / VOXEL).astype(int),
        pre_labels,
        post_labels,
    ):
        window = sample.neuron_ids.data[
            q[0], max(q[1] - 20, 0) : q[1] + 21, max(q[2] - 20, 0) : q[2] + 21
        ]
        touching = ((window[1:] == a) & (window[:-1] == b)) | (
            (window[1:] == b) & (window[:-1] == a)
        )
        touching_x = ((window[:, 1:] == a) & (window[:, :-1] == b)) | (
            (window[:, 1:] == b) & (window[:, :-1] == a)
        )
        assert touching.any() or touching_x.any()
    # polyadic: one pre id in several rows, each partner a different neuron
    pre_ids, rows = np.unique(ann.partners[:, 0], return_counts=True)
    assert rows.max() >= 2
    for pre_id in pre_ids[rows >= 2]:
        mine = ann.partners[:, 0] == pre_id
        assert len(np.unique(post_labels[mine])) == mine.sum()
        assert len(np.unique(pre_labels[mine])) == 1


def test_tbars_and_psds_are_dark(sample):
    raw = sample.raw.data.astype(np.float64)
    pre, post = sample.annotations.pair_locations()
    pre_vox = np.unique(np.floor(pre / VOXEL).astype(int), axis=0)  # raw offset is 0
    near_tbar = [raw[z, y - 6 : y + 7, x - 6 : x + 7].mean() for z, y, x in pre_vox]
    cytoplasm = np.median(raw)
    assert np.mean(near_tbar) < cytoplasm - 20
    # postsynaptic densities: near a post point, the partner's own voxels 2-4 voxels from its
    # membrane are much darker than in the same band of a neuron at an ordinary place
    labels = sample.neuron_ids.data
    distance = np.stack([edt.edt(section, black_border=False) for section in labels])
    cube_raw = raw[tuple(slice(p, p + s) for p, s in zip(PADDING, SHAPE))]

    def membrane_band_mean(z, y, x):
        window = (z, slice(max(y - 12, 0), y + 13), slice(max(x - 12, 0), x + 13))
        band = (
            (labels[window] == labels[z, y, x]) & (distance[window] >= 2) & (distance[window] <= 4)
        )
        return cube_raw[window][band].mean() if band.any() else np.nan

    posts = np.floor((post - np.asarray(sample.neuron_ids.offset)) / VOXEL).astype(int)
    places = np.argwhere((distance >= 7) & (distance <= 13))
    places = places[np.random.default_rng(0).choice(len(places), 300)]
    at_posts = [membrane_band_mean(*v) for v in posts]
    elsewhere = [membrane_band_mean(*v) for v in places]
    assert np.mean(at_posts) < np.nanmedian(elsewhere) - 25


@pytest.mark.parametrize("option", ["missing_sections", "misaligned_sections"])
def test_defects_change_raw_only(sample, option):
    damaged = synthesize_sample(seed=3, shape=SHAPE, padding=PADDING, **{option: 0.25})
    assert np.array_equal(damaged.neuron_ids.data, sample.neuron_ids.data)
    assert np.array_equal(damaged.annotations.locations, sample.annotations.locations)
    changed = np.any(damaged.raw.data != sample.raw.data, axis=(1, 2))
    assert changed.sum() == round(0.25 * sample.raw.data.shape[0])
    if option == "missing_sections":
        assert np.all(damaged.raw.data[changed] == 0)
    else:
        # a shifted section is the original section moved in-plane
        z = int(np.flatnonzero(changed)[0])
        a, b = sample.raw.data[z].astype(int), damaged.raw.data[z].astype(int)
        assert np.abs(a - b).mean() > 5
        assert a.mean() == pytest.approx(b.mean(), abs=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (0, 10, 10)},
        {"shape": (4, -1, 10)},
        {"padding": (-1, 0, 0)},
        {"missing_sections": 1.5},
        {"misaligned_sections": -0.1},
        {"seed": -1},
    ],
)
def test_bad_parameters(kwargs):
    with pytest.raises(SynfulError):
        synthesize_sample(**kwargs)
