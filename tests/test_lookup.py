"""synful.lookup: the point -> voxel rules against plain per-coordinate formulas, and
``values_at`` against direct indexing, for funlib.persistence Arrays over numpy, zarr and h5py."""

import math
from decimal import ROUND_HALF_UP, Decimal

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from synful.io.zarr_array import storage, world_array
from synful.lookup import values_at, values_at_voxels, voxel_indices

coordinate = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
offset_value = st.integers(-10_000, 10_000).map(float) | st.floats(-1e4, 1e4, allow_nan=False)
voxel_value = st.sampled_from([1.0, 4.0, 8.0, 40.0, 0.5, 3.3])
triple = st.tuples


def floor_reference(point, offset, voxel_size):
    return [math.floor((p - o) / v) for p, o, v in zip(point, offset, voxel_size)]


def cremi_reference(point, offset, voxel_size):
    """The CREMI evaluator: Python 2's round (halves away from zero) of (p - offset) / vs."""
    return [
        int(Decimal((p - o) / v).to_integral_value(rounding=ROUND_HALF_UP))
        for p, o, v in zip(point, offset, voxel_size)
    ]


REFERENCE = {"floor": floor_reference, "cremi": cremi_reference}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(triple(coordinate, coordinate, coordinate), min_size=1, max_size=20),
    triple(offset_value, offset_value, offset_value),
    triple(voxel_value, voxel_value, voxel_value),
    st.sampled_from(["floor", "cremi"]),
)
def test_rules_agree_with_reference_on_random_points(points, offset, voxel_size, rule):
    got = voxel_indices(points, offset, voxel_size, rule)
    assert got.dtype == np.int64 and got.shape == (len(points), 3)
    assert got.tolist() == [REFERENCE[rule](p, offset, voxel_size) for p in points]


@settings(max_examples=200, deadline=None)
@given(
    triple(*[st.integers(-1000, 1000)] * 3),
    triple(*[st.integers(-100_000, 100_000)] * 3),
    triple(*[st.sampled_from([1, 2, 4, 8, 40])] * 3),
    triple(*[st.sampled_from([-0.5, 0.0, 0.5, 1e-9, -1e-9, 0.49999999999999994])] * 3),
)
def test_halves_and_voxel_borders(index, offset, voxel_size, fraction):
    """Points on voxel corners, half a voxel in, and just beside both; negative offsets."""
    point = [o + (i + f) * v for i, o, v, f in zip(index, offset, voxel_size, fraction)]
    for rule in ("floor", "cremi"):
        assert voxel_indices([point], offset, voxel_size, rule)[0].tolist() == REFERENCE[rule](
            point, offset, voxel_size
        )


def test_exact_halves_and_corners():
    offset, voxel = (-40.0, 4.0, -8.0), (40.0, 4.0, 4.0)
    # exactly half a voxel past the corner of voxel (1, 0, -1): floor 1 0 -1, cremi 2 1 -1
    point = [[-40 + 1.5 * 40, 4 + 0.5 * 4, -8 - 0.5 * 4]]
    assert voxel_indices(point, offset, voxel, "floor").tolist() == [[1, 0, -1]]
    assert voxel_indices(point, offset, voxel, "cremi").tolist() == [[2, 1, -1]]
    # nearest: the nearest corner, halves up (also below zero): 2 1 0
    assert voxel_indices(point, offset, voxel, "nearest").tolist() == [[2, 1, 0]]
    # on a corner both rules give that voxel
    assert voxel_indices([[0.0, 8.0, 0.0]], offset, voxel, "floor").tolist() == [[1, 1, 2]]
    assert voxel_indices([[0.0, 8.0, 0.0]], offset, voxel, "cremi").tolist() == [[1, 1, 2]]
    assert voxel_indices([[0.0, 8.0, 0.0]], offset, voxel, "nearest").tolist() == [[1, 1, 2]]
    # one point (3,) and none (0, 3)
    assert voxel_indices([0.0, 8.0, 0.0], offset, voxel).shape == (1, 3)
    assert voxel_indices(np.zeros((0, 3)), offset, voxel).shape == (0, 3)
    with pytest.raises(ValueError, match="rule"):
        voxel_indices([[0, 0, 0]], offset, voxel, "round")


def reference_values(data, points, offset, voxel_size, rule, fill):
    """Per point: the value at its voxel by ``rule``, ``fill`` outside (channels first)."""
    shape = data.shape[-3:]
    out, inside = [], []
    for point in points:
        index = REFERENCE[rule](point, offset, voxel_size)
        ok = all(0 <= i < s for i, s in zip(index, shape))
        inside.append(ok)
        out.append(data[(Ellipsis, *index)] if ok else np.full(data.shape[:-3], fill, data.dtype))
    return np.array(out, dtype=data.dtype).reshape((len(points),) + data.shape[:-3]), inside


def _zarr(data, chunks):
    array = zarr.create_array(store={}, shape=data.shape, dtype=data.dtype, chunks=chunks)
    array[...] = data
    return array


def _h5(tmp_path, data, chunks):
    f = h5py.File(tmp_path / "a.h5", "w")
    return f.create_dataset("a", data=data, chunks=chunks)


@pytest.mark.parametrize("kind", ["numpy", "zarr", "h5py"])
@pytest.mark.parametrize("channels", [(), (3,), (2, 2)])
@pytest.mark.parametrize("rule", ["floor", "cremi"])
def test_values_at_matches_direct_indexing(tmp_path, kind, channels, rule):
    rng = np.random.default_rng(len(channels) + 7 * len(kind))
    data = rng.integers(1, 1000, channels + (5, 6, 7)).astype(np.int32)
    offset, voxel = (-80.0, 12.0, -4.0), (40.0, 4.0, 4.0)
    # points over the array and a margin of two voxels around it, some exactly on borders
    low = np.asarray(offset) - 2 * np.asarray(voxel)
    high = np.asarray(offset) + (np.asarray(data.shape[-3:]) + 2) * np.asarray(voxel)
    points = rng.uniform(low, high, (300, 3))
    points[:40] = np.round(points[:40] / np.asarray(voxel) * 2) * np.asarray(voxel) / 2
    chunks = channels + (2, 3, 4)
    array = {"numpy": lambda: data, "zarr": lambda: _zarr(data, chunks),
             "h5py": lambda: _h5(tmp_path, data, chunks)}[kind]()  # fmt: skip
    expected, expected_inside = reference_values(data, points, offset, voxel, rule, -5)
    array = world_array(array, voxel, offset, channels=len(channels))
    values, inside = values_at(array, points, rule, outside="fill", fill=-5, return_inside=True)
    assert values.dtype == data.dtype and values.shape == expected.shape
    assert inside.tolist() == expected_inside
    np.testing.assert_array_equal(values, expected)
    assert not all(expected_inside) and any(expected_inside)
    with pytest.raises(IndexError, match="lie outside"):
        values_at(array, points, rule)
    # inside points only: "raise" reads them
    np.testing.assert_array_equal(values_at(array, points[inside], rule), expected[inside])


def test_values_at_needs_an_array():
    """A bare array has no grid: values_at refuses it (the grid never travels on its own)."""
    with pytest.raises(TypeError, match="world_array"):
        values_at(np.zeros((2, 2, 2)), [[0, 0, 0]])


@pytest.mark.parametrize("lazy", [False, True])
def test_values_at_takes_the_grid_from_an_array(lazy):
    data = np.arange(2 * 3 * 4, dtype=np.uint64).reshape(2, 3, 4) + 1
    volume = world_array(_zarr(data, (1, 2, 2)), (40, 4, 4), (40, -8, 0))
    if lazy:  # behind a lazy op the storage is not read directly: dask computes the slabs
        volume.lazy_op(lambda d: d * 1)
        assert storage(volume) is None
    points = [[40, -8, 0], [79.9, 3.9, 15.9], [60, -6, 2], [120, 0, 0], [20, -8, 0]]
    assert values_at(volume, points, outside="fill").tolist() == [
        data[0, 0, 0],
        data[0, 2, 3],
        data[0, 0, 0],
        0,
        0,
    ]
    # CREMI: 79.9 -> (1, 3, 4) is past the end; halves go up; (20 - 40) / 40 = -0.5 -> -1
    assert values_at(volume, points, "cremi", outside="fill").tolist() == [
        data[0, 0, 0],
        0,
        data[1, 1, 1],
        0,
        0,
    ]
    # nearest: each index clipped into the array; ``inside`` still says which were outside
    values, inside = values_at(volume, points, "cremi", outside="nearest", return_inside=True)
    assert values.tolist() == [
        data[0, 0, 0],
        data[1, 2, 3],  # (1, 3, 4) -> (1, 2, 3)
        data[1, 1, 1],
        data[1, 2, 0],  # (2, 2, 0) -> (1, 2, 0)
        data[0, 0, 0],  # (-1, 0, 0) -> (0, 0, 0)
    ]
    assert inside.tolist() == [True, False, True, False, False]
    with pytest.raises(ValueError, match="outside"):
        values_at(volume, points, outside="zero")


def test_values_at_voxels_with_no_point_inside():
    data = np.ones((2, 2, 2), np.uint8)
    values, inside = values_at_voxels(data, [[-1, 0, 0], [2, 0, 0]], fill=9)
    assert values.tolist() == [9, 9] and inside.tolist() == [False, False]
    values, inside = values_at_voxels(data, np.zeros((0, 3), np.int64))
    assert values.shape == (0,) and inside.shape == (0,)
